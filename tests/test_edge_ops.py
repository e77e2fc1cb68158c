"""The hand-written backward passes (edge_ops, ops' softmaxes and channel split) equal autodiff of the plain formulas.

Each fused op is compared with `jax.vjp` of the same expression written with plain gathers, on
indices with repeats, unsorted rows, empty segments, broadcast rows (`+inf`) and under `vmap`
(the seed axis), and the memory they are for is checked: the gathered per-edge rows are not
among the residuals autodiff keeps.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src.ad_checkpoint import saved_residuals
from model_fixtures import make_graph, random_variables

from hgnn_ima_jax import attention, edge_ops, models, ops
from hgnn_ima_jax.losses import objective
from hgnn_ima_jax.ops import segment_softmax

E, N_A, N_B, M, H, DK, S = 37, 9, 14, 2, 3, 4, 11


def _arrays(seed=0):
  rng = np.random.default_rng(seed)
  a = jnp.asarray(rng.normal(size=(N_A, M, H, DK)), jnp.float32)
  b = jnp.asarray(rng.normal(size=(N_B * M, H, DK)), jnp.float32)
  a_index = jnp.asarray(rng.integers(0, N_A, E), jnp.int32)  # repeats, unsorted
  b_index = jnp.asarray(rng.integers(0, N_B * M, (E, M)), jnp.int32)
  seg = jnp.asarray(np.sort(rng.integers(0, S - 2, E)), jnp.int32)  # the last segments are empty
  return rng, a, a_index, b, b_index, seg


def _vjp_pair(fused, plain, primals, cotangent):
  out_f, vjp_f = jax.vjp(fused, *primals)
  out_p, vjp_p = jax.vjp(plain, *primals)
  np.testing.assert_allclose(out_f, out_p, rtol=1e-6, atol=1e-6)
  for g_f, g_p in zip(vjp_f(cotangent), vjp_p(cotangent)):
    np.testing.assert_allclose(g_f, g_p, rtol=1e-5, atol=1e-5)


def test_gather_dot_gradient_equals_autodiff():
  rng, a, a_index, b, b_index, _ = _arrays()
  fused = lambda a, b: edge_ops.gather_dot(a, a_index, b, b_index)
  plain = lambda a, b: jnp.sum(a[a_index] * b[b_index], -1)
  _vjp_pair(fused, plain, (a, b), jnp.asarray(rng.normal(size=(E, M, H)), jnp.float32))


def test_gather_dot_with_broadcast_rows_equals_autodiff():
  """`+inf`: the receivers' queries (N, 1, M, H, d_k) against per-(m', m) keys (rows, M', M, H, d_k)."""
  rng, a, a_index, _, _, _ = _arrays(1)
  b = jnp.asarray(rng.normal(size=(N_B, M, M, H, DK)), jnp.float32)
  rows = jnp.asarray(rng.integers(0, N_B, E), jnp.int32)
  fused = lambda a, b: edge_ops.gather_dot(a[:, None], a_index, b, rows)
  plain = lambda a, b: jnp.sum(a[a_index][:, None] * b[rows], -1)
  _vjp_pair(fused, plain, (a, b), jnp.asarray(rng.normal(size=(E, M, M, H)), jnp.float32))


@pytest.mark.parametrize("node_rows", [False, True], ids=["table_rows_per_channel", "node_rows"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["shared_weights", "per_channel_weights"])
def test_gather_segment_sum_gradient_equals_autodiff(per_channel, node_rows):
  """Rows per channel from a table (rows·M, H, d_k) by (E, M), or each sender's (M, H, d_k) by (E,)."""
  rng, a, a_index, b, b_index, seg = _arrays(2)
  if node_rows:  # e.g. every sender's values, gathered by `EdgeIndex.senders`
    b, b_index = a, a_index
  w = jnp.asarray(rng.normal(size=(E, M, H) if per_channel else (E, H)), jnp.float32)
  expand = (lambda w: w[..., None]) if per_channel else (lambda w: w[:, None, :, None])
  fused = lambda w, b: edge_ops.gather_segment_sum(w, b, b_index, seg, S)
  plain = lambda w, b: jax.ops.segment_sum(expand(w) * b[b_index], seg, S, indices_are_sorted=True)
  out = fused(w, b)
  assert not np.any(np.asarray(out[S - 2 :]))  # empty segments are zero
  _vjp_pair(fused, plain, (w, b), jnp.asarray(rng.normal(size=(S, M, H, DK)), jnp.float32))


@pytest.mark.parametrize("bounded", [False, True], ids=["shifted", "bounded"])
@pytest.mark.parametrize("shape", [(E, H), (E, 1, H), (E, M + 1, H)], ids=["no_channels", "one", "three"])
def test_segment_softmax_gradient_equals_autodiff(shape, bounded):
  """Also with several channels, which it computes one at a time (`ops.per_channel`), and without the max
  shift for logits in [0, 2] (`bounded`, Eq. 9's), against the shifted softmax."""
  rng, _, _, _, _, seg = _arrays(3)
  x = jnp.asarray(rng.uniform(0.0, 2.0, size=shape) if bounded else rng.normal(size=shape) * 5, jnp.float32)

  def plain(x):
    mx = jax.lax.stop_gradient(jax.ops.segment_max(x, seg, S, indices_are_sorted=True))
    ex = jnp.exp(x - mx[seg])
    return ex / jax.ops.segment_sum(ex, seg, S, indices_are_sorted=True)[seg]

  _vjp_pair(
      lambda x: segment_softmax(x, seg, S, indices_are_sorted=True, bounded=bounded),
      plain,
      (x,),
      jnp.asarray(rng.normal(size=x.shape), jnp.float32),
  )


@pytest.mark.parametrize("shape", [(E, 2, H), (E, 3, H), (E, 2, 2, H)], ids=["two", "three", "+inf"])
def test_modality_softmax_written_by_slices_equals_jax_softmax(shape):
  rng = np.random.default_rng(7)
  x = jnp.asarray(rng.normal(size=shape) * 5, jnp.float32)
  ct = jnp.asarray(rng.normal(size=shape), jnp.float32)
  _vjp_pair(lambda x: ops.softmax(x, 1), lambda x: jax.nn.softmax(x, axis=1), (x,), ct)


def test_channels_split_has_the_gradient_of_slicing():
  """`ops.channels`: a tuple of x[:, c] whose backward stacks the cotangents (an unused channel's is zero)."""
  rng = np.random.default_rng(8)
  x = jnp.asarray(rng.normal(size=(E, 3, H)), jnp.float32)
  f = lambda split: lambda x: (lambda c: jnp.sin(c[0]) * c[2])(split(x))
  fused, plain = f(ops.channels), f(lambda x: tuple(x[:, i] for i in range(x.shape[1])))
  _vjp_pair(fused, plain, (x,), jnp.asarray(rng.normal(size=(E, H)), jnp.float32))
  assert not np.any(np.asarray(jax.grad(lambda x: jnp.sum(fused(x)))(x))[:, 1])


@pytest.mark.parametrize("x_shape", [(E, 6), (E, M, 6)], ids=["rows", "rows_by_channel"])
def test_linear_has_the_gradients_of_matmul(x_shape):
  """`ops.linear` computes the weight gradient with x first; the values and both gradients are x @ w's,
  also vmapped over a seed axis (as training maps every op)."""
  rng = np.random.default_rng(9)
  x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
  w = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
  ct = jnp.asarray(rng.normal(size=x_shape[:-1] + (5,)), jnp.float32)
  _vjp_pair(ops.linear, jnp.matmul, (x, w), ct)
  two = lambda f: jax.vmap(lambda x, w: jnp.sum(jnp.tanh(f(x, w))), in_axes=(None, 0))
  ws = jnp.stack([w, -2 * w])
  got, want = (jax.grad(lambda x, ws: jnp.sum(two(f)(x, ws)), (0, 1))(x, ws) for f in (ops.linear, jnp.matmul))
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  # mixed dtypes (a bfloat16 input, a float32 weight): each gradient in its primal's dtype, as autodiff's
  xb = x.astype(jnp.bfloat16)
  got, want = (jax.grad(lambda x, w: jnp.sum(f(x, w)), (0, 1))(xb, w) for f in (ops.linear, jnp.matmul))
  for a, b in zip(got, want):
    assert a.dtype == b.dtype
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=1e-2, atol=1e-2)


def test_fused_ops_under_vmap_equal_autodiff():
  """The seed axis of training (`steps.map_seeds`) vmaps every op; the indices stay shared."""
  rng, a, a_index, b, b_index, seg = _arrays(4)
  a2, b2 = jnp.stack([a, 2 * a]), jnp.stack([b, -b])
  w2 = jnp.asarray(rng.normal(size=(2, E, H)), jnp.float32)

  def loss(fused, a, b, w):
    gd = edge_ops.gather_dot(a, a_index, b, b_index) if fused else jnp.sum(a[a_index] * b[b_index], -1)
    sm = segment_softmax(gd, seg, S, True)
    plain_sum = lambda t, i: jax.ops.segment_sum(w[:, None, :, None] * t[i], seg, S, indices_are_sorted=True)
    sum_op = functools.partial(edge_ops.gather_segment_sum, w) if fused else (lambda t, i, *_: plain_sum(t, i))
    agg = sum_op(b, b_index, seg, S)  # table rows per channel
    agg_nodes = sum_op(a, a_index, seg, S)  # each node's (M, H, d_k)
    return jnp.sum(sm**2) + jnp.sum(jnp.sin(agg)) + jnp.sum(jnp.cos(agg_nodes))

  for fused_grads, plain_grads in zip(
      jax.vmap(jax.grad(lambda *x: loss(True, *x), argnums=(0, 1, 2)))(a2, b2, w2),
      jax.vmap(jax.grad(lambda *x: loss(False, *x), argnums=(0, 1, 2)))(a2, b2, w2),
  ):
    np.testing.assert_allclose(fused_grads, plain_grads, rtol=1e-5, atol=1e-5)


def test_no_gathered_rows_are_kept_for_the_backward_pass():
  """The point of the ops: autodiff keeps the tables and the (E, M, H) weights, never an (E, M, H, d_k) gather."""
  _, a, a_index, b, b_index, seg = _arrays(5)

  def f(a, b):
    g = edge_ops.gather_dot(a, a_index, b, b_index)
    return jnp.sum(edge_ops.gather_segment_sum(jax.nn.sigmoid(g), b, b_index, seg, S) ** 2)

  shapes = [tuple(aval.shape) for aval, _ in saved_residuals(f, a, b)]
  assert (E, M, H, DK) not in shapes, shapes
  plain = lambda a, b: jnp.sum(
      jax.ops.segment_sum(jax.nn.sigmoid(jnp.sum(a[a_index] * b[b_index], -1))[..., None] * b[b_index], seg, S) ** 2
  )
  assert (E, M, H, DK) in [tuple(aval.shape) for aval, _ in saved_residuals(plain, a, b)]  # the check can fail


# --- the whole model: every parameter's gradient equals autodiff through plain gathers -----------


def _plain_segment_softmax(logits, segment_ids, num_segments, indices_are_sorted=False, bounded=False):
  del bounded  # the reference always shifts
  mx = jax.lax.stop_gradient(jax.ops.segment_max(logits, segment_ids, num_segments, indices_are_sorted))
  ex = jnp.exp(logits - mx[segment_ids])
  return ex / jax.ops.segment_sum(ex, segment_ids, num_segments, indices_are_sorted)[segment_ids]


def _plain_gather_segment_sum(w, b, b_index, seg, num_segments):
  rows = b[b_index]
  w = w[:, None, :, None] if w.ndim == rows.ndim - 2 else w[..., None]
  return jax.ops.segment_sum(w * rows, seg, num_segments, indices_are_sorted=True)


PLAIN = {
    (edge_ops, "gather_dot"): lambda a, ai, b, bi: jnp.sum(a[ai] * b[bi], -1),
    (edge_ops, "gather_segment_sum"): _plain_gather_segment_sum,
    (attention, "segment_softmax"): _plain_segment_softmax,
    (attention, "softmax"): jax.nn.softmax,
}


@functools.lru_cache(maxsize=None)
def _model_grads(name, fields=(), how="fused"):
  """Every parameter's gradient of the objective (train mode, fixed dropout key) on a small DOUBAN-like graph.

  fields: sorted (key, value) pairs; how: 'fused' (the library's ops), 'plain' (autodiff through plain gathers,
  `PLAIN` patched in while it traces) or 'remat' (`model.remat`). Cached: the fused gradients serve both tests below.
  Returns (gradients, the parameters' tree).
  """
  fields = dict(fields, **({"remat": True} if how == "remat" else {}))
  g = make_graph(2, widths="mixed" if fields.get("projection") == "per_channel" else "equal")
  gt = g.to_graphs_tuple()
  module = models.build_model(name, g.schema, hidden=8, heads=2, num_layers=2, **fields)
  shapes = jax.eval_shape(lambda: module.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, gt))
  v = jax.tree_util.tree_map(jnp.asarray, random_variables(shapes, seed=0, dtype=np.float32))
  labels, mask = jnp.asarray(g.labels), jnp.asarray(g.split_mask("train"), jnp.float32)

  def loss(params):
    out, _ = module.apply(
        {**v, "params": params}, gt, train=True, rngs={"dropout": jax.random.PRNGKey(3)}, mutable=["batch_stats"]
    )
    return objective(out, labels, mask, ind_loss=True, att_weight=1.0)[0]

  with pytest.MonkeyPatch.context() as patch:
    for (owner, attr), fn in PLAIN.items() if how == "plain" else ():
      patch.setattr(owner, attr, fn)
    return jax.tree_util.tree_map(np.asarray, jax.jit(jax.grad(loss))(v["params"])), v["params"]


