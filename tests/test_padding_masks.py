"""Padding nodes and edges marked by `nodes['valid']` / `edges['valid']` change nothing on the real part.

The padded graph is the same network with one extra node per type and a few extra edges between
those extra nodes on every relation (the layout the mini-batch sub-graphs use). In training mode
(BatchNorm on batch statistics, L_att on) the real target nodes' logits, L_att and the updated
BatchNorm statistics must equal the unpadded graph's.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from model_fixtures import fast_jit, make_graph, random_variables

from hgnn_ima_jax import models
from hgnn_ima_jax.layout import check_graph_layout

FIELDS = dict(
    hidden=16,
    heads=4,
    num_layers=2,
    projection="per_channel",
    input_batch_norm=True,
    dropout=0.0,
    fusion_input_dropout=0.0,
    fusion_score_dropout=0.0,
)


def padded(data, pad_edges: int = 2):
  """The network with one padding node per type (the last id) and `pad_edges` pad→pad edges per relation."""
  num_nodes = {t: n + 1 for t, n in data.num_nodes.items()}
  features = {
      t: {m: np.concatenate([x, np.zeros((1, x.shape[1]), x.dtype)]) for m, x in f.items()}
      for t, f in data.features.items()
  }
  edges = {}
  for r in data.relations:
    pad = np.tile([[num_nodes[r.src] - 1, num_nodes[r.dst] - 1]], (pad_edges, 1))
    edges[r.name] = np.concatenate([np.asarray(data.edges[r.name]).reshape(-1, 2), pad])
  big = dataclasses.replace(
      data, num_nodes=num_nodes, features=features, edges=edges, labels=np.concatenate([data.labels, [0]])
  )
  gt = big.to_graphs_tuple(np.float64)
  s = big.schema
  node_valid = np.ones(s.total_nodes, bool)
  node_valid[[s.node_slice(t).stop - 1 for t in range(s.num_node_types)]] = False
  edge_valid = np.ones(s.total_edges, bool)
  for r in range(s.num_relations):
    edge_valid[s.edge_slice(r).stop - pad_edges : s.edge_slice(r).stop] = False
  gt = gt._replace(nodes={**gt.nodes, "valid": node_valid}, edges={**gt.edges, "valid": edge_valid})
  return big, gt


def _train_apply(model, variables, graph):
  """The train-mode forward (BatchNorm on batch statistics) and its updated statistics, compiled: an eager float64
  forward dispatches (and compiles) op by op, which costs more. The graph is checked eagerly first, as `apply` does."""
  check_graph_layout(model.schema, graph)
  return fast_jit(lambda v, g: model.apply(v, g, train=True, mutable=["batch_stats"]))(variables, graph)


@pytest.mark.parametrize("name", ["hgnn_ima", "hgnn_ima+inf", "hgt_late"])
def test_padding_changes_nothing_on_real_nodes_in_training_mode(name):
  data = make_graph(2, widths="mixed")
  big, gt_pad = padded(data)
  gt = data.to_graphs_tuple(np.float64)
  small_model = models.build_model(name, data.schema, **FIELDS)
  big_model = models.build_model(name, big.schema, **FIELDS)
  with jax.enable_x64(True):
    v = random_variables(jax.eval_shape(lambda: small_model.init({"params": jax.random.PRNGKey(0)}, gt)), 0)
    v_big = jax.eval_shape(lambda: big_model.init({"params": jax.random.PRNGKey(0)}, gt_pad))
    assert jax.tree.structure(v_big) == jax.tree.structure(v)  # parameters do not depend on counts
    assert jax.tree.map(lambda a: a.shape, v_big) == jax.tree.map(lambda a: a.shape, v)
    out, upd = _train_apply(small_model, v, gt)
    out_pad, upd_pad = _train_apply(big_model, v, gt_pad)
  n = data.num_nodes["movie"]
  np.testing.assert_allclose(out_pad.logits[:n], out.logits, rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(out_pad.att_loss, out.att_loss, rtol=1e-9, atol=1e-12)
  for a, b in zip(jax.tree.leaves(upd_pad), jax.tree.leaves(upd)):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
  if name.startswith("hgnn_ima"):
    assert float(out.att_loss) > 0  # the comparison is not vacuous


def test_without_masks_padding_would_show():
  """The same padded graph without its masks gives other BatchNorm statistics and L_att (so the test above can fail)."""
  data = make_graph(2, widths="mixed")
  big, gt_pad = padded(data)
  gt = data.to_graphs_tuple(np.float64)
  unmasked = gt_pad._replace(
      nodes={k: v for k, v in gt_pad.nodes.items() if k != "valid"},
      edges={k: v for k, v in gt_pad.edges.items() if k != "valid"},
  )
  small_model = models.build_model("hgnn_ima", data.schema, **FIELDS)
  big_model = models.build_model("hgnn_ima", big.schema, **FIELDS)
  with jax.enable_x64(True):
    v = random_variables(jax.eval_shape(lambda: small_model.init({"params": jax.random.PRNGKey(0)}, gt)), 0)
    out, _ = _train_apply(small_model, v, gt)
    out_pad, _ = _train_apply(big_model, v, unmasked)
  assert not np.allclose(out_pad.att_loss, out.att_loss)
  assert not np.allclose(out_pad.logits[: data.num_nodes["movie"]], out.logits)
