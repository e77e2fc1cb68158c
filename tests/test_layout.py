"""A GraphsTuple not laid out by `MMHN.to_graphs_tuple()` is refused where it enters the model.

The layer slices each relation's edges statically and runs sorted segment ops without reading
`edges['type']`, so a wrong layout would be computed wrong silently (hgnn_ima_jax/layout.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from model_fixtures import make_graph, random_variables

from hgnn_ima_jax import DatasetError, layout, models, restore
from hgnn_ima_jax import state as state_lib
from hgnn_ima_jax.experiments.configs.default import get_config

SMALL = dict(hidden=8, heads=2, num_layers=1)


@pytest.fixture(scope="module")
def setup():
  g = make_graph(2, empty_relation=None)
  module = models.build_model("hgnn_ima", g.schema, **SMALL)
  gt = g.to_graphs_tuple()
  v = random_variables(jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), gt)), 0, np.float32)
  return g, module, v, gt


def _with(gt, **arrays):
  """A copy of `gt` with some of senders / receivers / etype / ntype / present_image replaced."""
  edges = dict(gt.edges, type=arrays.pop("etype", gt.edges["type"]))
  nodes = dict(gt.nodes)
  if "ntype" in arrays:
    nodes["type"] = arrays.pop("ntype")
  if "present_image" in arrays:
    nodes["present"] = dict(nodes["present"], image=arrays.pop("present_image"))
  return gt._replace(edges=edges, nodes=nodes, **arrays)


def _relation_slice(g, name):
  return g.schema.edge_slice([r.name for r in g.schema.relations].index(name))


def bad_graphs(g, gt):
  """(what is wrong, graph, words the error must contain)."""
  snd, rcv, et = (np.array(x) for x in (gt.senders, gt.receivers, gt.edges["type"]))
  am = _relation_slice(g, "am")
  unsorted = np.arange(len(rcv))
  unsorted[am] = unsorted[am][::-1]  # reverse one relation: receivers descend
  regrouped = np.concatenate([np.arange(len(rcv))[am], np.delete(np.arange(len(rcv)), np.arange(len(rcv))[am])])
  wrong_type = et.copy()
  wrong_type[am.start] = 0
  out_of_range = snd.copy()
  out_of_range[am.start] = 0  # a movie id as the sender of actor -> movie
  present = np.asarray(gt.nodes["present"]["image"]).copy()
  present[:] = True  # claims directors and actors have real images: L_att would ignore them
  ntype = np.zeros_like(np.asarray(gt.nodes["type"]))
  return [
      ("receivers unsorted", _with(gt, senders=snd[unsorted], receivers=rcv[unsorted]), "not sorted by receiver"),
      (
          "relations regrouped",
          _with(gt, senders=snd[regrouped], receivers=rcv[regrouped], etype=et[regrouped]),
          "edges['type']",
      ),
      ("edge type inconsistent", _with(gt, etype=wrong_type), "edges['type']"),
      ("sender out of its type's range", _with(gt, senders=out_of_range), "outside 'actor' ids"),
      # well formed, but one edge fewer than the model was built for: a graph of other sizes
      ("edge count", _with(gt, senders=snd[1:], receivers=rcv[1:], etype=et[1:]), "but the model was built for"),
      ("presence", _with(gt, present_image=present), "nodes['present']['image']"),
      ("node types", _with(gt, ntype=ntype), "nodes['type']"),
  ]


def test_model_refuses_a_graph_with_another_layout(setup):
  """Each layout error fails an eager apply with one line naming the field and the fix."""
  g, module, v, gt = setup
  module.apply(v, gt)  # the layout to_graphs_tuple builds is accepted
  for what, bad, words in bad_graphs(g, gt):
    with pytest.raises(DatasetError) as err:
      module.apply(v, bad)
    msg = str(err.value)
    # a graph of other sizes is not a layout slip: the model is to be built for it (the fix said to_graphs_tuple)
    fix = (
        "Fix: build the model for this graph"
        if what == "edge count"
        else "Fix: build the graph with MMHN.to_graphs_tuple()"
    )
    assert words in msg and fix in msg, (what, msg)
    assert "\n" not in msg, what
  with pytest.raises(TypeError, match=r"^graph: an MMHN, but the model takes a jraph.GraphsTuple. Fix: pass"):
    module.apply(v, g)


def test_same_edges_reordered_within_a_receiver_are_accepted(setup):
  """Only the grouping and the receiver order matter: senders of one receiver may come in any order."""
  g, module, v, gt = setup
  rcv = np.asarray(gt.receivers)
  order = np.lexsort((-np.asarray(gt.senders), rcv, np.asarray(gt.edges["type"])))  # senders descending
  assert not np.array_equal(order, np.arange(len(order)))
  other = _with(gt, senders=np.asarray(gt.senders)[order], receivers=rcv[order])
  np.testing.assert_allclose(module.apply(v, other).logits, module.apply(v, gt).logits, rtol=1e-5, atol=1e-6)


def test_check_does_not_run_inside_jit(setup):
  """Under jit the graph is abstract: no check is traced into the program (make_batch checks instead)."""
  g, module, v, gt = setup
  bad = bad_graphs(g, gt)[0][1]
  out = jax.jit(lambda v, graph: module.apply(v, graph).logits)(v, bad)
  assert out.shape == (g.num_nodes["movie"], g.num_classes)


def test_make_batch_and_loaded_runs_check_the_graph(setup, monkeypatch):
  g, module, v, gt = setup
  bad = bad_graphs(g, gt)[0][1]
  state_lib.make_batch(g)  # the graph to_graphs_tuple builds
  monkeypatch.setattr(type(g), "to_graphs_tuple", lambda self, dtype=np.float32: bad)
  with pytest.raises(DatasetError, match="not sorted by receiver"):
    state_lib.make_batch(g)
  monkeypatch.undo()
  stacked = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], v["params"])
  config = get_config()  # the library defaults, as `module` has them
  config.model.update(SMALL)
  run = restore.LoadedRun(stacked, {}, config, g.schema, [0], {}, g)
  assert run.predict(0).shape == (g.num_nodes["movie"],)
  monkeypatch.setattr(type(g), "to_graphs_tuple", lambda self, dtype=np.float32: bad)
  for call in (run.predict, run.embed):
    with pytest.raises(DatasetError, match="not sorted by receiver"):
      call(0)


def test_a_valid_graph_is_checked_once(setup, monkeypatch):
  g, _, _, _ = setup
  gt = g.to_graphs_tuple()
  layout.check_graph_layout(g.schema, gt)

  def checked_again(*args):
    raise RuntimeError("checked again")

  monkeypatch.setattr(layout, "_remember", checked_again)  # runs at the end of every full check
  layout.check_graph_layout(g.schema, gt)
  with pytest.raises(RuntimeError, match="checked again"):  # a new graph object is checked
    layout.check_graph_layout(g.schema, g.to_graphs_tuple())
