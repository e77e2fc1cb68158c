"""Sampled sub-graphs as static-shape, padded `jraph.GraphsTuple`s with the full graph's layout.

A model is built from a `Schema` whose node and edge counts are static, so every batch must have
the same counts. A `Budget` fixes them — nodes per type and edges per relation — and
`padded_schema(schema, budget)` is the Schema the model is built with. `SubgraphBuilder.build`
lays a `SampledSubgraph` (`hgnn_ima_jax.sampling`) out exactly as `MMHN.to_graphs_tuple()` does:

* nodes contiguous by type in `node_types` order, each type's block `budget.nodes[t]` long: the
  sampled nodes first (for the target type the batch's targets first), then padding;
* edges grouped by relation in schema order, each relation's block `budget.edges[r]` long, sorted
  by receiver then sender: the sampled edges first, then padding edges.

Padding convention: every node type keeps at least one padding slot (budget >= real + 1), and every
padding edge of relation r runs from the *last* slot of r's source type to the *last* slot of its
destination type. The last slot is always padding, so no message reaches a real node, and it is the
largest id of its type, so the padding edges sort after the real ones. Padding nodes get zero
features and their type's `present` flags (so the attention loss sees nothing unusual). Masks:
`nodes['valid']` bool[N] and `edges['valid']` bool[E] mark the real entries (models that know them
can mask attention, L_att and statistics); the loss uses `PaddedSubgraph.mask`, True only at the
batch's targets. A budget with levels (neighbour sampling) adds `edges['hop']` int32[E], each edge's
receiver's hop (padding edges: past the last level), and lays each type's nodes out in hop order,
so that each level is a prefix of every block (see `budgets.Budget`). Other models' outputs on real nodes do not depend on padding at all: padding sends
only to padding, every softmax and sum is per receiver, and nothing else mixes nodes in eval mode.

Budgets (`hgnn_ima_jax.budgets`):

* `Budget.for_sampler(sampler, batch_size)`: an upper bound that no batch can exceed. Neighbour
  sampling: per hop, a relation's edges are at most the sum of the largest `frontier` values of
  min(in-degree, fanout) (`frontier` = the bound on the hop's frontier of its destination type),
  the next frontier of a type at most the edges that reach it, everything capped by the type sizes
  and relation sizes. HGSampling: nodes of type t at most batch·[t is target] + L·n_t (capped by
  N_t); a relation's induced edges at most the sum of the largest in-degrees over that many
  receivers, and of the largest out-degrees over that many senders.
* `BudgetLadder.calibrate`: a few buckets, from what a few sampled batches need growing geometrically
  up to that bound; `choose(sub)` gives the smallest that fits, so a training step compiles once per
  bucket, not per batch.
* `Budget.exact(schema, sub)`: just enough for one sub-graph (real counts, one padding slot per type).

Example::

  sampler = samplers.NeighborSampler(data, fanouts=[10, 5])
  builder = SubgraphBuilder(data, csr=sampler.csr)
  stream = batch_stream.BatchStream(sampler, data.splits['train'], 64, seed=0)
  ladder = BudgetLadder.calibrate(stream, Budget.for_sampler(sampler, batch_size=64), num_buckets=3)
  model = train.create_model(config, padded_schema(data.schema, ladder.rungs[-1]))  # same params for every rung
  for b in range(len(stream.plan(0))):                           # epoch 0
    padded = builder.build(stream.sample_batch(0, b).subgraph, ladder)  # the smallest rung that fits
    out = model.clone(schema=padded.schema).apply(variables, padded.graph, train=False)
    logits = out.logits[padded.target_positions]                 # the batch's targets, in batch order
    # or masked_cross_entropy(out.logits, padded.labels, padded.mask)
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Mapping

import numpy as np

from hgnn_ima_jax.budgets import Budget, BudgetLadder, check_fits, padded_schema
from hgnn_ima_jax.graph import MMHN, Schema
from hgnn_ima_jax.sampling import InCSR, SampledSubgraph, build_in_csr

if TYPE_CHECKING:
  import jraph


# --- features -------------------------------------------------------------------------------


class FeatureStore:
  """The host graph's feature rows, gathered by local ids per type into preallocated buffers."""

  def __init__(self, data: MMHN, dtype=np.float32):
    self.dtype = np.dtype(dtype)
    # Cast once here (a no-op for float32 data), so each gather is a plain row copy.
    self.features = {
        t: {m: np.asarray(data.features[t][m], self.dtype) for m in data.modalities} for t in data.node_types
    }

  def width(self, t: str, m: str) -> int:
    return int(self.features[t][m].shape[1])

  def gather(self, t: str, m: str, ids: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rows `ids` of type t's modality m; into `out` ((len(ids), width) of this dtype) when given."""
    x = self.features[t][m]
    if out is None:
      return np.take(x, ids, axis=0)
    if out.flags.c_contiguous and out.dtype == x.dtype and out.shape == (len(ids), x.shape[1]):
      np.take(x, ids, axis=0, out=out)
    else:  # a column sub-block of a wider buffer: not contiguous, so np.take cannot write into it
      out[...] = x[ids]
    return out


# --- padded sub-graphs ----------------------------------------------------------------------


@dataclasses.dataclass
class PaddedSubgraph:
  """A padded sub-graph ready for a model built from `schema`.

  graph: `jraph.GraphsTuple` of NumPy arrays in `MMHN.to_graphs_tuple`'s layout, plus
    nodes['valid'] bool[N] and edges['valid'] bool[E].
  schema: `padded_schema(full schema, budget)`.
  target_positions: int32[B] the batch's targets in the target type's block (logits rows), batch order.
  labels: int32[budget target nodes]: labels of the real target-type nodes, 0 for padding.
  mask: bool[budget target nodes]: True only at the batch's targets (the loss mask).
  node_ids: type -> local ids of the full graph of the real nodes, in block order.
  edge_positions: relation -> positions in the full graph's relation slice, in block order.
  edge_ids: relation -> rows of `data.edges[name]`, in block order.
  """

  graph: "jraph.GraphsTuple"
  schema: Schema
  budget: Budget
  target_positions: np.ndarray
  targets: np.ndarray
  labels: np.ndarray
  mask: np.ndarray
  node_ids: dict
  edge_positions: dict
  edge_ids: dict


def _locate(ids: np.ndarray, sorter: np.ndarray, query: np.ndarray, what: str) -> np.ndarray:
  """Positions in `ids` (unsorted; `sorter` = argsort(ids)) of each query id; they must all be there."""
  if len(query) == 0:
    return np.zeros((0,), np.int64)
  s = ids[sorter]
  i = np.minimum(np.searchsorted(s, query), max(len(s) - 1, 0))
  if len(s) == 0 or not np.array_equal(s[i], query):
    bad = query[(len(s) == 0) | (s[i] != query)][0] if len(s) else query[0]
    raise ValueError(
        f"sub-graph: {what} {int(bad)} is not among its sampled nodes. "
        "Fix: build it with the SubgraphBuilder of the graph it was sampled from (another graph's sub-graph gives "
        "such ids); from that graph's own sampler it is a sampler bug"
    )
  return sorter[i]


class SubgraphBuilder:
  """Pads `SampledSubgraph`s of one host graph (see the module docstring).

  Args:
    data: the host graph.
    csr: `build_in_csr(data)` (pass the sampler's `.csr` to build it only once).
    dtype: feature dtype of the padded graph.
  """

  def __init__(self, data: MMHN, *, csr: Mapping[str, InCSR] | None = None, dtype=np.float32):
    self.data, self.schema = data, data.schema
    self.csr = dict(csr) if csr is not None else build_in_csr(data)
    self.store = FeatureStore(data, dtype)
    self.labels = np.asarray(data.labels)

  def build(self, sub: SampledSubgraph, budget: "Budget | BudgetLadder") -> PaddedSubgraph:
    """`sub` padded to `budget` (a ladder: its smallest rung that fits); one-line error if it does not fit."""
    import jraph  # pylint: disable=import-outside-toplevel  # jraph imports JAX; the samplers do not need it

    schema = self.schema
    if isinstance(budget, BudgetLadder):
      budget = budget.choose(sub, schema)
    ps = padded_schema(schema, budget)
    check_fits(schema, sub, budget)
    types, rels = schema.node_types, schema.relations
    offs, n_total = ps.node_offsets, ps.total_nodes
    counts = sub.node_counts(types)

    valid = np.zeros((n_total,), bool)
    for t in range(len(types)):
      valid[offs[t] : offs[t] + counts[t]] = True
    features, present = {}, {}
    for mi, m in enumerate(schema.modalities):
      x = np.zeros((n_total, schema.max_feature_dim(mi)), self.store.dtype)
      for t, tname in enumerate(types):
        w = self.store.width(tname, m)
        self.store.gather(tname, m, sub.nodes[tname], out=x[offs[t] : offs[t] + counts[t], :w])
      features[m] = x
      present[m] = np.repeat([schema.present[t][mi] for t in range(len(types))], budget.nodes)

    sorters = {t: np.argsort(sub.nodes[t], kind="stable") for t in types}
    snd, rcv, etype, evalid, ehop, positions, edge_ids = [], [], [], [], [], {}, {}
    for ri, r in enumerate(rels):
      csr, pos = self.csr[r.name], np.asarray(sub.edges[r.name], np.int64)
      s_loc = _locate(sub.nodes[r.src], sorters[r.src], csr.src[pos], f"{r.src!r} sender of {r.name!r}")
      d_loc = _locate(sub.nodes[r.dst], sorters[r.dst], csr.dst[pos], f"{r.dst!r} receiver of {r.name!r}")
      order = np.lexsort((s_loc, d_loc))  # the full graph's order inside a relation: receiver, then sender
      s_loc, d_loc, pos = s_loc[order], d_loc[order], pos[order]
      ts, td = schema.type_id(r.src), schema.type_id(r.dst)
      n_pad = budget.edges[ri] - len(pos)
      snd += [offs[ts] + s_loc, np.full(n_pad, offs[ts] + budget.nodes[ts] - 1)]
      rcv += [offs[td] + d_loc, np.full(n_pad, offs[td] + budget.nodes[td] - 1)]
      etype.append(np.full(budget.edges[ri], ri, np.int32))
      evalid.append(np.arange(budget.edges[ri]) < len(pos))
      if budget.levels:  # the receiver's hop per edge (padding: past every level), for the trimmed layers
        ehop.append(np.concatenate([sub.edge_hops[r.name][order], np.full(n_pad, len(budget.levels))]))
      positions[r.name], edge_ids[r.name] = pos, csr.edge_id[pos]
    i32 = lambda xs: np.concatenate(xs).astype(np.int32) if xs else np.zeros((0,), np.int32)
    graph = jraph.GraphsTuple(
        nodes={
            "type": np.repeat(np.arange(len(types), dtype=np.int32), budget.nodes),
            "features": features,
            "present": present,
            "valid": valid,
        },
        edges={
            "type": i32(etype),
            "valid": np.concatenate(evalid) if evalid else np.zeros((0,), bool),
            **({"hop": i32(ehop)} if budget.levels else {}),
        },
        senders=i32(snd),
        receivers=i32(rcv),
        n_node=np.array([n_total], np.int32),
        n_edge=np.array([budget.total_edges], np.int32),
        globals=None,
    )

    tt = schema.target_type
    tpos = _locate(sub.nodes[tt], sorters[tt], np.asarray(sub.targets, np.int64), "target")
    n_tb = budget.nodes[schema.target_id]
    labels = np.zeros((n_tb,), np.int32)
    labels[: counts[schema.target_id]] = self.labels[sub.nodes[tt]]
    mask = np.zeros((n_tb,), bool)
    mask[tpos] = True
    return PaddedSubgraph(
        graph,
        ps,
        budget,
        tpos.astype(np.int32),
        np.asarray(sub.targets, np.int64),
        labels,
        mask,
        {t: sub.nodes[t] for t in types},
        positions,
        edge_ids,
    )
