"""The HGNN-IMA propagation layer (and plain HGT as its one-attention special case), Eqs. 2–11.

`HGNNIMALayer.__call__` reads top to bottom like PyG's `HGTConv`: K/V per node type → slot
tables (the queries times each relation's matrices) → Eq. 2 scores → attention (Eqs. 3–9; the
Table 4 variant is one function of `NESTED`) → Eq. 10 aggregation → mean over relations → Eq. 11
update. The equations are functions of `attention`; the edge layout (segments, table rows) is
`edge_layout`.

Layout, chosen for speed on XLA:CPU (measurements in benchmarks/README.md):

* node states are a tuple with one (N_t, M, d) array per node type (M modality channels), so a
  type-specific linear is one matrix product per type and no node array is sliced or
  concatenated by type inside a layer; K and V of a type come from one product, and Q is never
  formed: W^q is folded into the slot tables' matrices, h (W^q W_rᵀ) (see `slot_tables`);
* relation-specific per-head matrices are applied once per *slot* or *sender*, never per edge
  (a matrix per edge would cost E/N times more): W^att and U^m on the receivers' side,
  <Q, K W> = <Q Wᵀ, K>, as block-diagonal products whose outputs already are the slot tables
  the edges gather by `seg` (sorted), while the senders' keys and values are gathered as they
  are; W^msg after each slot's sum over its edges, (Σ β V) W, folded into Eq. 11's matrix
  (`node_update`; with `remat`, a sender-side table, see `HGNNIMALayer.messages`). Per-head
  batched products would need transposes, which XLA fuses into the gathers (per-head sums
  written out were faster alone but slower in the step: benchmarks/README.md, *Memory per edge*);
* the edges read the tables through `edge_ops`, whose backward passes keep no per-edge
  copies of them;
* per-edge arrays of several channels (E, M, H) are split into (E, H) channels wherever an
  exp or a reduction over the channels runs (`ops.per_channel`, `ops.channels`, `ops.softmax`):
  XLA:CPU vectorises those fusions for (E, H) operands and not for (E, 2, H) or (E, 3, H);
* the skip term of the update is a matrix product (see `node_update`), which keeps XLA from
  recomputing the gradient chain through all later layers in several places;
* the node-side products (K/V, slot tables, Eq. 11) are `ops.linear`, whose weight gradient
  transposes the layer's input rather than the incoming gradient (the LayerNorm's backward).

Parameters of one layer (T node types, R relations, M channels, H heads, d = H·d_k):
  k_kernel, q_kernel, v_kernel, a_kernel: (T, d, d), used as x @ kernel + bias
  k_bias, q_bias, v_bias, a_bias: (T, d)
  skip: (T,)  ln_scale, ln_bias: (T, d)
  w_att, w_msg: (R, H, d_k, d_k), used as row-vector @ matrix per head
  mu: (R, H)
  u_modal: (M, R, H, d_k, d_k), or (M', M, R, H, d_k, d_k) for `+inf`;
    absent for HGT and the `-cross` / `-adapt` ablations (they have no λ).
Heads split d head-major: feature h·d_k + c is head h, component c.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from hgnn_ima_jax import attention as att
from hgnn_ima_jax import edge_ops
from hgnn_ima_jax.choices import CHOICES
from hgnn_ima_jax.dropout import Dropout
from hgnn_ima_jax.edge_layout import (
    EdgeIndex,
    num_slots,
    receiver_groups,
    sender_groups,
    slot_offsets,
    slot_table_layout,
)
from hgnn_ima_jax.graph import Schema
from hgnn_ima_jax.ops import linear, segment_mean, torch_linear_init, torch_xavier_uniform_4d, uniform_init
from hgnn_ima_jax.options import LayerOptions

VARIANTS = CHOICES["model.variant"]


# --- small linear-algebra helpers --------------------------------------------------------


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float = 1e-5) -> jax.Array:
  """LayerNorm over the last axis (torch's eps 1e-5; Flax defaults to 1e-6)."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps) * scale + bias


def per_head(x: jax.Array, heads: int) -> jax.Array:
  """(..., d) → (..., H, d_k), head-major (a free reshape)."""
  return x.reshape(x.shape[:-1] + (heads, x.shape[-1] // heads))


def head_block_diag(w: jax.Array) -> jax.Array:
  """Per-head matrices (..., H, d_k, d_k) → block-diagonal (..., d, d) acting on head-major features."""
  heads, dk = w.shape[-3], w.shape[-1]
  blocks = jnp.einsum("...hce,hg->...hcge", w, jnp.eye(heads, dtype=w.dtype))
  return blocks.reshape(w.shape[:-3] + (heads * dk, heads * dk))


def channel_block_diag(mats: jax.Array) -> jax.Array:
  """One (a, b) matrix per channel, (M, a, b) → (M·a, M·b) with channel m's block on the diagonal."""
  m, a, b = mats.shape
  return jnp.einsum("mab,mn->manb", mats, jnp.eye(m, dtype=mats.dtype)).reshape(m * a, m * b)


def _prefixes(xs: Sequence[jax.Array], counts: Sequence[int]) -> list[jax.Array]:
  """The first counts[t] rows of each type's array (the array itself when it has no more)."""
  return [x if x.shape[0] == n else x[:n] for x, n in zip(xs, counts)]


# --- Eq. 11 and the mean over relations ---------------------------------------------------


def node_update(
    h: jax.Array,
    msg: tuple[jax.Array, jax.Array | None] | None,
    *,
    form: str,
    a_kernel: jax.Array,
    a_bias: jax.Array,
    skip: jax.Array | None = None,
    ln_scale: jax.Array | None = None,
    ln_bias: jax.Array | None = None,
) -> jax.Array:
  """Eq. 11 for one node type (before dropout): h (N, M, d) previous states, msg = (x, w) the aggregated messages.

  The messages are t = x @ w (`relation_mean`; w None: t = x; msg None: a type without in-relations,
  t = 0). form 'code': LN(σ(skip)·A(t) + (1 − σ(skip))·h), with x @ (w @ σ(skip)·A) as ONE product of
  x (w is W^msg of each relation, so t itself is never formed); 'paper': A(σ(t)) + h.

  The skip term w·h is written as h @ (w·I). Why: as a plain product, the gradient of every
  layer's input is an elementwise chain through all later layers' skips, LayerNorms and
  dropouts, which XLA:CPU fuses into (and recomputes in) each transposed copy that the weight
  gradients read. A matrix product's gradient is materialised, which cuts the chain at every
  layer; it costs N·d² flops.
  """
  eye = jnp.eye(h.shape[-1], dtype=h.dtype)
  if form == "code":
    a = jax.nn.sigmoid(skip)
    u = a * a_bias + linear(h, (1.0 - a) * eye)
    if msg is not None:
      x, w = msg
      u = u + linear(x, a * a_kernel if w is None else w @ (a * a_kernel))
    return layer_norm(u, ln_scale, ln_bias)
  u = a_bias + linear(h, eye)
  if msg is None:
    return u + 0.5 * jnp.sum(a_kernel, axis=0)  # t = 0: σ(0) @ A
  x, w = msg
  return u + jax.nn.sigmoid(x if w is None else x @ w) @ a_kernel


def relation_mean(
    schema: Schema, agg: jax.Array, w_msg: jax.Array | None = None
) -> list[tuple[jax.Array, jax.Array | None] | None]:
  """Per node type, the mean over its relations of their slots' messages, as (x, w) with the mean = x @ w.

  With w_msg, agg (S, M, d) holds Σ_e β_e V_j per (relation, receiver) slot and W^msg_r applies
  after the sum, (Σ β V_j) W = Σ β (V_j W): x (N_t, M, |R_t|·d) holds the type's relations' slots
  side by side and w (|R_t|·d, d) their block-diagonal W^msg / |R_t| stacked, left for Eq. 11 to
  multiply into its own matrix (`node_update`: one product of x, not two). Without, agg already
  holds Σ β V_j W^msg_r: x is the mean (N_t, M, d) and w None. None for a type without
  in-relations. Zero rows (receivers without in-edges of a relation) count in the mean, as DGL's
  'mean' cross reducer.
  """
  slots, out = slot_offsets(schema), []
  for t in range(schema.num_node_types):
    n, rels = schema.num_nodes[t], schema.relations_into(t)
    if not rels:
      out.append(None)
    elif w_msg is None:
      out.append((sum(agg[slots[r] : slots[r] + n] for r in rels) / len(rels), None))
    else:
      x = jnp.concatenate([agg[slots[r] : slots[r] + n] for r in rels], axis=-1)
      out.append((x, jnp.concatenate([head_block_diag(w_msg[r]) for r in rels], axis=0) / len(rels)))
  return out


# --- the Table 4 variants of the nested attention (Eqs. 4–6) ------------------------------


class SlotTables(NamedTuple):
  """The receivers' side of Eqs. 2 and 4: relation-specific products once per (relation, receiver) slot.

  <Q_i, K_j W_r> = <Q_i W_r^T, K_j>: the relation's matrix moves to the receiver, whose
  relation an edge's slot already names, and the edges read every sender's keys as they are.
  Q_i W_r^T = h_i (W^q W_r^T) + b^q W_r^T, so the tables come from the receivers' states and Q
  itself is never formed. Each is an array, or an `edge_ops.Rebuilt` with `options.remat`;
  gathered per edge by `seg`.
  """

  att: jax.Array  # (S, M, H, d_k): Q_i W^att_r^T per head
  modal: jax.Array | None  # (S, M, H, d_k): Q^m_i U^m_r^T (Eq. 4), or None
  inf: jax.Array | None  # (S, M, M', H, d_k): Q^m_i U^{m',m}_r^T for `+inf`, or None


class EdgeContext(NamedTuple):
  """What a variant's λ may read: α, every sender's keys, the receivers' states and keys per type, the slot tables."""

  alpha: jax.Array  # (E, M, H)
  k_n: jax.Array  # (N, M, H, d_k) every sender's keys (per edge: index.senders)
  h: Sequence[jax.Array]  # per type (N_t, M, d), the receivers' states
  k: Sequence[jax.Array]
  tables: SlotTables
  index: EdgeIndex
  num_slots: int


def _modal_score(e: EdgeContext) -> jax.Array:
  """Eq. 4's s (E, M, H) from the slot table and the senders' keys."""
  return att.inter_modal_score(e.tables.modal, e.k_n, e.index.seg, e.index.senders)


def _full(layer: "HGNNIMALayer", e: EdgeContext):
  """Eqs. 4–6: λ from each neighbour's modal keys."""
  lam = att.inter_modal_attention(_modal_score(e))
  return lam, att.nested_attention(lam, e.alpha)


def _no_neighbour(layer: "HGNNIMALayer", e: EdgeContext):
  """`-nei`: λ without the neighbour — the mean of s over the in-edges, or the receiver's own keys."""
  if layer.options.nei_mode == "target":
    lam = layer.receiver_only_lambda(e.h, e.k, e.index)
  else:
    s = segment_mean(_modal_score(e), e.index.seg, e.num_slots, indices_are_sorted=True)[e.index.seg]
    lam = att.inter_modal_attention(s)
  return lam, att.nested_attention(lam, e.alpha)


def _uniform(layer: "HGNNIMALayer", e: EdgeContext):
  """`-adapt`: λ fixed at 1/M."""
  lam = jnp.full(e.alpha.shape, 1.0 / layer.num_channels, e.alpha.dtype)
  return lam, att.nested_attention(lam, e.alpha)


def _per_influenced(layer: "HGNNIMALayer", e: EdgeContext):
  """`+inf`: one λ^{m'→m} per influenced modality m, so β1 is (E, M, H)."""
  s = att.inter_modal_score(e.tables.inf, e.k_n[:, None], e.index.seg, e.index.senders)  # (E, M, M', H)
  lam = att.inter_modal_attention(jnp.swapaxes(s, 1, 2))  # (E, M', M, H)
  return lam, att.nested_attention(lam, e.alpha)


def _no_cross(layer: "HGNNIMALayer", e: EdgeContext):
  """`-cross`: no λ; each modality propagates with its own α^m (already normalised)."""
  return None, e.alpha


# variant -> (λ, β1) of Eqs. 4–6. `-align` keeps the full λ and drops Eqs. 8–9's β2.
NESTED: dict[str, Callable] = {
    "full": _full,
    "-align": _full,
    "-nei": _no_neighbour,
    "-adapt": _uniform,
    "+inf": _per_influenced,
    "-cross": _no_cross,
}


class HGNNIMALayer(nn.Module):
  """One propagation layer: HGT with nested inter-modal attention (Eqs. 2–11).

  Attributes:
    schema: the graph's static description.
    num_channels: M, the modality channels propagated side by side.
    hidden: d. heads: H.
    attention: 'ima' (nested inter-modal attention) or 'hgt' (each channel with its
      own α, as a plain HGT layer; with one channel this is HGT).
    options: `LayerOptions` (variant, score scale, Eq. 6/8/9/11 forms, dropout).
  """

  schema: Schema
  num_channels: int
  hidden: int = 64
  heads: int = 8
  attention: str = "ima"
  options: LayerOptions = LayerOptions()

  def setup(self):
    if self.hidden % self.heads:
      raise ValueError(f"hidden={self.hidden} must be divisible by heads={self.heads}")
    if self.attention not in ("ima", "hgt"):
      raise ValueError(f"attention must be 'ima' or 'hgt', got {self.attention!r}")
    if self.attention == "ima" and self.num_channels < 2:
      raise ValueError("nested inter-modal attention needs at least two modalities; use HGT for one")
    s, d, H, o = self.schema, self.hidden, self.heads, self.options
    T, R, M, dk = s.num_node_types, s.num_relations, self.num_channels, d // H
    lin = torch_linear_init(d)
    for name in ("k", "q", "v", "a"):
      setattr(self, f"{name}_kernel", self.param(f"{name}_kernel", lin, (T, d, d)))
      setattr(self, f"{name}_bias", self.param(f"{name}_bias", lin, (T, d)))
    if o.update_form == "code":
      self.skip = self.param("skip", nn.initializers.ones, (T,))
      self.ln_scale = self.param("ln_scale", nn.initializers.ones, (T, d))
      self.ln_bias = self.param("ln_bias", nn.initializers.zeros, (T, d))
    rel_shape = (R, H, dk, dk)
    self.w_att = self.param("w_att", uniform_init(torch_xavier_uniform_4d(rel_shape)), rel_shape)
    self.w_msg = self.param("w_msg", uniform_init(torch_xavier_uniform_4d(rel_shape)), rel_shape)
    self.mu = self.param("mu", nn.initializers.ones, (R, H))
    if self.learns_lambda:
      shape = (M, M, R, H, dk, dk) if o.variant == "+inf" else (M, R, H, dk, dk)
      self.u_modal = self.param("u_modal", nn.initializers.normal(1.0), shape)
    self.drop = Dropout(o.dropout)

  @property
  def learns_lambda(self) -> bool:
    return self.attention == "ima" and self.options.learns_lambda

  @property
  def score_scale(self) -> float:
    c = self.options.score_scale
    return 1.0 / math.sqrt(self.hidden // self.heads) if c is None else float(c)

  def __call__(self, hs: Sequence[jax.Array], index: EdgeIndex, *, train: bool):
    """hs: one (N_t, M, d) array per node type → (new hs, aux dict with per-edge 'alpha', 'lambda', 'beta', 'beta2').

    The new states are for the first `schema.num_nodes[t]` nodes of each type: all of hs, or a
    prefix for a trimmed layer (`models.Encoder`); K and V, the senders' side, are for all of hs.
    """
    s = self.schema
    k, v = self.keys_values(hs)
    hs_out, k_out = (_prefixes(x, s.num_nodes) for x in (hs, k))  # receivers' side
    if s.num_relations == 0:  # nothing to propagate
      aux = {"alpha": None, "beta": None, "lambda": None, "beta2": None}
      return self.update_nodes(hs_out, [None] * len(hs_out), train), aux
    beta, aux = self.attend(k, hs_out, k_out, index)
    return self.update_nodes(hs_out, self.messages(beta, v, index), train), aux  # Eq. 11

  def attend(self, k, hs_out, k_out, index: EdgeIndex):
    """Slot tables → Eq. 2 → Eqs. 3–9: (β, per-edge attention)."""
    s, H = self.schema, self.heads
    tables = self.slot_tables(hs_out)
    n_slots = num_slots(s)
    k_n = per_head(jnp.concatenate(k, axis=0), H)  # (N, M, H, d_k) every sender's keys, gathered by index.senders
    mu = self.mu[index.etype]
    g = att.inter_node_score(tables.att, k_n, mu, self.score_scale, index.seg, index.senders)  # Eq. 2
    if self.attention == "hgt":
      alpha = att.inter_node_attention(g, index.seg, n_slots)  # Eq. 3, each channel with its own
      beta, aux = alpha, {"alpha": alpha, "beta": alpha, "lambda": None, "beta2": None}
    else:
      beta, aux = self.nested_attention(g, EdgeContext(None, k_n, hs_out, k_out, tables, index, n_slots))  # Eqs. 3–9
    return beta, aux

  def messages(self, beta, v, index: EdgeIndex) -> list[tuple[jax.Array, jax.Array | None] | None]:
    """Eq. 10 and the mean over relations: per node type (x, w) with the mean x @ w (`relation_mean`).

    Without `options.remat`, W^msg_r is applied after the sum over each slot's edges, which read
    the senders' values V_j as they are (`relation_mean`). With it, the sums (S, M, d) that
    W^msg's gradient reads would be kept (one row per relation into a node, which took the remat
    step over its memory target), so the edges read a sender-side table V_j W^msg_r instead,
    rebuilt in the backward pass (`edge_ops.Rebuilt`); only the node-sized per-relation means are
    kept. Same values; benchmarks/README.md, *The receivers' side*, has both figures.
    """
    s, H, d, n_slots = self.schema, self.heads, self.hidden, num_slots(self.schema)
    if not self.options.remat:
      agg = att.aggregate_messages(beta, per_head(jnp.concatenate(v, axis=0), H), index.senders, index.seg, n_slots)
      return relation_mean(s, agg.reshape(agg.shape[:2] + (d,)), self.w_msg)
    factors = tuple(
        (v[src], self._relations_matrix(self.w_msg, rels, transpose=False)) for src, rels in sender_groups(s)
    )
    table = edge_ops.Rebuilt(functools.partial(edge_ops.product_table, (H, d // H)), factors)
    agg = att.aggregate_messages(beta, table, index.chan_rows, index.seg, n_slots)
    return relation_mean(s, agg.reshape(agg.shape[:2] + (d,)))

  def keys_values(self, hs):
    """K and V per node type, from one matrix product per type: its weight gradient then reads the input once.

    Q is not formed: the slot tables fold W^q into their matrices (`slot_tables`).
    """
    d, T = self.hidden, self.schema.num_node_types
    kernel = jnp.concatenate([self.k_kernel, self.v_kernel], axis=-1)  # (T, d, 2d)
    bias = jnp.concatenate([self.k_bias, self.v_bias], axis=-1)
    kv = [linear(hs[t], kernel[t]) + bias[t] for t in range(T)]  # (N_t, M, 2d)
    return [x[..., :d] for x in kv], [x[..., d:] for x in kv]

  def queries(self, hs) -> list[jax.Array]:
    """Q per node type (only `-nei`'s receiver-only λ reads Q itself)."""
    return [h @ self.q_kernel[t] + self.q_bias[t] for t, h in enumerate(hs)]

  def slot_tables(self, hs_out) -> SlotTables:
    """The receivers' queries times each relation's transposed per-head matrices, one row per slot.

    Q_i W_rᵀ = h_i (W^q W_rᵀ) + b^q W_rᵀ: one product of the receivers' states per receiver type,
    with W^q times its relations' matrices side by side (Eq. 2), or one per channel (Eq. 4's U^m,
    `+inf`'s U^{m',m}). W^q times a (d, |R|·d) matrix costs d²·|R|·d flops; Q itself would cost
    N·M·d² forward and twice that backward. With `options.remat` the tables are
    `edge_ops.Rebuilt`: built where the edge ops read them and rebuilt in the backward pass
    instead of kept (benchmarks/README.md, *Memory per edge*).
    """
    s, M, H, d, variant = self.schema, self.num_channels, self.heads, self.hidden, self.options.variant
    dk = d // H
    att_f, modal_f, inf_f = [], [], []  # (receivers' states, W^q·matrices, b^q·matrices) per receiver type
    for dst, rels in receiver_groups(s):
      fold = lambda mats, dst=dst: (hs_out[dst], self.q_kernel[dst] @ mats, self.q_bias[dst] @ mats)
      att_f.append(fold(self._relations_matrix(self.w_att, rels)))
      if self.learns_lambda and variant != "+inf":  # per channel m: U^m of each relation, side by side
        modal_f.append(fold(jnp.stack([self._relations_matrix(self.u_modal[m], rels) for m in range(M)])))
      if self.learns_lambda and variant == "+inf":  # per channel m: U^{m',m} of each (relation, m'), side by side
        inf_f.append(fold(jnp.stack([self._inf_matrix(m, rels) for m in range(M)])))

    def table(factors, row_shape):
      if not factors:
        return None
      build = functools.partial(edge_ops.slot_table, slot_table_layout(s), row_shape)
      return edge_ops.Rebuilt(build, tuple(factors)) if self.options.remat else build(tuple(factors))

    return SlotTables(table(att_f, (M, H, dk)), table(modal_f, (M, H, dk)), table(inf_f, (M, M, H, dk)))

  def nested_attention(self, g: jax.Array, e: EdgeContext):
    """Eqs. 3–9: α and β2 (two segment softmaxes), the variant's λ and β1, Eq. 6's softmax, Eq. 9's β."""
    o, seg, n = self.options, e.index.seg, e.num_slots
    alpha, beta2 = att.alpha_and_alignment(g, seg, n, align=o.uses_alignment, sign=o.align_sign)  # Eqs. 3, 8
    lam, beta1 = NESTED[o.variant](self, e._replace(alpha=alpha))  # Eqs. 4–6
    if o.variant != "-cross":  # -cross has no Eq. 6: α^m, already normalised, replaces its β
      beta1 = att.nested_beta(beta1, seg, n, o.beta_norm)
    softmax_alone = o.beta_norm != "paper" and o.align_off != "raw"
    beta = att.combine_attention(beta1, beta2, seg, n, o.combine, softmax_alone)  # Eq. 9
    return beta, {"alpha": alpha, "beta": beta, "lambda": lam, "beta2": beta2}

  def update_nodes(self, hs, msgs, train):
    """Eq. 11 per node type, then dropout; msgs per type (x, w) or None (`relation_mean`)."""
    o, out = self.options, []
    for t, (h, msg) in enumerate(zip(hs, msgs)):
      ln = (
          dict(skip=self.skip[t], ln_scale=self.ln_scale[t], ln_bias=self.ln_bias[t]) if o.update_form == "code" else {}
      )
      y = node_update(h, msg, form=o.update_form, a_kernel=self.a_kernel[t], a_bias=self.a_bias[t], **ln)
      out.append(self.drop(y, deterministic=not train))
    return tuple(out)

  def receiver_only_lambda(self, hs_out, k, index):
    """`-nei` with nei_mode='target': λ_i from <Q(h_i), K(h_i) U_r> of the receiver alone."""
    s, M, H = self.schema, self.num_channels, self.heads
    q, parts = self.queries(hs_out), []
    for r in range(s.num_relations):
      t = s.relation_dst(r)
      keys = (k[t].reshape(-1, M * self.hidden) @ self._modal_matrix(r)).reshape(-1, M, self.hidden)
      parts.append(att.inter_modal_score(per_head(q[t], H), per_head(keys, H)))  # (N_t, M, H) per slot
    return att.inter_modal_attention(jnp.concatenate(parts, axis=0))[index.seg]

  def _relations_matrix(self, per_relation: jax.Array, rels: Sequence[int], transpose: bool = True) -> jax.Array:
    """(d, |rels|·d): the relations' per-head matrices side by side, each block-diagonal over heads.

    Transposed by default: a row vector q times block r is then q W_r^T, the receiver's side of
    <q, k W_r> = <q W_r^T, k>; untransposed for the sender-side message table, v W_r.
    """
    t = (lambda w: jnp.swapaxes(w, -1, -2)) if transpose else (lambda w: w)
    return jnp.concatenate([head_block_diag(t(per_relation[r])) for r in rels], axis=1)

  def _modal_matrix(self, r: int) -> jax.Array:
    """(M·d, M·d): channel m's keys times U^m_r (Eq. 4), for the receiver-only λ of `-nei`."""
    return channel_block_diag(head_block_diag(self.u_modal[:, r]))

  def _inf_matrix(self, m: int, rels: Sequence[int]) -> jax.Array:
    """(d, |rels|·M'·d) for `+inf`: channel m's queries times (U^{m',m}_r)^T for each (relation, m')."""
    return jnp.concatenate([self._relations_matrix(self.u_modal[:, m, r], range(self.num_channels)) for r in rels], 1)
