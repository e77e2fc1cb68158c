"""Padded sub-graphs (hgnn_ima_jax.subgraph): the full graph's layout, budgets and ladders, empty types and
relations, and the model: padding changes no real logit, and a full-fanout K-hop sub-graph gives the
full graph's logits of its targets."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from model_fixtures import random_variables
from sampling_graphs import dense_graph, geometric_ladder

from hgnn_ima_jax import train
from hgnn_ima_jax.batch_stream import BatchStream
from hgnn_ima_jax.budgets import Budget, BudgetLadder, padded_schema
from hgnn_ima_jax.experiments.configs import test as test_config
from hgnn_ima_jax.layout import check_graph_layout
from hgnn_ima_jax.samplers import HGTSampler, NeighborSampler
from hgnn_ima_jax.sampling import batch_rng
from hgnn_ima_jax.subgraph import FeatureStore, SubgraphBuilder

FANOUTS = [{"ma": 3, "md": 2, "dm": -1, "am": 4}, {"ma": 1, "md": 0, "dm": 2, "am": 2}]


@pytest.fixture(scope="module")
def graph():
  return dense_graph(0, widths="mixed")


def _samplers(g):
  return {"neighbor": NeighborSampler(g, FANOUTS), "hgt": HGTSampler(g, {"movie": 3, "director": 2, "actor": 4}, 2)}


def _check_padded(g, p, sub):
  """Everything a model and a loss rely on, checked against the MMHN itself."""
  s, ps, budget = g.schema, p.schema, p.budget
  check_graph_layout(ps, p.graph)
  nodes, offs = p.graph.nodes, ps.node_offsets
  for t, tname in enumerate(s.node_types):
    n, b = len(sub.nodes[tname]), budget.nodes[t]
    block = slice(offs[t], offs[t] + b)
    np.testing.assert_array_equal(nodes["valid"][block], np.arange(b) < n)
    for mi, m in enumerate(s.modalities):
      x, w = nodes["features"][m][block], s.feature_dims[t][mi]
      np.testing.assert_array_equal(x[:n, :w], g.features[tname][m][p.node_ids[tname]])
      assert not x[n:].any() and not x[:, w:].any()
  snd, rcv, ev = p.graph.senders, p.graph.receivers, p.graph.edges["valid"]
  for ri, r in enumerate(s.relations):
    sl, e = ps.edge_slice(ri), len(sub.edges[r.name])
    ts, td = s.type_id(r.src), s.type_id(r.dst)
    np.testing.assert_array_equal(ev[sl], np.arange(budget.edges[ri]) < e)
    src = p.node_ids[r.src][snd[sl][:e] - offs[ts]]
    dst = p.node_ids[r.dst][rcv[sl][:e] - offs[td]]
    np.testing.assert_array_equal(np.stack([src, dst], 1), g.edges[r.name][p.edge_ids[r.name]])
    assert (snd[sl][e:] == offs[ts] + budget.nodes[ts] - 1).all()  # padding: last slot -> last slot
    assert (rcv[sl][e:] == offs[td] + budget.nodes[td] - 1).all()
  tt = s.target_type
  np.testing.assert_array_equal(p.node_ids[tt][p.target_positions], sub.targets)
  assert p.mask.sum() == len(sub.targets) and p.mask[p.target_positions].all()
  np.testing.assert_array_equal(p.labels[p.target_positions], g.labels[sub.targets])


@pytest.mark.parametrize("kind", ["neighbor", "hgt"])
def test_padded_subgraph_has_the_full_graph_layout(graph, kind):
  sampler = _samplers(graph)[kind]
  builder = SubgraphBuilder(graph, csr=sampler.csr)
  upper = Budget.for_sampler(sampler, 5)
  ladder = geometric_ladder(upper, num_buckets=3)
  for b in range(3):
    sub = sampler.sample(np.arange(b, 30, 6), batch_rng(0, 0, b))
    for budget in (Budget.exact(graph.schema, sub), upper, ladder):
      _check_padded(graph, builder.build(sub, budget), sub)


def test_padded_schema_changes_only_the_counts(graph):
  budget = Budget(nodes=(4, 3, 9), edges=(5, 0, 2, 7))
  ps = padded_schema(graph.schema, budget)
  assert ps.num_nodes == budget.nodes and ps.num_edges == budget.edges
  assert dataclasses.replace(ps, num_nodes=graph.schema.num_nodes, num_edges=graph.schema.num_edges) == graph.schema
  with pytest.raises(ValueError, match=r"budget has 2 node types"):
    padded_schema(graph.schema, Budget((2, 2), (1, 1, 1, 1)))


@pytest.mark.parametrize("kind", ["neighbor", "hgt"])
def test_upper_bound_budget_holds_for_every_batch(graph, kind):
  sampler = _samplers(graph)[kind]
  upper = Budget.for_sampler(sampler, 4)
  assert upper.fits(graph.schema.num_nodes, graph.schema.num_edges) or all(
      u <= n + 1 for u, n in zip(upper.nodes, graph.schema.num_nodes)
  )
  stream = BatchStream(sampler, graph.splits["train"] if len(graph.splits["train"]) >= 8 else np.arange(30), 4, seed=3)
  for e in range(3):
    for b in range(len(stream.plan(e))):
      assert upper.fits_subgraph(graph.schema, stream.sample_batch(e, b).subgraph)


def test_full_fanout_bound_is_the_whole_graph_at_most(graph):
  upper = Budget.for_sampler(NeighborSampler(graph, [-1, -1, -1]), 1000)
  assert all(u <= n + 1 for u, n in zip(upper.nodes, graph.schema.num_nodes))
  assert all(u <= e for u, e in zip(upper.edges, graph.schema.num_edges))


def test_ladder_picks_the_smallest_rung_that_fits(graph):
  sampler = _samplers(graph)["neighbor"]
  upper = Budget.for_sampler(sampler, 4)
  ladder = geometric_ladder(upper, num_buckets=4, ratio=2.0)
  assert ladder.rungs[-1] == upper and len(ladder.rungs) >= 2
  for a, b in zip(ladder.rungs, ladder.rungs[1:]):
    assert all(x <= y for x, y in zip(a.nodes + a.edges, b.nodes + b.edges))
  used = set()
  for b in range(10):
    sub = sampler.sample(np.arange(b, 30, 8)[:4], batch_rng(1, 0, b))
    chosen = ladder.choose(sub, graph.schema)
    assert chosen.fits_subgraph(graph.schema, sub)
    assert not any(r.fits_subgraph(graph.schema, sub) for r in ladder.rungs[: ladder.index(chosen)])
    used.add(chosen)
  stream = BatchStream(sampler, np.arange(30), 4, seed=0)
  cal = BudgetLadder.calibrate(stream, upper, num_batches=4, num_buckets=3)
  assert cal.rungs[-1] == upper
  plan = stream.plan(0)
  for b in range(4):
    assert cal.rungs[0].fits_subgraph(graph.schema, stream.sample_batch(0, b, plan).subgraph)


def test_budget_overflow_is_a_one_line_error(graph):
  sampler = _samplers(graph)["neighbor"]
  sub = sampler.sample(np.arange(6), batch_rng(0, 0, 0))
  exact = Budget.exact(graph.schema, sub)
  small = Budget((len(sub.nodes["movie"]),) + exact.nodes[1:], exact.edges)  # no padding slot left
  with pytest.raises(ValueError, match=r"^budget.nodes\['movie'\]=\d+: .* needs one padding slot.*Fix: "):
    SubgraphBuilder(graph).build(sub, small)
  fewer = Budget(exact.nodes, (exact.edges[0] - 1,) + exact.edges[1:])
  with pytest.raises(ValueError, match=r"^budget.edges\['ma'\]"):
    SubgraphBuilder(graph).build(sub, fewer)
  with pytest.raises(ValueError, match=r"Budget.nodes=.*Fix:"):
    Budget((0, 1, 1), (0, 0, 0, 0))
  # a sub-graph of another graph with the same relation names (an audit): the fix names that mix-up first
  other = dense_graph(seed=5)
  foreign = _samplers(other)["neighbor"].sample(np.arange(6), batch_rng(0, 0, 0))
  with pytest.raises(ValueError, match=r"is not among its sampled nodes\. Fix: build it with the SubgraphBuilder of"):
    SubgraphBuilder(graph).build(foreign, Budget.exact(other.schema, foreign))


def _absent_type_batch():
  """Director nodes are never reached (md is empty, dm has fanout 0): a type and two relations all padding."""
  g = dense_graph(2, widths="mixed", empty_md=True)
  sampler = NeighborSampler(g, [{"ma": 2, "md": 0, "dm": 0, "am": 2}] * 2)
  sub = sampler.sample(np.array([1, 4, 9]), batch_rng(0, 0, 0))
  return g, sampler, sub


def test_absent_node_type_and_empty_relations_are_all_padding():
  g, sampler, sub = _absent_type_batch()
  assert len(sub.nodes["director"]) == 0 and len(sub.edges["md"]) == 0 and len(sub.edges["dm"]) == 0
  builder = SubgraphBuilder(g, csr=sampler.csr)
  for budget in (
      Budget.exact(g.schema, sub),
      Budget.for_sampler(sampler, 3),
      Budget.exact(g.schema, sub).maximum(Budget((1, 4, 1), (0, 3, 5, 0))),
  ):
    p = builder.build(sub, budget)
    _check_padded(g, p, sub)
    assert not p.graph.nodes["valid"][p.schema.node_slice(g.schema.type_id("director"))].any()


def test_feature_store_gathers_into_buffers(graph):
  store = FeatureStore(graph)
  ids = np.array([3, 0, 3, 7])
  out = np.empty((4, store.width("movie", "text")), np.float32)
  assert store.gather("movie", "text", ids, out=out) is out
  np.testing.assert_array_equal(out, graph.features["movie"]["text"][ids])
  wide = np.zeros((4, 10), np.float32)
  store.gather("actor", "image", ids, out=wide[:, :3])
  np.testing.assert_array_equal(wide[:, :3], graph.features["actor"]["image"][ids])
  assert not wide[:, 3:].any()


# --- the model on padded sub-graphs -----------------------------------------------------------


def _config(name: str):
  c = test_config.get_config("synthetic")
  c.model_name = name
  if name == "hgnn_ima":
    c.model.input_batch_norm = True  # eval mode: BatchNorm with running statistics, no batch mixing
  return c


def _variables(model, graph):
  """Random variables, every leaf off its init (stronger than init); an init if a parameter has no rule."""
  shapes = jax.eval_shape(lambda k, g: model.init(k, g, train=False), jax.random.PRNGKey(0), graph)
  try:
    return random_variables(shapes, seed=1, dtype=np.float32)
  except KeyError:  # a parameter name the fixture does not know yet (the model files are being rewritten)
    return jax.jit(lambda k, g: model.init(k, g, train=False))(jax.random.PRNGKey(0), graph)


def _logits(config, schema, variables, graph):
  model = train.create_model(config, schema)
  check_graph_layout(schema, graph)  # jit skips the model's own check
  return np.asarray(jax.jit(lambda v, g: model.apply(v, g, train=False).logits)(variables, graph))


@pytest.mark.parametrize("name", ["hgnn_ima", "hgt_early", "hgt_late"])
def test_padding_changes_no_logit_and_full_fanout_gives_full_graph_logits(graph, name):
  config = _config(name)
  K = config.model.num_layers
  sampler = NeighborSampler(graph, [-1] * K)
  builder = SubgraphBuilder(graph, csr=sampler.csr)
  targets = np.array([0, 5, 7, 12])  # movie 0 receives a hub of actors
  sub = sampler.sample(targets, batch_rng(0, 0, 0))
  exact = builder.build(sub, Budget.exact(graph.schema, sub))
  large = builder.build(
      sub, Budget(tuple(3 * n + 5 for n in exact.budget.nodes), tuple(2 * e + 7 for e in exact.budget.edges))
  )

  # Parameters do not depend on the counts: one tree serves every budget and the full graph.
  shape = lambda p: jax.tree.map(
      lambda x: (x.shape, x.dtype),
      jax.eval_shape(
          lambda k: train.create_model(config, p.schema).init(k, p.graph, train=False), jax.random.PRNGKey(0)
      ),
  )
  assert shape(exact) == shape(large)
  variables = _variables(train.create_model(config, exact.schema), exact.graph)

  a = _logits(config, exact.schema, variables, exact.graph)[exact.target_positions]
  large_logits = _logits(config, large.schema, variables, large.graph)
  b = large_logits[large.target_positions]
  np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
  full = _logits(config, graph.schema, variables, graph.to_graphs_tuple())[targets]
  np.testing.assert_allclose(a, full, atol=1e-4, rtol=0)
  assert np.ptp(full, axis=0).max() > 1e-2  # the logits differ between targets: the comparison means something

  # The masked loss over every row of the padded graph is the loss over the batch's targets alone.
  from hgnn_ima_jax.losses import masked_cross_entropy

  padded_loss = masked_cross_entropy(large_logits, large.labels, large.mask)
  targets_loss = masked_cross_entropy(full, graph.labels[targets], np.ones(len(targets), bool))
  np.testing.assert_allclose(float(padded_loss), float(targets_loss), rtol=1e-5)

  # The check can fail: with K-1 hops the receptive field is cut and the logits move.
  short = NeighborSampler(graph, [-1] * (K - 1), csr=sampler.csr).sample(targets, batch_rng(0, 0, 0))
  cut = builder.build(short, Budget.exact(graph.schema, short))
  c = _logits(config, cut.schema, variables, cut.graph)[cut.target_positions]
  assert np.abs(c - full).max() > 1e-3


def test_absent_type_batch_runs_and_padding_changes_no_logit():
  g, _, sub = _absent_type_batch()
  builder = SubgraphBuilder(g)
  config = _config("hgnn_ima")
  exact = builder.build(sub, Budget.exact(g.schema, sub))
  bigger = Budget(tuple(n + 6 for n in exact.budget.nodes), tuple(2 * e + 3 for e in exact.budget.edges))
  large = builder.build(sub, bigger)
  variables = _variables(train.create_model(config, exact.schema), exact.graph)
  a = _logits(config, exact.schema, variables, exact.graph)[exact.target_positions]
  b = _logits(config, large.schema, variables, large.graph)[large.target_positions]
  assert np.isfinite(a).all()
  np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)


def test_one_rung_one_shape_so_one_compile(graph):
  # A jitted step retraces when any leaf's shape, dtype or the tree changes; within a rung none may.
  sampler = _samplers(graph)["neighbor"]
  builder = SubgraphBuilder(graph, csr=sampler.csr)
  ladder = geometric_ladder(Budget.for_sampler(sampler, 4), num_buckets=3)
  traces = {"n": 0}

  @jax.jit
  def step(g):
    traces["n"] += 1
    msg = g.nodes["features"]["text"][g.senders] * g.edges["valid"][:, None]
    return jax.ops.segment_sum(msg, g.receivers, num_segments=g.nodes["type"].shape[0]).sum()

  signature, used = {}, set()
  stream = BatchStream(sampler, np.arange(30), 4, seed=0)
  for b in range(len(stream.plan(0))):
    p = builder.build(stream.sample_batch(0, b).subgraph, ladder)
    sig = jax.tree.map(lambda x: (x.shape, x.dtype), p.graph)
    assert signature.setdefault(p.budget, sig) == sig
    used.add(p.budget)
    step(p.graph)
  assert traces["n"] == len(used) <= len(ladder.rungs)


def test_upper_bounds_hold_over_random_graphs_fanouts_and_batch_sizes():
  rng = np.random.default_rng(0)
  for seed in range(3):
    g = dense_graph(seed, num_nodes=(12, 5, 15))
    for trial in range(6):
      fanouts = [{r.name: int(rng.choice([-1, 0, 1, 2, 5])) for r in g.relations} for _ in range(rng.integers(1, 4))]
      size = int(rng.integers(1, 9))
      samplers = (
          NeighborSampler(g, fanouts),
          HGTSampler(g, {t: int(rng.integers(0, 5)) for t in g.node_types}, int(rng.integers(1, 4))),
      )
      for sampler in samplers:
        upper = Budget.for_sampler(sampler, size)
        for b in range(8):
          targets = np.random.default_rng(b).choice(12, size, replace=False)
          sub = sampler.sample(targets, batch_rng(seed, trial, b))
          drawn = fanouts if sampler.kind == "neighbor" else (sampler.num_samples, sampler.num_iterations)
          assert upper.fits_subgraph(g.schema, sub), (drawn, size, upper, Budget.exact(g.schema, sub))


def test_hgt_sampled_batch_padding_changes_no_logit(graph):
  sampler = _samplers(graph)["hgt"]
  sub = sampler.sample(np.array([2, 3, 11]), batch_rng(0, 0, 0))
  builder = SubgraphBuilder(graph, csr=sampler.csr)
  config = _config("hgt_early")
  exact = builder.build(sub, Budget.exact(graph.schema, sub))
  large = builder.build(sub, Budget.for_sampler(sampler, 3))
  assert large.budget.total_edges > exact.budget.total_edges + 10
  variables = _variables(train.create_model(config, exact.schema), exact.graph)
  a = _logits(config, exact.schema, variables, exact.graph)[exact.target_positions]
  b = _logits(config, large.schema, variables, large.graph)[large.target_positions]
  np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
