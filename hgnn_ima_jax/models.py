"""HGNN-IMA and the HGT baselines as Flax (Linen) modules.

Every model takes a `jraph.GraphsTuple` laid out by `MMHN.to_graphs_tuple()` (an eager
`apply` refuses any other layout: `hgnn_ima_jax.layout`) and returns a `ModelOutput`.
Modules take typed constructor fields and never read a config; `build_model(name, schema,
**fields)` maps the names used by the scripts (`hgnn_ima`, its Table 4 ablations, `hgt`,
`hgt_early`, `hgt_late`) and the flat `config.model` fields to modules.

A padded mini-batch graph may carry `nodes['valid']` and `edges['valid']` (bool): padding
nodes are left out of BatchNorm's batch statistics and padding edges out of L_att; the layout
keeps padding edges between padding nodes, so no real node's attention or messages see them.

Parameter tree of `HGNNIMA` (names are stable; checkpoints and tests rely on them):
  params/encoder/projection/proj_<type>[_<channel>]/{kernel, bias}   Eq. 1
  params/encoder/projection/bn_<type>_<channel>/{scale, bias}        FULL only
  params/encoder/layer_<k>/...                                        see layers.py
  params/fusion/score/{kernel (d,1), bias (1,)}                       Eq. 12 (code)
  params/head/{kernel (d,C), bias (C,)}                               Eq. 15, shared by all heads
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import jraph

from hgnn_ima_jax.choices import ABLATION_OVERRIDES, MODEL_NAMES, nearest
from hgnn_ima_jax.edge_layout import edge_index
from hgnn_ima_jax.fusion import ModalityFusion, class_logits
from hgnn_ima_jax.graph import Schema
from hgnn_ima_jax.layers import HGNNIMALayer
from hgnn_ima_jax.layout import check_graph_layout
from hgnn_ima_jax.losses import attention_loss
from hgnn_ima_jax.options import LayerOptions
from hgnn_ima_jax.projection import InputProjection, dense


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


# The encoder's shape fields of `_EncoderFields`: the HGT baselines take them from config.model too.
_HGT_FIELDS = ("hidden", "heads", "num_layers", "projection", "input_batch_norm", "input_activation")


class _EncoderFields(nn.Module):
  """The fields of the encoder's shape (Eq. 1 and the K layers) and the layer options, which every model has too."""

  schema: Schema
  hidden: int = 64
  heads: int = 8
  num_layers: int = 3
  projection: str = "shared"
  input_batch_norm: bool = False
  input_activation: str = "tanh"
  options: LayerOptions = LayerOptions()


class Encoder(_EncoderFields):
  """Input projection (Eq. 1) followed by K propagation layers; one (N_t, C, d) state array per node type."""

  channels: tuple[tuple[int, ...], ...] = ()  # always given (`_EncodedModel.encoder`); a default only for field order
  attention: str = "ima"  # 'ima' or 'hgt' (see HGNNIMALayer)

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, *, train: bool):
    s = self.schema
    remat = self.options.remat
    projection = InputProjection(
        s,
        self.channels,
        self.hidden,
        self.projection,
        self.input_batch_norm,
        self.input_activation,
        recompute=remat and self.input_batch_norm,
        name="projection",
    )
    project = lambda module, features, valid: module(features, train=train, valid=valid)
    # Recomputed in the backward pass: only the features (the graph's own arrays) are kept. With
    # BatchNorm the projection does it itself, late (`nn.remat` rebuilt the (N, D) normalised inputs
    # at the start of the backward pass, alive through every layer's).
    if remat and not self.input_batch_norm:
      project = nn.remat(project, policy=jax.checkpoint_policies.nothing_saveable)
    hs = project(projection, graph.nodes["features"], graph.nodes.get("valid"))
    full_index = None
    layers_aux = []
    for k in range(self.num_layers):
      level = self.num_layers - 1 - k  # the later layers read this layer's states of nodes within hop `level`
      if level < len(s.levels):
        out_s, in_s = level_schema(s, level), level_schema(s, level + 1)
        live = graph.edges["valid"] & (graph.edges["hop"] <= level)
        index = edge_index(
            s, graph.senders, graph.receivers, len(self.channels), sender_schema=in_s, receiver_schema=out_s, live=live
        )
      else:
        if full_index is None:
          full_index = edge_index(s, graph.senders, graph.receivers, len(self.channels))
        out_s, index, live = s, full_index, None
      layer = HGNNIMALayer(
          out_s, len(self.channels), self.hidden, self.heads, self.attention, self.options, name=f"layer_{k}"
      )
      hs, aux = layer(hs, index, train=train)
      layers_aux.append(aux if live is None else _to_graph_edges(s, out_s, aux, live))
    return hs, layers_aux


def level_schema(schema: Schema, level: int) -> Schema:
  """The counts of a padded sub-graph within hop `level` (`budgets.Budget.levels`); past the last, the whole."""
  if level >= len(schema.levels):
    return schema
  nodes, edges = schema.levels[level]
  return dataclasses.replace(schema, num_nodes=nodes, num_edges=edges, levels=())


