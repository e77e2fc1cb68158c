"""The HGNN-IMA propagation layer (and plain HGT as its one-attention special case).

Layout: node states `h` are (N, M, d) — every node, every modality channel — with
node types in contiguous static slices, so type-specific linears are one matmul
per type on a static slice. Edges are grouped by relation (static slices) and
sorted by receiver inside each relation; relation-specific matrices are applied
once per *node* (K·W^att, K·U^m, V·W^msg) and the results gathered per edge, which
costs far less than a matrix per edge. Every softmax over in-edges of all
modalities, heads and the alignment term runs as one segment pass.

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

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from hgnn_ima_jax import attention as att
from hgnn_ima_jax.graph import Schema
from hgnn_ima_jax.ops import segment_mean, segment_softmax, torch_linear_init, torch_xavier_uniform_4d, uniform_init

VARIANTS = ("full", "-cross", "-adapt", "+inf", "-nei", "-align")


class EdgeIndex(NamedTuple):
  """Per-call edge indexing shared by all layers (built once by `edge_index`)."""

  src_rows: jax.Array  # (E,) row of each edge's sender in the per-relation sender tables, stacked
  receivers: jax.Array  # (E,) global receiver ids
  seg: jax.Array  # (E,) softmax segment = (relation, receiver) slot; non-decreasing
  etype: jax.Array  # (E,) relation id


def slot_offsets(schema: Schema) -> tuple[int, ...]:
  """Start of each relation's block of (relation, receiver) slots."""
  offs, acc = [], 0
  for r in range(schema.num_relations):
    offs.append(acc)
    acc += schema.num_nodes[schema.relation_dst(r)]
  return tuple(offs)


def num_slots(schema: Schema) -> int:
  return sum(schema.num_nodes[schema.relation_dst(r)] for r in range(schema.num_relations))


def source_table_offsets(schema: Schema) -> tuple[int, ...]:
  """Start of each relation's rows in the stacked sender tables (one row per sender-type node)."""
  offs, acc = [], 0
  for r in range(schema.num_relations):
    offs.append(acc)
    acc += schema.num_nodes[schema.relation_src(r)]
  return tuple(offs)


def edge_index(schema: Schema, senders: jax.Array, receivers: jax.Array) -> EdgeIndex:
  """Sender-table rows and segment ids from a graph laid out by `MMHN.to_graphs_tuple`."""
  offs, slots, rows_off = schema.node_offsets, slot_offsets(schema), source_table_offsets(schema)
  src_rows, seg, etype = [], [], []
  for r in range(schema.num_relations):
    sl = schema.edge_slice(r)
    src, dst = schema.relation_src(r), schema.relation_dst(r)
    src_rows.append(senders[sl] - offs[src] + rows_off[r])
    seg.append(receivers[sl] - offs[dst] + slots[r])
    etype.append(jnp.full((schema.num_edges[r],), r, jnp.int32))
  cat = lambda xs: jnp.concatenate(xs).astype(jnp.int32) if xs else jnp.zeros((0,), jnp.int32)
  return EdgeIndex(cat(src_rows), jnp.asarray(receivers), cat(seg), cat(etype))


def typed_linear(x: jax.Array, kernel: jax.Array, bias: jax.Array, schema: Schema) -> jax.Array:
  """Applies node type t's linear (kernel[t], bias[t]) to the rows of type t; x is (N, ..., d_in)."""
  parts = [x[schema.node_slice(t)] @ kernel[t] + bias[t] for t in range(schema.num_node_types)]
  return jnp.concatenate(parts, axis=0)


