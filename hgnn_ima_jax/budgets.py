"""Static shapes for sampled sub-graphs: a `Budget` (nodes per type, edges per relation) and a `BudgetLadder`.

A model is built from a `Schema` whose counts are static, so every batch is padded to a budget:
`padded_schema(schema, budget)` is the Schema the model is built with. `Budget.for_sampler` is an upper
bound no batch of a sampler can exceed; a `BudgetLadder` holds a few sizes up to it, and `choose(sub)` the
smallest that fits, so a training step compiles once per size (`hgnn_ima_jax.subgraph` pads to it).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from hgnn_ima_jax.graph import Schema
from hgnn_ima_jax.sampling import SampledSubgraph, check_batch_size

FIX_BUDGET = "use Budget.for_sampler(...) or BudgetLadder.choose(sub), or raise that entry of the budget"


# --- budgets --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Budget:
  """Static sizes of a padded sub-graph: nodes per type (incl. >= 1 padding slot), edges per relation.

  levels (neighbour sampling): per hop j = 0..H-1, (nodes per type, edges per relation) of the
  sub-graph *within hop j*: its nodes of hop <= j (+ 1 padding slot per type) and the edges into
  them. The sampler puts each type's nodes in hop order and the layout sorts edges by receiver, so
  each level is a prefix of every type's and relation's block; a model built on such a budget
  computes layer k only for the nodes the later layers still read (`models.Encoder`, PyG's
  `trim_to_layer`). Empty: no levels, every layer runs on the whole sub-graph.
  """

  nodes: tuple[int, ...]
  edges: tuple[int, ...]
  levels: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()

  def __post_init__(self):
    object.__setattr__(self, "nodes", tuple(int(n) for n in self.nodes))
    object.__setattr__(self, "edges", tuple(int(e) for e in self.edges))
    object.__setattr__(
        self, "levels", tuple((tuple(int(n) for n in ln), tuple(int(e) for e in le)) for ln, le in self.levels)
    )
    if any(n < 1 for n in self.nodes):
      raise ValueError(
          f"Budget.nodes={self.nodes}: every type needs >= 1 slot (the padding slot). "
          "Fix: give each type at least real + 1 nodes"
      )
    if any(e < 0 for e in self.edges):
      raise ValueError(f"Budget.edges={self.edges}: negative. Fix: give each relation >= 0 edges")
    outer = (self.nodes, self.edges)
    for j in range(len(self.levels) - 1, -1, -1):  # each level within the next one, the last within the budget
      ln, le = self.levels[j]
      if (
          len(ln) != len(self.nodes)
          or len(le) != len(self.edges)
          or any(not 1 <= n <= o for n, o in zip(ln, outer[0]))
          or any(not 0 <= e <= o for e, o in zip(le, outer[1]))
      ):
        around = "the budget's" if j == len(self.levels) - 1 else f"levels[{j + 1}]'s"
        raise ValueError(
            f"Budget.levels[{j}]={self.levels[j]}: a level needs 1 <= nodes and 0 <= edges, each at most "
            f"{around} {outer}. Fix: derive the levels with Budget.for_sampler or Budget.exact"
        )
      outer = (ln, le)

  @property
  def total_nodes(self) -> int:
    return sum(self.nodes)

  @property
  def total_edges(self) -> int:
    return sum(self.edges)

  def fits(self, node_counts: Sequence[int], edge_counts: Sequence[int], level_counts=None) -> bool:
    """True when real counts fit, keeping one padding slot per type (level_counts: `level_counts(...)`)."""
    if self.levels and (level_counts is None or len(level_counts) != len(self.levels)):
      return False
    pairs = [((self.nodes, self.edges), (node_counts, edge_counts))] + list(zip(self.levels, level_counts or ()))
    return all(
        all(n + 1 <= b for n, b in zip(nc, bn)) and all(e <= b for e, b in zip(ec, be)) for (bn, be), (nc, ec) in pairs
    )

  def fits_subgraph(self, schema: Schema, sub: SampledSubgraph) -> bool:
    lc = level_counts(schema, sub, len(self.levels)) if self.levels else None
    return self.fits(sub.node_counts(schema.node_types), sub.edge_counts(schema.relations), lc)

  def _combine(self, other: "Budget", fn) -> "Budget":
    """Entry by entry fn; levels combine when both have them, and are capped by the result otherwise."""
    if self.levels and other.levels and len(self.levels) != len(other.levels):
      # Levels are per hop: budgets of samplers with different hop counts describe different models.
      raise ValueError(
          f"Budget: cannot combine budgets with {len(self.levels)} and {len(other.levels)} levels (hops). "
          "Fix: combine budgets of samplers with the same number of hops, or drop levels with without_levels()"
      )
    nodes, edges = tuple(map(fn, self.nodes, other.nodes)), tuple(map(fn, self.edges, other.edges))
    if self.levels and other.levels:
      levels = [(tuple(map(fn, a[0], b[0])), tuple(map(fn, a[1], b[1]))) for a, b in zip(self.levels, other.levels)]
    else:
      levels = self.levels or other.levels
    return Budget(nodes, edges, _capped(levels, nodes, edges))

  def maximum(self, other: "Budget") -> "Budget":
    return self._combine(other, max)

  def minimum(self, other: "Budget") -> "Budget":
    return self._combine(other, min)

  def scaled(self, fn) -> "Budget":
    """fn applied to every count (node counts kept >= 1), levels too."""
    nodes = lambda ns: tuple(max(1, fn(n)) for n in ns)
    edges = lambda es: tuple(fn(e) for e in es)
    return Budget(nodes(self.nodes), edges(self.edges), tuple((nodes(n), edges(e)) for n, e in self.levels))

  def without_levels(self) -> "Budget":
    return Budget(self.nodes, self.edges)

  def to_dict(self) -> dict:
    d = {"nodes": list(self.nodes), "edges": list(self.edges)}
    if self.levels:
      d["levels"] = [{"nodes": list(n), "edges": list(e)} for n, e in self.levels]
    return d

  @classmethod
  def exact(cls, schema: Schema, sub: SampledSubgraph, pad: int = 1, *, levels: int = 0) -> "Budget":
    """The smallest budget for `sub`: its counts, plus `pad` (>= 1) padding slots per type; `levels` hops of levels."""
    if pad < 1:
      raise ValueError(f"pad={pad}: the layout needs >= 1 padding slot per node type. Fix: pad=1")
    lv = level_counts(schema, sub, levels) if levels else ()
    if lv is None:
      raise ValueError(
          "Budget.exact(levels=...): the sub-graph has no per-hop counts (HGSampling's are not hops). "
          "Fix: levels=0, or sample with a NeighborSampler"
      )
    return cls(
        tuple(n + pad for n in sub.node_counts(schema.node_types)),
        sub.edge_counts(schema.relations),
        tuple((tuple(n + pad for n in ln), le) for ln, le in lv),
    )

  @classmethod
  def for_sampler(cls, sampler, batch_size: int) -> "Budget":
    """An upper bound on any batch of `batch_size` targets from `sampler` (see the module docstring)."""
    check_batch_size(batch_size)
    if sampler.kind == "neighbor":
      return _neighbor_bound(sampler, batch_size)
    if sampler.kind == "hgt":
      return _hgt_bound(sampler, batch_size)
    raise ValueError(f"sampler.kind={sampler.kind!r}: no budget rule. Fix: use a NeighborSampler or HGTSampler")


def level_counts(schema: Schema, sub: SampledSubgraph, num_levels: int):
  """Per hop j < num_levels: (nodes of hop <= j per type, edges into them per relation); None without hops."""
  if sub.hops is None or sub.edge_hops is None:
    return None
  out = []
  for j in range(num_levels):
    nodes = tuple(int(np.count_nonzero(sub.hops[t] <= j)) for t in schema.node_types)
    edges = tuple(int(np.count_nonzero(sub.edge_hops[r.name] <= j)) for r in schema.relations)
    out.append((nodes, edges))
  return tuple(out)


def _capped(levels, nodes, edges):
  """Levels capped by the next level (the last by the budget), so that each stays within the next."""
  out, outer = [], (nodes, edges)
  for ln, le in reversed(tuple(levels)):
    ln, le = tuple(map(min, ln, outer[0])), tuple(map(min, le, outer[1]))
    out.append((ln, le))
    outer = (ln, le)
  return tuple(reversed(out))


def _top_sum(sorted_desc: np.ndarray, k: int, cap: int | None = None) -> int:
  """Sum of the k largest of min(values, cap); values sorted in descending order."""
  v = sorted_desc[: max(int(k), 0)]
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
  level_nodes, level_edges = [], []  # per hop j: the bounds of nodes of hop <= j and of the edges into them
  for hop in range(sampler.num_hops):
    level_nodes.append(dict(total_nodes))
    reached = {t: 0 for t in types}
    for ri, r in enumerate(rels):
      f = sampler.fanouts[hop][ri]
      e = 0 if f == 0 else _top_sum(in_deg[r.name], frontier[r.dst], None if f < 0 else f)
      total_edges[r.name] += e
      reached[r.src] += e
    level_edges.append(dict(total_edges))
    for t in types:
      # Not size - total_nodes: total_nodes is itself a bound, and the true remainder can be larger.
      frontier[t] = min(reached[t], size[t])
      total_nodes[t] = min(total_nodes[t] + frontier[t], size[t])

  def once(ri, r, receivers, hops):
    # Each receiver is a frontier node at most once: its in-edges are sampled at most once.
    fs = [sampler.fanouts[h][ri] for h in range(hops)]
    return _top_sum(in_deg[r.name], receivers, None if any(f < 0 for f in fs) else max(fs))

  H = sampler.num_hops
  for ri, r in enumerate(rels):
    total_edges[r.name] = min(total_edges[r.name], once(ri, r, total_nodes[r.dst], H), len(sampler.csr[r.name].src))
  levels = [
      (
          tuple(level_nodes[j][t] + 1 for t in types),
          tuple(min(level_edges[j][r.name], once(ri, r, level_nodes[j][r.dst], j + 1)) for ri, r in enumerate(rels)),
      )
      for j in range(H)
  ]
  nodes, edges = tuple(total_nodes[t] + 1 for t in types), tuple(total_edges[r.name] for r in rels)
  return Budget(nodes, edges, _capped(levels, nodes, edges))


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
    raise ValueError(
        f"budget has {len(budget.nodes)} node types and {len(budget.edges)} relations, the schema "
        f"{schema.num_node_types} and {schema.num_relations}. Fix: derive the budget from this graph"
    )
  return dataclasses.replace(schema, num_nodes=budget.nodes, num_edges=budget.edges, levels=budget.levels)


class BudgetLadder:
  """A few budgets ("buckets"), smallest first; `choose` picks the smallest one a sub-graph fits.

  The last rung should be an upper bound (`Budget.for_sampler`) so that every batch fits; `calibrate`
  guarantees that. A training step then compiles once per rung used.
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
  def calibrate(
      cls, stream, upper: Budget, num_batches: int = 8, num_buckets: int = 3, ratio: float = 2.0, headroom: float = 1.2
  ) -> "BudgetLadder":
    """Rungs from what the first `num_batches` batches of epoch 0 need (their maximum × headroom) up to `upper`.

    Rung i is that base × ratio^i (capped by `upper`); the last rung is `upper` itself. Training samples
    the same batches again later: each comes from its (seed, epoch, batch) generator.
    """
    schema = stream.sampler.data.schema
    plan = stream.plan(0)
    need = None
    for b in range(min(num_batches, plan.num_batches)):
      e = Budget.exact(schema, stream.sample_batch(0, b, plan).subgraph, levels=len(upper.levels))
      need = e if need is None else need.maximum(e)
    rungs = [upper]
    for i in range(num_buckets - 1):
      s = headroom * ratio**i
      rungs.append(need.scaled(lambda n, s=s: math.ceil(n * s)).minimum(upper))
    return cls(rungs)

  def choose(self, sub: SampledSubgraph, schema: Schema) -> Budget:
    """The smallest rung `sub` fits; a one-line error naming the overflow when none does."""
    for b in self.rungs:
      if b.fits_subgraph(schema, sub):
        return b
    check_fits(schema, sub, self.rungs[-1])
    raise AssertionError("unreachable: check_fits raises when the top rung does not fit")

  def index(self, budget: Budget) -> int:
    return self.rungs.index(budget)


