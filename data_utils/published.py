"""What the loaders of published-format datasets share: option checks, the absent-file error, generated
stand-ins, split files and the authors' edge symmetrisation."""

from __future__ import annotations

import pathlib

import numpy as np

from hgnn_ima_jax.choices import CHOICES
from hgnn_ima_jax.graph import MMHN

from .files import MissingFilesError, check_array, load_npz
from .generated import generate_features

FILL_RULES = CHOICES["missing_fill"]
FEATURE_MODES = CHOICES["features"]
SPLIT_KEYS = {"train": "train_idx", "val": "val_idx", "test": "test_idx"}


def check_options(features: str, missing_fill: str) -> None:
  """Rejects unknown `features` / `missing_fill` values."""
  if features not in FEATURE_MODES:
    raise ValueError(f"features={features!r}: is not a feature mode. Fix: use one of {', '.join(FEATURE_MODES)}")
  if missing_fill not in FILL_RULES:
    raise ValueError(f"missing_fill={missing_fill!r}: is not a fill rule. Fix: use one of {', '.join(FILL_RULES)}")


def dedup(pairs: np.ndarray) -> np.ndarray:
  """set() of (src, dst) rows, in sorted order so the result is deterministic."""
  return np.unique(np.asarray(pairs, np.int64).reshape(-1, 2), axis=0)


def reverse(pairs: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(pairs[:, ::-1])


def require_files(
    root: pathlib.Path,
    absent_topology: list[str],
    absent_features: list[str],
    features: str,
    fix_topology: str,
    fix_features: str,
) -> None:
  """Raises one MissingFilesError naming every absent file that the request needs.

  fix_features says how to obtain the absent feature files; '' when fix_topology obtains them too.
  """
  generated = "pass features='generated' (--features=generated) to generate stand-ins (not comparable with the paper)"
  if absent_topology:
    if all((root.parent / pathlib.Path(f).name).is_file() for f in absent_topology):  # --data_dir=<the dataset's dir>
      raise MissingFilesError(
          str(root),
          absent_topology,
          "published",
          f"{root.parent} holds these files: give its parent, --data_dir={root.parent.parent} (data_dir holds one "
          "directory per dataset)",
      )
    need_features = features == "real" and absent_features
    listed = absent_topology + (absent_features if need_features else [])
    fix = fix_topology + (
        f"; the feature files: {fix_features}, or {generated}" if need_features and fix_features else ""
    )
    raise MissingFilesError(str(root), listed, "published", fix)
  if features == "real" and absent_features:
    raise MissingFilesError(str(root), absent_features, "features", f"{fix_features}, or {generated}")


def add_generated(graph: MMHN, wanted: dict[tuple[str, str], int], seed: int, absent: list[str]) -> None:
  """Adds generated arrays for `wanted` to `graph` and records it in provenance."""
  for (t, m), x in generate_features(graph, wanted, seed).items():
    graph.features[t][m] = x
    graph.provenance["features"][f"{t}/{m}"] = "generated"
  graph.provenance["feature_seed"] = int(seed)
  graph.provenance["missing_feature_files"] = list(absent)


def read_splits(path: str) -> dict[str, np.ndarray]:
  """train/val/test ids from an .npz with keys train_idx, val_idx, test_idx."""
  raw = load_npz(path, list(SPLIT_KEYS.values()))
  return {s: check_array(raw[k], path, f"splits[{s!r}] ({k})", "int", (None,)) for s, k in SPLIT_KEYS.items()}
