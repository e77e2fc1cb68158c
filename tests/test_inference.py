"""Exact layer-wise inference (`hgnn_ima_jax.inference`) equals the full-batch eval-mode forward.

For every model name (HGNN-IMA, each Table 4 ablation, hgt, hgt_early, hgt_late; -L_att and -L_ind build
hgnn_ima's module) and chunk sizes 1, 3 and ≥ N (3 for every model, 1 and ≥ N for each kind of encoder),
on small DOUBAN-like graphs with an empty relation and receivers of zero in-degree, with random (not init) variables and BatchNorm on running statistics: logits, modality logits, fused
embeddings, fusion weights and L_att equal `model.apply(variables, graph, train=False)`'s (fp32, 1e-4);
each of the three programs is traced once for all chunks and layers; in float64 they agree to 1e-12; a
node whose in-degree is larger than the default edge budget still fits; chunks have the `to_graphs_tuple`
layout and feed `model.apply`; new unconnected nodes change no old prediction; a graph of another
schema is refused with one line; dropping one in-edge per chunk is detected (the comparisons can fail).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jraph
import numpy as np
import pytest
from model_fixtures import LOSS_ONLY_ABLATIONS, fast_jit, make_graph, random_variables

from hgnn_ima_jax import DatasetError, chunks, inference, models
from hgnn_ima_jax.choices import MODEL_NAMES

BN = dict(hidden=8, heads=2, num_layers=2, projection="per_channel", input_batch_norm=True)
TOL = dict(rtol=1e-4, atol=1e-4)


@functools.lru_cache(maxsize=None)
def graph(num_modalities=2, widths="mixed"):
  return make_graph(num_modalities, widths=widths)


def built(name, data, seed=0, **fields):
  """(model, random float32 variables with the init's tree, full-batch eval output with embeddings)."""
  gt = data.to_graphs_tuple()
  model = models.build_model(name, data.schema, **{**BN, **fields})
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), gt))
  variables = random_variables(shapes, seed, np.float32)
  return model, variables, model.apply(variables, gt, train=False, return_embeddings=True)


def chunk_graphs_tuple(data, budgets, chunk, dtype=np.float32):
  """A chunk's sub-graph as a `GraphsTuple` of `chunk_schema` with its features, `nodes['valid']` and `edges['valid']`.

  The layer-wise programs do not build it (they read node states, not features); the tests do, to check that a
  chunk has the `to_graphs_tuple` layout and is all `model.apply` needs for its receivers.
  """
  s = data.schema
  n_total = sum(budgets.nodes)
  offs = np.concatenate([[0], np.cumsum(budgets.nodes)[:-1]])
  valid = np.zeros(n_total, bool)
  features, present = {}, {}
  for mi, m in enumerate(s.modalities):
    x, p = np.zeros((n_total, s.max_feature_dim(mi)), dtype), np.zeros(n_total, bool)
    for t, tname in enumerate(s.node_types):
      rows = chunk.hs_rows[t]
      x[offs[t] : offs[t] + len(rows), : s.feature_dims[t][mi]] = data.features[tname][m][rows]
      p[offs[t] : offs[t] + budgets.nodes[t]] = s.present[t][mi]
      valid[offs[t] : offs[t] + len(rows)] = True
    features[m], present[m] = x, p
  node_type = np.repeat(np.arange(s.num_node_types, dtype=np.int32), budgets.nodes)
  edge_type = np.repeat(np.arange(s.num_relations, dtype=np.int32), budgets.edges)
  return jraph.GraphsTuple(
      nodes={"type": node_type, "features": features, "present": present, "valid": valid},
      edges={"type": edge_type, "valid": chunk.edge_valid},
      senders=chunk.senders,
      receivers=chunk.receivers,
      n_node=np.array([n_total], np.int32),
      n_edge=np.array([len(chunk.senders)], np.int32),
      globals=None,
  )


