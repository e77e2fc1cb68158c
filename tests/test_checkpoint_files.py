"""A run directory whose files were damaged, edited or written for other devices: one line that says what, and
the fix (from an audit: each was a raw Orbax error, or blamed "another version of this code" and proposed the
very command that had failed)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import types

import jax
import numpy as np
import pytest

from hgnn_ima_jax import checkpointing, run_dir
from hgnn_ima_jax.checkpointing import CheckpointMismatchError, RunCheckpoints
from hgnn_ima_jax.config_compare import config_fingerprint, fingerprinted_fields

CONFIG = {"dataset": "synthetic", "model": {"hidden": 4}, "seeds": [0, 1]}


def saved_run(workdir, steps=(5, 10), rows=2):
  """A workdir with config.json and latest checkpoints at `steps` of a state with `rows` seed rows."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(CONFIG, f)
  state = {"w": np.arange(rows * 3, dtype=np.float32).reshape(rows, 3), "step": np.zeros(rows, np.int32)}
  config = run_dir.read_config(workdir)
  ckpt = RunCheckpoints(workdir, fingerprint=config_fingerprint(config), config_fields=fingerprinted_fields(config))
  for s in steps:
    ckpt.save_latest(s, state, {"history": []})
  ckpt.close()
  return state


def restore(workdir, like):
  ckpt = RunCheckpoints(workdir)
  try:
    return ckpt.restore_latest(like, config=run_dir.read_config(workdir))
  finally:
    ckpt.close()


def test_a_damaged_step_names_the_earlier_one(tmp_path):
  workdir = str(tmp_path / "run")
  state = saved_run(workdir)
  got, _ = restore(workdir, state)  # intact: the newest step
  np.testing.assert_array_equal(got["w"], state["w"])
  shutil.rmtree(os.path.join(workdir, "checkpoints", "latest", "10", "state"))
  latest = os.path.join(workdir, "checkpoints", "latest")
  with pytest.raises(
      CheckpointMismatchError,
      match=rf"^{latest}/10: checkpoint 10 is damaged and cannot be read \(.*\)\. Fix: move {latest}/10 out of "
      r"checkpoints/latest and --resume again to continue from checkpoint 5$",
  ):
    restore(workdir, state)
  shutil.rmtree(os.path.join(latest, "10"))
  got, _ = restore(workdir, state)  # as the fix says
  np.testing.assert_array_equal(got["w"], state["w"])


def test_a_metadata_file_cut_short_is_a_damaged_step(tmp_path):
  """From an audit: an emptied meta/metadata (a JSONDecodeError) was blamed on "another version of this code", whose
  fix was the command that had just failed; it is a damaged step, with the one before it to continue from."""
  workdir = str(tmp_path / "run")
  state = saved_run(workdir)
  latest = os.path.join(workdir, "checkpoints", "latest")
  open(os.path.join(latest, "10", "meta", "metadata"), "w").close()
  with pytest.raises(
      CheckpointMismatchError,
      match=rf"^{latest}/10: checkpoint 10 is damaged and cannot be read \(JSONDecodeError: .*continue from checkpoint 5$",
  ):
    restore(workdir, state)


def test_a_config_json_edited_after_the_checkpoint_is_refused(tmp_path):
  workdir = str(tmp_path / "run")
  state = saved_run(workdir)
  config = json.loads((tmp_path / "run" / "config.json").read_text())
  config["model"]["hidden"] = 8  # by hand, after the checkpoint: resumed, the run continued with it
  (tmp_path / "run" / "config.json").write_text(json.dumps(config))
  with pytest.raises(
      CheckpointMismatchError,
      match=r"checkpoint 10 was written with another config than the run's config\.json now holds \(model\.hidden: "
      r"4 \(checkpoint\) vs 8 \(config\.json\)\)",  # the field named, since checkpoints keep their config
  ):
    restore(workdir, state)


def test_other_seed_rows_say_to_resume_on_as_many_devices(tmp_path):
  workdir = str(tmp_path / "run")
  saved_run(workdir, rows=2)
  four = {"w": np.zeros((4, 3), np.float32), "step": np.zeros(4, np.int32)}
  with pytest.raises(
      CheckpointMismatchError,
      match=rf"checkpoint 10 holds 2 seed rows .* this run pads them to 4 on {jax.device_count()} device\(s\) .*Fix: resume",
  ):
    restore(workdir, four)


def test_an_unreadable_config_json_is_one_line(tmp_path):
  (tmp_path / "config.json").write_text("{")
  with pytest.raises(run_dir.WorkdirError, match=r"config.json: not valid JSON \(.* line 1, column 2\)\. Fix: put"):
    run_dir.read_config(str(tmp_path))


def test_a_run_continues_on_another_device_count(tmp_path):
  """Seeds padded for 1 device (2 rows) continue padded for 4 (4 rows) and back: the real rows are kept."""
  workdir = str(tmp_path / "run")
  state = saved_run(workdir, rows=2)
  four = {"w": np.zeros((4, 3), np.float32), "step": np.zeros(4, np.int32)}
  ckpt = RunCheckpoints(workdir)
  got, _ = ckpt.restore_latest(four, config=run_dir.read_config(workdir), real_rows=2)
  ckpt.close()
  np.testing.assert_array_equal(np.asarray(got["w"]), state["w"][[0, 1, 0, 0]])
  saved_run(str(tmp_path / "wide"), rows=4)
  two = {"w": np.zeros((2, 3), np.float32), "step": np.zeros(2, np.int32)}
  ckpt = RunCheckpoints(str(tmp_path / "wide"))
  got, _ = ckpt.restore_latest(two, config=run_dir.read_config(str(tmp_path / "wide")), real_rows=2)
  ckpt.close()
  np.testing.assert_array_equal(np.asarray(got["w"]), np.arange(12, dtype=np.float32).reshape(4, 3)[:2])


