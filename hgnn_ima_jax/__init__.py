"""HGNN-IMA (IJCAI 2025) in JAX/Flax: multi-modal heterogeneous graph node classification.

Everything loads on first use, so `import hgnn_ima_jax` is cheap: `data_utils` imports
only the typed graph, and the command-line scripts can set up the process
(`hgnn_ima_jax.runtime`) before JAX is imported at all.
"""

import importlib

_LAZY = {
    "MMHN": "hgnn_ima_jax.graph",
    "DatasetError": "hgnn_ima_jax.graph",
    "Relation": "hgnn_ima_jax.graph",
    "Schema": "hgnn_ima_jax.graph",
    "fill_missing_modalities": "hgnn_ima_jax.graph",
    "load_checkpoint": "hgnn_ima_jax.checkpoint",
    "models": "hgnn_ima_jax.models",
    "train": "hgnn_ima_jax.train",
}

__all__ = list(_LAZY)


def __getattr__(name):
  if name in _LAZY:
    module = importlib.import_module(_LAZY[name])
    return module if _LAZY[name].endswith(name) else getattr(module, name)
  raise AttributeError(f"module 'hgnn_ima_jax' has no attribute {name!r}")
