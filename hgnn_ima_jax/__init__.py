"""HGNN-IMA (IJCAI 2025) in JAX/Flax: multi-modal heterogeneous graph node classification.

The typed graph is imported eagerly (it is light); models, training and checkpoint
helpers load on first use so `import hgnn_ima_jax` stays cheap and `data_utils`
can import the graph types without pulling in the training stack.
"""

import importlib

from hgnn_ima_jax.graph import MMHN, DatasetError, Relation, Schema, fill_missing_modalities

_LAZY = {
    "load_checkpoint": "hgnn_ima_jax.checkpoint",
    "models": "hgnn_ima_jax.models",
    "train": "hgnn_ima_jax.train",
}

__all__ = ["MMHN", "DatasetError", "Relation", "Schema", "fill_missing_modalities", *_LAZY]


def __getattr__(name):
  if name in _LAZY:
    module = importlib.import_module(_LAZY[name])
    return module if _LAZY[name].endswith(name) else getattr(module, name)
  raise AttributeError(f"module 'hgnn_ima_jax' has no attribute {name!r}")
