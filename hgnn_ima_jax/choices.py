"""The tables of what each config field may be, and the names the project knows (pure data, JAX-free).

* `CHOICES`: the allowed values of every string option. The model, layer, attention, training and data modules
  check their fields against these same tuples.
* `NUMBERS` (with `Number`): integer and real fields with their ranges (every real must also be finite).
* `BOOLS`: fields that must be True or False; `OTHER_FIELDS` and `DATA_LAYER_GROUPS`: the fields and groups no
  table holds, checked where they are read.
* `MODEL_NAMES` and the Table 4 `ABLATION_OVERRIDES`; `DATASET_NAMES` (the names `data_utils.load_dataset` knows:
  `PAPER_DATASET_NAMES`, 'synthetic' and `SCALED_SYNTHETIC`) and `DATA_DIR_ENV`.
* What comparing two configs leaves out (`RESULT_NEUTRAL`, `ADDED_FIELDS`, `SPLIT_DRAW_FIELDS`).

This module imports nothing from the project: the data layer, `options`, the model and training modules and the
config checks (`config_validation`) all read these tables, so it sits below every one of them and none of them
pulls another in by reading a table.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Iterable

PAPER_DATASET_NAMES = ("douban", "imdb", "amazon", "amazon1", "amazon2")  # the paper's graphs (its Table 2)

# Table 4 ablations: suffixes of the model name 'hgnn_ima' -> (model field overrides, loss overrides). The name's
# values replace the config's (`models.build_model`, `train.resolve_config`).
ABLATION_OVERRIDES: dict[str, tuple[dict, dict]] = {
    "-cross": ({"variant": "-cross"}, {}),
    "-adapt": ({"variant": "-adapt"}, {}),
    "+inf": ({"variant": "+inf"}, {}),
    "-nei": ({"variant": "-nei"}, {}),
    "-align": ({"variant": "-align"}, {}),
    "-L_att": ({}, {"att_weight": 0.0}),
    "-L_ind": ({}, {"ind_loss": False}),
}
ABLATIONS = tuple(ABLATION_OVERRIDES)
MODEL_NAMES = ("hgnn_ima", "hgt", "hgt_early", "hgt_late") + tuple(f"hgnn_ima{a}" for a in ABLATIONS)

# The AMAZON-1-like synthetic graph at 1x, 4x and 16x (data_utils.synthetic.make_scaled_synthetic builds them).
SCALED_SYNTHETIC = ("synthetic_amazon1", "synthetic_amazon1x4", "synthetic10m")
DATASET_NAMES = PAPER_DATASET_NAMES + ("synthetic",) + SCALED_SYNTHETIC

CHOICES: dict[str, tuple[str, ...]] = {
    "model_name": MODEL_NAMES,
    "protocol": ("code", "paper"),
    "features": ("real", "generated"),
    "missing_fill": ("code", "text", "zeros"),
    "split": ("file", "stratified"),
    "selection_metric": ("macro_f1", "micro_f1", "paper_rule"),
    "model.projection": ("shared", "per_channel"),
    "model.input_activation": ("tanh", "linear"),
    "model.variant": ("full", "-cross", "-adapt", "+inf", "-nei", "-align"),
    "model.align_sign": ("code", "paper"),
    "model.combine": ("mul", "add", "renorm"),
    "model.beta_norm": ("code", "paper"),
    "model.nei_mode": ("mean", "target"),
    "model.update_form": ("code", "paper"),
    "model.fusion_form": ("code", "paper"),
    "model.latt_norm": ("code_mean", "paper_sum"),
    "model.align_off": ("softmax", "raw"),
    "optimizer.name": ("adamw", "adam"),
    "optimizer.schedule": ("onecycle", "constant"),
    "early_stopping.rule": ("val_loss", "paper"),
    "batch.mode": ("full", "neighbor", "hgt"),  # full batch, or sampled mini-batches (hgnn_ima_jax.minibatch)
    "batch.eval": ("layerwise", "sampled"),
}


def _num(x: float) -> str:
  return str(int(x)) if float(x).is_integer() else str(x)


@dataclasses.dataclass(frozen=True)
class Number:
  """A numeric field: integer or real, lower/upper bound (None: unbounded), open or closed ends."""

  integer: bool = False
  lo: float | None = None
  hi: float | None = None
  lo_open: bool = False
  hi_open: bool = False
  optional: bool = False  # None is allowed (the code then uses its default)

  def describe(self) -> str:
    what = "an integer" if self.integer else "a finite number"
    if self.lo is not None and self.hi is not None:
      return f"{what} in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
    if self.lo is not None:
      return f"{what} {'>' if self.lo_open else '>='} {_num(self.lo)}"
    return what

  def admits(self, x: float) -> bool:
    if self.lo is not None and (x < self.lo or (self.lo_open and x == self.lo)):
      return False
    return not (self.hi is not None and (x > self.hi or (self.hi_open and x == self.hi)))


COUNT = Number(integer=True, lo=1)
RATE = Number(lo=0.0, hi=1.0, hi_open=True)  # dropout, Adam's betas, momenta
POSITIVE = Number(lo=0.0, lo_open=True)

NUMBERS: dict[str, Number] = {
    "num_epochs": COUNT,
    "checkpoint_every": COUNT,
    "seed_batch": Number(integer=True, lo=-1),  # -1 = auto
    "feature_seed": Number(integer=True, lo=0),
    "split_seed": Number(integer=True, lo=0),
    "model.hidden": COUNT,
    "model.heads": COUNT,
    "model.num_layers": Number(integer=True, lo=0),  # K = 0: no propagation (Figure 3's first point)
    "model.dropout": RATE,
    "model.fusion_input_dropout": RATE,
    "model.fusion_score_dropout": RATE,
    "model.score_scale": dataclasses.replace(POSITIVE, optional=True),
    "model.baseline_score_scale": dataclasses.replace(POSITIVE, optional=True),
    "model.baseline_hidden": dataclasses.replace(COUNT, optional=True),
    "optimizer.learning_rate": POSITIVE,
    "optimizer.weight_decay": Number(lo=0.0),
    "optimizer.b1": RATE,
    "optimizer.b2": RATE,
    "optimizer.eps": POSITIVE,
    "optimizer.onecycle_total_steps": COUNT,
    "optimizer.onecycle_pct_start": Number(lo=0.0, hi=1.0, lo_open=True, hi_open=True),
    "optimizer.onecycle_div_factor": POSITIVE,
    "optimizer.onecycle_final_div_factor": POSITIVE,
    "optimizer.onecycle_base_momentum": RATE,
    "optimizer.onecycle_max_momentum": RATE,
    "loss.att_weight": Number(lo=0.0),
    "early_stopping.patience": COUNT,
    "batch.size": COUNT,
    "batch.num_iterations": Number(integer=True, lo=0),  # 0 = one per layer
    "batch.buckets": COUNT,
    "batch.prefetch": Number(integer=True, lo=0),
    "batch.seed": Number(integer=True, lo=0),
    "batch.eval_every": COUNT,
    "batch.eval_chunk": Number(integer=True, lo=0),  # 0: automatic
    "batch.parts": COUNT,  # sub-graphs per global batch (hgnn_ima_jax.distributed): fixes the result
    "mesh_data": COUNT,  # devices sharing each global batch: changes the speed, not the result
}

BOOLS = (
    "model.input_batch_norm",
    "model.remat",
    "loss.ind_loss",
    "loss.val_includes_att",
    "shard_seeds",
    "batch.trim",
    "batch.drop_last",
)

# The fields no table above holds, each checked where it is read: dataset and seeds (`config_validation`), data_dir
# and split_fractions (the data layer's `check_data_config`), model.hgt_modality (the `hgt` baseline's one
# modality, `models.build_model`; default: the graph's first). `config_validation.known_fields` adds these to the
# tables' fields and to `options.LayerOptions`' (model.*) and `options.BatchSettings`' (batch.*).
OTHER_FIELDS = ("dataset", "data_dir", "seeds", "split_fractions", "model.hgt_modality")
# Groups whose keys the data layer knows: config.synthetic holds `data_utils.synthetic.SyntheticConfig`'s knobs,
# which `data_utils.check_data_config` checks (the config checks import no data code).
DATA_LAYER_GROUPS = ("synthetic",)

DATA_DIR_ENV = "HGNN_IMA_DATA_DIR"  # where the paper datasets are when config.data_dir is '' (else ./data)

# Fields that change not what is trained (bookkeeping, or how it is computed: remat and mesh_data reorder float
# sums, ~1e-7): a resumed run may change them.
RESULT_NEUTRAL = ("checkpoint_every", "batch.prefetch", "batch.eval_chunk", "mesh_data", "model.remat")

# Fields added after runs had been saved, with the value that trains as those runs did: a config.json without one
# reads as that value (`run_dir.read_config`), and `config_compare.result_fields` leaves one out at it, so that a
# run saved before the field compares equal (resume, the scripts' cell reuse, checkpoint fingerprints).
ADDED_FIELDS = {"batch.drop_last": False, "model.baseline_hidden": None}

# Read only when config.split is 'stratified' (the split is drawn); with 'file' the dataset's own split is used.
SPLIT_DRAW_FIELDS = ("split_fractions", "split_seed")


def nearest(word: str, candidates: Iterable[str]) -> str | None:
  """The candidate most like `word` (difflib's ratio, at least 0.6; a tie goes to the greater string, whatever the
  candidates' order), or None: the one "did you mean" of every misspelt-name error, so that they all agree."""
  near = difflib.get_close_matches(word, list(candidates), n=1)
  return near[0] if near else None
