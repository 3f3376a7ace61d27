"""The comparison's report: verdicts declared in its config, the markdown table, the plot.

A comparison config declares its questions in `config.verdicts`, name -> spec; each spec has
a `kind` and the methods, quantisers and targets it reads, so that the verdict and its
printed target come from the same numbers:

- kind='fewer_cycles': method vs baseline, per quantiser, at num_pes[0]; met when the
  method takes at least `fewer_cycles` (a fraction) fewer EIE cycles and loses at most
  `max_points_lost` points of EIE accuracy.
- kind='load_efficiency': a method's load efficiency per quantiser at num_pes[0]; met when
  above `above`.
- kind='quantizer_difference': per method, accuracy with quantiser `a` minus with `b`, in
  points (on EIE, in float, before fine-tuning); no target.

Every spec may set `label`, the text the verdict line starts with (default: its name).
"""

from __future__ import annotations

import os

from eie_jax.utils import plotting
from eie_jax.utils.cli import UserError

VERDICT_FIELDS = {
    "fewer_cycles": ("method", "baseline", "fewer_cycles", "max_points_lost"),
    "load_efficiency": ("method", "above"),
    "quantizer_difference": ("a", "b"),
}


def check_verdicts(config) -> None:
    """UserError naming config.verdicts.<name>.<field> for an unknown kind, a missing or
    unknown field, or a method or quantiser the comparison does not run."""
    for name, spec in dict(config.get("verdicts", None) or {}).items():
        where = f"config.verdicts.{name}"
        kind = spec.get("kind", None)
        if kind not in VERDICT_FIELDS:
            raise UserError(f"{where}.kind={kind!r}: allowed: {sorted(VERDICT_FIELDS)}")
        needed = VERDICT_FIELDS[kind]
        for field in needed:
            if field not in spec:
                raise UserError(f"{where}.{field}: missing; kind {kind!r} needs {list(needed)}")
        for field in spec:
            if field not in (*needed, "kind", "label"):
                raise UserError(f"{where}.{field}: unknown for kind {kind!r}; fields: {needed}")
        for field in ("method", "baseline"):
            if field in spec and spec[field] not in config.methods:
                raise UserError(
                    f"{where}.{field}={spec[field]!r}: not in config.methods "
                    f"{sorted(config.methods)}"
                )
        for field in ("a", "b"):
            if field in spec and spec[field] not in config.quantizers:
                raise UserError(
                    f"{where}.{field}={spec[field]!r}: not in config.quantizers "
                    f"{sorted(config.quantizers)}"
                )


def _find(rows, method, quantizer):
    return next((r for r in rows if r["method"] == method and r["quantizer"] == quantizer), None)


def verdicts(rows, config) -> dict:
    """{name: {quantiser or method: numbers (and met)}} for each declared verdict; a pair
    whose runs are missing is left out."""
    n = str(config.num_pes[0])
    methods = config.get("order", None) or sorted(config.methods)
    out = {}
    for name, spec in dict(config.get("verdicts", None) or {}).items():
        got = out[name] = {}
        if spec["kind"] == "fewer_cycles":
            for q in config.quantizers:
                base, run = _find(rows, spec["baseline"], q), _find(rows, spec["method"], q)
                if base and run:
                    fewer = 1.0 - run["eie"][n]["cycles"] / base["eie"][n]["cycles"]
                    lost = 100.0 * (base["eie_accuracy"] - run["eie_accuracy"])
                    met = fewer >= spec["fewer_cycles"] - 1e-9
                    met = met and lost <= spec["max_points_lost"] + 1e-9
                    got[q] = dict(fewer_cycles=fewer, accuracy_points_lost=lost, met=bool(met))
        elif spec["kind"] == "load_efficiency":
            for q in config.quantizers:
                run = _find(rows, spec["method"], q)
                if run:
                    eff = run["eie"][n]["load_efficiency"]
                    got[q] = dict(
                        load_efficiency=eff,
                        ceiling=run["eie"][n]["load_efficiency_ceiling"],
                        met=bool(eff > spec["above"]),
                    )
        else:
            for m in methods:
                a, b = _find(rows, m, spec["a"]), _find(rows, m, spec["b"])
                if a and b:
                    got[m] = {
                        f"{key}_points": 100.0 * (a[field] - b[field])
                        for key, field in (
                            ("eie", "eie_accuracy"),
                            ("float", "compressed_accuracy"),
                            ("before_finetune", "quantized_accuracy"),
                        )
                    }
    return out


