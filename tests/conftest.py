"""Shared test fixtures: where the paper's real datasets live."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA_DIR = pathlib.Path(os.environ.get("HGNN_IMA_DATA_DIR", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def shared_datasets() -> pathlib.Path:
  """The directory with douban/, imdb/, amazon/ as published; skips when absent."""
  if not DATA_DIR.is_dir():
    pytest.skip(f"real datasets not found at {DATA_DIR}; set HGNN_IMA_DATA_DIR to run these tests")
  return DATA_DIR
