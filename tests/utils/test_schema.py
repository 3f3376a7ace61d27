"""Config schemas: defaults, unknown fields with the closest name, values out of range,
tables of per-name entries; every shipped config passes its entry point's schema."""

import glob
import os

import pytest

from configs import (
    bench_crossover,
    char_lstm,
    char_transformer,
    compare_lenet_300_100,
    eie_benchmarks,
    fig_eie_vs_cpu,
    lenet5,
    lenet5_60x,
    lenet_300_100,
    lenet_300_100_64x,
    llm_scale,
)
from eie_jax import sweep
from eie_jax.eie import benchmarks
from eie_jax.studies.compare import compare
from eie_jax.studies.compress import config as run_config
from eie_jax.studies.llm_scale import projection as llm_scale_lib
from eie_jax.studies.lm import study as lm_study
from eie_jax.utils import schema
from eie_jax.utils.cli import UserError
from tests.helpers import ROOT

SECTION = schema.Section(
    dict(
        seed=schema.integer(0, lo=0),
        rate=schema.number(1e-3, 0, above=True),
        method=schema.choice("kmeans", ("kmeans", "linear")),
        widths=schema.sequence([4, 8], schema.integer(4, 1, 8), increasing=True),
        inner=schema.Section(dict(bits=schema.integer(4, 1, 8), name=schema.string("a"))),
        per_layer=schema.Table(
            schema.Section(dict(bits=schema.integer(4, 1, 8), keep=schema.fraction(0.5))),
            partial=True,
        ),
    )
)


def test_defaults_pass_their_own_check():
    config = SECTION.defaults()
    assert config.seed == 0 and config.inner.bits == 4 and dict(config.per_layer) == {}
    schema.check(config, SECTION)


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("seed", -1, "config.seed=-1: allowed: an int >= 0"),
        ("seed", True, "config.seed=True: allowed: an int >= 0"),
        ("rate", 0.0, "config.rate=0.0: allowed: a number > 0"),
        ("rate", float("nan"), "config.rate=nan: allowed: a number > 0"),
        ("method", "kmean", "config.method='kmean': allowed: 'kmeans', 'linear'"),
        ("widths", [8, 4], "config.widths=[8, 4]: allowed: a nonempty list, each an int in 1..8, "
         "increasing"),
        ("widths", [], "config.widths=[]: allowed: a nonempty list"),
        ("inner.bits", 9, "config.inner.bits=9: allowed: an int in 1..8"),
        ("per_layer", {"fc1": {"keep": 1.5}}, "config.per_layer.fc1.keep=1.5: allowed: a number "
         "in [0, 1]"),
    ],
)  # fmt: skip
def test_a_value_out_of_range_is_named_with_what_is_allowed(path, value, message):
    config = SECTION.defaults()
    *parents, leaf = path.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(UserError) as e:
        schema.check(config, SECTION)
    assert str(e.value).startswith(message)


@pytest.mark.parametrize(
    "tree, message",
    [
        (dict(sed=1), "config.sed: no such field; did you mean 'seed'? (fields: inner, method,"),
        (dict(inner=dict(bist=2)), "config.inner.bist: no such field; did you mean 'bits'?"),
        (dict(zzz=1), "config.zzz: no such field (fields: "),
        (dict(per_layer=dict(fc1=dict(kep=0.1))), "config.per_layer.fc1.kep: no such field; "
         "did you mean 'keep'?"),
    ],
)  # fmt: skip
def test_an_unknown_field_is_named_with_the_closest_one(tree, message):
    config = SECTION.defaults()
    config.unlock()
    for key, value in tree.items():
        if isinstance(value, dict) and key in config:
            config[key].unlock()
            config[key].update(value)
        else:
            config[key] = value
    with pytest.raises(UserError) as e:
        schema.check(config, SECTION)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_missing_field_is_named_and_a_partial_table_entry_is_not():
    config = SECTION.defaults().to_dict()
    config["per_layer"] = {"fc1": {"bits": 2}}  # partial: keep takes the layer's default
    schema.check(config, SECTION)
    del config["inner"]["name"]
    with pytest.raises(UserError, match=r"^config.inner.name: missing"):
        schema.check(config, SECTION)


def test_choice_options_are_read_when_checked():
    registry = {"a": 1}
    field = schema.choice("a", lambda: sorted(registry))
    assert not field.ok("b")
    registry["b"] = 2  # registered after the schema was built
    assert field.ok("b") and str(field.allowed) == "'a', 'b'"


SHIPPED = [
    (run_config.validate_config, m.get_config, arg)
    for m in (lenet_300_100, lenet5, lenet5_60x, lenet_300_100_64x)
    for arg in (None, "smoke")
] + [
    (lm_study.validate, m.get_config, arg)
    for m in (char_transformer, char_lstm)
    for arg in (None, "smoke")
] + [
    (check, get, arg)
    for check, get in (
        (compare.run_configs, compare_lenet_300_100.get_config),
        (llm_scale_lib.validate, llm_scale.get_config),
        (lambda c: schema.check(c, benchmarks.BENCH_EIE), eie_benchmarks.get_config),
        (lambda c: schema.check(c, benchmarks.FIG_EIE_VS_CPU), fig_eie_vs_cpu.get_config),
        (lambda c: schema.check(c, benchmarks.CROSSOVER), bench_crossover.get_config),
    )
    for arg in (None, "smoke")
]  # fmt: skip


@pytest.mark.parametrize("check, get_config, arg", SHIPPED)
def test_every_shipped_config_passes_its_schema(check, get_config, arg):
    check(get_config(arg))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "sweeps", "*.py"))))
@pytest.mark.parametrize("arg", [None, "smoke"])
def test_every_shipped_sweep_passes_its_schema(path, arg):
    config, axes = sweep.load_sweep_file(path if arg is None else f"{path}:{arg}")
    assert sweep.check_config(config, axes)  # the points, each checked
