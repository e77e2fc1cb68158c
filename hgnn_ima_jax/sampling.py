"""Host-side mini-batch samplers (NumPy) over per-relation in-edge CSR: neighbour sampling and HGSampling.

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
  alone and `BatchStream.state()` (seed, epoch, next batch) is all a checkpoint needs.

Cost: a batch costs O(sampled) work for the neighbour sampler (`choose_k`: Floyd's algorithm picks
k of a hub's deg in-edges in O(k²) without touching the others; random keys do rows with deg below
about k²/2), and O(in-degrees of the sampled nodes) for HGSampling's induced edges, never O(graph).
Samplers and `SubgraphBuilder` only read what they built at construction: a prefetch thread may
call them while the main thread trains.

Example::

  data = data_utils.load_dataset('synthetic')
  sampler = NeighborSampler(data, fanouts=[10, 5])          # 2 hops, every relation
  stream = BatchStream(sampler, data.splits['train'], batch_size=64, seed=0)
  for batch in stream.epoch_batches():                      # SampledBatch, in order
    sub = batch.subgraph                                    # nodes per type, edge positions per relation
    ...                                                     # pad with hgnn_ima_jax.subgraph, train
    checkpoint_extra = batch.state_after                    # {'seed':0,'epoch':0,'next_batch':b+1,...}
  stream = BatchStream.from_state(sampler, data.splits['train'], 64, checkpoint_extra)  # resumes there
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from hgnn_ima_jax.graph import MMHN

# Spawn-key tags keep the epoch-plan stream and the batch streams apart (see `batch_rng`).
_PLAN_STREAM, _BATCH_STREAM = 0, 1


# --- RNG ------------------------------------------------------------------------------------

def _check_seed(seed) -> int:
  if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
    raise ValueError(f"seed={seed!r} must be a non-negative integer. Fix: pass e.g. seed=0")
  return int(seed)


def plan_rng(seed: int, epoch: int) -> np.random.Generator:
  """The generator that shuffles epoch `epoch`'s targets; a function of (seed, epoch) only."""
  return np.random.default_rng(np.random.SeedSequence(_check_seed(seed), spawn_key=(_PLAN_STREAM, int(epoch))))


def batch_rng(seed: int, epoch: int, batch: int) -> np.random.Generator:
  """The generator that samples batch `batch` of epoch `epoch`; a function of (seed, epoch, batch) only.

  Stateless on purpose: a resumed run (or a prefetch worker) samples batch b without replaying
  batches 0..b-1. SeedSequence's spawn key hashes the whole tuple, so streams never overlap.
  """
  return np.random.default_rng(
      np.random.SeedSequence(_check_seed(seed), spawn_key=(_BATCH_STREAM, int(epoch), int(batch))))


