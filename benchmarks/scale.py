r"""Mini-batch training at scale: sampler, step, epoch and exact-inference time, edges per second, peak RSS.

A benchmark, not a test. Every (graph, mode) row runs in its own process (so its peak RSS is its
own): `neighbor` or `hgt` mini-batches, and `full` (one full-graph step) beside them where the
full-batch step fits in memory (XLA's temp estimate under 70% of MemAvailable). One JSON line per
row on stdout and appended to `--out`; `benchmarks/README.md` has the table.

Per mini-batch row: the sampler alone (sample + pad, ms per batch), one epoch with prefetch (wall,
the training thread's wait for batches as a share of it, the step's median ms after compilation),
target nodes and real edges per second, exact layer-wise inference of every target node (s), and
the process's peak RSS. Per full row: the step's median ms and edges per second.

  python benchmarks/scale.py --graphs=synthetic_amazon1,amazon --modes=neighbor,full --out=/tmp/scale.jsonl
  python benchmarks/scale.py --graphs=synthetic10m --modes=neighbor     # the issue's 10M-edge target
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from absl import app, flags  # noqa: E402
from bench_env import emit  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "graphs",
    "synthetic_amazon1,amazon",
    "graphs: amazon (real topology, generated features) or a "
    "scaled synthetic name (synthetic_amazon1, synthetic_amazon1x4, synthetic10m)",
)
flags.DEFINE_list("modes", "neighbor,full", "rows per graph: neighbor, hgt, full")
flags.DEFINE_integer("batch_size", 1024, "target nodes per batch")
flags.DEFINE_list("fanouts", "10,5,5", "neighbour fanouts per hop")
flags.DEFINE_integer("num_samples", 512, "HGSampling nodes per type per iteration")
flags.DEFINE_integer("max_batches", 0, "stop the timed epoch after this many batches (0: the whole epoch)")
flags.DEFINE_integer("sampler_batches", 10, "batches timed for the sampler alone")
flags.DEFINE_integer("full_steps", 3, "timed full-batch steps")
flags.DEFINE_integer("feature_dim", 512, "width of the generated inputs")
flags.DEFINE_integer("layers", 3, "propagation layers K")
flags.DEFINE_integer("hidden", 64, "hidden width d")
flags.DEFINE_integer("heads", 8, "attention heads H")
flags.DEFINE_integer("eval_chunk", 4096, "receivers per chunk of layer-wise inference")
flags.DEFINE_string(
    "data_dir",
    os.environ.get("HGNN_IMA_DATA_DIR", str(REPO.parent / "shared" / "datasets")),
    "the paper datasets (for amazon's topology)",
)
flags.DEFINE_string("out", "", "append the JSON lines to this file too")
flags.DEFINE_string("worker", "", "internal: run one row 'graph:mode' in this process")
flags.DEFINE_integer("timeout", 7200, "seconds before a row's process is killed")


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def row_config(graph: str, mode: str):
  from bench_graphs import graph_config  # pylint: disable=import-outside-toplevel

  c, profile = graph_config(graph, "hgnn_ima", (0,), hidden=FLAGS.hidden, heads=FLAGS.heads, layers=FLAGS.layers)
  c.dataset = graph
  c.batch.mode = mode
  c.batch.size = FLAGS.batch_size
  c.batch.fanouts = tuple(int(f) for f in FLAGS.fanouts)
  c.batch.num_samples = FLAGS.num_samples
  c.batch.eval_chunk = FLAGS.eval_chunk
  return c, profile


def run_row(graph: str, mode: str) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from bench_graphs import load_graph  # pylint: disable=import-outside-toplevel

  from hgnn_ima_jax import evaluation, minibatch, optim, state, steps, train  # pylint: disable=import-outside-toplevel

  t0 = time.perf_counter()
  data = load_graph(graph, FLAGS.data_dir, FLAGS.feature_dim)
  load_s = time.perf_counter() - t0
  config, profile = row_config(graph, mode)
  config = train.resolve_config(config)
  s = data.schema
  row = {
      "record": "scale",
      "graph": graph,
      "mode": mode,
      "profile": profile,
      "nodes": s.total_nodes,
      "edges": s.total_edges,
      "train_targets": len(data.splits["train"]),
      "batch_size": FLAGS.batch_size,
      "fanouts": list(config.batch.fanouts) if mode == "neighbor" else None,
      "num_samples": FLAGS.num_samples if mode == "hgt" else None,
      "layers": FLAGS.layers,
      "hidden": FLAGS.hidden,
      "heads": FLAGS.heads,
      "feature_dim": FLAGS.feature_dim,
      "load_s": round(load_s, 2),
      "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
      "cpu_count": os.cpu_count(),
      "device": str(jax.devices()[0]),
  }
  if mode == "full":
    return {**row, **full_row(config, data)}

  settings = minibatch.BatchSettings.from_config(config)
  t = time.perf_counter()
  source = minibatch.BatchSource(data, settings)
  row["setup_s"] = round(time.perf_counter() - t, 2)
  row["rungs"] = [b.to_dict() for b in source.ladder.rungs]
  nb = source.num_batches(0)
  t = time.perf_counter()
  k = min(FLAGS.sampler_batches, nb)
  for b in range(k):
    source.build(0, b)
  row["sampler_ms_per_batch"] = round(1000 * (time.perf_counter() - t) / k, 1)

  tx = optim.create_optimizer(config, nb)
  programs = minibatch.StepPrograms(config, data, tx, sharded=False)
  batch0 = minibatch.init_batch(source)
  st = state.init_state(programs.model(source.largest), tx, batch0, [0], num_targets=len(data.labels))
  limit = nb if FLAGS.max_batches <= 0 else min(nb, FLAGS.max_batches)
  step_ms, wait_s, targets, real_edges = [], 0.0, 0, 0
  before = steps.TRACE_COUNT["train_step"]
  t_epoch = time.perf_counter()
  it = source.epoch(0)
  for _ in range(limit):
    tw = time.perf_counter()
    b, padded = next(it)
    wait_s += time.perf_counter() - tw
    ts = time.perf_counter()
    st, m = programs(padded.budget)(st, minibatch.device_batch(padded))
    jax.block_until_ready(m)
    step_ms.append(1000 * (time.perf_counter() - ts))
    targets += int(padded.mask.sum())
    real_edges += int(np.asarray(padded.graph.edges["valid"]).sum())
  it.close()
  epoch_s = time.perf_counter() - t_epoch
  compiles = steps.TRACE_COUNT["train_step"] - before
  warm = step_ms[compiles:] or step_ms
  row.update(
      {
          "batches": limit,
          "batches_per_epoch": nb,
          "epoch_s": round(epoch_s, 2),
          "epoch_s_full": round(epoch_s * nb / limit, 2),
          "step_ms_median": round(float(np.median(warm)), 1),
          "compiles": compiles,
          "sampler_wait_share": round(wait_s / epoch_s, 3),
          "targets_per_s": round(targets / epoch_s, 1),
          "edges_per_s": round(real_edges / epoch_s, 1),
          "edges_per_s_warm": round(real_edges / max(1e-9, sum(warm) / 1000 * limit / len(warm)), 1),
      }
  )
  evaluator = evaluation.Evaluator(config, data, settings)
  t = time.perf_counter()
  evaluator.evaluate(st, 1)
  row["inference_s"] = round(time.perf_counter() - t, 2)
  row["peak_rss_mb"] = round(peak_rss_mb(), 1)
  return row


def full_row(config, data) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from bench_env import mem_available_mb  # pylint: disable=import-outside-toplevel
  from bench_ours import make_step  # pylint: disable=import-outside-toplevel

  from hgnn_ima_jax import state  # pylint: disable=import-outside-toplevel

  step, model, tx, config = make_step(config, data)  # the step step_time.py times
  batch = state.make_batch(data)
  like = state.init_state(model, tx, batch, [0], abstract=True)
  compiled = step.lower(like, batch).compile()
  temp_mb = compiled.memory_analysis().temp_size_in_bytes / 2**20
  out = {"xla_temp_mb": round(temp_mb, 1), "xla_temp_bytes_per_edge": round(temp_mb * 2**20 / data.schema.total_edges)}
  if temp_mb > 0.7 * mem_available_mb():
    return {**out, "skipped": "XLA temp estimate over 70% of MemAvailable"}
  st = state.init_state(model, tx, batch, [0])
  st, m = compiled(st, batch)
  jax.block_until_ready(m)
  times = []
  for _ in range(FLAGS.full_steps):
    t = time.perf_counter()
    st, m = compiled(st, batch)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t)
  med = float(np.median(times))
  return {
      **out,
      "step_ms_median": round(1000 * med, 1),
      "edges_per_s": round(data.schema.total_edges / med, 1),
      "peak_rss_mb": round(peak_rss_mb(), 1),
  }


def main(argv):
  del argv
  if FLAGS.worker:
    graph, mode = FLAGS.worker.split(":")
    print(json.dumps(run_row(graph, mode)), flush=True)
    return
  passthrough = [a for a in sys.argv[1:] if not a.startswith(("--graphs", "--modes", "--out", "--worker"))]
  for graph in FLAGS.graphs:
    for mode in FLAGS.modes:
      cmd = [sys.executable, __file__, f"--worker={graph}:{mode}", *passthrough]
      try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=FLAGS.timeout, cwd=str(REPO))
        lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
        row = (
            json.loads(lines[-1])
            if lines
            else {
                "record": "scale",
                "graph": graph,
                "mode": mode,
                "error": (p.stderr.strip().splitlines() or ["no output"])[-1],
            }
        )
      except subprocess.TimeoutExpired:
        row = {"record": "scale", "graph": graph, "mode": mode, "error": f"killed after {FLAGS.timeout} s"}
      emit(row, FLAGS.out)


if __name__ == "__main__":
  app.run(main)
