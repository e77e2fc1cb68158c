"""The shared tail of the paper-artefact scripts (table2.py, ablation.py, depth_sweep.py, visualize.py):
workdir, devices, run, user errors as one line (exit 2), outputs written, the Markdown printed.

The other shared pieces live by job: `run_options` (flags → `Options`, the cell configs),
`cell_runs` (training cells once, `CellRunner`), `formatting` (tables and notes), `outputs` (a run's
history files and results table).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from typing import Callable

from hgnn_ima_jax import cli_flags, config_values
from hgnn_ima_jax import config_validation as cv
from hgnn_ima_jax.graph import DatasetError
from hgnn_ima_jax.run_dir import WorkdirError, check_workdir, runs_below

from . import formatting
from .cell_runs import CellConfigError
from .run_options import Options, config_help, define_common_flags, options_from_flags, parse_list


def user_errors() -> tuple[type, ...]:
  """Errors a launcher reports in one line (exit 2) instead of a traceback: bad data or config, a workdir clash,
  a step that does not fit in memory."""
  from hgnn_ima_jax.checkpointing import CheckpointMismatchError  # imports JAX (Orbax); only when a run failed
  from hgnn_ima_jax.memory_check import MemoryLimitError, StepMemoryError

  return (
      DatasetError,
      cv.ConfigError,
      CellConfigError,
      CheckpointMismatchError,
      FileExistsError,
      WorkdirError,
      StepMemoryError,
      MemoryLimitError,
  )


def default_workdir(script: str) -> str:
  return os.path.join("runs", f"{script}-{time.strftime('%Y%m%d-%H%M%S')}")


def run_script(
    script: str,
    flag_values,
    run: Callable[[str], dict],
    write_outputs: Callable[[dict, str], dict],
    markdown: Callable[[dict], str],
    stop=None,
):
  """The shared tail of table2/ablation/depth_sweep: workdir, devices, run (user errors: one line,
  exit 2), write the outputs, print the Markdown and the paths written.

  stop: the `launch.StopOnSignal` the cells poll (`start`); a run it stopped prints the command that continues
  it and exits with the signal's code (130 for Ctrl-C), as train.py does.
  """
  from absl import app

  if flag_values.resume and not flag_values.workdir:
    raise app.UsageError("--resume needs the --workdir of the earlier run")
  workdir = flag_values.workdir or default_workdir(script)
  refuse_bad_workdir(workdir)  # before any cell is built or trained
  refuse_a_training_run(workdir)
  if flag_values.resume:
    refuse_resume_without_cells(workdir)
  table_file = os.path.join(workdir, f"{script}.json")
  if os.path.exists(table_file) and not flag_values.resume:  # a run of other cells would replace it with theirs alone
    fail(
        f"{table_file}: --workdir holds the table of an earlier run. Fix: add --resume to reuse its finished cells (with "
        "the same flags, the same table), or give a new --workdir"
    )
  import jax

  print(f"devices: {jax.devices()}; workdir: {workdir}")
  from hgnn_ima_jax.run_log import TrainingInterrupted

  from . import launch

  try:
    table = run(workdir)
  except user_errors() as e:
    fail(with_datasets_flag(e))
  except TrainingInterrupted as e:  # a signal (`start`): the cell's checkpoint is saved, finished cells kept
    kept = [a for a in sys.argv[1:] if not re.match(r"--(no)?(workdir|resume)(=|$)", a)]
    again = " ".join(
        [launch.launch_command(), *map(shlex.quote, kept), f"--workdir={shlex.quote(workdir)}", "--resume"]
    )
    print(f"interrupted {e.where} in {e.workdir}; finished cells are kept. Continue with: {again}", file=sys.stderr)
    sys.exit(getattr(stop, "exit_code", 130))
  table["settings"] = run_settings(options_from_flags(flag_values), table["datasets"])
  table["notes"] = [settings_note(table["settings"])] + list(table.get("notes", []))
  paths = write_outputs(table, workdir)
  print()
  print(markdown(table))
  *first, last = paths.values()
  print(f"\nwrote {', '.join(first)} and {last}" if first else f"\nwrote {last}")


def with_datasets_flag(err: Exception) -> Exception:
  """`err` with the fix's `--dataset=` spelled `--datasets=`: the library's fixes name train.py's flag, and these
  scripts take a comma list under that name instead."""
  if isinstance(err, cv.ConfigError) and re.search(r"--dataset=", err.fix):
    return cv.ConfigError(err.field, err.value, err.problem, re.sub(r"--dataset=", "--datasets=", err.fix))
  return err


def run_settings(opts: Options, datasets) -> dict:
  """What produced a table beside its cells: the protocol, each dataset's epochs and the --config overrides
  ("Ours" is the paper's -L_ind under the code profile and the paper's model under --protocol=paper)."""
  from .run_options import base_config

  return {
      "protocol": opts.protocol,
      "epochs": {d: int(base_config(d, opts).num_epochs) for d in datasets},
      "overrides": config_values.normalise(dict(opts.overrides)),
      "features": opts.features,
  }


def settings_note(settings: dict) -> str:
  """The table's settings as one Markdown line."""
  epochs = ", ".join(f"{formatting.dataset_tag(d)} {n}" for d, n in settings["epochs"].items())
  overrides = " ".join(config_values.config_flag(k, v) for k, v in settings["overrides"].items()) or "none"
  features = f"; --features={settings['features']}" if settings.get("features") else ""
  return f"Settings: --protocol={settings['protocol']}; epochs: {epochs}{features}; overrides: {overrides}."


