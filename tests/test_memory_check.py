"""memory_check: a program too large for the free memory is one clear error before it runs; otherwise = jax.jit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from script_helpers import TINY_CLI, run_python

from hgnn_ima_jax import memory_check
from hgnn_ima_jax.memory_check import MemoryCheckedProgram, StepMemoryError

# The refusal comes from the compiled step's memory analysis, so each refused run still traces and compiles its step:
# one layer (the refusal does not depend on the depth) keeps that short.
ONE_LAYER = ["--config.model.num_layers=1"]


def _program():
  # A temporary as large as the input: the outer product is materialised before the reduction.
  return jax.jit(lambda x: jnp.sum(jnp.tanh(jnp.outer(x, x)), axis=0) * 2.0)


def test_checked_program_equals_jit_and_compiles_once(monkeypatch):
  x = jnp.arange(256, dtype=jnp.float32) / 256
  prog = MemoryCheckedProgram(_program(), "the test program", "nothing")
  np.testing.assert_array_equal(prog(x), _program()(x))
  first = prog.compiled
  np.testing.assert_array_equal(prog(x + 1), _program()(x + 1))
  assert prog.compiled is first and memory_check.needed_bytes(first) > 256 * 256 * 4 // 2


def test_too_large_is_one_line_naming_what_and_the_fix(monkeypatch):
  monkeypatch.setattr(memory_check, "free_bytes", lambda device: 1000)
  prog = MemoryCheckedProgram(_program(), "batch.size=7: the step", "lower batch.size")
  with pytest.raises(StepMemoryError) as e:
    prog(jnp.ones((512,), jnp.float32))
  msg = str(e.value)
  assert "\n" not in msg and msg.startswith("batch.size=7: the step: the compiled step needs") and "Fix: lower" in msg
  assert prog.compiled is None  # nothing ran
  monkeypatch.setenv(memory_check.ENV_SWITCH, "0")
  assert prog(jnp.ones((512,), jnp.float32)).shape == (512,)


@pytest.mark.parametrize("text,want", [("2G", 2 * 2**30), ("512m", 512 * 2**20), ("1000", 1000), ("1.5KB", 1536)])
def test_memory_limit_parses(monkeypatch, text, want):
  monkeypatch.setenv(memory_check.ENV_LIMIT, text)
  assert memory_check.memory_limit() == want


def test_bad_memory_limit_is_one_line(monkeypatch):
  monkeypatch.setenv(memory_check.ENV_LIMIT, "lots")
  with pytest.raises(ValueError, match="HGNN_IMA_MEMORY_LIMIT='lots' is not a size. Fix:"):
    memory_check.memory_limit()


@pytest.mark.parametrize("mode", ["full", "neighbor"])
def test_cli_refuses_a_step_over_the_limit_before_training(tmp_path, monkeypatch, mode):
  """experiments/train.py under HGNN_IMA_MEMORY_LIMIT smaller than the step: exit 2, one line, and nothing left
  in the workdir (an audit found config.json, schema.json, .lock and empty checkpoint directories there)."""
  monkeypatch.setenv(memory_check.ENV_LIMIT, "64K")  # the child process inherits it
  args = ["experiments/train.py", *TINY_CLI, *ONE_LAYER, f"--workdir={tmp_path / 'run'}", f"--config.batch.mode={mode}"]
  args += ["--config.batch.fanouts=10"] if mode == "neighbor" else []
  proc = run_python(*args, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
  assert "the compiled step needs" in line and "Fix:" in line, line
  assert ("full batch" in line) if mode == "full" else ("batch.size=" in line)
  assert not (tmp_path / "run").exists()


def test_artefact_script_refuses_a_step_over_the_limit_in_one_line(tmp_path, monkeypatch):
  """table2.py (common.run_script) reports the refusal as train.py does: exit 2, one error line, no traceback."""
  monkeypatch.setenv(memory_check.ENV_LIMIT, "64K")
  args = [
      "experiments/table2.py",
      "--tiny",
      "--models=hgnn_ima",
      "--seeds=1",
      *ONE_LAYER,
      f"--workdir={tmp_path / 'out'}",
  ]
  proc = run_python(*args, "--noprogress", timeout=300)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
  assert "the compiled step needs" in line and "Fix:" in line, line


def test_a_refused_run_removes_only_a_workdir_it_made(tmp_path, monkeypatch):
  """The refusal leaves nothing in a workdir the run made or found empty, and touches no workdir that held files."""
  from hgnn_ima_jax import train
  from hgnn_ima_jax.data_utils import load_for_config
  from hgnn_ima_jax.experiments.configs import test as test_config

  config = test_config.get_config()
  config.num_epochs = 1
  config.model.num_layers = 1  # what is refused does not matter here, only what the refusal leaves
  data = load_for_config(config)
  monkeypatch.setenv(memory_check.ENV_LIMIT, "64K")
  kept = tmp_path / "kept"
  kept.mkdir()
  (kept / "notes.txt").write_text("the user's")
  for workdir in (tmp_path / "new", kept):
    with pytest.raises(StepMemoryError):
      train.train_and_evaluate(config, str(workdir), data, progress=False)
  assert not (tmp_path / "new").exists()
  assert (kept / "notes.txt").read_text() == "the user's" and (kept / "config.json").exists()