def verdict_lines(result, config) -> list[str]:
    """One markdown line per verdict and quantiser/method; targets from the specs."""
    n, fifo = result["num_pes"][0], result["fifo_depth"]
    yes = lambda met: "met" if met else "NOT met"
    lines = []
    for name, spec in dict(config.get("verdicts", None) or {}).items():
        label = spec.get("label", None) or name
        for key, d in result["verdicts"].get(name, {}).items():
            if spec["kind"] == "fewer_cycles":
                lines.append(
                    f"- {label} ({key}, {n} PEs): {100 * d['fewer_cycles']:.1f} % fewer cycles, "
                    f"EIE accuracy {-d['accuracy_points_lost']:+.2f} points (target: >= "
                    f"{100 * spec['fewer_cycles']:g} % fewer cycles, >= "
                    f"{-spec['max_points_lost']:g} points): {yes(d['met'])}."
                )
            elif spec["kind"] == "load_efficiency":
                lines.append(
                    f"- {label} ({key}, {n} PEs, FIFO {fifo}): load efficiency "
                    f"{d['load_efficiency']:.3f} (ceiling for these masks and inputs "
                    f"{d['ceiling']:.3f}; target > {spec['above']:g}): {yes(d['met'])}."
                )
            else:
                p, a, b = d["eie_points"], spec["a"], spec["b"]
                better = f"{a} better" if p > 0 else f"{b} better" if p < 0 else "tie"
                lines.append(
                    f"- {key}: {a} minus {b} = {p:+.2f} points on EIE ({better}); "
                    f"float {d['float_points']:+.2f}, before fine-tuning "
                    f"{d['before_finetune_points']:+.2f}."
                )
    return lines


def plot(result, workdir) -> str:
    n = str(result["num_pes"][0])
    rows = result["rows"]
    points = [(r["eie"][n]["cycles"], 100.0 * r["eie_accuracy"]) for r in rows]
    path = os.path.join(workdir, f"accuracy_vs_cycles_{n}pes.png")
    return plotting.pareto_plot(
        path,
        points,
        [f"{r['method']}+{r['quantizer']}" for r in rows],
        plotting.pareto_front(points),
        xlabel=f"EIE cycles per inference, FC stack ({n} PEs, FIFO {result['fifo_depth']})",
        ylabel="test accuracy on EIE (%)",
        title="Accuracy vs EIE cycles (Pareto front)",
    )


def _pct(x):
    return f"{100.0 * x:.2f}"


def to_markdown(result, config) -> str:
    pes = [str(n) for n in result["num_pes"]]
    head = ["method", "quantiser", "kept %", "acc float %", "acc EIE %", "CR (P+Q+H)"]
    for n in pes:
        head += [f"cycles @{n}", f"µs @{n}", f"load eff @{n}", f"padding % @{n}"]
    lines = [
        "# Hardware-aware compression on EIE",
        "",
        f"FIFO depth {result['fifo_depth']}, {result['clock_mhz']:.0f} MHz; cycles and µs per "
        "inference for the whole FC stack, mean over the test set; accuracy on the test set "
        "(float: the compressed network; EIE: the same in EIE's 16-bit fixed point).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in result["rows"]:
        cells = [
            r["label"],
            r["quantizer"],
            _pct(r["weights_kept"]),
            _pct(r["compressed_accuracy"]),
            _pct(r["eie_accuracy"]),
            f"{r['compression_ratio']:.1f}x",
        ]
        for n in pes:
            e = r["eie"][n]
            cells += [
                f"{e['cycles']:.1f}",
                f"{e['time_us']:.3f}",
                f"{e['load_efficiency']:.3f}",
                _pct(e["padding_share"]),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Beside the table", ""]
    lines += [
        "| method | quantiser | dense % | pruned % | quantised, before fine-tune % | per-channel "
        "int4, float % | nonzero inputs per layer | load eff ceiling @" + " / @".join(pes) + " |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        per_channel = r.get("per_channel_int4_accuracy")
        ceilings = " / ".join(f"{r['eie'][n]['load_efficiency_ceiling']:.3f}" for n in pes)
        lines.append(
            f"| {r['method']} | {r['quantizer']} | {_pct(r['dense_accuracy'])} "
            f"| {_pct(r['pruned_accuracy'])} | {_pct(r['quantized_accuracy'])} "
            f"| {'-' if per_channel is None else _pct(per_channel)} "
            f"| {' / '.join(f'{b:.1f}' for b in r['broadcasts'])} | {ceilings} |"
        )
    lines += ["", "## Verdicts", ""] + verdict_lines(result, config)
    lines += [
        "",
        f"Wall time of this invocation: {result['seconds']:.0f} s; the runs themselves took "
        f"{result['train_seconds']:.0f} s (stages resumed from shared checkpoints count 0).",
        "",
        f"![accuracy vs cycles]({os.path.basename(result['plot'])})",
    ]
    return "\n".join(lines) + "\n"
