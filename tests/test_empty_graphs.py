"""Empty relation files are corrupt; a generic graph with no edges at all is an error, one empty relation is not."""

import io
import subprocess
import sys

import numpy as np
from data_helpers import copy_dataset, expect_error, write_features
from test_electronics import write_electronics
from test_generic_format import small_graph

from hgnn_ima_jax.data_utils import load_dataset, read_generic
from hgnn_ima_jax.data_utils.check import EXIT_INVALID, run
from hgnn_ima_jax.data_utils.generic import _arrays


def test_empty_rdf_is_a_corrupt_file(tmp_path, shared_datasets):
  d = copy_dataset(shared_datasets, "douban", tmp_path)
  write_features(tmp_path, "douban", dim=4)
  np.save(d / "douban_actor_rdf.npy", np.zeros((0, 3), np.int64))
  expect_error(lambda: load_dataset("douban", tmp_path), d / "douban_actor_rdf.npy", "rdf: has no rows")
  # data_utils.check reports it as invalid (exit 2) instead of VALID with 0 edges.
  out, err = io.StringIO(), io.StringIO()
  assert run("douban", tmp_path, out=out, err=err) == EXIT_INVALID
  assert "has no rows" in err.getvalue() and "VALID" not in out.getvalue()


def test_rdf_without_a_relation_the_code_reads(tmp_path, shared_datasets):
  d = copy_dataset(shared_datasets, "douban", tmp_path)
  write_features(tmp_path, "douban", dim=4)
  rdf = np.load(d / "douban_actor_rdf.npy")
  np.save(d / "douban_actor_rdf.npy", rdf[rdf[:, 2] != 0])  # no movie -> director row left
  expect_error(lambda: load_dataset("douban", tmp_path), d / "douban_actor_rdf.npy", "edges['md']", "has no rows")


def test_empty_electronics_relation_file(tmp_path):
  d, _ = write_electronics(tmp_path)
  np.save(d / "bought_together.npy", np.zeros((0, 2), np.int64))
  expect_error(
      lambda: load_dataset("amazon1", tmp_path), d / "bought_together.npy", "edges['bought_together']", "has no rows"
  )


def _generic(tmp_path, *empty):
  arrays = {}
  for key, x in _arrays(small_graph()):  # the writer's key/array pairs, edited before saving
    arrays[key] = np.zeros((0, 2), np.int64) if key in {f"edges/{r}" for r in empty} else x
  path = tmp_path / "g.npz"
  np.savez(path, **arrays)
  return path


def test_generic_graph_with_every_relation_empty(tmp_path):
  path = _generic(tmp_path, "writes", "written_by")
  expect_error(lambda: read_generic(path), path, "relations: all 2 relations are empty (the graph has no edges)")


def test_generic_graph_with_one_empty_relation_loads_and_says_so(tmp_path):
  g = read_generic(_generic(tmp_path, "written_by"))
  assert g.schema.num_edges == (20, 0)
  line = next(l for l in g.summary().splitlines() if "-written_by->" in l)
  assert "(empty: no messages along this relation)" in line
  assert "(empty" not in next(l for l in g.summary().splitlines() if "-writes->" in l)


def test_check_cli_exits_2_on_an_empty_generic_graph(tmp_path):
  from conftest import REPO

  path = _generic(tmp_path, "writes", "written_by")
  p = subprocess.run(
      [sys.executable, "-m", "hgnn_ima_jax.data_utils.check", f"--dataset={path}"],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert p.returncode == EXIT_INVALID and "all 2 relations are empty" in p.stderr
  assert len(p.stderr.strip().splitlines()) == 1
