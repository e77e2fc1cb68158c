"""Small numerical building blocks: softmaxes that keep only their outputs for the backward pass, PyTorch-matching initialisers."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def segment_softmax(
    logits: jax.Array,
    segment_ids: jax.Array,
    num_segments: int,
    indices_are_sorted: bool = False,
    bounded: bool = False,
) -> jax.Array:
  """Softmax over the leading (edge) axis within each segment (a receiver's in-edges of one relation).

  Trailing axes (modalities, heads) are independent softmaxes, computed one channel (axis 1) at
  a time (`per_channel`). The per-segment max is only a shift for numerical safety; `bounded`
  leaves it out, for logits known to lie in a short range around 0 (Eq. 9's β1·β2 ∈ [0, 1] or
  β1 + β2 ∈ [0, 2]), where exp can neither overflow nor underflow to a zero sum: that saves a
  scatter-max over the edges and a gather. The gradient is written out (y ⊙ (ȳ − Σ_seg y ⊙ ȳ)):
  it needs only the output y, where autodiff of exp/sum/divide would keep three (E, ...) arrays
  for the backward pass.
  """

  def one(x):
    if bounded:
      ex = jnp.exp(x)
    else:
      maxes = jax.ops.segment_max(x, segment_ids, num_segments, indices_are_sorted=indices_are_sorted)
      ex = jnp.exp(x - maxes[segment_ids])
    denom = jax.ops.segment_sum(ex, segment_ids, num_segments, indices_are_sorted=indices_are_sorted)
    return ex / denom[segment_ids]

  return per_channel(one, logits)


def per_channel(fn, *xs: jax.Array) -> jax.Array:
  """fn of each channel (x[:, c] of every (E, C, ...) argument), stacked on axis 1; fn(*xs) when C is 1 or absent.

  The same numbers as fn of the whole arrays, for elementwise fns and reductions over axis 0.
  Why per channel: XLA:CPU vectorises a fusion such as a softmax's exp(x − max[seg]) for an
  (E, H) operand but not for (E, C, H) with C = 2 or 3 (2.1 against 0.35 ns per element on one
  core, benchmarks/README.md).
  """
  if xs[0].ndim < 3 or xs[0].shape[1] == 1:
    return fn(*xs)
  return jnp.stack([fn(*(x[:, c] for x in xs)) for c in range(xs[0].shape[1])], axis=1)


def _segment_softmax_fwd(logits, segment_ids, num_segments, indices_are_sorted, bounded):
  y = segment_softmax(logits, segment_ids, num_segments, indices_are_sorted, bounded)
  return y, (y, segment_ids)


def _segment_softmax_bwd(num_segments, indices_are_sorted, bounded, res, ct):
  del bounded
  y, segment_ids = res

  def one(y, ct):
    dot = jax.ops.segment_sum(y * ct, segment_ids, num_segments, indices_are_sorted=indices_are_sorted)
    return y * (ct - dot[segment_ids])

  return per_channel(one, y, ct), None


segment_softmax.defvjp(_segment_softmax_fwd, _segment_softmax_bwd)


@jax.custom_vjp
def channels(x: jax.Array) -> tuple[jax.Array, ...]:
  """The channels x[:, c] of an (E, C, ...) array, as a tuple; their gradient is one stack, not a pad per channel.

  Autodiff of slicing pads each slice's cotangent back to x's shape and adds the pads, which
  XLA:CPU runs as C separate (E, C, ...) passes; here the cotangents are stacked once.
  """
  return tuple(x[:, c] for c in range(x.shape[1]))


def _channels_fwd(x):
  return channels(x), None


def _channels_bwd(_, cts):
  return (jnp.stack(cts, axis=1),)


channels.defvjp(_channels_fwd, _channels_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def softmax(x: jax.Array, axis: int) -> jax.Array:
  """`jax.nn.softmax` over a short axis (the modalities) whose backward pass keeps only its output.

  Autodiff of jax.nn.softmax keeps two arrays. It is written slice by slice along `axis`
  (maxima, sums and products of whole slices) because XLA:CPU does not vectorise exp and
  reductions over a short middle axis of an (E, M, H) array (benchmarks/README.md).
  """
  xs = _slices(x, axis)
  top = functools.reduce(jnp.maximum, xs)
  ex = [jnp.exp(v - top) for v in xs]
  total = sum(ex)
  return jnp.stack([e / total for e in ex], axis)


def _slices(x: jax.Array, axis: int) -> list[jax.Array]:
  return [jax.lax.index_in_dim(x, i, axis, keepdims=False) for i in range(x.shape[axis])]


def _softmax_fwd(x, axis):
  y = softmax(x, axis)
  return y, y


def _softmax_bwd(axis, y, ct):
  ys, cts = _slices(y, axis), _slices(ct, axis)
  dot = sum(a * b for a, b in zip(ys, cts))
  return (jnp.stack([a * (b - dot) for a, b in zip(ys, cts)], axis),)


softmax.defvjp(_softmax_fwd, _softmax_bwd)


@jax.custom_vjp
def linear(x: jax.Array, w: jax.Array) -> jax.Array:
  """x @ w (x (..., a), w (a, b)) whose weight gradient is computed as xᵀ · ȳ, not (ȳᵀ · x)ᵀ.

  The same numbers as autodiff of `x @ w`, ordered differently. Why: autodiff computes dw as
  dot(ȳ, x) contracting the node axis, so XLA:CPU lays ȳ out transposed, (b, N), and fuses the
  elementwise chain that produces ȳ (a LayerNorm's backward, the sum of a state's cotangents)
  into that transposed write, reading each of its inputs with a stride of b floats, several times
  slower than the same fusion written row by row (benchmarks/README.md, *Weight gradients with
  the input first*). With x first, XLA:CPU reads both operands as they are laid out.
  """
  return x @ w


def _linear_fwd(x, w):
  return x @ w, (x, w)


def _linear_bwd(res, ct):
  x, w = res
  rows = x.reshape(-1, x.shape[-1])
  dw = jax.lax.dot_general(rows, ct.reshape(-1, ct.shape[-1]), (((0,), (0,)), ((), ())))
  return (ct @ w.T).astype(x.dtype), dw.astype(w.dtype)  # the cotangents in the primals' dtypes, as autodiff's


linear.defvjp(_linear_fwd, _linear_bwd)


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
