"""Character transformer on Shakespeare, compressed the EIE way and the LLM-engine way.

    make text-data
    python -m experiments.lm_compress --config=configs/char_transformer.py --workdir=runs/lm_tf
    python -m experiments.lm_compress --config=configs/char_transformer.py:smoke --workdir=/tmp/s

The dense model is trained once and checkpointed (WORKDIR/dense); every method starts from it.
Sizes: 2 pre-LN blocks (4 trained too slowly on 2 CPU cores; README, Character language
models), d_model 256, 4 heads, MLP 1024 (ReLU), context 128.
"""

import ml_collections

# Split by work (no work in two splits); every other *_gut.txt work is training text.
VALIDATION_WORKS = ("julius_caesar", "twelfth_night")
TEST_WORKS = ("macbeth", "much_ado_about_nothing")

# Every method of the study (eie_jax/lm_study.py runs them in this order).
METHODS = (
    "kmeans_layer",  # per-layer k-means (EIE), post-training and fine-tuned, each sparsity
    "kmeans_row",  # per-output-row 16 / 8-entry codebooks (SqueezeLLM-like), dense
    "rtn_sym_channel", "rtn_asym_channel", "rtn_sym_g32", "rtn_asym_g32",
    "rtn_sym_g128", "rtn_asym_g128",
    "gptq_g128", "awq_g128",
    "dense_retrain",  # control: the dense model trained on as long as pruning retrains
)  # fmt: skip


def base_config():
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = dict(
        data_dir="data/shakespeare",
        validation_works=VALIDATION_WORKS,
        test_works=TEST_WORKS,
        context=128,
        eval_windows=256,  # evenly spaced windows of each split that every method is scored on
    )
    config.train = dict(
        steps=1000,
        batch_size=16,
        learning_rate=2e-3,
        weight_decay=0.0,
        warmup=50,
        # Time budget of dense training: the cosine decay follows max(step / steps,
        # elapsed / budget), so that the run ends on time on a loaded machine (0: none).
        max_minutes=20.0,
        log_every=100,
    )
    # Gradual magnitude pruning of every FC matrix from the dense model (Zhu & Gupta).
    # The schedule's steps are cut, as in dense training, by a time budget per sparsity.
    config.prune = dict(
        sparsities=(0.5, 0.7, 0.9), steps=300, frequency=10, learning_rate=5e-4, max_minutes=4.0
    )
    # Per-layer k-means (Deep Compression / EIE): codebook entry 0 is the pruned zero;
    # centroid fine-tuning (with the biases, LayerNorms and embedding) per bit width.
    config.share = dict(init="linear", finetune_steps=100, learning_rate=1e-4, max_minutes=1.5)
    config.quantize = dict(methods=METHODS, bits=(4, 3), calibration_windows=128)
    config.storage = dict(index_bits=4, eie_num_pes=64, eie_index_bits=4)
    # Batch-1 generation on EIE (experiments.generate; eie_jax/decode.py): the dense model
    # magnitude-pruned per layer and shared into 2**bits k-means entries, post-training.
    config.generate = dict(
        sparsity=0.5, bits=4, num_pes=64, fifo_depth=8,
        calibration_windows=32,  # training windows the fixed-point formats are fitted on
        bias_correction=True,  # biases absorb the mean truncation error (decode.calibrate)
        fidelity_chars=2000, fidelity_batch=16,  # teacher-forced test characters
        num_chars=500, prompt="ROMEO:\n", temperature=0.8,
    )  # fmt: skip
    return config


def get_config(arg=None):
    config = base_config()
    config.model = "char_transformer"
    config.model_kwargs = dict(
        context=128, d_model=256, num_layers=2, num_heads=4, d_mlp=1024, activation="relu"
    )
    if arg == "smoke":
        smoke(config)
        config.model_kwargs.update(context=16, num_layers=1, d_model=128, d_mlp=256)
    elif arg:
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    return config


def smoke(config):
    """Seconds, not minutes: a tiny run on a tiny text (the tests write their own)."""
    config.data.update(context=16, eval_windows=8)
    config.train.update(steps=20, batch_size=8, log_every=10)
    config.prune.update(sparsities=(0.5,), steps=6, frequency=2)
    config.share.update(finetune_steps=3)
    config.quantize.update(calibration_windows=8, bits=(4,))
    config.generate.update(num_pes=16, calibration_windows=4, fidelity_chars=64, num_chars=6)
