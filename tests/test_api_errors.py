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


def test_resume_note_tells_a_missing_history_from_an_unreadable_one(tmp_path):
  assert resume_note(str(tmp_path), 10).endswith("(no history.json)")
  (tmp_path / "history.json").write_text("{not json")
  assert resume_note(str(tmp_path), 10).endswith("(history.json unreadable)")
  (tmp_path / "history.json").write_text(json.dumps([{"epoch": e, "seed": s} for e in range(3) for s in (0, 1)]))
  assert resume_note(str(tmp_path), 10).endswith("(3 of 10 epoch(s) done)")
