r"""Per-step wall, user and kernel time, page faults and RSS of one (graph, model) training step.

A benchmark, not a test. `step_time.py` reports medians; this prints every step's
`getrusage` deltas, which is how the allocator's cost showed up (benchmarks/README.md,
*Allocator*): with jemalloc's default oversize arena, each AMAZON-1-scale step spent seconds
in the kernel re-faulting the buffers freed by the step before. Run it under different
allocator settings (`MALLOC_CONF=...`, `HGNN_IMA_ALLOCATOR=system`) and compare:

  python benchmarks/step_rusage.py --graph=synthetic_amazon1 --steps=6
  MALLOC_CONF=dirty_decay_ms:10000,muzzy_decay_ms:10000,thp:always python benchmarks/step_rusage.py
  python benchmarks/step_rusage.py --graph=amazon --remat   # the step with config.model.remat
  python benchmarks/step_rusage.py --graph=tiny --steps=2 --out=/tmp/r.jsonl

One JSON line per step (stdout, and appended to `--out`).
"""

from __future__ import annotations

import os
import pathlib
import resource
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]

if __name__ == "__main__":  # before JAX is imported: the allocator is chosen at process start
  from hgnn_ima_jax.runtime import reexec_with_fast_allocator

  reexec_with_fast_allocator()

from absl import app, flags  # noqa: E402
from bench_cli import check_out  # noqa: E402
from bench_env import cpu_count, emit, quiet_absl_info  # noqa: E402
from bench_graphs import GRAPHS, JAX_MODELS, define_graph_flags, graph_config, load_graph_or_exit  # noqa: E402

from hgnn_ima_jax.cli_flags import one_line_usage_errors, parse_flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("graph", "synthetic_amazon1", f"one of {GRAPHS}")
flags.DEFINE_string("model", "hgnn_ima", f"one of {JAX_MODELS}")
flags.DEFINE_integer("steps", 6, "timed steps")
flags.DEFINE_bool(
    "remat", False, "config.model.remat: rebuild the relation tables and input projection in the backward pass"
)
define_graph_flags(flags)


def vm_mb(field: str) -> int:
  with open("/proc/self/status") as f:
    return next(int(ln.split()[1]) // 1024 for ln in f if ln.startswith(field + ":"))


def main(argv):
  del argv
  quiet_absl_info()
  if FLAGS.graph not in GRAPHS or FLAGS.model not in JAX_MODELS:
    raise app.UsageError(f"--graph={FLAGS.graph} --model={FLAGS.model}: choose from {GRAPHS} and {JAX_MODELS}")
  if FLAGS.steps < 1:  # it printed nothing and exited 0
    raise app.UsageError(f"--steps={FLAGS.steps}: give at least 1 timed step")
  try:
    out_note = check_out(FLAGS.out)  # was a traceback at the first row, after compiling and a step
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if out_note:
    print(out_note, file=sys.stderr)
  import jax
  from bench_ours import make_step  # imports JAX: after the allocator is in place

  from hgnn_ima_jax import runtime
  from hgnn_ima_jax import state as state_lib

  data = load_graph_or_exit(FLAGS.graph, FLAGS.data_dir, FLAGS.feature_dim)
  batch = state_lib.make_batch(data)
  config, _ = graph_config(
      FLAGS.graph, FLAGS.model, range(1), hidden=FLAGS.hidden, heads=FLAGS.heads, layers=FLAGS.layers
  )
  config.model.remat = FLAGS.remat
  step, model, tx, config = make_step(config, data, 0)
  state = state_lib.init_state(model, tx, batch, [0])
  compiled = step.lower(state, batch).compile()
  state, _ = compiled(state, batch)
  jax.block_until_ready(state)
  base = {
      "graph": FLAGS.graph,
      "model": FLAGS.model,
      "remat": FLAGS.remat,
      "allocator": runtime.active_allocator(),
      "malloc_conf": os.environ.get("MALLOC_CONF"),
      "cpu_count": cpu_count(),
  }
  for i in range(FLAGS.steps):
    r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    state, _ = compiled(state, batch)
    jax.block_until_ready(state)
    wall, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
    row = {
        **base,
        "step": i,
        "wall_s": round(wall, 3),
        "user_s": round(r1.ru_utime - r0.ru_utime, 3),
        "sys_s": round(r1.ru_stime - r0.ru_stime, 3),
        "minor_faults": r1.ru_minflt - r0.ru_minflt,
        "rss_mb": vm_mb("VmRSS"),
        "peak_rss_mb": vm_mb("VmHWM"),
    }
    emit(row, FLAGS.out)


if __name__ == "__main__":
  app.run(one_line_usage_errors(main), flags_parser=lambda argv: parse_flags(argv, positional=False))