def _assert_usable_gradients(grads, params):
  """Finite, one per parameter, not all zero; U^m of the first layer and BatchNorm's parameters reached.

  (Finite gradients for these models are checked here, on the gradients this module compares value by value;
  tests/test_model_properties.py checks the other model names.)"""
  flat = jax.tree_util.tree_leaves_with_path(grads)
  assert len(flat) == len(jax.tree_util.tree_leaves(params))
  for path, x in flat:
    assert np.all(np.isfinite(x)), jax.tree_util.keystr(path)
  assert sum(float(np.sum(x**2)) for _, x in flat) > 0
  if "u_modal" in params.get("encoder", {}).get("layer_0", {}):
    assert float(np.max(np.abs(grads["encoder"]["layer_0"]["u_modal"]))) > 0
  bn = [x for p, x in flat if "bn_" in jax.tree_util.keystr(p)]  # FULL: the zero-filled columns have zero variance
  assert not bn or any(np.any(x != 0) for x in bn)
  return bn


@pytest.mark.parametrize(
    "name,fields",
    [
        ("hgnn_ima", {}),
        ("hgnn_ima", {"combine": "add", "beta_norm": "paper", "input_batch_norm": True, "projection": "per_channel"}),
        ("hgnn_ima+inf", {}),
        ("hgnn_ima-nei", {}),
        ("hgnn_ima-cross", {}),
        ("hgt_late", {}),
    ],
    ids=["hgnn_ima", "hgnn_ima-full3-paper-norm", "+inf", "-nei", "-cross", "hgt_late"],
)
def test_model_gradients_equal_autodiff_through_plain_gathers(name, fields):
  fused, params = _model_grads(name, tuple(sorted(fields.items())))
  bn = _assert_usable_gradients(fused, params)
  assert bool(bn) == bool(fields.get("input_batch_norm"))
  plain, _ = _model_grads(name, tuple(sorted(fields.items())), "plain")
  flat_f, flat_p = jax.tree_util.tree_leaves_with_path(fused), jax.tree_util.tree_leaves(plain)
  assert len(flat_f) == len(flat_p)
  for (path, gf), gp in zip(flat_f, flat_p):
    scale = max(float(np.max(np.abs(gp))), 1e-3)
    np.testing.assert_allclose(gf / scale, gp / scale, atol=2e-5, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize(
    "name,fields",
    [
        ("hgnn_ima", {"input_batch_norm": True, "projection": "per_channel"}),
        ("hgnn_ima+inf", {}),
        ("hgnn_ima-nei", {}),
        ("hgt_late", {}),
    ],
    ids=["hgnn_ima-full-profile", "+inf", "-nei", "hgt_late"],
)
def test_remat_gives_the_same_gradients(name, fields):
  """`model.remat` changes no gradient: slot tables and the sender-side message table rebuilt in the backward pass,
  Eq. 10 from that table instead of W^msg after the sum (`HGNNIMALayer.messages`), the projection recomputed."""
  (kept, params), (rebuilt, _) = (_model_grads(name, tuple(sorted(fields.items())), how) for how in ("fused", "remat"))
  _assert_usable_gradients(kept, params)
  assert jax.tree.structure(kept) == jax.tree.structure(rebuilt)  # the same variables, so checkpoints carry over
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(kept), jax.tree_util.tree_leaves(rebuilt)):
    scale = max(float(np.max(np.abs(a))), 1e-3)
    np.testing.assert_allclose(b / scale, a / scale, atol=2e-5, err_msg=jax.tree_util.keystr(path))


