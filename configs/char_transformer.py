"""Character transformer on Shakespeare, compressed the EIE way and the LLM-engine way.

    make text-data
    python -m experiments.lm_compress --config=configs/char_transformer.py --workdir=runs/lm_tf
    python -m experiments.lm_compress --config=configs/char_transformer.py:smoke --workdir=/tmp/s

Every method starts from one dense model: the published checkpoint
checkpoints/char_transformer.npz (its .json: sha256, command, config, curve), copied into
WORKDIR/dense. --retrain trains it instead (12,000 steps of 16 x 128 characters: 76 min
on 2 CPU cores in the published run), --retrain --publish also writes it to checkpoints/.
Sizes: 2 pre-LN blocks, d_model 256, 4 heads, MLP 1024 (ReLU), context 128.
"""

from eie_jax.studies.lm import study as lm_study


def base_config():
    """Every field at its default (eie_jax/studies/lm/study.py, section(): what each field means
    and allows): the split by work, the training budget, the study's methods in order."""
    return lm_study.section().defaults()


def get_config(arg=None):
    config = base_config()
    config.model = "char_transformer"
    config.model_kwargs = dict(
        context=128, d_model=256, num_layers=2, num_heads=4, d_mlp=1024, activation="relu"
    )
    trained(config, steps=12_000, warmup=200)
    config.train.checkpoint = "checkpoints/char_transformer"
    study(config)
    if arg == "smoke":
        smoke(config)
        config.model_kwargs.update(context=16, num_layers=1, d_model=128, d_mlp=256)
    elif arg:
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    return config


def trained(config, *, steps: int, warmup: int):
    """The schedule of the published dense model: counted steps with no time cap (a rerun
    with --retrain repeats it), the learning curve every 1,000 steps, and every score on
    the whole validation and test texts (all their non-overlapping windows)."""
    config.train.update(steps=steps, warmup=warmup, max_minutes=0.0, curve_every=1000)
    config.data.eval_windows = 100_000


def study(config):
    """The study's grid as shipped, sized to finish within an hour per model on 2 CPU cores
    (docs/language_models.md): every method; 3 draws of calibration windows for the
    calibrated ones; pruned_kmeans at 50 % and 2:4 with 3- and 4-bit tables. Its training
    stages see the same characters in every model, whatever its config.train.batch_size:
    4,800 windows of pruning per sparsity (as many for the dense_retrain control) and 800 of
    centroid fine-tuning, i.e. 300 and 50 steps of the transformer's 16 windows."""
    config.quantize.calibration_draws = 3
    config.compose.update(targets=("0.5", "2:4"), bits=(3, 4))
    config.prune.steps = 4_800 // config.train.batch_size
    config.share.finetune_steps = 800 // config.train.batch_size


def smoke(config):
    """Seconds, not minutes: a tiny run on a tiny text (the tests write their own)."""
    config.data.update(context=16, eval_windows=8)
    config.train.update(steps=20, batch_size=8, log_every=10, curve_every=0, checkpoint="")
    config.prune.update(sparsities=(0.5,), steps=6, frequency=2)
    config.share.update(finetune_steps=3)
    config.quantize.update(calibration_windows=8, bits=(4,), calibration_draws=1)
    config.compose.update(rules=("sparsegpt", "wanda"), targets=("0.5",), bits=(4,))
    config.generate.update(num_pes=16, calibration_windows=4, fidelity_chars=64, num_chars=6)
