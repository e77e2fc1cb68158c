"""`config.model.remat` with BatchNorm: the input projection recomputed late equals flax's BatchNorm + Dense.

`projection.BatchNormStats` + `bn_dense` under `edge_ops.recompute_after_cotangent` replace
`nn.BatchNorm` then `nn.Dense` when the projection is recomputed; the variables (names, values,
running statistics), outputs and gradients must be flax's, with and without padding rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src.ad_checkpoint import saved_residuals
from model_fixtures import fast_jit, make_graph

from hgnn_ima_jax.projection import InputProjection


def _setup(masked: bool):
  g = make_graph(3, widths="mixed")
  gt = g.to_graphs_tuple()
  feats = {m: jnp.asarray(x) for m, x in gt.nodes["features"].items()}
  n = g.schema.total_nodes
  valid = jnp.asarray(np.random.default_rng(1).random(n) > 0.3) if masked else None
  channels = tuple((m,) for m in range(len(g.schema.modalities)))
  mods = [InputProjection(g.schema, channels, 8, "per_channel", True, "tanh", recompute=r) for r in (False, True)]
  return feats, valid, mods


def _loss(module, variables, feats, valid):
  """A fixed weighting of every output row, with the updated running statistics."""

  def f(params, feats):
    out, mut = module.apply(
        {"params": params, "batch_stats": variables["batch_stats"]},
        feats,
        train=True,
        valid=valid,
        mutable=["batch_stats"],
    )
    total = sum(jnp.sum(o * jnp.cos(jnp.arange(o.size, dtype=o.dtype).reshape(o.shape))) for o in out)
    return total, (out, mut)

  return f


@pytest.mark.parametrize("masked", [False, True], ids=["all-rows", "padding-rows"])
def test_recomputed_projection_equals_flax_batch_norm_and_dense(masked):
  feats, valid, (flax_mod, late_mod) = _setup(masked)
  key = jax.random.PRNGKey(0)
  v_flax, v_late = flax_mod.init(key, feats, train=False), late_mod.init(key, feats, train=False)
  assert jax.tree.structure(v_flax) == jax.tree.structure(v_late)
  for a, b in zip(jax.tree.leaves(v_flax), jax.tree.leaves(v_late)):
    np.testing.assert_array_equal(a, b)
  # Non-trivial BatchNorm parameters, so that scale and bias matter.
  rng = np.random.default_rng(2)
  params = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), v_flax["params"])
  variables = {**v_flax, "params": params}

  # compiled: eager op-by-op dispatch of the backward passes cost more than compiling them
  (_, (out_f, mut_f)), grads_f = fast_jit(
      jax.value_and_grad(_loss(flax_mod, variables, feats, valid), (0, 1), has_aux=True)
  )(params, feats)
  (_, (out_l, mut_l)), grads_l = fast_jit(
      jax.value_and_grad(_loss(late_mod, variables, feats, valid), (0, 1), has_aux=True)
  )(params, feats)
  for a, b in zip(out_f, out_l):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(mut_f), jax.tree.leaves(mut_l)):
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7, err_msg=jax.tree_util.keystr(path))
  # Parameters, and the features through BatchNorm's batch statistics (a width-1 input's MLP would need it).
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(grads_f), jax.tree.leaves(grads_l)):
    scale = max(float(np.max(np.abs(a))), 1e-3)
    np.testing.assert_allclose(b / scale, a / scale, atol=1e-5, err_msg=jax.tree_util.keystr(path))
  # Eval mode reads the running statistics.
  ev = {"params": params, **mut_f}
  for a, b in zip(flax_mod.apply(ev, feats, train=False), late_mod.apply(ev, feats, train=False)):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_recomputed_projection_keeps_only_its_inputs():
  """Per (type, channel) block, flax's path keeps x − mean and the normalised inputs, both (N_t, D), for
  the backward pass; the recomputed one keeps only the input block itself (the features' own slice)."""
  feats, valid, mods = _setup(False)

  def kept(module):
    v = module.init(jax.random.PRNGKey(0), feats, train=False)
    f = lambda p: _loss(module, v, feats, valid)(p, feats)[0]
    rows = [(r.shape, src) for r, src in saved_residuals(f, v["params"]) if r.ndim == 2 and r.shape[0] > 1]
    return [(shape, src) for shape, src in rows if "argument" not in src]  # the kernels are parameters

  blocks = 9  # 3 node types x 3 channels
  flax_kept, late_kept = kept(mods[0]), kept(mods[1])
  assert len(flax_kept) == 2 * blocks, flax_kept
  assert len(late_kept) == blocks and all("_inputs" in src for _, src in late_kept), late_kept
