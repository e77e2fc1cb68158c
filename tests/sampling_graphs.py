"""Graphs for the sampler and sub-graph tests: the DOUBAN-like toy of model_fixtures with denser, hubbed edges;
and a fixed budget ladder for them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from model_fixtures import make_graph

from hgnn_ima_jax.budgets import Budget, BudgetLadder


def unique_edges(rng, n_src: int, n_dst: int, n_edges: int, hub_dst: int | None = None, hub_degree: int = 0):
  """`n_edges` distinct random (src, dst) pairs, plus `hub_degree` more into `hub_dst`; rows shuffled."""
  pairs = set()
  if hub_dst is not None:
    for s in rng.choice(n_src, size=min(hub_degree, n_src), replace=False):
      pairs.add((int(s), int(hub_dst)))
  while len(pairs) < n_edges + (min(hub_degree, n_src) if hub_dst is not None else 0):
    pairs.add((int(rng.integers(n_src)), int(rng.integers(n_dst))))
  e = np.array(sorted(pairs), np.int64).reshape(-1, 2)
  return e[rng.permutation(len(e))]


def dense_graph(seed: int = 0, num_nodes=(30, 8, 40), empty_md: bool = False, widths: str = "equal"):
  """A toy MMHN whose nodes have degrees above the test fanouts (hubs of degree ~20), unsorted edge rows.

  Relations (DOUBAN-like): ma movie->actor, md movie->director, dm director->movie, am actor->movie.
  """
  base = make_graph(2, seed=seed, num_nodes=num_nodes, empty_relation=None, widths=widths)
  rng = np.random.default_rng(seed + 100)
  nm, nd, na = num_nodes
  edges = {
      "ma": unique_edges(rng, nm, na, 90, hub_dst=0, hub_degree=20),
      "md": np.zeros((0, 2), np.int64) if empty_md else unique_edges(rng, nm, nd, 30),
      "dm": unique_edges(rng, nd, nm, 40),
      "am": unique_edges(rng, na, nm, 110, hub_dst=1, hub_degree=25),
  }
  return dataclasses.replace(base, edges=edges).validate()


def geometric_ladder(upper: Budget, num_buckets: int = 4, ratio: float = 2.0) -> BudgetLadder:
  """Rung i (0-based of K) is upper / ratio^(K-1-i), entry by entry; rung K-1 is upper.

  Training calibrates its ladder on sampled batches (`BudgetLadder.calibrate`); this one depends on the bound
  alone, so a test gets the same few rungs whatever the sampler draws.
  """
  return BudgetLadder(
      [upper.scaled(lambda n, s=ratio ** (num_buckets - 1 - i): math.ceil(n / s)) for i in range(num_buckets)]
  )
