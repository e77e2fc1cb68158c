"""What a benchmark process records about itself: CPUs, load, memory, CPU time, loaded runtimes.

No JAX and no torch here: the orchestrator (`step_time.py`) and both workers (`bench_worker.py`)
import it, and a worker must choose its allocator and threads before either framework loads.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import sys
import threading
import time


def cpu_count() -> int:
  """CPUs this process may run on (its affinity mask), not the machine's."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # pragma: no cover - not Linux
    return os.cpu_count() or 1


def load_avg() -> list[float] | None:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:  # pragma: no cover
    return None


def now_utc() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def peak_rss_mb() -> float:
  """The process's peak RSS so far (getrusage; monotonic over the whole run)."""
  r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return r / 2**20 if sys.platform == "darwin" else r / 2**10


def rss_mb() -> float:
  """Current resident set size."""
  try:
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
  except OSError:  # pragma: no cover - not Linux
    return peak_rss_mb()


def cpu_seconds() -> float:
  """User + system CPU time of this process (all threads). Per step, it is far less sensitive
  than wall time to other processes competing for the CPUs (they delay us, not our work)."""
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def mem_available_mb() -> float:
  """MemAvailable in MB (0 where unknown), as the library's memory checks read it. Imported here, not at the top:
  the PyG worker also imports this module, from a venv that need not hold our package (it never calls this)."""
  from hgnn_ima_jax.memory_check import host_available_bytes  # pylint: disable=import-outside-toplevel

  return (host_available_bytes() or 0) / 2**20


class RssSampler:
  """Peak RSS while a block runs, sampled every `interval` s in a thread (a per-block peak;
  getrusage only gives the process's peak so far)."""

  def __init__(self, interval: float = 0.02):
    self.interval, self.peak, self._stop = interval, 0.0, threading.Event()

  def __enter__(self):
    self.start = rss_mb()
    self.peak = self.start
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()
    return self

  def _run(self):
    while not self._stop.is_set():
      self.peak = max(self.peak, rss_mb())
      time.sleep(self.interval)

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self.peak = max(self.peak, rss_mb())


def machine_info() -> dict:
  """Host, CPU model, CPUs usable, memory, Python: what every run record carries."""
  model = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
  except OSError:  # pragma: no cover
    pass
  mem_gb = None
  try:
    mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
  except (ValueError, OSError):  # pragma: no cover
    pass
  return {
      "host": platform.node(),
      "cpu": model,
      "cpu_count": cpu_count(),
      "online_cpus": os.cpu_count(),
      "memory_gb": mem_gb,
      "python": platform.python_version(),
      "kernel": platform.release(),
  }


def loaded_runtimes() -> dict:
  """The allocator and OpenMP libraries really mapped into this process (from /proc/self/maps).

  What a variant asked for (LD_PRELOAD, OMP_WAIT_POLICY) only matters if the library is
  there: jemalloc must be mapped for MALLOC_CONF to mean anything, and the wait policy only
  acts on an OpenMP runtime (torch brings libgomp; XLA uses its own thread pool).
  """
  libs = set()
  try:
    with open("/proc/self/maps") as f:
      for ln in f:
        parts = ln.split()
        if len(parts) >= 6 and ".so" in parts[-1]:
          libs.add(parts[-1])
  except OSError:  # pragma: no cover - not Linux
    return {"jemalloc": None, "openmp": []}
  names = {p: os.path.basename(p) for p in libs}
  jemalloc = sorted(p for p, n in names.items() if n.startswith("libjemalloc"))
  openmp = sorted(p for p, n in names.items() if n.startswith(("libgomp", "libiomp", "libomp")))
  return {"jemalloc": jemalloc[0] if jemalloc else None, "openmp": openmp}


def quiet_absl_info() -> None:
  """absl's INFO lines off unless --verbosity is given: JAX logs "Unable to initialize backend 'tpu'" at INFO,
  which read as an error at the top of a benchmark's stderr."""
  from absl import flags, logging  # pylint: disable=import-outside-toplevel

  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def emit(record: dict, out_path: str = ""):
  """One JSON line on stdout and, with `out_path`, appended to that JSONL file."""
  line = json.dumps(record)
  print(line, flush=True)
  if out_path:
    with open(out_path, "a") as f:
      f.write(line + "\n")
