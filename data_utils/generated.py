"""Generated stand-ins for feature files that are absent (explicit opt-in only).

The paper's DOUBAN/AMAZON features and all image features are published on the
authors' download page, not on GitHub. With ``features='generated'`` the loaders
keep the *real* topology, labels and splits and fill only the absent arrays
from here; `MMHN.provenance['features']` marks them 'generated', so
`MMHN.comparable_with_paper` is False and summaries print a NOTE.

The features carry a moderate class signal so that training on them means
something:

* target nodes: x_i = mu_{y_i} + eps, eps ~ N(0, I), with one random prototype
  mu_c per class and modality scaled so that two class means lie about
  `separation` noise standard deviations apart (text 2.0, image 1.5, other 1.0:
  the modalities differ in strength, so fusing them helps);
* other node types: the mean of their linked target nodes' features plus
  N(0, I) noise, like IMDB's real director/actor rows (averages of their movies).

Everything is a deterministic function of (seed, dataset name, type, modality),
independent of the order in which arrays are generated.
"""

from __future__ import annotations

import zlib

import numpy as np
import scipy.sparse

from hgnn_ima_jax.graph import MMHN

SEPARATION = {"text": 2.0, "image": 1.5}
DEFAULT_SEPARATION = 1.0


def rng_for(seed: int, *names: str) -> np.random.Generator:
  """An independent stream per (seed, names); crc32 keeps it stable across runs (unlike hash())."""
  return np.random.default_rng([int(seed), zlib.crc32("/".join(names).encode())])


def class_signal(
    labels: np.ndarray,
    num_classes: int,
    dim: int,
    separation: float,
    rng: np.random.Generator,
    prototype_rng: np.random.Generator,
) -> np.ndarray:
  """Prototype of each node's class plus unit Gaussian noise, float32 (N, dim)."""
  # E||mu_a - mu_b||^2 = separation^2 for independent prototypes g ~ N(0, I) * s.
  scale = separation / np.sqrt(2.0 * dim)
  prototypes = prototype_rng.standard_normal((num_classes, dim), dtype=np.float32) * np.float32(scale)
  return prototypes[labels] + rng.standard_normal((len(labels), dim), dtype=np.float32)


def neighbour_mean(pairs: np.ndarray, num_nodes: int, target_x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Mean of each node's linked target rows plus unit noise; `pairs` are (node, target) local ids."""
  pairs = np.unique(np.asarray(pairs, np.int64).reshape(-1, 2), axis=0)
  adj = scipy.sparse.csr_matrix(
      (np.ones(len(pairs), np.float32), (pairs[:, 0], pairs[:, 1])), shape=(num_nodes, target_x.shape[0])
  )
  degree = np.asarray(adj.sum(axis=1)).ravel()
  mean = (adj @ target_x) / np.maximum(degree, 1.0)[:, None]  # unlinked nodes: noise only
  return (mean + rng.standard_normal(mean.shape, dtype=np.float32)).astype(np.float32)


def links_to_target(graph: MMHN, node_type: str) -> np.ndarray:
  """(node, target) local-id pairs over every relation joining `node_type` and the target type."""
  out = [np.zeros((0, 2), np.int64)]
  for r in graph.relations:
    e = np.asarray(graph.edges[r.name], np.int64).reshape(-1, 2)
    if r.src == node_type and r.dst == graph.target_type:
      out.append(e)
    elif r.dst == node_type and r.src == graph.target_type:
      out.append(e[:, ::-1])
  return np.concatenate(out)


def generate_features(graph: MMHN, wanted: dict[tuple[str, str], int], seed: int) -> dict[tuple[str, str], np.ndarray]:
  """Generates the (type, modality) -> width arrays in `wanted` for `graph` (topology and labels set).

  Args:
    graph: an MMHN whose edges, labels and num_classes are final; `graph.features`
      may hold real arrays already (a non-target type is then averaged over the
      real target rows of that modality when the widths agree).
    wanted: (node type, modality) -> feature width to generate.
    seed: the feature seed; the same seed gives the same arrays.

  Returns:
    (node type, modality) -> float32 array (num_nodes[type], width).
  """
  target = graph.target_type
  labels = np.asarray(graph.labels)
  out = {}

  def target_rows(m: str, dim: int) -> np.ndarray:
    if (target, m) in out and out[(target, m)].shape[1] == dim:
      return out[(target, m)]
    real = graph.features.get(target, {}).get(m)
    if real is not None and real.shape[1] == dim:
      return real.astype(np.float32, copy=False)
    # The target has no usable rows of this modality: draw a latent class signal to average.
    return class_signal(
        labels,
        graph.num_classes,
        dim,
        SEPARATION.get(m, DEFAULT_SEPARATION),
        rng_for(seed, graph.name, target, m, "latent"),
        rng_for(seed, graph.name, "prototypes", m),
    )

  # Target arrays first: other types average them.
  for (t, m), dim in sorted(wanted.items(), key=lambda kv: kv[0][0] != target):
    if t == target:
      out[(t, m)] = class_signal(
          labels,
          graph.num_classes,
          dim,
          SEPARATION.get(m, DEFAULT_SEPARATION),
          rng_for(seed, graph.name, t, m),
          rng_for(seed, graph.name, "prototypes", m),
      )
    else:
      out[(t, m)] = neighbour_mean(
          links_to_target(graph, t), graph.num_nodes[t], target_rows(m, dim), rng_for(seed, graph.name, t, m)
      )
  return out
