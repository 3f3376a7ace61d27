"""Character LSTM on Shakespeare, compressed the EIE way and the LLM-engine way.

    make text-data
    python -m experiments.lm_compress --config=configs/char_lstm.py --workdir=runs/lm_lstm
    python -m experiments.lm_compress --config=configs/char_lstm.py:smoke --workdir=/tmp/s

Every method starts from one dense model: the published checkpoint checkpoints/char_lstm.npz
(its .json: sha256, command, config, curve), copied into WORKDIR/dense. --retrain trains it
instead (8,000 steps of 32 x 128 characters, 93 min on 2 CPU cores), --retrain
--publish also writes it to checkpoints/.
Sizes: 2 layers of hidden 384 over a 128-wide embedding, each layer's four gates one
MaskedLinear over [x_t; h_{t-1}] -> 4H (EIE's NT-LSTM layout with the bias as a column).
Same split and study as configs/char_transformer.py.
"""

from configs import char_transformer


def get_config(arg=None):
    config = char_transformer.base_config()
    config.model = "char_lstm"
    config.model_kwargs = dict(embed_dim=128, hidden=384, num_layers=2, forget_bias=1.0)
    config.train.update(batch_size=32, learning_rate=3e-3)
    char_transformer.trained(config, steps=8_000, warmup=200)
    config.train.checkpoint = "checkpoints/char_lstm"
    char_transformer.study(config)  # after its batch size: half the transformer's steps
    if arg == "smoke":
        char_transformer.smoke(config)
        config.model_kwargs.update(embed_dim=128, hidden=128)  # inputs: multiples of 128
    elif arg:
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    return config
