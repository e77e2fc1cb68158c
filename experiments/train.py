r"""Train and evaluate one model on one dataset over one or more seeds (vmapped).

  python experiments/train.py                                  # synthetic, HGNN-IMA, 5 seeds
  python experiments/train.py --dataset=imdb --features=generated --model=hgt_late --config.model.num_layers=2
  python experiments/train.py --workdir=runs/x --resume        # continue runs/x with its saved config

Ctrl-C/SIGTERM stops after the current epoch (mini-batches: batch), checkpoints, prints the command that
continues the run; a second one exits at once. Several hosts: docs/distributed.md.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import re
import shlex
import socket
import sys
import threading
import time

if __name__ == "__main__":  # before JAX is imported: the allocator is chosen at process start
  from hgnn_ima_jax.runtime import reexec_with_fast_allocator

  reexec_with_fast_allocator()
  from hgnn_ima_jax.experiments.launch import catch_signals_early

  catch_signals_early()  # until main installs StopOnSignal

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from hgnn_ima_jax import (  # noqa: E402
    choices,
    cli_flags,
    config_paths,
    config_values,
    field_usage,
    run_dir,  # noqa: E402
)
from hgnn_ima_jax import config_validation as cv  # noqa: E402
from hgnn_ima_jax.data_utils import load_for_config, validate_run_config  # noqa: E402
from hgnn_ima_jax.experiments import common, formatting, launch, run_options  # noqa: E402
from hgnn_ima_jax.experiments.configs import PROTOCOLS, get_config, set_path  # noqa: E402
from hgnn_ima_jax.graph import DatasetError  # noqa: E402

FLAGS = flags.FLAGS

# Flags that are fields of the saved config: (flag, config path). With --resume each one given must
# agree with the run's config.json; the other flags (progress, xla_cache, verbosity, ...) do not
# change the result and may differ.
RUN_FLAGS = (
    ("dataset", "dataset"),
    ("data_dir", "data_dir"),
    ("features", "features"),
    ("model", "model_name"),
    ("seeds", "seeds"),
    ("protocol", "protocol"),
    ("epochs", "num_epochs"),
)


class ResumeError(ValueError):
  """--resume cannot continue the workdir as asked (one line with the fix)."""


def define_flags():
  flags.DEFINE_string(
      "dataset",
      "synthetic",
      "douban|imdb|amazon|amazon1|amazon2|synthetic|synthetic_amazon1[x4]|synthetic10m|a generic-format path",
  )
  flags.DEFINE_string("data_dir", None, "directory holding <dataset>/ folders (default: $HGNN_IMA_DATA_DIR or ./data)")
  flags.DEFINE_enum(
      "features",
      None,
      ["real", "generated"],
      "'generated' explicitly runs the real graph with generated features for files that are absent",
  )
  flags.DEFINE_string(
      "model",
      "hgnn_ima",
      "hgnn_ima | hgt | hgt_early | hgt_late | hgnn_ima<ablation> "
      "(-cross, -adapt, +inf, -nei, -align, -L_att, -L_ind)",
  )
  flags.DEFINE_string("seeds", "5", "N for seeds 0..N-1, or a comma-separated list such as 0,3,7")
  flags.DEFINE_enum("protocol", "code", list(PROTOCOLS), "'code' (the authors' scripts) or 'paper' (Sec. 5.3)")
  flags.DEFINE_string("workdir", None, "output directory (default: runs/<dataset>-<model>-<time>)")
  flags.DEFINE_integer("epochs", None, "number of epochs (default: the dataset's)")
  flags.DEFINE_bool("resume", False, "continue the run in --workdir from its latest checkpoint, with its saved config")
  flags.DEFINE_bool("print_config", False, "print the resolved config (what the run would use) as JSON and exit")
  flags.DEFINE_bool("progress", True, "show a progress bar")
  flags.DEFINE_string(
      "xla_cache",
      os.path.join("~", ".cache", "hgnn-ima-jax", "xla"),
      "persistent XLA compilation cache: a rerun of the same model/graph skips compiling ('' disables)",
  )
  flags.DEFINE_string(
      "coordinator",
      None,
      "HOST:PORT of process 0 of a multi-process run, or 'auto' (SLURM, TPU pods)",
  )
  flags.DEFINE_integer("num_processes", None, "processes of a multi-process run")
  flags.DEFINE_integer("process_id", None, "this process's index, 0..num_processes-1")
  flags.DEFINE_integer("coordinator_timeout", 300, "seconds to wait for the other processes", lower_bound=1)
  run_options.define_config_flag("overrides of any config field: --config.<field>=<value> (listed below)")


def host_cache_dir(base: str, jax_version: str) -> str:
  """`base/<jax version>-<CPU fingerprint>`: XLA:CPU programs are compiled for the host's
  instruction set, so a cache shared between machines (a home directory on NFS, a copied
  container) would load programs built for another CPU; keying by CPU flags avoids that."""
  flags_line = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      flags_line = next((l for l in f if l.startswith(("flags", "Features"))), flags_line)
  except OSError:
    pass
  tag = hashlib.sha256(flags_line.encode()).hexdigest()[:12]
  return os.path.join(os.path.expanduser(base), f"jax{jax_version}-{tag}")


def _seeds_flag() -> tuple[int, ...]:
  seeds = run_options.parse_seeds(FLAGS.seeds)
  if seeds is None:
    raise cv.ConfigError("seeds", FLAGS.seeds, "is empty", "give --seeds=N for seeds 0..N-1, or a list such as 0,3,7")
  return seeds


def build_config():
  """Dataset defaults + protocol, then the flags, then --config.* overrides (`run_options.base_config`); an
  override the model does not read is refused (`run_options.check_overrides_read`)."""
  # --model goes first among the overrides, so that an explicit --config.model_name still wins.
  overrides = {"model_name": FLAGS.model, **config_flags.get_override_values(FLAGS["config"])}
  opts = run_options.Options(
      datasets=(FLAGS.dataset,),
      seeds=_seeds_flag(),
      epochs=FLAGS.epochs,
      features=FLAGS.features,
      data_dir=FLAGS.data_dir,
      protocol=FLAGS.protocol,
      overrides=overrides,
  )
  config = run_options.base_config(FLAGS.dataset, opts)
  run_options.check_overrides_read([config], opts)
  cv.check_fanouts_per_layer(config)  # a new run (a resumed one keeps what it was saved with)
  return config, opts


def resume_config(workdir: str):
  """The config saved in `workdir`, with the result-neutral --config overrides applied; refuses a
  workdir without a run or checkpoint, and any flag given that contradicts the saved config."""
  if not os.path.isfile(os.path.join(workdir, "config.json")):
    if run_dir.saved_steps(workdir):  # "drop --resume" would then be refused for the checkpoints: a loop
      raise ResumeError(
          f"--resume: {workdir} holds checkpoints but no config.json, which rebuilds the run. Fix: put back the "
          "config.json the run wrote, or train into a new --workdir"
      )
    raise ResumeError(
        f"--resume: {workdir} holds no run (no config.json). Fix: give the --workdir of an earlier "
        "run, or drop --resume to start a new one"
    )
  if not run_dir.saved_steps(workdir) and not os.path.isfile(os.path.join(workdir, "results.json")):
    # (a finished run whose latest checkpoints are gone still prints its results)
    raise ResumeError(
        f"--resume: {workdir} has no checkpoint to continue from (the run stopped before its first one). "
        "Fix: start it again without --resume, with the same flags"
    )
  config = run_dir.read_config(workdir)
  # A field the run does not read never changed it; an older version saved whatever was given (--data_dir
  # with --dataset=synthetic, --config.split_seed with split=file, --config.batch.size with full-batch
  # training), which validation now refuses, so it goes back to its default.
  unread = field_usage.unread_fields(config)
  saved, defaults = config.to_dict(), get_config(config.dataset, config.get("protocol", "code")).to_dict()
  absent = object()
  for path in unread:
    default = config_values.get_path(defaults, path, absent)
    if config_values.get_path(saved, path, absent) is not absent and default is not absent:
      set_path(config, path, default)
  saved = config_values.normalise(config.to_dict())
  flag_value = {"seeds": _seeds_flag, "dataset": lambda: config_paths.absolute_path("dataset", FLAGS.dataset)}
  flag_value["data_dir"] = lambda: config_paths.absolute_path("data_dir", FLAGS.data_dir)
  asked = [
      (f"--{name}={FLAGS[name].value}", path, flag_value[name]() if name in flag_value else FLAGS[name].value)
      for name, path in RUN_FLAGS
      if FLAGS[name].present
  ]
  asked += [
      (config_values.config_flag(path, value), path, value)
      for path, value in config_flags.get_override_values(FLAGS["config"]).items()
  ]
  for flag, path, value in asked:
    have = config_values.get_path(saved, path, None)
    ignored = field_usage.ignored_override(config, path, value, have)  # a model or loss field the run's model ignores
    if ignored:
      raise cv.ConfigError(path, value, *ignored)
    # data_dir is a host path (as for the processes of one run, each may mount the data elsewhere): a dataset
    # moved since the run started is found with --data_dir; its graph is checked against the run's schema
    host_path = path == "data_dir" and path not in unread
    if path in choices.RESULT_NEUTRAL or host_path or path in unread or path.split(".")[0] in unread:
      set_path(config, path, value)  # unread: validation refuses it
    elif config_values.normalise(value) != have:
      raise ResumeError(
          f"{flag} contradicts the run in {workdir}, saved with "
          f"{path}={config_values.format_value(have)}. Fix: drop {flag.split('=')[0]} to continue that run as "
          "saved, or train with it into a new --workdir"
      )
  return config


# How a collective says that another process of the run is gone (Gloo over TCP; the coordination service)
PEER_FAILURE = re.compile(r"Gloo|Connection (reset|closed)|UNAVAILABLE|DEADLINE_EXCEEDED|heartbeat|[Tt]ask .* failed")


def _port_in_use(port: int) -> bool:
  """Whether another socket listens on `port` (any address) of this host, where the coordinator would listen on
  all of them; SO_REUSEADDR as the coordinator's server sets it, so a closed connection's port reads as free."""
  for family, address in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
    try:
      probe = socket.socket(family, socket.SOCK_STREAM)
    except OSError:  # no IPv6 on this host: the IPv4 probe
      continue
    with probe:
      probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      try:
        probe.bind((address, port))
        return False
      except OSError as e:
        if e.errno == errno.EADDRINUSE:
          return True
  return False


def resume_command(workdir: str) -> str:
  """The command that continues this process's run (with its --coordinator, --num_processes and --process_id)."""
  hosts = (
      f" --coordinator={FLAGS.coordinator} --num_processes={FLAGS.num_processes} --process_id={FLAGS.process_id}"
      if FLAGS.coordinator and FLAGS.coordinator != "auto"
      else (" --coordinator=auto" if FLAGS.coordinator else "")
  )
  return f"{launch.launch_command()} --workdir={shlex.quote(workdir)}{hosts} --resume"