def check_fits(schema: Schema, sub: SampledSubgraph, budget: Budget):
  """Raises the one-line error for the first entry of `budget` that `sub` exceeds; returns if it fits."""
  _check_counts(
      schema,
      "budget.",
      "",
      "",
      (budget.nodes, budget.edges),
      sub.node_counts(schema.node_types),
      sub.edge_counts(schema.relations),
  )
  if not budget.levels:
    return
  lc = level_counts(schema, sub, len(budget.levels))
  if lc is None:
    raise ValueError(
        "budget.levels: the sub-graph has no per-hop counts (HGSampling's are not hops). "
        "Fix: pad it to a budget without levels (Budget.without_levels())"
    )
  for j, (level, (nc, ec)) in enumerate(zip(budget.levels, lc)):
    _check_counts(schema, f"budget.levels[{j}].", f" within hop {j}", f" into nodes within hop {j}", level, nc, ec)


def _check_counts(schema: Schema, what: str, nodes_where: str, edges_where: str, sizes, node_counts, edge_counts):
  """check_fits for one (nodes, edges) pair of sizes: the budget's own, or one level's."""
  for t, (n, b) in enumerate(zip(node_counts, sizes[0])):
    if n + 1 > b:
      raise ValueError(
          f"{what}nodes[{schema.node_types[t]!r}]={b}: the sub-graph has {n} such nodes{nodes_where} and needs "
          f"one padding slot ({n + 1}). Fix: {FIX_BUDGET}"
      )
  for r, (e, b) in enumerate(zip(edge_counts, sizes[1])):
    if e > b:
      raise ValueError(
          f"{what}edges[{schema.relations[r].name!r}]={b}: the sub-graph has {e} such edges{edges_where}. "
          f"Fix: {FIX_BUDGET}"
      )
