"""Readers of the MHGAT published files (DOUBAN, IMDB, AMAZON): the node-type array, the rdf and the feature arrays.

Each checks what it reads against the id ranges of the node types and raises a `DatasetError`
naming the file, the field and the fix; `paper_datasets` assembles the graph from them.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from hgnn_ima_jax.graph import DatasetError

from . import files
from .files import check_array, load_npy, load_npz


@dataclasses.dataclass(frozen=True)
class FeatureFile:
  """One published feature array: which (type, modality) and how it is stored."""

  node_type: str
  modality: str
  filename: str
  fmt: str  # 'npy': (N, D) array; 'npz': key 'feature'; 'sparse': scipy.sparse.save_npz


def counts_from_node_types(path: str, names: tuple[str, ...]) -> tuple[int, ...]:
  """Nodes per type from a node-type-per-global-id array (IMDB's node_types.npy)."""
  nt = load_npy(path, "node types", "int", (None,))
  if len(nt) and (nt.min() < 0 or nt.max() >= len(names)):
    bad = int(nt.min() if nt.min() < 0 else nt.max())
    raise DatasetError(
        path,
        "node types",
        f"type id {bad} is unknown; expected 0..{len(names) - 1} ({', '.join(names)})",
        "store one type id per node",
    )
  if np.any(np.diff(nt) < 0):
    row = int(np.argmax(np.diff(nt) < 0)) + 1
    raise DatasetError(
        path,
        "node types",
        f"ids are not contiguous per type (type decreases at global id {row})",
        f"order nodes by type ({', '.join(names)}), each type one id range",
    )
  counts = np.bincount(nt, minlength=len(names))
  for t, c in zip(names, counts):
    if c == 0:
      raise DatasetError(path, "node types", f"node type {t!r} has no nodes", "use the published node_types.npy")
  return tuple(int(c) for c in counts)


def read_rdf(
    path: str, rdf_relations, num_nodes: dict[str, int], offsets: dict[str, int], node_types_path: str | None = None
) -> dict[int, np.ndarray]:
  """Reads (src, dst, relation) global-id rows; returns relation id -> local (src, dst) pairs.

  node_types_path: the node-type array the id ranges were counted from (IMDB's), if any. Global ids past its end
  are its fault (a file cut short shrinks every range after the cut) when the rdf's ids are every id from 0 to the
  largest, as in each published rdf; ids with gaps below them are the rdf's own (a stray row).
  """
  rdf = load_npy(path, "rdf", "int", (None, 3)).astype(np.int64)
  if len(rdf) == 0:
    raise DatasetError(
        path, "rdf", "has no rows: an empty relation file", "replace it with the published file " "(re-download it)"
    )
  total, top = sum(num_nodes.values()), int(rdf[:, :2].max())
  # the ids' set is only needed (and sorted) when some id lies past the counted nodes: a good file costs a max
  if node_types_path is not None and top >= total and _gapless_from_zero(rdf[:, :2], top):
    raise DatasetError(
        node_types_path,
        "node types",
        f"{total} entries, but {os.path.basename(path)} has global ids up to {top} ({top + 1} nodes)",
        "use the node_types.npy published with the rdf (one type id per node; re-download it)",
    )
  rel_ids = rdf[:, 2]
  known = (rel_ids >= 0) & (rel_ids < len(rdf_relations))
  if not known.all():
    row = int(np.argmin(known))
    desc = ", ".join(f"{k}: {s}->{d}" for k, (s, d) in enumerate(rdf_relations))
    raise DatasetError(
        path,
        "rdf column 2 (relation id)",
        f"relation id {rdf[row, 2]} at row {row} is unknown; expected {desc}",
        "keep only rows of the published relations",
    )
  out = {}
  for k, (s, d) in enumerate(rdf_relations):
    rows = np.flatnonzero(rel_ids == k)
    pairs = rdf[rows, :2]
    for col, t, end in ((0, s, "src"), (1, d, "dst")):
      lo, hi = offsets[t], offsets[t] + num_nodes[t]
      bad = (pairs[:, col] < lo) | (pairs[:, col] >= hi)
      if bad.any():
        j = int(np.argmax(bad))
        raise DatasetError(
            path,
            f"rdf row {int(rows[j])} (relation {k}: {s}->{d})",
            f"{end} id {int(pairs[j, col])} is outside the {t!r} id range {lo}..{hi - 1}",
            "use global ids in each node type's published contiguous range (movies/items first)",
        )
    out[k] = pairs - np.array([offsets[s], offsets[d]])
  return out


def _gapless_from_zero(ids: np.ndarray, top: int) -> bool:
  """Whether `ids` hold every id 0..top (each node of the graph appears in a published rdf)."""
  unique = np.unique(ids)
  return int(unique[0]) == 0 and len(unique) == top + 1


def read_feature(path: str, f: FeatureFile, rows: int) -> np.ndarray:
  """One published feature array as float32 (rows, D), its row count checked against the id range."""
  field = f"features[{f.node_type!r}][{f.modality!r}]"
  if f.fmt == "sparse":
    x = files.load_sparse_dense(path, field)
  elif f.fmt == "npz":
    x = check_array(load_npz(path, ["feature"])["feature"], path, field + " (key 'feature')", "float", (None, None))
  else:
    x = load_npy(path, field, "float", (None, None))
  if x.shape[0] != rows:
    raise DatasetError(
        path,
        field,
        f"{x.shape[0]} rows, but node type {f.node_type!r} has {rows} nodes in the rdf id ranges",
        "use the feature file from the same release as the rdf, labels and splits",
    )
  return x.astype(np.float32, copy=False)
