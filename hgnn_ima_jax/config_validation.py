"""Checks a run config before any work starts (JAX-free).

`validate_config(config)` checks every field of a resolved config (a `ConfigDict` or a nested
dict, as `experiments/configs` builds it) and raises `ConfigError`, one line:
`config.<field>=<value>: <problem>. Fix: <fix>`. `train.train_and_evaluate` calls it before it
builds anything or creates the workdir; the experiment scripts call it on every cell up front.

The rules are tables (`hgnn_ima_jax.choices`), so that one place says what a field may be; this module applies them:

* `known_fields`: every field path the project reads (the tables, `OTHER_FIELDS`, and the model's and
  batch's dataclasses); a path outside it (`config.epochs`, `config.model.hiden`) is refused with the nearest.
* `CHOICES`, `NUMBERS` and `BOOLS`: each field's allowed values, range or type.
* `_cross_checks`: the few rules that involve two fields (hidden and heads, ...).
* A batch field its mode does not read is refused (`field_usage.unread_batch_fields`), as is a model variant
  that the model name overrides (`field_usage.ignored_override`).
* Once the graph has loaded: `check_model_for_graph` and `check_batch_for_graph`; for a new run,
  `check_fanouts_per_layer`.

The synthetic dataset's knobs are checked by the data layer (`data_utils.check_data_config`, with
`SyntheticConfig`'s own rules), which the scripts call after this; this module imports no data
code. Fields absent from the config are not checked (the code's defaults apply to them).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, Mapping

from hgnn_ima_jax.choices import (
    BOOLS,
    CHOICES,
    DATA_LAYER_GROUPS,
    DATASET_NAMES,
    NUMBERS,
    OTHER_FIELDS,
    Number,
    nearest,
)
from hgnn_ima_jax.config_paths import read_as_path
from hgnn_ima_jax.config_values import MISSING, format_value, get_path, normalise, to_dict
from hgnn_ima_jax.field_usage import ignored_override, unread_batch_fields
from hgnn_ima_jax.graph_checks import names_problem
from hgnn_ima_jax.options import BATCH_FIELDS_READ, BatchSettings, LayerOptions


class ConfigError(ValueError):
  """A config field has a value the code cannot run. `str(err)` is one line: field, value, problem, fix."""

  def __init__(self, field: str, value: Any, problem: str, fix: str):
    self.field, self.value, self.problem, self.fix = field, value, problem, fix
    super().__init__(f"config.{field}={format_value(value)}: {problem}. Fix: {fix}")


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
  key = nearest(leaf, siblings)
  near = siblings[key] if key else None
  if near is None:
    anywhere = {}
    for p in sorted(known, key=lambda p: (p.count("."), p)):
      anywhere.setdefault(p.rpartition(".")[2], p)
    key = nearest(leaf, anywhere)
    near = anywhere[key] if key else None
  if near:
    fix = f"did you mean {near}? ({FIELDS_LISTED})"
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
  num_samples = get_path(d, "batch.num_samples", MISSING)
  if num_samples is not MISSING:
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
    elif _is_int(f) and f == 0:  # the samplers take it (no edge at that hop); a training run would learn nothing there
      return f"hop {h + 1} is 0 (no in-edge of any relation: that layer would see no neighbour; a dict skips one)"
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
      if field == "eval_chunk" and mode in readers:  # read by the mode, not by its sampled evaluation
        raise ConfigError(
            "batch.eval_chunk",
            batch[field],
            "is not read with batch.eval=sampled: it sizes the chunks of layer-wise evaluation",
            "drop it, or use --config.batch.eval=layerwise with it",
        )
      if mode == "full":
        alt = f" (or {readers[1]})" if len(readers) > 1 else ""
        fix = f"add --config.batch.mode={readers[0]}{alt} to train on sampled mini-batches"
      else:
        fix = f"it is read with batch.mode={' or '.join(readers)}: switch to that"
      raise ConfigError(f"batch.{field}", batch[field], f"is not read with batch.mode={mode}", f"{fix}, or drop it")


def _check_dataset(dataset) -> None:
  """A known name, or something `load_dataset` reads as a path (the same rule, so both agree)."""
  if not isinstance(dataset, str) or not dataset.strip():
    raise ConfigError("dataset", dataset, "is empty", "give a dataset name (e.g. synthetic, douban) or a path")
  if dataset.lower() in DATASET_NAMES or read_as_path(dataset):
    return
  if not os.path.exists(dataset):
    near = nearest(dataset.lower(), DATASET_NAMES)
    raise ConfigError(
        "dataset",
        dataset,
        "is neither a known dataset nor an existing path",
        (f"did you mean {near}? Otherwise use" if near else "use")
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
    if value is not MISSING:
      _check_choice(field, value)
  for field, rule in NUMBERS.items():
    value = get_path(d, field)
    if value is not MISSING:
      _check_number(field, rule, value)
  for field in BOOLS:
    value = get_path(d, field)
    if value is not MISSING and not isinstance(value, bool):
      raise ConfigError(field, value, "is not a boolean", "use True or False")
  if "seeds" in d:
    _check_seeds(d["seeds"])
  _cross_checks(d)
