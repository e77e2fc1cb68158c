r"""One benchmark process: one framework, one graph, one variant's settings; started by `step_time.py`.

  python benchmarks/bench_worker.py SPEC.json

The orchestrator writes SPEC.json (framework 'jax' or 'pyg', the generic-format graph file,
models, sizes, steps, the torch thread count or CPUs to pin to) and starts this script with
the variant's environment (allocator, OpenMP wait policy, XLA flags) already in place, so
that each framework loads under exactly those settings and nothing else shares its process.
Each timed model is one JSON line appended to the spec's `out`, with this process's pid, what
it really runs under (allocator and OpenMP libraries mapped, thread counts, CPUs) and the
checksum of the graph it read.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "benchmarks"):
  if str(p) not in sys.path:
    sys.path.insert(0, str(p))

from bench_env import RssSampler, cpu_count, emit, load_avg, loaded_runtimes, now_utc, peak_rss_mb  # noqa: E402
from bench_graphs import graph_checksum  # noqa: E402

from hgnn_ima_jax.runtime import release_free_memory  # noqa: E402  (no JAX import)

ENV_RECORDED = (
    "LD_PRELOAD",
    "MALLOC_CONF",
    "GLIBC_TUNABLES",
    "OMP_WAIT_POLICY",
    "XLA_FLAGS",
    "JAX_COMPILATION_CACHE_DIR",
)


def jax_backend_started() -> bool | None:
  """Whether this process started a JAX backend (XLA's threads and memory), None if it cannot tell.

  A PyG worker imports JAX's Python modules (the graph type's module imports jraph), but must
  never start a backend.
  """
  if "jax" not in sys.modules:
    return False
  try:
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())
  except (ImportError, AttributeError):  # a private API: absent in some JAX version
    return None


def process_record(checksum: str) -> dict:
  """Who measured and under what: pid, CPUs, the settings' variables, the runtimes really loaded."""
  return {
      "pid": os.getpid(),
      "parent_pid": os.getppid(),
      "cpu_count": cpu_count(),
      "cpus": sorted(os.sched_getaffinity(0)),
      "env": {k: os.environ.get(k) for k in ENV_RECORDED},
      "runtimes": loaded_runtimes(),
      "jax_backend_started": jax_backend_started(),
      "torch_imported": "torch" in sys.modules,
      "graph_checksum": checksum,
  }


def progress(model: str, r: dict):
  if "skipped" in r:
    print(f"#   {model:<14} skipped: {r['skipped']}", file=sys.stderr, flush=True)
    return
  print(
      f"#   {model:<14} step {r['step_s_median'] * 1e3:9.1f} ms (min {r['step_s_min'] * 1e3:.1f}, "
      f"cpu {r['cpu_s_per_step'] * 1e3:.0f}); loss {r['losses'][0]:.3f} -> {r['losses'][-1]:.3f}",
      file=sys.stderr,
      flush=True,
  )


def run_jax(spec: dict, data, checksum: str):
  import bench_ours
  import jax

  from hgnn_ima_jax import state as state_lib

  opts = bench_ours.StepOptions(**spec["opts"])
  batch = state_lib.make_batch(data)
  common = {"versions": bench_ours.versions(), **bench_ours.device_info()}
  for model in spec["models"]:
    la, date = load_avg(), now_utc()
    r = bench_ours.time_ours(data, batch, model, spec["graph"], 1, opts)
    init = r.pop("_init", None)
    if "skipped" not in r and model == "hgnn_ima" and spec.get("seeds", 0) > 1:
      r.update(bench_ours.time_multi_seed(data, batch, spec["graph"], r, spec["seeds"], opts, init))
    del init
    progress(model, r)
    emit(
        {
            "record": "step",
            "model": model,
            **r,
            "date": date,
            "load_avg_start": la,
            "load_avg_end": load_avg(),
            **common,
            **process_record(checksum),
        },
        spec["out"],
    )
    jax.clear_caches()
    release_free_memory()
  if spec.get("profile"):
    import bench_profile

    p = spec["profile"]
    prof = bench_profile.profile_ours(
        data, batch, spec["graph"], opts, p["dir"], steps=p["steps"], top=p["top"], seeds=p["seeds"]
    )
    print(
        f"# profile {spec['graph']}: {prof['op_ms_per_step']} ms of XLA ops per step "
        f"(wall {prof['wall_s_per_step'] * 1e3:.0f} ms); by class {prof['by_class_ms_per_step']}",
        file=sys.stderr,
        flush=True,
    )
    emit({**prof, **common, **process_record(checksum)}, spec["out"])


def run_pyg(spec: dict, data, checksum: str):
  import pyg_hgt

  ok, reason = pyg_hgt.available()
  if not ok:
    raise SystemExit(reason)
  import torch

  o, threads, compiled = spec["opts"], int(spec["torch_threads"]), bool(spec["torch_compile"])
  device = spec.get("torch_device") or "cpu"
  size = dict(hidden=o["hidden"], heads=o["heads"], layers=o["layers"])
  for model in spec["models"]:
    la, date = load_avg(), now_utc()
    check = None
    if spec.get("check_steps"):
      check = pyg_hgt.check_trains(model, data, steps=spec["check_steps"], threads=threads, device=device, **size)
    release_free_memory()
    with RssSampler() as mem:
      r = pyg_hgt.time_steps(
          model,
          data,
          steps=o["steps"],
          warmup=o["warmup"],
          threads=threads,
          compiled=compiled,
          device=device,
          **size,
      )
    progress(model, r)
    emit(
        {
            "record": "step",
            "model": model,
            **r,
            "compile_s": r["first_step_s"] if compiled else 0.0,  # torch.compile compiles in the first call
            "torch_compile": compiled,
            "train_check": check,
            "torch_threads": torch.get_num_threads(),
            "rss_start_mb": round(mem.start, 1),
            "rss_peak_mb": round(mem.peak, 1),
            "process_peak_rss_mb": round(peak_rss_mb(), 1),
            "date": date,
            "load_avg_start": la,
            "load_avg_end": load_avg(),
            "versions": pyg_hgt.versions(),
            **process_record(checksum),
        },
        spec["out"],
    )
    release_free_memory()


def main(spec_path: str):
  with open(spec_path) as f:
    spec = json.load(f)
  if spec.get("cpus"):  # before any framework starts its thread pools
    os.sched_setaffinity(0, spec["cpus"])
  from hgnn_ima_jax import data_utils

  data = data_utils.read_generic(spec["graph_file"])
  checksum = graph_checksum(data)
  (run_jax if spec["framework"] == "jax" else run_pyg)(spec, data, checksum)


if __name__ == "__main__":
  if len(sys.argv) != 2:
    raise SystemExit("usage: bench_worker.py SPEC.json (written by benchmarks/step_time.py)")
  main(sys.argv[1])
