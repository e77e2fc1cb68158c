"""The child processes `step_time.py` starts: a benchmark worker under a timeout, and the probe of the PyG Python.

No JAX and no torch here: the orchestrator imports it before any framework loads.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import threading


def run_worker(cmd: list[str], env: dict, timeout: float) -> tuple[int | str, str]:
  """(exit code or 'timeout', the end of its stderr); its '#' progress lines are passed on as they come."""
  proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  killed = threading.Event()

  def kill():
    killed.set()
    proc.kill()

  timer = threading.Timer(timeout, kill)
  timer.start()
  tail = collections.deque(maxlen=300)
  try:
    for ln in proc.stderr:
      tail.append(ln)
      if ln.startswith("#"):
        sys.stderr.write(ln)
        sys.stderr.flush()
    rc = proc.wait()
  finally:
    timer.cancel()
  if killed.is_set():
    return "timeout", "".join(tail) + f"killed after --worker_timeout={timeout:.0f} s\n"
  return rc, "".join(tail)


def pyg_availability(python: str, device: str = "cpu") -> str | None:
  """None when `python` imports torch and torch_geometric (and, for device 'cuda', its torch sees a GPU), else why not."""
  if not shutil.which(python):
    return f"--pyg_python={python}: no such executable; give the Python of a venv with requirements-bench.txt"
  code = "import torch, torch_geometric; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())"
  probe = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
  if probe.returncode != 0:
    last = (probe.stderr.strip().splitlines() or ["?"])[-1]
    return f"torch/torch_geometric not importable by {python} ({last}); pip install -r requirements-bench.txt"
  version, cuda, seen = (probe.stdout.split() + ["?", "?", "?"])[:3]
  if device == "cuda" and seen != "True":
    return (
        f"--pyg_device=cuda: torch {version} of {python} sees no CUDA device (its CUDA: {cuda}); "
        "use --pyg_device=cpu, or a CUDA build of torch on a machine with a GPU"
    )
  return None
