"""Layer trimming on neighbour-sampled sub-graphs (budgets with levels, `models.Encoder`): each level is a prefix of
the padded layout, and a trimmed model gives the untrimmed model's target logits, per-edge attention on the edges it
computes, and gradients; L_att then covers exactly those edges; training with and without trimming agrees."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from data_helpers import EXACT, with_overrides
from model_fixtures import LOSS_ONLY_ABLATIONS, random_variables
from sampling_graphs import dense_graph, geometric_ladder

from hgnn_ima_jax import minibatch, train
from hgnn_ima_jax.budgets import Budget, check_fits, level_counts
from hgnn_ima_jax.choices import MODEL_NAMES
from hgnn_ima_jax.data_utils import load_for_config
from hgnn_ima_jax.edge_layout import edge_index, num_slots, sender_groups, slot_offsets
from hgnn_ima_jax.experiments.configs import test as test_config
from hgnn_ima_jax.experiments.outputs import history_writer
from hgnn_ima_jax.layout import check_graph_layout
from hgnn_ima_jax.losses import attention_loss, objective, objective_from_stats, objective_stats
from hgnn_ima_jax.models import level_schema
from hgnn_ima_jax.samplers import HGTSampler, NeighborSampler
from hgnn_ima_jax.sampling import batch_rng
from hgnn_ima_jax.subgraph import SubgraphBuilder

K = 3
TARGETS = np.array([0, 5, 7, 12])  # movie 0 receives a hub of actors


@pytest.fixture(scope="module")
def graph():
  return dense_graph(0, widths="mixed")


@pytest.fixture(scope="module")
def batch(graph):
  """One 3-hop batch padded three ways: no levels, exact levels, and levels with slack (prefixes hold non-live edges)."""
  sampler = NeighborSampler(graph, [2] * K)
  builder = SubgraphBuilder(graph, csr=sampler.csr)
  sub = sampler.sample(TARGETS, batch_rng(0, 0, 0))
  exact = Budget.exact(graph.schema, sub, levels=K)
  slack = exact.scaled(lambda n: 2 * n + 3)
  return sub, {
      "plain": builder.build(sub, exact.without_levels()),
      "exact": builder.build(sub, exact),
      "slack": builder.build(sub, slack),
  }


def _config(name, **fields):
  c = test_config.get_config()
  c.model_name = name
  c.model.num_layers = K
  for k, v in fields.items():
    c.model[k] = v
  return c


def _apply(c, p, variables, **kw):
  model = train.create_model(c, p.schema)
  check_graph_layout(p.schema, p.graph)
  return jax.jit(lambda v, g: model.apply(v, g, train=False, return_attention=True, **kw))(variables, p.graph)


# --- layout and budgets -----------------------------------------------------------------------


def test_each_level_is_a_prefix_of_every_block(graph, batch):
  sub, padded = batch
  s = graph.schema
  for p in (padded["exact"], padded["slack"]):
    ps, hop = p.schema, p.graph.edges["hop"]
    assert len(ps.levels) == K
    for j, (ln, le) in enumerate(p.budget.levels):
      for t, tname in enumerate(s.node_types):
        hops = sub.hops[tname]
        assert (np.diff(hops) >= 0).all()  # hop order inside the type's block
        within = int((hops <= j).sum())
        assert within + 1 <= ln[t]  # room for the level's padding slot
      for ri, r in enumerate(s.relations):
        block = hop[ps.edge_slice(ri)]
        valid = p.graph.edges["valid"][ps.edge_slice(ri)]
        live = valid & (block <= j)
        n_live = int(live.sum())
        assert live[:n_live].all() and not live[n_live:].any()  # the live edges come first
        assert n_live <= le[ri]
    # edges['hop'] is each real edge's receiver's hop; padding edges are past every level.
    for ri, r in enumerate(s.relations):
      sl, td = ps.edge_slice(ri), s.type_id(r.dst)
      real = p.graph.edges["valid"][sl]
      local = p.graph.receivers[sl][real] - ps.node_offsets[td]
      np.testing.assert_array_equal(hop[sl][real], sub.hops[r.dst][local])
      assert (hop[sl][~real] == K).all()


def test_a_trimmed_layers_edge_index_stays_inside_its_tables_and_slots(batch):
  """Edges of a level's prefix that the layer does not use (receivers past the level, padding) are sent from
  local node 0 to the level's padding slot: every row read is inside the message tables and its own type's sender
  states, every slot a real one's."""
  _, padded = batch
  p = padded["slack"]
  s = p.schema
  g = jax.tree.map(jnp.asarray, p.graph)
  checked_dead = 0
  for j in range(K):
    out_s, in_s = level_schema(s, j), level_schema(s, j + 1)
    live = g.edges["valid"] & (g.edges["hop"] <= j)
    index = edge_index(s, g.senders, g.receivers, 2, sender_schema=in_s, receiver_schema=out_s, live=live)
    table_rows = sum(in_s.num_nodes[t] * len(rels) for t, rels in sender_groups(s))
    assert int(index.chan_rows.max()) < 2 * table_rows and int(index.senders.max()) < in_s.total_nodes
    senders_type = [s.relation_src(r) for r in range(s.num_relations) for _ in range(out_s.num_edges[r])]
    lo, hi = (
        np.asarray(in_s.node_offsets)[senders_type],
        np.asarray(in_s.node_offsets)[senders_type] + np.asarray(in_s.num_nodes)[senders_type],
    )
    assert ((np.asarray(index.senders) >= lo) & (np.asarray(index.senders) < hi)).all()  # inside its own type's rows
    assert int(index.seg.max()) < num_slots(out_s)
    prefix = np.concatenate(
        [np.arange(s.edge_offsets[r], s.edge_offsets[r] + out_s.num_edges[r]) for r in range(s.num_relations)]
    )
    dead = ~np.asarray(live)[prefix]
    slots = slot_offsets(out_s)
    last = np.array(  # the last slot of each relation's block: its receiver type's padding node
        [
            slots[r] + out_s.num_nodes[out_s.relation_dst(r)] - 1
            for r in range(s.num_relations)
            for _ in range(out_s.num_edges[r])
        ]
    )
    np.testing.assert_array_equal(np.asarray(index.seg)[dead], last[dead])
    checked_dead += int(dead.sum())
  assert checked_dead > 0


