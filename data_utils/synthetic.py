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
an attention mechanism can win. Run ``python -m hgnn_ima_jax.data_utils.synthetic_probes`` for the
table. Whether HGNN-IMA actually beats the HGT baselines here is an experiment,
not a property of this module.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import scipy.sparse as sp

from hgnn_ima_jax.graph import MMHN, fill_missing_modalities

from .synthetic_config import (  # noqa: F401  (re-exported: the generator's public names)
    AMAZON1_LIKE,
    AMAZON_RELATIONS,
    DOUBAN_HUBS,
    ROLE_ABSENT,
    ROLE_BLANK,
    ROLE_CARRIER,
    ROLE_WRONG,
    SCALED_FEATURE_DIM,
    SCALED_SYNTHETIC,
    HubSpec,
    ItemRelation,
    SyntheticConfig,
    SyntheticConfigError,
    SyntheticTruth,
    check_fits_in_memory,
    scaled_synthetic_kwargs,
)
from .synthetic_edges import hub_edges, item_edges, stratified_quota, streams


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


# Rows of a feature matrix drawn and signed at once: bounds the temporaries (the class-prototype
# gather) to a few MB whatever the graph's size, so the peak is the final arrays themselves.
_CHUNK_ROWS = 16384


def _roles(cfg: SyntheticConfig, r: np.random.Generator, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(roles (N, M) int8, wrong class (N,)): which modality of each target shows what (design points 2 and 4)."""
  n, C, mods = len(y), cfg.num_classes, cfg.modalities
  M = len(mods)
  real_idx = np.flatnonzero([m in cfg.real(cfg.target) for m in mods])
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
  cand[~cand.any(1)] = roles[mis][~cand.any(1)] >= ROLE_BLANK
  score = np.where(cand, r.random((n_mis, M)), -1.0)
  bad_m = np.argmax(score, 1)
  roles[mis, bad_m] = ROLE_WRONG
  wrong = np.full(n, -1, np.int64)
  wrong[mis] = (y[mis] + r.integers(1, C, size=n_mis)) % C
  return roles, wrong


def _target_features(cfg: SyntheticConfig, rng: dict, y: np.ndarray, roles: np.ndarray, wrong: np.ndarray):
  """(features, prototypes) of the target type, modality by modality (design point 1).

  Each matrix is allocated once as float32 and filled in place: the noise straight into it (the
  generator fills row-major, so the values equal one big draw), the prototypes added per row chunk.
  """
  n, C = len(y), cfg.num_classes
  protos, feats = {}, {}
  fr = rng["features"]
  for mi, m in enumerate(cfg.modalities):
    d = cfg.dim(cfg.target, m)
    protos[m] = _orthonormal_rows(rng["protos"], C, d)
    if m not in cfg.real(cfg.target):
      continue
    x = np.empty((n, d), np.float32)
    fr.standard_normal(dtype=np.float32, out=x)
    x *= np.float32(cfg.noise_of(m))
    signed = np.float32(cfg.signal) * protos[m]  # (C, d): the same products as scaling each gathered row
    for a in range(0, n, _CHUNK_ROWS):
      rows = slice(a, min(n, a + _CHUNK_ROWS))
      role = roles[rows, mi]
      cls = np.where(role == ROLE_CARRIER, y[rows], np.where(role == ROLE_WRONG, wrong[rows], -1))
      has = cls >= 0
      x[rows][has] += signed[cls[has]]
    feats[m] = x
  return feats, protos


def _hub_layout(cfg: SyntheticConfig, er, hr, y, weights, target_feats: dict):
  """(num_nodes, edges, hub features, hub classes) of the hub types (design point 3)."""
  n = len(y)
  num_nodes, edges, feats, hub_class = {}, {}, {}, {}
  for h in cfg.hubs:
    n_h = cfg.count(h.count)
    num_nodes[h.type] = n_h
    hub_class[h.type] = stratified_quota(n_h, weights, er)
    pop = er.lognormal(0.0, cfg.degree_skew, size=n_h) if cfg.degree_skew > 0 else np.ones(n_h)
    e = hub_edges(cfg, er, y, h, hub_class[h.type], pop, weights)
    edges[h.forward] = e
    edges[h.reverse] = e[:, ::-1].copy()
    # Hub features: the mean of its targets' features (mapped to the hub's width) plus noise.
    inc = sp.csr_matrix((np.ones(len(e), np.float32), (e[:, 1], e[:, 0])), shape=(n_h, n))
    deg = np.asarray(inc.sum(1)).ravel()
    inc = sp.diags(1.0 / np.maximum(deg, 1)).astype(np.float32) @ inc
    feats[h.type] = {}
    for m in cfg.real(h.type):
      d_h = cfg.dim(h.type, m)
      if m in target_feats:
        mean = np.asarray(inc @ target_feats[m], np.float32)
        wmap = _width_map(hr, mean.shape[1], d_h)
        mean = mean if wmap is None else mean @ wmap
      else:  # the target lacks this modality: nothing to inherit
        mean = np.zeros((n_h, d_h), np.float32)
      feats[h.type][m] = mean + hr.standard_normal((n_h, d_h), dtype=np.float32) * np.float32(cfg.hub_noise)
  return num_nodes, edges, feats, hub_class


def _splits(cfg: SyntheticConfig, sr: np.random.Generator, y: np.ndarray) -> dict[str, np.ndarray]:
  """Stratified, deterministic train/val/test ids."""
  splits = {"train": [], "val": [], "test": []}
  for c in range(cfg.num_classes):
    idx = sr.permutation(np.flatnonzero(y == c))
    k_tr = max(1, int(round(cfg.split[0] * len(idx))))
    k_va = max(1, int(round(cfg.split[1] * len(idx))))
    k_te = len(idx) - k_tr - k_va if sum(cfg.split) >= 1 - 1e-9 else int(round(cfg.split[2] * len(idx)))
    splits["train"].append(idx[:k_tr])
    splits["val"].append(idx[k_tr : k_tr + k_va])
    splits["test"].append(idx[k_tr + k_va : k_tr + k_va + max(0, k_te)])
  return {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in splits.items()}


def generate_synthetic(config: SyntheticConfig | None = None, seed: int = 0) -> tuple[MMHN, SyntheticTruth]:
  """Builds the synthetic MMHN and the generator's ground truth.

  Args:
    config: the knobs; None: `SyntheticConfig()` (DOUBAN-like).
    seed: every array is a deterministic function of (config, seed).

  Returns:
    (graph, truth): a validated `MMHN` and the `SyntheticTruth` (not for models).
  """
  cfg = config or SyntheticConfig()
  check_fits_in_memory(cfg)  # before the first array
  rng = streams(seed, ("labels", "roles", "protos", "features", "edges", "hubs", "splits"))
  tgt = cfg.target
  n = cfg.count(cfg.num_targets)
  weights = np.asarray(cfg.class_weights if cfg.class_weights is not None else np.ones(cfg.num_classes), float)
  y = stratified_quota(n, weights, rng["labels"])
  roles, wrong = _roles(cfg, rng["roles"], y)
  target_feats, protos = _target_features(cfg, rng, y, roles, wrong)
  er = rng["edges"]
  if cfg.single_type:
    pop = er.lognormal(0.0, cfg.degree_skew, size=n) if cfg.degree_skew > 0 else np.ones(n)
    num_nodes, edges, feats, hub_class = {tgt: n}, item_edges(cfg, er, y, pop), {}, {}
  else:
    hub_nodes, edges, feats, hub_class = _hub_layout(cfg, er, rng["hubs"], y, weights, target_feats)
    num_nodes = {tgt: n, **hub_nodes}
  feats = {tgt: target_feats, **feats}

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
      modalities=tuple(cfg.modalities),
      node_modalities={t: cfg.real(t) for t in cfg.node_types},
      relations=cfg.relations(),
      edges=edges,
      features=feats,
      target_type=tgt,
      labels=y.astype(np.int64),
      num_classes=cfg.num_classes,
      splits=_splits(cfg, rng["splits"], y),
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
  return generate_synthetic(synthetic_config(config, **overrides), seed)[0]


def synthetic_config(config: SyntheticConfig | None = None, **overrides) -> SyntheticConfig:
  """`config` (default `SyntheticConfig()`) with `overrides` (`make_synthetic`'s), validated; nothing generated.

  Raises:
    ValueError: an override is not a `SyntheticConfig` field, or a value is invalid (`SyntheticConfigError`).
  """
  cfg = config or SyntheticConfig()
  if not overrides:
    return cfg
  fields = {f.name for f in dataclasses.fields(SyntheticConfig)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f"make_synthetic: unknown option(s) {unknown}. Fix: use SyntheticConfig fields {sorted(fields)}")
  return dataclasses.replace(cfg, **overrides)


def make_scaled_synthetic(name: str, *, seed: int = 0, feature_dim: int = SCALED_FEATURE_DIM, **overrides) -> MMHN:
  """A `SCALED_SYNTHETIC` graph (`synthetic_amazon1`, `synthetic_amazon1x4`, `synthetic10m`); `overrides`
  (e.g. a small `scale` in tests) replace the name's `make_synthetic` fields."""
  return make_synthetic(seed=seed, **{**scaled_synthetic_kwargs(name, feature_dim), **overrides})
