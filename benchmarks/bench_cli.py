"""What the benchmark scripts share at their edges: checks of their flags before any work, and the seeds' statistics.

Every check raises ValueError with one line that names the flag, the value and the fix; the scripts turn it into
their one-line usage error (`error: ...`, exit 1) before they build a graph, compile or start a process. No JAX and
no torch here: the orchestrators import it first.
"""

from __future__ import annotations

import os
import statistics
import tempfile


def check_out(path: str, flag: str = "out") -> str | None:
  """Refuses an --out that rows cannot be appended to (a directory, a missing parent, no permission), before the
  work that would have ended in a traceback at the first row; returns the line to print when the file exists
  and the rows will be appended to it (None otherwise).

  A probe, not `os.access`: as root `os.access` says yes to everything. An existing file is opened for
  appending (which changes nothing); for a new one a temporary file is made and removed in its directory.
  """
  if not path:
    return None
  fix = "give a file in an existing directory you can write to"
  if os.path.isdir(path):
    raise ValueError(f"--{flag}={path}: is a directory. Fix: {fix}")
  parent = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(parent):
    raise ValueError(f"--{flag}={path}: its directory {parent} does not exist. Fix: create it, or {fix}")
  try:
    if os.path.exists(path):
      with open(path, "a"):
        pass
    else:
      fd, probe = tempfile.mkstemp(prefix=".out-probe-", dir=parent)
      os.close(fd)
      os.unlink(probe)
  except OSError as e:
    raise ValueError(f"--{flag}={path}: cannot be written ({e.strerror}). Fix: {fix}") from None
  if os.path.exists(path) and os.path.getsize(path) > 0:
    return f"# --{flag}={path} exists: the new rows are appended to it"
  return None


def at_least(flag: str, value, low, why: str = "") -> None:
  """--flag=value must be >= low."""
  if value < low:
    raise ValueError(f"--{flag}={value}: must be at least {low}{why}. Fix: give --{flag}>={low}")


def int_list(flag: str, items, low: int = 1, also=(), example: str = "10,5,5") -> list[int]:
  """A comma list of integers >= low (or in `also`): '10,x' was a ValueError without the flag's name, in a worker."""
  text = ",".join(str(i) for i in items)
  try:
    values = [int(i) for i in items]
  except ValueError:
    values = []
  if not values or any(v < low and v not in also for v in values):
    more = "".join(f" or {a}" for a in also)
    raise ValueError(f"--{flag}={text}: give a comma list of integers >= {low}{more}, e.g. --{flag}={example}")
  return values


def mean_std(values) -> tuple[float, float | None]:
  """(mean, sample standard deviation, n - 1 in the denominator, as the project reports everywhere); None for one
  value, which has no spread to estimate (as `hgnn_ima_jax.metrics.mean_std`, shown as n/a)."""
  values = list(values)
  return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None
