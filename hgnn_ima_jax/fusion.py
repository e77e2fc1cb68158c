"""Eqs. 12–15: attention over the modality channels of the target nodes, and the classifier head."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from hgnn_ima_jax.choices import CHOICES
from hgnn_ima_jax.dropout import Dropout
from hgnn_ima_jax.projection import dense


def fusion_scores(x: jax.Array, layers: Sequence[Callable], *, form: str, train: bool) -> jax.Array:
  """Eq. 12: ω^m per node and modality channel; x (N, M, d) → (N, M).

  form 'code' (layers = input dropout, Lin_{d→1}, score dropout):
    ω = tanh(Dropout_0.5(Lin_{d→1}(Dropout_0.6(X)))).
  form 'paper' (layers = W1 without bias, Lin_{d→1}): ω = w2 · tanh(W1 h) + b2, as printed.
  """
  if form == "code":
    drop_in, score, drop_score = layers
    w = score(drop_in(x, deterministic=not train))
    return jnp.tanh(drop_score(w, deterministic=not train))[..., 0]
  if form == "paper":
    score_in, score_out = layers
    return score_out(jnp.tanh(score_in(x)))[..., 0]
  raise ValueError(f"fusion_form must be one of {CHOICES['model.fusion_form']}, got {form!r}")


def modality_fusion_weights(scores: jax.Array) -> jax.Array:
  """Eq. 13: δ^m = softmax over modalities of ω^m; scores (N, M) → (N, M)."""
  return jax.nn.softmax(scores, axis=1)


def fuse_modalities(delta: jax.Array, x: jax.Array) -> jax.Array:
  """Eq. 14: Z = Σ_m δ^m h^{(K),m}; delta (N, M), x (N, M, d) → (N, d)."""
  return jnp.einsum("nm,nmd->nd", delta, x)


def class_logits(head: Callable, fused: jax.Array, channels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Eq. 15 (before the softmax): O = head(Z), and O^m = head(h^{(K),m}) per channel (Eq. 16's heads).

  fused (N, d), channels (N, M, d) → logits (N, C), modality_logits (M, N, C); one head for all.
  """
  return head(fused), jnp.moveaxis(head(channels), 1, 0)


class ModalityFusion(nn.Module):
  """Eqs. 12–14: Z = Σ_m δ^m h^{(K),m} with δ = softmax_m ω (Z uses the un-dropped states)."""

  hidden: int = 64
  form: str = "code"
  input_dropout: float = 0.6
  score_dropout: float = 0.5

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool):
    """x (N, M, d) → (Z (N, d), δ (N, M))."""
    if self.form == "code":  # creation order fixes the dropouts' names (Dropout_0, Dropout_1) and so their RNG
      layers = (Dropout(self.input_dropout), dense(1, self.hidden, "score"), Dropout(self.score_dropout))
    elif self.form == "paper":
      layers = (dense(self.hidden, self.hidden, "score_in", False), dense(1, self.hidden, "score_out"))
    else:
      raise ValueError(f"fusion_form must be one of {CHOICES['model.fusion_form']}, got {self.form!r}")
    delta = modality_fusion_weights(fusion_scores(x, layers, form=self.form, train=train))
    return fuse_modalities(delta, x), delta
