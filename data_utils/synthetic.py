"""The synthetic multi-modal heterogeneous network (dataset name ``synthetic``).

Why it exists: the paper's feature files are not published with its graphs, so
the project needs an embedded dataset on which every model can run end to end,
and on which the paper's central claim can be *tested* rather than assumed: that
fusing modalities *during* propagation (HGNN-IMA: one inter-node attention β
shared by all modalities, mixed from per-modality attentions α^m by a per-edge
inter-modal attention λ^m, modulated by cross-modal agreement, with an attention
loss on modalities a neighbour's type lacks) beats early fusion (concatenate,
then HGT) and late fusion (one HGT per modality, fuse at the end). Every array
is generated; ``provenance`` says so, and results on it are not comparable with
the paper.

Layouts:

* default, DOUBAN-like: target ``movie`` (text + image), hubs ``director`` and
  ``actor`` (text only), relations ``ma`` movie→actor, ``md`` movie→director,
  ``dm`` director→movie, ``am`` actor→movie (the DOUBAN relation ids of the
  spec). Each movie has exactly one director and 2-5 actors.
* ``single_type=True``, AMAZON-1-like: one node type ``item`` with several
  symmetric item–item relations (also_bought, also_viewed, ...);
  ``num_edges`` pins the exact total (e.g. 58,088 items x 632,238 edges).

How the label signal is built, and why (the design rationale):

1. *Own features are weak.* Each real modality m of a target node is
   ``signal * u_c^m + noise * eps`` with orthonormal class prototypes u_c^m, so
   even a modality that carries the class separates two classes only by
   d' = signal*sqrt(2)/noise (about 1.4 by default). The class must come from
   neighbours.
2. *Which modality carries the class varies per node.* A fraction
   ``shared_signal_frac`` of targets show their class in every real modality;
   each of the others shows it in exactly one, chosen at random; the rest of its
   modalities are pure noise. So whether two same-class nodes *look* alike is
   visible in the text for some pairs, in the image for others, and in neither
   for some. A late-fusion model computes modality m's attention from modality
   m alone, so it is blind for the pairs that agree only in another modality;
   a model whose neighbour weights are informed by all modalities is not.
3. *Neighbours must be chosen, not averaged.* Targets reach same-type
   neighbours only through hubs (movie–director–movie, movie–actor–movie). Each
   hub has a home class; a fraction ``homophily`` of a target's links go to
   hubs of its own class, the rest to hubs of other classes (heterophilous
   links). Hubs really have only text: the mean of their targets' text plus
   ``hub_noise``, so a hub's class is only as clean as the targets it averages,
   and a weighting that keeps same-class neighbours pays off twice (at the hub
   and at the target).
4. *Misaligned modalities point to a wrong class.* A fraction
   ``misalignment`` of targets have one modality that shows the prototype of a
   wrong class (a blank modality when there is one, else one of the carrying
   ones; another modality keeps the true class). Through that modality such a
   node looks like a same-class neighbour to nodes of the wrong class, while its
   other modality disagrees; attention modulated by cross-modal agreement
   (Eq. 8) can reject it, a single-modality attention cannot, and early fusion
   only averages the two similarities. ``shared_signal_frac`` sets the balance
   between points 2 and 4: low values make per-pair choice of modality (λ)
   matter; high values make cross-modal agreement the norm, so that only
   misaligned neighbours disagree and the alignment term has a clean target.
5. *Missing modalities are filled* (``missing_fill``: 'text' copies the hub's
   text, as the paper's Sec. 5.3; 'zeros' as the DOUBAN code), so the filled
   image of a hub carries no image information and an attention that leans on it
   is wasted; this is what the attention loss addresses.

Honesty: labels enter only through features and edges; every model sees the
same arrays (no field that only one model reads). ``generate_synthetic`` also
returns a `SyntheticTruth` (roles, wrong classes, hub classes, prototypes) for
tests and diagnostics only; it is not part of the `MMHN`.

Defaults were chosen with linear probes (`linear_probe_report`, logistic
regression on the test split): own features are weak, the mean of 2-hop
neighbours is better, neither modality alone matches both, and the mean over
same-class 2-hop neighbours (an oracle) is far better still, which is the room
an attention mechanism can win. Run ``python -m hgnn_ima_jax.data_utils.synthetic`` for the
table. Whether HGNN-IMA actually beats the HGT baselines here is an experiment,
not a property of this module.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from hgnn_ima_jax.graph import MMHN, Relation, fill_missing_modalities

ROLE_ABSENT, ROLE_BLANK, ROLE_CARRIER, ROLE_WRONG = -1, 0, 1, 2


class SyntheticConfigError(ValueError):
  """A `SyntheticConfig` knob is invalid; `field`, `value`, `problem` and `fix` say which and why."""

  def __init__(self, field: str, value, problem: str, fix: str):
    self.field, self.value, self.problem, self.fix = field, value, problem, fix
    super().__init__(f"SyntheticConfig.{field}: {problem}. Fix: {fix}")


class HubSpec(NamedTuple):
  """A hub node type linked to the targets: `target --forward--> hub`, `hub --reverse--> target`."""

  type: str
  count: int  # nodes at scale 1
  forward: str  # relation name target -> hub
  reverse: str  # relation name hub -> target
  min_links: int  # links per target to this hub type, drawn uniformly in [min, max]
  max_links: int


class ItemRelation(NamedTuple):
  """A symmetric item–item relation in the single-type layout."""

  name: str
  pairs_per_item: float  # undirected pairs per item; directed edges are twice this


DOUBAN_HUBS = (
    HubSpec("director", 800, "md", "dm", 1, 1),
    HubSpec("actor", 2200, "ma", "am", 2, 5),
)

# AMAZON-1's four relations; degrees sum to 632,238 / 58,088 / 2 pairs per item.
AMAZON_RELATIONS = (
    ItemRelation("also_bought", 1.8),
    ItemRelation("also_viewed", 2.0),
    ItemRelation("bought_together", 0.5),
    ItemRelation("buy_after_viewing", 1.142),
)

# Overrides for the benchmark-sized AMAZON-1-like graph (`make_synthetic(**AMAZON1_LIKE)`).
AMAZON1_LIKE = dict(single_type=True, num_targets=58088, num_classes=12, num_edges=632238)


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Every knob of the synthetic MMHN; `make_synthetic(**overrides)` takes these names.

  Attributes:
    name: dataset name written into the `MMHN`.
    single_type: False: target type plus hub types (DOUBAN-like); True: one node
      type with symmetric item–item relations (AMAZON-1-like).
    target_type: name of the classified type; None: 'movie', or 'item' when
      `single_type`.
    num_targets: target nodes at scale 1.
    hubs: hub types and their relations (ignored when `single_type`). Relations
      are emitted forward ones sorted by name, then their reverses in mirror
      order (DOUBAN's ids: ma, md, dm, am).
    item_relations: item–item relations (only when `single_type`).
    num_edges: exact total directed edges over `item_relations` at scale 1,
      split in proportion to `pairs_per_item`; None: from `pairs_per_item`.
      Only with `single_type`.
    scale: multiplies every node count (and `num_edges`).
    modalities: modality names, e.g. ('text', 'image') or ('text', 'image',
      'price') or ('text',).
    real_modalities: (type, modalities) pairs overriding which modalities a
      type really has; by default the target has all, hubs the first only.
    missing_fill: how modalities a type lacks are filled: 'text' (copy its
      first real modality, the paper) or 'zeros' (the DOUBAN code).
    feature_dim: default width of every (type, modality) feature.
    modality_dims: (modality, width) pairs overriding `feature_dim` for all
      types; pairs naming a modality not in `modalities` are ignored (so the
      default ('image', 64) does not get in the way of modalities=('text',)).
    feature_dims: (type, modality, width) triples overriding both.
    num_classes: number of classes.
    class_weights: relative class frequencies; None: uniform.
    homophily: fraction of a target's links that go to hubs (items) of its own
      class; the rest go to other classes. 1/num_classes is structure-free.
    degree_skew: sigma of the log-normal popularity of hubs (items); 0: uniform.
    shared_signal_frac: fraction of targets whose class shows in every real
      modality; each other target shows it in exactly one, chosen at random.
    signal: norm of the class prototype added to a carrying modality, in units
      of the per-coordinate noise; two classes are signal*sqrt(2)/noise apart.
    noise: per-coordinate std of the Gaussian noise on target features.
    modality_noise: (modality, factor) pairs multiplying `noise` per modality
      (pairs naming an absent modality are ignored, as for `modality_dims`).
    misalignment: fraction of targets with one modality showing a wrong class.
    hub_noise: per-coordinate std of the noise added to a hub's mean of its
      targets' features.
    split: train/val/test fractions of the targets (stratified by class).
  """

  name: str = "synthetic"
  single_type: bool = False
  target_type: str | None = None
  num_targets: int = 2000
  hubs: tuple[HubSpec, ...] = DOUBAN_HUBS
  item_relations: tuple[ItemRelation, ...] = AMAZON_RELATIONS
  num_edges: int | None = None
  scale: float = 1.0
  modalities: tuple[str, ...] = ("text", "image")
  real_modalities: tuple[tuple[str, tuple[str, ...]], ...] = ()
  missing_fill: str = "text"
  feature_dim: int = 128
  modality_dims: tuple[tuple[str, int], ...] = (("image", 64),)
  feature_dims: tuple[tuple[str, str, int], ...] = ()
  num_classes: int = 3
  class_weights: tuple[float, ...] | None = None
  homophily: float = 0.8
  degree_skew: float = 0.75
  shared_signal_frac: float = 0.3
  signal: float = 1.0
  noise: float = 1.0
  modality_noise: tuple[tuple[str, float], ...] = ()
  misalignment: float = 0.2
  hub_noise: float = 0.3
  split: tuple[float, float, float] = (0.2, 0.1, 0.7)

  def __post_init__(self):
    # Overrides often arrive as lists (CLI, JSON); tuples keep the config hashable.
    def tup(x):
      return tuple(tup(v) for v in x) if isinstance(x, (list, tuple)) else x

    for f in ("modalities", "real_modalities", "modality_dims", "feature_dims", "modality_noise",
              "split", "class_weights"):
      v = getattr(self, f)
      if v is not None:
        object.__setattr__(self, f, tup(v))
    object.__setattr__(self, "hubs", tuple(HubSpec(*h) for h in self.hubs))
    object.__setattr__(self, "item_relations", tuple(ItemRelation(*r) for r in self.item_relations))
    self._check()

  # --- derived ------------------------------------------------------------
  @property
  def target(self) -> str:
    return self.target_type or ("item" if self.single_type else "movie")

  @property
  def node_types(self) -> tuple[str, ...]:
    return (self.target,) if self.single_type else (self.target, *(h.type for h in self.hubs))

  def count(self, n: int) -> int:
    return max(1, int(round(n * self.scale)))

  def real(self, t: str) -> tuple[str, ...]:
    over = dict(self.real_modalities)
    if t in over:
      return tuple(m for m in self.modalities if m in over[t])
    return self.modalities if t == self.target else self.modalities[:1]

  def dim(self, t: str, m: str) -> int:
    for tt, mm, d in self.feature_dims:
      if (tt, mm) == (t, m):
        return int(d)
    return int(dict(self.modality_dims).get(m, self.feature_dim))

  def noise_of(self, m: str) -> float:
    return self.noise * float(dict(self.modality_noise).get(m, 1.0))

  def relations(self) -> tuple[Relation, ...]:
    if self.single_type:
      return tuple(Relation(self.target, r.name, self.target) for r in self.item_relations)
    fwd = sorted(self.hubs, key=lambda h: h.forward)
    return (tuple(Relation(self.target, h.forward, h.type) for h in fwd)
            + tuple(Relation(h.type, h.reverse, self.target) for h in reversed(fwd)))

  def _check(self):
    def bad(field, problem, fix):
      raise SyntheticConfigError(field, getattr(self, field, None), problem, fix)

    if not self.modalities or len(set(self.modalities)) != len(self.modalities):
      bad("modalities", f"{self.modalities!r} is empty or repeats a name", "give one or more distinct modality names")
    if self.missing_fill not in ("text", "zeros"):
      bad("missing_fill", f"{self.missing_fill!r} is not a fill rule", "use 'text' or 'zeros'")
    if self.num_classes < 2:
      bad("num_classes", f"{self.num_classes} is fewer than 2", "use at least 2 classes")
    if self.class_weights is not None and (len(self.class_weights) != self.num_classes
                                           or min(self.class_weights) <= 0):
      bad("class_weights", f"{self.class_weights!r} is not {self.num_classes} positive weights",
          f"give {self.num_classes} positive weights or None")
    for f in ("homophily", "shared_signal_frac", "misalignment"):
      if not 0.0 <= getattr(self, f) <= 1.0:
        bad(f, f"{getattr(self, f)} is outside [0, 1]", "use a fraction in [0, 1]")
    for f in ("signal", "noise", "hub_noise", "degree_skew", "scale"):
      if not np.isfinite(getattr(self, f)) or getattr(self, f) < 0 or (f == "scale" and self.scale == 0):
        bad(f, f"{getattr(self, f)} is negative, zero or not finite", "use a finite non-negative value (scale > 0)")
    if len(self.split) != 3 or min(self.split) <= 0 or sum(self.split) > 1 + 1e-9:
      bad("split", f"{self.split!r} is not three positive fractions summing to <= 1",
          "give three positive train/val/test fractions summing to <= 1")
    if self.count(self.num_targets) < 3 * self.num_classes:
      bad("num_targets", f"gives {self.count(self.num_targets)} targets at scale {self.scale}",
          f"use at least {3 * self.num_classes} so every class can appear in every split")
    types = self.node_types
    if len(set(types)) != len(types):
      bad("hubs", f"node type names {types} repeat", "give every type a unique name")
    for t, mods in self.real_modalities:
      if t not in types:
        bad("real_modalities", f"unknown type {t!r}", f"use one of {types}")
      unknown = [m for m in mods if m not in self.modalities]
      if unknown or not mods:
        bad("real_modalities", f"{t!r}: {tuple(mods)}", f"list one or more of {self.modalities}")
    for t, m, d in self.feature_dims:
      if t not in types or m not in self.modalities or int(d) < 1:
        bad("feature_dims", f"({t!r}, {m!r}, {d})", f"use a type in {types}, a modality in {self.modalities}, width >= 1")
    if any(d < 1 for _, d in self.modality_dims) or self.feature_dim < 1:
      bad("feature_dim", "width < 1", "use widths >= 1")
    if self.single_type:
      if not self.item_relations:
        bad("item_relations", "empty", "give at least one item relation")
      if len({r.name for r in self.item_relations}) != len(self.item_relations):
        bad("item_relations", "repeated names", "give each relation a unique name")
      if any(r.pairs_per_item < 0 for r in self.item_relations) or sum(
          r.pairs_per_item for r in self.item_relations) <= 0:
        bad("item_relations", "non-positive degrees", "give positive pairs_per_item")
      if self.num_edges is not None and (self.num_edges < 0 or self.num_edges % 2):
        bad("num_edges", f"{self.num_edges} is odd or negative",
            "give an even, non-negative total (relations are symmetric)")
    else:
      if self.num_edges is not None:
        bad("num_edges", "is only used with single_type=True", "set links per target in `hubs` instead")
      if not self.hubs:
        bad("hubs", "empty", "give at least one hub type, or use single_type=True")
      names = [r for h in self.hubs for r in (h.forward, h.reverse)]
      if len(set(names)) != len(names):
        bad("hubs", f"relation names {names} repeat", "give every relation a unique name")
      for h in self.hubs:
        if not 1 <= h.min_links <= h.max_links:
          bad("hubs", f"{h.type!r} links ({h.min_links}, {h.max_links})", "use 1 <= min_links <= max_links")
        if self.count(h.count) < self.num_classes:
          bad("hubs", f"{h.type!r} has {self.count(h.count)} nodes at this scale",
              f"give at least num_classes={self.num_classes} so every class has a hub")


