r"""Mini-batch training at scale: sampler, step, epoch and exact-inference time, edges per second, peak RSS.

A benchmark, not a test. Every (graph, mode) row runs in its own process (so its peak RSS is its
own): `neighbor` or `hgt` mini-batches, and `full` (one full-graph step) beside them where the
full-batch step fits in memory (XLA's temp estimate under 70% of MemAvailable). One JSON line per
row on stdout and appended to `--out`; `benchmarks/README.md` has the table.

Per mini-batch row: the sampler alone (sample + pad, ms per batch), one epoch with prefetch (wall,
the training thread's wait for batches as a share of it, the step's median ms after compilation),
target nodes and real edges per second, exact layer-wise inference of every target node (s), and
the process's peak RSS. Per full row: the step's median ms and edges per second.

The devices column (`--devices`): each setting runs the mini-batch rows on that many host devices
(`N`), or on `PxN`, P processes of N devices on 127.0.0.1 (CPU collectives); the batch is cut into
`--parts` parts over a mesh of all devices (the data-parallel step of `hgnn_ima_jax.distributed`), so
with the same --parts every setting trains on the same batches. On a CPU host the devices share the
cores: these rows measure the overhead of the mesh, not a speed-up (docs/distributed.md).

  python benchmarks/scale.py --graphs=synthetic_amazon1,amazon --modes=neighbor,full --out=/tmp/scale.jsonl
  python benchmarks/scale.py --graphs=synthetic10m --modes=neighbor     # the issue's 10M-edge target
  python benchmarks/scale.py --graphs=amazon --modes=neighbor --devices=1,2,4,2x2 --parts=4
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_subprocess  # noqa: E402
from absl import app, flags  # noqa: E402
from bench_cli import at_least, check_out, int_list  # noqa: E402
from bench_env import emit, peak_rss_mb  # noqa: E402

from hgnn_ima_jax.cli_flags import one_line_usage_errors, parse_flags  # noqa: E402

FLAGS = flags.FLAGS
MODES = ("neighbor", "hgt", "full")
flags.DEFINE_list(
    "graphs",
    "synthetic_amazon1,amazon",
    "graphs: amazon (real topology, generated features) or a "
    "scaled synthetic name (synthetic_amazon1, synthetic_amazon1x4, synthetic10m)",
)
flags.DEFINE_list("modes", "neighbor,full", "rows per graph: neighbor, hgt, full")
flags.DEFINE_integer("batch_size", 1024, "target nodes per batch")
flags.DEFINE_list("fanouts", "10,5,5", "neighbour fanouts per hop (-1: every neighbour)")
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
flags.DEFINE_list("devices", "1", "device settings of the mini-batch rows: N host devices, or PxN (P processes)")
flags.DEFINE_bool("trim", True, "neighbor rows: trim each layer to the hops later layers read (config.batch.trim)")
flags.DEFINE_integer("parts", 1, "parts per global batch (data-parallel step when > 1 or on several devices)")
flags.DEFINE_string("worker", "", "internal: run one row 'graph:mode' in this process")
flags.DEFINE_string("worker_devices", "1:1:0:0", "internal: processes:devices:process_id:port of this worker")
flags.DEFINE_integer("timeout", 7200, "seconds before a row's process is killed")


def row_config(graph: str, mode: str):
  from bench_graphs import graph_config  # pylint: disable=import-outside-toplevel

  from hgnn_ima_jax.options import BATCH_FIELDS_READ  # pylint: disable=import-outside-toplevel

  c, profile = graph_config(graph, "hgnn_ima", (0,), hidden=FLAGS.hidden, heads=FLAGS.heads, layers=FLAGS.layers)
  c.dataset = graph
  c.batch.mode = mode
  fields = {
      "size": FLAGS.batch_size,
      "fanouts": tuple(int(f) for f in FLAGS.fanouts),
      "num_samples": FLAGS.num_samples,
      "eval_chunk": FLAGS.eval_chunk,
      "parts": FLAGS.parts,
      "trim": FLAGS.trim,
  }
  for field, value in fields.items():  # only what the mode reads: a valid config (config_validation)
    if field in BATCH_FIELDS_READ[mode]:
      c.batch[field] = value
  return c, profile


def start_devices(setting: str) -> tuple[int, int]:
  """Sets this worker's device count and joins its processes (before JAX touches a device): (processes, devices)."""
  import jax  # pylint: disable=import-outside-toplevel

  procs, devices, pid, port = (int(x) for x in setting.split(":"))
  jax.config.update("jax_num_cpu_devices", devices)
  if procs > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=procs, process_id=pid)
  return procs, jax.device_count()


