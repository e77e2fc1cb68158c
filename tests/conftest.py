"""Shared test fixtures: where the paper's real datasets live."""

import os
import pathlib
import tempfile

import pytest

# Many tests train the same tiny model; XLA compilation dominates their time, so share compiled
# programs through JAX's persistent cache (set before JAX is imported; subprocesses inherit it).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="hgnn-ima-xla-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The tests' graphs are tiny: XLA's backend optimisations cost more compile time than they save
# (about 40% of the suite's time). Subprocesses inherit it (the benchmark schema test records it).
FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"
if FAST_COMPILE_FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAG}".strip()

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