def _to_graph_edges(schema: Schema, level_s: Schema, aux: dict, live: jax.Array) -> dict:
  """A trimmed layer's per-edge attention in the graph's edge layout: zeros where it did not run, 'valid' = live."""

  def expand(x):
    if x is None:
      return None
    blocks = []
    for r in range(schema.num_relations):
      blocks.append(x[level_s.edge_slice(r)])
      blocks.append(jnp.zeros((schema.num_edges[r] - level_s.num_edges[r],) + x.shape[1:], x.dtype))
    return jnp.concatenate(blocks, axis=0)

  return {**{k: expand(v) for k, v in aux.items()}, "valid": live}


def _output(schema, hs, fused, delta, head, att_loss, layers_aux, return_embeddings, return_attention):
  target = hs[schema.target_id]
  logits, modality_logits = class_logits(head, fused, target)
  emb = None
  if return_embeddings:
    emb = {"fused": fused, "modalities": target, "nodes": jnp.concatenate(hs, axis=0), "fusion_weights": delta}
  attn = tuple(layers_aux) if return_attention else None
  return ModelOutput(logits, modality_logits, att_loss, emb, attn)


class _EncodedModel(_EncoderFields):
  """What every model is: the encoder's fields, its encoders and one forward pass.

  `__call__` is that forward pass: layout check, the subclass's `propagate`, then the shared
  head (Eq. 15) and the `ModelOutput`.
  """

  def encoder(self, channels: tuple[tuple[int, ...], ...], attention: str, name: str) -> Encoder:
    fields = {k: getattr(self, k) for k in ("schema", "options") + _HGT_FIELDS}
    return Encoder(**fields, channels=channels, attention=attention, name=name)

  @nn.compact
  def __call__(
      self,
      graph: jraph.GraphsTuple,
      *,
      train: bool = False,
      return_embeddings: bool = False,
      return_attention: bool = False,
  ) -> ModelOutput:
    s = self.schema
    check_graph_layout(s, graph)  # eager apply only: under jit the graph is abstract (checked by make_batch)
    hs, fused, delta, att_loss, layers_aux = self.propagate(s, graph, train)
    head = dense(s.num_classes, self.hidden, "head")
    return _output(s, hs, fused, delta, head, att_loss, layers_aux, return_embeddings, return_attention)

  def propagate(self, s: Schema, graph: jraph.GraphsTuple, train: bool):
    """The model's own part: (per-type states, fused target states Z, weights δ, L_att, per-layer attention)."""
    raise NotImplementedError


class _FusedModel(_EncodedModel):
  """A model whose target nodes carry several channels, fused by Eqs. 12–14."""

  fusion_form: str = "code"
  fusion_input_dropout: float = 0.6
  fusion_score_dropout: float = 0.5

  def fusion(self) -> ModalityFusion:
    return ModalityFusion(
        self.hidden, self.fusion_form, self.fusion_input_dropout, self.fusion_score_dropout, name="fusion"
    )


class HGNNIMA(_FusedModel):
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

  latt_norm: str = "code_mean"

  def propagate(self, s: Schema, graph: jraph.GraphsTuple, train: bool):
    channels = tuple((m,) for m in range(s.num_modalities))
    hs, layers_aux = self.encoder(channels, "ima", "encoder")(graph, train=train)
    fused, delta = self.fusion()(hs[s.target_id], train=train)
    # -cross and -adapt have no learnable λ (none, or fixed at 1/M): no attention loss to apply.
    loss = attention_loss(s, graph, layers_aux, self.latt_norm) if self.options.learns_lambda else jnp.zeros(())
    return hs, fused, delta, loss, layers_aux


class HGT(_EncodedModel):
  """Plain HGT (spec §8): the same layer with one attention per channel, c = 1/sqrt(d_k).

  modalities: the input modalities, concatenated into one channel (early fusion when
  there are several); None means all of the schema's modalities (HGT-early). Of `options`
  only score_scale, update_form and dropout apply.
  """

  modalities: tuple[str, ...] | None = None

  def propagate(self, s: Schema, graph: jraph.GraphsTuple, train: bool):
    mods = s.modalities if self.modalities is None else self.modalities
    channels = (tuple(s.modality_id(m) for m in mods),)
    hs, layers_aux = self.encoder(channels, "hgt", "encoder")(graph, train=train)
    target = hs[s.target_id]
    delta = jnp.ones(target.shape[:2], target.dtype)
    return hs, target[:, 0], delta, jnp.zeros(()), layers_aux


class HGTLate(_FusedModel):
  """HGT late fusion (spec §8): one independent HGT per modality, fused by modality attention."""

  def propagate(self, s: Schema, graph: jraph.GraphsTuple, train: bool):
    hs, layers_aux = [], []
    for m, mname in enumerate(s.modalities):
      h, aux = self.encoder(((m,),), "hgt", f"encoder_{mname}")(graph, train=train)
      hs.append(h)
      layers_aux.append(aux)
    # Per node type, the modality encoders' states side by side as channels: (N_t, M, d).
    hs = tuple(jnp.concatenate([h[t] for h in hs], axis=1) for t in range(s.num_node_types))
    fused, delta = self.fusion()(hs[s.target_id], train=train)
    # Per layer, stack the modality encoders' attention as channels: alpha/beta (E, M, H).
    merged = [
        {
            "alpha": jnp.concatenate([a[k]["alpha"] for a in layers_aux], axis=1),
            "beta": jnp.concatenate([a[k]["beta"] for a in layers_aux], axis=1),
            "lambda": None,
            "beta2": None,
        }
        for k in range(self.num_layers)
    ]
    return hs, fused, delta, jnp.zeros(()), merged