def initialize_distributed(
    coordinator: str | None, num_processes: int | None, process_id: int | None, timeout: int = 300, stop=None
):
  """`jax.distributed.initialize` for --coordinator (before anything touches the devices); nothing without it.

  While it waits for the other processes a signal exits at once (`stop.exits_at_once`: there is nothing to save);
  a failure to start (the port in use, the coordinator unreachable) is one line, exit 2.
  """
  if not coordinator:
    if num_processes is not None or process_id is not None:
      raise app.UsageError("--num_processes/--process_id need --coordinator=HOST:PORT (or --coordinator=auto)")
    return
  if coordinator != "auto":
    # Checked here: jax.distributed.initialize raises a traceback for these, or waits for a coordinator.
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
      raise app.UsageError(f"--coordinator={coordinator}: expected HOST:PORT, e.g. 10.0.0.1:12345 (or auto)")
    if num_processes is not None and process_id is not None and not 0 <= process_id < num_processes:
      raise app.UsageError(
          f"--process_id={process_id} with --num_processes={num_processes}: process ids run from 0 to "
          f"num_processes - 1 (and num_processes >= 1); give each process its own id in that range"
      )
  if coordinator != "auto" and (num_processes is None or process_id is None):
    raise app.UsageError(f"--coordinator={coordinator} needs --num_processes and --process_id (or --coordinator=auto)")
  if coordinator != "auto" and process_id == 0 and _port_in_use(int(coordinator.rpartition(":")[2])):
    # JAX's coordinator service cannot listen there: it raised, or at times crashed (a segfault), inside initialize
    print(
        f"error: --coordinator={coordinator}: port {coordinator.rpartition(':')[2]} is in use on this host, where "
        "process 0 starts the coordinator. Fix: give every process a free port of process 0's host",
        file=sys.stderr,
    )
    sys.exit(2)
  import jax
  # XLA:CPU needs a collectives backend across processes; GPUs and TPUs ignore this setting.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  with stop.exits_at_once("waiting for the other processes") if stop else contextlib.nullcontext():
    if coordinator != "auto":
      print(f"process {process_id}: waiting up to {timeout} s for {num_processes} process(es) at {coordinator}")
    # When JAX's own timeout runs out it aborts the process natively (a 36-line dump, exit 134, "another task
    # died"): a watchdog says what happened in one line first, and JAX is given a little longer
    watchdog = threading.Timer(timeout, _not_every_process_connected, (coordinator, num_processes, process_id, timeout))
    watchdog.daemon = True
    watchdog.start()
    try:
      if coordinator == "auto":
        jax.distributed.initialize(initialization_timeout=timeout + WATCHDOG_MARGIN_S)
      else:
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            initialization_timeout=timeout + WATCHDOG_MARGIN_S,
        )
    except jax.errors.JaxRuntimeError as e:
      print(
          f"error: --coordinator={coordinator}: jax.distributed did not start ({str(e).splitlines()[0][:200]}). "
          "Fix: on process 0 give a free port of its own host; on the others the same HOST:PORT, reachable from "
          "them, each with its own --process_id",
          file=sys.stderr,
      )
      sys.exit(2)
    finally:
      watchdog.cancel()
  if num_processes is not None and jax.process_count() != num_processes:
    # the coordinator keeps process 0's count: a process given another trained as one of process 0's number
    print(
        f"error: --num_processes={num_processes}: the run's coordinator has {jax.process_count()} processes "
        "(process 0's --num_processes). Fix: give every process the same --num_processes",
        file=sys.stderr,
        flush=True,
    )
    os._exit(2)


