"""Host-side sampling (NumPy): the RNG streams, the per-relation in-edge CSR and what a sampler returns.

The samplers themselves are `hgnn_ima_jax.samplers` (neighbour sampling, HGSampling) and the epochs of
batches `hgnn_ima_jax.batch_stream`; this module holds what they share.

A sampler turns a batch of target nodes into a `SampledSubgraph`: the sampled nodes of every type
(local ids of the full graph, targets first) and the sampled edges of every relation, as positions
into that relation's slice of `MMHN.to_graphs_tuple()` (edges sorted by receiver, then sender).
`hgnn_ima_jax.subgraph` pads it into a static-shape `GraphsTuple` with the full graph's layout.

* `build_in_csr(data)`: per relation, the in-edges of every destination node (CSR over dst local
  ids) in exactly the order of the relation's slice of `to_graphs_tuple`, so a CSR position is an
  edge's position in that slice, and `edge_id` maps it back to its row of `data.edges[name]`.
* `NeighborSampler(data, fanouts)`: per hop and relation, up to `fanout` in-edges of each frontier
  node, without replacement (PyG's `NeighborLoader` on `HeteroData`). Hop 0's frontier is the batch;
  the frontier of hop h+1 is the nodes hop h reached for the first time. Only sampled edges are kept.
* `HGTSampler(data, num_samples, num_iterations)`: HGSampling (Hu et al., WWW 2020, Algorithm 1;
  PyG's `HGTLoader`): a budget per node type accumulates the normalised degree 1/deg(t) of every
  sampled node t on its not-yet-sampled in-neighbours; each iteration samples `num_samples[type]`
  nodes per type without replacement with probability ∝ budget²; the sub-graph is the graph induced
  by all sampled nodes.
* `EpochPlan` and `BatchStream`: one epoch is one pass over the shuffled training targets; batch b
  of epoch e is sampled with `batch_rng(seed, e, b)`, so any batch is reproducible from (seed, e, b)
  alone: a resumed run needs only the epoch and the next batch (`hgnn_ima_jax.batch_stream`).

Cost: a batch costs O(sampled) work for the neighbour sampler (`choose_k`: Floyd's algorithm picks
k of a hub's deg in-edges in O(k²) without touching the others; random keys do rows with deg below
about k²/2), and O(in-degrees of the sampled nodes) for HGSampling's induced edges, never O(graph).
Samplers and `SubgraphBuilder` only read what they built at construction: a prefetch thread may
call them while the main thread trains.

Example::

  data = data_utils.load_dataset('synthetic')
  sampler = NeighborSampler(data, fanouts=[10, 5])          # 2 hops, every relation
  stream = BatchStream(sampler, data.splits['train'], batch_size=64, seed=0)
  for epoch in range(num_epochs):
    for b in range(len(stream.plan(epoch))):
      sub = stream.sample_batch(epoch, b).subgraph          # nodes per type, edge positions per relation
      ...                                                   # pad with hgnn_ima_jax.subgraph, train
  # After batch b a checkpoint keeps (epoch, b + 1); the resumed run builds its stream from the same
  # settings and goes on with stream.sample_batch(epoch, b + 1), the batch an uninterrupted run samples next.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import numpy as np

from hgnn_ima_jax.graph import MMHN

# Spawn-key tags keep the epoch-plan stream and the batch streams apart (see `batch_rng`).
_PLAN_STREAM, _BATCH_STREAM = 0, 1


# --- RNG ------------------------------------------------------------------------------------


def check_seed(seed) -> int:
  if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
    raise ValueError(f"seed={seed!r} must be a non-negative integer. Fix: pass e.g. seed=0")
  return int(seed)


def plan_rng(seed: int, epoch: int) -> np.random.Generator:
  """The generator that shuffles epoch `epoch`'s targets; a function of (seed, epoch) only."""
  return np.random.default_rng(np.random.SeedSequence(check_seed(seed), spawn_key=(_PLAN_STREAM, int(epoch))))


def batch_rng(seed: int, epoch: int, batch: int) -> np.random.Generator:
  """The generator that samples batch `batch` of epoch `epoch`; a function of (seed, epoch, batch) only.

  Stateless on purpose: a resumed run (or a prefetch worker) samples batch b without replaying
  batches 0..b-1. SeedSequence's spawn key hashes the whole tuple, so streams never overlap.
  """
  return np.random.default_rng(
      np.random.SeedSequence(check_seed(seed), spawn_key=(_BATCH_STREAM, int(epoch), int(batch)))
  )


def part_rng(seed: int, epoch: int, batch: int, part: int, parts: int) -> np.random.Generator:
  """The generator of part `part` of `parts` of a batch (`hgnn_ima_jax.distributed`); one part is `batch_rng`."""
  if parts == 1:
    return batch_rng(seed, epoch, batch)
  return np.random.default_rng(
      np.random.SeedSequence(check_seed(seed), spawn_key=(_BATCH_STREAM, int(epoch), int(batch), int(part)))
  )


