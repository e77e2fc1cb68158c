"""`load_for_config(config)`: the graph a training config names, as the experiment scripts load it.

The data side of the flax examples' `input_pipeline`: the training library takes this graph and
never loads datasets itself.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from hgnn_ima_jax import choices, config_values, field_usage, memory_check
from hgnn_ima_jax import config_validation as cv
from hgnn_ima_jax.graph import MMHN
from hgnn_ima_jax.graph_checks import check_trainable

from . import splits
from .datasets import GENERATED_ON_GENERIC, load_dataset, reads_generic_format
from .synthetic_config import SyntheticConfig, SyntheticConfigError, check_fits_in_memory, scaled_synthetic_kwargs


def _synthetic_knobs(config) -> dict:
  return {k: v for k, v in (config.get("synthetic") or {}).items() if v is not None}


def changed_synthetic_knobs(config) -> dict:
  """The config.synthetic knobs whose values differ from `SyntheticConfig`'s defaults."""
  defaults = {f.name: f.default for f in dataclasses.fields(SyntheticConfig)}
  return {
      k: v
      for k, v in _synthetic_knobs(config).items()
      if k not in defaults or config_values.normalise(v) != config_values.normalise(defaults[k])
  }


# The values of `data_dir` and `features` that mean "not given" (the config's and the CLIs' defaults).
_FILE_FIELD_DEFAULTS = {"data_dir": ("", None), "features": ("real", None), "feature_seed": (0, None)}


def unread_file_field(dataset: str, field: str, value) -> tuple[str, str] | None:
  """(problem, fix) when `data_dir` or `features` is given for a dataset that does not read it (it would be
  ignored: `--data_dir` with `--dataset=synthetic`, or with a path to a graph; `--features=generated` with a
  generic-format file); None when it is read or unset."""
  if value in _FILE_FIELD_DEFAULTS[field]:
    return None
  if field == "features" and isinstance(dataset, str) and reads_generic_format(dataset):
    return GENERATED_ON_GENERIC[0] + f" ({dataset!r})", GENERATED_ON_GENERIC[1]
  if field == "feature_seed":  # it seeds generated features (and the synthetic graphs): none in a generic file
    if isinstance(dataset, str) and reads_generic_format(dataset):
      return (
          f"is not read for dataset path {dataset!r}: a generic-format file holds its own features",
          "drop --feature_seed",
      )
    return None
  if field not in field_usage.unread_data_fields(dataset):
    return None
  if "features" in field_usage.unread_data_fields(dataset):  # a generated graph
    return (
        f"is not read by dataset {dataset!r}: it is generated, not read from files",
        f"drop --{field}, or give it with a dataset read from files (e.g. --dataset=douban)",
    )
  return (
      f"is not read for dataset path {dataset!r}: the path itself names the files",
      "drop --data_dir, or give a dataset name (douban, imdb, ...) to read it from that directory",
  )


