"""The files of a run directory that can be read without JAX: the saved config and the checkpoint steps.

A run's workdir holds config.json (the resolved config), history.json/.csv, results.json and
checkpoints/{latest,best}/<step>/ (Orbax; `checkpointing.py` writes and reads them for training,
`restore.py` for a finished run). history.json/.csv come from the scripts (experiments/outputs.py).
"""

from __future__ import annotations

import json
import os

import ml_collections


def write_config(workdir: str, config: ml_collections.ConfigDict):
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))


def read_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {workdir} is not a training run directory "
                            "(run experiments/train.py --workdir=... first)")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def saved_steps(workdir: str) -> list[int]:
  """Steps of the finished latest checkpoints (Orbax names each `<step>/` once it is complete)."""
  root = os.path.join(workdir, "checkpoints", "latest")
  return sorted(int(d) for d in os.listdir(root) if d.isdigit()) if os.path.isdir(root) else []