def run_row(graph: str, mode: str) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from bench_graphs import load_graph_or_exit  # pylint: disable=import-outside-toplevel

  from hgnn_ima_jax import distributed, evaluation, minibatch, optim, state, steps, train  # pylint: disable=import-outside-toplevel

  processes, devices = start_devices(FLAGS.worker_devices)
  t0 = time.perf_counter()
  data = load_graph_or_exit(graph, FLAGS.data_dir, FLAGS.feature_dim)
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
      "trim": bool(config.batch.trim) if mode == "neighbor" else None,
      "num_samples": FLAGS.num_samples if mode == "hgt" else None,
      "layers": FLAGS.layers,
      "hidden": FLAGS.hidden,
      "heads": FLAGS.heads,
      "feature_dim": FLAGS.feature_dim,
      "load_s": round(load_s, 2),
      "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
      "cpu_count": os.cpu_count(),
      "device": str(jax.devices()[0]),
      "devices": devices,
      "processes": processes,
      "parts": FLAGS.parts,
  }
  if mode == "full":
    return {**row, **full_row(config, data)}

  config.mesh_data = devices  # every device on the data axis (one seed)
  settings = minibatch.BatchSettings.from_config(config)
  shard, _, _ = state.seed_sharding(1, False, devices)
  mesh = distributed.DeviceMesh.of(shard)
  t = time.perf_counter()
  source = minibatch.BatchSource(data, settings)
  row["setup_s"] = round(time.perf_counter() - t, 2)
  row["rungs"] = [b.to_dict() for b in source.ladder.rungs]
  if settings.parts > 1 or devices > 1:  # the parts step (StepPrograms.parts_mode): each process samples its own parts
    source.part_ids = mesh.local_parts(settings.parts) if mesh is not None else list(range(settings.parts))
  nb = source.num_batches(0)
  t = time.perf_counter()
  k = min(FLAGS.sampler_batches, nb)
  for b in range(k):
    source.build(0, b)
  row["sampler_ms_per_batch"] = round(1000 * (time.perf_counter() - t) / k, 1)

  tx = optim.create_optimizer(config, nb)
  programs = minibatch.StepPrograms(config, data, tx, sharded=False, mesh=mesh)
  batch0, rung0 = minibatch.init_batch(source)
  st = state.init_state(programs.model(rung0), tx, batch0, [0], shard, num_targets=len(data.labels))
  assert programs.parts_mode == (source.part_ids is not None)
  limit = nb if FLAGS.max_batches <= 0 else min(nb, FLAGS.max_batches)
  step_ms, wait_s, targets, real_edges = [], 0.0, 0, 0
  traced = lambda: steps.TRACE_COUNT["train_step"] + distributed.TRACE_COUNT["parts_train_step"]
  before = traced()
  t_epoch = time.perf_counter()
  it = source.epoch(0)
  for _ in range(limit):
    tw = time.perf_counter()
    b, item = next(it)
    wait_s += time.perf_counter() - tw
    ts = time.perf_counter()
    st, m = programs.step(st, item, source)
    jax.block_until_ready(m)
    step_ms.append(1000 * (time.perf_counter() - ts))
    for padded in item.padded if programs.parts_mode else [item]:  # this process's parts
      targets += int(padded.mask.sum())
      real_edges += int(np.asarray(padded.graph.edges["valid"]).sum())
  it.close()
  epoch_s = time.perf_counter() - t_epoch
  if processes > 1:  # each process counted its own parts
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

    targets, real_edges = (int(x) for x in multihost_utils.process_allgather(np.asarray([targets, real_edges])).sum(0))
  compiles = traced() - before
  warm = step_ms[compiles:] or step_ms
  row.update(
      {
          "batches": limit,
          "targets": targets,  # trained in the timed batches (all processes)
          "real_edges": real_edges,
          "batches_per_epoch": nb,
          "epoch_s": round(epoch_s, 2),
          "epoch_s_full": round(epoch_s * nb / limit, 2),
          "step_ms_median": round(float(np.median(warm)), 1),
          "compiles": compiles,
          "sampler_wait_share": round(wait_s / epoch_s, 3),
          "steps_per_s_warm": round(1000 / float(np.median(warm)), 3),
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


def device_setting(setting: str) -> tuple[int, int]:
  """--devices item 'N' or 'PxN' as (processes, devices per process); ValueError naming it otherwise."""
  try:
    procs, devices = (int(x) for x in setting.split("x")) if "x" in setting else (1, int(setting))
  except ValueError:
    procs = devices = 0
  if procs < 1 or devices < 1:
    raise ValueError(f"--devices={setting}: give N devices or PxN (P processes of N devices), e.g. 2 or 2x1")
  return procs, devices


def run_worker(graph: str, mode: str, setting: str, passthrough: list[str]) -> dict:
  """One row in its own process(es): `setting` is N devices or PxN; process 0's JSON line is the row."""
  procs, devices = device_setting(setting)
  port = 0
  if procs > 1:
    with socket.socket() as sock:
      sock.bind(("127.0.0.1", 0))
      port = sock.getsockname()[1]
  base = {"record": "scale", "graph": graph, "mode": mode, "devices": procs * devices, "processes": procs}
  cmds = [
      [sys.executable, __file__, f"--worker={graph}:{mode}", f"--worker_devices={procs}:{devices}:{i}:{port}"]
      + passthrough
      for i in range(procs)
  ]
  env = {
      **os.environ,
      "XLA_FLAGS": " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f),
  }
  # bench_subprocess.start: each in its own process group, dying with this process; stopped on SIGTERM/SIGINT.
  ps = [
      bench_subprocess.start(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO), env=env)
      for c in cmds
  ]
  try:
    out, err = ps[0].communicate(timeout=FLAGS.timeout)
    for p in ps[1:]:
      p.communicate(timeout=FLAGS.timeout)
  except subprocess.TimeoutExpired:
    return {**base, "error": f"killed after --timeout={FLAGS.timeout} s"}
  finally:
    for p in ps:
      bench_subprocess.stop(p)
  lines = [line for line in out.splitlines() if line.startswith("{")]
  if lines:
    return json.loads(lines[-1])
  rc = ps[0].returncode
  # A negative code is a signal: -9 with no traceback is what the kernel's OOM killer leaves.
  how = f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"
  tb = [line for line in err.strip().splitlines() if "Error" in line or "error:" in line]
  return {**base, "error": f"worker {how}" + (f": {tb[-1]}" if tb else "")}


def check_counts() -> None:
  """Counts and lists a worker would have failed on after its start (an error row, exit 0) or written as NaN."""
  modes = set(FLAGS.modes)
  if "neighbor" in modes:
    int_list("fanouts", FLAGS.fanouts, low=1, also=(-1,))
  if modes & {"neighbor", "hgt"}:  # the mini-batch rows
    at_least("batch_size", FLAGS.batch_size, 1)
    at_least("sampler_batches", FLAGS.sampler_batches, 1, " (the sampler's ms per batch divides by it)")
    at_least("max_batches", FLAGS.max_batches, 0)
    at_least("parts", FLAGS.parts, 1)
    at_least("eval_chunk", FLAGS.eval_chunk, 1)
  if "hgt" in modes:
    at_least("num_samples", FLAGS.num_samples, 1)
  if "full" in modes:
    at_least("full_steps", FLAGS.full_steps, 1, " (the row's median step of 0 steps was NaN, invalid JSON)")
  for name in ("feature_dim", "layers", "hidden", "heads", "timeout"):
    at_least(name, FLAGS[name].value, 1)


def main(argv):
  del argv
  if FLAGS.worker:
    graph, mode = FLAGS.worker.split(":")
    row = run_row(graph, mode)
    if int(FLAGS.worker_devices.split(":")[2]) == 0:  # process 0 reports the row
      print(json.dumps(row), flush=True)
    return
  from bench_graphs import GRAPHS, check_graphs_readable  # pylint: disable=import-outside-toplevel
  from bench_variants import check_choices  # pylint: disable=import-outside-toplevel

  bench_subprocess.stop_on_signals("scale.py")
  try:  # an unknown graph or mode became an error row and exit 0; a bad --devices a traceback
    check_choices("graphs", FLAGS.graphs, GRAPHS)
    check_choices("modes", FLAGS.modes, MODES)
    for setting in FLAGS.devices:
      device_setting(setting)
    check_counts()
    out_note = check_out(FLAGS.out)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  check_graphs_readable(FLAGS.graphs, FLAGS.data_dir, FLAGS.feature_dim)
  if out_note:
    print(out_note, file=sys.stderr)
  skip = ("--graphs", "--modes", "--out", "--worker", "--devices")
  passthrough = [a for a in sys.argv[1:] if not a.startswith(skip)]
  failed = 0
  for graph in FLAGS.graphs:
    for mode in FLAGS.modes:
      for setting in FLAGS.devices if mode != "full" else ["1"]:
        row = run_worker(graph, mode, setting, passthrough)
        failed += "error" in row
        emit(row, FLAGS.out)
  if failed:  # as step_time.py: a run with a failed row is a failed run
    print(f"# {failed} row(s) failed; see their 'error'", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(one_line_usage_errors(main), flags_parser=lambda argv: parse_flags(argv, positional=False))