def quiet_logging():
  """Orbax logs every save at INFO and XLA's C++ logs are noise (`launch.quiet_native_logs`): both are off
  unless --verbosity is given, so the scripts' output is their tables. Call it before JAX is imported."""
  from absl import flags, logging

  from . import launch

  verbose = flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].present
  launch.quiet_native_logs(verbose)
  if not verbose:
    logging.set_verbosity(logging.WARNING)


def fail(err: Exception):
  """A user error as one line on stderr, exit code 2."""
  print(f"error: {err}", file=sys.stderr)
  sys.exit(2)


def refuse_bad_workdir(workdir: str):
  """`run_dir.check_workdir` for a script's --workdir: a path a run could not write to is one line, exit code 2."""
  try:
    check_workdir(workdir, "--workdir")
  except WorkdirError as e:
    fail(e)


def usable_cache(cache: str, given: bool) -> str:
  """`cache` when it can be a directory. One that cannot (JAX took it, warned at every compilation that it could not
  read or write there, and compiled everything again): given as --xla_cache, one line and exit 2; the default (a
  read-only home), '' (no cache) and a note that says so."""
  try:
    check_workdir(os.path.expanduser(cache), "--xla_cache")
  except WorkdirError as e:
    if given:
      fail(f"{e}; or --xla_cache= to compile without a cache")
    print(f"note: compiling without a cache: {str(e).split('. Fix:')[0]}", file=sys.stderr)
    return ""
  return cache


# The tables the artefact scripts write beside their cells (table2.py, ablation.py, depth_sweep.py).
TABLE_FILES = ("table2.json", "ablation.json", "layers.json")


def cell_dirs(workdir: str) -> list[str]:
  """The cells of an artefact script's `workdir`, each a run: `<dataset>/<cell>` with a config.json (written when
  the cell starts training)."""
  return runs_below(workdir, levels=(2,))


def holds_cells(workdir: str) -> bool:
  """Whether `workdir` holds a cell (`cell_dirs`) or a table of an artefact script."""
  return any(os.path.isfile(os.path.join(workdir, t)) for t in TABLE_FILES) or bool(cell_dirs(workdir))


def refuse_a_training_run(workdir: str, fix: str = "give a new --workdir"):
  """A table script's (or visualize.py's) --workdir that holds an experiments/train.py run: one line, exit code 2.
  Its cells went into that run's directory (`visualize.py --workdir=runs/first`, meant as --run, trained a model
  for minutes and drew that one's figures)."""
  if os.path.isfile(os.path.join(workdir, "config.json")):
    fail(f"--workdir={workdir}: holds an experiments/train.py run (its config.json), not a script's cells. Fix: {fix}")


