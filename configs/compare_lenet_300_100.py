"""Hardware-aware compression of LeNet-300-100 on Fashion-MNIST, measured on EIE.

    python -m experiments.compare --config=configs/compare_lenet_300_100.py --workdir=runs/compare
    python -m experiments.compare --config=configs/compare_lenet_300_100.py:smoke --workdir=/tmp/c

Pruning methods at matched overall density (9 % of the weights kept, Deep
Compression's per-layer ratios; 2:4 keeps 50 % and is there for reference), each with two
4-bit quantisers, every result run on EIE at 64 and 16 PEs (FIFO 8, 800 MHz):

- magnitude: Deep Compression's iterative magnitude pruning (Han et al., NIPS 2015);
- balanced: ESE's load-balance-aware pruning (Han et al., FPGA 2017) for 64 PEs;
- n_m: NVIDIA 2:4 (Mishra et al. 2021): prune once by magnitude, retrain as long;
- hw_loss: learned masks (scores) trained with EIE's expected cycles in the loss, and
  scores, the same without the hardware term (what the loss adds).

Quantisers: k-means 4-bit codebook with centroid fine-tuning (Deep Compression Sec. 3);
linear int4, one symmetric grid per layer, frozen (share.linear_codebook).
All methods start from one dense network and retrain for the same number of epochs.
"""

from configs import lenet_300_100
from eie_jax.studies.compare import compare
from eie_jax.training import hw_loss


def get_config(arg=None):
    base = lenet_300_100.get_config(arg)
    smoke = arg == "smoke"
    # The recipe every method shares, set here so that the comparison does not move with the
    # single-run defaults: 20 dense epochs, 16 retraining epochs, 4 fine-tuning epochs.
    base.train.epochs = 1 if smoke else 20
    base.prune.update(
        score="magnitude",
        structure="unstructured",
        # Deep Compression's per-layer ratios (Table 1), rescaled to 9 % overall.
        distribution="global",
        target_density=0.09,
        schedule="iterative",
        rounds=2 if smoke else 4,
        epochs=2 if smoke else 16,
        # Adam retraining at 1e-4 (the SGD-era 1/10 rule) leaves a pruned net ~4 points
        # below its dense accuracy after 16 epochs here; 1e-3 recovers most of it.
        learning_rate=1e-3,
        penalty=0.0,
        sparsity=0.92,
        num_pes=64,  # read by the balanced structure only
    )
    base.prune.layers = dict(
        fc1=dict(sparsity=0.92), fc2=dict(sparsity=0.91), fc3=dict(sparsity=0.74)
    )
    base.share.update(method="kmeans", bits=4, finetune_epochs=1 if smoke else 4)
    if "distill" in base:
        base.distill.weight = 0.0
    base.hw_loss = dict(hw_loss.DEFAULTS)

    config = (
        compare.section().defaults()
    )  # the fields: eie_jax/studies/compare/compare.py, section()
    config.base = base
    config.methods = dict(
        magnitude=dict(label="magnitude (Deep Compression)", overrides=dict()),
        balanced=dict(
            label="load-balanced (ESE, 64 PEs)",
            overrides=dict(prune=dict(structure="balanced")),
        ),
        n_m=dict(
            label="2:4 (50 %, reference)",
            overrides=dict(
                prune=dict(schedule="one_shot", distribution="per_layer", structure="n_m")
            ),
        ),
        # The ablation of hw_loss: the same learned masks without the hardware term.
        scores=dict(
            label="learned masks (no hw-loss)",
            overrides=dict(prune=dict(score="learned")),
        ),
        hw_loss=dict(
            label="hw-loss (learned masks + EIE cycles)",
            overrides=dict(
                prune=dict(score="learned"),
                hw_loss=dict(weight=3.0, act_temperature=0.25),
            ),
        ),
    )
    config.order = ("magnitude", "balanced", "n_m", "scores", "hw_loss")  # rows of the table
    if smoke:  # the learned-mask path runs in hw_loss; its ablation only in the full run
        del config.methods["scores"]
        config.order = tuple(m for m in config.order if m != "scores")
    config.quantizers = dict(
        kmeans=dict(share=dict(method="kmeans")),
        linear=dict(share=dict(method="linear")),
    )
    # The first PE count is the design point of the runs, the verdicts and the plot.
    config.num_pes = (64, 16)
    # The questions of the comparison, with their targets (eie_jax/studies/compare/report.py); the
    # printed targets are these numbers, e.g. --config.verdicts.balanced_load_efficiency.above=0.8.
    config.verdicts = dict(
        hw_loss_vs_magnitude=dict(
            kind="fewer_cycles",
            label="hw-loss vs magnitude",
            method="hw_loss",
            baseline="magnitude",
            fewer_cycles=0.2,
            max_points_lost=0.3,
        ),
        balanced_load_efficiency=dict(
            kind="load_efficiency", label="load-balanced", method="balanced", above=0.9
        ),
        kmeans_vs_linear=dict(kind="quantizer_difference", a="kmeans", b="linear"),
    )
    return config