def assert_equal_outputs(res, full):
  np.testing.assert_allclose(res.logits, full.logits, **TOL)
  np.testing.assert_allclose(res.modality_logits, full.modality_logits, **TOL)
  np.testing.assert_allclose(res.fused, full.embeddings["fused"], **TOL)
  np.testing.assert_allclose(res.fusion_weights, full.embeddings["fusion_weights"], **TOL)
  np.testing.assert_allclose(res.att_loss, float(full.att_loss), rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(res.predictions, np.argmax(np.asarray(full.logits), -1))


def test_fixture_graph_has_an_empty_relation_and_receivers_without_in_edges():
  s, data = graph().schema, graph()
  assert 0 in s.num_edges
  in_edges = chunks.InEdges(data)
  assert any(np.any(np.diff(ip) == 0) for ip, n in zip(in_edges.indptr, s.num_edges) if n)


# The chunk sizes 1 and >= N (one receiver per chunk; one chunk per layer) test the chunking, which reads of a model
# only its encoders (`inference.encoders_of`): run for each kind of encoder (HGNN-IMA's, HGT's, HGT-late's one per
# modality); every model runs with several chunks of 3 receivers.
EVERY_CHUNK_SIZE = ("hgnn_ima", "hgt", "hgt_late")


def test_loss_only_ablations_build_hgnn_imas_module():
  """What lets the layer-wise test below skip -L_att and -L_ind: they build the very module hgnn_ima does."""
  for name in LOSS_ONLY_ABLATIONS:
    assert models.build_model(name, graph().schema, **BN) == models.build_model("hgnn_ima", graph().schema, **BN)


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n not in LOSS_ONLY_ABLATIONS])
def test_layerwise_equals_full_batch_for_every_model(name):
  data = graph()
  n = data.schema.total_nodes
  model, variables, full = built(name, data)
  for chunk_size in (1, 3, n) if name in EVERY_CHUNK_SIZE else (3,):
    engine = inference.LayerwiseInference(model, variables, data, chunk_size=chunk_size, jit=fast_jit)
    res = engine.run(data)
    assert_equal_outputs(res, full)
    assert dict(engine.traces) == {"project": 1, "layer": 1, "head": 1}  # one trace for all chunks and layers
    assert min(engine.last_stats["chunks"]) > 1 if chunk_size < n else engine.last_stats["chunks"] == [1, 1]
  if name in ("hgnn_ima", "hgnn_ima+inf", "hgnn_ima-nei", "hgnn_ima-align"):
    assert res.att_loss > 0  # the L_att comparison is not vacuous


@pytest.mark.parametrize(
    "case",
    [
        ("hgnn_ima", 2, "equal", dict(projection="shared", input_batch_norm=False, latt_norm="paper_sum")),
        ("hgnn_ima+inf", 3, "mixed", dict(heads=4)),
        ("hgnn_ima-nei", 2, "mixed", dict(nei_mode="target", update_form="paper")),
        ("hgt_early", 3, "mixed", {}),
        # no layer (depth_sweep's K=0): L_att is 0 as in the full-batch forward, with either norm (it was NaN, and
        # the val loss of a mini-batch run with it, which early stopping and selection then compared)
        ("hgnn_ima", 2, "mixed", dict(num_layers=0)),
        ("hgnn_ima", 2, "mixed", dict(num_layers=0, latt_norm="paper_sum")),
    ],
    ids=lambda c: c[0] + "-" + "-".join(f"{v}" for v in c[3].values()),
)
def test_layerwise_equals_full_batch_other_settings(case):
  """paper_sum L_att and the shared projection; three modalities; -nei from the receiver alone; early fusion; no
  layer."""
  name, num_modalities, widths, fields = case
  data = graph(num_modalities, widths)
  model, variables, full = built(name, data, seed=1, **fields)
  res = inference.LayerwiseInference(model, variables, data, chunk_size=3, jit=fast_jit).run(data)
  assert_equal_outputs(res, full)


def test_node_states_and_skipping_att_loss():
  data = graph()
  model, variables, full = built("hgnn_ima", data)
  engine = inference.LayerwiseInference(model, variables, data, chunk_size=4, jit=fast_jit)
  res = engine.run(data, return_node_states=True)
  np.testing.assert_allclose(np.concatenate(res.node_states), full.embeddings["nodes"], **TOL)
  quick = engine.run(data, compute_att_loss=False)  # the last layer visits the target nodes only
  assert quick.att_loss is None
  np.testing.assert_allclose(quick.logits, full.logits, **TOL)
  assert dict(engine.traces) == {"project": 1, "layer": 1, "head": 1}  # same budgets: no new trace


