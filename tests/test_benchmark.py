"""benchmarks/step_time.py runs end to end on a tiny graph: one process per (framework, variant), same graph.

A schema check, not a timing check: the script runs as a user runs it (a subprocess), with
a small variant matrix; every line must parse, every worker must have read the same graph,
and each row must say which settings its process really ran under. The PyG checks (a
separate process, its thread count and allocator) skip, with the reason, without torch.
The pure parts (run order, best variant, ratio, variant environments) are checked directly.
"""

import importlib.util
import json
import math
import os
import pathlib
import re
import signal
import statistics
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_cli  # noqa: E402
import bench_subprocess  # noqa: E402
import bench_variants as bv  # noqa: E402
import report  # noqa: E402

from hgnn_ima_jax.runtime import JEMALLOC_CONF, find_jemalloc  # noqa: E402

SCRIPT = REPO / "benchmarks" / "step_time.py"
OURS = ("hgnn_ima",)  # one model keeps the test fast; the others take the same path with another name
PYG = ("pyg_hgt_late",)
# Both allocators at XLA's default threads; the single-CPU variant runs in the seed-repetitions test.
MATRIX = ["--allocators=glibc,jemalloc", "--ours_threads=default", "--pyg_omp=PASSIVE", "--pyg_threads=1,2"]
STEP_KEYS = (
    "record",
    "graph",
    "model",
    "framework",
    "variant",
    "settings",
    "phase",
    "rep",
    "nodes",
    "edges",
    "relations",
    "layers",
    "hidden",
    "heads",
    "steps",
    "step_s_median",
    "step_s_min",
    "step_times_s",
    "cpu_s_per_step",
    "compile_s",
    "losses",
    "rss_peak_mb",
    "process_peak_rss_mb",
    "versions",
    "date",
    "load_avg_start",
    "load_avg_end",
    "pid",
    "parent_pid",
    "cpu_count",
    "env",
    "runtimes",
    "graph_checksum",
)
NO_PYG = (
    "torch / torch_geometric not importable: the PyG comparison needs `pip install -r requirements-bench.txt` "
    "(CI does not install it)"
)


def _pyg_importable() -> bool:
  return all(importlib.util.find_spec(m) is not None for m in ("torch", "torch_geometric"))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
  """(records from stdout, records from --out, stderr) of one `--tiny --steps=2` run with a small matrix."""
  tmp = tmp_path_factory.mktemp("bench")
  out = tmp / "bench.jsonl"
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  cmd = [
      sys.executable,
      str(SCRIPT),
      "--tiny",
      "--steps=2",
      f"--models={','.join(OURS)}",
      *MATRIX,
      f"--out={out}",
      f"--profile_dir={tmp / 'prof'}",
      "--profile_graphs=tiny",
      "--profile_steps=1",
      "--profile_top=5",
  ]
  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
  return [json.loads(ln) for ln in lines], [json.loads(ln) for ln in out.read_text().splitlines()], proc.stderr


def _run(records):
  (run,) = [r for r in records if r["record"] == "run"]
  return run


def _steps(records, framework):
  return [r for r in records if r["record"] == "step" and r["framework"] == framework]


def test_every_line_is_json_and_out_matches_stdout(bench):
  stdout_records, file_records, _ = bench
  assert stdout_records, "the benchmark printed no JSON line"
  assert stdout_records == file_records
  assert not [r for r in stdout_records if r["record"] == "error"]


def test_our_rows_full_schema_own_process_same_graph(bench):
  records, _, _ = bench
  run, ours = _run(records), _steps(records, "jax")
  assert sorted({r["variant"] for r in ours}) == sorted(run["matrix"]["jax"])
  assert {(r["variant"], r["model"]) for r in ours} == {(v, m) for v in run["matrix"]["jax"] for m in OURS}
  for r in ours:
    missing = [k for k in STEP_KEYS if k not in r]
    assert not missing, f"{r['model']}: missing keys {missing}"
    assert r["graph"] == "tiny" and r["edges"] > 0 and r["nodes"] > 0 and r["phase"] == "final" and r["rep"] == 0
    assert len(r["step_times_s"]) == r["steps"] == 2 and all(t > 0 for t in r["step_times_s"])
    assert 0 < r["step_s_min"] <= r["step_s_median"]
    assert r["compile_s"] > 0 and r["lower_s"] > 0 and r["rss_peak_mb"] > 0 and r["versions"]["jax"]
    assert all(x == x for x in r["losses"]), f"{r['model']}: NaN loss"
    assert r["pid"] != run["pid"] and r["parent_pid"] == run["pid"] and r["jax_backend_started"] is True
    assert r["torch_imported"] is False
    # XLA's estimate of the step's memory traffic, per second of the median step; no peak bandwidth on a CPU
    assert r["xla_cost"]["bytes_accessed"] > 0 and r["xla_cost"]["flops"] > 0
    bw = r["bandwidth"]
    assert bw["bytes_per_s"] == pytest.approx(r["xla_cost"]["bytes_accessed"] / r["step_s_median"])
    assert bw["peak_bytes_per_s"] is None and bw["peak_share"] is None
  assert len({r["graph_checksum"] for r in records if "graph_checksum" in r}) == 1
  assert len({r["pid"] for r in ours}) == len(run["matrix"]["jax"])  # one process per variant


def _assert_our_settings(records):
  """Each of our rows ran under its variant's settings: its CPUs, its allocator and MALLOC_CONF."""
  run = _run(records)
  for r in _steps(records, "jax"):
    assert r["settings"]["omp_wait_policy"] is None
    if r["settings"]["threads"] == "cpus1":
      assert r["cpu_count"] == 1 and len(r["cpus"]) == 1
    else:
      assert r["cpu_count"] == run["machine"]["cpu_count"]
    if r["settings"]["allocator"] == "jemalloc":
      assert r["runtimes"]["jemalloc"] and r["env"]["MALLOC_CONF"] == JEMALLOC_CONF
    else:
      assert r["runtimes"]["jemalloc"] is None and r["env"]["MALLOC_CONF"] is None