def typed_layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, schema: Schema, eps: float = 1e-5):
  """LayerNorm over the last axis with a scale/bias per node type (torch eps 1e-5)."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
  y = (x - mean) * jax.lax.rsqrt(var + eps)
  parts = [y[schema.node_slice(t)] * scale[t] + bias[t] for t in range(schema.num_node_types)]
  return jnp.concatenate(parts, axis=0)


def per_type_rows(values: jax.Array, schema: Schema) -> jax.Array:
  """Broadcasts one value per node type (T, ...) to one per node (N, ...) by static slices."""
  parts = [jnp.broadcast_to(values[t], (schema.num_nodes[t],) + values.shape[1:])
           for t in range(schema.num_node_types)]
  return jnp.concatenate(parts, axis=0)


class HGNNIMALayer(nn.Module):
  """One propagation layer: HGT with nested inter-modal attention (Eqs. 2–11).

  Attributes:
    schema: the graph's static description.
    num_channels: M, the modality channels propagated side by side.
    hidden: d. heads: H.
    attention: 'ima' (nested inter-modal attention) or 'hgt' (each channel with its
      own α, as a plain HGT layer; with one channel this is HGT).
    variant: Table 4 ablation of the nested attention (see `VARIANTS`).
    score_scale: c in Eq. 2; None means 1/sqrt(d_k).
    align_sign: 'code' (−mean over unordered pairs) or 'paper' (+sum over ordered pairs).
    combine: Eq. 9 'mul', 'add' or 'renorm' (ours: β1·β2 renormalised, see `att.combine_attention`).
    beta_norm: 'code' (β1 unnormalised before Eq. 9) or 'paper' (softmax over Σλα first, Eq. 6).
    nei_mode: for `-nei`: 'mean' (segment mean of s over neighbours) or 'target' (from the
      receiver alone: <Q(h_i), K(h_i) U>).
    update: 'code' (LN(σ(skip)·A(t) + (1−σ(skip))·h), dropout) or 'paper' (Eq. 11: A(σ(t)) + h, dropout).
    dropout: rate after the update.
  """

  schema: Schema
  num_channels: int
  hidden: int = 64
  heads: int = 8
  attention: str = "ima"
  variant: str = "full"
  score_scale: float | None = None
  align_sign: str = "code"
  combine: str = "mul"
  beta_norm: str = "code"
  nei_mode: str = "mean"
  update: str = "code"
  dropout: float = 0.2

  def setup(self):
    if self.hidden % self.heads:
      raise ValueError(f"hidden={self.hidden} must be divisible by heads={self.heads}")
    if self.attention not in ("ima", "hgt"):
      raise ValueError(f"attention must be 'ima' or 'hgt', got {self.attention!r}")
    if self.variant not in VARIANTS:
      raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
    if self.attention == "ima" and self.num_channels < 2:
      raise ValueError("nested inter-modal attention needs at least two modalities; use HGT for one")
    s, d, H = self.schema, self.hidden, self.heads
    T, R, M, dk = s.num_node_types, s.num_relations, self.num_channels, d // H
    lin = torch_linear_init(d)
    for name in ("k", "q", "v", "a"):
      setattr(self, f"{name}_kernel", self.param(f"{name}_kernel", lin, (T, d, d)))
      setattr(self, f"{name}_bias", self.param(f"{name}_bias", lin, (T, d)))
    if self.update not in ("code", "paper"):
      raise ValueError(f"update must be 'code' or 'paper', got {self.update!r}")
    if self.beta_norm not in ("code", "paper"):
      raise ValueError(f"beta_norm must be 'code' or 'paper', got {self.beta_norm!r}")
    if self.combine not in att.COMBINES:
      raise ValueError(f"combine must be one of {att.COMBINES}, got {self.combine!r}")
    if self.nei_mode not in ("mean", "target"):
      raise ValueError(f"nei_mode must be 'mean' or 'target', got {self.nei_mode!r}")
    if self.update == "code":
      self.skip = self.param("skip", nn.initializers.ones, (T,))
      self.ln_scale = self.param("ln_scale", nn.initializers.ones, (T, d))
      self.ln_bias = self.param("ln_bias", nn.initializers.zeros, (T, d))
    rel_shape = (R, H, dk, dk)
    self.w_att = self.param("w_att", uniform_init(torch_xavier_uniform_4d(rel_shape)), rel_shape)
    self.w_msg = self.param("w_msg", uniform_init(torch_xavier_uniform_4d(rel_shape)), rel_shape)
    self.mu = self.param("mu", nn.initializers.ones, (R, H))
    if self.uses_lambda_params:
      shape = (M, M, R, H, dk, dk) if self.variant == "+inf" else (M, R, H, dk, dk)
      self.u_modal = self.param("u_modal", nn.initializers.normal(1.0), shape)
    self.drop = nn.Dropout(self.dropout)

  @property
  def uses_lambda_params(self) -> bool:
    return self.attention == "ima" and self.variant not in ("-cross", "-adapt")

  def __call__(self, h: jax.Array, index: EdgeIndex, *, train: bool):
    """h (N, M, d) → (new h (N, M, d), aux dict with per-edge 'alpha', 'lambda', 'beta')."""
    s, H = self.schema, self.heads
    M, d, dk = self.num_channels, self.hidden, self.hidden // self.heads
    n_slots = num_slots(s)
    scale = 1.0 / math.sqrt(dk) if self.score_scale is None else float(self.score_scale)

    kqv_kernel = jnp.concatenate([self.k_kernel, self.q_kernel, self.v_kernel], axis=-1)
    kqv_bias = jnp.concatenate([self.k_bias, self.q_bias, self.v_bias], axis=-1)
    kqv = typed_linear(h, kqv_kernel, kqv_bias, s).reshape(h.shape[0], M, 3, H, dk)
    k, q, v = kqv[:, :, 0], kqv[:, :, 1], kqv[:, :, 2]  # (N, M, H, dk)

    # Relation-specific matrices once per sender node (not per edge); the per-relation tables
    # are stacked at node level so that one gather serves every edge of every relation.
    tables, inf_tables = [], []
    for r in range(s.num_relations):
      sl = s.node_slice(s.relation_src(r))
      ks, vs = k[sl], v[sl]
      cols = [jnp.einsum("nmhc,hcd->nmhd", ks, self.w_att[r]), jnp.einsum("nmhc,hcd->nmhd", vs, self.w_msg[r])]
      if self.uses_lambda_params and self.variant != "+inf":
        cols.append(jnp.einsum("nmhc,mhcd->nmhd", ks, self.u_modal[:, r]))
      tables.append(jnp.concatenate(cols, axis=-1))
      if self.uses_lambda_params and self.variant == "+inf":
        inf_tables.append(jnp.einsum("nahc,abhcd->nabhd", ks, self.u_modal[:, :, r]))
    src = jnp.concatenate(tables, axis=0)[index.src_rows]  # (E, M, H, 2|3 d_k)
    k_att, msg = src[..., :dk], src[..., dk:2 * dk]
    q_e = q[index.receivers]  # (E, M, H, dk)
    mu_e = self.mu[index.etype]  # (E, H)
    g = att.inter_node_score(q_e, k_att, mu_e, scale)  # (E, M, H)

    aux = {"lambda": None, "beta2": None}
    if self.attention == "hgt":
      alpha = att.inter_node_attention(g, index.seg, n_slots)
      beta = alpha  # each channel with its own attention
    else:
      beta, alpha, aux = self._nested_attention(g, q, q_e, k, src, inf_tables, index, n_slots)
    aux["alpha"], aux["beta"] = alpha, beta

    agg = att.aggregate_messages(beta, msg, index.seg, n_slots).reshape(n_slots, M, d)
    t_all = self._cross_relation_mean(agg, h.dtype)
    out = self._update(h, t_all, train)
    return out, aux

  def _nested_attention(self, g, q, q_e, k, src, inf_tables, index, n_slots):
    """Eqs. 3–9 and the Table 4 variants; returns (β, α, aux)."""
    M, dk, variant = self.num_channels, self.hidden // self.heads, self.variant
    seg = index.seg
    use_align = variant != "-align"
    logits = g
    if use_align:
      logits = jnp.concatenate([g, att.alignment_logits(g, self.align_sign)[:, None]], axis=1)
    sm = segment_softmax(logits, seg, n_slots, indices_are_sorted=True)  # α and β2 in one pass
    alpha = sm[:, :M]
    beta2 = sm[:, M] if use_align else None

    lam = None
    if variant == "-cross":
      beta1 = alpha  # each modality propagates with its own α^m
    elif variant == "-adapt":
      lam = jnp.full(alpha.shape, 1.0 / M, alpha.dtype)
      beta1 = att.nested_attention(lam, alpha)
    elif variant == "+inf":
      k_inf = jnp.concatenate(inf_tables, axis=0)[index.src_rows]  # (E, M', M, H, dk)
      s_inf = att.inter_modal_score(q_e[:, None], k_inf)  # s^{m'→m}: (E, M', M, H)
      lam = att.inter_modal_attention(s_inf)
      beta1 = att.nested_attention(lam, alpha)  # (E, M, H)
    else:
      if variant == "-nei" and self.nei_mode == "target":
        lam = self._receiver_only_lambda(q, k, index)
      else:
        s = att.inter_modal_score(q_e, src[..., 2 * dk:])  # (E, M, H)
        if variant == "-nei":
          s = segment_mean(s, seg, n_slots, indices_are_sorted=True)[seg]
        lam = att.inter_modal_attention(s)
      beta1 = att.nested_attention(lam, alpha)

    if self.beta_norm == "paper" and variant != "-cross":
      beta1 = segment_softmax(beta1, seg, n_slots, indices_are_sorted=True)
    if use_align or self.combine == "renorm":
      beta = att.combine_attention(beta1, beta2, seg, n_slots, self.combine)
    elif self.beta_norm == "paper":
      beta = beta1
    else:
      beta = segment_softmax(beta1, seg, n_slots, indices_are_sorted=True)
    return beta, alpha, {"lambda": lam, "beta2": beta2}

  def _receiver_only_lambda(self, q, k, index):
    """`-nei` with nei_mode='target': λ_i from <Q(h_i), K(h_i) U_r> of the receiver alone."""
    s = self.schema
    parts = []
    for r in range(s.num_relations):
      sl = s.node_slice(s.relation_dst(r))
      s_node = jnp.sum(q[sl] * jnp.einsum("nmhc,mhcd->nmhd", k[sl], self.u_modal[:, r]), axis=-1)
      parts.append(s_node)  # (N_dst, M, H), one per (relation, receiver) slot
    lam_slot = att.inter_modal_attention(jnp.concatenate(parts, axis=0))
    return lam_slot[index.seg]

  def _cross_relation_mean(self, agg, dtype):
    """Mean over the relations into each type; zero rows count (DGL's 'mean' cross reducer)."""
    s, slots = self.schema, slot_offsets(self.schema)
    parts = []
    for t in range(s.num_node_types):
      n, rels = s.num_nodes[t], s.relations_into(t)
      if not rels:
        parts.append(jnp.zeros((n,) + agg.shape[1:], dtype))
        continue
      parts.append(sum(agg[slots[r]:slots[r] + n] for r in rels) / len(rels))
    return jnp.concatenate(parts, axis=0)

  def _update(self, h, t_all, train):
    """Eq. 11: the gated skip + LayerNorm of the code, or the paper's A(σ(h̃)) + h."""
    s = self.schema
    if self.update == "code":
      a = per_type_rows(jax.nn.sigmoid(self.skip), s)[:, None, None]
      u = a * typed_linear(t_all, self.a_kernel, self.a_bias, s) + (1.0 - a) * h
      out = typed_layer_norm(u, self.ln_scale, self.ln_bias, s)
    else:
      out = typed_linear(jax.nn.sigmoid(t_all), self.a_kernel, self.a_bias, s) + h
    return self.drop(out, deterministic=not train)
