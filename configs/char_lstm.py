"""Character LSTM on Shakespeare, compressed the EIE way and the LLM-engine way.

    make text-data
    python -m experiments.lm_compress --config=configs/char_lstm.py --workdir=runs/lm_lstm
    python -m experiments.lm_compress --config=configs/char_lstm.py:smoke --workdir=/tmp/s

2 layers of hidden 256 (512 trained too slowly on 2 CPU cores; README, Character language
models), each layer's four gates one MaskedLinear over [x_t; h_{t-1}] -> 4H (EIE's NT-LSTM
layout with the bias as a column). Same split, study and budgets as
configs/char_transformer.py.
"""

from configs import char_transformer


def get_config(arg=None):
    config = char_transformer.base_config()
    config.model = "char_lstm"
    config.model_kwargs = dict(embed_dim=128, hidden=256, num_layers=2, forget_bias=1.0)
    config.train.update(batch_size=32, learning_rate=3e-3)
    if arg == "smoke":
        char_transformer.smoke(config)
        config.model_kwargs.update(embed_dim=128, hidden=128)  # inputs: multiples of 128
    elif arg:
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    return config
