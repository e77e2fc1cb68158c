r"""Steps/s of the data-parallel mini-batch step on 1, 2, 4 host devices, as `shard_map` + `psum` or as `jit`
with `NamedSharding` in/out shardings (XLA's partitioner inserts the all-reduce), and on 2 processes x 2 devices.

  python benchmarks/devices.py                 # every device count and program, one subprocess each
  python benchmarks/devices.py --devices=4 --program=jit --steps=20   # one measurement (JSON line)

On a CPU host the "devices" share the cores: the numbers measure the mesh's overhead, not a speed-up
(docs/distributed.md). Each measurement: compile time of the first step, then steps/s over --steps
steps on one fixed global batch of `--parts` parts (the test config's synthetic graph, or --scale).
A measurement that fails or runs past --timeout prints "... failed" with the end of its stderr, and the
script exits 1 at the end; SIGTERM/SIGINT stop the measurement running (bench_subprocess).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import bench_subprocess  # noqa: E402  (no JAX: a measurement sets its device count before JAX starts)


def measure(
    devices: int,
    program: str,
    parts: int,
    steps: int,
    scale: float,
    size: int,
    processes: int = 1,
    process_id: int = 0,
    port: int = 0,
) -> dict:
  """One measurement in this process (JAX must not have started yet: the device count is set here).

  devices: this process's devices; with processes > 1 the mesh spans all processes' devices (127.0.0.1:port).
  """
  import jax

  jax.config.update("jax_num_cpu_devices", devices)
  if processes > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=processes, process_id=process_id)
  devices = jax.device_count()
  from hgnn_ima_jax import distributed, minibatch
  from hgnn_ima_jax.data_utils import load_for_config
  from hgnn_ima_jax.experiments.configs import test as test_config
  from hgnn_ima_jax.optim import create_optimizer
  from hgnn_ima_jax.state import init_state, seed_sharding
  from hgnn_ima_jax.steps import map_seeds

  c = test_config.get_config()
  c.seeds, c.synthetic.scale = (0,), scale
  c.batch.mode, c.batch.size, c.batch.fanouts, c.batch.parts, c.batch.buckets = "neighbor", size, (8, 4), parts, 1
  c.mesh_data = devices
  data = load_for_config(c)
  source = minibatch.BatchSource(data, minibatch.BatchSettings.from_config(c))
  shard, _, _ = seed_sharding(1, False, devices)
  mesh = distributed.DeviceMesh.of(shard)
  source.part_ids = mesh.local_parts(parts) if mesh else list(range(parts))
  item = source.build(0, 0)
  tx = create_optimizer(c, 10)
  programs = minibatch.StepPrograms(c, data, tx, sharded=False)
  model = programs.model(source.largest)
  batch0, rung0 = minibatch.init_batch(source)
  state = init_state(programs.model(rung0), tx, batch0, [0], shard)
  batch = distributed.global_parts_batch(distributed.stack_parts(item.padded), source.part_ids, parts, mesh)
  one = functools.partial(distributed.parts_train_step, model=model, tx=tx, ind_loss=False, att_weight=1.0, parts=parts)
  if program == "shard_map":
    fn = distributed.make_parts_program(one, 0, mesh)
  else:  # one global program over all parts; XLA partitions the vmap over parts and adds the all-reduce
    body = map_seeds(lambda s, b: one(s, b, axis_name=None), 0)
    fn = jax.jit(
        body,
        in_shardings=(mesh.seed_sharding, mesh.parts_sharding) if mesh else None,
        out_shardings=(mesh.seed_sharding, mesh.seed_sharding) if mesh else None,
        donate_argnums=(0,),
    )
  t = time.perf_counter()
  state, m = fn(state, batch)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t
  t = time.perf_counter()
  for _ in range(steps):
    state, m = fn(state, batch)
  jax.block_until_ready(m)
  dt = time.perf_counter() - t
  return {
      "devices": devices,
      "processes": processes,
      "program": program,
      "parts": parts,
      "size": size,
      "first_step_s": round(compile_s, 2),
      "steps_per_s": round(steps / dt, 2),
      "loss": float(m["train_loss"][0]),
  }


class OneLineParser(argparse.ArgumentParser):
  """argparse's errors in the project's form: one line, exit 1 (argparse prints its usage first, exit 2)."""

  def error(self, message):
    sys.exit(f"error: {message}. Fix: see --help")


def check_args(a) -> None:
  """Values a measurement cannot run (--steps=0 divided by zero in the child; --devices=-1 set no count)."""
  for name, low in (("steps", 1), ("devices", 0), ("parts", 1), ("size", 1), ("processes", 1), ("timeout", 1)):
    if getattr(a, name) < low:
      sys.exit(f"error: --{name}={getattr(a, name)}: must be at least {low}. Fix: give --{name}>={low}")
  if not a.scale > 0:
    sys.exit(f"error: --scale={a.scale}: must be above 0. Fix: give e.g. --scale=0.1")
  if not 0 <= a.process_id < a.processes:
    sys.exit(f"error: --process_id={a.process_id}: must be in 0..{a.processes - 1} (--processes={a.processes})")


def run_measurement(cmd: list[str], timeout: float) -> tuple[bool, str]:
  """(whether it succeeded, its last stdout line or the end of its stderr) of one measurement in a child."""
  proc = bench_subprocess.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
  out = bench_subprocess.communicate(proc, timeout)
  if out is None:
    return False, f"killed after --timeout={timeout:.0f} s"
  lines = out[0].strip().splitlines()
  if proc.returncode != 0 or not lines:
    return False, out[1][-1500:]
  return True, lines[-1]


def main():
  p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--devices", type=int, default=0, help="one device count (0: 1, 2 and 4, each in a subprocess)")
  p.add_argument("--program", choices=["shard_map", "jit", "both"], default="both")
  p.add_argument("--parts", type=int, default=4)
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--size", type=int, default=64, help="targets per global batch")
  p.add_argument("--scale", type=float, default=0.1, help="synthetic graph scale")
  p.add_argument("--processes", type=int, default=1, help="with --devices: processes of one measurement")
  p.add_argument("--process_id", type=int, default=0)
  p.add_argument("--port", type=int, default=0)
  p.add_argument("--timeout", type=int, default=600, help="seconds before a measurement's process is killed")
  a = p.parse_args()
  check_args(a)
  programs = ["shard_map", "jit"] if a.program == "both" else [a.program]
  if a.devices:
    for prog in programs:
      r = measure(a.devices, prog, a.parts, a.steps, a.scale, a.size, a.processes, a.process_id, a.port)
      if a.process_id == 0:
        print(json.dumps(r), flush=True)
    return
  bench_subprocess.stop_on_signals("devices.py")
  common = [f"--parts={a.parts}", f"--steps={a.steps}", f"--size={a.size}", f"--scale={a.scale}"]
  failed = 0
  for d in (1, 2, 4):
    for prog in programs:
      cmd = [sys.executable, __file__, f"--devices={d}", f"--program={prog}", *common]
      ok, text = run_measurement(cmd, a.timeout)
      failed += not ok
      print(text if ok else f"devices={d} {prog}: failed\n{text}", flush=True)
  # 2 processes x 2 devices on 127.0.0.1 (CPU collectives over gloo): the overhead of the multi-process runtime
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  procs = [
      bench_subprocess.start(
          [
              sys.executable,
              __file__,
              "--devices=2",
              "--program=shard_map",
              *common,
              "--processes=2",
              f"--process_id={i}",
              f"--port={port}",
          ],
          stdout=subprocess.PIPE,
          stderr=subprocess.PIPE,
          text=True,
      )
      for i in range(2)
  ]
  try:
    outs = [p.communicate(timeout=a.timeout) for p in procs]
    ok = procs[0].returncode == 0 and outs[0][0].strip()
    text = outs[0][0].strip().splitlines()[-1] if ok else outs[0][1][-1500:]
  except subprocess.TimeoutExpired:
    ok, text = False, f"killed after --timeout={a.timeout} s"
  finally:
    for proc in procs:
      bench_subprocess.stop(proc)
  failed += not ok
  print(text if ok else f"2 processes: failed\n{text}", flush=True)
  if failed:  # "failed" lines and exit 0 read as a finished run
    sys.exit(f"# {failed} measurement(s) failed")


if __name__ == "__main__":
  main()
