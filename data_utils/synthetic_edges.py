"""The synthetic graph's structure: class-aware sampling of links by popularity (design point 3
of `data_utils.synthetic`), as vectorised NumPy over int64 id arrays."""

from __future__ import annotations

import numpy as np

from .synthetic_config import HubSpec, SyntheticConfig


class ClassSampler:
  """Draws nodes of a requested class (or of any other class) by popularity, vectorised."""

  def __init__(self, classes: np.ndarray, weights: np.ndarray, num_classes: int):
    self.classes = classes
    self.members, self.cum = [], []
    for c in range(num_classes):
      idx = np.flatnonzero(classes == c)
      self.members.append(idx)
      self.cum.append(np.cumsum(weights[idx]) if len(idx) else np.zeros(0))
    self.all_cum = np.cumsum(weights)

  def same(self, rng: np.random.Generator, want: np.ndarray) -> np.ndarray:
    out = np.empty(len(want), np.int64)
    u = rng.random(len(want))
    for c, (idx, cum) in enumerate(zip(self.members, self.cum)):
      sel = want == c
      if sel.any() and not len(idx):  # a class without members: take another class
        out[sel] = self.other(rng, want[sel])
      elif sel.any():
        out[sel] = idx[np.minimum(np.searchsorted(cum, u[sel] * cum[-1], side="right"), len(idx) - 1)]
    return out

  def other(self, rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    # Rejection keeps class proportions as in the popularity weights.
    out = np.full(len(avoid), -1, np.int64)
    todo = np.arange(len(avoid))
    for _ in range(200):
      if not len(todo):
        break
      u = rng.random(len(todo))
      cand = np.minimum(np.searchsorted(self.all_cum, u * self.all_cum[-1], side="right"), len(self.all_cum) - 1)
      ok = self.classes[cand] != avoid[todo]
      out[todo[ok]] = cand[ok]
      todo = todo[~ok]
    if len(todo):  # pathological weights: fall back to the next class round-robin
      out[todo] = self.same(rng, (avoid[todo] + 1) % len(self.members))
    return out

  def draw(self, rng: np.random.Generator, cls: np.ndarray, homophily: float) -> np.ndarray:
    same = rng.random(len(cls)) < homophily
    out = np.empty(len(cls), np.int64)
    out[same] = self.same(rng, cls[same])
    out[~same] = self.other(rng, cls[~same])
    return out


def stratified_quota(n: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """n class ids in random order with counts as close to n * weights as rounding allows."""
  w = weights / weights.sum()
  counts = np.floor(n * w).astype(np.int64)
  rest = n - counts.sum()
  if rest:
    order = np.argsort(-(n * w - counts), kind="stable")
    counts[order[:rest]] += 1
  return rng.permutation(np.repeat(np.arange(len(w)), counts))


def unique_pairs(src: np.ndarray, dst: np.ndarray, n_dst: int) -> np.ndarray:
  """(E, 2) distinct (src, dst) pairs, in first-seen order."""
  key = src.astype(np.int64) * n_dst + dst
  _, first = np.unique(key, return_index=True)
  first.sort()
  return np.stack([src[first], dst[first]], 1).astype(np.int64)


def streams(seed: int, names: tuple[str, ...]) -> dict[str, np.random.Generator]:
  # One independent stream per component: changing one knob leaves the others' draws alone,
  # so two configs that differ in e.g. homophily share labels and noise (paired comparisons).
  children = np.random.SeedSequence(int(seed)).spawn(len(names))
  return {n: np.random.Generator(np.random.PCG64(s)) for n, s in zip(names, children)}


def other_class(rng: np.random.Generator, cls: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """For each class in `cls`, a different class drawn in proportion to `weights`."""
  p = weights / weights.sum()
  out = cls.copy()
  todo = np.arange(len(cls))
  while len(todo):
    out[todo] = rng.choice(len(p), size=len(todo), p=p)
    todo = todo[out[todo] == cls[todo]]
  return out


def hub_edges(cfg: SyntheticConfig, rng, y, hub: HubSpec, hub_class, hub_w, class_w):
  """(E, 2) distinct (target, hub) links with homophily; no hub is left without a link if avoidable."""
  n, n_hub = len(y), len(hub_class)
  deg = rng.integers(hub.min_links, hub.max_links + 1, size=n)
  # Seed links: each hub takes one target (of its own class with prob. homophily), at most one seed
  # per target per round and at most max_links rounds, so hubs are not isolated and per-target link
  # counts stay within [min, max].
  rounds = min(hub.max_links, -(-n_hub // n))
  order = rng.permutation(n_hub)
  seeded = np.zeros(n, np.int64)
  seed_edges = []
  for k in range(rounds):
    seed_hubs = order[k * n : (k + 1) * n]
    want = hub_class[seed_hubs].copy()
    het = rng.random(len(want)) >= cfg.homophily
    want[het] = other_class(rng, want[het], class_w)
    seed_tgt = np.full(len(seed_hubs), -1, np.int64)
    free = np.ones(n, bool)
    for c in range(cfg.num_classes):
      hubs_c = np.flatnonzero(want == c)
      cand = rng.permutation(np.flatnonzero(y == c))[: len(hubs_c)]
      seed_tgt[hubs_c[: len(cand)]] = cand
      free[cand] = False
    over = np.flatnonzero(seed_tgt < 0)  # more hubs wanted a class than it has targets
    seed_tgt[over] = rng.permutation(np.flatnonzero(free))[: len(over)]
    seeded[seed_tgt] += 1
    seed_edges.append(np.stack([seed_tgt, seed_hubs], 1))
  deg = np.maximum(deg, seeded)
  # Remaining links: each target draws deg - seeded hubs, of its class with prob. homophily.
  src = np.repeat(np.arange(n), deg - seeded)
  dst = ClassSampler(hub_class, hub_w, cfg.num_classes).draw(rng, y[src], cfg.homophily)
  e = np.concatenate([*seed_edges, np.stack([src, dst], 1)])
  return unique_pairs(e[:, 0], e[:, 1], n_hub)


def item_edges(cfg: SyntheticConfig, rng, y, weights) -> dict[str, np.ndarray]:
  """Symmetric item–item relations with homophily and exact pair counts."""
  n = len(y)
  deg = np.array([r.pairs_per_item for r in cfg.item_relations], float)
  if cfg.num_edges is not None:
    total = int(round(cfg.num_edges * cfg.scale / 2))
    pairs = np.floor(total * deg / deg.sum()).astype(np.int64)
    pairs[np.argmax(deg)] += total - pairs.sum()
  else:
    pairs = np.round(deg * n).astype(np.int64)
  sampler = ClassSampler(y, weights, cfg.num_classes)
  cum = np.cumsum(weights)
  out = {}
  for r, n_pairs in zip(cfg.item_relations, pairs):
    n_pairs = int(min(n_pairs, n * (n - 1) // 2))
    have = np.zeros((0, 2), np.int64)
    for _ in range(50):
      need = n_pairs - len(have)
      if need <= 0:
        break
      k = int(need * 1.1) + 16
      a = np.minimum(np.searchsorted(cum, rng.random(k) * cum[-1], side="right"), n - 1)
      b = sampler.draw(rng, y[a], cfg.homophily)
      keep = a != b
      lo, hi = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
      have = unique_pairs(np.concatenate([have[:, 0], lo]), np.concatenate([have[:, 1], hi]), n)
    have = have[:n_pairs]
    # Symmetric like the AMAZON-1 code, but as a set (no duplicate edges).
    out[r.name] = np.concatenate([have, have[:, ::-1]])
  return out
