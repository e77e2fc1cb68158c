"""Dropout whose mask costs half the random hashes of `flax.linen.Dropout`'s.

With JAX's default `jax_threefry_partitionable`, every 32-bit word that `jax.random.bernoulli`
draws is one threefry-2x32 hash of its own counter, the hash's two output words XORed into one.
A training step draws one word per node state and layer (plus the fusion's), and XLA:CPU
recomputes the hashes wherever it fuses the mask into a consumer, forward and backward, a visible
share of a step's op time (benchmarks/README.md, *Q and W^msg folded, half the dropout hashes*). Here
each hash gives two words, each one mask element, so a mask costs half the hashes.

The distribution is the same Bernoulli(1 − rate) (to 2⁻³², finer than `jax.random.bernoulli`'s
2⁻²³ float32 uniforms), scaled by 1 / (1 − rate) as `flax.linen.Dropout` does; the random stream
is a different one. Keys that are not threefry keys (e.g. `impl='rbg'`), and masks of 2³² or more
elements, use `jax.random.bernoulli`.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry_2x32


def bernoulli_mask(key: jax.Array, keep: float, shape: tuple[int, ...]) -> jax.Array:
  """Bool mask of `shape`, each element True with probability `keep`, from ⌈n/2⌉ threefry hashes."""
  data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
  n = math.prod(shape)
  if data.shape != (2,) or data.dtype != jnp.uint32 or n >= 2**32:
    return jax.random.bernoulli(key, keep, shape)
  half = (n + 1) // 2
  words = threefry_2x32(data, jnp.arange(2 * half, dtype=jnp.uint32))  # hash i gives words i and half + i
  threshold = np.uint32(min(round(keep * 2**32), 2**32 - 1))
  return (words[:n] < threshold).reshape(shape)


class Dropout(nn.Module):
  """`flax.linen.Dropout` (rate, `deterministic`, the 'dropout' RNG stream) drawing its mask by `bernoulli_mask`."""

  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    if self.rate == 1.0:
      return jnp.zeros_like(x)
    keep = 1.0 - self.rate
    mask = bernoulli_mask(self.make_rng("dropout"), keep, x.shape)
    return jnp.where(mask, x / keep, jnp.zeros_like(x))
