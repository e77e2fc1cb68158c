"""Small numerical building blocks: softmaxes that keep only their outputs for the backward pass, PyTorch-matching initialisers."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def segment_softmax(
    logits: jax.Array, segment_ids: jax.Array, num_segments: int, indices_are_sorted: bool = False
) -> jax.Array:
  """Softmax over the leading (edge) axis within each segment (a receiver's in-edges of one relation).

  Trailing axes (modalities, heads) are independent softmaxes. The per-segment max is only a
  shift for numerical safety. The gradient is written out (y ⊙ (ȳ − Σ_seg y ⊙ ȳ)): it needs
  only the output y, where autodiff of exp/sum/divide would keep three (E, ...) arrays for the
  backward pass.
  """
  maxes = jax.ops.segment_max(logits, segment_ids, num_segments, indices_are_sorted=indices_are_sorted)
  ex = jnp.exp(logits - maxes[segment_ids])
  denom = jax.ops.segment_sum(ex, segment_ids, num_segments, indices_are_sorted=indices_are_sorted)
  return ex / denom[segment_ids]


def _segment_softmax_fwd(logits, segment_ids, num_segments, indices_are_sorted):
  y = segment_softmax(logits, segment_ids, num_segments, indices_are_sorted)
  return y, (y, segment_ids)


def _segment_softmax_bwd(num_segments, indices_are_sorted, res, ct):
  y, segment_ids = res
  dot = jax.ops.segment_sum(y * ct, segment_ids, num_segments, indices_are_sorted=indices_are_sorted)
  return y * (ct - dot[segment_ids]), None


segment_softmax.defvjp(_segment_softmax_fwd, _segment_softmax_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def segment_softmax_parts(
    parts: tuple[jax.Array, ...], segment_ids: jax.Array, num_segments: int, indices_are_sorted: bool = False
) -> tuple[jax.Array, ...]:
  """`segment_softmax` of the parts side by side on axis 1 (one segment pass), returned as parts.

  Equal to splitting `segment_softmax(concatenate(parts, 1), ...)`, but the backward pass keeps
  the returned parts themselves, which the callers' products keep anyway, instead of the
  concatenated output too.
  """
  y = segment_softmax(jnp.concatenate(parts, axis=1), segment_ids, num_segments, indices_are_sorted)
  return tuple(jnp.split(y, np.cumsum([p.shape[1] for p in parts])[:-1], axis=1))


def _segment_softmax_parts_fwd(parts, segment_ids, num_segments, indices_are_sorted):
  outs = segment_softmax_parts(parts, segment_ids, num_segments, indices_are_sorted)
  return outs, (outs, segment_ids)


def _segment_softmax_parts_bwd(num_segments, indices_are_sorted, res, cts):
  outs, segment_ids = res
  y, ct = jnp.concatenate(outs, axis=1), jnp.concatenate(cts, axis=1)
  dx, _ = _segment_softmax_bwd(num_segments, indices_are_sorted, (y, segment_ids), ct)
  return tuple(jnp.split(dx, np.cumsum([o.shape[1] for o in outs])[:-1], axis=1)), None


segment_softmax_parts.defvjp(_segment_softmax_parts_fwd, _segment_softmax_parts_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def softmax(x: jax.Array, axis: int) -> jax.Array:
  """`jax.nn.softmax` whose backward pass keeps only its output (autodiff of jax.nn.softmax keeps two arrays)."""
  return jax.nn.softmax(x, axis=axis)


def _softmax_fwd(x, axis):
  y = softmax(x, axis)
  return y, y


def _softmax_bwd(axis, y, ct):
  return (y * (ct - jnp.sum(y * ct, axis=axis, keepdims=True)),)


softmax.defvjp(_softmax_fwd, _softmax_bwd)


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