def test_chunks_are_many_and_hold_their_budgets():
  data = graph()
  s, in_edges = data.schema, chunks.InEdges(data)
  budgets = chunks.compute_budgets(s, in_edges, 3)
  planned = list(chunks.plan_chunks(s, in_edges, budgets, range(s.num_node_types)))
  assert len(planned) >= s.total_nodes // 3
  seen = np.concatenate([np.arange(a, b) + s.node_offsets[t] for c in planned for t, a, b in c])
  np.testing.assert_array_equal(np.sort(seen), np.arange(s.total_nodes))  # every node is a receiver once
  for ranges in planned:
    c = chunks.build_chunk(s, in_edges, budgets, ranges)
    assert all(b - a <= budgets.receivers[t] for t, a, b in ranges) and sum(b - a for _, a, b in ranges) <= 3
    assert all(len(rows) < nb for rows, nb in zip(c.hs_rows, budgets.nodes))  # the padding slot stays free
    receivers = c.receivers.astype(np.int64)
    for r in range(s.num_relations):  # layout: receivers sorted inside each relation's edge block
      sl = slice(sum(budgets.edges[:r]), sum(budgets.edges[: r + 1]))
      assert np.all(np.diff(receivers[sl]) >= 0)
    assert c.edge_valid.sum() == sum(
        in_edges.indptr[r][b] - in_edges.indptr[r][a]
        for r in range(s.num_relations)
        for t, a, b in ranges
        if s.relation_dst(r) == t
    )


def test_a_truncated_in_neighbourhood_is_detected(monkeypatch):
  """Dropping one real in-edge per chunk (a sampled, not full, neighbourhood) moves the logits: the tests can fail."""
  data = graph()
  model, variables, full = built("hgnn_ima", data)
  original = inference.build_chunk

  def drop_first_edge(schema, in_edges, budgets, ranges):
    c = original(schema, in_edges, budgets, ranges)
    valid = np.flatnonzero(c.edge_valid)
    if len(valid):
      e = valid[0]
      c.senders[e], c.receivers[e] = c.senders[-1], c.receivers[-1]  # re-route it to a padding slot
      c.edge_valid[e] = False
    return c

  monkeypatch.setattr(inference, "build_chunk", drop_first_edge)
  res = inference.LayerwiseInference(model, variables, data, chunk_size=3, jit=fast_jit).run(data)
  assert np.max(np.abs(res.logits - np.asarray(full.logits))) > 1e-3


def hub_graph():
  """The fixture graph with one movie receiving an edge from every actor (in-degree 12 on 'am')."""
  data = graph()
  am = np.asarray(data.edges["am"])
  hub = np.stack([np.arange(data.num_nodes["actor"]), np.zeros(data.num_nodes["actor"], np.int64)], 1)
  am = np.unique(np.concatenate([am, hub]), axis=0)
  return dataclasses.replace(data, edges={**data.edges, "am": am}).validate()


def test_a_node_with_a_huge_in_degree_fits():
  data = hub_graph()
  s, in_edges = data.schema, chunks.InEdges(data)
  r = [rel.name for rel in s.relations].index("am")
  share = chunks.receiver_shares(s.num_nodes, 1)[s.relation_dst(r)]
  default = int(np.ceil(chunks.EDGE_SLACK * share * s.num_edges[r] / s.num_nodes[s.relation_dst(r)]))
  assert in_edges.max_in_degree[r] > default  # larger than the chunk's default budget
  model, variables, full = built("hgnn_ima", data)
  engine = inference.LayerwiseInference(model, variables, data, chunk_size=1, jit=fast_jit)
  assert_equal_outputs(engine.run(data), full)
  assert engine.last_budgets.edges[r] == in_edges.max_in_degree[r]
  with pytest.raises(ValueError, match=r"edge_budget\['am'\]=2 is below .* in-degree 12"):
    inference.LayerwiseInference(model, variables, data, chunk_size=1, edge_budget={"am": 2}).run(data)
  # refused before any work: a relation the graph does not have (it was ignored), a value that is no count
  for budget, problem in (
      ({"AM": 64}, r"edge_budget names no relation of the graph: AM\. Fix: key it by"),
      ({"am": "64"}, r"edge_budget\['am'\]='64': must be an integer >= 1"),
      (0, r"edge_budget=0: must be an integer >= 1"),
  ):
    with pytest.raises(ValueError, match=rf"^{problem}"):
      inference.LayerwiseInference(model, variables, data, chunk_size=1, edge_budget=budget)
  with pytest.raises(ValueError, match=r"^dtype=float64: needs JAX's 64-bit mode"):  # it computed in float32
    inference.LayerwiseInference(model, variables, data, chunk_size=1, dtype=np.float64)


