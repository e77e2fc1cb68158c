"""The files of a run directory that can be read without JAX: the saved config and the checkpoint steps.

A run's workdir holds config.json (the resolved config), history.json/.csv, results.json and
checkpoints/{latest,best}/<step>/ (Orbax; `checkpointing.py` writes and reads them for training,
`restore.py` for a finished run). history.json/.csv come from the scripts (experiments/outputs.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile

import ml_collections

from hgnn_ima_jax import config_validation
from hgnn_ima_jax.graph import Relation, Schema


class WorkdirError(ValueError):
  """A run directory that cannot be made or written: refused before anything is built or written."""


def check_workdir(workdir: str, name: str = "workdir") -> None:
  """Refuses (`WorkdirError`, one line) a `workdir` that a run could not write to, leaving nothing behind.

  It must be a directory, or a path that can be made below its nearest existing parent. Why a probe
  (a temporary entry made and removed at once) and not `os.access`: as root, `os.access` says yes to
  every directory, including /proc, where a run would then die with a traceback in `os.makedirs`.
  """
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise WorkdirError(f"{name}={workdir}: is a file, not a directory. Fix: give a new path or an existing directory")
  parent = path
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise WorkdirError(
        f"{name}={workdir}: cannot be made: {parent} is a file. Fix: give a path below a directory you can write to"
    )
  try:
    os.rmdir(tempfile.mkdtemp(prefix=".hgnn-ima-probe-", dir=parent))
  except OSError as e:
    where = "is not writable" if parent == path else f"cannot be made in {parent}"
    raise WorkdirError(
        f"{name}={workdir}: {where} ({e.strerror}). Fix: give a path below a directory you can write to"
    ) from None


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
    d = json.load(f)
  model = d.get("model")
  if isinstance(model, dict) and "update" in model:  # a run saved before model.update became update_form
    model["update_form"] = model.pop("update")
  if isinstance(d, dict):  # a run saved before a Table 4 name's model fields were written with it
    config_validation.apply_name_fields(d)
  return ml_collections.ConfigDict(d)


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
