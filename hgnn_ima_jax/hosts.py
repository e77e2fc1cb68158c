"""Host copies of arrays that may span several processes (multi-process runs, `hgnn_ima_jax.distributed`)."""

from __future__ import annotations

import jax
import numpy as np


def _leaf(x):
  if not isinstance(x, jax.Array) or x.is_fully_addressable:
    return jax.device_get(x)
  if x.is_fully_replicated:  # every process holds all of it: read the local copy, no communication
    return np.asarray(x.addressable_data(0))
  from jax.experimental import multihost_utils

  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def host(tree):
  """`jax.device_get` that also reads arrays spanning other processes' devices (replicated: the local copy)."""
  return jax.tree.map(_leaf, tree)
