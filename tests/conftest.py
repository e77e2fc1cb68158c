"""Shared test fixtures: where the paper's real datasets live."""

import importlib.metadata
import os
import pathlib
import shutil
import tempfile

import pytest

# Many tests train the same tiny model; XLA compilation dominates their time, so share compiled
# programs through JAX's persistent cache (set before JAX is imported; subprocesses inherit it).
# pytest-xdist's workers inherit the controller's directory, which imported this file first: only it makes one
# (setdefault's argument made an empty directory in every worker too).
_OWN_CACHE = None  # the directory this process made (the controller's), removed when the session ends
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _OWN_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="hgnn-ima-xla-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The tests' graphs are tiny: XLA's backend optimisations cost more compile time than they save
# (about 40% of the suite's time). Subprocesses inherit it (the benchmark schema test records it).
FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"
# XLA:CPU's MLIR fusion emitters (jaxlib 0.9) take about 45% of a tiny mini-batch run's compile time; its older
# emitters compile the same programs in about half the time (the model, edge-op, trimming and loss modules: 28% less
# wall time on 2 cores). Every comparison in the suite runs both of its sides under the flag;
# tests/test_jax_regression.py, which guards the JAX pin against an XLA:CPU crash, drops it to compile as users do.
# Only from jaxlib 0.9, where it was measured: an XLA flag a jaxlib does not know aborts the process.
LEGACY_EMITTERS_FLAG = "--xla_cpu_use_fusion_emitters=false"


def _jaxlib_at_least(major: int, minor: int) -> bool:
  try:
    version = importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return False
  parts = [int(p) if p.isdigit() else 0 for p in version.split(".")[:2]]
  return tuple(parts) >= (major, minor)


TEST_XLA_FLAGS = [FAST_COMPILE_FLAG] + ([LEGACY_EMITTERS_FLAG] if _jaxlib_at_least(0, 9) else [])
# HGNN_IMA_TEST_XLA_FLAGS=0: compile as users do (tests/test_users_compiler.py runs reference tests so)
for _flag in TEST_XLA_FLAGS if os.environ.get("HGNN_IMA_TEST_XLA_FLAGS", "1") != "0" else []:
  if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):  # a value given in XLA_FLAGS already is kept
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_flag}".strip()


# The modules that take longest (worker-seconds on 2 cores, 2026-12-07: test_devices 207, test_benchmark 178, ...),
# longest first. `--dist=loadscope` hands each worker the next module as it frees up, in collection order, so the
# long ones go first and the short ones even out the end; xdist's own reorder (modules by their *number* of tests)
# is turned off below, since it put the one 38 s test of test_users_compiler last: one worker ran it alone for the
# last ~75 s. A module missing here runs after them, in the usual order.
LONGEST_MODULES = (
    "test_devices.py",
    "test_benchmark.py",
    "test_training.py",
    "test_model_reference.py",
    "test_trimming.py",
    "test_minibatch.py",
    "test_resume_and_signals.py",
    "test_edge_ops.py",
    "test_model_properties.py",
    "test_predict.py",
    "test_memory_check.py",
    "test_cli_output.py",
    "test_inference.py",
    "test_experiments.py",
    "test_losses.py",
    "test_users_compiler.py",
)


def pytest_configure(config):
  if hasattr(config.option, "loadscopereorder"):  # pytest-xdist's --loadscope-reorder (on by default)
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module's own order is kept


def default_emitters_env() -> dict:
  """os.environ without LEGACY_EMITTERS_FLAG, for a subprocess that compiles as users do."""
  flags = os.environ.get("XLA_FLAGS", "").split()
  return dict(os.environ, XLA_FLAGS=" ".join(f for f in flags if f != LEGACY_EMITTERS_FLAG))


REPO = pathlib.Path(__file__).resolve().parents[1]
# Subprocesses (the scripts, `python -m ...`) import this checkout's package, installed or not.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
DATA_DIR = pathlib.Path(os.environ.get("HGNN_IMA_DATA_DIR", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def shared_datasets() -> pathlib.Path:
  """The directory with douban/, imdb/, amazon/ as published; skips when absent."""
  if not DATA_DIR.is_dir():
    pytest.skip(f"real datasets not found at {DATA_DIR}; set HGNN_IMA_DATA_DIR to run these tests")
  return DATA_DIR


def pytest_unconfigure(config):
  """The shared compilation cache goes with the session (each run left up to ~90 MB in /tmp); only the process
  that made it removes it, after its xdist workers have ended."""
  if _OWN_CACHE and not hasattr(config, "workerinput"):
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)