def test_exact_levels_are_the_per_hop_counts_and_bounds_hold(graph):
  sampler = NeighborSampler(graph, [{"ma": 3, "md": 2, "dm": -1, "am": 4}, 2, 1])
  upper = Budget.for_sampler(sampler, 4)
  assert len(upper.levels) == 3
  for b in range(6):
    sub = sampler.sample(np.random.default_rng(b).choice(30, 4, replace=False), batch_rng(0, 0, b))
    lc = level_counts(graph.schema, sub, 3)
    exact = Budget.exact(graph.schema, sub, levels=3)
    assert exact.levels == tuple((tuple(n + 1 for n in ln), le) for ln, le in lc)
    assert lc[-1][1] == sub.edge_counts(graph.schema.relations)  # the last level holds every sampled edge
    assert upper.fits_subgraph(graph.schema, sub) and exact.fits_subgraph(graph.schema, sub)
  ladder = geometric_ladder(upper, num_buckets=3)
  assert all(len(r.levels) == 3 for r in ladder.rungs)


def test_level_errors_are_one_line(graph, batch):
  sub, padded = batch
  exact = padded["exact"].budget
  (n0, e0), rest = exact.levels[0], exact.levels[1:]
  tight = dataclasses.replace(exact, levels=(((n0[0] - 1,) + n0[1:], e0),) + rest)  # no movie padding slot
  with pytest.raises(ValueError, match=r"^budget\.levels\[0\]\.nodes\['movie'\]=.*hop 0.*Fix:") as e:
    check_fits(graph.schema, sub, tight)
  assert "\n" not in str(e.value)
  assert not tight.fits_subgraph(graph.schema, sub)
  with pytest.raises(ValueError, match=r"^Budget\.levels\[0\]=.* at most levels\[1\]'s .*Fix:"):
    Budget(exact.nodes, exact.edges, (exact.levels[1], exact.levels[0], exact.levels[2]))  # not nested
  hgt_sub = HGTSampler(graph, 3, 2).sample(TARGETS, batch_rng(0, 0, 0))
  with pytest.raises(ValueError, match=r"^budget\.levels: .*HGSampling.*Fix:"):
    check_fits(graph.schema, hgt_sub, Budget.exact(graph.schema, hgt_sub).maximum(exact))
  two_hops = Budget.exact(graph.schema, sub, levels=2)
  with pytest.raises(ValueError, match=r"^Budget: cannot combine budgets with 3 and 2 levels.*Fix:"):
    exact.maximum(two_hops)
  assert exact.maximum(exact.without_levels()).levels == exact.levels  # one side without levels keeps the other's