def split_parts(targets: np.ndarray, parts: int) -> list[np.ndarray]:
  """A batch's targets in `parts` contiguous slices (sizes differ by at most one; empty when parts > targets)."""
  return np.array_split(np.asarray(targets), parts)


# --- CSR ------------------------------------------------------------------------------------


class InCSR(NamedTuple):
  """One relation's in-edges by destination, in `to_graphs_tuple`'s order (by dst, then src).

  indptr: int64[N_dst + 1]; node v's in-edges are positions indptr[v]:indptr[v+1].
  src, dst: int64[E] local ids of each position's sender and receiver.
  edge_id: int64[E] the row of `data.edges[name]` each position came from.
  """

  indptr: np.ndarray
  src: np.ndarray
  dst: np.ndarray
  edge_id: np.ndarray

  @property
  def degree(self) -> np.ndarray:
    return np.diff(self.indptr)


def build_in_csr(data: MMHN) -> dict[str, InCSR]:
  """Per relation name, its in-edge CSR (built once per graph; O(E log E))."""
  out = {}
  for r in data.relations:
    e = np.asarray(data.edges[r.name], np.int64).reshape(-1, 2)
    order = np.lexsort((e[:, 0], e[:, 1]))  # the same stable sort as to_graphs_tuple: by dst, then src
    src, dst = e[order, 0], e[order, 1]
    counts = np.bincount(dst, minlength=int(data.num_nodes[r.dst]))
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    out[r.name] = InCSR(indptr, src, dst, order.astype(np.int64))
  return out


# --- results --------------------------------------------------------------------------------


@dataclasses.dataclass
class SampledSubgraph:
  """A sampled sub-graph in full-graph terms.

  nodes: type -> int64 local ids of the full graph, unique; for the target type the batch's
    targets come first, in batch order (their sub-graph positions are 0..len(targets)-1).
  edges: relation name -> int64 positions into the relation's sorted slice (= its `InCSR`), unique.
  targets: int64 local target ids of the batch.
  hops: type -> int64 per node of `nodes`: the hop (neighbour sampling) or iteration (HGSampling)
    that reached it; 0 for the targets. Nodes of each type come in hop order.
  edge_hops: relation name -> int64 per edge of `edges`: the hop that sampled it, which is its
    receiver's hop (neighbour sampling only; None for HGSampling's induced edges). With it a
    budget can have per-hop levels and a model can trim its layers (`hgnn_ima_jax.budgets`).
  """

  nodes: dict[str, np.ndarray]
  edges: dict[str, np.ndarray]
  targets: np.ndarray
  hops: dict[str, np.ndarray] | None = None
  edge_hops: dict[str, np.ndarray] | None = None

  def node_counts(self, node_types: Sequence[str]) -> tuple[int, ...]:
    return tuple(len(self.nodes[t]) for t in node_types)

  def edge_counts(self, relations: Sequence) -> tuple[int, ...]:
    return tuple(len(self.edges[r.name]) for r in relations)


def expand_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """concat(arange(s, s + n) for s, n in zip(starts, lengths)), vectorised."""
  total = int(lengths.sum())
  if total == 0:
    return np.zeros((0,), np.int64)
  first = np.cumsum(lengths) - lengths
  return np.repeat(starts - first, lengths) + np.arange(total, dtype=np.int64)


def floyd_sample(rng: np.random.Generator, n: np.ndarray, k: int) -> np.ndarray:
  """For every row i, k distinct values of range(n[i]) uniformly at random (needs n >= k): int64[len(n), k].

  Floyd's algorithm, one vectorised step per draw: O(len(n)·k²) time, independent of n, so a
  hub with a million in-edges costs as much as a node with k + 1.
  """
  n = np.asarray(n, np.int64)
  out = np.empty((len(n), k), np.int64)
  for i in range(k):
    j = n - k + i  # draw from 0..j; if taken, j itself is new (Floyd)
    t = np.floor(rng.random(len(n)) * (j + 1)).astype(np.int64)
    t = np.minimum(t, j)  # guards the float edge case random() * (j + 1) == j + 1
    taken = (out[:, :i] == t[:, None]).any(axis=1) if i else np.zeros(len(n), bool)
    out[:, i] = np.where(taken, j, t)
  return out


def key_sample(rng: np.random.Generator, n: np.ndarray, k: int) -> np.ndarray:
  """As `floyd_sample`, by the k smallest of n[i] random keys per row: O(Σ n log n), for rows with small n."""
  n = np.asarray(n, np.int64)
  if len(n) == 0:
    return np.zeros((0, k), np.int64)
  row = np.repeat(np.arange(len(n)), n)
  within = expand_ranges(np.zeros(len(n), np.int64), n)
  order = np.lexsort((rng.random(len(row)), row))  # rows in order, a random order inside each row
  first = np.repeat(np.cumsum(n) - n, k) + np.tile(np.arange(k), len(n))
  return within[order][first].reshape(len(n), k)


