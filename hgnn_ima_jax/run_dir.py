"""The files of a run directory that can be read without JAX: the saved config and the checkpoint steps.

A run's workdir holds config.json (the resolved config), history.json/.csv, results.json and
checkpoints/{latest,best}/<step>/ (Orbax; `checkpointing.py` writes and reads them for training,
`restore.py` for a finished run). history.json/.csv come from the scripts (experiments/outputs.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import glob
import json
import os
import socket
import tempfile

import ml_collections
from absl import logging
from ml_collections import config_dict

from hgnn_ima_jax import choices, config_values, field_usage
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


LOCK_FILE = ".lock"


@contextlib.contextmanager
def locked_workdir(workdir: str):
  """Holds an exclusive lock on `workdir` (`.lock`, fcntl) while a run writes there; another run is refused.

  Two runs started into one workdir both found no checkpoint and both wrote: config.json of one, results.json of
  the other, checkpoints of both, so that --resume and load_checkpoint each described a different run. The lock
  goes with the process (a killed run leaves no stale lock); the file stays, naming the last holder.

  A file system without working locks (Lustre without -o flock, NFS without its lock daemon) gives the run no
  lock, with a warning, rather than refusing every run there.

  Raises:
    WorkdirError: another process holds the lock (its pid and host), or `.lock` cannot be opened.
  """
  path = os.path.join(workdir, LOCK_FILE)
  try:
    f = open(path, "a+")
  except OSError as e:
    raise WorkdirError(f"workdir={workdir}: {path} cannot be opened ({e.strerror}). Fix: make it writable") from None
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
      f.close()
      logging.warning("workdir %s: no lock (%s): this file system does not lock files", workdir, e.strerror)
      yield
      return
    f.seek(0)
    who = f.read().strip() or "another process"
    f.close()
    raise WorkdirError(
        f"workdir={workdir}: a run is writing there now ({who}). Fix: wait for it to end (then --resume continues "
        f"it), or give another --workdir; if that process is gone (a crashed node), delete {path}"
    ) from None
  try:
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    yield
  finally:
    fcntl.flock(f, fcntl.LOCK_UN)
    f.close()


def write_config(workdir: str, config: ml_collections.ConfigDict):
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))


def runs_below(workdir: str, levels: tuple[int, ...] = (1, 2)) -> list[str]:
  """The run directories (with a config.json) `levels` directories below `workdir`, sorted (a table script's cells:
  level 2, `<dataset>/<cell>`)."""
  found = [p for n in levels for p in glob.glob(os.path.join(glob.escape(workdir), *["*"] * n, "config.json"))]
  return sorted(os.path.dirname(p) for p in found)


def read_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    if os.path.isdir(os.path.join(workdir, "checkpoints")):  # a run whose config.json is gone, not no run at all
      raise FileNotFoundError(
          f"{path} not found: {workdir} holds checkpoints but no config.json, which rebuilds the run. Fix: put back "
          "the config.json the run wrote"
      )
    below = runs_below(workdir)
    if below:  # a table script's workdir, or one of its <dataset> directories: its cells are the runs
      raise FileNotFoundError(
          f"{path} not found: {workdir} is not a training run directory, the runs below it are: "
          f"{', '.join(below[:4])}{' ...' if len(below) > 4 else ''}. Fix: give one of them"
      )
    raise FileNotFoundError(
        f"{path} not found: {workdir} is not a training run directory. Fix: give the --workdir of an "
        "experiments/train.py run (or of a table script's cell)"
    )
  with open(path) as f:
    try:
      d = json.load(f)
    except json.JSONDecodeError as e:  # a traceback with no file named
      raise WorkdirError(
          f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}). Fix: put back the config.json "
          "the run wrote (it rebuilds the run's data and model)"
      ) from None
  if not isinstance(d, dict):
    raise WorkdirError(f"{path}: holds a {type(d).__name__}, not a config object. Fix: put back the run's config.json")
  model = d.get("model")
  if isinstance(model, dict) and "update" in model:  # a run saved before model.update became update_form
    model["update_form"] = model.pop("update")
  field_usage.apply_name_fields(d)  # a run saved before a Table 4 name's model fields were written with it
  for path, value in choices.ADDED_FIELDS.items():  # a run saved before the field trained as its value
    *parents, leaf = path.split(".")
    node = config_values.get_path(d, ".".join(parents), None)
    if isinstance(node, dict):
      node.setdefault(leaf, value)
  batch = d.get("batch")
  if isinstance(batch, dict) and "num_samples" in batch:  # an int or a dict per type, as the fresh config's field
    batch["num_samples"] = config_dict.FieldReference(batch["num_samples"], field_type=object)
  return ml_collections.ConfigDict(d)


def write_schema(workdir: str, schema) -> None:
  """schema.json: what a graph must have to be predicted on by this run (types, relations, modalities, widths)."""
  d = dataclasses.asdict(schema)
  d["relations"] = [list(r) for r in schema.relations]
  d.pop("levels", None)  # a padded batch's property, not the run's
  with open(os.path.join(workdir, "schema.json"), "w") as f:
    json.dump(d, f, indent=1)


def _read_json(path: str, fix: str):
  """`path` as JSON; a damaged file (a truncated write) is one line naming it, with `fix`, not a bare traceback."""
  with open(path) as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise WorkdirError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}). Fix: {fix}") from None


def read_results(workdir: str) -> dict:
  """A finished run's results.json (`--resume` rebuilds a missing one from the latest checkpoint)."""
  return _read_json(
      os.path.join(workdir, "results.json"),
      f"delete it and continue the run (experiments/train.py --workdir={workdir} --resume): it is written again "
      "from the latest checkpoint",
  )


def read_schema(workdir: str):
  """The training graph's `Schema` from schema.json, or None for a run written before it existed."""
  path = os.path.join(workdir, "schema.json")
  if not os.path.exists(path):
    return None
  d = _read_json(path, "put back the schema.json the run wrote, or delete it and pass the run's graph (data=...)")
  tup = lambda x: tuple(tup(v) for v in x) if isinstance(x, list) else x
  d = {k: tup(v) for k, v in d.items()}
  d["relations"] = tuple(Relation(*r) for r in d["relations"])
  return Schema(**d)


def saved_steps(workdir: str) -> list[int]:
  """Steps of the finished latest checkpoints (Orbax names each `<step>/` once it is complete)."""
  root = os.path.join(workdir, "checkpoints", "latest")
  return sorted(int(d) for d in os.listdir(root) if d.isdigit()) if os.path.isdir(root) else []


def latest_meta(workdir: str, step: int) -> dict:
  """The JSON metadata that latest checkpoint `step` keeps beside its state (epoch, next_batch, history, ...).

  Read as a file, without Orbax (which loads JAX): `checkpointing.RunCheckpoints.save_latest` writes it with
  Orbax's `JsonSave`, which names the file `metadata` in the item's directory.

  Raises:
    OSError: the file is missing or cannot be read.
    ValueError: it is not a JSON object (a write cut short).
  """
  with open(os.path.join(workdir, "checkpoints", "latest", str(step), "meta", "metadata")) as f:
    meta = json.load(f)
  if not isinstance(meta, dict):
    raise ValueError(f"checkpoint {step}: its metadata holds a {type(meta).__name__}, not an object")
  return meta
