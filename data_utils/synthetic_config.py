"""The synthetic MMHN's knobs (`SyntheticConfig`) and the named layouts built from them.

`data_utils.synthetic` generates the graph; its docstring explains what each knob does to the
label signal. The named graphs here are the AMAZON-1-like layout (`AMAZON1_LIKE`) at the sizes
the benchmarks and `--dataset=` use (`SCALED_SYNTHETIC`).
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import NamedTuple

import numpy as np

from hgnn_ima_jax import memory_check
from hgnn_ima_jax.choices import SCALED_SYNTHETIC as SCALED_NAMES
from hgnn_ima_jax.graph import Relation

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

# Dataset names (`--dataset=`, benchmarks/bench_graphs.py) of the AMAZON-1-like graph at 1x, 4x and
# 16x: 58,088 / 232,352 / 929,408 items and 632,238 / 2.5M / 10.1M edges.
SCALED_SYNTHETIC = dict(zip(SCALED_NAMES, (1.0, 4.0, 16.0)))
# Their inputs: every modality this wide (benchmarks/step_time.py's default --feature_dim).
SCALED_FEATURE_DIM = 512


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
    self._check_scalars()

    # Overrides often arrive as lists (CLI, JSON); tuples keep the config hashable.
    def tup(x):
      return tuple(tup(v) for v in x) if isinstance(x, (list, tuple)) else x

    for f in (
        "modalities",
        "real_modalities",
        "modality_dims",
        "feature_dims",
        "modality_noise",
        "split",
        "class_weights",
    ):
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

  def node_counts(self) -> dict[str, int]:
    """Nodes per type at this scale."""
    hubs = () if self.single_type else self.hubs
    return {self.target: self.count(self.num_targets), **{h.type: self.count(h.count) for h in hubs}}

  def feature_bytes(self) -> int:
    """Bytes of the real modalities' float32 feature matrices: a lower bound of what generating the graph holds."""
    return sum(4 * n * sum(self.dim(t, m) for m in self.real(t)) for t, n in self.node_counts().items())

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
    return tuple(Relation(self.target, h.forward, h.type) for h in fwd) + tuple(
        Relation(h.type, h.reverse, self.target) for h in reversed(fwd)
    )

  def _check_scalars(self):
    """Each number, flag and name of the right kind (an override such as homophily='abc' would fail later, obscurely)."""
    kinds = {  # annotation -> (accepted types, what to give)
        "float": (numbers.Real, "a number"),
        "int": (numbers.Integral, "an integer"),
        "bool": (bool, "True or False"),
        "str": (str, "a string"),
    }
    for f in dataclasses.fields(self):
      optional = f.type.endswith(" | None")
      kind = kinds.get(f.type.removesuffix(" | None"))
      v = getattr(self, f.name)
      if kind is None or (optional and v is None):
        continue
      if not isinstance(v, kind[0]) or (isinstance(v, bool) and kind[0] is not bool):
        raise SyntheticConfigError(
            f.name, v, f"{v!r} is not {kind[1]}", f"give {kind[1]}{' or None' if optional else ''}, e.g. {f.default!r}"
        )

  def _check(self):
    def bad(field, problem, fix):
      raise SyntheticConfigError(field, getattr(self, field, None), problem, fix)

    if not self.modalities or len(set(self.modalities)) != len(self.modalities):
      bad("modalities", f"{self.modalities!r} is empty or repeats a name", "give one or more distinct modality names")
    if self.missing_fill not in ("text", "zeros"):
      bad("missing_fill", f"{self.missing_fill!r} is not a fill rule", "use 'text' or 'zeros'")
    if self.num_classes < 2:
      bad("num_classes", f"{self.num_classes} is fewer than 2", "use at least 2 classes")
    if self.class_weights is not None and (len(self.class_weights) != self.num_classes or min(self.class_weights) <= 0):
      bad(
          "class_weights",
          f"{self.class_weights!r} is not {self.num_classes} positive weights",
          f"give {self.num_classes} positive weights or None",
      )
    for f in ("homophily", "shared_signal_frac", "misalignment"):
      if not 0.0 <= getattr(self, f) <= 1.0:
        bad(f, f"{getattr(self, f)} is outside [0, 1]", "use a fraction in [0, 1]")
    for f in ("signal", "noise", "hub_noise", "degree_skew", "scale"):
      if not np.isfinite(getattr(self, f)) or getattr(self, f) < 0 or (f == "scale" and self.scale == 0):
        bad(f, f"{getattr(self, f)} is negative, zero or not finite", "use a finite non-negative value (scale > 0)")
    if len(self.split) != 3 or min(self.split) <= 0 or sum(self.split) > 1 + 1e-9:
      bad(
          "split",
          f"{self.split!r} is not three positive fractions summing to <= 1",
          "give three positive train/val/test fractions summing to <= 1",
      )
    if self.count(self.num_targets) < 3 * self.num_classes:
      bad(
          "num_targets",
          f"gives {self.count(self.num_targets)} targets at scale {self.scale}",
          f"use at least {3 * self.num_classes} so every class can appear in every split",
      )
    types = self.node_types
    if len(set(types)) != len(types):
      bad("hubs", f"node type names {types} repeat", "give every type a unique name")
    for t, mods in self.real_modalities:
      if t not in types:
        bad("real_modalities", f"unknown type {t!r}", f"use one of {types}")
      unknown = [m for m in mods if m not in self.modalities]
      if unknown or not mods:
        bad("real_modalities", f"{t!r}: {tuple(mods)}", f"list one or more of {self.modalities}")
    unused = [m for m in self.modalities if not any(m in self.real(t) for t in types)]
    if unused:  # every type would get it filled: validate() refuses such a graph, so say it of the config
      bad(
          "real_modalities",
          f"no node type has {unused}",
          "list it for some type in real_modalities, or drop it from modalities",
      )
    for t, m, d in self.feature_dims:
      if t not in types or m not in self.modalities or int(d) < 1:
        bad(
            "feature_dims",
            f"({t!r}, {m!r}, {d})",
            f"use a type in {types}, a modality in {self.modalities}, width >= 1",
        )
    if any(d < 1 for _, d in self.modality_dims) or self.feature_dim < 1:
      bad("feature_dim", "width < 1", "use widths >= 1")
    if self.single_type:
      if not self.item_relations:
        bad("item_relations", "empty", "give at least one item relation")
      if len({r.name for r in self.item_relations}) != len(self.item_relations):
        bad("item_relations", "repeated names", "give each relation a unique name")
      if (
          any(r.pairs_per_item < 0 for r in self.item_relations)
          or sum(r.pairs_per_item for r in self.item_relations) <= 0
      ):
        bad("item_relations", "non-positive degrees", "give positive pairs_per_item")
      if self.num_edges is not None and (self.num_edges < 0 or self.num_edges % 2):
        bad(
            "num_edges",
            f"{self.num_edges} is odd or negative",
            "give an even, non-negative total (relations are symmetric)",
        )
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
          bad(
              "hubs",
              f"{h.type!r} has {self.count(h.count)} nodes at this scale",
              f"give at least num_classes={self.num_classes} so every class has a hub",
          )


