"""Which part of a run reads which config field (JAX-free).

A value given for a field the run does not read would be ignored, so the checks refuse it and comparing two runs
leaves it out (`config_compare.result_fields`). By dataset (`unread_data_fields`), batch mode
(`unread_batch_fields`), model and HGNN-IMA variant (`unread_model_fields`), optimizer (`unread_optimizer_fields`)
and, once it has loaded, the graph (`unread_for_graph`); `unread_fields` is a run's whole set, and
`name_set_fields` the fields a Table 4 model name sets in place of the config's. The scripts check each --config
override against these (`ignored_override`), since only they know which values were given rather than taken from
a profile.

Apart from the checks (`config_validation`): the comparisons and the scripts read these tables without checking
anything, and the checks read them too (`ignored_override`, `unread_batch_fields`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hgnn_ima_jax.choices import ABLATION_OVERRIDES, DATASET_NAMES, MODEL_NAMES, SCALED_SYNTHETIC, SPLIT_DRAW_FIELDS
from hgnn_ima_jax.config_values import config_flag, format_value, normalise
from hgnn_ima_jax.options import BATCH_FIELDS_READ, BatchSettings


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


def unread_batch_fields(config) -> tuple[str, ...]:
  """The `config.batch` fields its mode does not read (`options.BATCH_FIELDS_READ`), `mode` aside; nor
  `eval_chunk` with `eval=sampled` (the layer-wise chunks' size: sampled evaluation has none)."""
  batch = config.get("batch") or {}
  reads = BATCH_FIELDS_READ.get(batch.get("mode", "full"), ())
  if batch.get("eval") == "sampled":
    reads = tuple(f for f in reads if f != "eval_chunk")
  return tuple(f.name for f in dataclasses.fields(BatchSettings) if f.name != "mode" and f.name not in reads)


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
