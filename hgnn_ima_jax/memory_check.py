"""A training program's memory, checked when it is compiled: one clear error instead of the OOM killer.

XLA knows, once a program is compiled, how many bytes of temporaries one call needs
(`Compiled.memory_analysis()`). On XLA:CPU an over-large step does not fail cleanly: the kernel
kills the process (exit -9, no traceback) or XLA raises RESOURCE_EXHAUSTED deep in a traceback.
`MemoryCheckedProgram` compiles a jitted function ahead of time on its first call's arguments,
compares the estimate with the memory the device has free, and raises `StepMemoryError` (one line:
what, how much, the fix) before the call runs; later calls run the same compiled executable, so
nothing is compiled twice and the numbers are those of `jax.jit`.

Free memory: on CPU `MemAvailable` of /proc/meminfo, on GPU/TPU the device's `bytes_limit -
bytes_in_use`. Where neither is known, or the backend gives no estimate, nothing is checked. The synthetic
generator checks its feature matrices against the host's available memory with the same switch
(`data_utils.synthetic_config.check_fits_in_memory`).
Set HGNN_IMA_MEMORY_CHECK=0 to skip the check (e.g. with swap), or HGNN_IMA_MEMORY_LIMIT=8G (bytes, or
a K/M/G suffix) to allow no more than that, e.g. to leave room for other jobs on a shared machine. The limit
bounds one compiled program's temporaries and outputs, not the process: its graph, features, sampler and
parameters come on top.
"""

from __future__ import annotations

import os
from typing import Callable

# No module-level JAX import: experiments/train.py imports StepMemoryError before it sets the native
# log level, which must happen before JAX loads (experiments/launch.quiet_native_logs).

ENV_SWITCH = "HGNN_IMA_MEMORY_CHECK"
ENV_LIMIT = "HGNN_IMA_MEMORY_LIMIT"
_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class StepMemoryError(MemoryError):
  """A compiled program needs more memory than the device has free."""


class MemoryLimitError(ValueError):
  """$HGNN_IMA_MEMORY_LIMIT does not parse as a size (one line, with the fix)."""


def checking() -> bool:
  """Whether the memory checks run: all but $HGNN_IMA_MEMORY_CHECK=0."""
  return os.environ.get(ENV_SWITCH, "1") != "0"


def host_available_bytes() -> int | None:
  """This machine's MemAvailable (/proc/meminfo) in bytes, or None where it is not known."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    return None
  return None


def free_bytes(device) -> int | None:
  """Bytes `device` can still allocate, or None when that is not known."""
  if device.platform == "cpu":
    return host_available_bytes()
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  if not stats or "bytes_limit" not in stats:
    return None
  return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def memory_limit() -> int | None:
  """$HGNN_IMA_MEMORY_LIMIT in bytes (None when unset); a one-line error when it does not parse."""
  text = os.environ.get(ENV_LIMIT, "").strip().upper().removesuffix("B")
  if not text:
    return None
  scale = _UNITS.get(text[-1], 1)
  try:
    value = float(text[:-1] if text[-1] in _UNITS else text) * scale
  except ValueError:
    value = -1
  if value <= 0:
    raise MemoryLimitError(
        f"{ENV_LIMIT}={os.environ[ENV_LIMIT]!r} is not a size. Fix: bytes or a K/M/G suffix, e.g. 8G"
    )
  return int(value)


def needed_bytes(compiled) -> int | None:
  """Temporaries plus outputs that do not reuse a donated input, per call; None without an estimate."""
  import jax  # pylint: disable=import-outside-toplevel

  try:
    ma = compiled.memory_analysis()
  except (NotImplementedError, jax.errors.JaxRuntimeError):
    return None
  if ma is None:
    return None
  return int(ma.temp_size_in_bytes) + max(0, int(ma.output_size_in_bytes) - int(ma.alias_size_in_bytes))


def remat_first(config, fix: str) -> str:
  """A memory error's fix, led by --config.model.remat=True (the same training in less memory) when it is off."""
  if config.model.get("remat", False):
    return fix
  return f"set --config.model.remat=True (the same training in less memory), or {fix}"


def check_memory(compiled, what: str, fix: str, device=None) -> None:
  """Raises `StepMemoryError` when `compiled` needs more than `device` (default: the first local one) has free."""
  if not checking():
    return
  import jax  # pylint: disable=import-outside-toplevel

  need = needed_bytes(compiled)
  free, limit = free_bytes(device or jax.local_devices()[0]), memory_limit()
  if limit is not None:
    free = limit if free is None else min(free, limit)
  if need is None or free is None or need <= free:
    return
  raise StepMemoryError(
      f"{what}: the compiled step needs {format_bytes(need)} per call (temporaries and outputs) and "
      f"{format_bytes(free)} are available. Fix: {fix} (or {ENV_SWITCH}=0 to run anyway)"
  )


def format_bytes(n: int) -> str:
  """Bytes in GB, or MB below one GB (a small limit read '0.0 GB needed, 0.0 GB available')."""
  return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"


class MemoryCheckedProgram:
  """`jitted(*args)`, compiled on the first call and checked by `check_memory` before it runs."""

  def __init__(self, jitted: Callable, what: str, fix: str):
    self.jitted, self.what, self.fix = jitted, what, fix
    self.compiled = None

  def __call__(self, *args):
    if self.compiled is None:
      compiled = self.jitted.lower(*args).compile()
      check_memory(compiled, self.what, self.fix)
      self.compiled = compiled
    return self.compiled(*args)
