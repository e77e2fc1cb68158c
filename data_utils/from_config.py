"""`load_for_config(config)`: the graph a training config names, as the experiment scripts load it.

The data side of the flax examples' `input_pipeline`: the training library takes this graph and
never loads datasets itself.
"""

from __future__ import annotations

import ml_collections

from . import splits
from .datasets import load_dataset
from hgnn_ima_jax.graph import MMHN


def load_for_config(config: ml_collections.ConfigDict) -> MMHN:
  """The dataset named by the config (`load_dataset`), with the config's split."""
  split = config.get("split", "file")
  if split not in splits.SPLIT_RULES:  # before any file is read
    raise ValueError(f"config.split={split!r}: use one of {splits.SPLIT_RULES}")
  fractions = splits.check_fractions(config.get("split_fractions", (0.2, 0.1, 0.7)))
  kwargs, missing_fill = {}, config.get("missing_fill", "code")
  if config.dataset == "synthetic":
    kwargs = {k: v for k, v in (config.get("synthetic") or {}).items() if v is not None}
    # The generator's own fill rule is the synthetic dataset's "code" default.
    synthetic_fill = kwargs.pop("missing_fill", None)
    if missing_fill == "code" and synthetic_fill:
      missing_fill = synthetic_fill
  data = load_dataset(config.dataset, data_dir=config.get("data_dir") or None,
                      features=config.get("features", "real"), missing_fill=missing_fill,
                      feature_seed=config.get("feature_seed", 0), **kwargs)
  return splits.resplit(data, split, fractions, int(config.get("split_seed", 0)))
