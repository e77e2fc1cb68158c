"""Every hyperparameter with the authors'-code defaults (MISS profile, spec §1 and §4).

Dataset files in this folder change what differs per dataset; `experiments.configs.get_config`
combines them with a protocol. Override anything with `--config.<field>=<value>`.
"""

import dataclasses
import typing

import ml_collections
from ml_collections import config_dict

from hgnn_ima_jax.data_utils import splits
from hgnn_ima_jax.data_utils.synthetic import SyntheticConfig
from hgnn_ima_jax.options import BatchSettings, LayerOptions

_SKIP_SYNTHETIC = ("hubs", "item_relations")  # structured specs: set them from Python, not flags


def optional_number():
  """A number field that may be None (the code's default), settable back to None from the command line.

  Typed `object`, ml_collections reads `--config.<field>=None` as None, and 100 or 0.5 as numbers; a
  `float` placeholder accepted no None there, so the DOUBAN profile's score_scale=100 could not be undone.
  A value of another kind (a word) is refused by config_validation, which checks these fields.
  """
  return config_dict.placeholder(object)


def layer_option_fields() -> dict:
  """The layer's options (`LayerOptions`, declared once) with their defaults, as `config.model` fields."""
  fields = dataclasses.asdict(LayerOptions())
  fields["score_scale"] = optional_number()  # None = 1/sqrt(d_k); the MISS code uses 100
  return fields


def synthetic_fields() -> ml_collections.ConfigDict:
  """SyntheticConfig's knobs as config fields, so `--config.synthetic.<knob>=` works."""
  hints = typing.get_type_hints(SyntheticConfig)
  out = ml_collections.ConfigDict()
  for f in dataclasses.fields(SyntheticConfig):
    if f.name in _SKIP_SYNTHETIC:
      continue
    if f.default is None:
      base = [a for a in typing.get_args(hints[f.name]) if a is not type(None)][0]
      out[f.name] = config_dict.placeholder(typing.get_origin(base) or base)
    else:
      out[f.name] = f.default
  return out


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # Data.
  c.dataset = "synthetic"
  c.data_dir = ""  # '' = $HGNN_IMA_DATA_DIR or ./data
  c.features = "real"  # 'generated' = explicit opt-in for feature files that are not available
  c.missing_fill = "code"  # 'code' (per dataset) | 'text' | 'zeros'
  c.feature_seed = 0
  # Train/val/test split: 'file' (the dataset's published split, or the generator's) | 'stratified'
  # (redrawn per class with `split_fractions`, seeded by `split_seed`; one split for every seed).
  c.split = "file"
  c.split_fractions = splits.DEFAULT_FRACTIONS
  c.split_seed = splits.DEFAULT_SEED
  c.synthetic = synthetic_fields()  # data_utils.synthetic.SyntheticConfig knobs

  # Model (fields of hgnn_ima_jax.models.HGNNIMA; baselines take the ones they have).
  c.model_name = "hgnn_ima"
  c.model = ml_collections.ConfigDict(
      dict(
          hidden=64,
          heads=8,
          num_layers=3,
          projection="shared",  # MISS: one tanh(Linear) per node type shared by the modalities
          input_batch_norm=False,
          input_activation="tanh",
          **layer_option_fields(),  # variant, score_scale, align_sign, combine, ... (hgnn_ima_jax.options)
          fusion_form="code",
          fusion_input_dropout=0.6,
          fusion_score_dropout=0.5,
          latt_norm="code_mean",
          baseline_score_scale=optional_number(),  # HGT baselines: None = 1/sqrt(d_k)
          baseline_hidden=optional_number(),  # HGT baselines' width d: None = model.hidden (spec §8: 64)
      )
  )

  # Optimisation (one full-batch step per epoch).
  c.protocol = "code"
  c.optimizer = ml_collections.ConfigDict(
      dict(
          name="adamw",
          learning_rate=1e-3,
          weight_decay=5e-3,
          b1=0.9,
          b2=0.999,
          eps=1e-8,
          schedule="onecycle",
          onecycle_total_steps=1000,
          onecycle_pct_start=0.05,
          onecycle_div_factor=25.0,
          onecycle_final_div_factor=1e4,
          onecycle_base_momentum=0.85,
          onecycle_max_momentum=0.95,
      )
  )
  c.num_epochs = 100
  c.loss = ml_collections.ConfigDict(dict(ind_loss=False, att_weight=1.0, val_includes_att=True))
  c.early_stopping = ml_collections.ConfigDict(dict(rule="val_loss", patience=100))
  c.selection_metric = "macro_f1"  # 'macro_f1' | 'micro_f1' | 'paper_rule'

  # Mini-batches (hgnn_ima_jax.minibatch): 'full' is one full-graph step per epoch, as the authors' code.
  c.batch = ml_collections.ConfigDict(dataclasses.asdict(BatchSettings()))  # the fields' meanings: options.py
  # an int or a dict per node type: typed `object`, so that --config.batch.num_samples="{'movie': 64}" is taken
  c.batch.num_samples = config_dict.FieldReference(BatchSettings().num_samples, field_type=object)

  # Runs.
  c.seeds = (0,)
  c.checkpoint_every = 10
  c.shard_seeds = True
  # Devices that share each global batch (a divisor of batch.parts); the other devices split the seeds.
  # docs/distributed.md. Changes the speed only: a run may resume with another value.
  c.mesh_data = 1
  # Seeds advanced together by one vmap: 0 = all; k = k at a time, the groups looping inside the
  # same compiled program (lax.map); -1 = 1 on CPU (faster and leaner there), 0 on GPU/TPU.
  c.seed_batch = -1
  return c
