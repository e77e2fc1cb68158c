"""The paper's equations as functions on edge tensors.

Shapes: E edges (all relations, grouped by relation and sorted by receiver), M
modalities, H heads, d_k = d / H. Per-edge tensors are edge-major, e.g. (E, M, H),
so segment ops reduce the leading axis. `seg` gives each edge its softmax segment:
one segment per (relation, receiver), as the authors' code does a softmax within
each relation (spec §1.2, §6 item 18).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp

from hgnn_ima_jax.config_validation import CHOICES
from hgnn_ima_jax.ops import segment_softmax


def head_dot(q: jax.Array, k: jax.Array) -> jax.Array:
  """Per-head dot products <q_h, k_h> over the trailing d_k axis (broadcasting the rest)."""
  return jnp.sum(q * k, axis=-1)


def inter_node_score(qk_att: jax.Array, mu: jax.Array, scale: float) -> jax.Array:
  """Eq. 2: g^m_{e,h} = c · μ_{r,h} · <Q^m_{i,h}, K^m_{j,h} W^att_{r,h}>.

  Args:
    qk_att: (E, M, H) dot products <Q^m_i, K^m_j W^att_r> per head (`head_dot` of the
      receiver's query and the sender's key table).
    mu: (E, H) relation prior μ of each edge.
    scale: c (1/sqrt(d_k) in HGT and FULL; 100 in the MISS code).
  Returns:
    (E, M, H) scores.
  """
  return scale * mu[:, None, :] * qk_att


def inter_node_attention(g: jax.Array, seg: jax.Array, num_segments: int) -> jax.Array:
  """Eq. 3: α^m = softmax of g^m over each receiver's in-edges (per relation, per head)."""
  return segment_softmax(g, seg, num_segments, indices_are_sorted=True)


def inter_modal_score(q_dst: jax.Array, k_modal_src: jax.Array) -> jax.Array:
  """Eq. 4: s^m_{e,h} = <Q^m_{i,h}, K^m_{j,h} U^m_{r,h}> (no μ, no scaling, as the code).

  For the `+inf` ablation pass q_dst (E, 1, M, H, d_k) and k_modal_src
  (E, M', M, H, d_k): the result s^{m'→m} is (E, M', M, H).
  """
  return head_dot(q_dst, k_modal_src)


def inter_modal_attention(s: jax.Array) -> jax.Array:
  """Eq. 5: λ^{m'} = softmax over the influencing modality m' (axis 1) of s^{m'}."""
  return jax.nn.softmax(s, axis=1)


def nested_attention(lam: jax.Array, alpha: jax.Array) -> jax.Array:
  """Eq. 6 (inside the softmax): β1 = Σ_{m'} λ^{m'} ⊙ α^{m'}.

  lam (E, M, H) and alpha (E, M, H) give (E, H). For `+inf`, lam is (E, M', M, H)
  and the result is one β1 per influenced modality m: (E, M, H).
  """
  if lam.ndim == alpha.ndim + 1:
    return jnp.sum(lam * alpha[:, :, None, :], axis=1)
  return jnp.sum(lam * alpha, axis=1)


