"""The paper's propagation equations (Eqs. 2–10) as functions on edge tensors.

Shapes: E edges (all relations, grouped by relation and sorted by receiver), M modalities,
H heads, d_k = d / H. Per-edge tensors are edge-major, e.g. (E, M, H), so segment ops reduce
the leading axis. `seg` gives each edge its softmax segment: one per (relation, receiver), as
the authors' code does a softmax within each relation (spec §1.2, §6 item 18; see
`edge_layout`). Functions that need a relation-specific product take it already applied once
per (relation, receiver) slot (the layer's slot tables) and gather it per edge; the equation
itself is here.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp

from hgnn_ima_jax import edge_ops
from hgnn_ima_jax.choices import CHOICES
from hgnn_ima_jax.ops import channels, segment_softmax, softmax

COMBINES = CHOICES["model.combine"]


def head_dot(q: jax.Array, k: jax.Array) -> jax.Array:
  """Per-head dot products <q_h, k_h> over the trailing d_k axis (broadcasting the rest)."""
  return jnp.sum(q * k, axis=-1)


def _edge_dot(q, k, q_index, k_index):
  """head_dot of q[q_index] and k[k_index] (gathered in the backward pass again, not kept: `edge_ops`), or of q and k.

  q is the receivers' side (a slot table, possibly `edge_ops.Rebuilt`), k the senders' keys.
  """
  if q_index is None:
    return head_dot(q, k)
  return edge_ops.gather_dot(k, k_index, q, q_index)


def inter_node_score(
    q_att: jax.Array,
    k: jax.Array,
    mu: jax.Array,
    scale: float,
    q_index: jax.Array | None = None,
    k_index: jax.Array | None = None,
) -> jax.Array:
  """Eq. 2: g^m_{e,h} = c · μ_{r,h} · <Q^m_{i,h}, K^m_{j,h} W^att_{r,h}> = c · μ_{r,h} · <Q^m_{i,h} W^att_{r,h}ᵀ, K^m_{j,h}>.

  Args:
    q_att: the receivers' queries times W^att_rᵀ, one row per (relation, receiver) slot
      (S, M, H, d_k) gathered per edge by q_index (E,) (`EdgeIndex.seg`); or, with q_index
      None, (E, M, H, d_k) already per edge.
    k: every sender's keys (N, M, H, d_k) gathered per edge by k_index (E,)
      (`EdgeIndex.senders`); or (E, M, H, d_k).
    mu: (E, H) relation prior μ of each edge.
    scale: c (1/sqrt(d_k) in HGT and FULL; 100 in the MISS code).
  Returns:
    (E, M, H) scores.
  """
  return scale * mu[:, None, :] * _edge_dot(q_att, k, q_index, k_index)


def inter_node_attention(g: jax.Array, seg: jax.Array, num_segments: int) -> jax.Array:
  """Eq. 3: α^m = softmax of g^m over each receiver's in-edges (per relation, per head).

  HGT and HGT-late use it as it is; HGNN-IMA through `alpha_and_alignment`, with β2.
  """
  return segment_softmax(g, seg, num_segments, indices_are_sorted=True)


def alignment_logits(g: jax.Array, sign: str = "code") -> jax.Array:
  """Eq. 8 (inside the softmax): the consistency of a neighbour's scores across modalities.

  code (default): −(1/P) Σ_{m1<m2} |g^{m1} − g^{m2}|, P = M(M−1)/2, so neighbours whose
  modalities agree get more weight. paper: +Σ_{m1,m2∈M} |g^{m1} − g^{m2}| over ordered
  pairs, as printed (it favours misaligned neighbours; spec §6 item 5).

  Args:
    g: (E, M, H) raw inter-node scores (already scaled, as the code uses them).
  Returns:
    (E, H).
  """
  pairs = list(itertools.combinations(range(g.shape[1]), 2))
  if not pairs:
    raise ValueError("alignment modulation needs at least two modalities")
  gs = channels(g)
  total = sum(jnp.abs(gs[a] - gs[b]) for a, b in pairs)
  if sign == "code":
    return -total / len(pairs)
  if sign == "paper":
    return 2.0 * total
  raise ValueError(f"align_sign must be one of {CHOICES['model.align_sign']}, got {sign!r}")


def alpha_and_alignment(
    g: jax.Array, seg: jax.Array, num_segments: int, *, align: bool, sign: str = "code"
) -> tuple[jax.Array, jax.Array | None]:
  """Eqs. 3 and 8: α^m (E, M, H) and β2 (E, H) — softmaxes over each receiver's in-edges.

  β2 = softmax of `alignment_logits(g)`; it is None when `align` is False (`-align`).
  """
  alpha = inter_node_attention(g, seg, num_segments)
  if not align:
    return alpha, None
  return alpha, segment_softmax(alignment_logits(g, sign), seg, num_segments, indices_are_sorted=True)


def inter_modal_score(
    q_modal: jax.Array, k: jax.Array, q_index: jax.Array | None = None, k_index: jax.Array | None = None
) -> jax.Array:
  """Eq. 4: s^m_{e,h} = <Q^m_{i,h}, K^m_{j,h} U^m_{r,h}> = <Q^m_{i,h} U^m_{r,h}ᵀ, K^m_{j,h}> (no μ, no scaling, as the code).

  q_modal holds the receivers' queries times U^m_rᵀ of each relation, one row per slot
  (S, M, H, d_k), gathered per edge by q_index (E,) = `EdgeIndex.seg`; k every sender's keys
  (N, M, H, d_k), gathered by k_index (E,) = `EdgeIndex.senders`. With no indices both are
  already per edge (or per node). For the `+inf` ablation pass q_modal (S, M, M', H, d_k) with
  row [m, m'] = Q^m U^{m',m}ᵀ and k (N, 1, M', H, d_k): the result s^{m'→m} is (E, M, M', H).
  """
  return _edge_dot(q_modal, k, q_index, k_index)


def inter_modal_attention(s: jax.Array) -> jax.Array:
  """Eq. 5: λ^{m'} = softmax over the influencing modality m' (axis 1) of s^{m'}."""
  return softmax(s, axis=1)


def nested_attention(lam: jax.Array, alpha: jax.Array) -> jax.Array:
  """Eq. 6 (inside the softmax): β1 = Σ_{m'} λ^{m'} ⊙ α^{m'}.

  lam (E, M, H) and alpha (E, M, H) give (E, H). For `+inf`, lam is (E, M', M, H)
  and the result is one β1 per influenced modality m: (E, M, H).
  """
  # A sum of slices, not jnp.sum over axis 1: XLA:CPU's reduction over the middle axis is slower.
  lams, alphas = channels(lam), channels(alpha)
  if lam.ndim == alpha.ndim + 1:
    return sum(la * al[:, None, :] for la, al in zip(lams, alphas))
  return sum(la * al for la, al in zip(lams, alphas))


def nested_beta(beta1: jax.Array, seg: jax.Array, num_segments: int, beta_norm: str) -> jax.Array:
  """Eq. 6's softmax: 'paper' normalises Σλα over each receiver's in-edges; 'code' leaves it as is.

  The authors' code feeds Σλα unnormalised into Eq. 9 (spec §6); the paper prints a softmax.
  """
  if beta_norm == "paper":
    return segment_softmax(beta1, seg, num_segments, indices_are_sorted=True)
  if beta_norm == "code":
    return beta1
  raise ValueError(f"beta_norm must be one of {CHOICES['model.beta_norm']}, got {beta_norm!r}")


def combine_attention(
    beta1: jax.Array,
    beta2: jax.Array | None,
    seg: jax.Array,
    num_segments: int,
    combine: str = "mul",
    softmax_alone: bool = True,
) -> jax.Array:
  """Eq. 9: β from β1 (Eq. 6) and β2 (Eq. 8) over each receiver's in-edges.

  `mul` (paper, MISS, FULL2): softmax of β1 ⊙ β2. `add` (FULL3): softmax of β1 + β2.
  `renorm` (ours, in neither the paper nor the code): β1 ⊙ β2 / Σ_in β1 ⊙ β2, the product of
  the two attentions renormalised. Why it exists: β1, β2 ∈ [0, 1], so a softmax over their
  product (or sum) keeps every neighbour's weight within a factor e (e² for `add`) of any
  other's — the nested attention can barely select neighbours; renormalising keeps its
  selectivity (see the README's note on the synthetic claim).

  beta2 None (`-align`, no Eq. 8): β1 alone, renormalised for `renorm`; for `mul`/`add` it is
  softmaxed when `softmax_alone` (the code's one softmax) and aggregates as it is otherwise (it
  was already softmaxed by Eq. 6 with beta_norm='paper', or align_off='raw' as model_modal3.py).

  beta2 is (E, H); beta1 is (E, H) or per modality (E, M, H).
  """
  if combine not in COMBINES:
    raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
  if beta2 is not None and beta1.ndim == beta2.ndim + 1:
    beta2 = beta2[:, None, :]
  if combine == "renorm":
    p = beta1 if beta2 is None else beta1 * beta2
    total = jax.ops.segment_sum(p, seg, num_segments, indices_are_sorted=True)[seg]
    # A receiver whose in-edges all have p == 0 (all-zero λ·α cannot happen, but underflow can)
    # falls back to zeros rather than NaN.
    return p / jnp.where(total > 0, total, 1.0)
  if beta2 is None:
    if not softmax_alone:
      return beta1
    logits = beta1
  elif combine == "mul":
    logits = beta1 * beta2
  else:
    logits = beta1 + beta2
  # β1 = Σ λ α (λ sums to 1, α ∈ [0, 1]) or a softmax, β2 a softmax: the logits lie in [0, 2], so no max shift
  return segment_softmax(logits, seg, num_segments, indices_are_sorted=True, bounded=True)


def aggregate_messages(
    beta: jax.Array, v: jax.Array, v_index: jax.Array, seg: jax.Array, num_segments: int
) -> jax.Array:
  """Eq. 10's sums: Σ_{e→i} β_e · v[v_index_e] per (relation, receiver) segment.

  Args:
    beta: (E, H) one weight for every modality (the model), or (E, M, H) per modality
      (ablations `-cross`, `+inf` and the HGT baselines).
    v: every sender's values (N, M, H, d_k) gathered per edge by v_index (E,)
      (`EdgeIndex.senders`), the layer then applying W^msg_r to each segment's sum; or the
      sender-side table V_j W^msg_r, (rows·M, H, d_k) gathered by v_index (E, M)
      (`EdgeIndex.chan_rows`). The gathered rows are not kept for the backward pass (`edge_ops`).
  Returns:
    (num_segments, M, H, d_k); segments without edges are zero (as DGL zero-fills).
  """
  return edge_ops.gather_segment_sum(beta, v, v_index, seg, num_segments)
