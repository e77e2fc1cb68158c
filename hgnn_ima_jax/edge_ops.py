"""Per-edge products of node tables whose backward pass keeps no per-edge copies of the tables.

The attention layers read tables per edge: the senders' keys and values, and per (relation,
receiver) slot the receiver's queries times W^attᵀ (Eq. 2) or U^mᵀ (Eq. 4); with `remat`, the
senders' messages V W^msg (Eq. 10) from a sender-side table. Written as plain
`table[index]` gathers, autodiff keeps every gathered (E, M, H, d_k) array alive from the
forward pass to the backward pass, 512 bytes per edge each at M = 2, d = 64, 4 such gathers in
every layer: the largest part of a training step's XLA temp memory (issue #17; benchmarks/README.md,
*Memory per edge*).

The functions here compute the same values, but their backward passes gather the tables
again instead (a gather costs one read of E rows, cheaper on XLA:CPU than keeping and later
re-reading the copy). What is saved for the backward pass is the node tables, the index
arrays and the per-edge weights (E, M, H): d_k times less than the gathered tables.

A slot or sender table may also be passed as `Rebuilt` (`LayerOptions.remat`): then not even the
table is kept; the backward pass builds it again from its factors. XLA:CPU would merge that
rebuild with the forward's identical product, or run it early, unless it depends on the
cotangent (`_after`): `jax.checkpoint`'s barriers do not survive its pipeline.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from hgnn_ima_jax.ops import linear


@functools.partial(jax.tree_util.register_dataclass, data_fields=["factors"], meta_fields=["build"])
@dataclasses.dataclass(frozen=True)
class Rebuilt:
  """A table the backward pass rebuilds instead of keeping: `build(factors)`, e.g. node keys @ relation matrices.

  The edge ops take it wherever they take a table. The forward pass builds the table, uses
  it and drops it; the backward pass builds it again from `factors` (which autodiff keeps
  anyway: they are the layer's keys or values and its weights) and differentiates `build`.
  """

  build: Callable  # factors -> table; static (hashable), e.g. functools.partial(product_table, shape)
  factors: Any  # a pytree of arrays


def product_table(row_shape: tuple[int, ...], factors) -> jax.Array:
  """The rows of x @ w for each (x, w) of `factors`, reshaped to (-1, *row_shape) and stacked (a sender table)."""
  return jnp.concatenate([(x @ w).reshape((-1,) + row_shape) for x, w in factors], axis=0)


def slot_table(layout: tuple[tuple[int, int], ...], row_shape: tuple[int, ...], factors) -> jax.Array:
  """The receivers' side of a per-edge product: one row per (relation, receiver) slot, in slot order.

  Args:
    layout: per relation in slot order, (i, j): its rows are block j of factors[i]'s product
      (`edge_layout.slot_table_layout`).
    row_shape: the shape of one slot's row, e.g. (M, H, d_k).
    factors: per receiver type, (x, w, b): its receivers' states x (n, M, d), its relations'
      matrices side by side, w (d, R·c) for every channel alike, or (M, d, R·c) one per channel
      (one product per channel: half the multiplications of a channel-block-diagonal matrix),
      and a bias b (R·c,) or (M, R·c) (the query bias times those matrices).
  Returns:
    (Σ_r n_r, *row_shape): block j of factor i holds x[:, m] @ w[..., j·c:(j+1)·c] + b per channel m.
  """
  width = math.prod(row_shape[1:])  # one channel's columns per relation
  products = []
  for x, w, b in factors:
    n, m = x.shape[:2]
    y = linear(x, w) + b if w.ndim == 2 else jnp.stack([linear(x[:, c], w[c]) + b[c] for c in range(m)], axis=1)
    products.append(y.reshape(n, m, -1, width))
  return jnp.concatenate([products[i][:, :, j].reshape((-1,) + row_shape) for i, j in layout], axis=0)


def materialise(table) -> jax.Array:
  """A table as an array (a `Rebuilt` one built)."""
  return table.build(table.factors) if isinstance(table, Rebuilt) else table


def _after(ct: jax.Array, tree):
  """`tree`'s float arrays plus 0 · one value of `ct`: the same values, computed only once `ct` exists.

  XLA:CPU expands `optimization_barrier` early in its pipeline, so it neither orders the
  backward pass's recomputation after the cotangent nor keeps CSE from merging it with the
  forward pass's identical computation (which keeps the forward's result alive instead). A
  data dependency does both; XLA does not fold 0 · x for floats (x may be NaN or infinite).
  """
  dep = 0 * ct.reshape(-1)[0]
  return jax.tree.map(lambda x: x + dep.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def recompute_after_cotangent(fn: Callable) -> Callable:
  """`fn` whose backward pass recomputes it from its arguments, once the cotangent exists.

  What `jax.checkpoint` would do, but XLA:CPU cannot run the recomputation early (`_after`):
  with `nn.remat` the input projection's BatchNorm outputs (N, 512) were rebuilt at the start
  of the backward pass and alive through every layer's backward (benchmarks/README.md,
  *Memory per edge*). Only the arguments are kept; all of them must be arrays.
  """

  @jax.custom_vjp
  def late(*args):
    return fn(*args)

  def fwd(*args):
    return fn(*args), args

  def bwd(args, ct):
    _, vjp = jax.vjp(fn, *_after(ct, args))
    return vjp(ct)

  late.defvjp(fwd, bwd)
  return late


def _rebuild_vjp(table, ct):
  """(the table as an array, the vjp of its build) in a backward pass: a `Rebuilt` one rebuilt after `ct`."""
  if isinstance(table, Rebuilt):
    built, vjp = jax.vjp(table.build, _after(ct, table.factors))
    return built, lambda d: Rebuilt(table.build, vjp(d)[0])
  return table, lambda d: d


def _scatter_rows(table: jax.Array, index: jax.Array, rows: jax.Array, after: jax.Array) -> jax.Array:
  """The transpose of `table[index]`: Σ of `rows` into a zero array like `table` at `index`.

  Axes along which `table[index]` was broadcast (size 1 there, larger in `rows`) are summed
  first. The zeros depend on `after`, the cotangent (`_after`): a constant zero table would be
  one buffer shared by every scatter of its shape, copied for each, and XLA:CPU's scheduler
  runs those copies early, so that all layers' zeroed gradient tables were alive at the peak
  of the backward pass (benchmarks/README.md, *Memory per edge*).
  """
  gathered = index.shape + table.shape[1:]
  axes = tuple(i for i, (g, r) in enumerate(zip(gathered, rows.shape)) if g == 1 and r != 1)
  if axes:
    rows = jnp.sum(rows, axis=axes, keepdims=True)
  return _after(after, jnp.zeros(table.shape, table.dtype)).at[index].add(rows.astype(table.dtype))


@jax.custom_vjp
def gather_dot(a: jax.Array, a_index: jax.Array, b: jax.Array, b_index: jax.Array) -> jax.Array:
  """Σ_c a[a_index][..., c] · b[b_index][..., c]: per-edge dot products of gathered rows (Eqs. 2 and 4).

  Args:
    a: (N_a, ..., d_k) table, e.g. every sender's keys (N, M, H, d_k).
    a_index: (E,) rows of `a`.
    b: (N_b, ..., d_k) table (or `Rebuilt`), e.g. a slot table (S, M, H, d_k).
    b_index: (E,) or (E, M) rows of `b`, so that b[b_index] has the shape of a[a_index] or
      broadcasts with it (`+inf`'s keys (N, 1, M', H, d_k) against (E, M, M', H, d_k)).
  Returns:
    `jnp.sum(a[a_index] * b[b_index], -1)`, e.g. (E, M, H).
  """
  return jnp.sum(a[a_index] * materialise(b)[b_index], axis=-1)


def _gather_dot_fwd(a, a_index, b, b_index):
  return gather_dot(a, a_index, b, b_index), (a, a_index, b, b_index)


def _gather_dot_bwd(res, ct):
  a, a_index, b, b_index = res
  ct, a, b = jax.lax.optimization_barrier((ct, a, b))
  b, b_vjp = _rebuild_vjp(b, ct)
  ct_e = ct[..., None]
  da = _scatter_rows(a, a_index, ct_e * b[b_index], ct)
  db = _scatter_rows(b, b_index, ct_e * a[a_index], ct)
  return da, None, b_vjp(db), None


gather_dot.defvjp(_gather_dot_fwd, _gather_dot_bwd)


def _edge_weights(w: jax.Array, rows_ndim: int) -> jax.Array:
  """w (E, H) or (E, M, H) broadcast against gathered rows (E, M, H, d_k)."""
  if w.ndim == rows_ndim - 2:  # one weight for every channel
    return w[:, None, :, None]
  return w[..., None]


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def gather_segment_sum(w: jax.Array, b: jax.Array, b_index: jax.Array, seg: jax.Array, num_segments: int) -> jax.Array:
  """Σ_{e ∈ segment} w_e · b[b_index_e]: weighted sums of gathered rows per segment (Eq. 10).

  Args:
    w: (E, H) one weight per edge and head for every channel, or (E, M, H) per channel.
    b: (N_b, H, d_k) table (one row per sender, relation and channel).
    b_index: (E, M) rows of `b`: b[b_index] is (E, M, H, d_k).
    seg: (E,) non-decreasing segment ids in [0, num_segments).
    num_segments: static.
  Returns:
    (num_segments, M, H, d_k); empty segments are zero.
  """
  rows = materialise(b)[b_index]
  return jax.ops.segment_sum(_edge_weights(w, rows.ndim) * rows, seg, num_segments, indices_are_sorted=True)


def _gather_segment_sum_fwd(w, b, b_index, seg, num_segments):
  return gather_segment_sum(w, b, b_index, seg, num_segments), (w, b, b_index, seg)


def _gather_segment_sum_bwd(num_segments, res, ct):
  del num_segments
  w, b, b_index, seg = res
  ct, b = jax.lax.optimization_barrier((ct, b))
  b, b_vjp = _rebuild_vjp(b, ct)
  ct_e = ct[seg]  # (E, M, H, d_k): each edge's segment's cotangent
  shared = w.ndim == ct.ndim - 2  # one weight for every channel
  if b_index.ndim == 1:  # b (N, M, H, d_k): each channel's dot products gather their own rows and
    # cotangents, which XLA fuses into the products instead of writing (E, M, H, d_k) copies of both
    dws = [jnp.sum(ct[:, m][seg] * b[:, m][b_index], axis=-1) for m in range(ct.shape[1])]
  else:  # b (rows·M, H, d_k) by (E, M) (`model.remat`'s message table): the copies, which need less
    # memory at the backward pass's peak than the fused form (benchmarks/README.md)
    rows = b[b_index]
    dws = [jnp.sum(ct_e[:, m] * rows[:, m], axis=-1) for m in range(ct.shape[1])]
  # shared: Σ over channels of slices (E, H), which XLA:CPU runs faster than one reduction over the
  # channel and d_k axes of (E, M, H, d_k) (benchmarks/README.md, *Channels one at a time*)
  dw = sum(dws) if shared else jnp.stack(dws, axis=1)
  db = _scatter_rows(b, b_index, _edge_weights(w, ct.ndim) * ct_e, ct)
  return dw.astype(w.dtype), b_vjp(db), None, None


gather_segment_sum.defvjp(_gather_segment_sum_fwd, _gather_segment_sum_bwd)