# --- the model --------------------------------------------------------------------------------

MODELS = [(n, {}) for n in MODEL_NAMES if n not in LOSS_ONLY_ABLATIONS] + [("hgnn_ima-nei", {"nei_mode": "target"})]


def _variables(model, q, seed):
  """Random variables with the init's tree, every leaf off its init (model_fixtures.random_variables): no eager init,
  which dispatches (and compiles) the whole forward op by op."""
  shapes = jax.eval_shape(lambda k, g: model.init(k, g, train=False), jax.random.PRNGKey(0), q.graph)
  return jax.tree.map(jnp.asarray, random_variables(shapes, seed=seed, dtype=np.float32))


def test_loss_only_ablations_build_hgnn_imas_model(batch):
  """What lets the model tests below skip -L_att and -L_ind."""
  plain = batch[1]["plain"]
  for name in LOSS_ONLY_ABLATIONS:
    assert train.create_model(_config(name), plain.schema) == train.create_model(_config("hgnn_ima"), plain.schema)


@pytest.mark.parametrize("name,fields", MODELS, ids=[n + ("-target" if f else "") for n, f in MODELS])
def test_trimmed_model_gives_the_untrimmed_logits_and_attention(graph, batch, name, fields):
  _, padded = batch
  c = _config(name, **fields)
  plain = padded["plain"]
  variables = _variables(train.create_model(c, plain.schema), plain, seed=3)
  ref = _apply(c, plain, variables)
  want = np.asarray(ref.logits)[plain.target_positions]
  assert np.ptp(want, axis=0).max() > 1e-3  # the targets' logits differ: the comparison means something
  for kind in ("exact", "slack"):
    p = padded[kind]
    out = _apply(c, p, variables)
    assert out.logits.shape[0] == p.budget.levels[0][0][p.schema.target_id]  # only hop 0's nodes are computed
    np.testing.assert_allclose(np.asarray(out.logits)[p.target_positions], want, atol=1e-5, rtol=0)
    # Per layer, on the edges it computes (receivers within its level), the attention of the untrimmed model.
    hop, valid = p.graph.edges["hop"], p.graph.edges["valid"]
    for k, (a, b) in enumerate(zip(out.attention, ref.attention)):
      live = valid & (hop <= K - 1 - k)
      rows = _plain_rows(plain, p, live)
      for key in ("alpha", "beta", "lambda", "beta2"):
        if b.get(key) is None:
          continue
        np.testing.assert_allclose(np.asarray(a[key])[live], np.asarray(b[key])[rows], atol=1e-5, rtol=0)
  # The slack budget's prefixes hold edges the layer must not use: without the live mask the check fails.
  p = padded["slack"]
  hop, valid = p.graph.edges["hop"], p.graph.edges["valid"]
  lv = p.schema.levels[0][1]
  prefix = np.concatenate(
      [np.arange(p.schema.edge_offsets[r], p.schema.edge_offsets[r] + lv[r]) for r in range(p.schema.num_relations)]
  )
  assert (~(valid & (hop <= 0)))[prefix].any()


def _plain_rows(plain, p, live):
  """For the live edges of padded graph p, their rows in the plain padded graph (same sub-graph, other budget)."""
  out = []
  for ri in range(plain.schema.num_relations):
    name = plain.schema.relations[ri].name
    where = {int(e): plain.schema.edge_offsets[ri] + i for i, e in enumerate(plain.edge_ids[name])}
    sl = p.schema.edge_slice(ri)
    n = len(p.edge_ids[name])
    ids = p.edge_ids[name][live[sl][:n].nonzero()[0]]
    out += [where[int(e)] for e in ids]
  return np.array(out, np.int64)


