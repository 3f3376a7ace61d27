"""Config-driven sweeps: expand axes into points, run them batched and resumable, plot them.

A sweep config file defines `get_config(arg)` (the base ConfigDict) and `get_sweep(arg)`
(the axes), in the spirit of big_vision's config/hyper files:

    def get_sweep(arg=None):
      return product(sweep('layer', ['Alex-7', 'VGG-7']), sweep('eie.fifo_depth', [1, 8]))

- axes.py: the axes (`sweep`, `product`, `zip_`) and their check against the config;
- store.py: DIR/results.<process>.jsonl and DIR/sweep_config.json, so a rerun skips
  finished points (any process's) and a changed config is refused;
- eie_points.py, batching.py: EIE design points, batched into few compiled calls
  (`config.runner == 'eie'`); layers from Table III or of one's own shape;
- runners.py: `run_sweep` (EIE points, or one training run per point with
  `config.runner == 'train'`), under the workdir's lock;
- multihost.py: one sweep over several processes and hosts (jax.distributed): training
  points split by index, EIE points sharded over every process's devices;
- plot.py: the PNG figures the config declares in `config.plots` (options: PLOT_OPTIONS).
"""

from eie_jax.compression.sparse_format import entry_counts
from eie_jax.sweep.axes import (
    Overrides,
    check_not_swept,
    expand,
    load_axes,
    load_sweep_file,
    point_key,
    product,
    sweep,
    zip_,
)
from eie_jax.sweep.batching import CHUNK_POINTS, evaluate_cycles, iter_cycles
from eie_jax.sweep.eie_points import (
    METRICS,
    EIEHost,
    EIEPoint,
    eie_base_config,
    eie_config_of,
    eie_metrics,
    evaluate_eie_points,
    iter_eie_metrics,
    layer_spec_of,
    prepare_eie_points,
    table_iii_sweep,
)
from eie_jax.sweep.plot import PLOT_OPTIONS, check_plot, figure, plot_sweep
from eie_jax.sweep.runners import RUNNERS, check_config, resolve_fn, run_sweep
from eie_jax.sweep.store import (
    PRESENTATION_FIELDS,
    RESULTS_FILE,
    SWEEP_FILE,
    Progress,
    ResultStore,
    load_results,
    load_sweep_meta,
    results_files,
)
from eie_jax.utils.workdir import apply_overrides

__all__ = [
    "CHUNK_POINTS", "EIEHost", "EIEPoint", "METRICS", "Overrides", "PLOT_OPTIONS",
    "PRESENTATION_FIELDS", "Progress", "RESULTS_FILE", "RUNNERS", "ResultStore", "SWEEP_FILE",
    "results_files", "apply_overrides", "check_config", "check_not_swept", "check_plot",
    "eie_base_config", "eie_config_of",
    "eie_metrics", "entry_counts", "evaluate_cycles", "evaluate_eie_points", "expand",
    "figure", "iter_cycles", "iter_eie_metrics", "layer_spec_of", "load_axes", "load_results",
    "load_sweep_file", "load_sweep_meta", "plot_sweep", "point_key", "prepare_eie_points",
    "product", "resolve_fn", "run_sweep", "sweep", "table_iii_sweep", "zip_",
]  # fmt: skip
