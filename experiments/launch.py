"""What the command-line scripts share besides their flags: signals, native log noise, --help, launch commands.

* `StopOnSignal`: SIGINT/SIGTERM ask a running training to stop after the current epoch
  (`train.train_and_evaluate(..., should_stop=...)`); a second signal exits at once. Installed by
  the scripts, never on import.
* `quiet_native_logs`: XLA's C++ log lines are off unless `--verbosity` is given (see its docstring
  for the lines this hides and why they are noise).
* `app_flags_parser`: `--help` that lists the script's own flags, then the config fields compactly
  with the values the run would use (`config_summary`).
* `launch_command`: how this process was started, for messages that tell the user what to run next.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
import textwrap
import threading
from typing import Callable

from hgnn_ima_jax.cli_flags import parse_flags

HELP_ARGS = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, what a shell reports


# --- stopping on a signal -------------------------------------------------------------------


def _below_progress_bars(line: str) -> None:
  """`line` on stderr on a line of its own: the progress bar (tqdm, on stderr too) is redrawn below it, where a
  plain print continued the bar's line ("...37.1batch/s, loss=1.69]SIGINT received: ...")."""
  from tqdm import tqdm

  tqdm.write(line, file=sys.stderr)
  sys.stderr.flush()


_EARLY_SIGNALS: list[int] = []  # signals `catch_signals_early` kept for `StopOnSignal.install`


def catch_signals_early() -> None:
  """From a script's first lines (after the allocator's re-exec) until `StopOnSignal.install`: SIGINT and SIGTERM
  are kept, and `install` acts on the first. With the default actions a signal during the imports and flag parsing
  (seconds on a loaded machine) killed the process silently (SIGTERM: exit 143, nothing saved or printed) or in a
  KeyboardInterrupt traceback (SIGINT), where the run should stop as documented (an audit saw it once)."""
  for s in EXIT_CODES:
    signal.signal(s, lambda signum, frame: _EARLY_SIGNALS.append(signum))


