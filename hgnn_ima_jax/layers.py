"""The HGNN-IMA propagation layer (and plain HGT as its one-attention special case).

Layout, chosen for speed on XLA:CPU (measurements in benchmarks/README.md):

* node states are a tuple with one (N_t, M, d) array per node type (M modality channels), so a
  type-specific linear is one matrix product per type and no node array is sliced or
  concatenated by type inside a layer; K, Q and V of a type come from one product;
* relation-specific per-head matrices (W^att, U^m, W^msg) are applied once per *sender node*
  (a matrix per edge would cost E/N times more), as block-diagonal matrix products whose
  outputs already are the row-major sender tables that the edges gather from: per-head
  batched products would need transposes, which XLA fuses into the gathers;
* every softmax over in-edges (α of all modalities and the alignment term of β2) runs as one
  segment pass;
* the skip term of the update is a matrix product (see `_update`), which keeps XLA from
  recomputing the gradient chain through all later layers in several places.

Edges are grouped by relation and sorted by receiver inside each relation (`MMHN.to_graphs_tuple`);
a softmax segment is one (relation, receiver) slot.

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
from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from hgnn_ima_jax import attention as att
from hgnn_ima_jax.config_validation import CHOICES
from hgnn_ima_jax.graph import Schema
from hgnn_ima_jax.ops import segment_mean, segment_softmax, torch_linear_init, torch_xavier_uniform_4d, uniform_init

VARIANTS = CHOICES["model.variant"]


class EdgeIndex(NamedTuple):
  """Per-call edge indexing shared by all layers (built once by `edge_index`)."""

  src_rows: jax.Array  # (E,) row of each edge's sender in the stacked sender tables (rows hold all channels)
  chan_rows: jax.Array  # (E, M) rows of each edge's sender, one per channel, in the per-channel tables
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


def sender_groups(schema: Schema) -> tuple[tuple[int, tuple[int, ...]], ...]:
  """(source type, the relations leaving it) for every type that sends on some relation."""
  groups = []
  for t in range(schema.num_node_types):
    rels = tuple(r for r in range(schema.num_relations) if schema.relation_src(r) == t)
    if rels:
      groups.append((t, rels))
  return tuple(groups)


def sender_table_layout(schema: Schema) -> tuple[tuple[int, int, int], ...]:
  """Per relation r: (offset, stride, slot); its sender j (a local id) is table row offset + j·stride + slot.

  One block per source type holds, for each of its nodes, one row per relation leaving the
  type, so that the block is the output of a single matrix product (see `HGNNIMALayer`).
  """
  layout, acc = {}, 0
  for t, rels in sender_groups(schema):
    for slot, r in enumerate(rels):
      layout[r] = (acc, len(rels), slot)
    acc += schema.num_nodes[t] * len(rels)
  return tuple(layout[r] for r in range(schema.num_relations))


def edge_index(schema: Schema, senders: jax.Array, receivers: jax.Array, num_channels: int) -> EdgeIndex:
  """Sender-table rows and segment ids from a graph laid out by `MMHN.to_graphs_tuple`.

  Two table layouts share `sender_table_layout`'s blocks: rows holding every channel of a
  (sender, relation) pair (`src_rows`), and rows holding one channel (`chan_rows`): in a
  block, row (j·M + m)·stride + slot, the output layout of (N_s·M, d) @ (d, stride·d).
  """
  offs, slots, rows, M = schema.node_offsets, slot_offsets(schema), sender_table_layout(schema), num_channels
  src_rows, chan_rows, seg, etype = [], [], [], []
  for r in range(schema.num_relations):
    sl = schema.edge_slice(r)
    src, dst = schema.relation_src(r), schema.relation_dst(r)
    offset, stride, slot = rows[r]
    local = senders[sl] - offs[src]
    src_rows.append(offset + local * stride + slot)
    chan_rows.append(M * offset + (local[:, None] * M + jnp.arange(M)) * stride + slot)
    seg.append(receivers[sl] - offs[dst] + slots[r])
    etype.append(jnp.full((schema.num_edges[r],), r, jnp.int32))
  cat = lambda xs: jnp.concatenate(xs).astype(jnp.int32) if xs else jnp.zeros((0,), jnp.int32)
  chan = jnp.concatenate(chan_rows).astype(jnp.int32) if chan_rows else jnp.zeros((0, M), jnp.int32)
  return EdgeIndex(cat(src_rows), chan, jnp.asarray(receivers), cat(seg), cat(etype))


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
      `-cross` has no Eq. 6 (α^m replaces its β, softmax included), so it ignores beta_norm.
    align_off: for `-align` (no Eq. 8/9; β of Eq. 6 aggregates): 'softmax' (β = softmax of Σλα
      over the in-edges, Eq. 6 as printed; with beta_norm='paper' that softmax is the only one)
      or 'raw' (β = Σλα unnormalised, as the authors' model_modal3.py aggregates).
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
  align_off: str = "softmax"
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
    if self.update not in CHOICES["model.update"]:
      raise ValueError(f"update must be one of {CHOICES['model.update']}, got {self.update!r}")
    if self.beta_norm not in CHOICES["model.beta_norm"]:
      raise ValueError(f"beta_norm must be one of {CHOICES['model.beta_norm']}, got {self.beta_norm!r}")
    if self.combine not in att.COMBINES:
      raise ValueError(f"combine must be one of {att.COMBINES}, got {self.combine!r}")
    if self.nei_mode not in CHOICES["model.nei_mode"]:
      raise ValueError(f"nei_mode must be one of {CHOICES['model.nei_mode']}, got {self.nei_mode!r}")
    if self.align_off not in CHOICES["model.align_off"]:
      raise ValueError(f"align_off must be one of {CHOICES['model.align_off']}, got {self.align_off!r}")
    if self.variant == "-align" and self.align_off == "raw" and self.combine == "renorm":
      raise ValueError("align_off='raw' and combine='renorm' both choose -align's β (raw Σλα vs Σλα "
                       "renormalised); set only one of them")
    s, d, H = self.schema, self.hidden, self.heads
    T, R, M, dk = s.num_node_types, s.num_relations, self.num_channels, d // H
    lin = torch_linear_init(d)
    for name in ("k", "q", "v", "a"):
      setattr(self, f"{name}_kernel", self.param(f"{name}_kernel", lin, (T, d, d)))
      setattr(self, f"{name}_bias", self.param(f"{name}_bias", lin, (T, d)))
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

  @property
  def _modal_keys_in_table(self) -> bool:
    """Eq. 4's K·U^m table is built (all λ variants but `+inf`, which has its own)."""
    return self.uses_lambda_params and self.variant != "+inf"

  def __call__(self, hs: Sequence[jax.Array], index: EdgeIndex, *, train: bool):
    """hs: one (N_t, M, d) array per node type → (new hs, aux dict with per-edge 'alpha', 'lambda', 'beta')."""
    s, H, M, d = self.schema, self.heads, self.num_channels, self.hidden
    T, R = s.num_node_types, s.num_relations
    scale = 1.0 / math.sqrt(d // H) if self.score_scale is None else float(self.score_scale)
    # K, Q and V of a type in one matrix product: its weight gradient then reads the layer input
    # once (XLA:CPU transposes that input for the gradient, recomputing its elementwise producers).
    kqv_kernel = jnp.concatenate([self.k_kernel, self.q_kernel, self.v_kernel], axis=-1)  # (T, d, 3d)
    kqv_bias = jnp.concatenate([self.k_bias, self.q_bias, self.v_bias], axis=-1)
    kqv = [hs[t] @ kqv_kernel[t] + kqv_bias[t] for t in range(T)]  # (N_t, M, 3d)
    k = [x[..., :d] for x in kqv]  # each (N_t, M, d)
    q = [x[..., d:2 * d] for x in kqv]
    v = [x[..., 2 * d:] for x in kqv]
    if R == 0:  # nothing to propagate
      aux = {"alpha": None, "beta": None, "lambda": None, "beta2": None}
      return self._update(hs, [jnp.zeros_like(h) for h in hs], train), aux

    # Sender tables: the relation-specific per-head matrices applied once per sender node, as
    # block-diagonal matrix products whose outputs are already the tables' row-major layout.
    # (Per-head batched products would need transposes that XLA fuses into the edge gathers,
    # making every gathered element a strided read; a block-diagonal product costs H times the
    # flops of the per-head ones but runs as one dense GEMM.) W^att and W^msg act on every
    # channel alike: one product over (node, channel) rows; U^m differs per channel: one product
    # over nodes with a channel-block-diagonal matrix.
    dk = d // H
    att_tables, msg_tables, modal_tables, inf_tables = [], [], [], []
    for src, rels in sender_groups(s):
      n = s.num_nodes[src]
      att_tables.append((k[src] @ self._relations_matrix(self.w_att, rels)).reshape(-1, H, dk))
      msg_tables.append((v[src] @ self._relations_matrix(self.w_msg, rels)).reshape(-1, H, dk))
      ks = k[src].reshape(n, M * d)
      if self._modal_keys_in_table:
        modal = jnp.concatenate([self._modal_matrix(r) for r in rels], axis=1)
        modal_tables.append((ks @ modal).reshape(n * len(rels), M, H, dk))
      if self.uses_lambda_params and self.variant == "+inf":
        inf = jnp.concatenate([self._inf_matrix(r) for r in rels], axis=1)
        inf_tables.append((ks @ inf).reshape(n * len(rels), M, M, H, dk))
    q_e = per_head(jnp.concatenate(q, axis=0), H)[index.receivers]  # (E, M, H, dk)
    att_e = jnp.concatenate(att_tables, axis=0)[index.chan_rows]  # (E, M, H, dk): K_j W^att_r
    g = att.inter_node_score(att.head_dot(q_e, att_e), self.mu[index.etype], scale)  # Eq. 2, (E, M, H)

    n_slots = num_slots(s)
    aux = {"lambda": None, "beta2": None}
    if self.attention == "hgt":
      alpha = att.inter_node_attention(g, index.seg, n_slots)
      beta = alpha  # each channel with its own attention
    else:
      modal = None
      if modal_tables:  # Eq. 4: s^m = <Q^m_i, K^m_j U^m_r>
        modal = att.inter_modal_score(q_e, jnp.concatenate(modal_tables, axis=0)[index.src_rows])
      inf_e = jnp.concatenate(inf_tables, axis=0)[index.src_rows] if inf_tables else None
      beta, alpha, aux = self._nested_attention(g, modal, q_e, inf_e, q, k, index, n_slots)
    aux["alpha"], aux["beta"] = alpha, beta

    msg_e = jnp.concatenate(msg_tables, axis=0)[index.chan_rows]  # (E, M, H, dk): V_j W^msg_r
    agg = att.aggregate_messages(beta, msg_e, index.seg, n_slots)  # Eq. 10, (slots, M, H, dk)
    t_all = self._cross_relation_mean(agg.reshape(agg.shape[:2] + (d,)), hs)
    return self._update(hs, t_all, train), aux

  def _relations_matrix(self, per_relation: jax.Array, rels: Sequence[int]) -> jax.Array:
    """(d, |rels|·d): the relations' per-head matrices side by side, each block-diagonal over heads."""
    return jnp.concatenate([head_block_diag(per_relation[r]) for r in rels], axis=1)

  def _modal_matrix(self, r: int) -> jax.Array:
    """(M·d, M·d): channel m's keys times U^m_r (Eq. 4)."""
    return channel_block_diag(head_block_diag(self.u_modal[:, r]))

  def _inf_matrix(self, r: int) -> jax.Array:
    """(M·d, M·M·d) for `+inf`: column block (m', m) is channel m' times U^{m',m}_r."""
    M, d = self.num_channels, self.hidden
    blocks = head_block_diag(self.u_modal[:, :, r])  # (M', M, d, d)
    eye = jnp.eye(M, dtype=blocks.dtype)
    # out[m'·d + c, (a·M + m)·d + e] = blocks[m', m, c, e] · [a == m']
    return jnp.einsum("pmce,pa->pcame", blocks, eye).reshape(M * d, M * M * d)

  def _nested_attention(self, g, modal, q_e, inf_e, q, k, index, n_slots):
    """Eqs. 3–9 and the Table 4 variants; returns (β, α, aux).

    g: (E, M, H) Eq. 2 scores; modal: (E, M, H) Eq. 4 scores s^m (None when the variant has
    none or computes them itself); inf_e: (E, M', M, H, dk) gathered K^{m'} U^{m',m} for `+inf`.
    """
    M, variant, seg = self.num_channels, self.variant, index.seg
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
      s_inf = att.inter_modal_score(q_e[:, None], inf_e)  # s^{m'→m}: (E, M', M, H)
      lam = att.inter_modal_attention(s_inf)
      beta1 = att.nested_attention(lam, alpha)  # (E, M, H)
    else:
      if variant == "-nei" and self.nei_mode == "target":
        lam = self._receiver_only_lambda(q, k, index)
      else:
        if variant == "-nei":
          modal = segment_mean(modal, seg, n_slots, indices_are_sorted=True)[seg]
        lam = att.inter_modal_attention(modal)
      beta1 = att.nested_attention(lam, alpha)

    # Eq. 6's softmax (beta_norm='paper'); -cross has no Eq. 6: α^m, already normalised, replaces its β.
    if self.beta_norm == "paper" and variant != "-cross":
      beta1 = segment_softmax(beta1, seg, n_slots, indices_are_sorted=True)
    if use_align or self.combine == "renorm":
      beta = att.combine_attention(beta1, beta2, seg, n_slots, self.combine)
    elif self.beta_norm == "paper" or self.align_off == "raw":
      beta = beta1  # -align: β of Eq. 6 aggregates as it is (softmaxed above, or raw as model_modal3.py)
    else:
      beta = segment_softmax(beta1, seg, n_slots, indices_are_sorted=True)  # -align: the code's one softmax
    return beta, alpha, {"lambda": lam, "beta2": beta2}

  def _receiver_only_lambda(self, q, k, index):
    """`-nei` with nei_mode='target': λ_i from <Q(h_i), K(h_i) U_r> of the receiver alone."""
    s, M, H = self.schema, self.num_channels, self.heads
    parts = []
    for r in range(s.num_relations):
      t = s.relation_dst(r)
      keys = (k[t].reshape(-1, M * self.hidden) @ self._modal_matrix(r)).reshape(-1, M, self.hidden)
      parts.append(att.inter_modal_score(per_head(q[t], H), per_head(keys, H)))  # (N_t, M, H) per slot
    lam_slot = att.inter_modal_attention(jnp.concatenate(parts, axis=0))
    return lam_slot[index.seg]

  def _cross_relation_mean(self, agg, hs):
    """Mean over the relations into each type; zero rows count (DGL's 'mean' cross reducer)."""
    s, slots = self.schema, slot_offsets(self.schema)
    out = []
    for t in range(s.num_node_types):
      n, rels = s.num_nodes[t], s.relations_into(t)
      if not rels:
        out.append(jnp.zeros_like(hs[t]))
        continue
      out.append(sum(agg[slots[r]:slots[r] + n] for r in rels) / len(rels))
    return out

  def _update(self, hs, t_all, train):
    """Eq. 11: the gated skip + LayerNorm of the code, or the paper's A(σ(h̃)) + h; per node type."""
    out = []
    eye = jnp.eye(self.hidden, dtype=hs[0].dtype)
    for t, (h, tt) in enumerate(zip(hs, t_all)):
      # The skip term w·h is written as h @ (w·I). Why: as a plain product, the gradient of every
      # layer's input is an elementwise chain through all later layers' skips, LayerNorms and
      # dropouts, which XLA:CPU fuses into (and recomputes in) each transposed copy that the
      # weight gradients read — a third of a training step on AMAZON. A matrix product's
      # gradient is materialised, which cuts the chain at every layer; it costs N·d² flops.
      if self.update == "code":
        a = jax.nn.sigmoid(self.skip[t])
        u = tt @ (a * self.a_kernel[t]) + a * self.a_bias[t] + h @ ((1.0 - a) * eye)
        y = layer_norm(u, self.ln_scale[t], self.ln_bias[t])
      else:
        y = jax.nn.sigmoid(tt) @ self.a_kernel[t] + self.a_bias[t] + h @ eye
      out.append(self.drop(y, deterministic=not train))
    return tuple(out)
