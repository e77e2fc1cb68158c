"""Diagnostics of a synthetic (or any) MMHN without a model: same-type homophily and linear probes.

`python -m hgnn_ima_jax.data_utils.synthetic_probes` generates the synthetic graph at the generator's
defaults and prints its summary and the probe table those defaults were chosen with. The console
command `hgnn-ima-synthetic` (experiments/cli.py) starts from the knobs of the graph that
`train.py --dataset=synthetic` builds instead (half the generator's scale).
"""

from __future__ import annotations

import argparse
import ast
import sys
import time

import numpy as np
import scipy.sparse as sp

from hgnn_ima_jax.graph import MMHN

from .synthetic import generate_synthetic, synthetic_config
from .synthetic_config import AMAZON1_LIKE


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
      inc = sp.csr_matrix((np.ones(len(e), np.float32), (e[:, 0], e[:, 1])), shape=(n, graph.num_nodes[r.dst]))
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


_FLAG_PREFIX = "--config.synthetic."  # train.py's spelling of a knob, accepted here too


def main(argv=None, defaults: dict | None = None, defaults_name: str = "the generator's defaults"):
  """The command: knobs from `defaults`, then `field=value` (or `--config.synthetic.field=value`) arguments."""
  argv = sys.argv[1:] if argv is None else list(argv)
  argv = [a[len(_FLAG_PREFIX) :] if a.startswith(_FLAG_PREFIX) else a for a in argv]
  p = argparse.ArgumentParser(
      description=f"Generate the synthetic MMHN (from {defaults_name}) and print its summary and linear probes."
  )
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--amazon1", action="store_true", help="the 58,088-item / 632,238-edge single-type graph")
  p.add_argument("--no-probe", action="store_true")
  p.add_argument(
      "overrides",
      nargs="*",
      help="field=value (Python literal), e.g. homophily=0.6 (or --config.synthetic.homophily=0.6)",
  )
  a = p.parse_args(argv)

  over = dict(AMAZON1_LIKE) if a.amazon1 else dict(defaults or {})
  base = "AMAZON1_LIKE" if a.amazon1 else defaults_name
  for kv in a.overrides:
    k, eq, v = kv.partition("=")
    if not eq or not k:
      raise SystemExit(f"error: override {kv!r}: is not field=value. Fix: give e.g. homophily=0.6 (--help)")
    try:
      over[k] = ast.literal_eval(v)
    except (ValueError, SyntaxError):
      over[k] = v
  try:
    config = synthetic_config(**over)
  except ValueError as e:  # an unknown or invalid knob (SyntheticConfigError): one line, no traceback
    raise SystemExit(f"error: {e}") from None
  print(f"knobs: {base}" + "".join(f", {k}={v!r}" for k, v in over.items() if not a.amazon1 or k not in AMAZON1_LIKE))
  t0 = time.perf_counter()
  g = generate_synthetic(config, a.seed)[0]
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
  main()