class StopOnSignal:
  """Call it to know whether a stop was asked for; `install()` connects SIGINT and SIGTERM.

  The first signal sets the request (the training loop checkpoints the epoch it is in and returns);
  the second exits the process at once with 130 (SIGINT) / 143 (SIGTERM). A watcher thread reads the
  signal numbers from `signal.set_wakeup_fd`, so the second signal takes effect even while the main
  thread is inside a long XLA call (compiling), where Python signal handlers do not run.
  """

  def __init__(self, log: Callable[[str], None] | None = None):
    self.signum: int | None = None
    self.unit = "epoch"  # what the run finishes before it stops: 'batch' in mini-batch training
    self._exit_now: str | None = None  # what the process is doing while a signal exits at once (`exits_at_once`)
    self._event = threading.Event()
    self._lock = threading.Lock()
    self._log = log or _below_progress_bars

  def __call__(self) -> bool:
    return self._event.is_set()

  @contextlib.contextmanager
  def exits_at_once(self, doing: str):
    """Within it, the first signal exits the process at once (with the signal's code): nothing is there to save
    yet, e.g. while a process waits for the others of its run (a stop request would wait out the timeout)."""
    self._exit_now = doing
    try:
      if self():  # a signal that came just before
        self._exit(self.signum)
      yield
    finally:
      self._exit_now = None

  def _exit(self, signum: int):
    self._log(f"{signal.Signals(signum).name} received while {self._exit_now}: nothing to save, exiting now")
    os._exit(EXIT_CODES.get(signum, 128 + signum))

  @property
  def exit_code(self) -> int:
    return EXIT_CODES.get(self.signum, 128 + (self.signum or 0))

  def install(self) -> "StopOnSignal":
    """Connects SIGINT and SIGTERM (main thread only); returns self."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd)  # the interpreter's C handler writes each signal's number here
    for s in EXIT_CODES:
      signal.signal(s, self._python_handler)
    threading.Thread(target=self._watch, args=(read_fd,), name="stop-on-signal", daemon=True).start()
    if _EARLY_SIGNALS:  # one that came before (`catch_signals_early`): the run stops as asked
      self._record(_EARLY_SIGNALS[0])
    return self

  def _python_handler(self, signum, frame):
    """Runs when the main thread next executes Python: from then on a signal kills the process directly."""
    del frame
    self._record(signum)
    for s in EXIT_CODES:
      signal.signal(s, signal.SIG_DFL)

  def _watch(self, fd: int):
    """Sees every signal as it arrives (each one is also delivered to `_python_handler`, later)."""
    seen = 0
    while True:
      for signum in os.read(fd, 64):
        seen += 1
        if self._exit_now:
          self._exit(signum)
        if seen == 1:
          self._record(signum)
        else:
          self._log(f"second {signal.Signals(signum).name}: exiting now")
          os._exit(EXIT_CODES.get(signum, 128 + signum))

  def _record(self, signum: int):
    with self._lock:
      if self._event.is_set():
        return
      self.signum = signum
      self._event.set()
    self._log(
        f"{signal.Signals(signum).name} received: stopping after the current {self.unit} (send it again to exit at once)"
    )

  def across_processes(self) -> Callable[[], bool]:
    """The stop request as every process of a multi-process run sees it: True on all once any was signalled.

    A signal may reach one process only (Ctrl-C in one terminal, one host's scheduler). That process alone
    would stop and checkpoint, while the others wait forever in the next collective: both hung, and no
    checkpoint was saved. Every process polls at the same point of the training loop, so one tiny all-gather
    per poll makes the request common: all checkpoint and stop together, with the signal's exit code.
    """
    from hgnn_ima_jax import distributed  # imports JAX: only for a run of several processes

    def poll() -> bool:
      signum = distributed.agree_largest((self.signum or 0) if self() else 0)
      if signum and not self():
        with self._lock:
          self.signum = signum
          self._event.set()
        self._log(f"{signal.Signals(signum).name} reached another process: stopping after the current {self.unit}")
      return bool(signum)

    return poll


# --- native logs ---------------------------------------------------------------------------


def quiet_native_logs(verbose: bool) -> None:
  """Turns XLA's C++ log lines off (TF_CPP_MIN_LOG_LEVEL=3) unless `verbose`; call it before JAX is imported.

  A normal run prints two kinds: 'W ... pjrt_executable.cc] Assume version compatibility' for every
  program loaded from the persistent compilation cache, and, on CPUs whose LLVM target carries the
  tuning attributes +prefer-no-gather/+prefer-no-scatter (some Intel CPUs, e.g. Cascade Lake in
  jax-ml/jax#38445), 'E ... cpu_aot_loader.cc] Target machine feature ... is not supported' for every
  loaded program. The second is XLA comparing those tuning attributes with the host's instruction
  set (jax-ml/jax#38445, openxla/xla#44565); in this XLA it is only a log line and the cached
  program is used. Newer XLA skips 'prefer-'/'fast-' attributes, but JAX >= 0.10 is pinned out
  (pyproject.toml: jax-ml/jax#39264 and its XLA:CPU YNNPACK fusions), so the fix available is not to print them. Errors that stop a
  run still raise Python exceptions with their message. A TF_CPP_MIN_LOG_LEVEL already set wins.
  """
  if not verbose:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# --- launch command -------------------------------------------------------------------------


def launch_command() -> str:
  """'python experiments/train.py', 'python -m pkg.mod' or 'hgnn-ima-train': how this process was started."""
  argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))[1:]
  while argv and argv[0].startswith("-") and argv[0] != "-m":  # interpreter options (-u, -X ...)
    argv = argv[1:]
  if len(argv) >= 2 and argv[0] == "-m":
    return f"python -m {argv[1]}"
  if argv and not argv[0].endswith(".py"):
    return os.path.basename(argv[0])  # a console script
  return f"python {shlex.quote(argv[0])}" if argv else "python"


# --- --help ---------------------------------------------------------------------------------

_SECTIONS = (
    (
        "run",
        (
            "num_epochs",
            "seeds",
            "protocol",
            "selection_metric",
            "checkpoint_every",
            "seed_batch",
            "shard_seeds",
            "mesh_data",
            "model_name",
        ),
    ),
    (
        "data",
        ("dataset", "data_dir", "features", "missing_fill", "feature_seed", "split", "split_fractions", "split_seed"),
    ),
)


def config_summary(config, title: str, *, unread_apart: bool = False) -> str:
  """The config's fields, one wrapped line per section: what `--config.<field>=` can change.

  unread_apart: the fields this one run does not read (`field_usage.unread_fields`: its model's, its
  batch mode's, its dataset's) go on a last line of their own, since giving one is an error; for a script of
  several cells (other models may read them) they stay in their sections.
  """
  from hgnn_ima_jax import field_usage

  d = config.to_dict()
  unread = set(field_usage.unread_fields(d)) if unread_apart else set()
  rows = []
  listed = {k for _, keys in _SECTIONS for k in keys}
  for name, keys in _SECTIONS:
    if name == "run":  # a top-level field no section names is still shown
      keys = keys + tuple(k for k, v in d.items() if k not in listed and not isinstance(v, dict))
    rows.append((name, [f"{k}={_short(d[k])}" for k in keys if k in d and k not in unread]))
  for name, value in d.items():
    if isinstance(value, dict) and (name != "synthetic" or d.get("dataset") == "synthetic") and name not in unread:
      rows.append((name, [f"{k}={_short(v)}" for k, v in value.items() if f"{name}.{k}" not in unread]))
  if unread:
    rows.append(("not read", [_grouped(sorted(p for p in unread if p.split(".")[0] in d))]))
  width = max(len(n) for n, _ in rows) + 2
  lines = [title]
  for name, items in rows:
    body = textwrap.fill(" ".join(items), width=118 - width, break_long_words=False, break_on_hyphens=False)
    lines += [f"  {(name if i == 0 else ''):<{width}}{line}" for i, line in enumerate(body.splitlines())]
  return "\n".join(lines)


def _grouped(paths) -> str:
  """'data_dir model.(combine,nei_mode)': the paths, those of one section in one group."""
  groups: dict[str, list[str]] = {}
  for path in paths:
    section, _, field = path.partition(".")
    groups.setdefault(section, []).append(field)
  return " ".join(s if fields == [""] else f"{s}.({', '.join(fields)})" for s, fields in groups.items())


def _short(v) -> str:
  if isinstance(v, (list, tuple)):
    return "(" + ",".join(_short(x) for x in v) + ")"
  return json.dumps(v) if isinstance(v, str) and (not v or " " in v) else str(v)


def app_flags_parser(config_help: Callable[[], str]) -> Callable[[list[str]], list[str]]:
  """An `app.run(..., flags_parser=...)` whose --help prints the module docstring, the script's own
  flags, then `config_help()` (called after the other flags are parsed, so it can use them); exit 0."""
  from absl import flags

  def parse(argv: list[str]) -> list[str]:
    if not any(a in HELP_ARGS for a in argv[1:]):
      # its errors in one line, not absl's "FATAL Flags parsing error" and another
      return parse_flags(argv, "; config fields: --config.<field>=value", positional=False)
    try:
      flags.FLAGS([a for a in argv if a not in HELP_ARGS])
      tail = config_help()
    except Exception as e:  # pylint: disable=broad-except  # a bad flag next to --help: show the help anyway
      tail = f"(the config for these flags could not be resolved: {e})"
    doc = (sys.modules["__main__"].__doc__ or "").strip()
    print(
        f"{doc}\n\nflags:\n{flags.FLAGS.main_module_help()}\n\n{tail}\n\n"
        "--helpfull lists every flag (absl's own included)."
    )
    sys.exit(0)

  return parse
