"""A finished training run, from its directory alone: `load_run(workdir)` for notebooks and scripts."""

from __future__ import annotations

from hgnn_ima_jax.data_utils import load_for_config
from hgnn_ima_jax.graph import MMHN
from hgnn_ima_jax.restore import LoadedRun, load_checkpoint
from hgnn_ima_jax.run_dir import read_config


def load_run(workdir: str, data: MMHN | None = None, *, unfinished: bool = False) -> LoadedRun:
  """`restore.load_checkpoint` on the run's own dataset, rebuilt from its saved config (pass `data` to skip that);
  `unfinished`: a run without its final checkpoint opens each seed's best epoch so far."""
  data = load_for_config(read_config(workdir)) if data is None else data
  return load_checkpoint(workdir, data, unfinished=unfinished)