@dataclasses.dataclass
class SyntheticTruth:
  """What the generator knows and the models must not see; for tests and diagnostics only.

  Attributes:
    roles: int8 (N_target, M): ROLE_CARRIER shows the true class, ROLE_WRONG a
      wrong one, ROLE_BLANK only noise, ROLE_ABSENT the type lacks the modality.
    wrong_class: int (N_target,): the class a ROLE_WRONG modality shows (-1 if none).
    hub_class: hub type -> int (N_hub,) home class (empty in single-type mode).
    prototypes: modality -> float (C, D) unit class prototypes of the target type.
  """

  roles: np.ndarray
  wrong_class: np.ndarray
  hub_class: dict[str, np.ndarray]
  prototypes: dict[str, np.ndarray]


# --- sampling helpers -------------------------------------------------------
class _ClassSampler:
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


def _stratified_quota(n: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """n class ids in random order with counts as close to n * weights as rounding allows."""
  w = weights / weights.sum()
  counts = np.floor(n * w).astype(np.int64)
  rest = n - counts.sum()
  if rest:
    order = np.argsort(-(n * w - counts), kind="stable")
    counts[order[:rest]] += 1
  return rng.permutation(np.repeat(np.arange(len(w)), counts))


def _orthonormal_rows(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
  """k unit vectors in R^d, mutually orthogonal when k <= d."""
  g = rng.standard_normal((d, k))
  if k <= d:
    q, _ = np.linalg.qr(g)
    return q.T.astype(np.float32)
  return (g / np.linalg.norm(g, axis=0, keepdims=True)).T.astype(np.float32)


def _width_map(rng: np.random.Generator, d_in: int, d_out: int) -> np.ndarray | None:
  """An isometric-as-possible (d_in, d_out) map, or None when the widths match (same encoder)."""
  if d_in == d_out:
    return None
  q, _ = np.linalg.qr(rng.standard_normal((max(d_in, d_out), min(d_in, d_out))))
  return (q if d_in > d_out else q.T).astype(np.float32)


def _unique_pairs(src: np.ndarray, dst: np.ndarray, n_dst: int) -> np.ndarray:
  """(E, 2) distinct (src, dst) pairs, in first-seen order."""
  key = src.astype(np.int64) * n_dst + dst
  _, first = np.unique(key, return_index=True)
  first.sort()
  return np.stack([src[first], dst[first]], 1).astype(np.int64)


# --- generator ----------------------------------------------------------------
def _streams(seed: int, names: tuple[str, ...]) -> dict[str, np.random.Generator]:
  # One independent stream per component: changing one knob leaves the others' draws alone,
  # so two configs that differ in e.g. homophily share labels and noise (paired comparisons).
  children = np.random.SeedSequence(int(seed)).spawn(len(names))
  return {n: np.random.Generator(np.random.PCG64(s)) for n, s in zip(names, children)}


def _other_class(rng: np.random.Generator, cls: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """For each class in `cls`, a different class drawn in proportion to `weights`."""
  p = weights / weights.sum()
  out = cls.copy()
  todo = np.arange(len(cls))
  while len(todo):
    out[todo] = rng.choice(len(p), size=len(todo), p=p)
    todo = todo[out[todo] == cls[todo]]
  return out


def _hub_edges(cfg: SyntheticConfig, rng, y, hub: HubSpec, hub_class, hub_w, class_w):
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
    seed_hubs = order[k * n:(k + 1) * n]
    want = hub_class[seed_hubs].copy()
    het = rng.random(len(want)) >= cfg.homophily
    want[het] = _other_class(rng, want[het], class_w)
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
  dst = _ClassSampler(hub_class, hub_w, cfg.num_classes).draw(rng, y[src], cfg.homophily)
  e = np.concatenate([*seed_edges, np.stack([src, dst], 1)])
  return _unique_pairs(e[:, 0], e[:, 1], n_hub)


def _item_edges(cfg: SyntheticConfig, rng, y, weights) -> dict[str, np.ndarray]:
  """Symmetric item–item relations with homophily and exact pair counts."""
  n = len(y)
  deg = np.array([r.pairs_per_item for r in cfg.item_relations], float)
  if cfg.num_edges is not None:
    total = int(round(cfg.num_edges * cfg.scale / 2))
    pairs = np.floor(total * deg / deg.sum()).astype(np.int64)
    pairs[np.argmax(deg)] += total - pairs.sum()
  else:
    pairs = np.round(deg * n).astype(np.int64)
  sampler = _ClassSampler(y, weights, cfg.num_classes)
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
      have = _unique_pairs(np.concatenate([have[:, 0], lo]), np.concatenate([have[:, 1], hi]), n)
    have = have[:n_pairs]
    # Symmetric like the AMAZON-1 code, but as a set (no duplicate edges).
    out[r.name] = np.concatenate([have, have[:, ::-1]])
  return out


def generate_synthetic(config: SyntheticConfig | None = None, seed: int = 0) -> tuple[MMHN, SyntheticTruth]:
  """Builds the synthetic MMHN and the generator's ground truth.

  Args:
    config: the knobs; None: `SyntheticConfig()` (DOUBAN-like).
    seed: every array is a deterministic function of (config, seed).

  Returns:
    (graph, truth): a validated `MMHN` and the `SyntheticTruth` (not for models).
  """
  cfg = config or SyntheticConfig()
  rng = _streams(seed, ("labels", "roles", "protos", "features", "edges", "hubs", "splits"))
  tgt = cfg.target
  n = cfg.count(cfg.num_targets)
  C, mods = cfg.num_classes, cfg.modalities
  M = len(mods)

  weights = np.asarray(cfg.class_weights if cfg.class_weights is not None else np.ones(C), float)
  y = _stratified_quota(n, weights, rng["labels"])

  # Which modality shows what, per target (design points 2 and 4).
  real_t = [m in cfg.real(tgt) for m in mods]
  real_idx = np.flatnonzero(real_t)
  r = rng["roles"]
  roles = np.full((n, M), ROLE_ABSENT, np.int8)
  roles[:, real_idx] = ROLE_BLANK
  shared = r.random(n) < cfg.shared_signal_frac
  one = real_idx[r.integers(0, len(real_idx), size=n)]
  roles[np.arange(n), one] = ROLE_CARRIER
  roles[np.ix_(shared, real_idx)] = ROLE_CARRIER
  n_mis = int(round(cfg.misalignment * n))
  mis = r.permutation(n)[:n_mis]
  # Lie in a blank modality when there is one, so another modality keeps the true class.
  cand = roles[mis] == ROLE_BLANK
  cand[~cand.any(1)] = (roles[mis][~cand.any(1)] >= ROLE_BLANK)
  score = np.where(cand, r.random((n_mis, M)), -1.0)
  bad_m = np.argmax(score, 1)
  roles[mis, bad_m] = ROLE_WRONG
  wrong = np.full(n, -1, np.int64)
  wrong[mis] = (y[mis] + r.integers(1, C, size=n_mis)) % C

  # Target features (design point 1).
  protos, feats = {}, {t: {} for t in cfg.node_types}
  fr = rng["features"]
  for mi, m in enumerate(mods):
    d = cfg.dim(tgt, m)
    protos[m] = _orthonormal_rows(rng["protos"], C, d)
    if not real_t[mi]:
      continue
    x = fr.standard_normal((n, d), dtype=np.float32) * np.float32(cfg.noise_of(m))
    cls = np.where(roles[:, mi] == ROLE_CARRIER, y, np.where(roles[:, mi] == ROLE_WRONG, wrong, -1))
    has = cls >= 0
    x[has] += np.float32(cfg.signal) * protos[m][cls[has]]
    feats[tgt][m] = x

  # Structure (design point 3).
  er, hr = rng["edges"], rng["hubs"]
  edges, hub_class = {}, {}
  if cfg.single_type:
    pop = er.lognormal(0.0, cfg.degree_skew, size=n) if cfg.degree_skew > 0 else np.ones(n)
    edges = _item_edges(cfg, er, y, pop)
    num_nodes = {tgt: n}
  else:
    num_nodes = {tgt: n}
    for h in cfg.hubs:
      n_h = cfg.count(h.count)
      num_nodes[h.type] = n_h
      hub_class[h.type] = _stratified_quota(n_h, weights, er)
      pop = er.lognormal(0.0, cfg.degree_skew, size=n_h) if cfg.degree_skew > 0 else np.ones(n_h)
      e = _hub_edges(cfg, er, y, h, hub_class[h.type], pop, weights)
      edges[h.forward] = e
      edges[h.reverse] = e[:, ::-1].copy()
      # Hub features: the mean of its targets' features (mapped to the hub's width) plus noise.
      inc = sp.csr_matrix((np.ones(len(e), np.float32), (e[:, 1], e[:, 0])), shape=(n_h, n))
      deg = np.asarray(inc.sum(1)).ravel()
      inc = sp.diags(1.0 / np.maximum(deg, 1)).astype(np.float32) @ inc
      for m in cfg.real(h.type):
        d_h = cfg.dim(h.type, m)
        if m in feats[tgt]:
          mean = np.asarray(inc @ feats[tgt][m], np.float32)
          wmap = _width_map(hr, mean.shape[1], d_h)
          mean = mean if wmap is None else mean @ wmap
        else:  # the target lacks this modality: nothing to inherit
          mean = np.zeros((n_h, d_h), np.float32)
        feats[h.type][m] = mean + hr.standard_normal((n_h, d_h), dtype=np.float32) * np.float32(cfg.hub_noise)

  # Stratified, deterministic splits.
  sr = rng["splits"]
  splits = {"train": [], "val": [], "test": []}
  for c in range(C):
    idx = sr.permutation(np.flatnonzero(y == c))
    k_tr = max(1, int(round(cfg.split[0] * len(idx))))
    k_va = max(1, int(round(cfg.split[1] * len(idx))))
    k_te = len(idx) - k_tr - k_va if sum(cfg.split) >= 1 - 1e-9 else int(round(cfg.split[2] * len(idx)))
    splits["train"].append(idx[:k_tr])
    splits["val"].append(idx[k_tr:k_tr + k_va])
    splits["test"].append(idx[k_tr + k_va:k_tr + k_va + max(0, k_te)])
  splits = {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in splits.items()}

  provenance: dict[str, Any] = {
      "features": {f"{t}/{m}": "generated" for t in cfg.node_types for m in feats[t]},
      "generator": dataclasses.asdict(cfg),
      "seed": int(seed),
      "synthetic": True,
      "note": "synthetic data from data_utils.synthetic; not comparable with the paper",
  }
  graph = MMHN(
      name=cfg.name,
      node_types=cfg.node_types,
      num_nodes=num_nodes,
      modalities=tuple(mods),
      node_modalities={t: cfg.real(t) for t in cfg.node_types},
      relations=cfg.relations(),
      edges=edges,
      features=feats,
      target_type=tgt,
      labels=y.astype(np.int64),
      num_classes=C,
      splits=splits,
      provenance=provenance,
      source=f"synthetic(seed={seed})",
  )
  fill_missing_modalities(graph, cfg.missing_fill)
  graph.validate()
  truth = SyntheticTruth(roles=roles, wrong_class=wrong, hub_class=hub_class, prototypes=protos)
  return graph, truth


def make_synthetic(config: SyntheticConfig | None = None, *, seed: int = 0, **overrides) -> MMHN:
  """The synthetic MMHN (dataset ``synthetic``); see the module docstring for the design.

  Args:
    config: base configuration; None: `SyntheticConfig()` (DOUBAN-like, ~2k movies).
    seed: same seed, same arrays (bit-identical); a different seed gives different ones.
    **overrides: `SyntheticConfig` field names, e.g. ``homophily=0.6`` or
      ``**AMAZON1_LIKE``; lists are accepted where tuples are expected.

  Returns:
    A validated `MMHN` whose provenance marks every feature as generated.

  Raises:
    ValueError: an override is not a `SyntheticConfig` field, or a value is invalid.
  """
  cfg = config or SyntheticConfig()
  if overrides:
    fields = {f.name for f in dataclasses.fields(SyntheticConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
      raise ValueError(f"make_synthetic: unknown option(s) {unknown}. Fix: use SyntheticConfig fields "
                       f"{sorted(fields)}")
    cfg = dataclasses.replace(cfg, **overrides)
  return generate_synthetic(cfg, seed)[0]


# --- diagnostics (no model needed) --------------------------------------------
def same_type_adjacency(graph: MMHN) -> sp.csr_matrix:
  """Binary target–target adjacency: 2-hop through hubs, or 1-hop item–item; no self-loops."""
  t = graph.target_type
  n = graph.num_nodes[t]
  adj = sp.csr_matrix((n, n), dtype=np.float32)
  for r in graph.relations:
    e = np.asarray(graph.edges[r.name])
    if r.src == t and r.dst == t:
      adj = adj + sp.csr_matrix((np.ones(len(e), np.float32), (e[:, 0], e[:, 1])), shape=(n, n))
    elif r.src == t:  # target -> hub: targets sharing a hub are 2-hop neighbours
      inc = sp.csr_matrix((np.ones(len(e), np.float32), (e[:, 0], e[:, 1])),
                          shape=(n, graph.num_nodes[r.dst]))
      adj = adj + inc @ inc.T
  adj = adj.tocsr()
  adj.setdiag(0)
  adj.eliminate_zeros()
  adj.data[:] = 1.0
  return adj


def same_type_homophily(graph: MMHN) -> float:
  """Fraction of same-type neighbour pairs (see `same_type_adjacency`) that share a class."""
  adj = same_type_adjacency(graph).tocoo()
  y = np.asarray(graph.labels)
  return float(np.mean(y[adj.row] == y[adj.col])) if adj.nnz else float("nan")


def neighbour_mean(adj: sp.csr_matrix, x: np.ndarray) -> np.ndarray:
  """Row-normalised neighbour average (zeros for nodes without neighbours)."""
  deg = np.asarray(adj.sum(1)).ravel()
  return np.asarray(sp.diags(1.0 / np.maximum(deg, 1)) @ (adj @ x), np.float32)


def linear_probe_report(graph: MMHN, *, C: float = 0.05) -> dict[str, dict[str, float]]:
  """Test accuracy of logistic regression (fit on train) for feature views of the targets.

  Views per modality m and for all modalities concatenated ('all'):
    own: the node's own features; mean2hop: the mean over same-type
    neighbours (`same_type_adjacency`); oracle_same_class: the mean over same-class neighbours only (uses labels:
    an upper bound on what choosing neighbours can gain, not a model).

  Args:
    graph: an MMHN with a target type, labels and splits.
    C: inverse L2 strength; strong by default because ~400 training nodes
      face 100-200 feature columns (standardised).

  Returns:
    {view: {modality or 'all': test accuracy}}.
  """
  from sklearn.linear_model import LogisticRegression
  from sklearn.preprocessing import StandardScaler

  t = graph.target_type
  y = np.asarray(graph.labels)
  tr, te = graph.splits["train"], graph.splits["test"]
  adj = same_type_adjacency(graph)
  coo = adj.tocoo()
  keep = y[coo.row] == y[coo.col]
  adj_same = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=adj.shape)
  mods = [m for m in graph.modalities if m in graph.node_modalities[t]]
  own = {m: graph.features[t][m] for m in mods}
  views = {
      "own": own,
      "mean2hop": {m: neighbour_mean(adj, own[m]) for m in mods},
      "oracle_same_class": {m: neighbour_mean(adj_same, own[m]) for m in mods},
  }
  out = {}
  for v, per_m in views.items():
    cols = dict(per_m)
    if len(mods) > 1:
      cols["all"] = np.concatenate([per_m[m] for m in mods], 1)
    out[v] = {}
    for k, x in cols.items():
      sc = StandardScaler().fit(x[tr])
      clf = LogisticRegression(C=C, max_iter=2000).fit(sc.transform(x[tr]), y[tr])
      out[v][k] = float(clf.score(sc.transform(x[te]), y[te]))
  return out


def _main(argv=None):
  import argparse

  p = argparse.ArgumentParser(description="Generate the synthetic MMHN and print its summary and linear probes.")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--amazon1", action="store_true", help="the 58,088-item / 632,238-edge single-type graph")
  p.add_argument("--no-probe", action="store_true")
  p.add_argument("overrides", nargs="*", help="field=value (Python literal), e.g. homophily=0.6")
  a = p.parse_args(argv)
  import ast

  over = dict(AMAZON1_LIKE) if a.amazon1 else {}
  for kv in a.overrides:
    k, v = kv.split("=", 1)
    try:
      over[k] = ast.literal_eval(v)
    except (ValueError, SyntaxError):
      over[k] = v
  t0 = time.perf_counter()
  g = make_synthetic(seed=a.seed, **over)
  dt = time.perf_counter() - t0
  print(g.summary())
  print(f"generated in {dt:.2f} s; same-type neighbour homophily {same_type_homophily(g):.3f}")
  if not a.no_probe:
    rep = linear_probe_report(g)
    keys = list(next(iter(rep.values())))
    print(f"{'test accuracy (logreg)':<22}" + "".join(f"{k:>10}" for k in keys))
    for v, row in rep.items():
      print(f"{v:<22}" + "".join(f"{row[k]:>10.3f}" for k in keys))


if __name__ == "__main__":
  _main()
