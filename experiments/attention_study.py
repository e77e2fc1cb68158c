"""The attention case study of `visualize.py`: do the weights of a trained model prefer same-class
pairs of target nodes? (the paper's remark that "our nested β aligns more closely with node
categories than α"). Pairs, weights and what is reported are described in visualize.py's docstring.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hgnn_ima_jax.experiments import formatting

LABELS_NOTE = "uses all target labels (train, val and test): an analysis of a trained model, not an evaluation"


def base_model_name(model_name: str) -> str:
  """`hgnn_ima-align` → `hgnn_ima`: the model an (ablation) name builds."""
  # The model package imports JAX; the scripts import this module before their flags are parsed.
  from hgnn_ima_jax.models import split_model_name

  return split_model_name(model_name)[0]


def channel_names(model_name: str, schema, num_channels: int) -> tuple[str, ...]:
  """Names of the attention channels: modalities, or the early-fusion / single-modality channel."""
  if num_channels == schema.num_modalities:
    return tuple(schema.modalities)
  base = base_model_name(model_name)
  if base == "hgt_early" and num_channels == 1:
    return ("+".join(schema.modalities),)
  if base == "hgt" and num_channels == 1:
    return (schema.modalities[0],)
  return tuple(f"channel{c}" for c in range(num_channels))


def attention_kinds(layer_aux: dict, names: tuple[str, ...], nested: bool = True) -> dict[str, np.ndarray]:
  """Per-edge weights (E,) averaged over heads, by kind: 'beta' (or 'beta[m]'), 'alpha[m]', 'beta2'.

  nested: the layers are HGNN-IMA's (β differs from α); False for the HGT baselines (β is α).
  """
  kinds = {}
  if nested:
    beta = np.asarray(layer_aux["beta"], np.float64)
    if beta.ndim == 2:
      kinds["beta"] = beta.mean(-1)
    else:
      for c, name in enumerate(names):
        kinds[f"beta[{name}]"] = beta[:, c].mean(-1)
  alpha = np.asarray(layer_aux["alpha"], np.float64)
  for c, name in enumerate(names):
    kinds[f"alpha[{name}]"] = alpha[:, c].mean(-1)
  if nested and layer_aux.get("beta2") is not None:
    kinds["beta2"] = np.asarray(layer_aux["beta2"], np.float64).mean(-1)
  return kinds


# --- target pairs -----------------------------------------------------------------------


def pair_mode(schema) -> tuple[str, list]:
  """('direct', [r]) for target→target relations, else ('two_hop', [(r_in_hub, r_out_hub)])."""
  t = schema.target_id
  direct = [
      r
      for r in range(schema.num_relations)
      if schema.relation_src(r) == t and schema.relation_dst(r) == t and schema.num_edges[r] > 0
  ]
  if direct:
    return "direct", direct
  pairs = [
      (r1, r2)
      for r1 in range(schema.num_relations)
      for r2 in range(schema.num_relations)
      if schema.relation_src(r1) == t
      and schema.relation_dst(r2) == t
      and schema.relation_dst(r1) == schema.relation_src(r2) != t
      and schema.num_edges[r1] > 0
      and schema.num_edges[r2] > 0
  ]
  return "two_hop", pairs


def relation_matrix(schema, r: int, weights: np.ndarray, senders: np.ndarray, receivers: np.ndarray):
  """Relation r's edge weights as a sparse (N_dst, N_src) matrix of local ids, divided by |R_dst|."""
  sl = schema.edge_slice(r)
  src, dst = schema.relation_src(r), schema.relation_dst(r)
  offs = schema.node_offsets
  rows = np.asarray(receivers[sl], np.int64) - offs[dst]
  cols = np.asarray(senders[sl], np.int64) - offs[src]
  scale = 1.0 / len(schema.relations_into(dst))
  return sp.csr_matrix(
      (np.asarray(weights[sl], np.float64) * scale, (rows, cols)), shape=(schema.num_nodes[dst], schema.num_nodes[src])
  )