def refuse_resume_without_cells(workdir: str):
  """--resume on a workdir that does not exist or holds no cell of these scripts is one line, exit code 2, before
  anything is trained or written: a mistyped path retrained every cell of a table from scratch (train.py refuses
  its --resume the same way)."""
  if not os.path.isdir(workdir):
    fail(
        f"--resume: --workdir={workdir} does not exist. Fix: check the path of the earlier run, or drop --resume "
        "to start a new one there"
    )
  if not holds_cells(workdir):
    fail(
        f"--resume: {workdir} holds no cell of an earlier table2/ablation/depth_sweep/visualize run (no "
        "<dataset>/<cell>/config.json). Fix: check the path of the earlier run, or drop --resume to start a new "
        "one there"
    )


def start(flag_values) -> Options:
  """The first lines of every artefact script's main: quiet logs, Ctrl-C/SIGTERM connected to a stop after the
  current cell's epoch (`launch.StopOnSignal`; `run_script` then prints how to resume), then the common flags as
  `Options`."""
  import dataclasses

  from . import launch

  quiet_logging()
  stop = launch.StopOnSignal().install()
  return dataclasses.replace(options_or_exit(flag_values), should_stop=stop)


def choice_list(flag: str, text: str, allowed) -> tuple[str, ...]:
  """--<flag>'s comma list, every item one of `allowed`; else a one-line usage error."""
  from absl import app

  items = parse_list(text)
  if not items or any(i not in allowed for i in items):
    raise app.UsageError(f"--{flag}={text}: give a comma list of {', '.join(allowed)}")
  refuse_repeats(flag, text, items)
  return items


def refuse_repeats(flag: str, text: str, items) -> None:
  """A comma list that names an item twice (--models=hgt,hgt) gave a table with the same row twice."""
  from absl import app

  repeated = sorted({str(i) for i in items if list(items).count(i) > 1})
  if repeated:
    raise app.UsageError(f"--{flag}={text}: names {', '.join(repeated)} more than once; give each once")


def run_choices_script(
    script: str,
    flag: str,
    default: tuple[str, ...],
    help_text: str,
    allowed: tuple[str, ...],
    run: Callable[[Options, str, tuple[str, ...]], dict],
    write_outputs: Callable[[dict, str], dict],
    markdown: Callable[[dict], str],
):
  """The `__main__` of table2 (--models) and ablation (--variants): the common flags and --<flag>, a
  comma list (default `default`) checked against `allowed`, then `run_script` with `run(opts, workdir, choices)`."""
  from absl import flags

  define_common_flags(script)
  flags.DEFINE_string(flag, ",".join(default), help_text, module_name=sys.argv[0])  # listed in the script's --help

  def main(argv):
    del argv
    opts = start(flags.FLAGS)
    choices = choice_list(flag, flags.FLAGS[flag].value, allowed)
    run_script(
        script, flags.FLAGS, lambda workdir: run(opts, workdir, choices), write_outputs, markdown, opts.should_stop
    )

  run_main(main)


def run_main(main: Callable):
  """absl's `app.run(main)` with the artefact scripts' --help tail (the config fields a cell would use)."""
  from absl import app, flags

  from . import launch

  app.run(cli_flags.one_line_usage_errors(main), flags_parser=launch.app_flags_parser(lambda: config_help(flags.FLAGS)))


def write_table(workdir: str, stem: str, table: dict, markdown: str) -> dict[str, str]:
  """`<stem>.md` and `<stem>.json` (NaN-safe) in `workdir`; returns their paths as {'markdown', 'json'}."""
  os.makedirs(workdir, exist_ok=True)
  paths = {"markdown": os.path.join(workdir, f"{stem}.md"), "json": os.path.join(workdir, f"{stem}.json")}
  formatting.write_text(paths["markdown"], markdown)
  formatting.write_json(paths["json"], table)
  return paths


def options_or_exit(flag_values) -> Options:
  """`options_from_flags`; a bad --seeds is one line and exit 2."""
  try:
    return options_from_flags(flag_values)
  except cv.ConfigError as e:
    fail(e)
