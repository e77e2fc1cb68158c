"""The Orbax checkpoints a training run writes and resumes from (`RunCheckpoints`).

This module sits below training: it knows nothing of the train state's type, only the pytrees
it is given. Restoring a finished run for prediction is `restore.load_checkpoint`, above training.

A run's workdir holds:
  config.json            the resolved config (rebuilds the dataset and the model)
  checkpoints/latest/    the whole TrainState of every seed + history (for --resume)
  checkpoints/best/      each seed's selected parameters (+ BatchNorm stats) + results
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging as absl_logging

from hgnn_ima_jax import config_compare
from hgnn_ima_jax.hosts import host
from hgnn_ima_jax.run_dir import read_config

# Orbax's (tensorstore's) words for a step whose files are missing or cut short
_DAMAGED = re.compile(r"OUT_OF_RANGE|DATA_LOSS|NOT_FOUND|was not found|No such file|truncated|unexpected end")


def _seed_rows(saved, asked) -> tuple[int, int] | None:
  """(rows saved, rows asked) when every leaf of the saved state (arrays or Orbax's metadata) and of `asked` has
  one leading (seed) size each, and the two differ; None otherwise."""
  a = {x.shape[0] for x in jax.tree_util.tree_leaves(saved) if x.shape}
  b = {x.shape[0] for x in jax.tree_util.tree_leaves(asked) if x.shape}
  return (a.pop(), b.pop()) if len(a) == 1 and len(b) == 1 and a != b else None


class CheckpointMismatchError(ValueError):
  """A run's latest checkpoint cannot continue with the config asked for (one line: what differs, the fix)."""


def _is_late_read_report(unraisable) -> bool:
  """An "Event loop is closed" that asyncio's `call_soon_threadsafe` raised: a tensorstore read finishing after the
  Orbax restore that started it failed (one bad file) and closed its event loop. Nobody waits for that read."""
  e, tb = unraisable.exc_value, unraisable.exc_traceback
  if not (isinstance(e, RuntimeError) and str(e) == "Event loop is closed"):
    return False
  while tb is not None:
    if tb.tb_frame.f_code.co_name == "call_soon_threadsafe" and "asyncio" in tb.tb_frame.f_code.co_filename:
      return True
    tb = tb.tb_next
  return False


_HOOK_LOCK = threading.Lock()


def drop_late_read_reports() -> None:
  """Makes `sys.unraisablehook` drop the late reads' reports (`_is_late_read_report`), passing on every other report.

  Why: when one file of a checkpoint is damaged, Orbax's restore fails at the first read that fails, and each of the
  other reads, finishing later, reports "Event loop is closed" as a traceback (up to one per array: after the
  one-line error that names the damaged step, a screen of them in a notebook, a few in a script before it exits).
  Installed once, chained to the hook in place then.
  """
  with _HOOK_LOCK:
    previous = sys.unraisablehook
    if getattr(previous, "drops_late_read_reports", False):
      return

    def hook(unraisable):
      if not _is_late_read_report(unraisable):
        previous(unraisable)

    hook.drops_late_read_reports = True
    sys.unraisablehook = hook


def orbax_manager(path: str, keep: int = 1) -> ocp.CheckpointManager:
  """One checkpoint directory, keeping its `keep` newest steps; made by its first save, not when opened.

  The barrier prefix is the directory's name: in a multi-process run, 'latest' and 'best' may save the
  same step at once, and Orbax's barriers are named by step, so they would otherwise collide.

  Why not create=True: it makes the directory on opening, so a resume or restore refused before any save (an
  edited config.json) left an empty checkpoints/best behind. Orbax makes a step's directory with its parents.
  """
  drop_late_read_reports()  # before any read: the reports start as soon as a read fails
  mp = ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=os.path.basename(os.path.normpath(path)))
  return ocp.CheckpointManager(
      path, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=False, multiprocessing_options=mp)
  )


