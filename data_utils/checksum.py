"""A content hash of an `MMHN`: the benchmark checks that every worker read the same graph, and the
tests pin the synthetic generator's arrays with it."""

from __future__ import annotations

import hashlib

import numpy as np

from hgnn_ima_jax.graph import MMHN


def graph_checksum(g: MMHN) -> str:
  """sha256 of everything a training step reads: types, counts, edges, features (float32), labels, splits."""
  h = hashlib.sha256()

  def add(tag: str, x):
    x = np.ascontiguousarray(x)
    h.update(f"{tag}:{x.dtype.str}:{x.shape};".encode())
    h.update(x.reshape(-1).view(np.uint8) if x.size else b"")  # the buffer itself: no copy of a large feature matrix

  add("node_types", np.array(g.node_types, dtype=str))
  add("num_nodes", np.array([g.num_nodes[t] for t in g.node_types], np.int64))
  add("modalities", np.array(g.modalities, dtype=str))
  for r in g.relations:
    add(f"relation/{r.src}/{r.name}/{r.dst}", np.asarray(g.edges[r.name], np.int64))
  for t in g.node_types:
    for m in g.modalities:
      add(f"features/{t}/{m}", np.asarray(g.features[t][m], np.float32))
  add(f"labels/{g.target_type}/{int(g.num_classes)}", np.asarray(g.labels, np.int64))
  for s in ("train", "val", "test"):
    add(f"splits/{s}", np.asarray(g.splits[s], np.int64))
  return h.hexdigest()
