"""The two samplers of `config.batch.mode`: `NeighborSampler` (per-hop fanouts) and `HGTSampler` (HGSampling).

See `hgnn_ima_jax.sampling` for what they return and how they draw; `make_sampler` builds one by name.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from hgnn_ima_jax.graph import MMHN
from hgnn_ima_jax.graph_checks import names_problem
from hgnn_ima_jax.sampling import (
    InCSR,
    SampledSubgraph,
    build_in_csr,
    check_targets,
    choose_k,
    expand_ranges,
    isin_sorted,
    new_ids,
    sample_in_edges,
)

# --- neighbour sampling ---------------------------------------------------------------------


def check_rng(rng) -> None:
  """A sampler draws from a numpy Generator; a seed given in its place failed deep inside as an AttributeError."""
  if not isinstance(rng, np.random.Generator):
    raise ValueError(
        f"rng={rng!r}: expected a numpy Generator. Fix: pass batch_rng(seed, epoch, batch) (the batch streams' "
        "draw) or np.random.default_rng(seed)"
    )


class NeighborSampler:
  """Per-hop, per-relation neighbour sampling without replacement (PyG `NeighborLoader` on HeteroData).

  Args:
    data: the host graph.
    fanouts: one entry per hop; an entry is an int for every relation, or a dict relation name ->
      int naming every relation (0 skips it). -1 takes all in-edges.
    csr: `build_in_csr(data)` if already built (samplers of one graph can share it).
  """

  kind = "neighbor"

  def __init__(self, data: MMHN, fanouts: Sequence[int | Mapping[str, int]], *, csr: Mapping[str, InCSR] | None = None):
    self.data = data
    self.csr = dict(csr) if csr is not None else build_in_csr(data)
    names = [r.name for r in data.relations]
    if isinstance(fanouts, (int, np.integer, Mapping)) or len(fanouts) == 0:
      raise ValueError(
          f"fanouts={fanouts!r}: expected a non-empty list with one entry per hop. "
          "Fix: e.g. fanouts=[10, 5] or [{'ma': 10, ...}, ...]"
      )
    table = []
    for h, f in enumerate(fanouts):
      if isinstance(f, Mapping):
        problem = names_problem(f, names, "relation", every=True)
        if problem:
          pyg = " by name, not PyG's (src, relation, dst) tuple," if any(isinstance(k, tuple) for k in f) else ""
          raise ValueError(
              f"fanouts[{h}] {problem}. Fix: give a fanout for exactly its relations{pyg} {', '.join(names)} "
              "(0 skips one)"
          )
        row = tuple(f[n] for n in names)
      else:  # one int for every relation: checked as given, not as the relation it reaches first
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or int(f) < -1:
          raise ValueError(f"fanouts[{h}]={f!r}: expected an int >= -1. Fix: use -1 (all), 0 (skip) or k > 0")
        row = (f,) * len(names)
      for n, k in zip(names, row):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) < -1:
          raise ValueError(f"fanouts[{h}][{n!r}]={k!r}: expected an int >= -1. Fix: use -1 (all), 0 (skip) or k > 0")
      table.append(tuple(int(k) for k in row))
    self.fanouts = tuple(table)  # [hop][relation id]

  @property
  def num_hops(self) -> int:
    return len(self.fanouts)

  def sample(self, targets, rng: np.random.Generator) -> SampledSubgraph:
    data = self.data
    targets = check_targets(data, targets)
    check_rng(rng)
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
        new = new_ids(np.concatenate(reached[t]), seen[t]) if reached[t] else empty
        nodes[t].append(new)
        seen[t] = np.union1d(seen[t], new)
        frontier[t] = new
    # Edges sampled at hop h end at the hop-h frontier: their receivers' hop is h.
    return SampledSubgraph(
        {t: np.concatenate(v) for t, v in nodes.items()},
        {n: (np.concatenate(v) if v else empty) for n, v in edges.items()},
        targets,
        {t: np.repeat(np.arange(len(v)), [len(x) for x in v]) for t, v in nodes.items()},
        {n: np.repeat(np.arange(len(v)), [len(x) for x in v]) for n, v in edges.items()},
    )


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

  def __init__(
      self,
      data: MMHN,
      num_samples: int | Mapping[str, int],
      num_iterations: int,
      *,
      max_budget_neighbors: int | None = 520,
      csr: Mapping[str, InCSR] | None = None,
  ):
    self.data = data
    self.csr = dict(csr) if csr is not None else build_in_csr(data)
    types = list(data.node_types)
    if isinstance(num_samples, Mapping):
      problem = names_problem(num_samples, types, "node type", every=False)
      if problem:
        raise ValueError(
            f"num_samples {problem}. Fix: use its node types {', '.join(types)} (a type not named samples none)"
        )
      per_type = {t: num_samples.get(t, 0) for t in types}
    else:
      per_type = {t: num_samples for t in types}
    for t, n in per_type.items():
      if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) < 0:
        iterations = (
            " (one count for every iteration: their number is num_iterations, not a list per type as in PyG's "
            "HGTLoader)"
            if isinstance(n, (list, tuple))
            else ""
        )
        raise ValueError(f"num_samples[{t!r}]={n!r}: expected an int >= 0. Fix: e.g. num_samples=64{iterations}")
    if isinstance(num_iterations, bool) or not isinstance(num_iterations, (int, np.integer)) or num_iterations < 1:
      raise ValueError(f"num_iterations={num_iterations!r}: expected an int >= 1. Fix: e.g. num_iterations=2")
    if max_budget_neighbors is not None and (
        isinstance(max_budget_neighbors, bool)
        or not isinstance(max_budget_neighbors, (int, np.integer))
        or max_budget_neighbors < 1
    ):
      raise ValueError(
          f"max_budget_neighbors={max_budget_neighbors!r}: expected None or an int >= 1. "
          "Fix: use None (no cap) or e.g. 520"
      )
    self.num_samples = {t: int(n) for t, n in per_type.items()}
    self.num_iterations = int(num_iterations)
    self.max_budget_neighbors = None if max_budget_neighbors is None else int(max_budget_neighbors)

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
        pos, w = expand_ranges(start, deg), np.repeat(1.0 / np.maximum(deg, 1), deg)
      else:
        small = deg <= cap
        big = ~small
        pos = [expand_ranges(start[small], deg[small])]
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
    targets = check_targets(data, targets)
    check_rng(rng)
    types = list(data.node_types)
    empty_i, empty_f = np.zeros((0,), np.int64), np.zeros((0,), np.float64)
    nodes = {t: [empty_i] for t in types}
    nodes[data.target_type] = [targets]
    sampled = {t: np.sort(np.concatenate(nodes[t])) for t in types}
    budget = {t: (empty_i, empty_f) for t in types}  # per type: sorted unique ids and their summed weight

    def add_to_budget(t, added):
      for s, (ids, w) in self._budget_terms(t, added, rng).items():
        keep = ~isin_sorted(ids, sampled[s])  # sampled nodes never re-enter the budget
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
          keep = ~isin_sorted(ids, picks[t])
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
      pos = expand_ranges(csr.indptr[dst], csr.indptr[dst + 1] - csr.indptr[dst])
      out[r.name] = pos[isin_sorted(csr.src[pos], np.sort(nodes[r.src]))]
    return out


# --- construction by name (for config.batch) -------------------------------------------------

SAMPLER_KINDS = ("neighbor", "hgt")


def make_sampler(
    data: MMHN,
    kind: str,
    *,
    fanouts=None,
    num_samples=None,
    num_iterations=None,
    max_budget_neighbors: int | None = 520,
    csr: Mapping[str, InCSR] | None = None,
):
  """The sampler named `kind` ('neighbor': needs `fanouts`; 'hgt': needs `num_samples`, `num_iterations`)."""
  if kind == "neighbor":
    if fanouts is None:
      raise ValueError("fanouts=None: the neighbor sampler needs one fanout per hop. Fix: e.g. fanouts=[10, 5]")
    return NeighborSampler(data, list(fanouts), csr=csr)
  if kind == "hgt":
    if num_samples is None or num_iterations is None:
      raise ValueError(
          f"num_samples={num_samples!r}, num_iterations={num_iterations!r}: the hgt sampler needs "
          "both. Fix: e.g. num_samples=128, num_iterations=2"
      )
    return HGTSampler(data, num_samples, num_iterations, max_budget_neighbors=max_budget_neighbors, csr=csr)
  raise ValueError(f"sampler kind={kind!r}: use one of {SAMPLER_KINDS}. Fix: set the batch mode to one of them")
