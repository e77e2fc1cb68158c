"""The child processes the benchmark orchestrators start, and what becomes of them when an orchestrator stops.

`step_time.py` (its workers and the probe of the PyG Python), `scale.py` (one process per row),
`sampled_accuracy.py` (one `experiments/train.py` per mode) and `devices.py` (one per measurement) start
every child with `start`:

* each child leads its own process group, so that stopping it stops what it started too (TorchInductor's
  compile workers, for one), and a Ctrl-C in the terminal reaches the orchestrator only, which then stops
  its children itself (a child that got the SIGINT too would print its own traceback);
* on Linux each child dies with the orchestrator (`PR_SET_PDEATHSIG`, SIGKILL), also when the orchestrator
  is SIGKILLed and no handler of ours runs. The kernel ties this to the *thread* that started the child:
  every orchestrator starts its children from its main thread.

`stop_on_signals` makes SIGTERM and SIGINT stop every live child (its whole group), remove the temporary
directories made with `temp_dir`, print one line and exit 128 + the signal's number (143, 130), without a
KeyboardInterrupt traceback. Without it a killed orchestrator left its worker timing on, re-parented to
pid 1, for up to --worker_timeout, and its work directory (graph, XLA cache, rows) in /tmp.

No JAX and no torch here: the orchestrators import it before any framework loads.
"""

from __future__ import annotations

import collections
import ctypes
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_LIVE: dict[int, subprocess.Popen] = {}  # pid -> the children started and not yet stopped
_TEMP_DIRS: list[pathlib.Path] = []  # removed on SIGTERM/SIGINT
_SCRIPT = [os.path.basename(sys.argv[0]) if sys.argv else "benchmark"]


def _die_with_parent():
  """A preexec_fn that asks the kernel for SIGKILL when the starting thread dies (Linux), else None.

  None too in a process that has loaded JAX (the tests call these helpers in-process): a preexec_fn makes
  subprocess fork, and a fork of a process whose native threads may hold locks can deadlock the child (Python
  warns so). The orchestrators never load JAX."""
  if not sys.platform.startswith("linux") or "jax" in sys.modules:
    return None
  try:
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child
  except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
    return None
  parent, kill = os.getpid(), int(signal.SIGKILL)

  def preexec():
    prctl(PR_SET_PDEATHSIG, kill, 0, 0, 0)
    if os.getppid() != parent:  # the orchestrator died before prctl: nothing would ever stop this child
      os._exit(1)

  return preexec


def start(cmd: list[str], **popen_kwargs) -> subprocess.Popen:
  """`subprocess.Popen(cmd, ...)` as a child that `stop` and the signal handler can stop with all it started."""
  popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
  proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent(), **popen_kwargs)
  _LIVE[proc.pid] = proc
  return proc


def _kill_group(pid: int) -> None:
  try:
    os.killpg(pid, signal.SIGKILL)
  except (ProcessLookupError, PermissionError):  # the group is gone already
    pass


def stop(proc: subprocess.Popen) -> None:
  """Kills `proc`'s process group if `proc` has not been reaped yet, and reaps it."""
  if proc.returncode is None:  # running, or exited and not reaped: its group id is still its own
    _kill_group(proc.pid)
    proc.wait()
  _LIVE.pop(proc.pid, None)


def communicate(proc: subprocess.Popen, timeout: float) -> tuple[str | None, str | None] | None:
  """`proc.communicate(timeout=...)`, then `stop(proc)`; None when the timeout ran out (proc is then killed)."""
  try:
    return proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    return None
  finally:
    stop(proc)


def temp_dir(prefix: str) -> pathlib.Path:
  """A new temporary directory that SIGTERM/SIGINT remove (with `stop_on_signals`); `remove_temp_dir` at the end."""
  path = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
  _TEMP_DIRS.append(path)
  return path


def remove_temp_dir(path: pathlib.Path) -> None:
  shutil.rmtree(path, ignore_errors=True)
  if path in _TEMP_DIRS:
    _TEMP_DIRS.remove(path)


def _on_signal(signum, frame):
  del frame
  for s in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl-C must not interrupt the cleanup
    signal.signal(s, signal.SIG_IGN)
  stopped = 0
  for pid, proc in list(_LIVE.items()):
    if proc.returncode is not None:
      continue
    _kill_group(pid)
    # os.waitpid, not proc.wait(): the main thread may be inside proc.wait() holding its (non-reentrant) lock.
    try:
      os.waitpid(pid, 0)
    except ChildProcessError:
      pass
    stopped += 1
  for d in _TEMP_DIRS:
    shutil.rmtree(d, ignore_errors=True)
  removed = f", removed {', '.join(map(str, _TEMP_DIRS))}" if _TEMP_DIRS else ""
  name = signal.Signals(signum).name
  # os.write: sys.stderr may be in the middle of a write of the main thread.
  os.write(2, f"{_SCRIPT[0]}: stopped by {name}: {stopped} child process(es) killed{removed}\n".encode())
  os._exit(128 + signum)


def stop_on_signals(script: str) -> None:
  """SIGTERM/SIGINT: kill every live child's group, remove the temporary directories, one line, exit 143/130."""
  _SCRIPT[0] = script
  for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, _on_signal)


def run_worker(cmd: list[str], env: dict, timeout: float) -> tuple[int | str, str]:
  """(exit code or 'timeout', the end of its stderr); its '#' progress lines are passed on as they come."""
  proc = start(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  killed = threading.Event()

  def kill():
    killed.set()
    _kill_group(proc.pid)

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
    stop(proc)
  if killed.is_set():
    return "timeout", "".join(tail) + f"killed after --worker_timeout={timeout:.0f} s\n"
  return rc, "".join(tail)


def resolve_python(python: str) -> str | None:
  """`python` as an absolute path: a path (relative ones against the current directory) or a name on PATH;
  None when it is not an executable file. Symlinks stay as given (a venv's python finds its venv by its path)."""
  if os.sep in python or (os.altsep and os.altsep in python):
    path = os.path.abspath(python)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
  found = shutil.which(python)
  return os.path.abspath(found) if found else None


def pyg_availability(python: str, device: str = "cpu", timeout: float = 300) -> str | None:
  """None when `python` imports torch and torch_geometric (and, for device 'cuda', its torch sees a GPU), else why
  not, as one line that starts with the flag to change."""
  resolved = resolve_python(python)
  if resolved is None:
    return f"--pyg_python={python}: no such executable; give the Python of a venv with requirements-bench.txt"
  code = "import torch, torch_geometric; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())"
  proc = start([resolved, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  out = communicate(proc, timeout)
  if out is None:
    return f"--pyg_python={python}: importing torch and torch_geometric took over {timeout:.0f} s"
  if proc.returncode != 0:
    last = (out[1].strip().splitlines() or ["?"])[-1]
    return (
        f"--pyg_python={python}: torch/torch_geometric not importable ({last}); "
        "pip install -r requirements-bench.txt into its venv"
    )
  version, cuda, seen = (out[0].split() + ["?", "?", "?"])[:3]
  if device == "cuda" and seen != "True":
    return (
        f"--pyg_device=cuda: torch {version} of {python} sees no CUDA device (its CUDA: {cuda}); "
        "use --pyg_device=cpu, or a CUDA build of torch on a machine with a GPU"
    )
  return None