def part_rng(seed: int, epoch: int, batch: int, part: int, parts: int) -> np.random.Generator:
  """The generator of part `part` of `parts` of a batch (`hgnn_ima_jax.distributed`); one part is `batch_rng`."""
  if parts == 1:
    return batch_rng(seed, epoch, batch)
  return np.random.default_rng(
      np.random.SeedSequence(_check_seed(seed), spawn_key=(_BATCH_STREAM, int(epoch), int(batch), int(part))))


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
    that reached it; 0 for the targets. For inspection and tests; the padding ignores it.
  """

  nodes: dict[str, np.ndarray]
  edges: dict[str, np.ndarray]
  targets: np.ndarray
  hops: dict[str, np.ndarray] | None = None

  def node_counts(self, node_types: Sequence[str]) -> tuple[int, ...]:
    return tuple(len(self.nodes[t]) for t in node_types)

  def edge_counts(self, relations: Sequence) -> tuple[int, ...]:
    return tuple(len(self.edges[r.name]) for r in relations)


def _expand_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
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
  within = _expand_ranges(np.zeros(len(n), np.int64), n)
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
    return _expand_ranges(start, deg)
  small = deg <= fanout
  whole = _expand_ranges(start[small], deg[small])
  big = ~small
  if not big.any():
    return whole
  picked = start[big, None] + choose_k(rng, deg[big], fanout)
  return np.concatenate([whole, picked.reshape(-1)])


def _new_ids(candidates: np.ndarray, seen_sorted: np.ndarray) -> np.ndarray:
  """Sorted unique candidates not in `seen_sorted` (sorted); O(c log c + c log s)."""
  u = np.unique(candidates)
  if len(seen_sorted) == 0 or len(u) == 0:
    return u
  i = np.searchsorted(seen_sorted, u)
  hit = (i < len(seen_sorted)) & (seen_sorted[np.minimum(i, len(seen_sorted) - 1)] == u)
  return u[~hit]


def _isin_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
  if len(sorted_set) == 0:
    return np.zeros(len(values), bool)
  i = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
  return sorted_set[i] == values


def _check_targets(data: MMHN, targets) -> np.ndarray:
  t = np.asarray(targets)
  n = int(data.num_nodes[data.target_type])
  if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
    raise ValueError(f"targets: shape {t.shape} dtype {t.dtype}, expected a 1-D integer array. "
                     f"Fix: pass local {data.target_type!r} ids")
  if len(t) and (t.min() < 0 or t.max() >= n):
    raise ValueError(f"targets: id {int(t.min() if t.min() < 0 else t.max())} outside {data.target_type!r} ids "
                     f"0..{n - 1}. Fix: pass local {data.target_type!r} ids")
  if len(np.unique(t)) != len(t):
    raise ValueError("targets: contains repeated ids. Fix: list each target once per batch")
  return t.astype(np.int64)


# --- neighbour sampling ---------------------------------------------------------------------

class NeighborSampler:
  """Per-hop, per-relation neighbour sampling without replacement (PyG `NeighborLoader` on HeteroData).

  Args:
    data: the host graph.
    fanouts: one entry per hop; an entry is an int for every relation, or a dict relation name ->
      int naming every relation (0 skips it). -1 takes all in-edges.
    csr: `build_in_csr(data)` if already built (samplers of one graph can share it).
  """

  kind = "neighbor"

  def __init__(self, data: MMHN, fanouts: Sequence[int | Mapping[str, int]], *,
               csr: Mapping[str, InCSR] | None = None):
    self.data = data
    self.csr = dict(csr) if csr is not None else build_in_csr(data)
    names = [r.name for r in data.relations]
    if isinstance(fanouts, (int, np.integer, Mapping)) or len(fanouts) == 0:
      raise ValueError(f"fanouts={fanouts!r}: expected a non-empty list with one entry per hop. "
                       "Fix: e.g. fanouts=[10, 5] or [{'ma': 10, ...}, ...]")
    table = []
    for h, f in enumerate(fanouts):
      if isinstance(f, Mapping):
        unknown = sorted(set(f) - set(names))
        missing = [n for n in names if n not in f]
        if unknown or missing:
          problem = " ".join(([f"unknown relations {unknown}"] if unknown else [])
                             + ([f"missing relations {missing}"] if missing else []))
          raise ValueError(f"fanouts[{h}]: {problem}. Fix: give a fanout for exactly the relations {names} "
                           "(0 skips one)")
        row = tuple(f[n] for n in names)
      else:
        row = (f,) * len(names)
      for n, k in zip(names, row):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) < -1:
          raise ValueError(f"fanouts[{h}][{n!r}]={k!r}: expected an int >= -1. Fix: use -1 (all), 0 (skip) or k > 0")
      table.append(tuple(int(k) for k in row))
    self.fanouts = tuple(table)  # [hop][relation id]

  @property
  def num_hops(self) -> int:
    return len(self.fanouts)

  def config(self) -> dict:
    """Settings that determine the batches (stored with the stream state to refuse a mismatched resume)."""
    return {"kind": self.kind, "fanouts": [list(f) for f in self.fanouts]}

  def sample(self, targets, rng: np.random.Generator) -> SampledSubgraph:
    data = self.data
    targets = _check_targets(data, targets)
    types, rels = list(data.node_types), list(data.relations)
    empty = np.zeros((0,), np.int64)
    nodes = {t: [empty] for t in types}
    nodes[data.target_type] = [targets]
    seen = {t: np.sort(np.concatenate(nodes[t])) for t in types}
    frontier = {t: nodes[t][0] for t in types}
    edges = {r.name: [] for r in rels}
    for hop in range(self.num_hops):
      reached = {t: [] for t in types}
      for ri, r in enumerate(rels):
        pos = sample_in_edges(self.csr[r.name], frontier[r.dst], self.fanouts[hop][ri], rng)
        edges[r.name].append(pos)
        reached[r.src].append(self.csr[r.name].src[pos])
      for t in types:
        new = _new_ids(np.concatenate(reached[t]), seen[t]) if reached[t] else empty
        nodes[t].append(new)
        seen[t] = np.union1d(seen[t], new)
        frontier[t] = new
    return SampledSubgraph({t: np.concatenate(v) for t, v in nodes.items()},
                           {n: (np.concatenate(v) if v else empty) for n, v in edges.items()}, targets,
                           {t: np.repeat(np.arange(len(v)), [len(x) for x in v]) for t, v in nodes.items()})


# --- HGSampling -----------------------------------------------------------------------------

class HGTSampler:
  """HGSampling (HGT, Algorithm 1), as PyG's `HGTLoader`.

  Args:
    data: the host graph.
    num_samples: nodes sampled per type per iteration: an int for every type, or a dict type ->
      int (types not named get 0).
    num_iterations: the sampling depth L.
    max_budget_neighbors: when a sampled node has more in-edges than this on a relation, only this
      many (at random, without replacement) add to the budget, each still with 1/deg, so that a
      hub adds at most `cap` entries (PyG caps at 520 the same way); None = no cap.
    csr: `build_in_csr(data)` if already built.
  """

  kind = "hgt"

  def __init__(self, data: MMHN, num_samples: int | Mapping[str, int], num_iterations: int, *,
               max_budget_neighbors: int | None = 520, csr: Mapping[str, InCSR] | None = None):
    self.data = data
    self.csr = dict(csr) if csr is not None else build_in_csr(data)
    types = list(data.node_types)
    if isinstance(num_samples, Mapping):
      unknown = sorted(set(num_samples) - set(types))
      if unknown:
        raise ValueError(f"num_samples: unknown node types {unknown}. Fix: use names from {types}")
      per_type = {t: num_samples.get(t, 0) for t in types}
    else:
      per_type = {t: num_samples for t in types}
    for t, n in per_type.items():
      if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) < 0:
        raise ValueError(f"num_samples[{t!r}]={n!r}: expected an int >= 0. Fix: e.g. num_samples=64")
    if isinstance(num_iterations, bool) or not isinstance(num_iterations, (int, np.integer)) or num_iterations < 1:
      raise ValueError(f"num_iterations={num_iterations!r}: expected an int >= 1. Fix: e.g. num_iterations=2")
    if max_budget_neighbors is not None and int(max_budget_neighbors) < 1:
      raise ValueError(f"max_budget_neighbors={max_budget_neighbors!r}: expected None or an int >= 1. "
                       "Fix: use None (no cap) or e.g. 520")
    self.num_samples = {t: int(n) for t, n in per_type.items()}
    self.num_iterations = int(num_iterations)
    self.max_budget_neighbors = None if max_budget_neighbors is None else int(max_budget_neighbors)

  def config(self) -> dict:
    return {"kind": self.kind, "num_samples": dict(self.num_samples), "num_iterations": self.num_iterations,
            "max_budget_neighbors": self.max_budget_neighbors}

  def _budget_terms(self, t: str, added: np.ndarray, rng) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per source type: (neighbour ids, 1/deg weights) that nodes `added` of type t put into the budget."""
    out = {}
    for r in self.data.relations:
      if r.dst != t or len(added) == 0:
        continue
      csr = self.csr[r.name]
      start, deg = csr.indptr[added], csr.indptr[added + 1] - csr.indptr[added]
      cap = self.max_budget_neighbors
      if cap is None:
        pos, w = _expand_ranges(start, deg), np.repeat(1.0 / np.maximum(deg, 1), deg)
      else:
        small = deg <= cap
        big = ~small
        pos = [_expand_ranges(start[small], deg[small])]
        w = [np.repeat(1.0 / np.maximum(deg[small], 1), deg[small])]
        if big.any():
          pos.append((start[big, None] + choose_k(rng, deg[big], cap)).reshape(-1))
          w.append(np.repeat(1.0 / deg[big], cap))
        pos, w = np.concatenate(pos), np.concatenate(w)
      ids, ws = out.get(r.src, ([], []))
      out[r.src] = (ids + [csr.src[pos]], ws + [w])
    return {s: (np.concatenate(i), np.concatenate(w)) for s, (i, w) in out.items()}

  def sample(self, targets, rng: np.random.Generator) -> SampledSubgraph:
    data = self.data
    targets = _check_targets(data, targets)
    types = list(data.node_types)
    empty_i, empty_f = np.zeros((0,), np.int64), np.zeros((0,), np.float64)
    nodes = {t: [empty_i] for t in types}
    nodes[data.target_type] = [targets]
    sampled = {t: np.sort(np.concatenate(nodes[t])) for t in types}
    budget = {t: (empty_i, empty_f) for t in types}  # per type: sorted unique ids and their summed weight

    def add_to_budget(t, added):
      for s, (ids, w) in self._budget_terms(t, added, rng).items():
        keep = ~_isin_sorted(ids, sampled[s])  # sampled nodes never re-enter the budget
        old_ids, old_w = budget[s]
        u, inv = np.unique(np.concatenate([old_ids, ids[keep]]), return_inverse=True)
        budget[s] = (u, np.bincount(inv, weights=np.concatenate([old_w, w[keep]]), minlength=len(u)))

    add_to_budget(data.target_type, targets)
    hops = {t: [np.zeros(len(nodes[t][0]), np.int64)] for t in types}
    for it in range(1, self.num_iterations + 1):
      # All types sample from the budget as it stands at the start of the iteration (Algorithm 1).
      picks = {}
      for t in types:
        ids, w = budget[t]
        n = self.num_samples[t]
        if n == 0 or len(ids) == 0:
          picks[t] = empty_i
          continue
        if len(ids) <= n:
          picks[t] = ids
          continue
        # P(s) ∝ B[s]²; n draws without replacement as Efraimidis–Spirakis: the n largest log(u)/p.
        p = np.square(w)
        keys = np.log(rng.random(len(ids))) / (p / p.sum())
        picks[t] = np.sort(ids[np.argpartition(-keys, n - 1)[:n]])
      for t in types:
        if len(picks[t]):
          nodes[t].append(picks[t])
          hops[t].append(np.full(len(picks[t]), it, np.int64))
          sampled[t] = np.union1d(sampled[t], picks[t])
          ids, w = budget[t]
          keep = ~_isin_sorted(ids, picks[t])
          budget[t] = (ids[keep], w[keep])
      for t in types:
        if len(picks[t]):
          add_to_budget(t, picks[t])
    nodes = {t: np.concatenate(v) for t, v in nodes.items()}
    return SampledSubgraph(nodes, self._induced_edges(nodes), targets, {t: np.concatenate(v) for t, v in hops.items()})

  def _induced_edges(self, nodes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every edge whose both ends were sampled: scans the in-edges of the sampled receivers."""
    out = {}
    for r in self.data.relations:
      csr, dst = self.csr[r.name], np.sort(nodes[r.dst])
      pos = _expand_ranges(csr.indptr[dst], csr.indptr[dst + 1] - csr.indptr[dst])
      out[r.name] = pos[_isin_sorted(csr.src[pos], np.sort(nodes[r.src]))]
    return out


# --- epochs and resumable streams -----------------------------------------------------------

class EpochPlan:
  """Epoch `epoch`'s targets, shuffled by `plan_rng(seed, epoch)` and cut into batches of `batch_size`.

  Every target is in exactly one batch; the last batch is smaller unless `drop_last`.
  """

  def __init__(self, targets, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True,
               drop_last: bool = False):
    targets = np.asarray(targets, np.int64)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
      raise ValueError(f"batch_size={batch_size!r}: expected an int >= 1. Fix: e.g. batch_size=256")
    if len(targets) == 0:
      raise ValueError("targets: empty. Fix: pass the training split's target ids")
    self.seed, self.epoch, self.batch_size, self.drop_last = _check_seed(seed), int(epoch), int(batch_size), drop_last
    self.order = plan_rng(seed, epoch).permutation(targets) if shuffle else targets.copy()
    n = len(self.order)
    self.num_batches = n // self.batch_size if drop_last else -(-n // self.batch_size)
    if self.num_batches == 0:
      raise ValueError(f"batch_size={batch_size} with drop_last=True leaves no batch of the {n} targets. "
                       "Fix: lower batch_size or set drop_last=False")

  def __len__(self) -> int:
    return self.num_batches

  def batch(self, b: int) -> np.ndarray:
    if not 0 <= b < self.num_batches:
      raise IndexError(f"batch {b} outside 0..{self.num_batches - 1} of epoch {self.epoch}")
    return self.order[b * self.batch_size:(b + 1) * self.batch_size]

  def __iter__(self) -> Iterator[np.ndarray]:
    return (self.batch(b) for b in range(self.num_batches))


@dataclasses.dataclass
class SampledBatch:
  """One batch of a stream: where it is, its targets, its sub-graph, and the stream state after it."""

  epoch: int
  index: int
  targets: np.ndarray
  subgraph: SampledSubgraph
  state_after: dict


class BatchStream:
  """Epochs of sampled batches, resumable from a small state dict.

  `state()` is {'seed', 'epoch', 'next_batch', 'batch_size', 'num_targets', 'sampler'} — plain ints,
  strings and lists, for a checkpoint's JSON/metadata. Batch b of epoch e is always
  `sampler.sample(plan(e).batch(b), batch_rng(seed, e, b))`, whatever ran before.
  """

  def __init__(self, sampler, targets, batch_size: int, *, seed: int, epoch: int = 0, next_batch: int = 0,
               shuffle: bool = True, drop_last: bool = False):
    self.sampler, self.targets = sampler, np.asarray(targets, np.int64)
    self.batch_size, self.seed, self.shuffle, self.drop_last = int(batch_size), _check_seed(seed), shuffle, drop_last
    self.epoch, self.next_batch = int(epoch), int(next_batch)
    n = len(self.plan())
    if not 0 <= self.next_batch <= n:
      raise ValueError(f"next_batch={next_batch} outside 0..{n} for epoch {epoch}. "
                       "Fix: resume from a state this stream's settings produced")

  def plan(self, epoch: int | None = None) -> EpochPlan:
    """Epoch `epoch`'s plan (default: the current epoch); the last one is kept, as a shuffle is O(targets)."""
    epoch = self.epoch if epoch is None else int(epoch)
    cached = getattr(self, "_plan", None)  # one tuple, replaced whole: safe to read from a prefetch thread
    if cached is not None and cached[0] == epoch:
      return cached[1]
    plan = EpochPlan(self.targets, self.batch_size, seed=self.seed, epoch=epoch, shuffle=self.shuffle,
                     drop_last=self.drop_last)
    self._plan = (epoch, plan)
    return plan

  def sample_batch(self, epoch: int, b: int, plan: EpochPlan | None = None) -> SampledBatch:
    plan = plan or self.plan(epoch)
    targets = plan.batch(b)
    sub = self.sampler.sample(targets, batch_rng(self.seed, epoch, b))
    after = (epoch, b + 1) if b + 1 < plan.num_batches else (epoch + 1, 0)
    return SampledBatch(epoch, b, targets, sub, self._state(*after))

  def epoch_batches(self) -> Iterator[SampledBatch]:
    """The current epoch's remaining batches; the stream advances as each is yielded (next epoch at the end)."""
    epoch, plan = self.epoch, self.plan()
    for b in range(self.next_batch, plan.num_batches):
      batch = self.sample_batch(epoch, b, plan)
      self.epoch, self.next_batch = batch.state_after["epoch"], batch.state_after["next_batch"]
      yield batch
    if self.epoch == epoch:  # an epoch resumed at its very end: move on
      self.epoch, self.next_batch = epoch + 1, 0

  def _state(self, epoch: int, next_batch: int) -> dict:
    return {"seed": self.seed, "epoch": int(epoch), "next_batch": int(next_batch), "batch_size": self.batch_size,
            "num_targets": int(len(self.targets)), "shuffle": bool(self.shuffle), "drop_last": bool(self.drop_last),
            "sampler": self.sampler.config()}

  def state(self) -> dict:
    return self._state(self.epoch, self.next_batch)

  @classmethod
  def from_state(cls, sampler, targets, batch_size: int, state: Mapping) -> "BatchStream":
    """The stream `state` was saved from; refuses a state from other settings (it would give other batches)."""
    want = {"batch_size": int(batch_size), "num_targets": int(len(targets)), "sampler": sampler.config()}
    for key, value in want.items():
      got = state.get(key)
      if key == "sampler" and got is not None:
        got = _jsonish(got)
        value = _jsonish(value)
      if got != value:
        raise ValueError(f"sampler state: {key}={got!r} but this run has {value!r}. Fix: resume with the settings "
                         "the checkpoint was written with, or start the run afresh")
    return cls(sampler, targets, batch_size, seed=state["seed"], epoch=state["epoch"],
               next_batch=state["next_batch"], shuffle=state.get("shuffle", True),
               drop_last=state.get("drop_last", False))


def _jsonish(x):
  """Lists for tuples, str keys: how a config looks after a JSON round trip."""
  if isinstance(x, Mapping):
    return {str(k): _jsonish(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonish(v) for v in x]
  return x


# --- construction by name (for config.batch) -------------------------------------------------

SAMPLER_KINDS = ("neighbor", "hgt")


def make_sampler(data: MMHN, kind: str, *, fanouts=None, num_samples=None, num_iterations=None,
                 max_budget_neighbors: int | None = 520, csr: Mapping[str, InCSR] | None = None):
  """The sampler named `kind` ('neighbor': needs `fanouts`; 'hgt': needs `num_samples`, `num_iterations`)."""
  if kind == "neighbor":
    if fanouts is None:
      raise ValueError("fanouts=None: the neighbor sampler needs one fanout per hop. Fix: e.g. fanouts=[10, 5]")
    return NeighborSampler(data, list(fanouts), csr=csr)
  if kind == "hgt":
    if num_samples is None or num_iterations is None:
      raise ValueError(f"num_samples={num_samples!r}, num_iterations={num_iterations!r}: the hgt sampler needs "
                       "both. Fix: e.g. num_samples=128, num_iterations=2")
    return HGTSampler(data, num_samples, num_iterations, max_budget_neighbors=max_budget_neighbors, csr=csr)
  raise ValueError(f"sampler kind={kind!r}: use one of {SAMPLER_KINDS}. Fix: set the batch mode to one of them")
