"""Worker processes of the multi-device tests: started on 127.0.0.1 only, bounded in time, always stopped.

The device count is fixed when JAX starts, so runs on other device or process counts are subprocesses
(`python WORKER SPEC_JSON`); each writes its results where its spec's 'out' says.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start(worker, tmp_path, name: str, specs: list[dict]) -> list:
  """One process per spec (spec['out'] set to tmp_path/NAME-I.json); returns [(Popen, out path, log path)]."""
  env = dict(os.environ)
  # the worker sets its own device count (jax_num_cpu_devices)
  env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f)
  procs = []
  for i, spec in enumerate(specs):
    out, log_path = tmp_path / f"{name}-{i}.json", tmp_path / f"{name}-{i}.log"
    log = open(log_path, "w")
    cmd = [sys.executable, str(worker), json.dumps({**spec, "out": str(out)})]
    procs.append((subprocess.Popen(cmd, stdout=log, stderr=log, env=env), out, log_path))
  return procs


def stop(procs) -> None:
  for p, _, _ in procs:  # a failed or hung run must not outlive the test
    if p.poll() is None:
      p.kill()
      p.wait()


def wait(procs, timeout: float) -> list[dict]:
  """Every process's out JSON; a non-zero exit fails with the end of its log; all are stopped in any case."""
  try:
    for p, _, log in procs:
      rc = p.wait(timeout=timeout)
      assert rc == 0, open(log).read()[-3000:]
  finally:
    stop(procs)
  return [json.load(open(out)) for _, out, _ in procs]


def join(spec: dict) -> None:
  """In a worker, before anything else of JAX: its local CPU device count, and the run's processes on 127.0.0.1."""
  import jax  # pylint: disable=import-outside-toplevel  (the worker's device count must be set first)

  jax.config.update("jax_num_cpu_devices", int(spec["devices"]))
  if spec["num_processes"] > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{spec['port']}",
        num_processes=spec["num_processes"],
        process_id=spec["process_id"],
        initialization_timeout=60,
    )