def alignment_logits(g: jax.Array, sign: str = "code") -> jax.Array:
  """Eq. 8 (inside the softmax): the consistency of a neighbour's scores across modalities.

  β2 is the segment softmax of these logits over each receiver's in-edges; the layer runs it
  in the same pass as the α softmaxes (`HGNNIMALayer._nested_attention`).

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
  total = sum(jnp.abs(g[:, a] - g[:, b]) for a, b in pairs)
  if sign == "code":
    return -total / len(pairs)
  if sign == "paper":
    return 2.0 * total
  raise ValueError(f"align_sign must be one of {CHOICES['model.align_sign']}, got {sign!r}")


COMBINES = CHOICES["model.combine"]


def combine_attention(beta1: jax.Array, beta2: jax.Array | None, seg: jax.Array, num_segments: int,
                      combine: str = "mul") -> jax.Array:
  """Eq. 9: β from β1 (Eq. 6) and β2 (Eq. 8) over each receiver's in-edges.

  `mul` (paper, MISS, FULL2): softmax of β1 ⊙ β2. `add` (FULL3): softmax of β1 + β2.
  `renorm` (ours, in neither the paper nor the code): β1 ⊙ β2 / Σ_in β1 ⊙ β2, the product of
  the two attentions renormalised. Why it exists: β1, β2 ∈ [0, 1], so a softmax over their
  product (or sum) keeps every neighbour's weight within a factor e (e² for `add`) of any
  other's — the nested attention can barely select neighbours; renormalising keeps its
  selectivity (see the README's note on the synthetic claim). beta2 None (`-align`): β1 alone,
  softmaxed for `mul`/`add` (the code), renormalised for `renorm`.

  beta2 is (E, H); beta1 is (E, H) or per modality (E, M, H).
  """
  if beta2 is not None and beta1.ndim == beta2.ndim + 1:
    beta2 = beta2[:, None, :]
  if combine not in COMBINES:
    raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
  if combine == "renorm":
    p = beta1 if beta2 is None else beta1 * beta2
    total = jax.ops.segment_sum(p, seg, num_segments, indices_are_sorted=True)[seg]
    # A receiver whose in-edges all have p == 0 (all-zero λ·α cannot happen, but underflow can)
    # falls back to zeros rather than NaN.
    return p / jnp.where(total > 0, total, 1.0)
  if beta2 is None:
    logits = beta1
  elif combine == "mul":
    logits = beta1 * beta2
  else:
    logits = beta1 + beta2
  return segment_softmax(logits, seg, num_segments, indices_are_sorted=True)


def aggregate_messages(beta: jax.Array, msg: jax.Array, seg: jax.Array, num_segments: int) -> jax.Array:
  """Eq. 10: t^m_i = Σ_{e→i} β_e · msg^m_e per (relation, receiver) segment.

  Args:
    beta: (E, H) one weight for every modality (the model), or (E, M, H) per modality
      (ablations `-cross`, `+inf` and the HGT baselines).
    msg: (E, M, H, d_k) messages V^m_j W^msg_r.
  Returns:
    (num_segments, M, H, d_k); segments without edges are zero (as DGL zero-fills).
  """
  w = beta[:, None, :, None] if beta.ndim == 2 else beta[..., None]
  return jax.ops.segment_sum(w * msg, seg, num_segments, indices_are_sorted=True)


def attention_loss_terms(lam: jax.Array, source_missing: jax.Array) -> jax.Array:
  """Eq. 7 per edge: Σ_{m' ∉ f(ψ(v_j))} λ^{m'}_{e,h}, averaged over heads (and influenced modalities).

  Args:
    lam: (E, M, H), or (E, M', M, H) for `+inf`.
    source_missing: (E, M) True where the edge's sender lacks modality m'.
  Returns:
    (E,) the λ mass on the sender's missing modalities.
  """
  miss = source_missing.astype(lam.dtype)
  miss = miss.reshape(miss.shape + (1,) * (lam.ndim - 2))
  per_edge = jnp.sum(lam * miss, axis=1)
  return jnp.mean(per_edge.reshape(per_edge.shape[0], -1), axis=1)


def modality_fusion_weights(scores: jax.Array) -> jax.Array:
  """Eq. 13: δ^m = softmax over modalities of ω^m; scores (N, M) → (N, M)."""
  return jax.nn.softmax(scores, axis=1)


def fuse_modalities(delta: jax.Array, x: jax.Array) -> jax.Array:
  """Eq. 14: Z = Σ_m δ^m h^{(K),m}; delta (N, M), x (N, M, d) → (N, d)."""
  return jnp.einsum("nm,nmd->nd", delta, x)