def check_data_config(config) -> None:
  """The data fields' own rules, after `config_validation.validate_config`: the synthetic knobs, checked by
  `SyntheticConfig` itself (its rules involve its structured defaults), as ConfigErrors on config.synthetic.<knob>;
  a knob it does not have is named with the nearest (`validate_config` leaves these names to the data layer).

  A data field the dataset does not read (`field_usage.unread_data_fields`) would be ignored, so a
  value other than its default is an error instead: the synthetic knobs for any dataset but `synthetic` (the
  fixed `synthetic_amazon1` graphs included), `data_dir`/`features` for the generated graphs, `data_dir` for
  a dataset path, `split_fractions`/`split_seed` unless `split` is 'stratified'.

  Raises:
    ConfigError: one line naming the field, its value, the problem and the fix.
  """
  dataset = config.get("dataset")
  _check_split_fields(config)
  for field in _FILE_FIELD_DEFAULTS if isinstance(dataset, str) else ():
    unread = unread_file_field(dataset, field, config.get(field))
    if unread:
      raise cv.ConfigError(field, config.get(field), *unread)
  if dataset in choices.SCALED_SYNTHETIC:  # a fixed graph: its size is the dataset's, no knob changes it
    try:
      check_fits_in_memory(SyntheticConfig(**scaled_synthetic_kwargs(dataset)))
    except SyntheticConfigError as e:
      smaller = [n for n in choices.SCALED_SYNTHETIC if n != dataset]
      raise cv.ConfigError(
          "dataset",
          dataset,
          e.problem,
          f"train a smaller one ({', '.join(smaller)}), or where that much memory is free "
          f"({memory_check.ENV_SWITCH}=0 generates it anyway, e.g. with swap)",
      ) from None
  if "synthetic" not in config:
    return
  known = {f"synthetic.{f.name}" for f in dataclasses.fields(SyntheticConfig)}
  for knob, value in (config.get("synthetic") or {}).items():  # config_validation leaves these names to us
    if f"synthetic.{knob}" not in known:
      raise cv.unknown_field_error(f"synthetic.{knob}", value, known)
  if "synthetic" in field_usage.unread_data_fields(dataset):
    changed = changed_synthetic_knobs(config)
    if changed:
      knob, value = sorted(changed.items())[0]
      raise cv.ConfigError(
          f"synthetic.{knob}",
          value,
          f"is not read by dataset {dataset!r}: only --dataset=synthetic is generated from the synthetic knobs"
          + (" (the AMAZON-1-like graphs are fixed)" if dataset in choices.SCALED_SYNTHETIC else ""),
          "drop the --config.synthetic.* flags, or train --dataset=synthetic with them "
          "(--config.synthetic.single_type=true gives a smaller AMAZON-1-like graph)",
      )
    return
  knobs = _synthetic_knobs(config)
  try:
    check_fits_in_memory(SyntheticConfig(**knobs))
  except SyntheticConfigError as e:
    raise cv.ConfigError(f"synthetic.{e.field}", knobs.get(e.field, e.value), e.problem, e.fix) from None


def _check_split_fields(config) -> None:
  """split_fractions well-formed (it was checked only while loading, a traceback), and the split's fraction
  and seed given only where they are read: split=stratified draws the split; 'file' uses the dataset's own."""
  if "split_fractions" in config:
    try:
      splits.check_fractions(config["split_fractions"])
    except ValueError:
      raise cv.ConfigError(
          "split_fractions",
          config["split_fractions"],
          "must be three positive train/val/test fractions summing to 1",
          "give e.g. --config.split_fractions='(0.2, 0.1, 0.7)' (read with --config.split=stratified)",
      ) from None
  if config.get("split", "file") == "stratified":
    return
  defaults = {"split_fractions": splits.DEFAULT_FRACTIONS, "split_seed": splits.DEFAULT_SEED}
  for field in choices.SPLIT_DRAW_FIELDS:
    value = config.get(field, defaults[field])
    if (tuple(float(x) for x in value) if field == "split_fractions" else value) != defaults[field]:
      raise cv.ConfigError(
          field,
          value,
          "is not read with split=file: the dataset's own train/val/test split is used",
          "add --config.split=stratified to draw the split with it, or drop it",
      )


def validate_run_config(config) -> None:
  """Every check of a run config before its data is loaded: the library's, then the data layer's."""
  cv.validate_config(config)
  check_data_config(config)


def load_for_config(config: ml_collections.ConfigDict) -> MMHN:
  """The dataset named by the config (`load_dataset`), with the config's split, checked for training."""
  split = config.get("split", "file")
  if split not in splits.SPLIT_RULES:  # before any file is read
    raise ValueError(f"config.split={split!r}: is not a split rule. Fix: use one of {', '.join(splits.SPLIT_RULES)}")
  fractions = splits.check_fractions(config.get("split_fractions", splits.DEFAULT_FRACTIONS))
  kwargs, missing_fill = {}, config.get("missing_fill", "code")
  if config.dataset == "synthetic":
    kwargs = _synthetic_knobs(config)
    # The generator's own fill rule is the synthetic dataset's "code" default.
    synthetic_fill = kwargs.pop("missing_fill", None)
    if missing_fill == "code" and synthetic_fill:
      missing_fill = synthetic_fill
  data = load_dataset(
      config.dataset,
      data_dir=config.get("data_dir") or None,
      features=config.get("features", "real"),
      missing_fill=missing_fill,
      feature_seed=config.get("feature_seed", 0),
      **kwargs,
  )
  data = splits.resplit(data, split, fractions, int(config.get("split_seed", splits.DEFAULT_SEED)))
  return check_trainable(data)  # the split it trains on
