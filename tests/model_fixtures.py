"""Small random DOUBAN-like multi-modal heterogeneous networks for the model tests.

Three node types like DOUBAN: `movie` (the target, every modality is real),
`director` and `actor` (only text is real; their other modalities are filled),
relations ma, md, dm, am (DGL's sorted canonical order), ~5–15 nodes per type.
Built with a NumPy RNG so every test gets the same graphs.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from hgnn_ima_jax import MMHN, Relation
from hgnn_ima_jax.choices import MODEL_NAMES
from hgnn_ima_jax.models import split_model_name

# The Table 4 names that change only the loss (-L_att, -L_ind): their module is hgnn_ima's, so are its programs, and
# the forward tests run hgnn_ima for them (each module that skips them asserts the modules are equal).
LOSS_ONLY_ABLATIONS = tuple(n for n in MODEL_NAMES if not split_model_name(n)[1] and split_model_name(n)[2])

NODE_TYPES = ("movie", "director", "actor")
RELATIONS = (
    Relation("movie", "ma", "actor"),
    Relation("movie", "md", "director"),
    Relation("director", "dm", "movie"),
    Relation("actor", "am", "movie"),
)
MODALITIES_2 = ("text", "image")
MODALITIES_3 = ("text", "image", "price")


def _random_edges(rng, n_src, n_dst, n_edges, *, isolated_dst=()):
  """Unique (src, dst) pairs; destinations in `isolated_dst` get no in-edges."""
  allowed_dst = np.array([i for i in range(n_dst) if i not in set(isolated_dst)])
  pairs = set()
  while len(pairs) < n_edges:
    pairs.add((int(rng.integers(n_src)), int(allowed_dst[rng.integers(len(allowed_dst))])))
  e = np.array(sorted(pairs), np.int64).reshape(-1, 2)
  return e[rng.permutation(len(e))]  # unsorted on purpose: to_graphs_tuple must sort


def make_graph(
    num_modalities: int = 2,
    *,
    seed: int = 0,
    widths: str = "equal",
    empty_relation: str | None = "md",
    fill: str = "zeros",
    num_nodes=(9, 6, 12),
    num_classes: int = 3,
    feature_scale: float = 1.0,
) -> MMHN:
  """A DOUBAN-like MMHN.

  widths: 'equal' — every (type, modality) has width 6 (the MISS profile, needed by
    projection='shared'); 'mixed' — widths differ per type and modality (for
    projection='per_channel'); 'scalar' — the last modality 1 wide, the others 6.
  empty_relation: a relation given 0 edges (None for none). With 'md' every director
    has zero in-degree; other relations also leave some receivers without in-edges.
  fill: how the non-real modalities of director/actor are filled: 'zeros' (DOUBAN
    code), 'text' (IMDB code / paper) or 'random' (arbitrary values).
  """
  rng = np.random.default_rng(seed)
  modalities = MODALITIES_2 if num_modalities == 2 else MODALITIES_3
  n = dict(zip(NODE_TYPES, num_nodes))
  if widths == "equal":
    dims = {t: {m: 6 for m in modalities} for t in NODE_TYPES}
  elif widths == "mixed":
    base = {"movie": (7, 5, 3), "director": (4, 6, 2), "actor": (5, 3, 4)}
    dims = {t: dict(zip(modalities, base[t])) for t in NODE_TYPES}
  elif widths == "scalar":  # the last modality one wide, as AMAZON-2's log-price (spec §3's scalar MLP)
    dims = {t: {m: 1 if m == modalities[-1] else 6 for m in modalities} for t in NODE_TYPES}
  else:
    raise ValueError(widths)
  node_modalities = {"movie": modalities, "director": ("text",), "actor": ("text",)}

  features = {}
  for t in NODE_TYPES:
    features[t] = {}
    for m in modalities:
      x = rng.normal(size=(n[t], dims[t][m])) * feature_scale
      if m not in node_modalities[t]:
        if fill == "zeros":
          x = np.zeros_like(x)
        elif fill == "text":
          x = features[t]["text"][:, : dims[t][m]].copy()
          if x.shape[1] < dims[t][m]:
            x = np.pad(x, ((0, 0), (0, dims[t][m] - x.shape[1])))
      features[t][m] = x.astype(np.float32)

  nm, nd, na = n["movie"], n["director"], n["actor"]
  edges = {
      "ma": _random_edges(rng, nm, na, 16, isolated_dst=(na - 1, na - 2)),
      "md": _random_edges(rng, nm, nd, 8, isolated_dst=(nd - 1,)),
      "dm": _random_edges(rng, nd, nm, 8, isolated_dst=(nm - 1,)),
      "am": _random_edges(rng, na, nm, 18, isolated_dst=(nm - 1, nm - 2)),
  }
  if empty_relation is not None:
    edges[empty_relation] = np.zeros((0, 2), np.int64)

  labels = rng.integers(num_classes, size=nm).astype(np.int64)
  labels[:num_classes] = np.arange(num_classes)
  perm = rng.permutation(nm)
  n_train, n_val = max(2, nm // 3), max(1, nm // 4)
  splits = {"train": perm[:n_train], "val": perm[n_train : n_train + n_val], "test": perm[n_train + n_val :]}
  g = MMHN(
      name=f"toy{num_modalities}",
      node_types=NODE_TYPES,
      num_nodes=n,
      modalities=modalities,
      node_modalities=node_modalities,
      relations=RELATIONS,
      edges=edges,
      features=features,
      target_type="movie",
      labels=labels,
      num_classes=num_classes,
      splits=splits,
  )
  return g.validate()


def permute_graph(graph: MMHN, seed: int):
  """Relabels the nodes of every type by a random permutation.

  Returns (new graph, perms) with perms[t][old_id] = new_id, so new features
  satisfy new.features[t][m][perms[t]] = old.features[t][m].
  """
  rng = np.random.default_rng(seed)
  perms = {t: rng.permutation(graph.num_nodes[t]) for t in graph.node_types}
  feats = {}
  for t in graph.node_types:
    feats[t] = {}
    for m in graph.modalities:
      x = graph.features[t][m]
      y = np.empty_like(x)
      y[perms[t]] = x
      feats[t][m] = y
  edges = {}
  for r in graph.relations:
    e = np.asarray(graph.edges[r.name])
    edges[r.name] = np.stack([perms[r.src][e[:, 0]], perms[r.dst][e[:, 1]]], axis=1) if len(e) else e.copy()
  tgt = perms[graph.target_type]
  labels = np.empty_like(graph.labels)
  labels[tgt] = graph.labels
  splits = {k: tgt[v] for k, v in graph.splits.items()}
  # The same graph with the relabelled arrays; its provenance starts empty, as a new MMHN's does.
  g = dataclasses.replace(
      graph, name=graph.name + "-perm", edges=edges, features=feats, labels=labels, splits=splits, provenance={}
  )
  return g.validate(), perms


def random_variables(shapes, seed: int = 0, dtype=np.float64):
  """Variables (float64 by default) with the tree of `shapes` and random values, every leaf off its init.

  Scales follow the torch init (spec §9) so activations stay O(1): kernels
  U(±1/√fan_in), W^att/W^msg xavier-like, U^m standard normal; μ, LN/BN scales in
  [0.5, 1.5], skip N(0, 1), biases N(0, 0.3), BN running mean N(0, 0.5), var U[0.5, 2].
  """
  rng = np.random.default_rng(seed)

  def f(path, x):
    k = jax.tree_util.keystr(path)
    shape = tuple(x.shape)
    if k.endswith("['var']"):
      return rng.uniform(0.5, 2.0, shape)
    if k.endswith("['mean']"):
      return rng.normal(0.0, 0.5, shape)
    if "['mu']" in k or "scale" in k:
      return rng.uniform(0.5, 1.5, shape)
    if "['skip']" in k:
      return rng.normal(0.0, 1.0, shape)
    if "bias" in k:
      return rng.normal(0.0, 0.3, shape)
    if "['u_modal']" in k:
      return rng.normal(0.0, 1.0, shape)
    if "['w_att']" in k or "['w_msg']" in k:
      return rng.uniform(-0.3, 0.3, shape)
    if "kernel" in k:
      fan_in = shape[-2]
      return rng.uniform(-1.0, 1.0, shape) / np.sqrt(fan_in)
    raise KeyError(f"no random rule for parameter {k} {shape}")

  return jax.tree_util.tree_map_with_path(lambda p, x: np.asarray(f(p, x), dtype), shapes)


def fast_jit(fn):
  """jax.jit with XLA's backend optimisation off: compiles faster (tests only)."""
  try:
    return jax.jit(fn, compiler_options={"xla_backend_optimization_level": 0})
  except TypeError:  # a JAX without per-jit compiler options
    return jax.jit(fn)
