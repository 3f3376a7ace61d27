"""A slow, obviously-correct NumPy model of EIE, written straight from the semantics.

Nothing here is clever: loops over PEs, columns and rows, in the order the paper
describes. The fast JAX model must agree with it exactly.
"""

import numpy as np

INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1


def quantize(x, frac_bits):
    """clip(round_half_to_even(x * 2**frac_bits)) to int16 (np.round rounds half to even)."""
    scaled = np.round(np.asarray(x, np.float64) * 2.0**frac_bits)
    return np.clip(scaled, INT16_MIN, INT16_MAX).astype(np.int64)


def encode(codes, num_pes, index_bits):
    """Per PE: lists of (code, z, local row) in stream order and column pointers."""
    m, k = codes.shape
    max_z = 2**index_bits - 1
    pes = []
    for pe in range(num_pes):
        local_rows = list(range(pe, m, num_pes))
        stream_codes, stream_z, stream_rows, colptr = [], [], [], [0]
        for j in range(k):
            zeros = 0
            position = -1  # local row of the previous entry in this column
            for local, r in enumerate(local_rows):
                if codes[r, j] == 0:
                    zeros += 1
                    continue
                z = zeros
                while z > max_z:
                    position += max_z + 1
                    stream_codes.append(0)
                    stream_z.append(max_z)
                    stream_rows.append(position)
                    z -= max_z + 1
                stream_codes.append(int(codes[r, j]))
                stream_z.append(z)
                stream_rows.append(local)
                position = local
                zeros = 0
            colptr.append(len(stream_codes))
        pes.append(dict(codes=stream_codes, z=stream_z, rows=stream_rows, colptr=np.array(colptr)))
    return pes


def simulate(
    codes,
    codebook,
    x,
    *,
    num_pes,
    fifo_depth,
    index_bits,
    act_frac_bits,
    weight_frac_bits,
    relu=False,
    bias=None,
):
    """Returns (outputs, pe_cycles, pe_busy, total_cycles) as the issue's semantics say."""
    m, k = codes.shape
    pes = encode(codes, num_pes, index_bits)
    xq = quantize(x, act_frac_bits)
    wq = quantize(codebook, weight_frac_bits)
    wq[0] = 0

    # Arithmetic: per output row, columns in increasing order, saturating accumulation.
    acc = np.zeros(m, np.int64) if bias is None else quantize(bias, act_frac_bits)
    for j in range(k):
        for r in range(m):
            if codes[r, j] != 0:
                term = (int(wq[codes[r, j]]) * int(xq[j])) >> weight_frac_bits
                acc[r] = min(max(acc[r] + term, INT16_MIN), INT16_MAX)
    if relu:
        acc = np.maximum(acc, 0)
    outputs = acc / 2.0**act_frac_bits

    # Timing over the broadcast columns only.
    broadcast = [j for j in range(k) if xq[j] != 0]
    n = np.array([[pe["colptr"][j + 1] - pe["colptr"][j] for j in broadcast] for pe in pes])
    n = n.reshape(num_pes, len(broadcast))
    pe_cycles = paper_cycles(n, fifo_depth)
    pe_busy = n.sum(axis=1)
    return outputs, pe_cycles, pe_busy, int(pe_cycles.max())


def paper_cycles(n, fifo_depth):
    """Per-PE finish cycles of the paper timing; n (N, I): entries of each broadcast item."""
    num_pes, items = n.shape
    t = np.zeros(items, np.int64)
    s = np.zeros((num_pes, items), np.int64)
    f = np.zeros((num_pes, items), np.int64)
    for i in range(items):
        t[i] = 0 if i == 0 else t[i - 1] + 1
        if i >= fifo_depth:
            t[i] = max(t[i], s[:, i - fifo_depth].max())
        for pe in range(num_pes):
            previous_finish = f[pe, i - 1] if i > 0 else 0
            s[pe, i] = max(previous_finish, t[i])
            f[pe, i] = s[pe, i] + max(n[pe, i], 1)
    return f[:, -1] if items else np.zeros(num_pes, np.int64)