def test_our_variants_run_under_their_settings(bench):
  records, _, _ = bench
  run = _run(records)
  _assert_our_settings(records)
  assert {r["settings"]["allocator"] for r in _steps(records, "jax")} >= {"glibc"}
  if find_jemalloc() is None:
    assert "jemalloc" in run["unavailable"]["jax:jemalloc/xla-default"]
    assert "jemalloc/xla-default" not in run["matrix"]["jax"]


def test_multi_seed_ratio_reported_once_for_hgnn_ima(bench):
  records, _, _ = bench
  rows = [r for r in _steps(records, "jax") if "multi_seed" in r]
  assert [(r["model"], r["variant"]) for r in rows] == [("hgnn_ima", _run(records)["matrix"]["jax"][0])]
  for key, seed_batch in (("multi_seed", 0), ("multi_seed_map", 1)):  # vmapped and looped seeds
    ms = rows[0][key]
    assert ms["seeds"] == 2 and ms["seed_batch"] == seed_batch
    assert ms["step_s_median"] > 0 and ms["ratio_vs_one_seed"] > 0


def test_seed_reps_time_the_seeds_in_each_repetition(tmp_path):
  """--seed_reps=2: the multi-seed timing runs in both repetitions of our first variant, each against its own worker's
  one-seed median, and the report's seed table has a row per repetition."""
  out = tmp_path / "seeds.jsonl"
  allocator = "jemalloc" if find_jemalloc() else "glibc"
  flags = ["--tiny", "--nopyg", "--models=hgnn_ima", f"--allocators={allocator}", "--ours_threads=cpus1"]
  cmd = [sys.executable, str(SCRIPT), *flags, "--reps=2", "--seed_reps=2", "--steps=1", f"--out={out}"]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-2000:]
  records = [json.loads(ln) for ln in out.read_text().splitlines()]
  _assert_our_settings(records)  # here: the single-CPU variant
  rows = [r for r in _steps(records, "jax") if r.get("phase") == "final"]
  assert {r["settings"]["threads"] for r in rows} == {"cpus1"}
  assert [(r["rep"], "multi_seed" in r) for r in rows] == [(0, True), (1, True)]
  for r in rows:
    ms = r["multi_seed_map"]
    assert ms["ratio_vs_one_seed"] == pytest.approx(ms["step_s_median"] / r["step_s_median"])
  table = report.seed_table(rows)
  assert [ln.split(" | ")[2] for ln in table.splitlines()[2:]] == ["0", "1"]


def test_profile_line_maps_the_trace_to_hlo_ops(bench):
  records, _, _ = bench
  (prof,) = [r for r in records if r["record"] == "profile"]
  assert prof["graph"] == "tiny" and prof["variant"] == _run(records)["matrix"]["jax"][0] and prof["steps"] == 1
  assert 0 < len(prof["top_ops"]) <= 5 and prof["op_ms_per_step"] > 0
  shares = [op["share"] for op in prof["top_ops"]]
  assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-9
  assert all(re.match(rf"(ROOT\s+)?%?{re.escape(op['name'])}\s*=", op["hlo"]) for op in prof["top_ops"])
  assert any(op["fused"] for op in prof["top_ops"] if op["opcode"] == "fusion")
  assert set(prof["by_class_ms_per_step"]) <= {
      f"{s}:{w}" for s in ("edge", "node") for w in ("scatter", "gather", "dot", "reduce", "sort", "elementwise/copy")
  }


def test_best_lines_name_the_fastest_variant(bench):
  records, _, _ = bench
  best = {(r["framework"], r["model"]): r for r in records if r["record"] == "best"}
  steps = [r for r in records if r["record"] == "step"]
  assert {m for fw, m in best if fw == "jax"} == set(OURS)
  for (fw, m), b in best.items():
    mine = [r for r in steps if (r["framework"], r["model"]) == (fw, m)]
    fastest = min(mine, key=lambda r: r["step_s_median"])
    assert b["best_variant"] == fastest["variant"] and b["step_s"] == fastest["step_s_median"]
    assert set(b["variants"]) == {r["variant"] for r in mine}


def test_pyg_rows_come_from_their_own_processes_with_their_settings(bench):
  if not _pyg_importable():
    pytest.skip(NO_PYG)
  records, _, _ = bench
  run, pyg, ours = _run(records), _steps(records, "pyg"), _steps(records, "jax")
  assert {(r["variant"], r["model"]) for r in pyg} == {(v, m) for v in run["matrix"]["pyg"] for m in PYG}
  our_pids = {r["pid"] for r in ours}
  for r in pyg:
    assert r["pid"] != run["pid"] and r["pid"] not in our_pids and r["parent_pid"] == run["pid"]
    assert r["jax_backend_started"] is False, "JAX ran in a PyG worker"
    assert r["torch_threads"] == int(r["settings"]["threads"]) == r["versions"]["torch_threads"]
    assert r["settings"]["pyg_exec"] == "eager" and r["torch_compile"] is False and r["compile_s"] == 0.0
    assert r["env"]["OMP_WAIT_POLICY"] == r["settings"]["omp_wait_policy"] == "PASSIVE"
    assert r["runtimes"]["openmp"], "torch's OpenMP runtime is not mapped: the wait policy would mean nothing"
    assert bool(r["runtimes"]["jemalloc"]) == (r["settings"]["allocator"] == "jemalloc")
    assert all(t > 0 for t in r["step_times_s"]) and len(r["step_times_s"]) == 2
  assert len({r["pid"] for r in pyg}) == len(run["matrix"]["pyg"])
  checked = [r for r in pyg if r["train_check"]]
  assert {r["variant"] for r in checked} == {run["matrix"]["pyg"][0]}
  assert all(r["train_check"]["losses"] for r in checked)
  ratios = {r["model"]: r for r in records if r["record"] == "ratio"}
  assert set(ratios) == {"hgnn_ima"} and ratios["hgnn_ima"]["pyg_model"] == "pyg_hgt_late"
  best = {(r["framework"], r["model"]): r for r in records if r["record"] == "best"}
  for m, r in ratios.items():
    assert r["pyg_variant"] == best[("pyg", r["pyg_model"])]["best_variant"]
    assert r["ratio"] == pytest.approx(best[("jax", m)]["step_s"] / best[("pyg", r["pyg_model"])]["step_s"])
  r = ratios["hgnn_ima"]
  row = (
      f"| hgnn_ima | `{r['variant']}` | {report.fmt_ms(r['step_s'])} | pyg_hgt_late | `{r['pyg_variant']}` | "
      f"{report.fmt_ms(r['pyg_step_s'])} | {r['ratio']:.2f}"
  )
  assert row in report.report(records)


