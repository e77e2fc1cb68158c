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
batch's targets. Other models' outputs on real nodes do not depend on padding at all: padding sends
only to padding, every softmax and sum is per receiver, and nothing else mixes nodes in eval mode.

Budgets:

* `Budget.for_sampler(sampler, batch_size)`: an upper bound that no batch can exceed. Neighbour
  sampling: per hop, a relation's edges are at most the sum of the largest `frontier` values of
  min(in-degree, fanout) (`frontier` = the bound on the hop's frontier of its destination type),
  the next frontier of a type at most the edges that reach it, everything capped by the type sizes
  and relation sizes. HGSampling: nodes of type t at most batch·[t is target] + L·n_t (capped by
  N_t); a relation's induced edges at most the sum of the largest in-degrees over that many
  receivers, and of the largest out-degrees over that many senders.
* `BudgetLadder`: a few geometric buckets up to that bound (`geometric`), or starting from what a
  few sampled batches need (`calibrate`); `choose(sub)` gives the smallest that fits, so a training
  step compiles once per bucket, not per batch.
* `Budget.exact(schema, sub)`: just enough for one sub-graph (real counts, one padding slot per type).

Example::

  sampler = sampling.NeighborSampler(data, fanouts=[10, 5])
  builder = SubgraphBuilder(data, csr=sampler.csr)
  ladder = BudgetLadder.geometric(Budget.for_sampler(sampler, batch_size=64), num_buckets=3)
  model = train.create_model(config, padded_schema(data.schema, ladder.rungs[-1]))  # same params for every rung
  for batch in sampling.BatchStream(sampler, data.splits['train'], 64, seed=0).epoch_batches():
    padded = builder.build(batch.subgraph, ladder)              # the smallest rung that fits
    out = model.clone(schema=padded.schema).apply(variables, padded.graph, train=False)
    logits = out.logits[padded.target_positions]                 # the batch's targets, in batch order
    # or masked_cross_entropy(out.logits, padded.labels, padded.mask)
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from hgnn_ima_jax.graph import MMHN, Schema
from hgnn_ima_jax.sampling import InCSR, SampledSubgraph, build_in_csr

if TYPE_CHECKING:
  import jraph

FIX_BUDGET = "use Budget.for_sampler(...) or BudgetLadder.choose(sub), or raise that entry of the budget"


# --- budgets --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Budget:
  """Static sizes of a padded sub-graph: nodes per type (incl. >= 1 padding slot), edges per relation."""

  nodes: tuple[int, ...]
  edges: tuple[int, ...]

  def __post_init__(self):
    object.__setattr__(self, "nodes", tuple(int(n) for n in self.nodes))
    object.__setattr__(self, "edges", tuple(int(e) for e in self.edges))
    if any(n < 1 for n in self.nodes):
      raise ValueError(f"Budget.nodes={self.nodes}: every type needs >= 1 slot (the padding slot). "
                       "Fix: give each type at least real + 1 nodes")
    if any(e < 0 for e in self.edges):
      raise ValueError(f"Budget.edges={self.edges}: negative. Fix: give each relation >= 0 edges")

  @property
  def total_nodes(self) -> int:
    return sum(self.nodes)

  @property
  def total_edges(self) -> int:
    return sum(self.edges)

  def fits(self, node_counts: Sequence[int], edge_counts: Sequence[int]) -> bool:
    """True when real counts fit, keeping one padding slot per type."""
    return (all(n + 1 <= b for n, b in zip(node_counts, self.nodes))
            and all(e <= b for e, b in zip(edge_counts, self.edges)))

  def fits_subgraph(self, schema: Schema, sub: SampledSubgraph) -> bool:
    return self.fits(sub.node_counts(schema.node_types), sub.edge_counts(schema.relations))

  def maximum(self, other: "Budget") -> "Budget":
    return Budget(tuple(map(max, self.nodes, other.nodes)), tuple(map(max, self.edges, other.edges)))

  def minimum(self, other: "Budget") -> "Budget":
    return Budget(tuple(map(min, self.nodes, other.nodes)), tuple(map(min, self.edges, other.edges)))

  def to_dict(self) -> dict:
    return {"nodes": list(self.nodes), "edges": list(self.edges)}

  @classmethod
  def exact(cls, schema: Schema, sub: SampledSubgraph, pad: int = 1) -> "Budget":
    """The smallest budget for `sub`: its counts, plus `pad` (>= 1) padding slots per type."""
    if pad < 1:
      raise ValueError(f"pad={pad}: the layout needs >= 1 padding slot per node type. Fix: pad=1")
    return cls(tuple(n + pad for n in sub.node_counts(schema.node_types)), sub.edge_counts(schema.relations))

  @classmethod
  def full_graph(cls, schema: Schema) -> "Budget":
    """Room for the whole graph (e.g. to run the full graph through the sub-graph path)."""
    return cls(tuple(n + 1 for n in schema.num_nodes), schema.num_edges)

  @classmethod
  def for_sampler(cls, sampler, batch_size: int) -> "Budget":
    """An upper bound on any batch of `batch_size` targets from `sampler` (see the module docstring)."""
    if sampler.kind == "neighbor":
      return _neighbor_bound(sampler, batch_size)
    if sampler.kind == "hgt":
      return _hgt_bound(sampler, batch_size)
    raise ValueError(f"sampler.kind={sampler.kind!r}: no budget rule. Fix: use a NeighborSampler or HGTSampler")


def _top_sum(sorted_desc: np.ndarray, k: int, cap: int | None = None) -> int:
  """Sum of the k largest of min(values, cap); values sorted in descending order."""
  v = sorted_desc[:max(int(k), 0)]
  if cap is not None:
    v = np.minimum(v, cap)
  return int(v.sum())


def _neighbor_bound(sampler, batch_size: int) -> Budget:
  data = sampler.data
  types, rels = list(data.node_types), list(data.relations)
  size = {t: int(data.num_nodes[t]) for t in types}
  in_deg = {r.name: np.sort(sampler.csr[r.name].degree)[::-1] for r in rels}
  frontier = {t: 0 for t in types}
  frontier[data.target_type] = min(int(batch_size), size[data.target_type])
  total_nodes = dict(frontier)
  total_edges = {r.name: 0 for r in rels}
  for hop in range(sampler.num_hops):
    reached = {t: 0 for t in types}
    for ri, r in enumerate(rels):
      f = sampler.fanouts[hop][ri]
      e = 0 if f == 0 else _top_sum(in_deg[r.name], frontier[r.dst], None if f < 0 else f)
      total_edges[r.name] += e
      reached[r.src] += e
    for t in types:
      # Not size - total_nodes: total_nodes is itself a bound, and the true remainder can be larger.
      frontier[t] = min(reached[t], size[t])
      total_nodes[t] = min(total_nodes[t] + frontier[t], size[t])
  # Each receiver is a frontier node at most once: its in-edges are sampled at most once.
  for ri, r in enumerate(rels):
    fmax = max(sampler.fanouts[h][ri] for h in range(sampler.num_hops))
    cap = None if any(sampler.fanouts[h][ri] < 0 for h in range(sampler.num_hops)) else fmax
    once = _top_sum(in_deg[r.name], total_nodes[r.dst], cap)
    total_edges[r.name] = min(total_edges[r.name], once, len(sampler.csr[r.name].src))
  return Budget(tuple(total_nodes[t] + 1 for t in types), tuple(total_edges[r.name] for r in rels))


def _hgt_bound(sampler, batch_size: int) -> Budget:
  data = sampler.data
  types, rels = list(data.node_types), list(data.relations)
  nodes = {}
  for t in types:
    base = min(int(batch_size), int(data.num_nodes[t])) if t == data.target_type else 0
    nodes[t] = min(int(data.num_nodes[t]), base + sampler.num_iterations * sampler.num_samples[t])
  edges = []
  for r in rels:
    csr = sampler.csr[r.name]
    in_deg = np.sort(csr.degree)[::-1]
    out_deg = np.sort(np.bincount(csr.src, minlength=int(data.num_nodes[r.src])))[::-1]
    edges.append(min(len(csr.src), _top_sum(in_deg, nodes[r.dst]), _top_sum(out_deg, nodes[r.src])))
  return Budget(tuple(nodes[t] + 1 for t in types), tuple(edges))


def padded_schema(schema: Schema, budget: Budget) -> Schema:
  """`schema` with the budget's counts: the Schema a model for padded sub-graphs is built with."""
  if len(budget.nodes) != schema.num_node_types or len(budget.edges) != schema.num_relations:
    raise ValueError(f"budget has {len(budget.nodes)} node types and {len(budget.edges)} relations, the schema "
                     f"{schema.num_node_types} and {schema.num_relations}. Fix: derive the budget from this graph")
  return dataclasses.replace(schema, num_nodes=budget.nodes, num_edges=budget.edges)


class BudgetLadder:
  """A few budgets ("buckets"), smallest first; `choose` picks the smallest one a sub-graph fits.

  The last rung should be an upper bound (`Budget.for_sampler`) so that every batch fits; the
  constructors guarantee that. A training step then compiles once per rung used.
  """

  def __init__(self, rungs: Sequence[Budget]):
    if not rungs:
      raise ValueError("BudgetLadder: no rungs. Fix: give at least one Budget (e.g. Budget.for_sampler)")
    unique = []
    for b in sorted(rungs, key=lambda b: (b.total_nodes + b.total_edges, b.nodes, b.edges)):
      if b not in unique:
        unique.append(b)
    self.rungs = tuple(unique)

  @classmethod
  def geometric(cls, upper: Budget, num_buckets: int = 4, ratio: float = 2.0,
                lower: Budget | None = None) -> "BudgetLadder":
    """Rung i (0-based of K) is upper / ratio^(K-1-i), entry by entry, never below `lower`; rung K-1 is upper."""
    if num_buckets < 1 or ratio <= 1.0:
      raise ValueError(f"num_buckets={num_buckets}, ratio={ratio}: need num_buckets >= 1 and ratio > 1. "
                       "Fix: e.g. num_buckets=4, ratio=2.0")
    rungs = []
    for i in range(num_buckets):
      scale = ratio ** (num_buckets - 1 - i)
      b = Budget(tuple(max(1, math.ceil(n / scale)) for n in upper.nodes),
                 tuple(math.ceil(e / scale) for e in upper.edges))
      if lower is not None:
        b = b.maximum(lower).minimum(upper)
      rungs.append(b)
    return cls(rungs)

  @classmethod
  def calibrate(cls, stream, upper: Budget, num_batches: int = 8, num_buckets: int = 3, ratio: float = 2.0,
                headroom: float = 1.2) -> "BudgetLadder":
    """Rungs from what the first `num_batches` batches of epoch 0 need (their maximum × headroom) up to `upper`.

    Rung i is that base × ratio^i (capped by `upper`); the last rung is `upper` itself. The stream
    is not advanced (batches are sampled from their (seed, epoch, batch) generators).
    """
    schema = stream.sampler.data.schema
    plan = stream.plan(0)
    need = None
    for b in range(min(num_batches, plan.num_batches)):
      e = Budget.exact(schema, stream.sample_batch(0, b, plan).subgraph)
      need = e if need is None else need.maximum(e)
    rungs = [upper]
    for i in range(num_buckets - 1):
      s = headroom * ratio ** i
      rungs.append(Budget(tuple(math.ceil(n * s) for n in need.nodes),
                          tuple(math.ceil(e * s) for e in need.edges)).minimum(upper))
    return cls(rungs)

  def choose(self, sub: SampledSubgraph, schema: Schema) -> Budget:
    """The smallest rung `sub` fits; a one-line error naming the overflow when none does."""
    for b in self.rungs:
      if b.fits_subgraph(schema, sub):
        return b
    _overflow(schema, sub, self.rungs[-1])
    raise AssertionError("unreachable: _overflow raises when the top rung does not fit")

  def index(self, budget: Budget) -> int:
    return self.rungs.index(budget)


def _overflow(schema: Schema, sub: SampledSubgraph, budget: Budget):
  """Raises the one-line error for the first entry of `budget` that `sub` exceeds; returns if it fits."""
  for t, (n, b) in enumerate(zip(sub.node_counts(schema.node_types), budget.nodes)):
    if n + 1 > b:
      raise ValueError(f"budget.nodes[{schema.node_types[t]!r}]={b}: the sub-graph has {n} such nodes and needs "
                       f"one padding slot ({n + 1}). Fix: {FIX_BUDGET}")
  for r, (e, b) in enumerate(zip(sub.edge_counts(schema.relations), budget.edges)):
    if e > b:
      raise ValueError(f"budget.edges[{schema.relations[r].name!r}]={b}: the sub-graph has {e} such edges. "
                       f"Fix: {FIX_BUDGET}")


# --- features -------------------------------------------------------------------------------

class FeatureStore:
  """The host graph's feature rows, gathered by local ids per type into preallocated buffers."""

  def __init__(self, data: MMHN, dtype=np.float32):
    self.dtype = np.dtype(dtype)
    # Cast once here (a no-op for float32 data), so each gather is a plain row copy.
    self.features = {t: {m: np.asarray(data.features[t][m], self.dtype) for m in data.modalities}
                     for t in data.node_types}

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
    raise ValueError(f"sub-graph: {what} {int(bad)} is not among its sampled nodes. "
                     "Fix: sample edges only between sampled nodes (a sampler bug)")
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
    _overflow(schema, sub, budget)
    types, rels = schema.node_types, schema.relations
    offs, n_total = ps.node_offsets, ps.total_nodes
    counts = sub.node_counts(types)

    valid = np.zeros((n_total,), bool)
    for t in range(len(types)):
      valid[offs[t]:offs[t] + counts[t]] = True
    features, present = {}, {}
    for mi, m in enumerate(schema.modalities):
      x = np.zeros((n_total, schema.max_feature_dim(mi)), self.store.dtype)
      for t, tname in enumerate(types):
        w = self.store.width(tname, m)
        self.store.gather(tname, m, sub.nodes[tname], out=x[offs[t]:offs[t] + counts[t], :w])
      features[m] = x
      present[m] = np.repeat([schema.present[t][mi] for t in range(len(types))], budget.nodes)

    sorters = {t: np.argsort(sub.nodes[t], kind="stable") for t in types}
    snd, rcv, etype, evalid, positions, edge_ids = [], [], [], [], {}, {}
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
      positions[r.name], edge_ids[r.name] = pos, csr.edge_id[pos]
    i32 = lambda xs: np.concatenate(xs).astype(np.int32) if xs else np.zeros((0,), np.int32)
    graph = jraph.GraphsTuple(
        nodes={"type": np.repeat(np.arange(len(types), dtype=np.int32), budget.nodes), "features": features,
               "present": present, "valid": valid},
        edges={"type": i32(etype), "valid": np.concatenate(evalid) if evalid else np.zeros((0,), bool)},
        senders=i32(snd), receivers=i32(rcv),
        n_node=np.array([n_total], np.int32), n_edge=np.array([budget.total_edges], np.int32), globals=None)

    tt = schema.target_type
    tpos = _locate(sub.nodes[tt], sorters[tt], np.asarray(sub.targets, np.int64), "target")
    n_tb = budget.nodes[schema.target_id]
    labels = np.zeros((n_tb,), np.int32)
    labels[:counts[schema.target_id]] = self.labels[sub.nodes[tt]]
    mask = np.zeros((n_tb,), bool)
    mask[tpos] = True
    return PaddedSubgraph(graph, ps, budget, tpos.astype(np.int32), np.asarray(sub.targets, np.int64), labels, mask,
                          {t: sub.nodes[t] for t in types}, positions, edge_ids)
