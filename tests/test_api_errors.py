"""Library entry points called from Python refuse a bad argument in one line that names it and says the fix.

From a code audit: these were dropped without a word (a misspelt batch field), or refused without a fix.
(`build_model`'s refusals: tests/test_model_properties.py.)
"""

from __future__ import annotations

import json

import ml_collections
import pytest

from hgnn_ima_jax import metrics
from hgnn_ima_jax.data_utils import load_dataset
from hgnn_ima_jax.data_utils.generic import write_generic
from hgnn_ima_jax.experiments.outputs import resume_note
from hgnn_ima_jax.graph import fill_missing_modalities
from hgnn_ima_jax.options import BatchSettings


def _batch_config():
  return ml_collections.ConfigDict({"model": {"num_layers": 2}, "batch": {"mode": "neighbor", "sise": 64}})


def _non_empty_dir(tmp_path):
  (tmp_path / "old").mkdir()
  (tmp_path / "old" / "x.npy").write_bytes(b"")
  return write_generic(tmp_path / "old", load_dataset("synthetic", scale=0.05))


CASES = {
    "batch field": (
        lambda tmp_path: BatchSettings.from_config(_batch_config()),
        ValueError,
        r"^config\.batch\.sise=64: is not a batch field \(did you mean batch\.size\?\)\. Fix: drop it",
    ),
    "fill rule": (
        lambda tmp_path: fill_missing_modalities(load_dataset("synthetic", scale=0.05), "zero"),
        ValueError,
        r"^fill_missing_modalities: rule='zero' is not a fill rule\. Fix: pass rule='text'",
    ),
    "feature mode": (
        lambda tmp_path: load_dataset("synthetic", features="bogus"),
        ValueError,
        r"^features='bogus': is not a feature mode\. Fix: use one of",
    ),
    "generator argument for a paper dataset": (
        lambda tmp_path: load_dataset("douban", scale=0.5),
        TypeError,
        r"^load_dataset\('douban'\): unexpected arguments \['scale'\]\. Fix: drop them",
    ),
    "paired t-test": (
        lambda tmp_path: metrics.t_test([0.5, 0.6], [0.5], paired=True),
        ValueError,
        r"^a paired t-test needs matched seeds, got 2 and 1 scores\. Fix:",
    ),
    "generic format into a non-empty directory": (
        _non_empty_dir,
        FileExistsError,
        r"old: exists and is not empty\. Fix: write the generic format into a new directory",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_argument_is_one_line_with_its_fix(case, tmp_path):
  call, error, pattern = CASES[case]
  with pytest.raises(error, match=pattern) as e:
    call(tmp_path)
  assert "\n" not in str(e.value) and "Fix:" in str(e.value)


def _latest_step(workdir, step: int, meta: str):
  """A finished latest checkpoint `step` with its JSON metadata as the text `meta` (no state: the note reads none)."""
  (workdir / "checkpoints" / "latest" / str(step) / "meta").mkdir(parents=True)
  (workdir / "checkpoints" / "latest" / str(step) / "meta" / "metadata").write_text(meta)


def test_resume_note_says_what_the_latest_finished_checkpoint_holds(tmp_path):
  """history.json is written once a save has started, so a run killed mid-save had it ahead of every finished
  checkpoint, and the note counted its epochs: it now says what --resume continues, the latest finished step."""
  note = lambda mode: resume_note(str(tmp_path), 10, mode)
  assert note("full") == f"{tmp_path} has no checkpoint yet: training it from the start"
  (tmp_path / "history.json").write_text(json.dumps([{"epoch": e, "seed": s} for e in range(5) for s in (0, 1)]))
  _latest_step(tmp_path, 2, "{}")
  _latest_step(tmp_path, 3, "{}")
  (tmp_path / "checkpoints" / "latest" / "4.orbax-checkpoint-tmp-1").mkdir()  # the save a kill cut short
  assert note("full").endswith("from its last checkpoint (3 of 10 epoch(s) done)")
  # a mini-batch step counts optimizer steps: the epoch is the metadata's
  _latest_step(tmp_path, 37, json.dumps({"epoch": 3, "next_batch": 0}))
  assert note("neighbor").endswith("from its last checkpoint (3 of 10 epoch(s) done)")
  _latest_step(tmp_path, 42, json.dumps({"epoch": 3, "next_batch": 5}))
  assert note("hgt").endswith("from its last checkpoint (3 of 10 epoch(s) done, and 5 batch(es) of epoch 4)")
  _latest_step(tmp_path, 50, '{"epoch": 4, "next_')  # cut short
  assert note("neighbor").endswith("from its last checkpoint (checkpoint 50, its metadata unreadable)")
  (tmp_path / "results.json").write_text("{}")
  assert note("neighbor").endswith(": the run finished; its saved results")