def test_compiled_pyg_rows_say_so_and_count_the_compile(tmp_path):
  if not _pyg_importable():
    pytest.skip(NO_PYG)
  out = tmp_path / "bench.jsonl"
  cmd = [sys.executable, str(SCRIPT), "--tiny", "--steps=2", "--models=hgnn_ima", "--allocators=glibc"]
  cmd += ["--ours_threads=default", "--pyg_omp=unset", "--pyg_threads=1", "--pyg_exec=inductor", "--pyg_check_steps=0"]
  cmd += ["--seeds=0", f"--out={out}"]
  proc = subprocess.run(
      cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env={**os.environ, "JAX_PLATFORMS": "cpu"}
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  (row,) = _steps([json.loads(ln) for ln in out.read_text().splitlines()], "pyg")
  assert row["variant"] == "glibc/omp-unset/threads-1/inductor" and row["settings"]["pyg_exec"] == "inductor"
  assert row["torch_compile"] is True and row["compile_s"] == row["first_step_s"] > 0
  assert len(row["step_times_s"]) == 2 and all(map(math.isfinite, row["losses"]))


def test_without_pyg_the_run_says_why(bench):
  records, _, _ = bench
  run = _run(records)
  if _pyg_importable():
    assert run["pyg_skipped"] is None and run["matrix"]["pyg"]
  else:
    assert "requirements-bench.txt" in run["pyg_skipped"] and run["matrix"]["pyg"] == []
    assert not _steps(records, "pyg") and not [r for r in records if r["record"] == "ratio"]


def test_report_prints_each_sides_best_settings(bench):
  records, _, _ = bench
  text = report.report(records)
  for b in (r for r in records if r["record"] == "best"):
    assert f"| tiny | {b['model']} | `{b['best_variant']}` |" in text


def test_unknown_variant_is_refused_before_any_work(tmp_path):
  proc = subprocess.run(
      [sys.executable, str(SCRIPT), "--tiny", "--allocators=glibc,tcmalloc"],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=120,
      env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )
  assert proc.returncode != 0
  assert "--allocators=glibc,tcmalloc: tcmalloc is not one of jemalloc, glibc" in proc.stderr


@pytest.mark.parametrize(
    "script,flags",
    [
        ("step_time.py", ["--graphs=tiny,imdb", "--nopyg", f"--out={os.devnull}"]),
        ("step_memory.py", ["--graphs=imdb"]),
        ("step_rusage.py", ["--graph=imdb"]),
    ],
)
def test_missing_dataset_files_are_one_line_before_any_work(tmp_path, script, flags):
  """A real graph whose files are not in --data_dir: one line naming the files and the fix, exit 2, no traceback,
  and (step_time) no worker started for the graphs listed before it."""
  proc = subprocess.run(
      [sys.executable, str(REPO / "benchmarks" / script), *flags, f"--data_dir={tmp_path}"],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=120,
      env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
  assert len(lines) == 1 and str(tmp_path / "imdb") in lines[0] and "Fix:" in lines[0], proc.stderr[-2000:]
  assert '"record": "step"' not in proc.stdout


@pytest.mark.parametrize(
    "script,flags,message",
    [
        ("step_memory.py", ["--remat=maybe"], "error: --remat=maybe: maybe is not one of false, true"),  # was remat off
        ("step_memory.py", ["--models=gcn"], "error: --models=gcn: gcn is not one of hgnn_ima"),  # was a traceback
        ("step_rusage.py", ["--steps=0"], "error: --steps=0: give at least 1 timed step"),  # printed nothing, exit 0
        (
            "scale.py",
            ["--modes=foo"],
            "error: --modes=foo: foo is not one of neighbor, hgt, full",
        ),  # an error row, exit 0
        ("scale.py", ["--devices=x"], "error: --devices=x: give N devices or PxN"),  # was a traceback
        ("step_time.py", ["--tiny", "--graphs=nope"], "error: --graphs=nope: nope is not one of"),  # was ignored
        ("report.py", ["/nonexistent.jsonl"], "error: /nonexistent.jsonl: cannot be read"),  # was a traceback
        # PyG asked for by a flag and unable to run: was "0 of PyG" and exit 0
        ("step_time.py", ["--tiny", "--pyg_python=/nonexistent"], "error: --pyg_python=/nonexistent: no such exec"),
        ("step_time.py", ["--tiny", "--pyg_threads=abc"], "error: --pyg_threads=abc: give a comma list"),  # int()
        ("step_time.py", ["--tiny", "--screen_steps=1", "--finalists=0"], "error: --finalists=0: must be at least 1"),
        # a profile or seed list naming none of the run's graphs did nothing; unknown names were never checked
        ("step_time.py", ["--tiny", "--profile_dir=/tmp/p"], "error: --profile_graphs=amazon,synthetic_amazon1: nam"),
        ("step_time.py", ["--tiny", "--profile_graphs=amazn"], "error: --profile_graphs=amazn: amazn is not one of"),
        ("step_time.py", ["--graphs=douban", "--seed_graphs=imdb", "--seeds=5"], "error: --seed_graphs=imdb: names"),
        # an --out that cannot be written: a traceback after the work (sampled_accuracy: after a whole training)
        ("step_time.py", ["--tiny", "--out=/nonexistent-dir/x.jsonl"], "error: --out=/nonexistent-dir/x.jsonl: its"),
        ("scale.py", ["--out=/nonexistent-dir/x.jsonl"], "error: --out=/nonexistent-dir/x.jsonl: its directory"),
        ("step_memory.py", ["--out=/"], "error: --out=/: is a directory"),
        ("step_rusage.py", ["--out=/nonexistent-dir/x"], "error: --out=/nonexistent-dir/x: its directory"),
        ("sampled_accuracy.py", ["--out=/nonexistent-dir/x"], "error: --out=/nonexistent-dir/x: its directory"),
        # values a worker failed on (an error row, exit 0) or wrote as NaN or as an empty list
        ("scale.py", ["--sampler_batches=0"], "error: --sampler_batches=0: must be at least 1"),  # ZeroDivisionError
        ("scale.py", ["--fanouts=10,x"], "error: --fanouts=10,x: give a comma list of integers"),
        ("scale.py", ["--modes=full", "--full_steps=0"], "error: --full_steps=0: must be at least 1"),  # NaN
        ("step_memory.py", ["--residuals=-2"], "error: --residuals=-2: must be at least 0"),  # "residuals": []
        # a run refused by experiments/train.py after the modes before it had trained (an error in the JSON)
        ("sampled_accuracy.py", ["--modes=full,ful"], "error: --modes=full,ful: ful is not one of full, neighbor"),
        ("sampled_accuracy.py", ["--seeds=0"], "error: --seeds=0: is not a positive count"),
        ("sampled_accuracy.py", ["--dataset=synthetc"], "error: --dataset=synthetc: is neither a known dataset"),
        ("devices.py", ["--steps=0"], "error: --steps=0: must be at least 1"),  # a ZeroDivisionError, "failed"
        ("devices.py", ["--devices=-1"], "error: --devices=-1: must be at least 0"),
    ],
)
def test_a_flag_a_benchmark_cannot_honour_is_one_line_before_any_work(script, flags, message):
  proc = subprocess.run(
      [sys.executable, str(REPO / "benchmarks" / script), *flags],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=120,
      env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )
  assert proc.returncode == 1 and proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
  assert '"record"' not in proc.stdout


def _fake_python(path: pathlib.Path, script: str) -> pathlib.Path:
  """A stand-in interpreter: a shell script that answers the PyG probe as `script` says."""
  path.write_text("#!/bin/sh\n" + script)
  path.chmod(0o755)
  return path


def test_pyg_flags_given_make_pyg_required(tmp_path):
  """--pyg_python or --pyg_device given, and PyG unable to run there: one line naming the flag, exit 1, before any
  work (it was "0 of PyG" and exit 0); a relative --pyg_python is found from the current directory."""
  _fake_python(tmp_path / "notorch", "echo \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n")
  _fake_python(tmp_path / "cputorch", "echo 2.13.0+cpu None False\n")
  cases = [
      (["--pyg_python=./notorch"], "error: --pyg_python=./notorch: torch/torch_geometric not importable"),
      (["--pyg_python=cputorch", "--pyg_device=cuda"], None),  # a bare name is looked up on PATH, not here
      (["--pyg_python=./cputorch", "--pyg_device=cuda"], "error: --pyg_device=cuda: torch 2.13.0+cpu of ./cputorch"),
  ]
  for flags, message in cases:
    cmd = [sys.executable, str(SCRIPT), "--tiny", *flags, f"--out={tmp_path / 'never.jsonl'}"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(message or "error: --pyg_python=cputorch: no such executable"), proc.stderr
    assert not (tmp_path / "never.jsonl").exists() and not proc.stdout
  assert bench_subprocess.resolve_python(str(tmp_path / "cputorch")) == str(tmp_path / "cputorch")
  assert bench_subprocess.resolve_python("sh") == os.path.abspath(__import__("shutil").which("sh"))
  assert bench_subprocess.resolve_python(str(tmp_path)) is None  # a directory


def test_out_is_checked_and_an_existing_one_is_appended_to(tmp_path):
  """bench_cli.check_out, which every benchmark script calls before its work: one line for what cannot be
  written, and the line to print when the rows go onto an existing file."""
  with pytest.raises(ValueError, match=r"^--out=.*: is a directory\. Fix: "):
    bench_cli.check_out(str(tmp_path))
  with pytest.raises(ValueError, match=r"^--out=.*/missing/x.jsonl: its directory .*missing does not exist"):
    bench_cli.check_out(str(tmp_path / "missing" / "x.jsonl"))
  new = tmp_path / "new.jsonl"
  assert bench_cli.check_out(str(new)) is None and not new.exists() and os.listdir(tmp_path) == []
  new.write_text('{"record": "run"}\n')
  assert bench_cli.check_out(str(new)) == f"# --out={new} exists: the new rows are appended to it"
  assert new.read_text() == '{"record": "run"}\n'  # the probe changed nothing
  assert bench_cli.check_out("") is None


def test_report_names_the_bad_line_and_refuses_other_files(tmp_path):
  """report.py's input: the file's line number (it was always 'line 1'), a line that is not an object (an
  AttributeError traceback), and a file without step_time.py rows (it printed 'None, None xNone' and exit 0)."""
  cases = {
      "bad.jsonl": ('{"record": "run"}\n\n{bad\n', "bad.jsonl: line 3 is not JSON"),
      "list.jsonl": ('{"record": "run"}\n[1, 2]\n', "list.jsonl: line 2 is not a JSON object (list)"),
      "empty.jsonl": ("", "no step_time.py rows in "),
      "blank.jsonl": ("\n  \n", "no step_time.py rows in "),
      "other.jsonl": ('{"a": 1}\n{"record": "scale", "graph": "tiny"}\n', "no step_time.py rows in "),
  }
  for name, (text, message) in cases.items():
    (tmp_path / name).write_text(text)
    with pytest.raises(SystemExit) as e:
      report.read_rows(str(tmp_path / name))
    assert str(e.value).startswith("error: ") and message in str(e.value) and "\n" not in str(e.value), e.value
  (tmp_path / "ok.jsonl").write_text('{"record": "run", "run_id": "x"}\n')
  assert report.read_rows(str(tmp_path / "ok.jsonl")) == [{"record": "run", "run_id": "x"}]
  proc = subprocess.run(
      [sys.executable, str(REPO / "benchmarks" / "report.py"), str(tmp_path / "ok.jsonl"), str(tmp_path / "a.jsonl")],
      capture_output=True,
      text=True,
      timeout=60,
  )
  assert proc.returncode == 1 and not proc.stdout, proc.stdout  # every file is read before the first table


def test_sample_std():
  """The seeds' spread is the sample std (n - 1), as everywhere in the project (sampled_accuracy.py used pstdev)."""
  mean, std = bench_cli.mean_std([0.6445, 0.6392, 0.6375, 0.6194, 0.6453])
  assert mean == pytest.approx(0.63718) and std == pytest.approx(0.010486, abs=1e-6)  # pstdev: 0.009379
  assert bench_cli.mean_std([0.5]) == (0.5, None)  # one seed has no spread: n/a, as metrics.mean_std


def test_workers_get_the_runs_own_xla_cache_and_tmpdir():
  """An inherited JAX_COMPILATION_CACHE_DIR made --noxla_cache do nothing and the cold compile warm: the workers'
  environment drops it, and has the run's cache only with --xla_cache; TMPDIR is the run's work directory."""
  base = {"PATH": "/bin", "JAX_COMPILATION_CACHE_DIR": "/home/x/cache", "JAX_ENABLE_COMPILATION_CACHE": "false"}
  ours, pyg = bv.Variant("jax", "glibc", "default"), bv.Variant("pyg", "glibc", "1")
  env = bv.worker_env(ours, base, None, xla_cache=None, tmpdir="/w/tmp")
  assert not {"JAX_COMPILATION_CACHE_DIR", "JAX_ENABLE_COMPILATION_CACHE"} & set(env) and env["TMPDIR"] == "/w/tmp"
  env = bv.worker_env(ours, base, None, xla_cache="/w/xla-cache", tmpdir="/w/tmp")
  assert env["JAX_COMPILATION_CACHE_DIR"] == "/w/xla-cache" and "JAX_ENABLE_COMPILATION_CACHE" not in env
  env = bv.worker_env(pyg, base, None, xla_cache="/w/xla-cache", tmpdir="/w/tmp")
  assert "JAX_COMPILATION_CACHE_DIR" not in env and env["TMPDIR"] == "/w/tmp"  # PyG's templates go with the run
  with pytest.raises(ValueError, match="libjemalloc"):
    bv.worker_env(bv.Variant("jax", "jemalloc", "default"), base, None, xla_cache=None, tmpdir="/w/tmp")


# --- stopping: SIGTERM/SIGINT stop the workers and remove the work directory ----------------------------


def _children(pid: int, running: str) -> list[int]:
  """The pids whose parent is `pid` and whose command line holds `running` (from /proc)."""
  kids = []
  for d in os.listdir("/proc"):
    if d.isdigit():
      try:
        with open(f"/proc/{d}/stat") as f:
          stat = f.read()
        with open(f"/proc/{d}/cmdline", "rb") as f:
          cmdline = f.read().decode(errors="replace")
      except OSError:
        continue
      if int(stat.rsplit(")", 1)[1].split()[1]) == pid and running in cmdline:
        kids.append(int(d))
  return kids


def _running(pid: int) -> bool:
  """Whether `pid` exists and is not a zombie."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except OSError:
    return False


def _gone(pids, timeout: float) -> bool:
  deadline = time.monotonic() + timeout
  while any(_running(p) for p in pids) and time.monotonic() < deadline:
    time.sleep(0.05)
  return not any(_running(p) for p in pids)


def _kill(pids) -> None:
  for pid in pids:  # only the processes this test started (or its orchestrator started)
    if _running(pid):
      os.kill(pid, signal.SIGKILL)


def test_sigterm_stops_the_worker_and_removes_the_work_dir(tmp_path):
  """SIGTERM to step_time.py while its worker times a million steps: the worker is stopped (it went on, re-parented
  to pid 1, for up to --worker_timeout), the work directory is removed, one line, exit 143."""
  flags = ["--tiny", "--nopyg", "--models=hgnn_ima", "--allocators=glibc", "--ours_threads=default", "--seeds=0"]
  cmd = [sys.executable, str(SCRIPT), *flags, "--steps=1000000", f"--out={tmp_path / 'out.jsonl'}"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "TMPDIR": str(tmp_path)}  # the work directory is made in TMPDIR
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  workers = []
  try:
    deadline = time.monotonic() + 120
    while not workers and proc.poll() is None and time.monotonic() < deadline:
      time.sleep(0.1)
      workers = _children(proc.pid, "bench_worker.py")
    assert workers, f"no worker started: {proc.poll()}"
    time.sleep(1)  # the worker is importing JAX or compiling by now
    assert proc.poll() is None and all(_running(p) for p in workers)
    (work,) = tmp_path.glob("hgnn-bench-*")
    assert (work / "tiny.npz").exists()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err and err.splitlines()[-1].startswith("step_time.py: stopped by SIGTERM: 1 child")
    assert _gone(workers, 5) and not work.exists()
  finally:
    _kill([proc.pid, *workers])
    proc.wait()


# A stand-in orchestrator: a child that starts a grandchild, and a temporary directory, through bench_subprocess.
ORCHESTRATOR = """
import subprocess, sys
sys.path.insert(0, sys.argv[1])
import bench_subprocess
bench_subprocess.stop_on_signals("stand-in")
work = bench_subprocess.temp_dir("stand-in-")
child = bench_subprocess.start(
    ["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
)
print(child.pid, child.stdout.readline().strip(), work, flush=True)
child.wait()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_an_orchestrators_children_stop_with_it(tmp_path, sig):
  """bench_subprocess, which every orchestrator starts its children with: on SIGINT the child and what it started
  are killed, the temporary directory is removed, one line, exit 130 (no KeyboardInterrupt traceback); on a SIGKILL,
  which no handler sees, the child dies with its parent (PR_SET_PDEATHSIG)."""
  cmd = [sys.executable, "-c", ORCHESTRATOR, str(REPO / "benchmarks")]
  env = {**os.environ, "TMPDIR": str(tmp_path)}
  proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  pids = []
  try:
    child, grandchild, work = proc.stdout.readline().split()
    pids = [int(child), int(grandchild)]
    assert all(_running(p) for p in pids) and os.path.isdir(work)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    if sig == signal.SIGINT:
      assert (
          proc.returncode == 130 and err == f"stand-in: stopped by SIGINT: 1 child process(es) killed, removed {work}\n"
      )
      assert _gone(pids, 5) and not os.path.exists(work)
    else:
      assert proc.returncode == -signal.SIGKILL and _gone(pids[:1], 5)
  finally:
    _kill([proc.pid, *pids])
    proc.wait()


# --- the pure parts ------------------------------------------------------------------------


def test_interleave_spreads_both_frameworks_and_reverses_every_other_rep():
  assert bv.interleave([1, 2], ["a", "b"]) == [1, "a", 2, "b"]
  assert bv.interleave([1, 2], list("abcdef")) == [1, "a", "b", "c", 2, "d", "e", "f"]
  assert bv.interleave([], ["a"]) == ["a"]
  assert bv.run_order([1, 2], ["a", "b"], 0) == [1, "a", 2, "b"]
  assert bv.run_order([1, 2], ["a", "b"], 1) == ["b", 2, "a", 1]


def _row(fw, model, variant, median, cpu=1.0, graph="g"):
  return {
      "record": "step",
      "graph": graph,
      "framework": fw,
      "model": model,
      "variant": variant,
      "step_s_median": median,
      "cpu_s_per_step": cpu,
  }


def test_best_is_min_over_reps_and_ratio_uses_each_sides_fastest():
  rows = [
      _row("jax", "hgnn_ima", "a", 3.0),
      _row("jax", "hgnn_ima", "a", 1.0, cpu=2.0),
      _row("jax", "hgnn_ima", "b", 1.5),
      _row("jax", "hgnn_ima", "b", 1.2),
      _row("pyg", "pyg_hgt_late", "x", 5.0),
      _row("pyg", "pyg_hgt_late", "y", 4.0, cpu=8.0),
      _row("pyg", "pyg_hgt_late", "y", 6.0),
  ]
  recs = bv.best_records(rows, {"hgnn_ima": "pyg_hgt_late"})
  best = {r["framework"]: r for r in recs if r["record"] == "best"}
  assert best["jax"]["best_variant"] == "a" and best["jax"]["variants"] == {"a": 1.0, "b": 1.2}
  assert best["pyg"]["best_variant"] == "y" and best["pyg"]["step_s"] == 4.0
  (ratio,) = [r for r in recs if r["record"] == "ratio"]
  assert (ratio["variant"], ratio["pyg_variant"], ratio["ratio"], ratio["cpu_ratio"]) == ("a", "y", 0.25, 0.25)
  assert bv.finalists(rows, 1) == {"a", "y"}


def test_report_ratio_table_shows_both_sides_best_settings():
  rows = [
      _row("jax", "hgnn_ima", "a", 0.2),
      _row("jax", "hgnn_ima", "b", 0.3),
      _row("pyg", "pyg_hgt_late", "x", 0.5),
      _row("pyg", "pyg_hgt_late", "y", 0.8),
  ]
  table = report.ratio_table(bv.best_records(rows, {"hgnn_ima": "pyg_hgt_late"}), {"g": 1234})
  assert "| g | 1,234 | hgnn_ima | `a` | 200 | pyg_hgt_late | `x` | 500 | 0.40 (1.00) |" in table
  # a run without PyG: one line, not a header with no rows (from an audit)
  ours = bv.best_records(rows[:2], {"hgnn_ima": "pyg_hgt_late"})
  assert report.ratio_table(ours, {"g": 1234}) == "No ours/PyG ratio: this run has no PyG row (the header says why)."


def test_variant_env_sets_only_its_own_settings():
  base = {
      "PATH": "/bin",
      "LD_PRELOAD": "/x/libjemalloc.so.2",
      "MALLOC_CONF": "narenas:4",
      "OMP_WAIT_POLICY": "ACTIVE",
      "XLA_FLAGS": "--a=1",
  }
  env, why = bv.variant_env(bv.Variant("pyg", "glibc", "2", "unset"), base, "/lib/libjemalloc.so.2")
  assert why is None and env["PATH"] == "/bin"
  assert not {"LD_PRELOAD", "MALLOC_CONF", "OMP_WAIT_POLICY"} & set(env)
  env, _ = bv.variant_env(bv.Variant("pyg", "jemalloc_default", "1", "PASSIVE"), base, "/lib/libjemalloc.so.2")
  assert env["LD_PRELOAD"] == "/lib/libjemalloc.so.2" and "MALLOC_CONF" not in env
  assert env["OMP_WAIT_POLICY"] == "PASSIVE"
  env, _ = bv.variant_env(bv.Variant("jax", "jemalloc", "eigen1"), base, "/lib/libjemalloc.so.2")
  assert env["MALLOC_CONF"] == JEMALLOC_CONF and env["XLA_FLAGS"] == f"--a=1 {bv.EIGEN1_FLAG}"
  assert "OMP_WAIT_POLICY" not in env
  env, why = bv.variant_env(bv.Variant("jax", "jemalloc", "default"), base, None)
  assert env is None and "libjemalloc" in why
  env, _ = bv.variant_env(bv.Variant("jax", "glibc_thp", "default"), base, None)
  assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1" and env["XLA_FLAGS"] == "--a=1"


def test_pyg_exec_adds_compiled_variants_and_keeps_the_eager_names():
  ours, pyg = bv.matrix(["glibc"], ["default"], [1, 2], ["unset"], ["eager", "inductor"])
  assert [v.name for v in ours] == ["glibc/xla-default"]
  assert [v.name for v in pyg] == [
      "glibc/omp-unset/threads-1",
      "glibc/omp-unset/threads-2",
      "glibc/omp-unset/threads-1/inductor",
      "glibc/omp-unset/threads-2/inductor",
  ]
  assert [v.settings()["pyg_exec"] for v in pyg] == ["eager", "eager", "inductor", "inductor"]
  assert ours[0].settings()["pyg_exec"] is None
  assert [v.name for v in bv.matrix(["glibc"], ["default"], [2], ["unset"])[1]] == ["glibc/omp-unset/threads-2"]
  with pytest.raises(ValueError, match="--pyg_exec=eager,jit: jit is not one of eager, inductor"):
    bv.check_choices("pyg_exec", ["eager", "jit"], bv.PYG_EXEC)


def test_graph_checksum_survives_the_file_and_sees_one_changed_value(tmp_path):
  """What the workers compare: equal after write_generic/read_generic, different after one float changes."""
  from bench_graphs import graph_checksum, load_graph

  from hgnn_ima_jax import data_utils

  g = load_graph("tiny", "", 8)
  again = data_utils.read_generic(data_utils.write_generic(tmp_path / "g.npz", g))
  assert graph_checksum(again) == graph_checksum(g)
  t, m = g.target_type, g.modalities[-1]
  g.features[t][m] = g.features[t][m].copy()
  g.features[t][m][3, 1] += 1e-3
  assert graph_checksum(g) != graph_checksum(again)


def test_step_rusage_writes_one_json_line_per_step(tmp_path):
  """benchmarks/step_rusage.py (per-step kernel time, faults, RSS) on the tiny graph."""
  out = tmp_path / "rusage.jsonl"
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run(
      [
          sys.executable,
          str(REPO / "benchmarks" / "step_rusage.py"),
          "--graph=tiny",
          "--steps=2",
          "--layers=1",
          "--hidden=16",
          "--heads=2",
          "--feature_dim=32",
          f"--out={out}",
      ],
      cwd=REPO,
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
  assert rows == [json.loads(ln) for ln in out.read_text().splitlines()]
  assert [r["step"] for r in rows] == [0, 1]
  for r in rows:
    assert r["graph"] == "tiny" and r["model"] == "hgnn_ima" and r["remat"] is False and r["wall_s"] > 0
    assert r["user_s"] >= 0 and r["sys_s"] >= 0 and r["minor_faults"] >= 0
    assert 0 < r["rss_mb"] <= r["peak_rss_mb"]


def test_step_memory_reports_temp_per_edge_and_residuals(tmp_path):
  """benchmarks/step_memory.py (compile only) on the tiny graph: a row per remat setting, with its residuals."""
  out = tmp_path / "memory.jsonl"
  flags = ["--graphs=tiny", "--models=hgnn_ima", "--layers=1", "--hidden=16", "--heads=2", "--feature_dim=32"]
  cmd = [sys.executable, str(REPO / "benchmarks" / "step_memory.py"), *flags, "--residuals=4", f"--out={out}"]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = [json.loads(ln) for ln in out.read_text().splitlines()]
  assert [(r["graph"], r["model"], r["remat"]) for r in rows] == [
      ("tiny", "hgnn_ima", False),
      ("tiny", "hgnn_ima", True),
  ]
  for r in rows:
    assert r["edges"] > 0 and r["xla_memory"]["temp_mb"] > 0
    assert r["temp_bytes_per_edge"] == round(r["xla_memory"]["temp_mb"] * 2**20 / r["edges"])
    sizes = [x["bytes"] for x in r["residuals"]]
    assert (
        0 < len(sizes) <= 4
        and sizes == sorted(sizes, reverse=True)
        # A residual comes from a source line, or (JAX's own words) from a constant or an argument:
        # under remat the closed-over graph arrays are saved as constants.
        and all(".py:" in x["source"] or x["source"].startswith("from ") for x in r["residuals"])
        and any(".py:" in x["source"] for x in r["residuals"])
    )


# The tiny graph with a small model and two timed batches: what every scale.py row of these tests runs. One layer:
# these tests check the rows' schema and the devices' batches; a second layer cost each row's process about 30% more
# tracing and compiling (the multi-layer mini-batch step is tests/test_minibatch.py's and test_trimming.py's).
SCALE_TINY = ["--graphs=tiny", "--batch_size=16", "--fanouts=4", "--layers=1", "--hidden=16", "--heads=2"]
SCALE_TINY += ["--feature_dim=8", "--sampler_batches=2", "--max_batches=2"]


def scale_rows(tmp_path, *flags) -> list[dict]:
  """benchmarks/scale.py on the tiny graph with `flags`: its JSON rows (every row free of errors)."""
  out = tmp_path / "scale.jsonl"
  cmd = [sys.executable, str(REPO / "benchmarks" / "scale.py"), *SCALE_TINY, *flags, f"--out={out}"]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  for r in rows:
    assert "error" not in r, r
  return rows


def _assert_minibatch_row(r):
  assert r["batches"] == 2 and r["compiles"] >= 1 and r["sampler_ms_per_batch"] > 0 and r["inference_s"] > 0
  assert 0.0 <= r["sampler_wait_share"] <= 1.0 and r["edges_per_s"] > 0 and r["peak_rss_mb"] > 0
  assert r["steps_per_s_warm"] > 0


def test_scale_benchmark_smoke(tmp_path):
  """benchmarks/scale.py on the tiny graph: one JSON row per (graph, mode), each from its own process (the
  neighbour mode's rows: the devices column below)."""
  rows = scale_rows(tmp_path, "--modes=hgt,full", "--num_samples=16")
  assert [(r["graph"], r["mode"]) for r in rows] == [("tiny", "hgt"), ("tiny", "full")]
  _assert_minibatch_row(rows[0])
  assert rows[1]["step_ms_median"] > 0 and rows[1]["xla_temp_bytes_per_edge"] > 0


def test_scale_benchmark_devices_column(tmp_path):
  """--devices: the mini-batch row on 1 and 2 host devices and on 2 processes; the same batches in each."""
  rows = scale_rows(tmp_path, "--modes=neighbor", "--devices=1,2,2x1", "--parts=2")
  assert [(r.get("devices"), r.get("processes")) for r in rows] == [(1, 1), (2, 1), (2, 2)], rows
  for r in rows:
    assert r["mode"] == "neighbor" and r["parts"] == 2
    _assert_minibatch_row(r)
  # the parts fix the batches, not the devices: every setting trains on the same targets and edges
  assert len({(r["targets"], r["real_edges"]) for r in rows}) == 1 and rows[0]["targets"] > 0


def test_failed_rows_make_the_scripts_exit_1(tmp_path):
  """A row that failed (here: its process killed after a 1 s --timeout) is a failed run, exit 1 (scale.py,
  sampled_accuracy.py and devices.py exited 0); sampled_accuracy.py removes its temporary directory."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "TMPDIR": str(tmp_path)}
  bench = REPO / "benchmarks"
  runs = {
      "scale": [bench / "scale.py", "--graphs=tiny", "--modes=full", "--feature_dim=8", "--timeout=1"],
      "sampled_accuracy": [bench / "sampled_accuracy.py", "--dataset=synthetic", "--modes=full", "--timeout=1"],
      "devices": [bench / "devices.py", "--program=jit", "--timeout=1"],
  }
  for name, cmd in runs.items():
    proc = subprocess.run(
        [sys.executable, *map(str, cmd)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1, (name, proc.stderr[-2000:])
    assert "killed after --timeout=1 s" in proc.stdout and "Traceback" not in proc.stderr, (name, proc.stderr)
    if name == "sampled_accuracy":
      (row,) = [json.loads(ln) for ln in proc.stdout.splitlines()]
      assert row["workdir"] is None and row["runs"][0]["error"] == "killed after --timeout=1 s"
  assert not list(tmp_path.glob("sampled-accuracy-*"))


def test_sampled_accuracy_benchmark_smoke(tmp_path):
  """benchmarks/sampled_accuracy.py: one run per mode, per-seed test metrics and the difference of the means."""
  out = tmp_path / "acc.jsonl"
  cmd = [sys.executable, str(REPO / "benchmarks" / "sampled_accuracy.py"), "--dataset=synthetic", "--seeds=2"]
  # one layer, as SCALE_TINY: the rows and the files they are read from are the point
  cmd += ["--epochs=2", "--modes=full,neighbor", "--fanouts=4", "--batch_size=64", f"--out={out}"]
  cmd += [f"--workdir={tmp_path / 'runs'}", "--", "--config.synthetic.scale=0.1", "--config.model.hidden=8"]
  cmd += ["--config.model.heads=2", "--config.model.num_layers=1"]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  (row,) = [json.loads(line) for line in out.read_text().splitlines()]
  assert [r["mode"] for r in row["runs"]] == ["full", "neighbor"]
  for r in row["runs"]:
    assert "error" not in r, r
    assert len(r["test_macro_f1"]) == 2 and r["epochs_run"] == [2, 2]
    results = json.load(open(tmp_path / "runs" / r["mode"] / "results.json"))
    assert [s["test_macro_f1"] for s in results["per_seed"]] == r["test_macro_f1"]  # read, not made up
  for r in row["runs"]:  # the sample std (n - 1), as everywhere in the project
    assert r["macro_std"] == round(statistics.stdev(r["test_macro_f1"]), 4)
  assert row["workdir"] == str(tmp_path / "runs")
  full, neighbor = row["runs"]
  assert row["macro_diff_vs_full"]["neighbor"] == pytest.approx(neighbor["macro_mean"] - full["macro_mean"], abs=2e-4)
  assert json.load(open(tmp_path / "runs" / "neighbor" / "config.json"))["batch"]["fanouts"] == [4]


def test_peak_bandwidth_by_device_kind():
  """The share of peak bandwidth divides by the datasheet figure of the device kind JAX reports; none for CPUs."""
  import bench_ours

  assert bench_ours.peak_bandwidth("NVIDIA H100 80GB HBM3") == 3.35e12
  assert bench_ours.peak_bandwidth("NVIDIA H200") == 4.8e12
  assert bench_ours.peak_bandwidth("NVIDIA H100 PCIe") == 2.0e12
  assert bench_ours.peak_bandwidth("NVIDIA A100-SXM4-80GB") == 2.039e12
  assert bench_ours.peak_bandwidth("NVIDIA A100-SXM4-40GB") == 1.555e12
  assert bench_ours.peak_bandwidth("cpu") is None


def test_pyg_device_names_the_variants_and_is_probed_before_any_work(tmp_path):
  """--pyg_device=cuda: PyG's variants say so, and a torch that sees no GPU is refused with the reason (a stand-in
  Python prints what the probe of a CPU-only torch prints)."""
  from bench_subprocess import pyg_availability

  _, pyg = bv.matrix(["glibc"], ["default"], [1], ["unset"], ["eager", "inductor"], "cuda")
  assert [v.name for v in pyg] == ["glibc/omp-unset/threads-1/cuda", "glibc/omp-unset/threads-1/inductor/cuda"]
  assert {v.settings()["pyg_device"] for v in pyg} == {"cuda"}
  assert bv.Variant("pyg", "glibc", "1").name == "glibc/omp-unset/threads-1"  # the CPU's names as before
  fake = tmp_path / "python"
  fake.write_text("#!/bin/sh\necho 2.13.0+cpu None False\n")
  fake.chmod(0o755)
  assert pyg_availability(str(fake), "cpu") is None
  why = pyg_availability(str(fake), "cuda")
  assert why.startswith("--pyg_device=cuda: torch 2.13.0+cpu of ") and "sees no CUDA device" in why
  fake.write_text("#!/bin/sh\necho ModuleNotFoundError: No module named torch >&2\nexit 1\n")
  assert "not importable" in pyg_availability(str(fake), "cuda")


def test_report_bandwidth_cell():
  """GB/s of XLA's bytes accessed, with the share of the device's peak when the device kind is known."""
  assert report.bandwidth_cell({"bytes_per_s": 2.5e12, "peak_bytes_per_s": 3.35e12, "peak_share": 0.746}) == (
      "2,500.0 (75%)"
  )
  assert report.bandwidth_cell({"bytes_per_s": 6.4e9, "peak_bytes_per_s": None, "peak_share": None}) == "6.4"
  assert report.bandwidth_cell(None) == "-"
