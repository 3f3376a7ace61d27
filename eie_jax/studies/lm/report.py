"""The W4A16 study's table (results.md) and Pareto figure (pareto.png) from results.json."""

from __future__ import annotations

import os

from eie_jax.utils import plotting
from eie_jax.utils.plotting import pareto_front

HEADER = (
    "| method | bits | sparsity | fine-tuned | test nats/char | Δ vs dense | bits/weight "
    "| bits/weight (EIE format) | model KB | runs on EIE |"
)


def to_markdown(results) -> str:
    dense = results["dense"]
    lines = [
        f"# {results['model']}: compression methods from one dense model",
        "",
        f"Dense: {dense['steps']} steps in {dense['seconds'] / 60:.1f} min; validation "
        f"{dense['validation_nats']:.4f}, test {dense['test_nats']:.4f} nats/char.",
        "",
        "Bits/weight: everything stored for the FC matrices (codes, codebooks, fp16 scales, "
        "zeros, relative indices) over their dense weight count. Model KB adds the embedding, "
        "positions, LayerNorms and biases at 16 bits.",
        "",
        HEADER,
        "|---" * 10 + "|",
        f"| dense fp32 | 32 | 0.00 | - | {dense['test_nats']:.4f} | 0.0000 | 32.00 | - "
        f"| {dense.get('model_kb', float('nan')):.0f} | no |",
    ]
    for r in results["rows"]:
        eie = r["eie_bits_per_weight"]
        lines.append(
            f"| {r['name']} | {r['bits']} | {r['sparsity']:.2f} | "
            f"{'yes' if r['finetuned'] else 'no'} | {r['test_nats']:.4f} | "
            f"{r['delta_nats']:+.4f} | {r['bits_per_weight']:.3f} | "
            f"{'-' if eie is None else f'{eie:.3f}'} | {r['model_kb']:.0f} | "
            f"{'yes' if r['runs_on_eie'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def plot(results, path) -> str:
    rows = [r for r in results["rows"] if r["bits"] < 32]
    points = [(r["bits_per_weight"], -r["test_nats"]) for r in rows]
    front = pareto_front(points)
    return plotting.pareto_plot(
        path,
        [(x, -y) for x, y in points],
        [r["name"] for r in rows],
        front,
        xlabel="bits per FC weight (everything stored)",
        ylabel="test nats/char (lower is better)",
        title=f"{results['model']}: loss vs bits per weight "
        f"(dense {results['dense']['test_nats']:.3f})",
    )


def write(results, workdir) -> None:
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(to_markdown(results))
    plot(results, os.path.join(workdir, "pareto.png"))
