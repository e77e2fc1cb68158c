"""The files of a run directory that can be read without JAX: the saved config and the checkpoint steps.

A run's workdir holds config.json (the resolved config), history.json/.csv, results.json and
checkpoints/{latest,best}/<step>/ (Orbax; `checkpointing.py` writes and reads them for training,
`restore.py` for a finished run). history.json/.csv come from the scripts (experiments/outputs.py).
"""

from __future__ import annotations

import dataclasses
import json
import os

import ml_collections

from hgnn_ima_jax.graph import Relation, Schema


def write_config(workdir: str, config: ml_collections.ConfigDict):
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))


def read_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"{path} not found: {workdir} is not a training run directory " "(run experiments/train.py --workdir=... first)"
    )
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def write_schema(workdir: str, schema) -> None:
  """schema.json: what a graph must have to be predicted on by this run (types, relations, modalities, widths)."""
  d = dataclasses.asdict(schema)
  d["relations"] = [list(r) for r in schema.relations]
  d.pop("levels", None)  # a padded batch's property, not the run's
  with open(os.path.join(workdir, "schema.json"), "w") as f:
    json.dump(d, f, indent=1)


def read_schema(workdir: str):
  """The training graph's `Schema` from schema.json, or None for a run written before it existed."""
  path = os.path.join(workdir, "schema.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    d = json.load(f)
  tup = lambda x: tuple(tup(v) for v in x) if isinstance(x, list) else x
  d = {k: tup(v) for k, v in d.items()}
  d["relations"] = tuple(Relation(*r) for r in d["relations"])
  return Schema(**d)


def saved_steps(workdir: str) -> list[int]:
  """Steps of the finished latest checkpoints (Orbax names each `<step>/` once it is complete)."""
  root = os.path.join(workdir, "checkpoints", "latest")
  return sorted(int(d) for d in os.listdir(root) if d.isdigit()) if os.path.isdir(root) else []