def test_other_seeds_asked_name_the_seeds_not_the_devices(tmp_path):
  """A review found the seed-rows message shadowing the config's own: seeds (0, 1) saved, (0,) asked."""
  workdir = str(tmp_path / "run")
  saved_run(workdir, rows=2)
  one = {"w": np.zeros((1, 3), np.float32), "step": np.zeros(1, np.int32)}
  ckpt = RunCheckpoints(workdir)
  try:
    with pytest.raises(CheckpointMismatchError, match=r"config.json differs: seeds: \(0, 1\) \(saved\) vs \(0,\)"):
      ckpt.restore_latest(one, config={**CONFIG, "seeds": [0]}, real_rows=1)
  finally:
    ckpt.close()


def test_a_file_system_without_locks_runs_unlocked_and_a_held_lock_says_how_to_clear_it(tmp_path, monkeypatch):
  import errno
  import fcntl

  with run_dir.locked_workdir(str(tmp_path)):
    with pytest.raises(
        run_dir.WorkdirError, match=rf"if that process is gone \(a crashed node\), delete {tmp_path}/\.lock$"
    ):
      with run_dir.locked_workdir(str(tmp_path)):
        pass

  def no_locks(f, op):
    raise OSError(errno.ENOLCK, "No locks available")

  monkeypatch.setattr(fcntl, "flock", no_locks)
  with run_dir.locked_workdir(str(tmp_path)):  # Lustre without -o flock: a warning, not a refusal of every run
    pass


def test_only_a_collective_failure_is_read_as_a_lost_peer():
  from hgnn_ima_jax.experiments import train as train_cli

  gloo = "UNKNOWN: Gloo AllGather failed: [external/gloo/gloo/transport/tcp/pair.cc:538] Read error: Connection reset"
  assert train_cli.PEER_FAILURE.search(gloo)
  assert not train_cli.PEER_FAILURE.search("RESOURCE_EXHAUSTED: Out of memory allocating 8589934592 bytes")


@pytest.mark.parametrize("name,read", [("results.json", run_dir.read_results), ("schema.json", run_dir.read_schema)])
def test_a_truncated_results_or_schema_file_is_one_line(tmp_path, name, read):
  """From an audit: a truncated results.json or schema.json was a bare JSONDecodeError traceback naming no file."""
  (tmp_path / name).write_text("{")
  with pytest.raises(run_dir.WorkdirError, match=rf"^{tmp_path}/{name}: not valid JSON \(.*\)\. Fix: ") as e:
    read(str(tmp_path))
  assert "\n" not in str(e.value)


def test_late_read_reports_are_dropped_and_every_other_report_passes(monkeypatch):
  """`drop_late_read_reports`: only asyncio's "Event loop is closed" from `call_soon_threadsafe` (a read that outlived
  its failed restore) is dropped; other reports reach the hook that was in place; installed once however called."""
  seen = []
  monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_value))
  checkpointing.drop_late_read_reports()
  installed = sys.unraisablehook
  checkpointing.drop_late_read_reports()
  assert sys.unraisablehook is installed
  loop = asyncio.new_event_loop()
  loop.close()
  try:
    loop.call_soon_threadsafe(print)
  except RuntimeError as e:
    late = e
  try:
    raise RuntimeError("Event loop is closed")  # the same words from elsewhere
  except RuntimeError as e:
    elsewhere = e
  report = lambda e: types.SimpleNamespace(exc_type=type(e), exc_value=e, exc_traceback=e.__traceback__, object=None)
  for e in (late, elsewhere, ValueError("other")):
    sys.unraisablehook(report(e))
  assert [str(e) for e in seen] == ["Event loop is closed", "other"] and seen[0] is elsewhere


def test_a_directory_that_is_no_run_names_the_runs_below_it(tmp_path):
  """load_run / load_checkpoint on a table script's workdir (or its <dataset> directory) named no run: its cells are
  the runs, and the error lists them; a directory with none says what to give."""
  for cell in ("synthetic/hgnn_ima", "synthetic/hgt_late", "imdb/hgnn_ima"):
    (tmp_path / "table" / cell).mkdir(parents=True)
    (tmp_path / "table" / cell / "config.json").write_text(json.dumps(CONFIG))
  table = tmp_path / "table"
  with pytest.raises(FileNotFoundError) as e:
    run_dir.read_config(str(table))
  assert str(e.value) == (
      f"{table}/config.json not found: {table} is not a training run directory, the runs below it are: "
      f"{table}/imdb/hgnn_ima, {table}/synthetic/hgnn_ima, {table}/synthetic/hgt_late. Fix: give one of them"
  )
  with pytest.raises(FileNotFoundError, match=rf"runs below it are: {table}/synthetic/hgnn_ima, .*hgt_late\. Fix"):
    run_dir.read_config(str(table / "synthetic"))
  with pytest.raises(FileNotFoundError, match=r"is not a training run directory\. Fix: give the --workdir of an "):
    run_dir.read_config(str(tmp_path / "table" / "imdb" / "hgnn_ima" / "nothing"))