def test_trimmed_gradients_and_attention_loss_equal_the_untrimmed_on_the_computed_edges(graph, batch):
  _, padded = batch
  c = _config("hgnn_ima", dropout=0.0, fusion_input_dropout=0.0, fusion_score_dropout=0.0, input_batch_norm=True)
  plain, p = padded["plain"], padded["slack"]
  model_plain, model_trim = train.create_model(c, plain.schema), train.create_model(c, p.schema)
  variables = _variables(model_plain, plain, seed=5)

  def loss(model, q, att_weight):
    def fn(params):
      out, _ = model.apply(
          {**variables, "params": params}, q.graph, train=True, return_attention=True, mutable=["batch_stats"]
      )
      return objective(out, q.labels, q.mask, ind_loss=True, att_weight=att_weight)[0], out

    return jax.jit(jax.value_and_grad(fn, has_aux=True))(variables["params"])

  (l_plain, out_plain), g_plain = loss(model_plain, plain, 0.0)
  (l_trim, out_trim), g_trim = loss(model_trim, p, 0.0)
  assert float(l_trim) == pytest.approx(float(l_plain), rel=1e-5)
  flat_p, flat_t = jax.tree.leaves_with_path(g_plain), jax.tree.leaves(g_trim)
  assert sum(float(jnp.abs(x).sum()) for _, x in flat_p) > 0
  for (path, a), b in zip(flat_p, flat_t):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-5, rtol=1e-4, err_msg=jax.tree_util.keystr(path))

  # L_att of the trimmed model = Eq. 7 over the untrimmed model's λ on each layer's computed edges only.
  hop, valid = p.graph.edges["hop"], p.graph.edges["valid"]
  layers = []
  for k, b in enumerate(out_plain.attention):
    live = valid & (hop <= K - 1 - k)
    lam = np.zeros(np.asarray(out_trim.attention[k]["lambda"]).shape, np.float32)
    lam[live] = np.asarray(b["lambda"])[_plain_rows(plain, p, live)]
    layers.append({"lambda": jnp.asarray(lam), "valid": jnp.asarray(live)})
  want = attention_loss(p.schema, jax.tree.map(jnp.asarray, p.graph), layers, "code_mean")
  assert float(out_trim.att_loss) == pytest.approx(float(want), rel=1e-5)
  assert abs(float(out_trim.att_loss) - float(out_plain.att_loss)) > 1e-4  # other edges: another L_att
  # The sufficient statistics (batch.parts) give the same objective.
  stats = objective_stats(
      p.schema, p.graph, out_trim, p.labels, p.mask, ind_loss=True, norm="code_mean", learns_lambda=True
  )
  lt = objective_from_stats(stats, att_weight=1.0, num_modalities=p.schema.num_modalities, norm="code_mean")[0]
  assert float(lt) == pytest.approx(float(objective(out_trim, p.labels, p.mask, ind_loss=True, att_weight=1.0)[0]))


# --- training ---------------------------------------------------------------------------------


def test_training_with_and_without_trimming_agrees(tmp_path):
  """Without dropout and L_att, trimming changes no gradient: the two runs train identically; both have levels or not."""
  base = {"seeds": (0,), "num_epochs": 3, "batch.mode": "neighbor", "batch.size": 16, "batch.fanouts": (3, 2)}
  c_on = with_overrides(test_config.get_config(), **base, **EXACT)
  c_off = with_overrides(test_config.get_config(), **base, **EXACT, **{"batch.trim": False})
  data = load_for_config(c_on)
  on = minibatch.BatchSource(data, minibatch.BatchSettings.from_config(train.resolve_config(c_on)))
  off = minibatch.BatchSource(data, minibatch.BatchSettings.from_config(train.resolve_config(c_off)))
  assert all(len(r.levels) == 2 for r in on.ladder.rungs) and not any(r.levels for r in off.ladder.rungs)
  runs = {}
  for name, c in (("on", c_on), ("off", c_off)):
    wd = tmp_path / name
    runs[name] = train.train_and_evaluate(c, str(wd), data, on_history=history_writer(str(wd)), progress=False)
  h_on, h_off = (json.load(open(tmp_path / n / "history.json")) for n in ("on", "off"))
  assert len(h_on) == len(h_off) == 3
  for a, b in zip(h_on, h_off):
    for k in ("train_ce", "val_loss", "val_macro_f1"):
      assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), (k, a, b)
  assert h_on[-1]["train_ce"] < h_on[0]["train_ce"]
  assert runs["on"]["per_seed"][0]["test_macro_f1"] == pytest.approx(runs["off"]["per_seed"][0]["test_macro_f1"])