def check_fits_in_memory(cfg: SyntheticConfig) -> None:
  """Refuses (`SyntheticConfigError` on `scale`) a graph whose feature matrices alone exceed the memory this machine
  has available: generating it ended in the OOM killer (exit -9, no message), after minutes of work. Nothing is
  checked with $HGNN_IMA_MEMORY_CHECK=0 (swap) or where the available memory is not known."""
  if not memory_check.checking():
    return
  need, free = cfg.feature_bytes(), memory_check.host_available_bytes()
  if free is None or need <= free:
    return
  raise SyntheticConfigError(
      "scale",
      cfg.scale,
      f"the features of its {sum(cfg.node_counts().values()):,} nodes alone take {memory_check.format_bytes(need)}, "
      f"more than the {memory_check.format_bytes(free)} this machine has available",
      "lower scale or the feature widths (feature_dim, modality_dims), or generate it where that much memory is "
      f"free ({memory_check.ENV_SWITCH}=0 generates it anyway, e.g. with swap)",
  )


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


def scaled_synthetic_kwargs(name: str, feature_dim: int = SCALED_FEATURE_DIM) -> dict:
  """`make_synthetic` overrides of a `SCALED_SYNTHETIC` graph, its modalities `feature_dim` wide."""
  if name not in SCALED_SYNTHETIC:
    raise ValueError(f"unknown scaled synthetic graph {name!r}; use one of {tuple(SCALED_SYNTHETIC)}")
  return {**AMAZON1_LIKE, "feature_dim": int(feature_dim), "modality_dims": (), "scale": SCALED_SYNTHETIC[name]}
