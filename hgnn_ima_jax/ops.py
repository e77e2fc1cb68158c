"""Small numerical building blocks: segment softmax and PyTorch-matching initialisers."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def segment_softmax(
    logits: jax.Array, segment_ids: jax.Array, num_segments: int, indices_are_sorted: bool = False
) -> jax.Array:
  """Softmax over the leading (edge) axis within each segment (a receiver's in-edges of one relation).

  The per-segment max is only a shift for numerical safety; softmax does not depend
  on it, so it is taken under `stop_gradient` (exact, and it skips scatter-max's
  costly gradient). Trailing axes (modalities, heads) are independent softmaxes.
  """
  maxes = jax.ops.segment_max(logits, segment_ids, num_segments, indices_are_sorted=indices_are_sorted)
  maxes = jax.lax.stop_gradient(maxes)
  ex = jnp.exp(logits - maxes[segment_ids])
  denom = jax.ops.segment_sum(ex, segment_ids, num_segments, indices_are_sorted=indices_are_sorted)
  return ex / denom[segment_ids]


def segment_mean(
    data: jax.Array, segment_ids: jax.Array, num_segments: int, indices_are_sorted: bool = False
) -> jax.Array:
  """Mean over each segment; empty segments give zeros."""
  total = jax.ops.segment_sum(data, segment_ids, num_segments, indices_are_sorted=indices_are_sorted)
  count = jax.ops.segment_sum(
      jnp.ones(data.shape[:1], data.dtype), segment_ids, num_segments, indices_are_sorted=indices_are_sorted
  )
  count = count.reshape(count.shape + (1,) * (data.ndim - 1))
  return total / jnp.maximum(count, 1)


def uniform_init(bound: float):
  """U(-bound, bound), the distribution of torch's default Linear weights and biases."""

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def torch_linear_init(fan_in: int):
  """torch.nn.Linear's default init for weight and bias: U(±1/sqrt(fan_in))."""
  return uniform_init(1.0 / math.sqrt(fan_in))


def torch_xavier_uniform_4d(shape) -> float:
  """Bound torch.nn.init.xavier_uniform_ uses on a (R, H, d_k, d_k) tensor: sqrt(6/((H+R) d_k^2))."""
  receptive = math.prod(shape[2:])
  fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
  return math.sqrt(6.0 / (fan_in + fan_out))