def uniform_weights(schema, receivers: np.ndarray) -> np.ndarray:
  """Per-edge weight under uniform attention: 1 / (in-degree of the receiver within the relation)."""
  out = np.zeros(len(receivers), np.float64)
  for r in range(schema.num_relations):
    sl = schema.edge_slice(r)
    rc = np.asarray(receivers[sl])
    if len(rc):
      _, inv, counts = np.unique(rc, return_inverse=True, return_counts=True)
      out[sl] = 1.0 / counts[inv]
  return out


def pair_matrix(schema, mode: str, rels: list, senders, receivers, w_last: np.ndarray, w_prev: np.ndarray | None):
  """Sparse (N_T, N_T) matrix: entry (i, j) = summed weight from target j to target i (see module doc)."""
  n = schema.num_nodes[schema.target_id]
  total = sp.csr_matrix((n, n), dtype=np.float64)
  for item in rels:
    if mode == "direct":
      total = total + relation_matrix(schema, item, w_last, senders, receivers)
    else:
      r1, r2 = item
      prev = w_last if w_prev is None else w_prev
      total = total + relation_matrix(schema, r2, w_last, senders, receivers) @ relation_matrix(
          schema, r1, prev, senders, receivers
      )
  return total


def pair_weights(schema, mode: str, rels: list, senders, receivers, w_last, w_prev=None):
  """(rows i, cols j, weights, uniform weights) over every structurally connected pair i ≠ j.

  The pair set comes from the uniform-attention matrix (strictly positive wherever a path
  exists), so a weight that underflowed to 0 (score scale 100) still counts as a pair.
  """
  uni_e = uniform_weights(schema, receivers)
  u = pair_matrix(schema, mode, rels, senders, receivers, uni_e, None if w_prev is None else uni_e).tocoo()
  keep = u.row != u.col
  rows, cols, uw = u.row[keep].astype(np.int64), u.col[keep].astype(np.int64), u.data[keep]
  p = pair_matrix(schema, mode, rels, senders, receivers, w_last, w_prev).tocoo()
  n = schema.num_nodes[schema.target_id]
  keys_u = rows * n + cols
  order = np.argsort(keys_u)
  keys_p = p.row.astype(np.int64) * n + p.col
  pos = np.searchsorted(keys_u[order], keys_p)
  pos = np.clip(pos, 0, max(len(order) - 1, 0))
  w = np.zeros(len(rows), np.float64)
  if len(order):
    hit = keys_u[order][pos] == keys_p
    np.add.at(w, order[pos[hit]], p.data[hit])
  return rows, cols, w, uw


def same_vs_different(rows, cols, w, uw, labels) -> dict:
  """Mean (and uniform-normalised mean) weight on same- vs different-class pairs, and same-class mass."""
  labels = np.asarray(labels)
  same = labels[rows] == labels[cols]
  norm = w / uw

  def mean_ci(x):
    if len(x) == 0:
      return float("nan"), float("nan")
    sem = x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return float(x.mean()), float(1.96 * sem)

  ms, cs = mean_ci(w[same])
  md, cd = mean_ci(w[~same])
  ns, ncs = mean_ci(norm[same])
  nd, ncd = mean_ci(norm[~same])
  n = len(labels)
  tot_w = np.bincount(rows, w, n)
  tot_u = np.bincount(rows, uw, n)
  cnt_same = np.bincount(rows, same.astype(float), n)
  cnt_diff = np.bincount(rows, (~same).astype(float), n)
  contested = (cnt_same > 0) & (cnt_diff > 0) & (tot_w > 0)
  mass = np.bincount(rows, w * same, n)[contested] / tot_w[contested]
  mass_u = np.bincount(rows, uw * same, n)[contested] / tot_u[contested]
  div = lambda a, b: a / b if b and np.isfinite(a) and np.isfinite(b) else float("nan")
  return {
      "n_same": int(same.sum()),
      "n_diff": int((~same).sum()),
      "mean_same": ms,
      "mean_diff": md,
      "ratio": div(ms, md),
      "ci95_same": cs,
      "ci95_diff": cd,
      "norm_mean_same": ns,
      "norm_mean_diff": nd,
      "norm_ratio": div(ns, nd),
      "norm_ci95_same": ncs,
      "norm_ci95_diff": ncd,
      "receivers_contested": int(contested.sum()),
      "mass_same": float(mass.mean()) if len(mass) else float("nan"),
      "mass_same_uniform": float(mass_u.mean()) if len(mass_u) else float("nan"),
  }


