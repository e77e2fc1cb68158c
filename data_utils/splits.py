"""Train/val/test splits other than a dataset's published one.

The paper (Sec. 5.3) splits every dataset 20/10/70. DOUBAN's and AMAZON's published split
files are 20/10/70; IMDB's (HAN's `train_val_test_idx1.npz`, which the authors' code reads)
is 855/855/2,568 = 20/20/60. `stratified_split` draws a seeded split that keeps each class's
proportions; `resplit` puts one on a graph.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hgnn_ima_jax.graph import MMHN, SPLITS

SPLIT_RULES = ("file", "stratified")
DEFAULT_FRACTIONS = (0.2, 0.1, 0.7)  # the paper's 20/10/70 (config.split_fractions)
DEFAULT_SEED = 0  # config.split_seed


def check_fractions(fractions) -> tuple[float, float, float]:
  """Three positive train/val/test fractions summing to 1, or a one-line ValueError."""
  try:
    f = tuple(float(x) for x in fractions)
  except (TypeError, ValueError):
    f = ()
  if len(f) != 3 or min(f) <= 0 or abs(sum(f) - 1.0) > 1e-6:
    raise ValueError(
        f"split_fractions={fractions!r}: give three positive train/val/test fractions summing to 1, "
        "e.g. (0.2, 0.1, 0.7)"
    )
  return f


def stratified_split(labels: np.ndarray, fractions=(0.2, 0.1, 0.7), seed: int = 0) -> dict[str, np.ndarray]:
  """Per class, a seeded permutation cut at round(f_train·n_c) and round(f_val·n_c); the rest is test.

  Returns sorted local ids per split; every class keeps its proportion in every split (up to
  rounding), and the same (labels, fractions, seed) always give the same split.
  """
  f = check_fractions(fractions)
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  parts = {s: [] for s in SPLITS}
  for c in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == c))
    n_train, n_val = int(round(f[0] * len(idx))), int(round(f[1] * len(idx)))
    parts["train"].append(idx[:n_train])
    parts["val"].append(idx[n_train : n_train + n_val])
    parts["test"].append(idx[n_train + n_val :])
  return {s: np.sort(np.concatenate(v)).astype(np.int64) for s, v in parts.items()}


def resplit(graph: MMHN, rule: str, fractions=(0.2, 0.1, 0.7), seed: int = 0) -> MMHN:
  """`graph` with its split replaced by `rule` ('file': unchanged; 'stratified'); validated."""
  if rule not in SPLIT_RULES:
    raise ValueError(f"split={rule!r}: use one of {SPLIT_RULES}")
  if rule == "file":
    return graph
  f = check_fractions(fractions)
  provenance = dict(graph.provenance, split=f"stratified {f[0]:g}/{f[1]:g}/{f[2]:g}, seed {int(seed)}")
  return dataclasses.replace(graph, splits=stratified_split(graph.labels, f, seed), provenance=provenance).validate()
