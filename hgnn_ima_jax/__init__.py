"""HGNN-IMA (IJCAI 2025) in JAX/Flax: multi-modal heterogeneous graph node classification.

Everything loads on first use, so `import hgnn_ima_jax` is cheap: `data_utils` imports
only the typed graph and the JAX-free config tables, and the command-line scripts can set up
the process (`hgnn_ima_jax.runtime`) before JAX is imported at all.

Sub-packages: `hgnn_ima_jax.data_utils` (loaders, formats, generator; `load_for_config`) and
`hgnn_ima_jax.experiments` (the scripts and their configs; `experiments.runs.load_run` opens a
finished run with its dataset; `hgnn_ima_jax.load_checkpoint(workdir)` opens one without it, to predict on
graphs you pass). The library modules never import either (tests/test_imports.py). In the repository they are the
top-level directories data_utils/ and experiments/, which pyproject.toml maps into this package;
an installed wheel has them inside it.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys

_LAZY = {
    "MMHN": "hgnn_ima_jax.graph",
    "DatasetError": "hgnn_ima_jax.graph",
    "Relation": "hgnn_ima_jax.graph",
    "Schema": "hgnn_ima_jax.graph",
    "fill_missing_modalities": "hgnn_ima_jax.graph",
    "models": "hgnn_ima_jax.models",
    "train": "hgnn_ima_jax.train",
    "load_checkpoint": "hgnn_ima_jax.restore",
}

__all__ = list(_LAZY)


def __dir__():
  """The lazy names too, so that a notebook's tab completion offers load_checkpoint, MMHN, train..."""
  return sorted(set(globals()) | set(_LAZY))


def __getattr__(name):
  if name in _LAZY:
    module = importlib.import_module(_LAZY[name])
    return module if _LAZY[name].endswith(name) else getattr(module, name)
  raise AttributeError(f"module 'hgnn_ima_jax' has no attribute {name!r}")


class _CheckoutFinder(importlib.abc.MetaPathFinder):
  """Maps hgnn_ima_jax.data_utils / .experiments to the repository's directories beside this package.

  Why: pyproject.toml's package-dir does this for wheels and editable installs, but a checkout is
  also imported without being installed (the tests, `python -m ...` from the repository root), and
  next to an install of another checkout. Then the sub-packages must come from the same checkout
  as this package, which this finder guarantees.
  """

  def __init__(self, mapping: dict[str, str]):
    self.mapping = mapping

  def find_spec(self, name, path=None, target=None):
    del path, target
    where = self.mapping.get(name)
    if where is None:
      return None
    return importlib.util.spec_from_file_location(
        name, os.path.join(where, "__init__.py"), submodule_search_locations=[where]
    )


def _map_checkout_directories():
  here = os.path.dirname(os.path.abspath(__file__))
  root = os.path.dirname(here)
  mapping = {f"{__name__}.{sub}": os.path.join(root, sub) for sub in ("data_utils", "experiments")}
  in_checkout = os.path.isfile(os.path.join(root, "pyproject.toml")) and all(
      os.path.isfile(os.path.join(d, "__init__.py")) and not os.path.isdir(os.path.join(here, os.path.basename(d)))
      for d in mapping.values()
  )
  if in_checkout and not any(isinstance(f, _CheckoutFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _CheckoutFinder(mapping))


_map_checkout_directories()
