"""HGNN-IMA and the HGT baselines as Flax (Linen) modules.

Every model takes a `jraph.GraphsTuple` laid out by `MMHN.to_graphs_tuple()` (an eager
`apply` refuses any other layout: `hgnn_ima_jax.layout`) and returns a `ModelOutput`.
Modules take typed constructor fields and never read a config; `build_model(name, schema,
**fields)` maps the names used by the scripts (`hgnn_ima`, its Table 4 ablations, `hgt`,
`hgt_early`, `hgt_late`) to modules.

Parameter tree of `HGNNIMA` (names are stable; checkpoints and tests rely on them):
  params/encoder/projection/proj_<type>[_<channel>]/{kernel, bias}   Eq. 1
  params/encoder/projection/bn_<type>_<channel>/{scale, bias}        FULL only
  params/encoder/layer_<k>/...                                        see layers.py
  params/fusion/score/{kernel (d,1), bias (1,)}                       Eq. 12 (code)
  params/head/{kernel (d,C), bias (C,)}                               Eq. 15, shared by all heads
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import jraph

from hgnn_ima_jax import attention as att
from hgnn_ima_jax.config_validation import CHOICES, MODEL_NAMES
from hgnn_ima_jax.graph import Schema
from hgnn_ima_jax.layers import VARIANTS, HGNNIMALayer, edge_index
from hgnn_ima_jax.layout import check_graph_layout
from hgnn_ima_jax.ops import torch_linear_init


@flax.struct.dataclass
class ModelOutput:
  """What every model returns.

  logits: (N_target, C) fused logits O (Eq. 15 before the softmax).
  modality_logits: (M, N_target, C) per-modality logits O^m with the shared head (Eq. 16);
    for single-channel baselines M = 1 and this equals logits.
  att_loss: scalar L_att (Eq. 7); 0 for models without inter-modal attention.
  embeddings: on request: {'fused': (N_target, d) Z, 'modalities': (N_target, M, d),
    'nodes': (N, M, d) every node's final states, 'fusion_weights': (N_target, M) δ}.
  attention: on request: one dict per layer with per-edge 'alpha' (E, M, H), 'beta'
    ((E, H), or (E, M, H) when per modality), 'lambda' ((E, M, H), (E, M', M, H) for
    `+inf`, or None) and 'beta2' ((E, H) or None).
  """

  logits: jax.Array
  modality_logits: jax.Array
  att_loss: jax.Array
  embeddings: dict | None = None
  attention: tuple | None = None


def _dense(features: int, fan_in: int, name: str, use_bias: bool = True) -> nn.Dense:
  init = torch_linear_init(fan_in)
  return nn.Dense(features, use_bias=use_bias, kernel_init=init, bias_init=init, name=name)


class InputProjection(nn.Module):
  """Eq. 1 as the code computes it: h^{m,(0)} = act(Lin(BN(f))) per node type.

  Attributes:
    schema: static graph description.
    channels: modality ids per channel; a channel with several modalities gets their
      features concatenated (early fusion).
    hidden: d.
    mode: 'shared' — one Linear per node type for all channels (MISS profile, needs
      equal widths); 'per_channel' — one per (type, channel) (FULL profile).
    batch_norm: BatchNorm1d before the Linear (FULL profile).
    activation: 'tanh' (code) or 'linear' (paper Eq. 1).
    scalar_hidden: width-1 inputs (e.g. raw log-price) first pass an MLP(1→scalar_hidden→D)
      whose D is the widest other input of the type (the paper embeds price with an FFNN).
  """

  schema: Schema
  channels: tuple[tuple[int, ...], ...]
  hidden: int = 64
  mode: str = "shared"
  batch_norm: bool = False
  activation: str = "tanh"
  scalar_hidden: int = 64

  def channel_name(self, c: int) -> str:
    return "+".join(self.schema.modalities[m] for m in self.channels[c])

  def channel_width(self, t: int, c: int) -> int:
    return sum(self.schema.feature_dims[t][m] for m in self.channels[c])

  @nn.compact
  def __call__(self, features: dict, *, train: bool) -> tuple[jax.Array, ...]:
    """features: {modality: (N, D_m)} → one (N_t, C, d) array per node type."""
    s = self.schema
    if self.mode not in CHOICES["model.projection"]:
      raise ValueError(f"projection must be one of {CHOICES['model.projection']}, got {self.mode!r}")
    if self.activation not in CHOICES["model.input_activation"]:
      raise ValueError(f"input_activation must be one of {CHOICES['model.input_activation']}, got {self.activation!r}")
    rows = []
    for t, tname in enumerate(s.node_types):
      sl = s.node_slice(t)
      widths = [self.channel_width(t, c) for c in range(len(self.channels))]
      wide = [w for w in widths if w > 1]
      ref_width = max(wide) if wide else self.hidden
      xs = []
      for c in range(len(self.channels)):
        x = jnp.concatenate([features[s.modalities[m]][sl, : s.feature_dims[t][m]] for m in self.channels[c]], -1)
        cname = self.channel_name(c)
        if x.shape[-1] == 1 and self.scalar_hidden:
          x = nn.relu(_dense(self.scalar_hidden, 1, f"scalar_{tname}_{cname}_0")(x))
          x = _dense(ref_width, self.scalar_hidden, f"scalar_{tname}_{cname}_1")(x)
        xs.append(x)
      if self.mode == "shared":
        if len({x.shape[-1] for x in xs}) > 1:
          raise ValueError(
              f"projection='shared' (the MISS code) needs equal input widths per node type, but "
              f"{tname!r} has {dict((self.channel_name(c), x.shape[-1]) for c, x in enumerate(xs))}; "
              "use projection='per_channel'")
        if self.batch_norm:
          raise ValueError("batch_norm needs projection='per_channel' (the FULL profile)")
        lin = _dense(self.hidden, xs[0].shape[-1], f"proj_{tname}")
        ys = [lin(x) for x in xs]
      else:
        ys = []
        for c, x in enumerate(xs):
          cname = self.channel_name(c)
          if self.batch_norm:
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                             name=f"bn_{tname}_{cname}")(x)
          ys.append(_dense(self.hidden, x.shape[-1], f"proj_{tname}_{cname}")(x))
      y = jnp.stack(ys, axis=1)
      rows.append(jnp.tanh(y) if self.activation == "tanh" else y)
    return tuple(rows)


class ModalityFusion(nn.Module):
  """Eqs. 12–14: attention over modality channels, Z = Σ_m δ^m h^{(K),m}.

  form 'code': ω = tanh(Dropout_0.5(Lin_{d→1}(Dropout_0.6(X)))), δ = softmax_m ω,
  Z uses the un-dropped X. form 'paper': ω = w2 · tanh(W1 h) + b2 (Eq. 12).
  """

  hidden: int = 64
  form: str = "code"
  input_dropout: float = 0.6
  score_dropout: float = 0.5

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool):
    """x (N, M, d) → (Z (N, d), δ (N, M))."""
    if self.form == "code":
      z = nn.Dropout(self.input_dropout)(x, deterministic=not train)
      w = _dense(1, self.hidden, "score")(z)
      w = jnp.tanh(nn.Dropout(self.score_dropout)(w, deterministic=not train))[..., 0]
    elif self.form == "paper":
      w = _dense(1, self.hidden, "score_out")(jnp.tanh(_dense(self.hidden, self.hidden, "score_in", False)(x)))[..., 0]
    else:
      raise ValueError(f"fusion_form must be one of {CHOICES['model.fusion_form']}, got {self.form!r}")
    delta = att.modality_fusion_weights(w)
    return att.fuse_modalities(delta, x), delta


class Encoder(nn.Module):
  """Input projection followed by K propagation layers; returns one (N_t, C, d) state array per node type."""

  schema: Schema
  channels: tuple[tuple[int, ...], ...]
  layer: dict  # HGNNIMALayer fields other than schema/num_channels
  num_layers: int = 3
  hidden: int = 64
  projection: str = "shared"
  input_batch_norm: bool = False
  input_activation: str = "tanh"

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, *, train: bool):
    s = self.schema
    hs = InputProjection(s, self.channels, self.hidden, self.projection, self.input_batch_norm,
                         self.input_activation, name="projection")(graph.nodes["features"], train=train)
    index = edge_index(s, graph.senders, graph.receivers, len(self.channels))
    layers_aux = []
    for k in range(self.num_layers):
      layer = HGNNIMALayer(s, len(self.channels), hidden=self.hidden, name=f"layer_{k}", **dict(self.layer))
      hs, aux = layer(hs, index, train=train)
      layers_aux.append(aux)
    return hs, layers_aux


def attention_loss(schema: Schema, graph: jraph.GraphsTuple, layers_aux: Sequence[dict], norm: str) -> jax.Array:
  """Eq. 7 from presence masks: λ mass on modalities each edge's *sender* lacks.

  norm 'code_mean' (default, the code): per layer, mean over (edge, head) within each
  relation whose source type lacks a modality, averaged over those relations, then
  over layers. 'paper_sum': Σ over layers, edges and missing modalities (mean over
  heads) divided by K·|M|, as Eq. 7 prints it.
  """
  lams = [aux["lambda"] for aux in layers_aux if aux.get("lambda") is not None]
  if not lams:
    return jnp.zeros(())
  present = graph.nodes["present"]
  missing = jnp.stack([~present[m][graph.senders] for m in schema.modalities], axis=1)  # (E, M)
  per_layer = []
  for lam in lams:
    terms = att.attention_loss_terms(lam, missing)  # (E,)
    if norm == "code_mean":
      rels = [r for r in range(schema.num_relations)
              if schema.missing_modalities(schema.relation_src(r)) and schema.num_edges[r] > 0]
      if not rels:
        per_layer.append(jnp.zeros((), terms.dtype))
        continue
      per_layer.append(sum(jnp.mean(terms[schema.edge_slice(r)]) for r in rels) / len(rels))
    elif norm == "paper_sum":
      per_layer.append(jnp.sum(terms))
    else:
      raise ValueError(f"latt_norm must be one of {CHOICES['model.latt_norm']}, got {norm!r}")
  total = sum(per_layer)
  if norm == "code_mean":
    return total / len(lams)
  return total / (len(lams) * schema.num_modalities)


def _output(schema, hs, fused, delta, head, graph, att_loss, layers_aux, return_embeddings, return_attention):
  target = hs[schema.target_id]
  logits = head(fused)
  modality_logits = jnp.moveaxis(head(target), 1, 0)
  emb = None
  if return_embeddings:
    emb = {"fused": fused, "modalities": target, "nodes": jnp.concatenate(hs, axis=0), "fusion_weights": delta}
  attn = tuple(layers_aux) if return_attention else None
  return ModelOutput(logits, modality_logits, att_loss, emb, attn)


class HGNNIMA(nn.Module):
  """HGNN-IMA: HGT propagation with nested inter-modal attention, alignment modulation,
  attention loss and modality fusion (Sec. 4).

  Each equation has the authors' code's form unless a field picks the paper's
  (docs/paper_vs_code.md). The field defaults are not one of the code's dataset profiles but
  a mix: the MISS input layer (one tanh(Linear) per node type shared by the modalities, no
  BatchNorm; it needs equal feature widths) with the FULL files' and HGT's score scale
  c = 1/sqrt(d_k) (MISS multiplies by 100), Eq. 9's product, d = 64 and the code's dropouts.
  The per-dataset profiles are the configs of experiments/configs, which `train.create_model`
  builds from.
  """

  schema: Schema
  hidden: int = 64
  heads: int = 8
  num_layers: int = 3
  projection: str = "shared"
  input_batch_norm: bool = False
  input_activation: str = "tanh"
  variant: str = "full"
  score_scale: float | None = None
  align_sign: str = "code"
  combine: str = "mul"
  beta_norm: str = "code"
  align_off: str = "softmax"
  nei_mode: str = "mean"
  update: str = "code"
  dropout: float = 0.2
  fusion_form: str = "code"
  fusion_input_dropout: float = 0.6
  fusion_score_dropout: float = 0.5
  latt_norm: str = "code_mean"

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, *, train: bool = False, return_embeddings: bool = False,
               return_attention: bool = False) -> ModelOutput:
    s = self.schema
    check_graph_layout(s, graph)  # eager apply only: under jit the graph is abstract (checked by make_batch)
    channels = tuple((m,) for m in range(s.num_modalities))
    layer = dict(heads=self.heads, attention="ima", variant=self.variant, score_scale=self.score_scale,
                 align_sign=self.align_sign, combine=self.combine, beta_norm=self.beta_norm,
                 align_off=self.align_off, nei_mode=self.nei_mode, update=self.update, dropout=self.dropout)
    hs, layers_aux = Encoder(s, channels, layer, self.num_layers, self.hidden, self.projection,
                             self.input_batch_norm, self.input_activation, name="encoder")(graph, train=train)
    fused, delta = ModalityFusion(self.hidden, self.fusion_form, self.fusion_input_dropout,
                                  self.fusion_score_dropout, name="fusion")(hs[s.target_id], train=train)
    head = _dense(s.num_classes, self.hidden, "head")
    # -cross and -adapt have no learnable λ (none, or fixed at 1/M): no attention loss to apply.
    loss = (jnp.zeros(()) if self.variant in ("-cross", "-adapt")
            else attention_loss(s, graph, layers_aux, self.latt_norm))
    return _output(s, hs, fused, delta, head, graph, loss, layers_aux, return_embeddings, return_attention)


class HGT(nn.Module):
  """Plain HGT (spec §8): the same layer with one attention per channel, c = 1/sqrt(d_k).

  modalities: the input modalities, concatenated into one channel (early fusion when
  there are several); None means all of the schema's modalities (HGT-early).
  """

  schema: Schema
  modalities: tuple[str, ...] | None = None
  hidden: int = 64
  heads: int = 8
  num_layers: int = 3
  projection: str = "shared"
  input_batch_norm: bool = False
  input_activation: str = "tanh"
  score_scale: float | None = None
  update: str = "code"
  dropout: float = 0.2

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, *, train: bool = False, return_embeddings: bool = False,
               return_attention: bool = False) -> ModelOutput:
    s = self.schema
    check_graph_layout(s, graph)  # eager apply only: under jit the graph is abstract (checked by make_batch)
    mods = s.modalities if self.modalities is None else self.modalities
    channels = (tuple(s.modality_id(m) for m in mods),)
    layer = dict(heads=self.heads, attention="hgt", score_scale=self.score_scale, update=self.update,
                 dropout=self.dropout)
    hs, layers_aux = Encoder(s, channels, layer, self.num_layers, self.hidden, self.projection,
                             self.input_batch_norm, self.input_activation, name="encoder")(graph, train=train)
    target = hs[s.target_id]
    head = _dense(s.num_classes, self.hidden, "head")
    delta = jnp.ones(target.shape[:2], target.dtype)
    return _output(s, hs, target[:, 0], delta, head, graph, jnp.zeros(()), layers_aux, return_embeddings,
                   return_attention)


class HGTLate(nn.Module):
  """HGT late fusion (spec §8): one independent HGT per modality, fused by modality attention."""

  schema: Schema
  hidden: int = 64
  heads: int = 8
  num_layers: int = 3
  projection: str = "shared"
  input_batch_norm: bool = False
  input_activation: str = "tanh"
  score_scale: float | None = None
  update: str = "code"
  dropout: float = 0.2
  fusion_form: str = "code"
  fusion_input_dropout: float = 0.6
  fusion_score_dropout: float = 0.5

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, *, train: bool = False, return_embeddings: bool = False,
               return_attention: bool = False) -> ModelOutput:
    s = self.schema
    check_graph_layout(s, graph)  # eager apply only: under jit the graph is abstract (checked by make_batch)
    layer = dict(heads=self.heads, attention="hgt", score_scale=self.score_scale, update=self.update,
                 dropout=self.dropout)
    hs, layers_aux = [], []
    for m, mname in enumerate(s.modalities):
      h, aux = Encoder(s, ((m,),), layer, self.num_layers, self.hidden, self.projection, self.input_batch_norm,
                       self.input_activation, name=f"encoder_{mname}")(graph, train=train)
      hs.append(h)
      layers_aux.append(aux)
    # Per node type, the modality encoders' states side by side as channels: (N_t, M, d).
    hs = tuple(jnp.concatenate([h[t] for h in hs], axis=1) for t in range(s.num_node_types))
    fused, delta = ModalityFusion(self.hidden, self.fusion_form, self.fusion_input_dropout,
                                  self.fusion_score_dropout, name="fusion")(hs[s.target_id], train=train)
    head = _dense(s.num_classes, self.hidden, "head")
    # Per layer, stack the modality encoders' attention as channels: alpha/beta (E, M, H).
    merged = [{"alpha": jnp.concatenate([a[k]["alpha"] for a in layers_aux], axis=1),
               "beta": jnp.concatenate([a[k]["beta"] for a in layers_aux], axis=1), "lambda": None,
               "beta2": None}
              for k in range(self.num_layers)]
    return _output(s, hs, fused, delta, head, graph, jnp.zeros(()), merged, return_embeddings, return_attention)


# --- names used by configs and scripts ------------------------------------------------------

ABLATIONS = {
    # Table 4 name -> (model field overrides, loss overrides)
    "-cross": ({"variant": "-cross"}, {}),
    "-adapt": ({"variant": "-adapt"}, {}),
    "+inf": ({"variant": "+inf"}, {}),
    "-nei": ({"variant": "-nei"}, {}),
    "-align": ({"variant": "-align"}, {}),
    "-L_att": ({}, {"att_weight": 0.0}),
    "-L_ind": ({}, {"ind_loss": False}),
}

# MODEL_NAMES (config_validation's table) lists `hgnn_ima` + each of these suffixes; a test keeps the two equal.

_HGT_FIELDS = ("hidden", "heads", "num_layers", "projection", "input_batch_norm", "input_activation",
               "update", "dropout")


def split_model_name(name: str) -> tuple[str, dict, dict]:
  """'hgnn_ima-align' → ('hgnn_ima', model overrides, loss overrides)."""
  if name not in MODEL_NAMES:
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
  if name.startswith("hgnn_ima") and name != "hgnn_ima":
    model_over, loss_over = ABLATIONS[name[len("hgnn_ima"):]]
    return "hgnn_ima", dict(model_over), dict(loss_over)
  return name, {}, {}


def build_model(name: str, schema: Schema, **fields: Any) -> nn.Module:
  """The module for a model name; `fields` are HGNN-IMA fields (baselines take the ones they have).

  HGT baselines keep the encoder settings (width, heads, layers, projection, update,
  dropout) but use c = 1/sqrt(d_k) (spec §8) unless `baseline_score_scale` is given.
  """
  base, model_over, _ = split_model_name(name)
  fields = {**fields, **model_over}
  baseline_scale = fields.pop("baseline_score_scale", None)
  hgt_modality = fields.pop("hgt_modality", schema.modalities[0])
  if base == "hgnn_ima":
    return HGNNIMA(schema, **fields)
  common = {k: fields[k] for k in _HGT_FIELDS if k in fields}
  common["score_scale"] = baseline_scale
  if base == "hgt":
    return HGT(schema, modalities=(hgt_modality,), **common)
  if base == "hgt_early":
    return HGT(schema, modalities=None, **common)
  fusion = {k: fields[k] for k in ("fusion_form", "fusion_input_dropout", "fusion_score_dropout") if k in fields}
  return HGTLate(schema, **common, **fusion)
