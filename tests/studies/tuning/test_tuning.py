"""The tuned configs validate, and the tuning table summarises runs per variant over seeds."""

import json
import os

import numpy as np
import pytest

from configs import lenet5, lenet5_60x, lenet_300_100, lenet_300_100_64x
from eie_jax.studies.compress.config import validate_config, weight_bits
from eie_jax.studies.tuning import tuning
from eie_jax.utils.cli import UserError
from tests.helpers import png_size


@pytest.mark.parametrize("arg", [None, "smoke"])
def test_64x_config_validates_and_differs_only_where_it_says(arg):
    config = lenet_300_100_64x.get_config(arg)
    validate_config(config)
    base = lenet_300_100.get_config(arg)
    changed = tuning.config_overrides(config.to_dict(), base.to_dict())
    assert set(changed) <= {
        "prune.layers.fc1.sparsity", "prune.layers.fc2.sparsity", "prune.layers.fc3.sparsity",
        "prune.epochs", "share.layer_bits.fc1", "share.layer_bits.fc2", "share.layer_bits.fc3",
        "share.finetune_epochs", "share.learning_rate", "storage.index_bits",
    }  # fmt: skip
    assert changed, "the 64x config must change something"
    assert weight_bits(config, "fc1") < 4  # fc1, most of the storage, below EIE's 4 bits


@pytest.mark.parametrize("arg", [None, "smoke"])
def test_lenet5_60x_config_validates_and_keeps_the_lenet5_recipe(arg):
    config = lenet5_60x.get_config(arg)
    validate_config(config)
    changed = tuning.config_overrides(config.to_dict(), lenet5.get_config(arg).to_dict())
    assert {k.split(".")[0] for k in changed} == {"prune", "share", "storage"}
    assert weight_bits(config, "fc1") == 2 and weight_bits(config, "conv1") == 4


def test_64x_config_rejects_a_bad_override():
    config = lenet_300_100_64x.get_config("smoke")
    config.share.layer_bits.fc1 = 0
    with pytest.raises(UserError, match="share.layer_bits.fc1"):
        validate_config(config)


def _fake_run(root, name, seed, dense, compressed, ratio, lr=1e-3):
    path = os.path.join(root, name)
    os.makedirs(path)
    report = dict(
        dense_accuracy=dense, compressed_accuracy=compressed, eie_accuracy=compressed,
        compression_ratio=ratio, compression_ratio_eie=6.0, seconds=dict(total=10.0 * seed),
        config=dict(seed=seed, train=dict(learning_rate=lr, epochs=20)),
    )  # fmt: skip
    with open(os.path.join(path, "report.json"), "w") as f:
        json.dump(report, f)
    return path


def test_summarize_groups_seeds_and_takes_population_std(tmp_path):
    root = str(tmp_path)
    runs = [
        _fake_run(root, "a_seed0", 0, 0.90, 0.89, 60.0),
        _fake_run(root, "a_seed1", 1, 0.91, 0.905, 70.0),
        _fake_run(root, "b", 0, 0.90, 0.88, 80.0, lr=3e-4),
    ]
    reference = dict(seed=5, train=dict(learning_rate=1e-3, epochs=20))
    rows = tuning.summarize([tuning.load_run(p) for p in runs], reference)
    a, b = rows
    assert (a["variant"], a["seeds"], b["variant"]) == ("a", [0, 1], "b")
    assert a["ratio_mean"] == pytest.approx(65.0) and a["ratio_std"] == pytest.approx(5.0)
    assert a["delta"] == pytest.approx([-1.0, -0.5]) and a["delta_mean"] == pytest.approx(-0.75)
    assert np.isclose(a["compressed_std"], np.std([89.0, 90.5]))
    assert a["overrides"] == {} and b["overrides"] == {"train.learning_rate": 3e-4}
    table = tuning.to_markdown(rows)
    assert "| a | - | 0, 1 |" in table and "train.learning_rate=0.0003" in table
    front = tuning.pareto_figure(rows, str(tmp_path / "p.png"), "t")
    assert png_size(front) == (840, 552)  # 7.0 x 4.6 inches at 120 dpi
