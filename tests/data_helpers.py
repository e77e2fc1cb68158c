"""Helpers for the data tests: writable copies of the real datasets, small feature files, error checks."""

import pathlib
import shutil

import numpy as np
import pytest
import scipy.sparse

from hgnn_ima_jax.data_utils.paper_datasets import PAPER_DATASETS
from hgnn_ima_jax.graph import DatasetError


def copy_dataset(shared: pathlib.Path, name: str, root: pathlib.Path) -> pathlib.Path:
  """Copies `<shared>/<name>/` to `<root>/<name>/` as writable files; returns the copy's directory."""
  dst = root / name
  dst.mkdir(parents=True, exist_ok=True)
  for f in (shared / name).iterdir():
    shutil.copyfile(f, dst / f.name)  # copyfile: the shared files are read-only, the copies must not be
  return dst


def write_features(root: pathlib.Path, name: str, dim: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
  """Writes every absent feature file of paper dataset `name` in its published format; returns them by file name."""
  spec = PAPER_DATASETS[name]
  counts = dict(zip(spec.node_types, spec.num_nodes or _imdb_counts(root / name)))
  rng = np.random.default_rng(seed)
  written = {}
  for f in spec.feature_files:
    path = root / name / f.filename
    if path.exists():
      continue
    x = rng.normal(size=(counts[f.node_type], dim))  # float64, as the published files are
    if f.fmt == "npy":
      np.save(path, x)
    elif f.fmt == "npz":
      np.savez(path, feature=x)
    else:
      scipy.sparse.save_npz(path, scipy.sparse.csr_matrix(x))
    written[f.filename] = x
  return written


def _imdb_counts(d: pathlib.Path):
  return tuple(np.bincount(np.load(d / "node_types.npy")))


def expect_error(fn, source, *fragments, cls=DatasetError):
  """Calls fn, expects `cls` whose one-line message names `source` and every fragment; returns it."""
  with pytest.raises(cls) as info:
    fn()
  err = info.value
  msg = str(err)
  assert "\n" not in msg, msg
  assert str(source) in err.source, (err.source, source)
  assert msg.startswith(err.source) and "Fix: " in msg, msg
  for frag in fragments:
    assert frag in msg, (frag, msg)
  return err


def with_overrides(config, **overrides):
  """`config` with dotted fields set: with_overrides(c, **{"batch.mode": "hgt"}) sets c.batch.mode."""
  for k, v in overrides.items():
    node = config
    *parents, leaf = k.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = v
  return config


# Without dropout, L_att and BatchNorm, a sampled batch holding every training target with every in-edge of
# K hops gives the full-batch loss and gradient, and trimming changes no gradient: such runs must train identically.
EXACT = {
    "model.dropout": 0.0,
    "model.fusion_input_dropout": 0.0,
    "model.fusion_score_dropout": 0.0,
    "loss.att_weight": 0.0,
    "loss.val_includes_att": False,
}
