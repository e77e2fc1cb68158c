"""What the paper-artefact scripts' common flags carry (`Options`) and the config of one cell.

* `Options`: datasets, seeds, epochs, features, data_dir, protocol, tiny, --config overrides,
  resume, progress; `define_common_flags` and `options_from_flags` turn absl flags into one.
* `base_config` / `cell_config`: the dataset's defaults (or configs/test.py sizes with `tiny`),
  the protocol, the flags, the --config overrides, then the cell's own fields. experiments/train.py
  builds its single config with `base_config` too.

Flags are defined by `define_common_flags`, called from each script's `__main__` block, so that
importing several scripts in one process (the tests) defines no flag twice.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from typing import Any, Callable, Mapping, Sequence

import ml_collections

from hgnn_ima_jax import choices, config_paths, config_values, field_usage
from hgnn_ima_jax import config_validation as cv

from .configs import PROTOCOLS, SIZE_FIELDS, get_config, paper_overrides, set_path

DEFAULT_SEEDS = 5


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
  # polled by every cell's training (`train_and_evaluate(should_stop=...)`): the scripts' `launch.StopOnSignal`
  should_stop: Callable[[], bool] | None = dataclasses.field(default=None, compare=False, repr=False)


def parse_list(text: str | Sequence[str] | None) -> tuple[str, ...]:
  """'a, b,c' → ('a', 'b', 'c'); a sequence passes through."""
  if text is None:
    return ()
  if isinstance(text, str):
    return tuple(s.strip() for s in text.split(",") if s.strip())
  return tuple(text)


def parse_seeds(text: str | None) -> tuple[int, ...] | None:
  """'5' → (0, ..., 4); '0,3,7' → (0, 3, 7); '7,' → (7,) (a list of one seed); None/'' → None (the script's default).

  Raises:
    ConfigError: on config.seeds, for text that is neither a positive count nor a list of integers.
  """
  if text is None or not str(text).strip():
    return None
  text = str(text).strip()
  fix = "give --seeds=N for seeds 0..N-1 (N >= 1), or a comma-separated list such as 0,3,7"
  items = [s.strip() for s in text.removesuffix(",").split(",")]  # one trailing comma: a list of one seed
  if "," in text and not all(items):  # ',' or '0,,3' used to be read as the default seeds or as (0, 3)
    raise cv.ConfigError("seeds", text, "has an empty item", fix + " (7, for seed 7 alone)")
  try:
    if "," in text:
      return tuple(int(s) for s in items)
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
  that --help shows it as the compact field list of `launch.config_summary` rather than a 90-line dump.

  ml_collections resolves the overrides in sys.argv while it defines the flag, and a field that does not
  exist gave a KeyError traceback there; such an override now exits with one line (exit 2).
  """
  from ml_collections import config_flags

  from .configs import default

  config = default.get_config()
  problem = unknown_config_override(sys.argv, config)
  if problem:
    print(f"error: {problem}", file=sys.stderr)
    sys.exit(2)
  config_flags.DEFINE_config_dict("config", config, help_text)


def unknown_config_override(argv: Sequence[str], config: ml_collections.ConfigDict) -> str | None:
  """The error line for the first `--config.<path>` of `argv` that names no field of `config`; None if all do."""
  for arg in argv[1:]:
    if arg == "--":  # what follows is not ours (e.g. a wrapped script's own flags)
      break
    m = re.match(r"--?config\.([^=]*)(?:=(.*))?$", arg)
    if not m:
      continue
    path, node, seen = m.group(1), config, []
    given = path if m.group(2) is None else f"{path}={m.group(2)}"
    for part in path.split("."):
      key = re.sub(r"\[[^]]*\]$", "", part)  # ml_collections' list index, e.g. fanouts[0]
      if not isinstance(node, ml_collections.ConfigDict):
        return (
            f"config.{given}: config.{'.'.join(seen)} is a value, not a group of fields. "
            f"Fix: set it as --config.{'.'.join(seen)}=<value>"
        )
      if key not in node:
        where = f"config.{'.'.join(seen)}" if seen else "config"
        near = choices.nearest(key, node.keys())
        fix = f"did you mean --config.{'.'.join(seen + [near])}?" if near else f"use one of {', '.join(node.keys())}"
        return f"config.{given}: {where} has no field {key!r}. Fix: {fix} (--help lists them)"
      node, seen = node[key], seen + [key]
  return None


def define_common_flags(
    script: str, *, multi_dataset: bool = True, default_seeds: str | None = None, workdir_default: str | None = None
):
  """Defines the common flags (call once, from the script's `__main__` block); they are the script's
  own flags in its --help."""
  from absl import flags

  own = {"module_name": sys.argv[0]}  # absl lists the main module's flags in --help
  if multi_dataset:
    flags.DEFINE_string(
        "datasets",
        "synthetic",
        "comma list: douban, imdb, amazon, amazon1, amazon2, synthetic, "
        "synthetic_amazon1, synthetic_amazon1x4, synthetic10m or generic-format paths",
        **own,
    )
  flags.DEFINE_string(
      "seeds",
      default_seeds,
      f"N for seeds 0..N-1, or a list such as 0,3,7 (default "
      f"{default_seeds or DEFAULT_SEEDS}; with --tiny, configs/test.py's seeds)",
      **own,
  )
  flags.DEFINE_integer("epochs", None, "number of epochs (default: the dataset's)", **own)
  flags.DEFINE_enum(
      "features",
      None,
      ["real", "generated"],
      "'generated' explicitly runs the real graph with generated stand-ins for absent feature "
      "files; results are then marked not comparable with the paper",
      **own,
  )
  flags.DEFINE_string(
      "data_dir", None, "directory holding <dataset>/ folders (default: $HGNN_IMA_DATA_DIR or ./data)", **own
  )
  flags.DEFINE_enum("protocol", "code", list(PROTOCOLS), "'code' (the authors' scripts) or 'paper' (Sec. 5.3)", **own)
  flags.DEFINE_bool(
      "tiny",
      False,
      "smoke-test sizes from experiments/configs/test.py (hidden 16, 2 heads, 2 layers, "
      "6 epochs, synthetic scale 0.1); outputs are marked as such: their numbers mean nothing",
      **own,
  )
  flags.DEFINE_string(
      "workdir", None, f"output directory (default: {workdir_default or f'runs/{script}-<time>'})", **own
  )
  flags.DEFINE_bool(
      "resume", False, "reuse finished cells (results.json) in --workdir and continue unfinished ones", **own
  )
  flags.DEFINE_bool("progress", True, "show a progress bar per training cell", **own)
  define_config_flag("overrides applied to every cell: --config.<field>=<value> (listed below)")


def config_help(flag_values) -> str:
  """--help's tail for the artefact scripts: the config fields as the first cell would use them."""
  opts = options_from_flags(flag_values)
  dataset = opts.datasets[0] if opts.datasets else flag_values["dataset"].value
  title = (
      f"config fields (--config.<section>.<field>=<value>), as a cell on {dataset}"
      f"{' with --tiny' if opts.tiny else ''} would use them (model_name is the cell's):"
  )
  from . import launch  # launch.py is the scripts' side; common.py stays importable without it

  return launch.config_summary(base_config(dataset, opts), title)


def options_from_flags(flag_values) -> Options:
  from ml_collections import config_flags

  datasets = parse_list(flag_values.datasets) if "datasets" in flag_values else ()
  if "datasets" in flag_values and (not datasets or len(set(datasets)) < len(datasets)):
    from absl import app

    raise app.UsageError(
        f"--datasets={flag_values.datasets}: "
        + ("names a dataset more than once; give each once" if datasets else "names no dataset")
        + " in a comma list such as douban,imdb (names or generic-format paths)"
    )
  return Options(
      datasets=datasets,
      seeds=parse_seeds(flag_values.seeds),
      epochs=flag_values.epochs,
      features=flag_values.features,
      data_dir=flag_values.data_dir,
      protocol=flag_values.protocol,
      tiny=flag_values.tiny,
      overrides=dict(config_flags.get_override_values(flag_values["config"])),
      resume=flag_values.resume,
      progress=flag_values.progress,
  )


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
  _refuse_flag_and_field_apart(opts)
  default_seeds = tuple(config.seeds) if opts.tiny else tuple(range(DEFAULT_SEEDS))
  config.seeds = tuple(opts.seeds) if opts.seeds else default_seeds
  if opts.data_dir and not _for_other_cells("data_dir", dataset, opts):
    config.data_dir = opts.data_dir
  if opts.features and not _for_other_cells("features", dataset, opts):
    config.features = opts.features
  if opts.epochs is not None:
    config.num_epochs = int(opts.epochs)
  for path, value in opts.overrides.items():
    if not _for_other_cells(path.split(".")[0], dataset, opts):
      set_path(config, path, value)
  config.data_dir = config_paths.data_dir_or_env(config)  # $HGNN_IMA_DATA_DIR as if given with --data_dir
  for field in ("dataset", "data_dir"):
    config[field] = config_paths.absolute_path(field, config.get(field))
  return config


def _refuse_flag_and_field_apart(opts: Options) -> None:
  """A flag and the --config field it sets, given with different values: --epochs=5 --config.num_epochs=3 kept 3
  without a word (the --config override was applied last)."""
  for flag, field, value in (
      ("epochs", "num_epochs", opts.epochs),  # (--seeds has a default in some scripts: not compared)
      ("features", "features", opts.features),
      ("data_dir", "data_dir", opts.data_dir),
  ):
    if value is None or field not in opts.overrides:
      continue
    other = opts.overrides[field]
    if config_values.normalise(other) != config_values.normalise(value):
      raise cv.ConfigError(
          field,
          other,
          f"contradicts --{flag}={config_values.format_value(value)}",
          f"give one of --{flag} and --config.{field}",
      )


def _for_other_cells(field: str, dataset: str, opts: Options) -> bool:
  """Whether a data field is meant for the other datasets of a run: this cell's dataset does not read it
  and another one does (--data_dir in `--datasets=synthetic,douban` is douban's; --config.split_fractions
  under the paper protocol is IMDB's, the one split it draws). When no dataset of the run reads it, it
  stays, so that validation refuses it rather than ignore it."""

  def unread(d: str) -> bool:
    if field in choices.SPLIT_DRAW_FIELDS:  # read where the cell's split is drawn
      return opts.overrides.get("split", get_config(d, opts.protocol).split) != "stratified"
    return field in field_usage.unread_data_fields(d)

  return unread(dataset) and any(not unread(d) for d in opts.datasets)


def check_overrides_read(
    configs: Sequence[ml_collections.ConfigDict], opts: Options, schemas: Mapping[str, Any] | None = None
) -> None:
  """Refuses a --config override that no cell of the run reads (`field_usage.ignored_override`): a model
  or loss field its model does not read (--config.model.combine=add with --model=hgt_late), or one its model
  name sets (--config.model.variant with hgnn_ima-align). A cell that ignores an override another cell reads
  (table2's hgt_late cells beside hgnn_ima's) keeps it; its result fields leave it out (`config_compare.result_fields`).
  With `schemas` ({dataset: the loaded graph's Schema}), also one the graph makes moot
  (`field_usage.unread_for_graph`: --config.loss.att_weight where no sender lacks a modality).

  Raises:
    ConfigError: one line, for the first override that every cell ignores: its reason, or where the cells ignore
      it for different reasons, each reason with its cells.
  """
  plain_opts, plain = dataclasses.replace(opts, overrides={}), {}
  for path, value in opts.overrides.items():
    problems = []
    for config in configs:
      if config.dataset not in plain:  # the cell's values without the overrides: its profile's
        plain[config.dataset] = config_values.to_dict(base_config(config.dataset, plain_opts))
      schema = (schemas or {}).get(config.dataset)
      problem = field_usage.ignored_override(
          config, path, value, config_values.get_path(plain[config.dataset], path, None), schema
      )
      if problem is None:
        break
      problems.append((problem, f"{config.dataset}/{config.get('model_name', 'hgnn_ima')}"))
    if problems and len(problems) == len(configs):
      raise _ignored_by_every_cell(path, value, problems)


def _ignored_by_every_cell(path: str, value, problems) -> cv.ConfigError:
  """The one-line error for an override that every cell ignores: [((why, fix), 'dataset/model')] → one reason
  when there is one, else each reason with its cells. Reasons that differ only in the cell's model name
  ("is not read by model_name=hgt_early: ..." and "...=hgt_late: ...") are one reason naming both models."""
  groups: dict[tuple[str, str], list[str]] = {}  # (why with the name as a placeholder, fix) → cells
  for (why, fix), cell in problems:
    model = cell.split("/", 1)[1]
    key = (why.replace(f"model_name={model}", "model_name={}"), fix)
    groups.setdefault(key, []).append(cell)

  def reason(key) -> str:
    *others, last = dict.fromkeys(cell.split("/", 1)[1] for cell in groups[key])
    return key[0].replace("model_name={}", "model_name=" + (f"{', '.join(others)} or {last}" if others else last))

  if len(groups) == 1:
    ((key, _),) = groups.items()
    return cv.ConfigError(path, value, reason(key), key[1])
  reasons = "; ".join(f"{reason(key)} ({', '.join(cells)})" for key, cells in groups.items())
  fixes = "; or ".join(dict.fromkeys(fix for _, fix in groups))
  return cv.ConfigError(path, value, f"is read by no cell of this run: {reasons}", fixes)


def cell_config(dataset: str, opts: Options, model: str = "hgnn_ima", **fields) -> ml_collections.ConfigDict:
  """`base_config` with the cell's model name and fields ('model.num_layers': 2, ...) on top."""
  config = base_config(dataset, opts)
  config.model_name = model
  for path, value in fields.items():
    set_path(config, path, value)
  return config