def _abstract(tree, sharding):
  if sharding is None:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def edited_config_error(where: str, step: int, meta: dict, config) -> CheckpointMismatchError:
  """Checkpoint `step` in `where` was written with another config than the run's config.json (`config`) now holds:
  the fields that differ when the checkpoint kept its config (since 2026-12-07), else the fact alone."""
  saved = meta.get("config")
  diffs = config_compare.diff_configs(saved, config_compare.fingerprinted_fields(config)) if saved is not None else []
  what = (
      f" ({'; '.join(diffs[:4])})".replace("(saved)", "(checkpoint)").replace("(asked)", "(config.json)")
      if diffs
      else ""
  )
  return CheckpointMismatchError(
      f"{where}: checkpoint {step} was written with another config than the run's config.json now holds{what}: it "
      "was edited after the checkpoint, or another run wrote it. Fix: put config.json back as the run wrote it, or train into a new "
      "--workdir"
  )


def check_config_unchanged(where: str, step: int, meta: dict, config) -> None:
  """Refuses a checkpoint whose kept fingerprint is not `config`'s (checkpoints written before fingerprints pass)."""
  saved_fp = (meta or {}).get("config_fingerprint")
  if saved_fp is not None and saved_fp != config_compare.config_fingerprint(config):
    raise edited_config_error(where, step, meta, config)


