"""Samplers (hgnn_ima_jax.sampling): CSR order, fanouts, edges exist, no duplicates, HGSampling budgets and
importance, determinism, batches sampled again after a restart, epoch plans."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from sampling_graphs import dense_graph

from hgnn_ima_jax import MMHN
from hgnn_ima_jax.batch_stream import BatchStream, EpochPlan
from hgnn_ima_jax.budgets import Budget
from hgnn_ima_jax.minibatch import BatchSource
from hgnn_ima_jax.options import BatchSettings
from hgnn_ima_jax.samplers import HGTSampler, NeighborSampler
from hgnn_ima_jax.sampling import batch_rng, build_in_csr, choose_k, floyd_sample, key_sample, sample_in_edges

FANOUTS = [{"ma": 3, "md": 2, "dm": -1, "am": 4}, {"ma": 1, "md": 0, "dm": 2, "am": 2}]


@pytest.fixture(scope="module")
def graph():
  return dense_graph(0)


def _same(a, b):
  assert a.nodes.keys() == b.nodes.keys() and a.edges.keys() == b.edges.keys()
  return all(np.array_equal(a.nodes[t], b.nodes[t]) for t in a.nodes) and all(
      np.array_equal(a.edges[r], b.edges[r]) for r in a.edges
  )


def test_csr_is_the_graphs_tuple_order_and_maps_back_to_edge_rows(graph):
  csr = build_in_csr(graph)
  gt = graph.to_graphs_tuple()
  s = graph.schema
  for ri, r in enumerate(graph.relations):
    c, sl = csr[r.name], s.edge_slice(ri)
    off_s, off_d = s.node_offsets[s.relation_src(ri)], s.node_offsets[s.relation_dst(ri)]
    np.testing.assert_array_equal(c.src + off_s, gt.senders[sl])
    np.testing.assert_array_equal(c.dst + off_d, gt.receivers[sl])
    np.testing.assert_array_equal(graph.edges[r.name][c.edge_id], np.stack([c.src, c.dst], 1))
    np.testing.assert_array_equal(np.diff(c.indptr), np.bincount(c.dst, minlength=graph.num_nodes[r.dst]))


def test_floyd_draws_distinct_uniform_subsets():
  rng = np.random.default_rng(0)
  n = np.array([5, 7, 1000, 3])
  draws = floyd_sample(rng, np.repeat(n, 4000), 3)
  assert all(len(set(row)) == 3 for row in draws[:200]) and (draws >= 0).all()
  assert (draws < np.repeat(n, 4000)[:, None]).all()
  counts = np.bincount(draws[:4000].ravel(), minlength=5)  # n = 5: each value in 3/5 of the draws
  np.testing.assert_allclose(counts / 4000, 0.6, atol=0.04)


@pytest.mark.parametrize("fn", [key_sample, choose_k])
def test_key_sampling_draws_distinct_uniform_subsets(fn):
  rng = np.random.default_rng(1)
  n = np.tile([5, 4, 9, 200], 3000)
  draws = fn(rng, n, 4)
  assert all(len(set(row)) == 4 for row in draws) and (draws < n[:, None]).all() and (draws >= 0).all()
  counts = np.bincount(draws[n == 5].ravel(), minlength=5)  # each of 5 values in 4/5 of the draws
  np.testing.assert_allclose(counts / 3000, 0.8, atol=0.03)
  np.testing.assert_array_equal(np.sort(draws[n == 4], axis=1), np.tile(np.arange(4), (3000, 1)))


def test_fanout_respected_per_node_relation_and_hop(graph):
  sampler = NeighborSampler(graph, FANOUTS)
  csr = sampler.csr
  for b in range(5):
    targets = np.random.default_rng(b).choice(graph.num_nodes["movie"], 6, replace=False)
    sub = sampler.sample(targets, batch_rng(0, 0, b))
    hop_of = {t: dict(zip(sub.nodes[t].tolist(), sub.hops[t].tolist())) for t in sub.nodes}
    for ri, r in enumerate(graph.relations):
      dst = csr[r.name].dst[sub.edges[r.name]]
      got = np.bincount(dst, minlength=graph.num_nodes[r.dst])
      deg = csr[r.name].degree
      for v in sub.nodes[r.dst]:
        h = hop_of[r.dst][int(v)]
        if h >= len(FANOUTS):
          want = 0  # reached by the last hop: its in-edges are not sampled
        else:
          f = FANOUTS[h][r.name]
          want = deg[v] if f < 0 else min(deg[v], f)
        assert got[v] == want, (r.name, int(v), h)
      assert got[np.setdiff1d(np.arange(graph.num_nodes[r.dst]), sub.nodes[r.dst])].sum() == 0


def test_next_frontier_is_the_newly_reached_nodes(graph):
  sampler = NeighborSampler(graph, [2, 2, 2])
  sub = sampler.sample(np.array([0, 1, 2]), batch_rng(1, 0, 0))
  for t in graph.node_types:
    # A node is first reached at hop h + 1 by an edge sampled from a hop-h receiver.
    for v, h in zip(sub.nodes[t], sub.hops[t]):
      if h == 0:
        continue
      hops_of_receivers = []
      for r in graph.relations:
        if r.src != t:
          continue
        c = sampler.csr[r.name]
        pos = sub.edges[r.name][c.src[sub.edges[r.name]] == v]
        rh = dict(zip(sub.nodes[r.dst].tolist(), sub.hops[r.dst].tolist()))
        hops_of_receivers += [rh[int(d)] for d in c.dst[pos]]
      assert min(hops_of_receivers) == h - 1
  assert np.array_equal(sub.nodes["movie"][:3], [0, 1, 2]) and (sub.hops["movie"][:3] == 0).all()


@pytest.mark.parametrize("kind", ["neighbor", "hgt"])
def test_sampled_edges_exist_and_nothing_repeats(graph, kind):
  sampler = NeighborSampler(graph, FANOUTS) if kind == "neighbor" else HGTSampler(graph, 4, 2)
  for b in range(4):
    sub = sampler.sample(np.arange(b, 30, 5), batch_rng(3, 1, b))
    for t in graph.node_types:
      assert len(np.unique(sub.nodes[t])) == len(sub.nodes[t])
    for r in graph.relations:
      c, pos = sampler.csr[r.name], sub.edges[r.name]
      assert len(np.unique(pos)) == len(pos)
      pairs = graph.edges[r.name][c.edge_id[pos]]  # the MMHN's own rows
      have = {tuple(p) for p in graph.edges[r.name].tolist()}
      assert all(tuple(p) in have for p in pairs.tolist())
      assert np.isin(pairs[:, 0], sub.nodes[r.src]).all() and np.isin(pairs[:, 1], sub.nodes[r.dst]).all()


def test_sample_in_edges_all_and_zero():
  g = dense_graph(1)
  csr = build_in_csr(g)["am"]
  f = np.array([1, 2, 3])
  np.testing.assert_array_equal(
      np.sort(sample_in_edges(csr, f, -1, np.random.default_rng(0))),
      np.concatenate([np.arange(csr.indptr[v], csr.indptr[v + 1]) for v in f]),
  )
  assert len(sample_in_edges(csr, f, 0, np.random.default_rng(0))) == 0


def test_hgt_budget_per_type_and_induced_edges(graph):
  n = {"movie": 3, "director": 2, "actor": 5}
  sampler = HGTSampler(graph, n, num_iterations=3)
  for b in range(4):
    targets = np.arange(b, 30, 7)
    sub = sampler.sample(targets, batch_rng(0, 0, b))
    for t in graph.node_types:
      per_iter = np.bincount(sub.hops[t], minlength=4)
      assert (per_iter[1:] <= n[t]).all(), (t, per_iter)
      assert per_iter[0] == (len(targets) if t == "movie" else 0)
    for r in graph.relations:
      e = graph.edges[r.name]
      want = np.flatnonzero(np.isin(e[:, 0], sub.nodes[r.src]) & np.isin(e[:, 1], sub.nodes[r.dst]))
      got = np.sort(sampler.csr[r.name].edge_id[sub.edges[r.name]])
      np.testing.assert_array_equal(got, want)


def _star_graph() -> MMHN:
  """4 target movies; actor 0 acts in all of them, actors 1..16 in one each (4 actors per movie)."""
  am = [(0, m) for m in range(4)] + [(1 + 4 * m + j, m) for m in range(4) for j in range(4)]
  am = np.array(am, np.int64)
  g = dense_graph(0)
  n = {"movie": g.num_nodes["movie"], "director": g.num_nodes["director"], "actor": 17}
  feats = dict(g.features)
  feats["actor"] = {m: np.zeros((17, 6), np.float32) for m in g.modalities}
  return dataclasses.replace(
      g,
      num_nodes=n,
      features=feats,
      edges={"ma": am[:, ::-1].copy(), "md": np.zeros((0, 2), np.int64), "dm": np.zeros((0, 2), np.int64), "am": am},
  ).validate()


def test_hgt_samples_a_shared_neighbour_more_often():
  # Budget after the targets: actor 0 has 4 x 1/5 = 0.8, the others 1/5; P ∝ budget², so
  # P(actor 0) = 0.64 / (0.64 + 16 * 0.04) = 0.5 and 1/32 for each other actor.
  g = _star_graph()
  sampler = HGTSampler(g, {"actor": 1}, num_iterations=1)
  counts = np.zeros(17)
  for seed in range(300):
    sub = sampler.sample(np.arange(4), batch_rng(seed, 0, 0))
    counts[sub.nodes["actor"]] += 1
  assert counts.sum() == 300
  assert 0.4 < counts[0] / 300 < 0.6
  assert counts[0] > 5 * counts[1:].mean()


def test_same_seed_epoch_batch_gives_the_same_batch(graph):
  for sampler in (NeighborSampler(graph, FANOUTS), HGTSampler(graph, 4, 2)):
    t = np.arange(0, 30, 3)
    a, b = sampler.sample(t, batch_rng(5, 2, 7)), sampler.sample(t, batch_rng(5, 2, 7))
    assert _same(a, b)
    others = [sampler.sample(t, batch_rng(*k)) for k in ((5, 2, 8), (5, 3, 7), (6, 2, 7))]
    assert not any(_same(a, o) for o in others)  # each of seed, epoch and batch index changes the draw


def test_epoch_plan_covers_every_target_once():
  targets = np.arange(100, 137)
  plans = [EpochPlan(targets, 8, seed=0, epoch=e) for e in range(3)]
  for p in plans:
    assert len(p) == 5 and [len(b) for b in p] == [8, 8, 8, 8, 5]
    np.testing.assert_array_equal(np.sort(np.concatenate(list(p))), targets)
  assert not np.array_equal(plans[0].order, plans[1].order)
  np.testing.assert_array_equal(EpochPlan(targets, 8, seed=0, epoch=1).order, plans[1].order)
  dropped = EpochPlan(targets, 8, seed=0, epoch=0, drop_last=True)
  assert len(dropped) == 4 and len(np.unique(np.concatenate(list(dropped)))) == 32


@pytest.mark.parametrize("kind", ["neighbor", "hgt"])
def test_batch_b_of_epoch_e_is_the_same_after_a_restart(graph, kind):
  """How a mini-batch run resumes: a stream built again from the same settings (a new sampler too) samples every
  batch (e, b) of the first one, from any batch on and in any order; another batch seed samples others."""
  make = lambda seed=11: BatchStream(
      NeighborSampler(graph, FANOUTS) if kind == "neighbor" else HGTSampler(graph, 3, 2),
      graph.splits["train"],
      3,
      seed=seed,
  )
  first = make()
  keys = [(e, b) for e in range(2) for b in range(len(first.plan(e)))]
  full = [first.sample_batch(e, b) for e, b in keys]
  assert [(x.epoch, x.index) for x in full] == keys
  k = len(keys) // 2 + 1  # the restart point: inside an epoch, as after an interrupt
  restarted = make()
  rest = [restarted.sample_batch(e, b) for e, b in reversed(keys[k:])][::-1]
  for a, b in zip(rest, full[k:]):
    assert np.array_equal(a.targets, b.targets) and _same(a.subgraph, b.subgraph)
  other = make(seed=12)
  assert not all(np.array_equal(other.sample_batch(e, b).targets, x.targets) for (e, b), x in zip(keys, full))


@pytest.mark.parametrize("mode", ["neighbor", "hgt"])
def test_a_checkpoints_sampler_meta_fixes_the_batches(graph, mode):
  """A mini-batch checkpoint keeps `BatchSettings.sampler_meta()` and (epoch, next batch), nothing of the stream:
  settings read back from that metadata sample the same batches, and every setting it leaves out changes none."""
  settings = BatchSettings(
      mode=mode, size=3, fanouts=tuple(FANOUTS), num_samples=3, num_iterations=2, seed=7, drop_last=True
  )
  meta = json.loads(json.dumps(settings.sampler_meta()))  # as the checkpoint stores it
  left_out = dict(buckets=1, prefetch=0, eval="sampled", eval_every=3, eval_chunk=64, trim=False)
  # parts is kept when it is not 1; a new field must be sorted into one of these
  assert {f.name for f in dataclasses.fields(BatchSettings)} == set(meta) | set(left_out) | {"parts"}
  keys = [(0, 0), (1, 1), (2, 0)]
  batches = lambda s: [BatchSource(graph, s).stream.sample_batch(e, b) for e, b in keys]
  want = batches(settings)
  for s in (BatchSettings(**meta), dataclasses.replace(settings, **left_out)):
    for a, b in zip(batches(s), want):
      assert np.array_equal(a.targets, b.targets) and _same(a.subgraph, b.subgraph)


def test_bad_settings_are_one_line_errors(graph):
  with pytest.raises(
      ValueError, match=r"fanouts\[0\] leaves out am\. Fix: give a fanout for exactly its relations ma, md, dm, am "
  ):
    NeighborSampler(graph, [{"ma": 1, "md": 1, "dm": 1}])
  # a scalar hop is named as given (it was reported as its first relation's: fanouts[1]['ma']=-2)
  with pytest.raises(ValueError, match=r"^fanouts\[1\]=-2: expected an int >= -1\. Fix:"):
    NeighborSampler(graph, [1, -2])
  with pytest.raises(ValueError, match=r"^fanouts\[0\]\['md'\]=-2: expected an int >= -1\. Fix:"):
    NeighborSampler(graph, [{"ma": 1, "md": -2, "dm": 1, "am": 1}])
  # PyG's habits get a hint: (src, relation, dst) keys, a list of counts per type for the iterations
  with pytest.raises(ValueError, match=r"relations by name, not PyG's \(src, relation, dst\) tuple, ma, md, dm, am"):
    NeighborSampler(graph, [{("movie", "ma", "actor"): 1, "md": 1, "dm": 1, "am": 1}])
  with pytest.raises(ValueError, match=r"^num_samples\['movie'\]=\[4, 4\]: .*their number is num_iterations"):
    HGTSampler(graph, {"movie": [4, 4]}, 2)
  with pytest.raises(
      ValueError,
      match=r"num_samples names no node type of the graph: user\. Fix: use its node types movie, director, actor ",
  ):
    HGTSampler(graph, {"user": 3}, 1)
  with pytest.raises(ValueError, match=r"targets: id 30 outside 'movie' ids 0..29"):
    NeighborSampler(graph, [1]).sample(np.array([30]), batch_rng(0, 0, 0))
  # a sampler takes the boolean mask a stream takes (it refused it as "not a 1-D integer array")
  mask = np.zeros(30, bool)
  mask[[3, 7]] = True
  by_mask = NeighborSampler(graph, [1]).sample(mask, batch_rng(0, 0, 0))
  np.testing.assert_array_equal(by_mask.nodes["movie"][:2], [3, 7])
  with pytest.raises(ValueError, match=r"seed=-1"):
    batch_rng(-1, 0, 0)


def test_targets_are_checked_before_any_batch(graph):
  """From an audit: a boolean mask was cast to ids 0/1 (every batch trained on movies 0 and 1), and ids repeated
  in different batches trained twice an epoch; both without a word. Also the seed passed as rng, a float cap."""
  train, sampler = graph.splits["train"], NeighborSampler(graph, FANOUTS)
  mask = graph.split_mask("train")
  stream = BatchStream(sampler, mask, 1, seed=0)
  seen = np.concatenate([stream.sample_batch(0, b).targets for b in range(len(stream.plan(0)))])
  np.testing.assert_array_equal(np.sort(seen), np.sort(train))  # a mask is its ids, as PyG's input_nodes
  with pytest.raises(ValueError, match=r"^targets: a boolean mask of shape \(3,\), expected \(30,\)"):
    BatchStream(sampler, np.ones(3, bool), 1, seed=0)
  with pytest.raises(ValueError, match=r"^targets: 2 id\(s\) repeated \(e.g. 5\).*Fix: list each target once"):
    BatchStream(sampler, [5, 6, 5, 6], 2, seed=3)
  with pytest.raises(ValueError, match=r"^batch_size=2.0: expected an int >= 1"):
    BatchStream(sampler, train, 2.0, seed=0)
  with pytest.raises(ValueError, match=r"^rng=0: expected a numpy Generator. Fix: pass batch_rng"):
    sampler.sample([1, 2], 0)
  assert len(sampler.sample([], batch_rng(0, 0, 0)).nodes[graph.target_type]) == 0  # [] reads as no target
  with pytest.raises(ValueError, match=r"^max_budget_neighbors=2.5: expected None or an int >= 1"):
    HGTSampler(graph, 4, 2, max_budget_neighbors=2.5)
  with pytest.raises(ValueError, match=r"^batch_size=0: expected an int >= 1"):
    Budget.for_sampler(sampler, 0)


def test_make_sampler_by_name(graph):
  from hgnn_ima_jax.samplers import make_sampler

  assert make_sampler(graph, "neighbor", fanouts=(2, 1)).fanouts == ((2,) * 4, (1,) * 4)
  assert make_sampler(graph, "hgt", num_samples=3, num_iterations=2).num_samples["actor"] == 3
  with pytest.raises(ValueError, match=r"kind='full'.*Fix:"):
    make_sampler(graph, "full")
  with pytest.raises(ValueError, match=r"fanouts=None.*Fix:"):
    make_sampler(graph, "neighbor")
