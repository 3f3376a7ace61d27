"""report.md of a compression run: the stage accuracies, the storage table, EIE per layer."""

from __future__ import annotations


def to_markdown(result, report) -> str:
    lines = [
        f"# {result['model']} on {result['dataset']}",
        "",
        "| stage | test accuracy |",
        "|---|---|",
        f"| dense | {result['dense_accuracy']:.4f} |",
        f"| pruned | {result['pruned_accuracy']:.4f} |",
        f"| pruned + shared (compressed) | {result['compressed_accuracy']:.4f} |",
        f"| compressed on EIE (16-bit fixed point) | {result['eie_accuracy']:.4f} |",
        "",
        f"Compression: {result['compression_ratio']:.1f}x (P+Q+H), "
        f"{result['compression_ratio_pq']:.1f}x (P+Q), {result['compression_ratio_eie']:.1f}x "
        "(EIE format).",
        "",
        "## Storage (Deep Compression Tables 2-3)",
        "",
        report.to_markdown(),
        "",
        "## EIE ({num_pes} PEs, FIFO {fifo_depth}, {clock_mhz:.0f} MHz)".format(
            **result["eie_config"]
        ),
        "",
        "Mean over the test set.",
        "",
        "| layer | cycles | µs | load efficiency | entries | padding | act frac bits |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, layer in result["layers"].items():
        if "cycles" in layer:
            lines.append(
                f"| {name} | {layer['cycles']:.1f} | {layer['time_us']:.3f} "
                f"| {layer['load_efficiency']:.3f} | {layer['eie_entries']} "
                f"| {layer['eie_padding']} | {layer['act_frac_bits']} |"
            )
    return "\n".join(lines) + "\n"