def test_bad_inputs_are_refused_with_one_line():
  data = graph()
  model, variables, _ = built("hgnn_ima", data)
  for bad in (0, -1, 2.5, True):
    with pytest.raises(ValueError, match=f"chunk_size={bad!r}: must be an integer >= 1"):
      inference.LayerwiseInference(model, variables, data, chunk_size=bad)
  engine = inference.LayerwiseInference(model, variables, chunk_size=4)
  other = {
      "feature width of movie/text 9 (model: 7)": dataclasses.replace(
          data, features={**data.features, "movie": {**data.features["movie"], "text": np.zeros((9, 9), np.float32)}}
      ),
      "relations": dataclasses.replace(
          data, relations=data.relations[:3], edges={k: v for k, v in data.edges.items() if k != "am"}
      ),
      "modalities ['text'] (model: ['text', 'image'])": dataclasses.replace(
          data,
          modalities=("text",),
          node_modalities={t: ("text",) for t in data.node_types},
          features={t: {"text": f["text"]} for t, f in data.features.items()},
      ),
      "num_classes 5 (model: 3)": dataclasses.replace(data, num_classes=5),
  }
  for what, g in other.items():
    with pytest.raises(DatasetError) as err:
      engine.run(g)
    msg = str(err.value)
    assert "\n" not in msg and what in msg and "Fix:" in msg, msg
  smaller = make_graph(2, widths="mixed", num_nodes=(5, 4, 7), seed=3)  # other sizes are fine
  res = engine.run(smaller)
  assert res.logits.shape == (5, 3)


def test_module_docstring_example_runs():
  doc = inference.__doc__
  code = "\n".join(line[2:] for line in doc[doc.index("Example") :].splitlines()[1:])
  scope = {}
  exec(compile(code, "inference.__doc__", "exec"), scope)  # pylint: disable=exec-used
  res, model, data = scope["result"], scope["model"], scope["data"]
  full = fast_jit(model.apply)(scope["variables"], data.to_graphs_tuple())  # compiled: faster than op by op
  np.testing.assert_allclose(res.logits, full.logits, **TOL)
  np.testing.assert_allclose(res.att_loss, float(full.att_loss), rtol=1e-4)


def test_chunk_sub_graphs_have_the_graphs_tuple_layout():
  """Each padded chunk passes the model's layout check for its budget schema, and its masks mark the real part."""
  from hgnn_ima_jax.layout import check_graph_layout  # pylint: disable=import-outside-toplevel

  data = hub_graph()
  s, in_edges = data.schema, chunks.InEdges(data)
  budgets = chunks.compute_budgets(s, in_edges, 4)
  cs = chunks.chunk_schema(s, budgets)
  for ranges in chunks.plan_chunks(s, in_edges, budgets, range(s.num_node_types)):
    c = chunks.build_chunk(s, in_edges, budgets, ranges)
    gt = chunk_graphs_tuple(data, budgets, c)
    check_graph_layout(cs, gt)
    valid = gt.nodes["valid"]
    assert np.all(valid[gt.senders[gt.edges["valid"]]]) and np.all(valid[gt.receivers[gt.edges["valid"]]])
    assert not np.any(valid[gt.senders[~gt.edges["valid"]]]) and not np.any(valid[gt.receivers[~gt.edges["valid"]]])


def test_a_chunk_graphs_tuple_through_model_apply_gives_its_receivers_outputs():
  """With one layer, a chunk's sub-graph is all its target receivers need: `model.apply` on it (a model of the chunk
  schema, the same variables) gives their full-batch logits."""
  data = graph()
  s, in_edges = data.schema, chunks.InEdges(data)
  model, variables, full = built("hgnn_ima", data, num_layers=1)
  budgets = chunks.compute_budgets(s, in_edges, 6)
  chunk_model = models.build_model("hgnn_ima", chunks.chunk_schema(s, budgets), **{**BN, "num_layers": 1})
  apply = fast_jit(lambda v, g: chunk_model.apply(v, g, train=False))
  for ranges in list(chunks.plan_chunks(s, in_edges, budgets, range(s.num_node_types)))[:2]:
    c = chunks.build_chunk(s, in_edges, budgets, ranges)
    out = apply(variables, chunk_graphs_tuple(data, budgets, c))
    ((t, a, b),) = [rg for rg in ranges if rg[0] == s.target_id]
    rows = np.searchsorted(c.hs_rows[t], np.arange(a, b))
    np.testing.assert_allclose(np.asarray(out.logits)[rows], np.asarray(full.logits)[a:b], **TOL)


