"""A CPU-sized config for tests: a tiny synthetic graph, small model, few epochs."""

import ml_collections

from . import get_config as _get


def get_config(dataset: str = "synthetic") -> ml_collections.ConfigDict:
  c = _get(dataset)
  c.model.hidden = 16
  c.model.heads = 2
  c.model.num_layers = 2
  c.num_epochs = 6
  c.checkpoint_every = 2
  c.seeds = (0, 1)
  if dataset == "synthetic":
    c.synthetic = ml_collections.ConfigDict({"scale": 0.1})
  return c
