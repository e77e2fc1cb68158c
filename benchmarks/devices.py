r"""Steps/s of the data-parallel mini-batch step on 1, 2, 4 host devices, as `shard_map` + `psum` or as `jit`
with `NamedSharding` in/out shardings (XLA's partitioner inserts the all-reduce), and on 2 processes x 2 devices.

  python benchmarks/devices.py                 # every device count and program, one subprocess each
  python benchmarks/devices.py --devices=4 --program=jit --steps=20   # one measurement (JSON line)

On a CPU host the "devices" share the cores: the numbers measure the mesh's overhead, not a speed-up
(docs/distributed.md). Each measurement: compile time of the first step, then steps/s over --steps
steps on one fixed global batch of `--parts` parts (the test config's synthetic graph, or --scale).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import socket
import subprocess
import sys
import time


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


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--devices", type=int, default=0, help="one device count (0: 1, 2 and 4, each in a subprocess)")
  p.add_argument("--program", choices=["shard_map", "jit", "both"], default="both")
  p.add_argument("--parts", type=int, default=4)
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--size", type=int, default=64, help="targets per global batch")
  p.add_argument("--scale", type=float, default=0.1, help="synthetic graph scale")
  p.add_argument("--processes", type=int, default=1, help="with --devices: processes of one measurement")
  p.add_argument("--process_id", type=int, default=0)
  p.add_argument("--port", type=int, default=0)
  a = p.parse_args()
  programs = ["shard_map", "jit"] if a.program == "both" else [a.program]
  if a.devices:
    for prog in programs:
      r = measure(a.devices, prog, a.parts, a.steps, a.scale, a.size, a.processes, a.process_id, a.port)
      if a.process_id == 0:
        print(json.dumps(r), flush=True)
    return
  for d in (1, 2, 4):
    for prog in programs:
      cmd = [
          sys.executable,
          __file__,
          f"--devices={d}",
          f"--program={prog}",
          f"--parts={a.parts}",
          f"--steps={a.steps}",
          f"--size={a.size}",
          f"--scale={a.scale}",
      ]
      out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ))
      print(
          out.stdout.strip().splitlines()[-1]
          if out.returncode == 0
          else f"devices={d} {prog}: failed\n" f"{out.stderr[-1500:]}",
          flush=True,
      )
  # 2 processes x 2 devices on 127.0.0.1 (CPU collectives over gloo): the overhead of the multi-process runtime
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  procs = [
      subprocess.Popen(
          [
              sys.executable,
              __file__,
              "--devices=2",
              "--program=shard_map",
              f"--parts={a.parts}",
              f"--steps={a.steps}",
              f"--size={a.size}",
              f"--scale={a.scale}",
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
    outs = [p.communicate(timeout=600) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  ok = procs[0].returncode == 0
  print(outs[0][0].strip().splitlines()[-1] if ok else f"2 processes: failed\n{outs[0][1][-1500:]}")


if __name__ == "__main__":
  main()
