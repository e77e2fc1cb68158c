"""Checks a run config before any work starts (JAX-free); the tables of what each field allows are `choices`.

`validate_config(config)` checks every field of a resolved config (a `ConfigDict` or a nested
dict, as `experiments/configs` builds it) and raises `ConfigError`, one line:
`config.<field>=<value>: <problem>. Fix: <fix>`. `train.train_and_evaluate` calls it before it
builds anything or creates the workdir; the experiment scripts call it on every cell up front.

The rules are tables (`hgnn_ima_jax.choices`, which imports nothing from the project), so that one place says
what a field may be:

* `known_fields`: every field path the project reads (the tables, `OTHER_FIELDS`, and the model's and
  batch's dataclasses); a path outside it (`config.epochs`, `config.model.hiden`) is refused with the nearest.
* `CHOICES`: the allowed values of every string option. The model, layer, attention and
  training modules check their fields against these same tuples.
* `NUMBERS`: integer and real fields with their ranges (every real must also be finite).
* `BOOLS`: fields that must be True or False.
* `_cross_checks`: the few rules that involve two fields (hidden and heads, ...).
* What a run does not read (`unread_fields`: per dataset, split rule, batch mode and model), so that a value
  given for it is refused rather than ignored, and so that it does not count in `result_fields`. Which model
  and optimizer read which field is `unread_setting_fields`; the scripts check each --config override against it
  (`ignored_override`), since only they know which values were given rather than taken from a profile.

* `DATASET_NAMES`: the dataset names `data_utils.load_dataset` knows (any other `dataset` must be
  a path); the data layer reads this same tuple.
* `parse_flags`: the commands' absl flag parsing, whose errors (a value of the wrong type, an unknown
  flag) are one line with a fix too.

The synthetic dataset's knobs are checked by the data layer (`data_utils.check_data_config`, with
`SyntheticConfig`'s own rules), which the scripts call after this; this module imports no data
code. Fields absent from the config are not checked (the code's defaults apply to them).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import os
import re
import shlex
import sys
from typing import Any, Mapping

from absl import app, flags

from hgnn_ima_jax.choices import (
    ABLATION_OVERRIDES,
    ADDED_FIELDS,
    BOOLS,
    CHOICES,
    DATA_DIR_ENV,
    DATA_LAYER_GROUPS,
    DATASET_NAMES,
    MODEL_NAMES,
    NUMBERS,
    OTHER_FIELDS,
    RESULT_NEUTRAL,
    SCALED_SYNTHETIC,
    SPLIT_DRAW_FIELDS,
    Number,
)
from hgnn_ima_jax.graph_checks import names_problem
from hgnn_ima_jax.options import BATCH_FIELDS_READ, BatchSettings, LayerOptions


class ConfigError(ValueError):
  """A config field has a value the code cannot run. `str(err)` is one line: field, value, problem, fix."""

  def __init__(self, field: str, value: Any, problem: str, fix: str):
    self.field, self.value, self.problem, self.fix = field, value, problem, fix
    super().__init__(f"config.{field}={format_value(value)}: {problem}. Fix: {fix}")


def format_value(value: Any) -> str:
  """A value as a command line would spell it: strings bare (quoted when empty), the rest as Python."""
  if isinstance(value, str):
    return value if value and value.strip() == value else repr(value)
  return repr(tuple(value)) if isinstance(value, list) else repr(value)


def config_flag(path: str, value: Any) -> str:
  """`--config.<path>=<value>` as it can be pasted into a shell: bare when nothing in it needs quoting, else the
  value in double quotes (the README's spelling of a tuple or dict: --config.batch.fanouts="({'ma': 10}, ...)"),
  or `shlex.quote`'d when double quotes would not protect it."""
  flag = f"--config.{path}={format_value(value)}"
  if shlex.quote(flag) == flag:
    return flag
  text = format_value(value)
  if not any(c in text for c in '"\\$`!'):
    return f'--config.{path}="{text}"'
  return shlex.quote(flag)


def to_dict(config) -> dict:
  """A plain nested dict of a ConfigDict (or mapping)."""
  return (
      config.to_dict()
      if hasattr(config, "to_dict")
      else {k: to_dict(v) if isinstance(v, Mapping) else v for k, v in dict(config).items()}
  )


_MISSING = object()


def get_path(tree: Mapping, path: str, default=_MISSING):
  node = tree
  for part in path.split("."):
    if not isinstance(node, Mapping) or part not in node:
      return default
    node = node[part]
  return node


# --- checks -----------------------------------------------------------------------------

FIELDS_LISTED = "experiments/configs/default.py lists every field"


@functools.cache
def known_fields() -> frozenset[str]:
  """Every config path some part of the project reads (the synthetic knobs aside: `DATA_LAYER_GROUPS`): the
  fields of `CHOICES`, `NUMBERS`, `BOOLS` and `OTHER_FIELDS`, `options.LayerOptions`' as model.<name> and
  `options.BatchSettings`' as batch.<name>. A path is a leaf: a dict under it (batch.fanouts' per-relation hops,
  batch.num_samples' per-type counts) holds user data, not fields."""
  return frozenset(
      (*CHOICES, *NUMBERS, *BOOLS, *OTHER_FIELDS)
      + tuple(f"model.{name}" for name in LayerOptions.names())
      + tuple(f"batch.{f.name}" for f in dataclasses.fields(BatchSettings))
  )


def unknown_field_error(path: str, value, known) -> ConfigError:
  """The ConfigError for a config `path` that is none of the `known` paths: the nearest field of its group (the
  last name compared), else the field of that name in any group (`hidden` finds model.hidden), else
  its group's fields, else where the fields are listed."""
  group, _, leaf = path.rpartition(".")
  siblings = {p.rpartition(".")[2]: p for p in known if p.rpartition(".")[0] == group}
  near = [siblings[k] for k in difflib.get_close_matches(leaf, sorted(siblings), n=1)]
  if not near:
    anywhere = {}
    for p in sorted(known, key=lambda p: (p.count("."), p)):
      anywhere.setdefault(p.rpartition(".")[2], p)
    near = [anywhere[k] for k in difflib.get_close_matches(leaf, list(anywhere), n=1)]
  if near:
    fix = f"did you mean {near[0]}? ({FIELDS_LISTED})"
  elif group and siblings:
    fix = f"use one of {', '.join(sorted(siblings.values()))}"
  else:
    fix = "use a field of experiments/configs/default.py (--print_config prints a run's config)"
  return ConfigError(path, value, "is not a config field", fix)


def _check_known_fields(d: Mapping) -> None:
  """Every path of the config is a field some part of the project reads: a misspelt one (config.epochs,
  config.model.hiden) was ignored (the default trained) or a TypeError from inside the model's constructor."""
  known = known_fields()
  groups = {p.split(".")[0] for p in known if "." in p}

  def walk(node: Mapping, prefix: str) -> None:
    for key, value in node.items():
      path = f"{prefix}{key}"
      if path in known or path in DATA_LAYER_GROUPS:
        continue
      if path in groups:
        if isinstance(value, Mapping):
          walk(value, f"{path}.")
        continue
      # a group is a candidate only for a dict (config.optim = {...}), a field only for a value
      candidates = known | groups | set(DATA_LAYER_GROUPS) if isinstance(value, Mapping) else known
      raise unknown_field_error(path, value, candidates)

  walk(d, "")


def _check_choice(field: str, value) -> None:
  allowed = CHOICES[field]
  if value not in allowed:
    raise ConfigError(field, value, "is not one of the allowed values", f"use one of {', '.join(allowed)}")


def _check_number(field: str, rule: Number, value) -> None:
  if value is None and rule.optional:
    return
  is_int = isinstance(value, int) and not isinstance(value, bool)
  if rule.integer and not is_int:
    raise ConfigError(field, value, "is not an integer", f"use {rule.describe()}")
  if not rule.integer and not (is_int or isinstance(value, float)):
    raise ConfigError(field, value, "is not a number", f"use {rule.describe()}" + (" or None" if rule.optional else ""))
  if not math.isfinite(value):
    raise ConfigError(field, value, "is not finite", f"use {rule.describe()}")
  if not rule.admits(value):
    raise ConfigError(field, value, "is out of range", f"use {rule.describe()}")


def _check_seeds(value) -> None:
  if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
    raise ConfigError("seeds", value, "is not a list of seeds", "give seeds as a tuple of integers, e.g. (0, 1, 2)")
  seeds = tuple(value)
  if not seeds:
    raise ConfigError("seeds", value, "is empty", "give at least one seed (--seeds=N for 0..N-1, or a list 0,3,7)")
  for s in seeds:
    if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < 2**31:
      raise ConfigError(
          "seeds", value, f"seed {s!r} is not an integer in [0, 2^31)", "use non-negative integer seeds such as 0,3,7"
      )
  if len(set(seeds)) != len(seeds):
    raise ConfigError("seeds", value, "repeats a seed", "list each seed once")


def _cross_checks(d: dict) -> None:
  rule = get_path(d, "early_stopping.rule", "val_loss")
  if get_path(d, "selection_metric", None) == "paper_rule" and rule != "paper":
    # the rule's running best loss and accuracy are kept only by early_stopping.rule=paper: with val_loss the
    # best accuracy stayed at -inf and paper_rule selected by the lowest validation loss instead
    raise ConfigError(
        "selection_metric",
        "paper_rule",
        f"needs early_stopping.rule=paper (it is {rule}), whose running best loss and accuracy it selects by",
        "add --config.early_stopping.rule=paper (--protocol=paper sets both), or select by macro_f1/micro_f1",
    )
  heads = get_path(d, "model.heads", None)
  for field in ("model.hidden", "model.baseline_hidden"):
    hidden = get_path(d, field, None)
    if hidden is not None and heads is not None and hidden % heads:
      raise ConfigError(
          field,
          hidden,
          f"is not divisible by model.heads={heads}",
          f"use a multiple of heads (e.g. {heads * max(1, round(hidden / heads))}) or change model.heads",
      )
  if get_path(d, "model.input_batch_norm", False) and get_path(d, "model.projection", None) == "shared":
    raise ConfigError(
        "model.input_batch_norm",
        True,
        "needs model.projection=per_channel (the FULL profile)",
        "set --config.model.projection=per_channel or drop input_batch_norm",
    )
  _check_fanout_values(get_path(d, "batch.fanouts", None), get_path(d, "model.num_layers", None))
  num_samples = get_path(d, "batch.num_samples", _MISSING)
  if num_samples is not _MISSING:
    bad = _bad_num_samples(num_samples)
    if bad:
      raise ConfigError(
          "batch.num_samples",
          num_samples,
          f"{bad}; expected nodes sampled per type and iteration: an int >= 1 for every type, or a dict node type "
          "-> int >= 0 (types not named sample none)",
          "give e.g. --config.batch.num_samples=128 or, per type, "
          "--config.batch.num_samples=\"{'movie': 128, 'actor': 64, 'director': 32}\"",
      )
  parts, data = get_path(d, "batch.parts", 1), get_path(d, "mesh_data", 1)
  if isinstance(parts, int) and isinstance(data, int) and parts >= 1 and data >= 1:
    if parts % data:
      raise ConfigError(
          "mesh_data",
          data,
          f"does not divide batch.parts={parts}",
          f"set mesh_data to a divisor of {parts}, or batch.parts to a multiple of {data}",
      )
    if (parts > 1 or data > 1) and get_path(d, "batch.mode", "full") == "full":
      raise ConfigError(
          "batch.parts" if parts > 1 else "mesh_data",
          parts if parts > 1 else data,
          "needs sampled mini-batches",
          "set --config.batch.mode=neighbor (or hgt), or keep it at 1",
      )
  opt = d.get("optimizer") or {}
  if opt.get("schedule") == "onecycle" and "onecycle_total_steps" in opt and "onecycle_pct_start" in opt:
    if opt["onecycle_pct_start"] * opt["onecycle_total_steps"] <= 1:  # the warm-up would end before step 1
      raise ConfigError(
          "optimizer.onecycle_pct_start",
          opt["onecycle_pct_start"],
          f"times onecycle_total_steps={opt['onecycle_total_steps']} is <= 1 (no warm-up step)",
          "raise onecycle_pct_start or onecycle_total_steps",
      )

  variant = get_path(d, "model.variant", "full")
  if variant != "full" and "model_name" in d:  # the library's own check; the scripts refuse any ignored override
    ignored = ignored_override(d, "model.variant", variant, "full")
    if ignored:
      raise ConfigError("model.variant", variant, *ignored)
  _check_batch_fields(d)


def _is_int(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def _check_fanout_values(fanouts, num_layers=None) -> None:
  """`batch.fanouts`' values (validation, and `check_fanouts_per_layer` before it counts the hops: a dict given
  without its tuple arrives as its keys, and was then told to give one key per layer). The fix's examples have one
  hop per layer of `num_layers` (the config's model.num_layers; 3, the default, when unknown): 2-hop examples were
  refused in turn for a 3-layer model."""
  bad = None if fanouts is None else _bad_fanout(fanouts)
  if bad:
    layers = max(1, num_layers) if _is_int(num_layers) else 3
    per_relation = fanouts_flag([{"ma": 10, "md": 5}] * layers)  # the graph's relation names are not known here
    raise ConfigError(
        "batch.fanouts",
        fanouts,
        f"{bad}; expected one entry per hop: in-edges sampled per node and relation (>= 1, or -1 for all), or "
        "a dict relation name -> in-edges naming every relation (0 skips one)",
        f"give one per layer of model.num_layers={layers}, e.g. --config.batch.fanouts={fanouts_flag([10] * layers)} "
        "or, per relation, the tuple of one dict per layer naming every relation of the graph (these names are "
        f"examples), in double quotes: --config.batch.fanouts={per_relation} (empty: 10 per layer)",
    )


def _bad_fanout(fanouts) -> str | None:
  """What is wrong with `batch.fanouts` before the graph is known (relation names are checked against the graph
  by `check_batch_for_graph`), or None. A dict on the command line without a tuple around it arrives as its keys
  (ml_collections turns it into a tuple), so a name where a number belongs gets the per-relation example."""
  if isinstance(fanouts, (int, str, Mapping)):
    return "is not a list"
  for h, f in enumerate(fanouts):
    if isinstance(f, Mapping):
      for name, k in f.items():
        if not isinstance(name, str) or not _is_int(k) or k < -1:
          return f"hop {h + 1} gives {name!r}: {k!r} (a relation name -> a Python int >= -1)"
    elif not _is_int(f) or not (f >= 1 or f == -1):
      return f"hop {h + 1} is {f!r}" + (" (a NumPy number: give int(...))" if hasattr(f, "dtype") else "")
  return None


def _bad_num_samples(n) -> str | None:
  """What is wrong with `batch.num_samples` before the graph is known (its type names: `check_batch_for_graph`)."""
  if isinstance(n, Mapping):
    for t, k in n.items():
      if not isinstance(t, str) or not _is_int(k) or k < 0:
        return f"gives {t!r}: {k!r} (a node type -> an int >= 0)"
    return None if any(k > 0 for k in n.values()) else "samples no node of any type"
  return None if _is_int(n) and n >= 1 else "is not an int >= 1 or a dict"


def fanouts_flag(fanouts) -> str:
  """`batch.fanouts` as the command line takes it: 10,5 for numbers, a quoted tuple of dicts per relation."""
  if all(_is_int(f) for f in fanouts):
    return ",".join(str(f) for f in fanouts)
  return '"' + repr(tuple(dict(f) if isinstance(f, Mapping) else f for f in fanouts)) + '"'


def check_model_for_graph(config, data) -> None:
  """The model against the loaded graph `data` (an MMHN), before anything is written: HGNN-IMA and its Table 4
  variants attend across modalities, so they need two or more. A one-modality graph (PyG's DBLP or OGB-MAG
  through `from_hetero_data`) was a traceback from inside the model's set-up, after the run directory was made.

  Raises:
    ConfigError: on model_name, naming the graph's modality and the models that train on one.
  """
  name = str(config.get("model_name", "hgnn_ima"))
  modalities = list(data.schema.modalities)
  if name.startswith("hgnn_ima") and len(modalities) < 2:
    raise ConfigError(
        "model_name",
        name,
        f"attends across modalities, and dataset {config.get('dataset')} has one ({', '.join(modalities)})",
        "train an HGT baseline on it (--model=hgt_late or hgt), or give the graph a second modality",
    )


def check_batch_for_graph(config, data) -> None:
  """`config.batch` against the loaded graph `data` (an MMHN), before anything is written: per-relation fanouts
  name exactly its relations, per-type num_samples only its node types, and `batch.drop_last` leaves a batch of
  its training targets. These were errors from inside the sampler once the run directory had been made.

  Raises:
    ConfigError: the field, the value, and the graph's relations or training-target count.
  """
  relations, node_types = [r.name for r in data.relations], list(data.node_types)
  num_train = len(data.splits["train"])
  d = to_dict(config)
  mode, graph = get_path(d, "batch.mode", "full"), f"dataset {d.get('dataset')}"
  fanouts = get_path(d, "batch.fanouts", None) or ()
  if mode == "neighbor":
    for h, f in enumerate(fanouts):
      problem = isinstance(f, Mapping) and names_problem(f, relations, "relation", every=True, graph=graph)
      if problem:
        raise ConfigError(
            "batch.fanouts",
            fanouts,
            f"hop {h + 1} {problem}",
            f"give a fanout for exactly its relations {', '.join(relations)} (0 skips one, -1 takes all)",
        )
  num_samples = get_path(d, "batch.num_samples", None)
  problem = isinstance(num_samples, Mapping) and names_problem(
      num_samples, node_types, "node type", every=False, graph=graph
  )
  if mode == "hgt" and problem:
    raise ConfigError(
        "batch.num_samples",
        num_samples,
        problem,
        f"use its node types {', '.join(node_types)} (a type not named samples none)",
    )
  size = get_path(d, "batch.size", 512)
  if mode != "full" and get_path(d, "batch.drop_last", False) and _is_int(size) and size > num_train:
    raise ConfigError(
        "batch.drop_last",
        True,
        f"leaves no batch: batch.size={size} is more than the {num_train} training targets of dataset "
        f"{d.get('dataset')}",
        f"lower batch.size to at most {num_train}, or drop batch.drop_last",
    )


def unread_batch_fields(config) -> tuple[str, ...]:
  """The `config.batch` fields its mode does not read (`options.BATCH_FIELDS_READ`), `mode` aside."""
  batch = config.get("batch") or {}
  reads = BATCH_FIELDS_READ.get(batch.get("mode", "full"), ())
  return tuple(f.name for f in dataclasses.fields(BatchSettings) if f.name != "mode" and f.name not in reads)


def check_fanouts_per_layer(config) -> None:
  """A new neighbour-sampled run gives one fanout per layer: a single -1 (meant as "all") sampled one hop of three,
  and hops beyond the layers grew every batch while no layer read them. Checked for new runs only (train.py,
  the scripts' cells, `train_and_evaluate` without resume): runs saved before the rule still resume.

  Raises:
    ConfigError: the count, the layers and an example with one per layer.
  """
  d = to_dict(config)
  fanouts = get_path(d, "batch.fanouts", None)
  layers = get_path(d, "model.num_layers", None)
  if get_path(d, "batch.mode", "full") == "neighbor" and fanouts and isinstance(layers, int) and layers >= 1:
    _check_fanout_values(fanouts, layers)
    if len(fanouts) != layers:
      what = f"samples {len(fanouts)} hop(s) for model.num_layers={layers}: " + (
          f"the in-edges of the last {layers - len(fanouts)} layer(s) would never be sampled in training "
          "(evaluation reads them all)"
          if len(fanouts) < layers
          else f"no layer reads hops {layers + 1}-{len(fanouts)}, which only grow every batch"
      )
      example = fanouts_flag([fanouts[0]] * layers)
      raise ConfigError("batch.fanouts", fanouts, what, f"give one per layer, e.g. --config.batch.fanouts={example}")


def _check_batch_fields(d: dict) -> None:
  """A batch field the mode does not read, given a value other than its default, would be ignored:
  e.g. --config.batch.size=128 without --config.batch.mode=neighbor trained full-batch without a word."""
  batch = d.get("batch")
  if not isinstance(batch, Mapping) or batch.get("mode", "full") not in BATCH_FIELDS_READ:
    return
  mode, defaults = batch.get("mode", "full"), dataclasses.asdict(BatchSettings())
  for field in unread_batch_fields(d):
    if field in batch and normalise(batch[field]) != normalise(defaults[field]):
      readers = [m for m, fields in BATCH_FIELDS_READ.items() if field in fields]
      if mode == "full":
        alt = f" (or {readers[1]})" if len(readers) > 1 else ""
        fix = f"add --config.batch.mode={readers[0]}{alt} to train on sampled mini-batches"
      else:
        fix = f"it is read with batch.mode={' or '.join(readers)}: switch to that"
      raise ConfigError(f"batch.{field}", batch[field], f"is not read with batch.mode={mode}", f"{fix}, or drop it")


def _read_as_path(dataset: str) -> bool:
  """Whether `load_dataset` reads a dataset value that is not a known name as a path (the same rule)."""
  return dataset.endswith(".npz") or "/" in dataset or os.sep in dataset or os.path.exists(dataset)


def _check_dataset(dataset) -> None:
  """A known name, or something `load_dataset` reads as a path (the same rule, so both agree)."""
  if not isinstance(dataset, str) or not dataset.strip():
    raise ConfigError("dataset", dataset, "is empty", "give a dataset name (e.g. synthetic, douban) or a path")
  if dataset.lower() in DATASET_NAMES or _read_as_path(dataset):
    return
  if not os.path.exists(dataset):
    near = difflib.get_close_matches(dataset.lower(), DATASET_NAMES, n=1)
    raise ConfigError(
        "dataset",
        dataset,
        "is neither a known dataset nor an existing path",
        (f"did you mean {near[0]}? Otherwise use" if near else "use")
        + f" one of {', '.join(DATASET_NAMES)}, or a generic-format .npz file or directory",
    )


def validate_config(config) -> None:
  """Checks every field of a resolved run config; raises `ConfigError` for the first bad one.

  Args:
    config: a `ConfigDict` (or nested mapping) as `experiments.configs.get_config` builds it,
      with its overrides applied.

  Raises:
    ConfigError: one line naming the field, its value, the problem and the fix.
  """
  d = to_dict(config)
  _check_known_fields(d)
  if "dataset" in d:
    _check_dataset(d["dataset"])
  for field in CHOICES:
    value = get_path(d, field)
    if value is not _MISSING:
      _check_choice(field, value)
  for field, rule in NUMBERS.items():
    value = get_path(d, field)
    if value is not _MISSING:
      _check_number(field, rule, value)
  for field in BOOLS:
    value = get_path(d, field)
    if value is not _MISSING and not isinstance(value, bool):
      raise ConfigError(field, value, "is not a boolean", "use True or False")
  if "seeds" in d:
    _check_seeds(d["seeds"])
  _cross_checks(d)


# --- comparing configs ------------------------------------------------------------------


def normalise(tree):
  """JSON-equal form (tuples → lists, other objects → str), so a config compares with its config.json."""
  return json.loads(json.dumps(tree, sort_keys=True, default=lambda x: list(x) if isinstance(x, tuple) else str(x)))


def absolute_path(field: str, value):
  """A dataset path or data_dir made absolute, so that the config saved with a run opens it from any directory
  (resume, visualize, load_run); dataset names, and empty or unset values, as given."""
  if not isinstance(value, str) or not value or (field == "dataset" and value.lower() in DATASET_NAMES):
    return value
  if field == "dataset" and not _read_as_path(value):  # a mistyped name stays one: validation names it
    return value
  return os.path.abspath(value)


def data_dir_or_env(config) -> str:
  """config.data_dir, or $HGNN_IMA_DATA_DIR where that is empty and the dataset reads a data_dir: the variable counts
  as if given, so that config.json says where the data came from and the run reopens (--resume, visualize,
  load_run) in a shell without it."""
  given = config.get("data_dir") or ""
  if given or "data_dir" in unread_data_fields(config.get("dataset")):
    return given
  return os.environ.get(DATA_DIR_ENV, "")


def unread_data_fields(dataset: str | None) -> tuple[str, ...]:
  """The data fields a dataset does not read: data_dir/features for 'synthetic' (generated), the synthetic
  knobs for every other dataset, all three for the fixed AMAZON-1-like graphs (no file, no knobs), and
  data_dir for a generic-format path (the path says where the files are)."""
  if not isinstance(dataset, str):
    return ("synthetic",)
  name = dataset.lower()
  if name in SCALED_SYNTHETIC:
    return ("data_dir", "features", "synthetic")
  if name == "synthetic":
    return ("data_dir", "features")
  return ("synthetic",) if name in DATASET_NAMES else ("data_dir", "synthetic")


# --- which model reads which field ----------------------------------------------------------

# HGNN-IMA's own fields: the nested attention (Eqs. 2, 4–9) and L_att (Eq. 7). The HGT baselines have neither
# (their score scale is model.baseline_score_scale), and their L_att is 0, so its weight and its place in the
# validation loss change nothing.
_IMA_FIELDS = (
    "model.variant",
    "model.score_scale",
    "model.align_sign",
    "model.combine",
    "model.beta_norm",
    "model.align_off",
    "model.nei_mode",
    "model.latt_norm",
    "loss.att_weight",
    "loss.val_includes_att",
)
_FUSION_FIELDS = ("model.fusion_form", "model.fusion_input_dropout", "model.fusion_score_dropout")
_NO_LATT = ("model.latt_norm", "loss.att_weight", "loss.val_includes_att")
# HGNN-IMA variants: the fields one variant alone reads, and the fields a variant skips (with why).
_VARIANT_ONLY = {"model.align_off": "-align", "model.nei_mode": "-nei"}
_VARIANT_SKIPS = {
    "-align": ("has no Eq. 8", ("model.align_sign",)),
    "-cross": ("has no Eq. 6 and learns no λ (its L_att is 0)", ("model.beta_norm",) + _NO_LATT),
    "-adapt": ("learns no λ (its L_att is 0)", _NO_LATT),
}


def name_set_fields(model_name) -> dict[str, Any]:
  """{path: value} of the fields a Table 4 model name sets in place of the config's: `hgnn_ima-align` sets
  model.variant, `hgnn_ima-L_att` loss.att_weight, `hgnn_ima-L_ind` loss.ind_loss."""
  if not isinstance(model_name, str) or not model_name.startswith("hgnn_ima"):
    return {}
  model_over, loss_over = ABLATION_OVERRIDES.get(model_name[len("hgnn_ima") :], ({}, {}))
  return {**{f"model.{k}": v for k, v in model_over.items()}, **{f"loss.{k}": v for k, v in loss_over.items()}}


def apply_name_fields(config) -> None:
  """Writes the fields the config's Table 4 model name sets (`name_set_fields`) into `config` (a dict or
  ConfigDict with model/loss groups), so that a saved config.json says what the run trained: `hgnn_ima-cross`'s
  model.variant is -cross, not the base config's full."""
  for path, value in name_set_fields(config.get("model_name", "hgnn_ima")).items():
    group, field = path.split(".")
    if config.get(group) is not None:  # a dict or a ConfigDict (which is no Mapping)
      config[group][field] = value


def model_variant(config) -> str:
  """The Table 4 variant HGNN-IMA runs: the model name's (`hgnn_ima-align`) or else config.model.variant."""
  named = name_set_fields(config.get("model_name", "hgnn_ima")).get("model.variant")
  return named or (config.get("model") or {}).get("variant", "full")


def unread_model_fields(config) -> dict[str, tuple[str, str]]:
  """{path: (why the config's model does not read it, the fix)} for the model and loss fields it ignores.

  By model: the HGT baselines read none of HGNN-IMA's fields (`_IMA_FIELDS`); the single-channel ones (hgt,
  hgt_early) no fusion field either, nor loss.ind_loss (their one modality head is the fused head, so Eq. 16's
  average is CE(O)); HGNN-IMA reads no model.baseline_score_scale. By HGNN-IMA variant: only `-align` reads
  align_off (and not with beta_norm='paper': Eq. 6's softmax has normalised β already), only `-nei` reads
  nei_mode, `-align` has no Eq. 8 (align_sign), `-cross` no Eq. 6 (beta_norm), and `-cross`/`-adapt` learn no
  λ, so their L_att is 0 (latt_norm, att_weight, val_includes_att). With model.num_layers=0 no model reads its
  layers' fields (update_form, dropout, the attention's). tests/test_model_properties.py checks that changing any
  of them leaves every model's outputs equal.
  """
  name = config.get("model_name", "hgnn_ima")
  if name not in MODEL_NAMES:
    return {}
  out = _unread_by_model(config, name)
  if (config.get("model") or {}).get("num_layers", 3) == 0:
    why = "is not read with model.num_layers=0: no layer propagates (the inputs go straight to the fusion and head)"
    no_layer = ("model.update_form", "model.dropout") + (
        _IMA_FIELDS if name.startswith("hgnn_ima") else ("model.baseline_score_scale",)
    )
    for path in no_layer:
      out[path] = (why, "drop it, or set --config.model.num_layers to 1 or more with it")
  return out


def _unread_by_model(config, name: str) -> dict[str, tuple[str, str]]:
  """`unread_model_fields` for a model with layers: by model name and HGNN-IMA variant."""
  if not name.startswith("hgnn_ima"):
    why = f"is not read by model_name={name}: the HGT baselines have no inter-modal attention and no L_att"
    out = {path: (why, "drop it, or train --model=hgnn_ima with it") for path in _IMA_FIELDS}
    out["model.score_scale"] = (why, "set --config.model.baseline_score_scale for the HGT baselines, or drop it")
    if name != "hgt_late":
      one = f"is not read by model_name={name}: a single-channel HGT has no modality fusion and one logit head"
      for path in _FUSION_FIELDS + ("loss.ind_loss",):
        out[path] = (one, "drop it, or train --model=hgt_late (or hgnn_ima) with it")
    return out
  out = {
      "model.baseline_score_scale": (
          f"is not read by model_name={name}: it is the HGT baselines' score scale",
          "set --config.model.score_scale for HGNN-IMA (c in Eq. 2), or drop it",
      ),
      "model.baseline_hidden": (
          f"is not read by model_name={name}: it is the HGT baselines' width",
          "set --config.model.hidden for HGNN-IMA, or drop it",
      ),
  }
  variant = model_variant(config)
  for path, reader in _VARIANT_ONLY.items():
    if variant != reader:
      out[path] = (
          f"is not read with variant {variant} (only {reader} reads it)",
          f"train --model=hgnn_ima{reader} with it, or drop it",
      )
  if variant == "-align" and (config.get("model") or {}).get("beta_norm", "code") == "paper":
    out["model.align_off"] = (
        "is not read with beta_norm=paper: Eq. 6's softmax has normalised -align's β already",
        "drop it, or set --config.model.beta_norm=code with it",
    )
  what, skipped = _VARIANT_SKIPS.get(variant, ("", ()))
  for path in skipped:
    out[path] = (f"is not read with variant {variant}, which {what}", "drop it, or train another variant with it")
  return out


_ONECYCLE_FIELDS = tuple(
    f"optimizer.onecycle_{k}"
    for k in ("total_steps", "pct_start", "div_factor", "final_div_factor", "base_momentum", "max_momentum")
)


def unread_optimizer_fields(config) -> dict[str, tuple[str, str]]:
  """{path: (why, fix)} for the optimizer fields its name and schedule do not read (`optim.create_optimizer`):
  the OneCycle fields with schedule='constant'; b1 with 'onecycle' (b1 cycles between the OneCycle momenta, as
  torch's OneCycleLR cycles Adam's beta1); weight_decay with plain 'adam'."""
  opt = config.get("optimizer") or {}
  schedule, name = opt.get("schedule", "onecycle"), opt.get("name", "adamw")
  out = {}
  if schedule == "constant":
    for path in _ONECYCLE_FIELDS:
      out[path] = (
          "is not read with optimizer.schedule=constant",
          "add --config.optimizer.schedule=onecycle, or drop it",
      )
  elif schedule == "onecycle":
    out["optimizer.b1"] = (
        "is not read with optimizer.schedule=onecycle: b1 cycles between onecycle_max_momentum and "
        "onecycle_base_momentum",
        "set those, or --config.optimizer.schedule=constant with it",
    )
  if name == "adam":
    out["optimizer.weight_decay"] = (
        "is not read with optimizer.name=adam (no weight decay)",
        "use --config.optimizer.name=adamw with it, or drop it",
    )
  return out


def unread_setting_fields(config) -> dict[str, tuple[str, str]]:
  """`unread_model_fields` and `unread_optimizer_fields` together: the fields whose unread values the scripts
  refuse only when given (`ignored_override`), since a dataset profile or protocol may set them."""
  return {**unread_model_fields(config), **unread_optimizer_fields(config)}


def unread_for_graph(config, schema) -> dict[str, tuple[str, str]]:
  """{path: (why, fix)} for the fields the config's run does not read on a graph of `schema` (known once it has
  loaded): missing_fill where no node type lacks a modality (nothing is filled; for `hgt`, which reads the first
  modality only, where every type has that one), and L_att's fields where no relation's sender type lacks a
  modality (Eq. 7 is λ's mass on the modalities a sender lacks, so L_att is 0)."""
  name = config.get("model_name", "hgnn_ima")
  where = f"dataset {config.get('dataset')}"
  out = {}
  if all(all(p) for p in schema.present):
    out["missing_fill"] = (
        f"is not read on {where}: every node type has every modality, so nothing is filled",
        "drop it",
    )
  elif name == "hgt" and all(p[0] for p in schema.present):
    out["missing_fill"] = (
        f"is not read by model_name=hgt on {where}: hgt reads the first modality ({schema.modalities[0]}) only, "
        "and every node type has it",
        "drop it, or train another model with it",
    )
  senders_lack = any(
      schema.num_edges[r] > 0 and not all(schema.present[schema.relation_src(r)]) for r in range(schema.num_relations)
  )
  if name.startswith("hgnn_ima") and not senders_lack:
    why = f"is not read on {where}: no sender of an edge lacks a modality, so L_att (Eq. 7) is 0"
    for path in _NO_LATT:
      out[path] = (why, "drop it")
  return out


def ignored_override(config, path: str, value, plain, schema=None) -> tuple[str, str] | None:
  """(problem, fix) when `--config.<path>=<value>` would change nothing in the run of `config`: the model name
  sets the field to another value (`name_set_fields`), or its model or optimizer does not read the field
  (`unread_setting_fields`), or, given the loaded graph's `schema`, the graph makes the field moot
  (`unread_for_graph`), and `value` differs from `plain`, the field's value without the override (a dataset
  profile's value, such as DOUBAN's score_scale=100 under an HGT baseline, is nobody's mistake). None otherwise."""
  name = config.get("model_name", "hgnn_ima")
  named = name_set_fields(name)
  if path in named:
    if normalise(value) == normalise(named[path]):
      return None
    return (
        f"is set by model_name={name} ({path.split('.', 1)[1]}={format_value(named[path])}) in place of the config's",
        f"train --model=hgnn_ima with {config_flag(path, value)}, or drop it",
    )
  unread = unread_setting_fields(config).get(path)
  if unread is None and schema is not None:
    unread = unread_for_graph(config, schema).get(path)
  return None if unread is None or normalise(value) == normalise(plain) else unread


def unread_fields(config) -> tuple[str, ...]:
  """The config paths a run does not read: `unread_data_fields` of its dataset, `SPLIT_DRAW_FIELDS` when its
  split is 'file', `batch.<field>` for the batch fields its mode does not read (`unread_batch_fields`), and the
  model, loss and optimizer fields its model and optimizer do not read (`unread_setting_fields`)."""
  draw = () if config.get("split", "file") == "stratified" else SPLIT_DRAW_FIELDS
  batch = tuple(f"batch.{field}" for field in unread_batch_fields(config)) if "batch" in config else ()
  return unread_data_fields(config.get("dataset")) + draw + batch + tuple(unread_setting_fields(config))


def result_fields(config) -> dict:
  """The fields that decide what a run trains: the config without `RESULT_NEUTRAL` fields, without the
  fields it does not read (`unread_fields`: data_dir/features for 'synthetic', the synthetic knobs otherwise,
  the split's fractions and seed with split='file', the batch fields its batch mode ignores), and without an
  `ADDED_FIELDS` field at the value runs saved before it had."""
  d = normalise(to_dict(config))
  at_default = tuple(k for k, v in ADDED_FIELDS.items() if get_path(d, k, _MISSING) == v)
  for k in RESULT_NEUTRAL + unread_fields(d) + at_default:
    *parents, leaf = k.split(".")
    node = get_path(d, ".".join(parents), None) if parents else d
    if isinstance(node, dict):
      node.pop(leaf, None)
  return d


def leaf_differences(a, b, prefix: str = "") -> list[tuple[str, Any, Any]]:
  """(path, a's value, b's value) for every leaf that differs between two nested dicts ('<absent>' if missing)."""
  if isinstance(a, Mapping) and isinstance(b, Mapping):
    out = []
    for k in sorted(set(a) | set(b)):
      out += leaf_differences(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{prefix}{k}.")
    return out
  return [] if a == b else [(prefix[:-1], a, b)]


def without_host_paths(d: dict) -> dict:
  """`d` (a normalised config dict) without the fields that may differ between the hosts of one run: data_dir and
  a dataset path (each host may mount the data elsewhere)."""
  d = dict(d)
  d.pop("data_dir", None)
  if isinstance(d.get("dataset"), str) and d["dataset"].lower() not in DATASET_NAMES:
    d.pop("dataset")
  return d


def config_fingerprint(config) -> str:
  """A short hash of `result_fields(config)` without host paths: equal for two configs that train the same run,
  on every process of it."""
  import hashlib

  text = json.dumps(without_host_paths(result_fields(config)), sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def diff_configs(saved, asked) -> list[str]:
  """'field: <saved> (saved) vs <asked> (asked)' for every leaf that differs between two nested dicts."""
  return [f"{p}: {format_value(s)} (saved) vs {format_value(a)} (asked)" for p, s, a in leaf_differences(saved, asked)]


# --- command-line flags ----------------------------------------------------------------------
# absl's own `app.parse_flags_with_usage` prints "FATAL Flags parsing error: ..." and a second line; the commands
# (experiments' scripts, data_utils' check and download) give its errors in this module's one-line form.


def parse_flags(argv: list[str], flags_hint: str = "", positional: bool = True) -> list[str]:
  """`flags.FLAGS(argv)`; a flag absl cannot parse exits 1 with `error: <why>. Fix: <what to give>`.

  flags_hint: appended to the fix for an unknown flag (e.g. how config fields are given).
  positional: False for a command that takes none, so that `train.py douban` (for --dataset=douban) is refused
    rather than ignored.
  """
  try:
    rest = flags.FLAGS(argv)
    if not positional and len(rest) > 1:
      sys.exit(
          f"error: unexpected argument(s) {' '.join(rest[1:])!r}: this command takes flags only. "
          f"Fix: give each as --name=value (--help lists them{flags_hint})"
      )
    return rest
  except flags.UnrecognizedFlagError as e:
    why = str(e).replace(" ?", "?").rstrip(". ")  # absl's "Did you mean: seeds ?"
    sys.exit(f"error: {why}{' ' if why.endswith('?') else '. '}Fix: use a flag that --help lists{flags_hint}")
  except flags.Error as e:  # a value of the wrong type or outside an enum, a missing value or required flag
    required = re.match(r"flag --(\w+)=None: Flag --\w+ must have a value other than None", str(e))
    if required:  # absl's words for a required flag left out
      bare = [a for a in argv[1:] if not a.startswith("-")]
      hint = f" ({bare[0]!r} alone is not a flag: write --{required[1]}={bare[0]})" if bare else ""
      sys.exit(f"error: --{required[1]} is required{hint}. Fix: give --{required[1]}=<value> (--help lists the values)")
    sys.exit(f"error: {str(e).rstrip('. ')}. Fix: give the flag a value of its type (--help lists the flags)")


def one_line_usage_errors(main):
  """`main` whose `app.UsageError` is one line on stderr (`error: <message>`), exit code 1.

  absl prints the script's whole --help before such a message, which buries the one line that says
  what to fix; --help still prints it.
  """

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except app.UsageError as e:
      sys.exit(f"error: {e}")

  return wrapped