WATCHDOG_MARGIN_S = 30  # JAX's initialization_timeout beyond --coordinator_timeout: the watchdog's line comes first


def _not_every_process_connected(coordinator: str, num_processes, process_id, timeout: int) -> None:
  """--coordinator_timeout ran out inside jax.distributed.initialize (which waits in C, the GIL released): one line,
  exit 2, before JAX's own timeout aborts the process."""
  who = f"process {process_id} of {num_processes}" if process_id is not None else "this process"
  print(
      f"error: --coordinator={coordinator}: {who}: not every process of the run connected within "
      f"--coordinator_timeout={timeout} s. Fix: start every process with the same --coordinator (process 0's "
      "host and a free port of it, reachable from the others) and --num_processes, each with its own --process_id, "
      "or raise --coordinator_timeout",
      file=sys.stderr,
      flush=True,
  )
  os._exit(2)


def _config_help() -> str:
  """--help's tail: the config fields with the values this invocation would use."""
  try:
    config, _ = build_config()
  except cv.ConfigError as e:
    return f"(config fields: {e})"
  title = (
      f"config fields (--config.<section>.<field>=<value>) with the values of --dataset={FLAGS.dataset} "
      f"--protocol={FLAGS.protocol}\nand the other flags given (JSON: --print_config); 'not read': the fields this run, as "
      "given, does not read:"
  )
  return launch.config_summary(config, title, unread_apart=True)


