"""`python -m hgnn_ima_jax.data_utils.check` on the shared datasets prints the published figures and exit codes."""

import io
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from data_helpers import copy_dataset

from hgnn_ima_jax.data_utils.check import EXIT_FEATURES_MISSING, EXIT_INVALID, EXIT_OK, EXIT_USAGE, run

REPO = pathlib.Path(__file__).resolve().parents[1]

# Figures of ../shared/datasets/README.md and spec Sec. 5, as the table prints them.
FIGURES = {
    "douban": [
        "movie (target)       1,888",
        "director             1,472",
        "actor                3,267",
        "total                6,627",
        "movie -ma-> actor                5,628",
        "movie -md-> director             1,888",
        "director -dm-> movie             1,888",
        "actor -am-> movie                5,628",
        "total                           15,032",
        "classes (2): 0: 1,067, 1: 821",
        "splits: train 380 / val 188 / test 1,320",
    ],
    "imdb": [
        "total               11,616",
        "movie -ma-> actor               12,828",
        "movie -md-> director             4,278",
        "total                           34,212",
        "classes (3): 0: 1,135, 1: 1,584, 2: 1,559",
        "splits: train 855 / val 855 / test 2,568",
    ],
    "amazon": [
        "item (target)        6,158",
        "review               7,031",
        "item -ii-> item                 14,256",
        "item -ir-> review               54,171",
        "review -ri-> item               54,171",
        "total                          122,598",
        "classes (3): 0: 3,889, 1: 776, 2: 1,493",
        "splits: train 1,233 / val 615 / test 4,310",
        "4,415 with ii in-edges, 4,579 with ri in-edges, 561 with none",
    ],
}
MISSING = {"douban": 4, "imdb": 1, "amazon": 3}


@pytest.fixture(scope="module")
def cli_runs(shared_datasets):
  """The CLI on each dataset, run as subprocesses in parallel: name -> (returncode, stdout, stderr)."""
  procs = {
      name: subprocess.Popen(
          [sys.executable, "-m", "hgnn_ima_jax.data_utils.check", f"--dataset={name}", f"--data_dir={shared_datasets}"],
          cwd=REPO,
          stdout=subprocess.PIPE,
          stderr=subprocess.PIPE,
          text=True,
      )
      for name in FIGURES
  }
  runs = {}
  for name, p in procs.items():
    stdout, stderr = p.communicate(timeout=300)
    runs[name] = (p.returncode, stdout, stderr)
  return runs


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_cli_prints_the_figures_and_lists_missing_feature_files(cli_runs, shared_datasets, name):
  rc, out, err = cli_runs[name]
  assert rc == EXIT_FEATURES_MISSING, err
  for line in FIGURES[name]:
    assert line in out, line
  listed = out.split(f"MISSING FEATURE FILES ({MISSING[name]}):")[1].split("How to proceed:")[0].split()
  assert len(listed) == MISSING[name] and all(p.startswith(str(shared_datasets / name)) for p in listed)
  assert "--features=generated" in out and "authors' download page" in out
  assert "Topology, labels and splits are VALID" in out


def test_generated_features_exit_ok_with_a_note(shared_datasets):
  out = io.StringIO()
  assert run("douban", shared_datasets, features="generated", out=out) == EXIT_OK
  assert "NOTE: some features are GENERATED" in out.getvalue() and "MISSING" not in out.getvalue()


def test_invalid_data_exits_2_with_one_line(tmp_path, shared_datasets):
  d = copy_dataset(shared_datasets, "douban", tmp_path)
  np.save(d / "labels.npy", np.zeros(5, np.int32))
  out, err = io.StringIO(), io.StringIO()
  assert run("douban", tmp_path, out=out, err=err) == EXIT_INVALID
  assert err.getvalue().count("\n") == 1 and str(d / "labels.npy") in err.getvalue()
  assert run("douban", tmp_path / "absent", out=out, err=err) == EXIT_INVALID


def test_usage_error_exits_1():
  p = subprocess.run(
      [sys.executable, "-m", "hgnn_ima_jax.data_utils.check"],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=120,
      env=dict(os.environ),
  )
  assert p.returncode == 1 and "dataset" in p.stderr


@pytest.mark.parametrize(
    "dataset,flag",
    [
        ("synthetic", {"data_dir": "/some/where"}),
        ("synthetic_amazon1", {"features": "generated"}),
        ("g.npz", {"data_dir": "d"}),
        ("g.npz", {"feature_seed": 3}),  # it seeds generated features only
    ],
)
def test_a_flag_the_dataset_does_not_read_exits_1_before_loading(dataset, flag, monkeypatch):
  from hgnn_ima_jax import data_utils

  monkeypatch.setattr(data_utils, "load_dataset", lambda *a, **k: pytest.fail("loaded"))
  out, err = io.StringIO(), io.StringIO()
  assert run(dataset, **flag, out=out, err=err) == EXIT_USAGE
  ((field, value),) = flag.items()
  assert err.getvalue().startswith(f"ERROR: --{field}={value}: is not read ") and err.getvalue().count("\n") == 1
  assert "Fix: drop --" in err.getvalue() and out.getvalue() == ""


def test_a_dataset_that_cannot_train_is_invalid(tmp_path):
  """Labels that skip classes passed `check` and trained a 1e6-wide classifier to F1 0 without a word."""
  from hgnn_ima_jax.data_utils import load_dataset, write_generic

  g = load_dataset("synthetic", scale=0.1)
  g.num_classes += 2  # two classes no node has
  path = write_generic(tmp_path / "g.npz", g)
  out, err = io.StringIO(), io.StringIO()
  assert run(str(path), out=out, err=err) == EXIT_INVALID and out.getvalue() == ""
  assert "labels: 2 of the 5 classes have no node (class 3, 4)" in err.getvalue() and "np.unique" in err.getvalue()
  assert err.getvalue().count("\n") == 1


def test_an_empty_dataset_is_refused_not_read_as_the_current_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  out, err = io.StringIO(), io.StringIO()
  assert run("", out=out, err=err) == EXIT_INVALID
  assert err.getvalue().startswith("ERROR: '': dataset: is empty. Fix: give one of douban,")


def test_output_cut_short_by_a_pipe_is_no_error(shared_datasets):
  """`check ... | head -2` ended in a BrokenPipeError traceback."""
  cmd = [sys.executable, "-m", "hgnn_ima_jax.data_utils.check", "--dataset=douban", f"--data_dir={shared_datasets}"]
  p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  p.stdout.readline()
  p.stdout.close()  # the reader has read enough
  _, err = p.communicate(timeout=120)
  assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_repeated_edges_are_counted_in_the_report(tmp_path):
  from hgnn_ima_jax.data_utils import load_dataset
  from hgnn_ima_jax.data_utils.check import report

  g = load_dataset("synthetic", scale=0.1)
  assert "repeated edges" not in report(g)
  name = g.relations[0].name
  g.edges[name] = np.concatenate([g.edges[name], g.edges[name][:7]])  # 7 rows again
  assert f"repeated edges (rows kept, each one a message): {name} 7" in report(g)
