"""Console scripts (pyproject.toml [project.scripts]): each runs a script module as `__main__`.

`hgnn-ima-train ...` is `python -m hgnn_ima_jax.experiments.train ...`: the module's own
`__main__` block runs (the allocator re-execution first, then its flags), so a console script
and the file behave the same.
"""

import runpy


def _run(module: str):
  runpy.run_module(module, run_name="__main__", alter_sys=True)


def train():
  _run("hgnn_ima_jax.experiments.train")


def table2():
  _run("hgnn_ima_jax.experiments.table2")


def ablation():
  _run("hgnn_ima_jax.experiments.ablation")


def depth_sweep():
  _run("hgnn_ima_jax.experiments.depth_sweep")


def visualize():
  _run("hgnn_ima_jax.experiments.visualize")


def check():
  _run("hgnn_ima_jax.data_utils.check")


def download():
  _run("hgnn_ima_jax.data_utils.download")


def synthetic():
  """The generator's probe command, from the knobs of the graph `train.py --dataset=synthetic` builds."""
  from hgnn_ima_jax.data_utils import synthetic_probes
  from hgnn_ima_jax.data_utils.from_config import changed_synthetic_knobs

  from .configs import get_config

  synthetic_probes.main(
      defaults=changed_synthetic_knobs(get_config("synthetic")), defaults_name="train.py's synthetic graph"
  )
