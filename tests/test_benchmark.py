"""benchmarks/step_time.py runs end to end on a tiny graph and writes well-formed JSON lines.

A schema check, not a timing check: the script runs as a user runs it (a subprocess),
and every line it prints must parse and carry positive times for every model asked for.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "step_time.py"
OURS = ("hgnn_ima", "hgt_early", "hgt_late")
PYG = ("pyg_hgt_early", "pyg_hgt_late")
STEP_KEYS = ("record", "graph", "model", "framework", "nodes", "edges", "relations", "layers", "hidden", "heads",
             "steps", "step_s_median", "step_s_min", "step_times_s", "cpu_s_per_step", "compile_s", "losses", "rss_peak_mb",
             "process_peak_rss_mb", "machine", "versions", "date", "load_avg_start", "load_avg_end")


def _pyg_importable() -> bool:
  return all(importlib.util.find_spec(m) is not None for m in ("torch", "torch_geometric"))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
  """(records from stdout, records from --out, stderr) of one `--tiny --steps=2` run."""
  out = tmp_path_factory.mktemp("bench") / "bench.jsonl"
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--steps=2", f"--out={out}"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
  return [json.loads(ln) for ln in lines], [json.loads(ln) for ln in out.read_text().splitlines()], proc.stderr


def _steps(records, framework):
  return {r["model"]: r for r in records if r["record"] == "step" and r["framework"] == framework}


def test_every_line_is_json_and_out_matches_stdout(bench):
  stdout_records, file_records, _ = bench
  assert stdout_records, "the benchmark printed no JSON line"
  assert stdout_records == file_records


def test_our_models_have_positive_times_and_full_schema(bench):
  records, _, _ = bench
  ours = _steps(records, "jax")
  assert set(ours) == set(OURS)
  for name, r in ours.items():
    missing = [k for k in STEP_KEYS if k not in r]
    assert not missing, f"{name}: missing keys {missing}"
    assert r["graph"] == "tiny" and r["edges"] > 0 and r["nodes"] > 0
    assert len(r["step_times_s"]) == r["steps"] == 2
    assert all(t > 0 for t in r["step_times_s"])
    assert 0 < r["step_s_min"] <= r["step_s_median"]
    assert r["compile_s"] > 0 and r["lower_s"] > 0
    assert r["rss_peak_mb"] > 0 and r["machine"]["cpu_count"] >= 1 and r["versions"]["jax"]
    assert all(map(lambda x: x == x, r["losses"])), f"{name}: NaN loss"


def test_multi_seed_ratio_reported_for_hgnn_ima(bench):
  records, _, _ = bench
  row = _steps(records, "jax")["hgnn_ima"]
  for key, seed_batch in (("multi_seed", 0), ("multi_seed_map", 1)):  # vmapped and looped seeds
    ms = row[key]
    assert ms["seeds"] == 2 and ms["seed_batch"] == seed_batch
    assert ms["step_s_median"] > 0 and ms["ratio_vs_one_seed"] > 0


def test_pyg_rows_and_ratios(bench):
  if not _pyg_importable():
    pytest.skip("torch / torch_geometric not importable: the PyG comparison needs `pip install -r "
                "requirements-bench.txt` (CI does not install it)")
  records, _, _ = bench
  pyg = _steps(records, "pyg")
  assert set(pyg) == set(PYG)
  for name, r in pyg.items():
    assert all(t > 0 for t in r["step_times_s"]) and len(r["step_times_s"]) == 2
    assert r["train_check"]["losses"] and all(map(lambda x: x == x, r["losses"]))
  ours = _steps(records, "jax")
  assert ours["hgnn_ima"]["vs_pyg"]["pyg_model"] == "pyg_hgt_late"
  assert ours["hgt_early"]["vs_pyg"]["pyg_model"] == "pyg_hgt_early"
  for r in ours.values():
    assert r["vs_pyg"]["ratio"] > 0


def test_without_pyg_the_rows_say_why(bench):
  records, _, _ = bench
  r = _steps(records, "jax")["hgnn_ima"]
  if _pyg_importable():
    assert r["pyg_skipped"] is None and r["pyg_versions"]["torch_geometric"]
  else:
    assert "requirements-bench.txt" in r["pyg_skipped"] and "vs_pyg" not in r


def test_step_rusage_writes_one_json_line_per_step(tmp_path):
  """benchmarks/step_rusage.py (per-step kernel time, faults, RSS) on the tiny graph."""
  out = tmp_path / "rusage.jsonl"
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "step_rusage.py"), "--graph=tiny", "--steps=2",
                         "--layers=1", "--hidden=16", "--heads=2", "--feature_dim=32", f"--out={out}"],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
  assert rows == [json.loads(ln) for ln in out.read_text().splitlines()]
  assert [r["step"] for r in rows] == [0, 1]
  for r in rows:
    assert r["graph"] == "tiny" and r["model"] == "hgnn_ima" and r["wall_s"] > 0
    assert r["user_s"] >= 0 and r["sys_s"] >= 0 and r["minor_faults"] >= 0
    assert 0 < r["rss_mb"] <= r["peak_rss_mb"]