def choose_k(rng: np.random.Generator, n: np.ndarray, k: int) -> np.ndarray:
  """For every row i, k distinct values of range(n[i]) uniformly at random (needs n >= k): int64[len(n), k].

  Floyd costs ~k²/2 per row whatever n is; random keys cost ~n. Each row takes the cheaper one, so
  a hub never costs more than k²/2 and a large k (HGSampling's cap of 520) never costs k² on a
  row with few more than k in-edges.
  """
  n = np.asarray(n, np.int64)
  out = np.empty((len(n), k), np.int64)
  by_keys = n <= max(k * k // 2, 2 * k)
  out[by_keys] = key_sample(rng, n[by_keys], k)
  out[~by_keys] = floyd_sample(rng, n[~by_keys], k)
  return out


def sample_in_edges(csr: InCSR, frontier: np.ndarray, fanout: int, rng: np.random.Generator) -> np.ndarray:
  """Positions of up to `fanout` (-1: all) distinct in-edges of every frontier node, without replacement."""
  frontier = np.asarray(frontier, np.int64)
  if fanout == 0 or len(frontier) == 0 or len(csr.src) == 0:
    return np.zeros((0,), np.int64)
  start, deg = csr.indptr[frontier], csr.indptr[frontier + 1] - csr.indptr[frontier]
  if fanout < 0:
    return expand_ranges(start, deg)
  small = deg <= fanout
  whole = expand_ranges(start[small], deg[small])
  big = ~small
  if not big.any():
    return whole
  picked = start[big, None] + choose_k(rng, deg[big], fanout)
  return np.concatenate([whole, picked.reshape(-1)])


def new_ids(candidates: np.ndarray, seen_sorted: np.ndarray) -> np.ndarray:
  """Sorted unique candidates not in `seen_sorted` (sorted); O(c log c + c log s)."""
  u = np.unique(candidates)
  if len(seen_sorted) == 0 or len(u) == 0:
    return u
  i = np.searchsorted(seen_sorted, u)
  hit = (i < len(seen_sorted)) & (seen_sorted[np.minimum(i, len(seen_sorted) - 1)] == u)
  return u[~hit]


def isin_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
  if len(sorted_set) == 0:
    return np.zeros(len(values), bool)
  i = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
  return sorted_set[i] == values


def check_batch_size(batch_size) -> None:
  """Targets per batch: an int >= 1 (a float or a string was cast silently, 0 gave an all-ones budget)."""
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
    raise ValueError(f"batch_size={batch_size!r}: expected an int >= 1. Fix: e.g. batch_size=256")


def target_ids(data: MMHN, targets) -> np.ndarray:
  """The target ids a stream of batches trains on, checked once, before any batch is drawn: distinct, in range,
  1-D integers; a boolean mask over the target type's nodes (PyG's `input_nodes` form) becomes its ids.

  A mask cast to integers used to train every batch on nodes 0 and 1, and repeated ids in different batches
  trained a node twice an epoch, without a word.
  """
  t = _mask_ids(data, targets)
  values, counts = np.unique(t, return_counts=True)
  if t.ndim == 1 and np.issubdtype(t.dtype, np.integer) and np.any(counts > 1):
    raise ValueError(
        f"targets: {int(np.sum(counts > 1))} id(s) repeated (e.g. {int(values[counts > 1][0])}): each would train "
        "more than once an epoch. Fix: list each target once (np.unique)"
    )
  return check_targets(data, t)


def _mask_ids(data: MMHN, targets) -> np.ndarray:
  """`targets` as an array; a boolean mask over the target type's nodes as its ids."""
  t = np.asarray(targets)
  if t.dtype != bool:
    return t
  n = int(data.num_nodes[data.target_type])
  if t.shape != (n,):
    raise ValueError(
        f"targets: a boolean mask of shape {t.shape}, expected ({n},), one per {data.target_type!r} node. "
        f"Fix: pass a mask over the {n} {data.target_type!r} nodes, or their ids"
    )
  return np.flatnonzero(t)


def check_targets(data: MMHN, targets) -> np.ndarray:
  """One batch's targets: distinct local ids of the target type (1-D integers, or a boolean mask over its nodes, as
  `target_ids` takes; a sampler's `sample` refused the mask a stream took)."""
  t = _mask_ids(data, targets)
  if t.size == 0 and t.ndim == 1:  # [] reads as float64
    t = t.astype(np.int64)
  n = int(data.num_nodes[data.target_type])
  if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
    raise ValueError(
        f"targets: shape {t.shape} dtype {t.dtype}, expected a 1-D integer array. "
        f"Fix: pass local {data.target_type!r} ids"
    )
  if len(t) and (t.min() < 0 or t.max() >= n):
    raise ValueError(
        f"targets: id {int(t.min() if t.min() < 0 else t.max())} outside {data.target_type!r} ids "
        f"0..{n - 1}. Fix: pass local {data.target_type!r} ids"
    )
  if len(np.unique(t)) != len(t):
    raise ValueError("targets: contains repeated ids. Fix: list each target once per batch")
  return t.astype(np.int64)