class RunCheckpoints:
  """The latest (resume) and best (selected parameters) checkpoints of one run."""

  def __init__(self, workdir: str, fingerprint: str | None = None, config_fields: dict | None = None):
    """fingerprint: `config_compare.config_fingerprint` of the run's config, kept in each checkpoint and compared
    with config.json's on resume and on restore (a config.json edited after the checkpoint was written, or
    overwritten by another run, continued, or was restored, silently with the new values). config_fields: the
    config's `result_fields`, kept beside it so that a mismatch names the fields that differ."""
    self.workdir, self.fingerprint, self.config_fields = workdir, fingerprint, config_fields
    root = os.path.join(os.path.abspath(workdir), "checkpoints")
    # Two latest steps: a step damaged on disk (a full disk, a killed copy) leaves the one before it to resume from.
    self.latest = orbax_manager(os.path.join(root, "latest"), keep=2)
    self.best = orbax_manager(os.path.join(root, "best"))
    self._closed = False
    # The steps saved, kept here rather than read from disk before each save: in a multi-process run every
    # process must make the same save calls (Orbax's barriers pair them), and the directory listing can
    # differ between processes while the primary one is still finalising a step.
    self._saved = {"latest": set(self.latest.all_steps()), "best": set(self.best.all_steps())}

  def has_checkpoints(self) -> bool:
    return self.latest.latest_step() is not None or self.best.latest_step() is not None

  def save_latest(self, step: int, state, meta: dict, force: bool = False):
    if step in self._saved["latest"]:
      return
    self._saved["latest"].add(step)
    # Copy to host first: the next epoch donates the device buffers while Orbax may still write.
    on_host = host(state)
    # Every process calls save (Orbax synchronises them; the primary process writes replicated host arrays
    # and the metadata). The process count is kept: a run resumes only with the same count.
    meta = {**meta, "processes": jax.process_count()}
    meta.update(self._config_meta())
    self.latest.save(
        step, args=ocp.args.Composite(state=ocp.args.StandardSave(on_host), meta=ocp.args.JsonSave(meta)), force=force
    )

  def _config_meta(self) -> dict:
    out = {} if self.fingerprint is None else {"config_fingerprint": self.fingerprint}
    return out if self.config_fields is None else {**out, "config": self.config_fields}

  def config_differences(self, config) -> list[str] | None:
    """What differs between the run's saved config.json and `config` (result fields only); None if unreadable."""
    try:
      saved = read_config(self.workdir)
    except (OSError, ValueError):
      return None
    fields = config_compare.result_fields
    return config_compare.diff_configs(fields(saved), fields(config))

  def restore_latest(self, like, sharding=None, config=None, real_rows: int | None = None):
    """(state, meta) of the newest checkpoint, or None; `like` (arrays or ShapeDtypeStructs) gives the structure.

    With `config` (the resolved config of the run that continues), a checkpoint whose run had another
    config is refused: `CheckpointMismatchError` lists the fields that differ (and the first leaf whose
    shape does not fit, when that is what failed).

    real_rows: how many leading (seed) rows are real seeds; the rest pad the seeds to fill the devices. A
    checkpoint padded for another number of devices is then re-padded (its real rows kept, the padding rows
    copies of the first: they are dropped from every output), so that a run continues on another device count
    (one process only; several are refused with the fix).
    """
    step = self.latest.latest_step()
    if step is None:
      return None
    abstract = _abstract(like, sharding)
    saved_processes = self._saved_processes(step)
    if saved_processes is not None and saved_processes != jax.process_count():
      raise CheckpointMismatchError(
          f"{self.latest.directory}: checkpoint {step} was written by a run of {saved_processes} process(es), this "
          f"one has {jax.process_count()}. Fix: resume with --num_processes={saved_processes}, or train into a new "
          "--workdir"
      )
    diffs = None if config is None else self.config_differences(config)
    if config is None:
      what = "it was written by another version of this code or with another config"
    elif diffs is None:
      what = "its run has no readable config.json to compare with"
    elif diffs:
      more = f" (+{len(diffs) - 6} more)" if len(diffs) > 6 else ""
      what = f"its run's config.json differs: {'; '.join(diffs[:6])}{more}"
    else:
      what = "its run's config.json equals this config, so it was written by another version of this code"
    fix = (
        f"continue it with its saved config (python experiments/train.py --workdir={self.workdir} --resume, "
        "no other flags) or train into a new --workdir"
    )
    fail = lambda why: CheckpointMismatchError(
        f"{self.latest.directory}: checkpoint {step} does not match the "
        f"training state this config builds ({why}); {what}. Fix: {fix}"
    )
    try:
      restored = self.latest.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
      )
      r = {"state": restored["state"], "meta": restored["meta"]}
    except (ValueError, KeyError, TypeError, OSError) as e:  # Orbax's tree mismatch and read errors
      why = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
      # same config: the files are at fault (a metadata file cut short is a JSONDecodeError, which was blamed on
      # "another version of this code", an audit found)
      cut = bool(_DAMAGED.search(str(e))) or isinstance(e, json.JSONDecodeError)
      if not diffs and (cut or isinstance(e, OSError)):
        raise self._damaged(step, why, missing=cut) from None
      rows = None if diffs else _seed_rows(self._saved_metadata(step), abstract)
      if rows is None:
        raise fail(why) from None
      meta = self.latest.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
      r = {"state": self._repadded(step, abstract, sharding, rows, real_rows, fail(why)), "meta": meta}
    saved_fp = (r["meta"] or {}).get("config_fingerprint")
    if (
        saved_fp is not None
        and diffs == []
        and saved_fp != config_compare.config_fingerprint(read_config(self.workdir))
    ):
      raise edited_config_error(str(self.latest.directory), step, r["meta"], read_config(self.workdir))
    # Orbax restores a leaf with its saved shape even when the target says otherwise: check.
    got = dict(jax.tree_util.tree_flatten_with_path(r["state"])[0])
    rows = _seed_rows(r["state"], abstract) if diffs == [] else None  # another config: its own message below
    if rows is not None:  # the seeds padded to fill another number of devices
      r["state"] = self._repadded(step, abstract, sharding, rows, real_rows, fail("the seed rows"))
      got = dict(jax.tree_util.tree_flatten_with_path(r["state"])[0])
    for path, want in jax.tree_util.tree_flatten_with_path(abstract)[0]:
      have = got.get(path)
      if have is None or tuple(have.shape) != tuple(want.shape):
        raise fail(
            f"{jax.tree_util.keystr(path)} has shape {None if have is None else tuple(have.shape)}, "
            f"the config needs {tuple(want.shape)}"
        )
    if diffs:  # the shapes fit, but epochs, rates, ... of another run would change its result: never continue it
      raise CheckpointMismatchError(
          f"{self.latest.directory}: checkpoint {step} belongs to another run: {what}. " f"Fix: {fix}"
      )
    return r["state"], r["meta"]

  def _saved_metadata(self, step: int):
    """The saved state's tree of shapes (a sharded restore refuses another shape before returning any), or None."""
    try:
      level = absl_logging.get_verbosity()
      absl_logging.set_verbosity(absl_logging.ERROR)  # Orbax warns that a step has no _CHECKPOINT_METADATA
      try:
        meta = ocp.StandardCheckpointer().metadata(os.path.join(str(self.latest.directory), str(step), "state"))
      finally:
        absl_logging.set_verbosity(level)
    except Exception:  # noqa: BLE001 (no readable metadata: the generic message stands)
      return None
    return getattr(meta, "item_metadata", meta)

  def _repadded(self, step: int, abstract, sharding, rows: tuple[int, int], real_rows, unreadable: Exception):
    """The state of `step` (saved with rows[0] seed rows) with rows[1]: its real rows, then copies of the first.

    Refused (one line, the fix) with several processes or fewer rows than the real seeds; `unreadable` is raised
    when the saved rows do not restore into the state's shapes.
    """
    if real_rows is None or real_rows > min(rows) or jax.process_count() > 1:
      raise CheckpointMismatchError(
          f"{self.latest.directory}: checkpoint {step} holds {rows[0]} seed rows (the run's seeds, padded to fill "
          f"its devices) and this run pads them to {rows[1]} on {jax.device_count()} device(s) (the device count "
          "and mesh_data decide the padding). Fix: resume with the run's device count and mesh_data (on CPU, "
          "XLA_FLAGS=--xla_force_host_platform_device_count=N)"
      ) from None
    saved = jax.tree.map(lambda a: np.zeros((rows[0],) + tuple(a.shape[1:]), a.dtype), abstract)
    try:
      r = self.latest.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(saved)))
    except (ValueError, KeyError, TypeError, OSError):
      raise unreadable from None
    index = np.concatenate([np.arange(real_rows), np.zeros(rows[1] - real_rows, np.int64)])
    state = jax.tree.map(lambda x: np.asarray(x)[index], r["state"])
    return jax.device_put(state, sharding) if sharding is not None else jax.tree.map(jnp.asarray, state)

  def _damaged(self, step: int, why: str, missing: bool) -> CheckpointMismatchError:
    """A step Orbax cannot read: damaged (a file missing or cut short), or an error of the file system itself
    (permissions, a stale mount), which may pass; the step before it, if kept, can continue the run."""
    earlier = [s for s in self.latest.all_steps() if s < step]
    where = os.path.join(str(self.latest.directory), str(step))
    what = "is damaged and cannot be read" if missing else "cannot be read"
    first = "" if missing else "check that the file system serves it (permissions, the mount); if it is damaged, "
    fix = (
        f"{first}move {where} out of checkpoints/latest and --resume again to continue from checkpoint {max(earlier)}"
        if earlier
        else f"{first}train into a new --workdir (no earlier checkpoint is kept)"
    )
    return CheckpointMismatchError(f"{where}: checkpoint {step} {what} ({why}). Fix: {fix}")

  def _saved_processes(self, step: int) -> int | None:
    """The process count in the checkpoint's metadata (1 for checkpoints written before it was kept)."""
    try:
      meta = self.latest.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except (ValueError, KeyError, TypeError, FileNotFoundError):
      return None
    return int(meta.get("processes", 1))

  def save_best(self, state, seeds, results: dict):
    n = len(seeds)
    tree = host({"params": state.best_params, "batch_stats": state.best_batch_stats})
    tree = jax.tree.map(lambda x: np.asarray(x)[:n], tree)
    step = int(np.asarray(host(state.step)).max())
    if step in self._saved["best"]:
      return
    self._saved["best"].add(step)
    self.best.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(tree),
            meta=ocp.args.JsonSave({"seeds": list(seeds), "results": results, **self._config_meta()}),
        ),
    )

  def close(self):
    """Waits for the saves in flight and closes both managers; once (a failed run closes it, then raises)."""
    if self._closed:
      return
    self._closed = True
    self.latest.wait_until_finished()
    self.best.wait_until_finished()
    self.latest.close()
    self.best.close()