# --- names used by configs and scripts ------------------------------------------------------

# Table 4 name -> (model field overrides, loss overrides): the table config validation reads too.
ABLATIONS = ABLATION_OVERRIDES

_FUSION_FIELDS = ("fusion_form", "fusion_input_dropout", "fusion_score_dropout")


def split_model_name(name: str) -> tuple[str, dict, dict]:
  """'hgnn_ima-align' → ('hgnn_ima', model overrides, loss overrides)."""
  if name not in MODEL_NAMES:
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
  if name.startswith("hgnn_ima") and name != "hgnn_ima":
    model_over, loss_over = ABLATIONS[name[len("hgnn_ima") :]]
    return "hgnn_ima", dict(model_over), dict(loss_over)
  return name, {}, {}


def model_fields(name: str) -> frozenset[str]:
  """The `config.model` fields the model `name` reads: `build_model` refuses any other (`state.create_model` passes
  it these of a config, which holds every model's fields). The HGT baselines read the encoder's shape, three layer
  options and their own `baseline_*` fields; `hgt` also the Python-only `hgt_modality`, `hgt_late` the fusion's."""
  base, _, _ = split_model_name(name)
  if base == "hgnn_ima":
    own = {f.name for f in dataclasses.fields(HGNNIMA)} - {"schema", "options", "parent", "name"}
    return frozenset(own | set(LayerOptions.names()))
  reads = set(_HGT_FIELDS) | {"update_form", "dropout", "remat", "baseline_score_scale", "baseline_hidden"}
  if base == "hgt":
    reads.add("hgt_modality")
  if base == "hgt_late":
    reads |= set(_FUSION_FIELDS)
  return frozenset(reads)


def _unread_fields_error(name: str, unread: list[str]) -> ValueError:
  """One line naming the fields `name` does not read: a misspelt one gets the nearest field, HGNN-IMA's score scale
  the baselines' own."""
  reads = model_fields(name)
  every = set().union(*(model_fields(n) for n in ("hgnn_ima", "hgt", "hgt_late")))
  other = [f for f in unread if f in every]
  what = []
  if other:
    hint = " (the HGT baselines' c is baseline_score_scale)" if "score_scale" in other else ""
    what.append(f"{', '.join(other)} {'is' if len(other) == 1 else 'are'} not read by {name}{hint}")
  for field in (f for f in unread if f not in every):
    near = nearest(field, every)
    what.append(f"{field} is not a model field" + (f" (did you mean {near}?)" if near else ""))
  return ValueError(
      f"build_model({name!r}): {'; '.join(what)}. Fix: drop {', '.join(unread)}; {name} reads "
      f"{', '.join(sorted(reads))}"
  )


def build_model(name: str, schema: Schema, **fields: Any) -> nn.Module:
  """The module for a model name from flat `config.model` fields (`LayerOptions` fields among them).

  HGT baselines keep the encoder settings (width, heads, layers, projection, update_form,
  dropout) but use c = 1/sqrt(d_k) (spec §8) unless `baseline_score_scale` is given, and the width
  `baseline_hidden` when it is given (spec §8's d = 64 where HGNN-IMA's profile is wider: AMAZON-1/2).

  Raises:
    ValueError: a field the model does not read (`model_fields`), e.g. HGNN-IMA's `combine` given to an HGT
      baseline, or a misspelt one: it would have been dropped without a word.
  """
  unread = sorted(set(fields) - model_fields(name))
  if unread:
    raise _unread_fields_error(name, unread)
  base, model_over, _ = split_model_name(name)
  fields = {**fields, **model_over}
  if base == "hgnn_ima":  # the baselines' own fields were refused above
    options, rest = LayerOptions.split(fields)
    return HGNNIMA(schema, options=options, **rest)
  baseline_scale = fields.pop("baseline_score_scale", None)
  baseline_hidden = fields.pop("baseline_hidden", None)
  hgt_modality = fields.pop("hgt_modality", schema.modalities[0])
  options, rest = LayerOptions.split(fields)
  common = {k: rest[k] for k in _HGT_FIELDS if k in rest}
  if baseline_hidden is not None:
    common["hidden"] = int(baseline_hidden)
  common["options"] = LayerOptions(
      score_scale=baseline_scale, update_form=options.update_form, dropout=options.dropout, remat=options.remat
  )
  if base == "hgt":
    return HGT(schema, modalities=(hgt_modality,), **common)
  if base == "hgt_early":
    return HGT(schema, modalities=None, **common)
  return HGTLate(schema, **common, **{k: rest[k] for k in _FUSION_FIELDS if k in rest})