def main(argv):
  del argv
  verbose = FLAGS["verbosity"].present
  launch.quiet_native_logs(verbose)
  if not verbose:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  stop = launch.StopOnSignal().install()
  if FLAGS.resume and not FLAGS.workdir:
    raise app.UsageError("--resume needs the --workdir of the run to continue")
  try:
    # opts: the flags of a new run, whose overrides are checked again once the graph has loaded
    config, opts = (resume_config(FLAGS.workdir), None) if FLAGS.resume else build_config()
    validate_run_config(config)
  except (cv.ConfigError, ResumeError, DatasetError, run_dir.WorkdirError) as e:
    common.fail(e)
  stop.unit = "epoch" if config.batch.mode == "full" else "batch"
  if FLAGS.print_config:
    print(json.dumps(config_values.normalise(config.to_dict()), indent=2))
    return
  if FLAGS.coordinator and not FLAGS.workdir:
    raise app.UsageError("a multi-process run (--coordinator) needs --workdir: every process must name the same one")
  workdir = FLAGS.workdir or os.path.join(
      "runs", f"{formatting.dataset_tag(config.dataset)}-{config.model_name}-{time.strftime('%Y%m%d-%H%M%S')}"
  )

  common.refuse_bad_workdir(workdir)  # before the graph loads: a bad path is one line, not a late traceback
  if not FLAGS.resume and common.holds_cells(workdir):  # its config.json, checkpoints, results among the cells
    common.fail(
        f"--workdir={workdir}: holds the cells of a table2/ablation/depth_sweep/visualize run. Fix: give a new "
        "--workdir (each cell, <dataset>/<cell>, is a run of its own)"
    )
  cache = FLAGS.xla_cache if "JAX_COMPILATION_CACHE_DIR" not in os.environ else ""  # JAX's variable wins
  cache = cache and common.usable_cache(cache, given=FLAGS["xla_cache"].present)
  initialize_distributed(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id, FLAGS.coordinator_timeout, stop)
  import jax

  if cache:
    jax.config.update("jax_compilation_cache_dir", host_cache_dir(cache, jax.__version__))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  # After flag parsing: importing the stack is the slow part.
  from hgnn_ima_jax import train
  from hgnn_ima_jax.experiments import outputs

  print(
      f"process {jax.process_index()}/{jax.process_count()}: devices {jax.local_devices()} of "
      f"{jax.device_count()}; workdir: {workdir}"
  )
  try:
    train.preflight(config)  # the devices and the memory limit, before the graph loads
    data = load_for_config(config)  # fails before anything is written
    if opts is not None:  # an override the graph makes moot (no sender lacks a modality: L_att is 0)
      run_options.check_overrides_read([config], opts, {config.dataset: data.schema})
    if FLAGS.resume and jax.process_index() == 0:
      print(outputs.resume_note(workdir, int(config.num_epochs), config.batch.mode))
    results = train.train_and_evaluate(
        config,
        workdir,
        data,
        resume=FLAGS.resume,
        progress=FLAGS.progress and jax.process_index() == 0,
        should_stop=stop if jax.process_count() == 1 else stop.across_processes(),
        on_history=outputs.history_writer(workdir),
    )
  except train.TrainingInterrupted as e:
    print(f"interrupted {e.where}; continue with: {resume_command(workdir)}", file=sys.stderr)
    sys.exit(stop.exit_code)
  except common.user_errors() as e:
    common.fail(e)
  except OSError as e:
    # writing the workdir failed mid-run (a read-only remount, a quota, a full disk): a traceback before (an audit);
    # the checkpoints hold every finished epoch. An error on another path keeps its traceback.
    if not e.filename or not os.path.abspath(str(e.filename)).startswith(os.path.abspath(workdir) + os.sep):
      raise
    print(
        f"error: {e.filename}: {e.strerror or e}. Fix: clear what stops writing in {workdir} (permissions, a full "
        f"disk, something in the way), then continue with: {resume_command(workdir)}",
        file=sys.stderr,
    )
    sys.exit(2)
  except (jax.errors.JaxRuntimeError, ValueError) as e:
    # Gloo's failures surface as ValueError("UNKNOWN: Gloo AllGather failed ...") or a JaxRuntimeError; this
    # process's own errors (out of memory, ...) keep their traceback
    if jax.process_count() == 1 or not PEER_FAILURE.search(str(e)):
      raise
    # A collective failed: another process of the run died or stopped. Without this, a Gloo traceback, then a
    # native abort when the heartbeat times out (~1 min later); exiting at once skips JAX's shutdown barrier.
    if run_dir.saved_steps(workdir):
      again = f"again with --resume (the last checkpoint continues the run): {resume_command(workdir)}"
    else:  # --resume would be refused: nothing to continue from
      again = "again with the flags they were started with (no checkpoint was written yet, so not --resume)"
    print(
        f"error: process {jax.process_index()}: a collective with the other processes failed "
        f"({str(e).splitlines()[0][:160]}): another process of the run stopped or failed. Fix: start every process "
        f"{again}",
        file=sys.stderr,
        flush=True,
    )
    os._exit(1)
  if jax.process_index() != 0:
    return
  print(
      f"\n{config.dataset} / {config.model_name} / protocol={config.protocol} / {len(config.seeds)} seed(s) "
      f"/ {results['epochs']} epochs / {results['train_time_s']:.1f} s training on {results['device']}"
  )
  print(outputs.results_table(results, paper_dataset=str(config.dataset).lower() in choices.PAPER_DATASET_NAMES))
  print(f"workdir: {workdir}")


if __name__ == "__main__":
  define_flags()
  app.run(cli_flags.one_line_usage_errors(main), flags_parser=launch.app_flags_parser(_config_help))
