"""Training objectives (Eqs. 16–17 and the code's per-dataset variants, spec §4)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def masked_cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean cross-entropy over the nodes where `mask` is True (torch's CE over the indexed nodes)."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  mask = mask.astype(ce.dtype)
  return jnp.sum(ce * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def classification_loss(output, labels: jax.Array, mask: jax.Array, ind_loss: bool) -> jax.Array:
  """Eq. 16: CE on the fused logits, or (CE(O) + Σ_m CE(O^m)) / (1 + M) with `ind_loss`.

  The MISS code uses the fused CE only (the paper's −L_ind); FULL and the paper average
  the 1 + M heads. Means over labelled nodes replace the paper's sums.
  """
  fused = masked_cross_entropy(output.logits, labels, mask)
  if not ind_loss:
    return fused
  per_mod = jax.vmap(lambda lg: masked_cross_entropy(lg, labels, mask))(output.modality_logits)
  return (fused + jnp.sum(per_mod)) / (1 + per_mod.shape[0])


def objective(output, labels: jax.Array, mask: jax.Array, *, ind_loss: bool, att_weight: float):
  """Eq. 17: L = L_cro + w · L_att. Returns (loss, {'ce': ..., 'att': ...})."""
  ce = classification_loss(output, labels, mask, ind_loss)
  return ce + att_weight * output.att_loss, {"ce": ce, "att": output.att_loss}
