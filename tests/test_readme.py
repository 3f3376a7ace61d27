"""The README's Python example runs as written, from a directory outside the project.

The example's code block is cut out of README.md and run by the project's Python in a
temporary directory (so `import eie_jax` must work as installed), on a small synthetic
Fashion-MNIST-format dataset (EIE_JAX_DATA_DIR) and a limited number of examples
(EIE_JAX_EXAMPLE_LIMIT): the README cannot drift from the API.
"""

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT
from tests.synthetic import write_idx_dataset


def readme_block(heading: str) -> str:
    """The first ```python block after `heading` in README.md."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_python_example_runs_from_another_directory(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(readme_block("## Using eie_jax from Python"))
    data_dir = write_idx_dataset(tmp_path / "data", n_train=640, n_test=200)
    env = dict(os.environ, EIE_JAX_DATA_DIR=data_dir, EIE_JAX_EXAMPLE_LIMIT="200")
    env.pop("PYTHONPATH", None)
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    accuracy = dict(
        re.findall(r"^(dense|pruned to 10 %|4-bit shared|on EIE) +([\d.]+)$", out, re.M)
    )
    assert set(accuracy) == {"dense", "pruned to 10 %", "4-bit shared", "on EIE"}, out
    assert float(accuracy["on EIE"]) >= float(accuracy["4-bit shared"]) - 0.05
    for layer in ("fc1", "fc2", "fc3"):
        assert re.search(rf"^\| {layer} \| \d+ x \d+ \|", out, re.M), out  # the EIE table
    assert "P+Q+H" in out and "Per input (200 run" in out
