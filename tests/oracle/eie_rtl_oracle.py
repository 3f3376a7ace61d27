"""The reference simulator's cycle count ("rtl" timing), written literally from its rules.

Loops over items, PEs and entries; no algebra, no shortcuts. Rules:
- Items: the broadcast activations (nonzero after quantisation) in increasing column j,
  then one bias item at column Kp = ceil(K/N)*N whose entries are the nonzero biases
  placed like one more column (none without a bias). n[j,k]: entries of item j on PE k.
- g_j = col_j div N, q_j = col_j mod N; s_0 = 1 + g_0; for j >= 1,
  s_j = s_{j-1} + 1 + (g_j - g_{j-1}) - [q_{j-1} = N-1 and g_j > g_{j-1}].
- Queue: for j >= D, s_j = max(s_j, max_k pop[j-D, k]).
- pop[0,k] = s_0 + 2; pop[j,k] = max(pop[j-1,k] + max(1, n[j-1,k]), s_j + 2).
- Entry e of item j on PE k is written at pop[j,k] + e + 5 if its code is not 0.
- t_empty = the bias item's send time before its queue stall.
- total_cycles = max(last write + 1, t_empty, 9).
"""

import numpy as np

from tests.oracle import eie_oracle


def simulate(codes, x, *, num_pes, fifo_depth, index_bits, act_frac_bits, bias=None):
    """Returns (total_cycles, last_write per PE (-1: none), t_empty)."""
    m, k = codes.shape
    n_pes = num_pes
    pes = eie_oracle.encode(codes, n_pes, index_bits)
    xq = eie_oracle.quantize(x, act_frac_bits)
    # The bias item, encoded as one more column (code 1 marks a nonzero bias).
    if bias is None:
        bias_codes = np.zeros((m, 1), int)
    else:
        bias_codes = (eie_oracle.quantize(bias, act_frac_bits) != 0).astype(int)[:, None]
    bias_pes = eie_oracle.encode(bias_codes, n_pes, index_bits)

    # Items: (column, per-PE list of entry codes).
    items = []
    for j in range(k):
        if xq[j] != 0:
            slices = []
            for pe in pes:
                lo, hi = pe["colptr"][j], pe["colptr"][j + 1]
                slices.append(pe["codes"][lo:hi])
            items.append((j, slices))
    kp = -(-k // n_pes) * n_pes
    items.append((kp, [pe["codes"] for pe in bias_pes]))

    num_items = len(items)
    s = [0] * num_items
    pop = [[0] * n_pes for _ in range(num_items)]
    t_empty = None
    for j, (col, _) in enumerate(items):
        g, _ = divmod(col, n_pes)
        if j == 0:
            s[j] = 1 + g
        else:
            g_prev, q_prev = divmod(items[j - 1][0], n_pes)
            s[j] = s[j - 1] + 1 + (g - g_prev) - (1 if (q_prev == n_pes - 1 and g > g_prev) else 0)
        if j == num_items - 1:
            t_empty = s[j]  # the bias item, before its queue stall
        if j >= fifo_depth:
            s[j] = max(s[j], max(pop[j - fifo_depth][pe] for pe in range(n_pes)))
        for pe in range(n_pes):
            if j == 0:
                pop[j][pe] = s[0] + 2
            else:
                previous = len(items[j - 1][1][pe])
                pop[j][pe] = max(pop[j - 1][pe] + max(1, previous), s[j] + 2)

    last_write = [-1] * n_pes
    for j, (_, slices) in enumerate(items):
        for pe in range(n_pes):
            for e, code in enumerate(slices[pe]):
                if code != 0:
                    last_write[pe] = max(last_write[pe], pop[j][pe] + e + 5)
    total = max(max(last_write) + 1, t_empty, 9)
    return total, np.array(last_write), t_empty