def attention_case_study(schema, graph, attention, labels, names, nested: bool = True) -> dict:
  """Same- vs different-class attention per layer (pair) and kind; see the module docstring."""
  senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
  mode, rels = pair_mode(schema)
  rel_names = (
      [schema.relations[r].name for r in rels]
      if mode == "direct"
      else [f"{schema.relations[r1].name}>{schema.relations[r2].name}" for r1, r2 in rels]
  )
  layers = [attention_kinds(aux, names, nested) for aux in attention]
  K = len(layers)
  if mode == "direct":
    steps = [(k, k) for k in range(K)]
  else:
    steps = [(k - 1, k) for k in range(1, K)] if K > 1 else [(0, 0)] * K
  results = []
  for prev, last in steps:
    kinds = {}
    for kind, w_last in layers[last].items():
      w_prev = layers[prev][kind] if mode == "two_hop" else None
      rows, cols, w, uw = pair_weights(schema, mode, rels, senders, receivers, w_last, w_prev)
      kinds[kind] = same_vs_different(rows, cols, w, uw, labels)
    entry = {"layer": last, "kinds": kinds}
    if mode == "two_hop":
      entry["hop_layers"] = [prev, last]
    results.append(entry)
  notes = [LABELS_NOTE]
  if mode == "two_hop" and K == 1:
    notes.append("one-layer model: both hops use layer 0's weights")
  if not rels:
    notes.append("no target→target relation and no target→hub→target path: nothing to compare")
  return {
      "mode": mode,
      "relations": rel_names,
      "num_layers": K,
      "layers": results,
      "last": results[-1] if results else None,
      "labels": "all",
      "notes": notes,
  }


def attention_markdown(study: dict) -> str:
  """The case-study numbers of every layer (pair) as a Markdown table."""
  header = [
      "layer",
      "kind",
      "pairs same/diff",
      "mean same",
      "mean diff",
      "ratio",
      "norm same",
      "norm diff",
      "norm ratio",
      "same-class mass",
      "uniform mass",
  ]
  rows = []
  f = formatting.format_number
  for entry in study["layers"]:
    layer = "→".join(map(str, entry["hop_layers"])) if "hop_layers" in entry else str(entry["layer"])
    for kind, s in entry["kinds"].items():
      rows.append(
          [
              layer,
              kind,
              f"{s['n_same']}/{s['n_diff']}",
              f(s["mean_same"], 5),
              f(s["mean_diff"], 5),
              f(s["ratio"], 3),
              f(s["norm_mean_same"], 3),
              f(s["norm_mean_diff"], 3),
              f(s["norm_ratio"], 3),
              f(s["mass_same"], 3),
              f(s["mass_same_uniform"], 3),
          ]
      )
  rel = ", ".join(study["relations"])
  return "\n".join(
      [
          f"attention case study ({study['mode'].replace('_', '-')} target pairs via {rel}; "
          f"{'; '.join(study['notes'])})",
          "",
          formatting.markdown_table(header, rows),
      ]
  )


if __name__ == "__main__":  # it sits among the scripts: run directly, it printed nothing and exited 0
  import sys

  print(
      "error: experiments/attention_study.py is the attention case study that visualize.py runs, not a script. "
      "Fix: run python experiments/visualize.py (--help lists its flags)",
      file=sys.stderr,
  )
  sys.exit(2)
