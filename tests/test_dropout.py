"""`hgnn_ima_jax.dropout`: the mask's distribution, its determinism, vmap over seeds, and the module's scaling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgnn_ima_jax.dropout import Dropout, bernoulli_mask


@pytest.mark.parametrize("keep", [0.4, 0.5, 0.9])
def test_mask_is_bernoulli_keep_in_both_words_of_each_hash(keep):
  """Each hash gives elements i and half + i: both halves are Bernoulli(keep), and not correlated."""
  n = 400_001  # odd: the last hash's second word is dropped
  m = np.asarray(bernoulli_mask(jax.random.key(3), keep, (n,)), np.float64)
  half = (n + 1) // 2
  sigma = np.sqrt(keep * (1 - keep) / half)
  for part in (m[:half], m[half:]):
    assert abs(part.mean() - keep) < 5 * sigma, (part.mean(), keep)
  a, b = m[: n - half] - keep, m[half:] - keep
  corr = np.mean(a * b) / (keep * (1 - keep))
  assert abs(corr) < 5 / np.sqrt(n - half), corr


def test_mask_is_a_function_of_the_key():
  shape = (37, 2, 5)
  k1, k2 = jax.random.key(1), jax.random.key(2)
  np.testing.assert_array_equal(bernoulli_mask(k1, 0.5, shape), bernoulli_mask(k1, 0.5, shape))
  assert np.any(np.asarray(bernoulli_mask(k1, 0.5, shape)) != np.asarray(bernoulli_mask(k2, 0.5, shape)))
  raw = jax.random.PRNGKey(1)  # a raw uint32[2] key gives the same mask as the typed key of the same data
  np.testing.assert_array_equal(
      bernoulli_mask(raw, 0.5, shape), bernoulli_mask(jax.random.wrap_key_data(raw), 0.5, shape)
  )


def test_mask_under_vmap_equals_each_key_alone():
  """Training vmaps the seeds (`steps.map_seeds`), so the key is batched."""
  keys = jax.random.split(jax.random.key(4), 3)
  batched = jax.vmap(lambda k: bernoulli_mask(k, 0.3, (11, 4)))(keys)
  for i in range(3):
    np.testing.assert_array_equal(batched[i], bernoulli_mask(keys[i], 0.3, (11, 4)))


def test_other_key_kinds_use_jax_bernoulli():
  key = jax.random.key(5, impl="rbg")
  np.testing.assert_array_equal(bernoulli_mask(key, 0.6, (50,)), jax.random.bernoulli(key, 0.6, (50,)))


def test_dropout_module_scales_kept_entries_as_flax():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 2, 8)), jnp.float32) + 3.0  # no zeros
  rngs = {"dropout": jax.random.PRNGKey(7)}
  y = np.asarray(Dropout(0.25).apply({}, x, deterministic=False, rngs=rngs))
  kept = y != 0
  np.testing.assert_allclose(y[kept], np.asarray(x)[kept] / 0.75, rtol=1e-6)
  assert 0.6 < kept.mean() < 0.9
  np.testing.assert_array_equal(Dropout(0.25).apply({}, x, deterministic=True), x)
  np.testing.assert_array_equal(Dropout(0.0).apply({}, x, deterministic=False, rngs=rngs), x)
  np.testing.assert_array_equal(Dropout(1.0).apply({}, x, deterministic=False, rngs=rngs), 0.0)
