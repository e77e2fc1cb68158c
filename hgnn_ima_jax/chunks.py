"""The chunks of exact layer-wise inference: per-relation in-edges, budgets, the chunk plan, padded chunk sub-graphs.

`hgnn_ima_jax.inference` (its docstring explains chunks and budgets) runs a model over these: every chunk
takes the next share of receivers of every node type, with the senders of ALL their in-edges, laid out as
`MMHN.to_graphs_tuple` lays a graph out and padded to budgets computed once per graph.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from hgnn_ima_jax.graph import MMHN, Schema

# Default edge budget per relation as a multiple of a chunk's mean in-edges: larger wastes padded edge slots,
# smaller makes more chunks (benchmarks/README.md, *Layer-wise inference*).
EDGE_SLACK = 1.5


@dataclasses.dataclass(frozen=True)
class Budgets:
  """Static shapes of the chunk programs; hashable, the key of the program cache."""

  chunk_size: int
  receivers: tuple[int, ...]  # per node type, its share q_t of a chunk's receivers (also its projection rows)
  nodes: tuple[int, ...]  # per node type, sub-graph slots including the reserved padding slot (the last)
  edges: tuple[int, ...]  # per relation, sub-graph edges (real + padding)
  head: int  # target rows in a head chunk


class InEdges:
  """Per-relation in-edge CSR of an MMHN (sources sorted by receiver, then sender, as `to_graphs_tuple` sorts)."""

  def __init__(self, data: MMHN):
    s = data.schema
    self.indptr, self.src, self.max_in_degree = [], [], []
    for r, rel in enumerate(s.relations):
      e = np.asarray(data.edges[rel.name], np.int64).reshape(-1, 2)
      e = e[np.lexsort((e[:, 0], e[:, 1]))]
      deg = np.bincount(e[:, 1], minlength=s.num_nodes[s.relation_dst(r)])
      self.indptr.append(np.concatenate([[0], np.cumsum(deg)]).astype(np.int64))
      self.src.append(np.ascontiguousarray(e[:, 0]))
      self.max_in_degree.append(int(deg.max()) if len(deg) else 0)


def receiver_shares(num_nodes: Sequence[int], chunk_size: int) -> tuple[int, ...]:
  """Each type's receivers per chunk, q_t = max(1, ⌊chunk_size · N_t / N⌋) ≤ N_t.

  Every chunk takes the next q_t nodes of every type, so every relation's edge budget is in use in every chunk
  (a chunk of one type would carry the other types' relations as padding).
  """
  total = sum(num_nodes)
  return tuple(min(n, max(1, chunk_size * n // total)) for n in num_nodes)


def compute_budgets(
    schema: Schema,
    in_edges: InEdges,
    chunk_size: int,
    edge_slack: float = EDGE_SLACK,
    edge_budget: int | Mapping[str, int] | None = None,
    *,
    measure_nodes: bool = True,
) -> Budgets:
  """The chunk budgets of a graph (see the module docstring); `edge_budget` overrides the default per relation.

  measure_nodes: the node budgets are the largest node counts of the planned chunks (one host pass over the plan);
  False: the bound min(N_t, q_t + Σ_{r leaving t} edge budget_r), more padded rows (benchmarks/README.md,
  *Layer-wise inference*).
  """
  shares, edges = receiver_shares(schema.num_nodes, chunk_size), []
  for r, rel in enumerate(schema.relations):
    dst = schema.relation_dst(r)
    n_dst, n_edges, top = schema.num_nodes[dst], schema.num_edges[r], in_edges.max_in_degree[r]
    given = edge_budget.get(rel.name) if isinstance(edge_budget, Mapping) else edge_budget
    if given is None:
      default = math.ceil(edge_slack * shares[dst] * n_edges / n_dst)
      edges.append(min(n_edges, max(top, default)))
    elif int(given) < top:
      raise ValueError(
          f"edge_budget[{rel.name!r}]={given} is below the relation's largest in-degree {top}. "
          f"Fix: give at least {top} (or None for the default)"
      )
    else:
      edges.append(int(given))
  nodes = []
  for t in range(schema.num_node_types):
    senders = sum(edges[r] for r in range(schema.num_relations) if schema.relation_src(r) == t)
    nodes.append(min(schema.num_nodes[t], shares[t] + senders) + 1)
  bound = Budgets(chunk_size, shares, tuple(nodes), tuple(edges), min(chunk_size, schema.num_nodes[schema.target_id]))
  if not measure_nodes:
    return bound
  # The plan does not depend on the node budgets, and the last layer's target-only chunks are parts of these.
  most = np.ones(schema.num_node_types, np.int64)  # one real node at least, plus the padding slot below
  for ranges in plan_chunks(schema, in_edges, bound, range(schema.num_node_types)):
    most = np.maximum(most, [len(rows) for rows in chunk_members(schema, in_edges, ranges)[2]])
  return dataclasses.replace(bound, nodes=tuple(int(n) + 1 for n in most))


class Chunk(NamedTuple):
  """A padded sub-graph of one receiver chunk, in the `to_graphs_tuple` layout of the budget schema."""

  ranges: tuple[tuple[int, int, int], ...]  # (type, first, stop) local receiver ids, one contiguous range per type
  hs_rows: tuple[np.ndarray, ...]  # per type, the local ids of the sub-graph's real nodes (sorted)
  senders: np.ndarray  # (Σ edge budgets,) int32 sub-graph ids
  receivers: np.ndarray
  edge_valid: np.ndarray  # (Σ edge budgets,) bool
  recv_rows: tuple[np.ndarray, ...]  # per type (budgets.receivers[t],) int32 sub-graph rows of the receivers


def plan_chunks(
    schema: Schema, in_edges: InEdges, budgets: Budgets, types: Sequence[int]
) -> Iterator[tuple[tuple[int, int, int], ...]]:
  """Greedy receiver chunks: each takes, of every type in `types` not yet done, the next nodes in id order, as many
  as its share q_t and every edge budget of the relations into it allow (a relation has one destination type, so
  the types' ranges do not compete for a budget)."""
  pos = {t: 0 for t in types}
  while any(pos[t] < schema.num_nodes[t] for t in types):
    chunk = []
    for t in types:
      first, n = pos[t], schema.num_nodes[t]
      if first >= n:
        continue
      stop = min(n, first + budgets.receivers[t])
      for r in schema.relations_into(t):  # the furthest stop whose in-edges still fit relation r's budget
        ip = in_edges.indptr[r]
        stop = min(stop, int(np.searchsorted(ip, ip[first] + budgets.edges[r], side="right")) - 1)
      assert stop > first, "an edge budget is below a node's in-degree"  # compute_budgets rules this out
      chunk.append((t, first, stop))
      pos[t] = stop
    yield tuple(chunk)


def chunk_members(schema: Schema, in_edges: InEdges, ranges: tuple[tuple[int, int, int], ...]):
  """(per relation the in-edges' source ids, their receiver ids, per type the sorted local ids of the chunk's nodes)."""
  T, R = schema.num_node_types, schema.num_relations
  recv = {t: (a, b) for t, a, b in ranges}
  src_ids, dst_ids = [None] * R, [None] * R
  members = [[np.arange(*recv[t])] if t in recv else [] for t in range(T)]
  for r in range(R):
    dst = schema.relation_dst(r)
    if dst not in recv:
      src_ids[r] = dst_ids[r] = np.zeros((0,), np.int64)
      continue
    a, b = recv[dst]
    ip = in_edges.indptr[r]
    src_ids[r] = in_edges.src[r][ip[a] : ip[b]]
    dst_ids[r] = np.repeat(np.arange(a, b), np.diff(ip[a : b + 1]))
    members[schema.relation_src(r)].append(src_ids[r])
  # Sub-graph ids keep the graph's order inside a type, so edges stay sorted by receiver, then sender.
  return src_ids, dst_ids, tuple(np.unique(np.concatenate(m)) if m else np.zeros((0,), np.int64) for m in members)


def chunk_in_edges(schema: Schema, in_edges: InEdges, ranges: tuple[tuple[int, int, int], ...]) -> int:
  """The real edges of a chunk: all in-edges of its receivers (what `build_chunk` marks valid), from the CSR alone."""
  recv = {t: (a, b) for t, a, b in ranges}
  return sum(
      int(in_edges.indptr[r][recv[t][1]] - in_edges.indptr[r][recv[t][0]])
      for r in range(schema.num_relations)
      if (t := schema.relation_dst(r)) in recv
  )


def build_chunk(schema: Schema, in_edges: InEdges, budgets: Budgets, ranges: tuple[tuple[int, int, int], ...]) -> Chunk:
  """The padded sub-graph of a receiver chunk: its receivers, the senders of all their in-edges, those edges."""
  T, R = schema.num_node_types, schema.num_relations
  recv = {t: (a, b) for t, a, b in ranges}
  src_ids, dst_ids, hs_rows = chunk_members(schema, in_edges, ranges)
  offs = np.concatenate([[0], np.cumsum(budgets.nodes)[:-1]])
  pad = offs + np.asarray(budgets.nodes) - 1  # each type's reserved padding slot
  senders, receivers, valid = [], [], []
  for r in range(R):
    src, dst, n = schema.relation_src(r), schema.relation_dst(r), len(src_ids[r])
    fill = budgets.edges[r] - n
    senders.append(np.concatenate([offs[src] + np.searchsorted(hs_rows[src], src_ids[r]), np.full(fill, pad[src])]))
    receivers.append(np.concatenate([offs[dst] + np.searchsorted(hs_rows[dst], dst_ids[r]), np.full(fill, pad[dst])]))
    valid.append(np.arange(budgets.edges[r]) < n)
  cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros((0,), dt)
  recv_rows = []
  for t in range(T):
    rows = np.full(budgets.receivers[t], budgets.nodes[t] - 1, np.int32)
    if t in recv:
      rows[: recv[t][1] - recv[t][0]] = np.searchsorted(hs_rows[t], np.arange(*recv[t]))
    recv_rows.append(rows)
  return Chunk(
      tuple(ranges), hs_rows, cat(senders, np.int32), cat(receivers, np.int32), cat(valid, bool), tuple(recv_rows)
  )


def chunk_schema(schema: Schema, budgets: Budgets) -> Schema:
  """The static schema of every padded chunk sub-graph: the budgets as node and edge counts."""
  return dataclasses.replace(schema, num_nodes=budgets.nodes, num_edges=budgets.edges)
