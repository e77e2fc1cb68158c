"""Shared pieces of the paper-artefact scripts (table2.py, ablation.py, layers.py, visualize.py).

* `Options`: what the common flags carry (datasets, seeds, epochs, features, data_dir,
  protocol, tiny, --config overrides, resume, progress); `define_common_flags` and
  `options_from_flags` turn absl flags into one.
* `cell_config`: the config of one (dataset, model, ...) cell: the dataset's defaults (or
  configs/test.py sizes with `tiny`), the protocol, the flags, the --config overrides,
  then the cell's own fields.
* `CellRunner`: trains each cell once with `train.train_and_evaluate` in
  `<workdir>/<dataset>/<cell>` and reuses it when the same training was already done:
  in this invocation (e.g. `hgnn_ima-L_ind` resolves to `hgnn_ima` in the code profile),
  or, with `resume`, by any finished run under `<workdir>/<dataset>/` whose resolved
  config is the same (so table2/ablation/layers/visualize share runs in one workdir).
* Formatting: model display names, mean ± std, best/second marks, Markdown tables,
  the not-comparable-with-the-paper note, NaN-safe JSON.

Flags are defined by `define_common_flags`, called from each script's `__main__` block,
so that importing several scripts in one process (the tests) defines no flag twice.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import sys
import time
from typing import Any, Callable, Sequence

import ml_collections

from .configs import PROTOCOLS, SIZE_FIELDS, get_config, paper_overrides, set_path
from hgnn_ima_jax import config_validation as cv

DEFAULT_SEEDS = 5
# Beyond config_validation.RESULT_NEUTRAL: the device layout changes results only in the last float bits.
_IGNORED_FIELDS = ("shard_seeds",)
# Data fields: cells with equal values share one loaded MMHN.
_DATA_FIELDS = ("dataset", "data_dir", "features", "missing_fill", "feature_seed", "synthetic", "split",
                "split_fractions", "split_seed")

NOT_COMPARABLE_NOTE = ("† features were generated (the synthetic dataset, or --features=generated for absent "
                       "feature files): these numbers are NOT comparable with the paper's.")
TINY_NOTE = ("SMOKE TEST (--tiny): experiments/configs/test.py sizes (a tiny graph, a small model, a few epochs). "
             "These numbers only show that the pipeline runs; they mean nothing, and cells may tie (equal "
             "ablation numbers do not make a variant a no-op).")
TINY_FIGURE_NOTE = "SMOKE TEST (--tiny): tiny graph, small model, few epochs; these numbers mean nothing"


# --- options and flags ------------------------------------------------------------------

@dataclasses.dataclass
class Options:
  """The settings every artefact script shares (one per common flag)."""

  datasets: tuple[str, ...] = ("synthetic",)
  seeds: tuple[int, ...] | None = None  # None: 0..4 (with `tiny`: configs/test.py's seeds)
  epochs: int | None = None
  features: str | None = None  # None: the config's ('real')
  data_dir: str | None = None
  protocol: str = "code"
  tiny: bool = False
  overrides: dict = dataclasses.field(default_factory=dict)  # 'a.b' -> value, applied to every cell
  resume: bool = False
  progress: bool = True


def parse_list(text: str | Sequence[str] | None) -> tuple[str, ...]:
  """'a, b,c' → ('a', 'b', 'c'); a sequence passes through."""
  if text is None:
    return ()
  if isinstance(text, str):
    return tuple(s.strip() for s in text.split(",") if s.strip())
  return tuple(text)


def parse_seeds(text: str | None) -> tuple[int, ...] | None:
  """'5' → (0, ..., 4); '0,3,7' → (0, 3, 7); None/'' → None (the script's default).

  Raises:
    ConfigError: on config.seeds, for text that is neither a positive count nor a list of integers.
  """
  if text is None or not str(text).strip():
    return None
  text = str(text).strip()
  fix = "give --seeds=N for seeds 0..N-1 (N >= 1), or a comma-separated list such as 0,3,7"
  try:
    if "," in text:
      return tuple(int(s) for s in text.split(",") if s.strip())
    n = int(text)
  except ValueError:
    raise cv.ConfigError("seeds", text, "is neither a count nor a comma-separated list of integers", fix) from None
  if n < 1:
    raise cv.ConfigError("seeds", text, "is not a positive count", fix)
  return tuple(range(n))


def parse_ints(text: str | Sequence[int]) -> tuple[int, ...]:
  if isinstance(text, str):
    return tuple(int(s) for s in text.split(",") if s.strip())
  return tuple(int(s) for s in text)


def define_config_flag(help_text: str):
  """`--config.<field>=<value>` over experiments/configs/default.py. Defined here, not in the script, so
  that --help shows it as the compact field list of `launch.config_summary` rather than a 90-line dump."""
  from ml_collections import config_flags

  from .configs import default

  config_flags.DEFINE_config_dict("config", default.get_config(), help_text)


def define_common_flags(script: str, *, multi_dataset: bool = True, default_seeds: str | None = None,
                        workdir_default: str | None = None):
  """Defines the common flags (call once, from the script's `__main__` block); they are the script's
  own flags in its --help."""
  from absl import flags

  own = {"module_name": sys.argv[0]}  # absl lists the main module's flags in --help
  if multi_dataset:
    flags.DEFINE_string("datasets", "synthetic", "comma list: douban, imdb, amazon, amazon1, amazon2, synthetic, "
                        "synthetic_amazon1, synthetic_amazon1x4, synthetic10m or generic-format paths", **own)
  flags.DEFINE_string("seeds", default_seeds, f"N for seeds 0..N-1, or a list such as 0,3,7 (default "
                      f"{default_seeds or DEFAULT_SEEDS}; with --tiny, configs/test.py's seeds)", **own)
  flags.DEFINE_integer("epochs", None, "number of epochs (default: the dataset's)", **own)
  flags.DEFINE_enum("features", None, ["real", "generated"],
                    "'generated' explicitly runs the real graph with generated stand-ins for absent feature "
                    "files; results are then marked not comparable with the paper", **own)
  flags.DEFINE_string("data_dir", None, "directory holding <dataset>/ folders (default: $HGNN_IMA_DATA_DIR or ./data)",
                      **own)
  flags.DEFINE_enum("protocol", "code", list(PROTOCOLS), "'code' (the authors' scripts) or 'paper' (Sec. 5.3)", **own)
  flags.DEFINE_bool("tiny", False, "smoke-test sizes from experiments/configs/test.py (hidden 16, 2 heads, 2 layers, "
                    "6 epochs, synthetic scale 0.1); outputs are marked as such: their numbers mean nothing", **own)
  flags.DEFINE_string("workdir", None, f"output directory (default: {workdir_default or f'runs/{script}-<time>'})",
                      **own)
  flags.DEFINE_bool("resume", False, "reuse finished cells (results.json) in --workdir and continue unfinished ones",
                    **own)
  flags.DEFINE_bool("progress", True, "show a progress bar per training cell", **own)
  define_config_flag("overrides applied to every cell: --config.<field>=<value> (listed below)")


def config_help(flag_values) -> str:
  """--help's tail for the artefact scripts: the config fields as the first cell would use them."""
  opts = options_from_flags(flag_values)
  dataset = opts.datasets[0] if opts.datasets else flag_values["dataset"].value
  title = (f"config fields (--config.<section>.<field>=<value>), as a cell on {dataset}"
           f"{' with --tiny' if opts.tiny else ''} would use them (model_name is the cell's):")
  from . import launch  # launch.py is the scripts' side; common.py stays importable without it
  return launch.config_summary(base_config(dataset, opts), title)


def options_from_flags(flag_values) -> Options:
  from ml_collections import config_flags

  datasets = parse_list(flag_values.datasets) if "datasets" in flag_values else ()
  return Options(datasets=datasets, seeds=parse_seeds(flag_values.seeds), epochs=flag_values.epochs,
                 features=flag_values.features, data_dir=flag_values.data_dir, protocol=flag_values.protocol,
                 tiny=flag_values.tiny, overrides=dict(config_flags.get_override_values(flag_values["config"])),
                 resume=flag_values.resume, progress=flag_values.progress)


def user_errors() -> tuple[type, ...]:
  """Errors a launcher reports in one line (exit 2) instead of a traceback: bad data or config, a workdir clash."""
  from hgnn_ima_jax.checkpointing import CheckpointMismatchError
  from hgnn_ima_jax.graph import DatasetError
  return (DatasetError, cv.ConfigError, CellConfigError, CheckpointMismatchError, FileExistsError)


def validate_cells(configs) -> list:
  """`data_utils.validate_run_config` on every cell config, before any cell runs; returns them."""
  from hgnn_ima_jax.data_utils import validate_run_config
  configs = list(configs)
  for config in configs:
    validate_run_config(config)
  return configs


def default_workdir(script: str) -> str:
  return os.path.join("runs", f"{script}-{time.strftime('%Y%m%d-%H%M%S')}")


def run_script(script: str, flag_values, run: Callable[[str], dict], write_outputs: Callable[[dict, str], dict],
               markdown: Callable[[dict], str]):
  """The shared tail of table2/ablation/layers: workdir, devices, run (user errors: one line,
  exit 2), write the outputs, print the Markdown and the paths written."""
  from absl import app
  if flag_values.resume and not flag_values.workdir:
    raise app.UsageError("--resume needs the --workdir of the earlier run")
  workdir = flag_values.workdir or default_workdir(script)
  import jax
  print(f"devices: {jax.devices()}; workdir: {workdir}")
  try:
    table = run(workdir)
  except user_errors() as e:
    fail(e)
  paths = write_outputs(table, workdir)
  print()
  print(markdown(table))
  *first, last = paths.values()
  print(f"\nwrote {', '.join(first)} and {last}" if first else f"\nwrote {last}")


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


def options_or_exit(flag_values) -> Options:
  """`options_from_flags`; a bad --seeds is one line and exit 2."""
  try:
    return options_from_flags(flag_values)
  except cv.ConfigError as e:
    fail(e)


# --- configs ----------------------------------------------------------------------------

def base_config(dataset: str, opts: Options) -> ml_collections.ConfigDict:
  """Dataset defaults (or configs/test.py sizes) + protocol + flags + --config overrides."""
  if opts.protocol not in PROTOCOLS:
    raise ValueError(f"protocol must be one of {PROTOCOLS}, got {opts.protocol!r}")
  if opts.tiny:
    from .configs import test as test_config
    config = test_config.get_config(dataset)
    if opts.protocol == "paper":  # the paper's optimiser/loss/stopping, at the tiny sizes
      for path, value in paper_overrides(dataset).items():
        if path not in SIZE_FIELDS:
          set_path(config, path, value)
      config.protocol = "paper"
  else:
    config = get_config(dataset, opts.protocol)
  config.seeds = tuple(opts.seeds) if opts.seeds else (tuple(config.seeds) if opts.tiny else tuple(range(DEFAULT_SEEDS)))
  if opts.data_dir:
    config.data_dir = opts.data_dir
  if opts.features:
    config.features = opts.features
  if opts.epochs is not None:
    config.num_epochs = int(opts.epochs)
  for path, value in opts.overrides.items():
    set_path(config, path, value)
  return config


def cell_config(dataset: str, opts: Options, model: str = "hgnn_ima", **fields) -> ml_collections.ConfigDict:
  """`base_config` with the cell's model name and fields ('model.num_layers': 2, ...) on top."""
  config = base_config(dataset, opts)
  config.model_name = model
  for path, value in fields.items():
    set_path(config, path, value)
  return config


def signature(config: ml_collections.ConfigDict) -> dict:
  """What determines a training run: the resolved config, with the model name reduced to the
  module it builds (its base model + the ablation's field overrides) and bookkeeping fields dropped.

  Two cells with equal signatures train the same program on the same data with the same seeds.
  """
  from hgnn_ima_jax import train
  from hgnn_ima_jax.models import split_model_name

  d = cv.result_fields(train.resolve_config(config))  # without bookkeeping and unread data fields
  for k in _IGNORED_FIELDS:
    d.pop(k, None)
  base, model_over, _ = split_model_name(d["model_name"])
  d["model_name"] = base
  d["model"] = {**d["model"], **model_over}
  return cv.normalise(d)


def dataset_tag(dataset: str) -> str:
  """A directory name for a dataset name or generic-format path."""
  base = os.path.basename(os.path.normpath(str(dataset)))
  return base[:-4] if base.endswith(".npz") else base


# --- running cells ----------------------------------------------------------------------

class CellConfigError(ValueError):
  """A cell directory holds a run with a different config."""


@dataclasses.dataclass
class Cell:
  """One finished (dataset, model, ...) run."""

  dataset: str
  name: str
  run_dir: str
  results: dict
  reused: bool  # True: not trained by this call (an earlier run with the same signature)


class CellRunner:
  """Trains cells under `workdir`, each at most once (see the module docstring)."""

  def __init__(self, workdir: str, opts: Options, *, log: Callable[[str], None] | None = print):
    self.workdir = workdir
    self.opts = opts
    self.log = log or (lambda s: None)
    self._done: dict[str, Cell] = {}  # signature json -> cell
    self._data: dict[str, Any] = {}

  def data(self, config: ml_collections.ConfigDict):
    """The MMHN for a config, loaded once per distinct data fields."""
    from hgnn_ima_jax.data_utils import load_for_config
    key = json.dumps(cv.normalise({k: config.to_dict().get(k) for k in _DATA_FIELDS}), sort_keys=True)
    if key not in self._data:
      self._data[key] = load_for_config(config)
    return self._data[key]

  def _finished_runs(self, dataset_dir: str) -> list[str]:
    return sorted(os.path.dirname(p) for p in glob.glob(os.path.join(dataset_dir, "*", "results.json")))

  def run(self, config: ml_collections.ConfigDict, name: str) -> Cell:
    """Trains (or reuses) the cell `<workdir>/<dataset>/<name>` for `config`."""
    from hgnn_ima_jax import run_dir as run_files, runtime, train

    from .outputs import history_writer

    dataset = str(config.dataset)
    sig = signature(config)
    key = json.dumps(sig, sort_keys=True)
    if key in self._done:
      prev = self._done[key]
      self.log(f"[{dataset_tag(dataset)}/{name}] same training as {prev.run_dir}: reused")
      return Cell(dataset, name, prev.run_dir, prev.results, True)
    dataset_dir = os.path.join(self.workdir, dataset_tag(dataset))
    run_dir = os.path.join(dataset_dir, name)
    if os.path.exists(os.path.join(run_dir, "config.json")):
      there = signature(run_files.read_config(run_dir))
      if there != sig:
        diffs = "; ".join(cv.diff_configs(there, sig)[:6])
        raise CellConfigError(f"{run_dir} holds a run with a different config ({diffs}); "
                              "use a new --workdir (or delete that directory)")
    if self.opts.resume:
      candidates = [run_dir] + [d for d in self._finished_runs(dataset_dir) if d != run_dir]
      for d in candidates:
        if os.path.exists(os.path.join(d, "results.json")) and signature(run_files.read_config(d)) == sig:
          with open(os.path.join(d, "results.json")) as f:
            results = json.load(f)
          self.log(f"[{dataset_tag(dataset)}/{name}] reusing finished run {d}")
          cell = Cell(dataset, name, d, results, True)
          self._done[key] = cell
          return cell
    t0 = time.time()
    results = train.train_and_evaluate(config, run_dir, self.data(config), resume=self.opts.resume,
                                       progress=self.opts.progress, on_history=history_writer(run_dir))
    # The allocator keeps freed pages for re-use by the next step (hgnn_ima_jax.runtime); between
    # cells, whose programs differ in size, they go back to the kernel.
    runtime.release_free_memory()
    self.log(f"[{dataset_tag(dataset)}/{name}] Micro-F1 {format_stats(results['test_micro_f1'])}  "
             f"Macro-F1 {format_stats(results['test_macro_f1'])}  ({time.time() - t0:.1f} s, {run_dir})")
    cell = Cell(dataset, name, run_dir, results, False)
    self._done[key] = cell
    return cell


# --- formatting -------------------------------------------------------------------------

def display_name(model: str) -> str:
  """'hgnn_ima' → 'HGNN-IMA', 'hgt_late' → 'HGT (late)', 'hgnn_ima-align' → 'HGNN-IMA-align'."""
  if model.startswith("hgnn_ima"):
    return "HGNN-IMA" + model[len("hgnn_ima"):]
  return {"hgt": "HGT (one modality)", "hgt_early": "HGT (early)", "hgt_late": "HGT (late)"}.get(model, model)


def format_stats(stats: dict | None, digits: int = 4) -> str:
  if stats is None:
    return "—"
  return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def format_number(x, digits: int = 4) -> str:
  return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def rank_marks(values: Sequence[float | None]) -> list[str]:
  """'best'/'second'/'' per value (higher is better; ties share a mark; None is unranked)."""
  distinct = sorted({v for v in values if v is not None and math.isfinite(v)}, reverse=True)
  marks = []
  for v in values:
    if v is None or not math.isfinite(v):
      marks.append("")
    elif v == distinct[0]:
      marks.append("best")
    elif len(distinct) > 1 and v == distinct[1]:
      marks.append("second")
    else:
      marks.append("")
  return marks


def emphasise(text: str, mark: str) -> str:
  """Markdown: best in bold, second in italics (the paper's convention)."""
  return f"**{text}**" if mark == "best" else f"*{text}*" if mark == "second" else text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def json_safe(obj):
  """NaN/inf → None (standard JSON has no NaN); tuples → lists; NumPy scalars → Python."""
  if isinstance(obj, dict):
    return {str(k): json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [json_safe(v) for v in obj]
  if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
    try:
      obj = obj.item()
    except (ValueError, AttributeError):
      pass
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  return obj


def write_json(path: str, obj):
  with open(path, "w") as f:
    json.dump(json_safe(obj), f, indent=2, allow_nan=False)


def write_text(path: str, text: str):
  with open(path, "w") as f:
    f.write(text if text.endswith("\n") else text + "\n")