def test_new_unconnected_nodes_leave_the_old_predictions_unchanged():
  """A graph of the same schema with new movies and actors linked only among themselves (other sizes, other budgets)."""
  data = graph()
  rng = np.random.default_rng(5)
  num_nodes = {**data.num_nodes, "movie": data.num_nodes["movie"] + 2, "actor": data.num_nodes["actor"] + 1}
  features = {
      t: {
          m: np.concatenate(
              [
                  x,
                  rng.normal(size=(num_nodes[t] - len(x), x.shape[1])).astype(np.float32)
                  * (m in data.node_modalities[t]),
              ]
          )
          for m, x in f.items()
      }
      for t, f in data.features.items()
  }
  new_movies, new_actor = np.arange(data.num_nodes["movie"], num_nodes["movie"]), num_nodes["actor"] - 1
  edges = {
      **data.edges,
      "ma": np.concatenate([data.edges["ma"], [[new_movies[0], new_actor]]]),
      "am": np.concatenate([data.edges["am"], [[new_actor, new_movies[0]], [new_actor, new_movies[1]]]]),
  }
  bigger = dataclasses.replace(
      data, num_nodes=num_nodes, features=features, edges=edges, labels=np.concatenate([data.labels, [0, 1]])
  ).validate()
  model, variables, full = built("hgnn_ima", data)
  engine = inference.LayerwiseInference(model, variables, chunk_size=3, jit=fast_jit)
  old, new = engine.run(data), engine.run(bigger)
  np.testing.assert_allclose(new.logits[: data.num_nodes["movie"]], old.logits, **TOL)
  np.testing.assert_allclose(old.logits, full.logits, **TOL)
  assert new.logits.shape == (data.num_nodes["movie"] + 2, 3)


def test_float64_agrees_to_rounding():
  """In float64 the layer-wise forward is the full-batch one to 1e-12: exact, not approximately equal."""
  data = graph()
  with jax.enable_x64(True):
    gt = data.to_graphs_tuple(np.float64)
    model = models.build_model("hgnn_ima", data.schema, **BN)
    variables = random_variables(jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), gt)), 2)
    full = fast_jit(lambda v, g: model.apply(v, g, train=False))(variables, gt)  # compiled: faster than op by op
    res = inference.LayerwiseInference(model, variables, chunk_size=3, dtype=np.float64, jit=fast_jit).run(data)
  assert res.logits.dtype == np.float64
  np.testing.assert_allclose(res.logits, full.logits, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(res.att_loss, float(full.att_loss), rtol=1e-12)


def test_the_automatic_chunk_size_is_the_largest_within_the_memory_bound(monkeypatch):
  data = graph()
  model, variables, full = built("hgnn_ima", data)
  total = sum(data.schema.num_nodes)
  sizes = [2**i for i in range(1, total.bit_length() + 1)]  # the last one holds every node
  need = {c: inference.chunk_program_bytes(model, variables, data, c) for c in sizes}
  assert need[sizes[-1]] > need[2] > 0
  # the choices below read these compiled sizes instead of compiling each size again
  monkeypatch.setattr(inference, "chunk_program_bytes", lambda m, v, d, c, in_edges=None: need[c])
  pick = functools.partial(inference.largest_chunk_within, model, variables, data, start=2)

  def paid(c, gain):  # each doubling up to c cut chunks x bytes by `gain`
    return all(need[2 * s] <= 2 * (1 - gain) * need[s] for s in sizes if s < c)

  for gain in (0.0, 0.1):
    for bound in (need[8], need[sizes[-1]]):
      c = pick(bound, min_gain=gain)
      assert need[c] <= bound and paid(c, gain)
      assert c == sizes[-1] or need[2 * c] > bound or not paid(2 * c, gain)  # the largest such size
  assert pick(need[sizes[-1]], min_gain=0.0) == sizes[-1] and pick(need[8], min_gain=0.0) >= 8
  assert pick(0) == 2 and pick(need[sizes[-1]], min_gain=1.0) == 2  # `start` is the floor
  # at least as many chunks per layer as asked for (one per device in mini-batch evaluation)
  c = pick(need[sizes[-1]], min_gain=0.0, min_chunks=3)
  assert -(-total // c) >= 3 > -(-total // (2 * c))
  assert_equal_outputs(inference.layerwise_predict(model, variables, data, chunk_size=c), full)