def test_per_channel_slot_table_equals_the_channel_block_diagonal_product():
  """Eq. 4's slot table, one product per channel: the rows of (x with its channels side by side) @ the
  channel-block-diagonal matrix of w, plus each channel's bias, in slot order (relation-major), as a dense
  product would give them."""
  rng = np.random.default_rng(9)
  n, r, d = 5, 3, H * DK
  x = jnp.asarray(rng.normal(size=(n, M, d)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(M, d, r * d)), jnp.float32)
  b = jnp.asarray(rng.normal(size=(M, r * d)), jnp.float32)
  # block (m, m) of the (M·d, M·r·d) matrix; columns (channel, relation, component)
  big = np.zeros((M * d, M, r, d), np.float32)
  for m in range(M):
    big[m * d : (m + 1) * d, m] = np.asarray(w[m]).reshape(d, r, d)
  dense = (np.asarray(x).reshape(n, M * d) @ big.reshape(M * d, M * r * d)).reshape(n, M, r, d)
  dense = dense + np.asarray(b).reshape(1, M, r, d)
  layout = tuple((0, j) for j in reversed(range(r)))  # the slot order need not be the product's
  expected = np.concatenate([dense[:, :, j].reshape(n, M, H, DK) for _, j in layout])
  got = edge_ops.slot_table(layout, (M, H, DK), ((x, w, b),))
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_a_rebuilt_table_is_not_kept_for_the_backward_pass():
  """With `Rebuilt`, autodiff keeps the table's factors, not the table; the gradient reaches the factors."""
  rng, a, a_index, _, b_index, seg = _arrays(6)
  x = jnp.asarray(rng.normal(size=(N_B, M, H * DK)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(H * DK, H * DK)), jnp.float32)
  build = functools.partial(edge_ops.product_table, (H, DK))

  def f(rebuilt, a, x, w):
    table = edge_ops.Rebuilt(build, ((x, w),)) if rebuilt else build(((x, w),))
    g = edge_ops.gather_dot(a, a_index, table, b_index)
    return jnp.sum(edge_ops.gather_segment_sum(jax.nn.sigmoid(g), table, b_index, seg, S) ** 2)

  shapes = lambda rebuilt: [tuple(v.shape) for v, _ in saved_residuals(functools.partial(f, rebuilt), a, x, w)]
  assert (N_B * M, H, DK) in shapes(False) and (N_B * M, H, DK) not in shapes(True)
  grads = [jax.grad(functools.partial(f, r), argnums=(0, 1, 2))(a, x, w) for r in (False, True)]
  for kept, rebuilt in zip(*grads):
    np.testing.assert_allclose(rebuilt, kept, rtol=1e-5, atol=1e-5)
