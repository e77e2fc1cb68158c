"""Mini-batch training (config.batch.mode = neighbor | hgt) against the full-batch path, and its own guarantees."""

from __future__ import annotations

import ast
import dataclasses
import json
import re

import jax
import numpy as np
import pytest
from data_helpers import EXACT, with_overrides

from hgnn_ima_jax import config_validation as cv
from hgnn_ima_jax import minibatch, optim, state, steps, train
from hgnn_ima_jax.data_utils import load_for_config
from hgnn_ima_jax.experiments.configs import test as test_config
from hgnn_ima_jax.experiments.outputs import history_writer


def config(**overrides):
  return with_overrides(test_config.get_config(), **{"seeds": (0,), "num_epochs": 3, **overrides})


def fit(c, workdir, data, **kw):
  return train.train_and_evaluate(c, str(workdir), data, on_history=history_writer(str(workdir)), progress=False, **kw)


def history(workdir):
  return json.load(open(f"{workdir}/history.json"))


@pytest.fixture(scope="module")
def data():
  return load_for_config(config())


def test_one_full_fanout_batch_trains_exactly_as_full_batch(data, tmp_path):
  full = fit(config(**EXACT), tmp_path / "full", data)
  n_train = len(data.splits["train"])
  mb = fit(
      config(
          **EXACT, **{"batch.mode": "neighbor", "batch.size": n_train, "batch.fanouts": (-1, -1), "batch.buckets": 1}
      ),
      tmp_path / "mb",
      data,
  )
  hf, hm = history(tmp_path / "full"), history(tmp_path / "mb")
  assert len(hf) == len(hm) == 3
  for a, b in zip(hf, hm):
    for k in ("train_ce", "val_loss", "val_macro_f1", "train_micro_f1"):
      assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), (k, a, b)
  assert mb["per_seed"][0]["test_macro_f1"] == pytest.approx(full["per_seed"][0]["test_macro_f1"], abs=1e-6)
  assert mb["per_seed"][0]["epochs_run"] == 3


def test_parameters_are_initialised_on_the_first_batchs_rung_and_equal_the_top_rungs(data):
  """init_batch pads batch 0 to the smallest rung it fits, not the upper bound (near the whole graph on a
  large one); the initial parameters cannot depend on the padded counts."""
  c = train.resolve_config(config(**{"batch.mode": "neighbor", "batch.size": 16, "batch.fanouts": (2, 2)}))
  source = minibatch.BatchSource(data, minibatch.BatchSettings.from_config(c))
  batch, rung = minibatch.init_batch(source)
  assert rung == source.ladder.rungs[0] and rung.total_nodes < source.largest.total_nodes
  assert batch.graph.nodes["valid"].shape[0] == rung.total_nodes
  tx = optim.create_optimizer(c, 1)
  programs = minibatch.StepPrograms(c, data, tx, sharded=False)
  small = state.init_state(programs.model(rung), tx, batch, [0], num_targets=len(data.labels))
  top = minibatch.device_batch(source.builder.build(source.stream.sample_batch(0, 0).subgraph, source.largest))
  big = state.init_state(programs.model(source.largest), tx, top, [0], num_targets=len(data.labels))
  leaves = jax.tree.leaves_with_path(small.params)
  assert leaves and all(
      np.array_equal(a, b) for (_, a), b in zip(leaves, jax.tree.leaves(big.params))
  ), "initial parameters differ"


def learning_config(mode, **overrides):
  """10 epochs of mini-batch training at a constant learning rate: enough to learn the tiny graph."""
  sampler = {"batch.fanouts": (8, 4)} if mode == "neighbor" else {"batch.num_samples": 24}
  fields = {"batch.mode": mode, "batch.size": 32, "optimizer.schedule": "constant", "optimizer.learning_rate": 5e-3}
  return config(**{"num_epochs": 10, **fields, **sampler, **overrides})


def learning_run(mode, workdir, data):
  """(results, history, train_step traces) of learning_config(mode)."""
  before = steps.TRACE_COUNT["train_step"]
  res = fit(learning_config(mode), workdir, data)
  return res, history(workdir), steps.TRACE_COUNT["train_step"] - before


@pytest.fixture(scope="module")
def hgt_learning_run(data, tmp_path_factory):
  """learning_config('hgt') trained once: test_minibatch_training_learns[hgt] and test_prefetch_and_sampled_eval."""
  return learning_run("hgt", tmp_path_factory.mktemp("hgt_learns"), data)


@pytest.mark.parametrize("mode", ["neighbor", "hgt"])
def test_minibatch_training_learns(data, tmp_path, mode, request):
  res, h, traces = request.getfixturevalue("hgt_learning_run") if mode == "hgt" else learning_run(mode, tmp_path, data)
  assert np.mean([r["train_ce"] for r in h[-2:]]) < 0.6 * h[0]["train_ce"]
  # the tiny graph's 21 validation nodes are too few for a stable threshold; the exact layer-wise
  # evaluation of the training nodes shows what was learnt (full batch reaches 1.0 here too)
  assert h[-1]["train_micro_f1"] >= 0.8 and res["per_seed"][0]["test_macro_f1"] > 1.0 / data.num_classes
  # several batches per epoch, one compilation per padded size at most (three rungs)
  assert 1 <= traces <= 3


def test_interrupted_and_resumed_minibatch_run_equals_an_uninterrupted_one(data, tmp_path):
  # one padded size (batch.buckets=1): one train step to compile per run; which sizes a batch is padded to is
  # test_minibatch_training_learns's (three rungs)
  neighbor = {"batch.mode": "neighbor", "batch.size": 16, "batch.buckets": 1, "seeds": (0, 1)}
  whole = fit(config(**neighbor, **{"batch.fanouts": (4, 4)}), tmp_path / "whole", data)
  # The same fanouts per relation (as PyG's per-edge-type num_neighbors): the same sampler, so the same batches,
  # and a resume reads them back from config.json.
  per_relation = {r.name: 4 for r in data.relations}
  c = config(**neighbor, **{"batch.fanouts": (per_relation,) * 2})
  # 39 training targets: 3 batches per epoch. Polls: before training, after batches 1 and 2 of epoch 1, after
  # epoch 1, after batch 1 of epoch 2 (the 5th): the run stops inside epoch 2 with one epoch finished.
  polls = iter(range(100))
  with pytest.raises(train.TrainingInterrupted) as stop:
    fit(c, tmp_path / "cut", data, should_stop=lambda: next(polls) == 4)
  assert stop.value.epoch == 1 and len(history(tmp_path / "cut")) == 2  # one epoch, two seeds
  assert str(stop.value).startswith("interrupted in epoch 2 of 3 after batch 1 of 3;")
  resumed = fit(c, tmp_path / "cut", data, resume=True)
  assert resumed["per_seed"] == whole["per_seed"]
  assert history(tmp_path / "cut") == history(tmp_path / "whole")


def test_prefetch_and_sampled_eval(data, hgt_learning_run, tmp_path):
  a = hgt_learning_run[0]  # batches prepared by the background thread (batch.prefetch's default)
  assert test_config.get_config().batch.prefetch > 0
  b = fit(learning_config("hgt", **{"batch.prefetch": 0}), tmp_path / "inline", data)
  assert a["per_seed"] == b["per_seed"]  # the background thread changes nothing
  s = fit(learning_config("hgt", num_epochs=3, **{"batch.eval": "sampled"}), tmp_path / "sampled", data)
  assert 0.0 <= s["per_seed"][0]["test_macro_f1"] <= 1.0 and history(tmp_path / "sampled")[0]["val_loss"] > 0
  # results.json says how each run evaluated: sampled metrics are estimates that exact prediction does not give
  assert (a["eval"], s["eval"]) == ("layerwise", "sampled") and "eval_chunk" in a and "eval_chunk" not in s


@pytest.mark.parametrize(
    "field,value,problem",
    [
        ("batch.mode", "cluster", "not one of"),
        ("batch.size", 0, "out of range"),
        ("batch.fanouts", (10, 0), r"hop 2 is 0 \(no in-edge of any relation: .*\); expected one entry per hop"),
        ("batch.fanouts", ("ma", "md"), r"hop 1 is 'ma'.*per relation"),  # a dict flag without its tuple
        ("batch.fanouts", ({"ma": 2, "md": -2},), r"hop 1 gives 'md': -2"),
        ("batch.num_samples", None, r"is not an int >= 1 or a dict"),  # typed object: None got through
        ("batch.eval", "fast", "not one of"),
    ],
)
def test_bad_batch_settings_are_one_line_errors(field, value, problem):
  with pytest.raises(cv.ConfigError, match=rf"^config\.{field}=.*{problem}"):
    cv.validate_config(config(**{field: value}))


def test_eval_chunk_is_refused_with_sampled_evaluation():
  """From an audit: --config.batch.eval_chunk with batch.eval=sampled trained (it sizes layer-wise chunks only),
  though a batch field that is not read is refused; with layer-wise evaluation it is read."""
  neighbor = {"batch.mode": "neighbor", "batch.size": 16}
  sampled = config(**neighbor, **{"batch.eval": "sampled", "batch.eval_chunk": 1024})
  with pytest.raises(cv.ConfigError, match=r"^config\.batch\.eval_chunk=1024: is not read with batch\.eval=sampled"):
    cv.validate_config(sampled)
  cv.validate_config(config(**neighbor, **{"batch.eval_chunk": 1024}))


@pytest.mark.parametrize("layers", [3, 2, 4])
def test_bad_fanouts_fix_has_one_hop_per_layer(layers):
  """From an audit: the fix for a bad fanouts value gave 2-hop examples (and a dict naming 2 relations), which a
  3-layer model refused in turn; its examples have one hop per layer of the config being checked."""
  neighbor = {"batch.mode": "neighbor", "batch.size": 16, "model.num_layers": layers}
  for check in (cv.validate_config, cv.check_fanouts_per_layer):
    with pytest.raises(cv.ConfigError) as e:
      check(config(**neighbor, **{"batch.fanouts": ("ma", "md", "dm", "am")}))
    message = str(e.value)
    assert "\n" not in message
    numbers = re.search(r"e\.g\. --config\.batch\.fanouts=(\S+) ", message).group(1)
    assert numbers == ",".join(["10"] * layers)
    per_relation = re.search(r'--config\.batch\.fanouts="(\(.*\))"', message).group(1)
    assert len(ast.literal_eval(per_relation)) == layers and "naming every relation" in message
    cv.check_fanouts_per_layer(config(**neighbor, **{"batch.fanouts": tuple(int(n) for n in numbers.split(","))}))


def test_fanouts_give_one_hop_per_layer():
  """From an audit: --config.batch.fanouts=-1 (meant as 'all') sampled one hop for a 3-layer model, and extra hops,
  which no layer reads, grew every batch ~4x; both were accepted without a word."""
  neighbor = {"batch.mode": "neighbor", "batch.size": 16, "model.num_layers": 3}
  with pytest.raises(
      cv.ConfigError,
      match=r"^config\.batch\.fanouts=\(-1,\): samples 1 hop\(s\) for model.num_layers=3: "
      r"the in-edges of the last 2 layer\(s\) would never be sampled.*fanouts=-1,-1,-1$",
  ):
    cv.check_fanouts_per_layer(config(**neighbor, **{"batch.fanouts": (-1,)}))
  with pytest.raises(cv.ConfigError, match=r"no layer reads hops 4-5"):
    cv.check_fanouts_per_layer(config(**neighbor, **{"batch.fanouts": (3, 3, 3, 3, 3)}))
  with pytest.raises(cv.ConfigError, match=r"hop 1 is 'ma'; .*Fix: .*per relation, the tuple of one dict per layer"):
    # a dict flag without its tuple arrives as its keys: its own message, not "give one of its keys per layer"
    cv.check_fanouts_per_layer(config(**neighbor, **{"batch.fanouts": ("ma", "md", "dm", "am")}))
  cv.check_fanouts_per_layer(config(**neighbor, **{"batch.fanouts": (3, 3, 3)}))
  cv.check_fanouts_per_layer(config(**neighbor, **{"batch.fanouts": ()}))  # empty: 10 per layer
  # a run saved before the rule still validates (it resumes), and a depth sweep fits one value to each K
  cv.validate_config(config(**neighbor, **{"batch.fanouts": (-1,)}))
  from hgnn_ima_jax.experiments import depth_sweep, run_options

  sweep = run_options.Options(overrides={"batch.mode": "neighbor", "batch.size": 16, "batch.fanouts": (5,)})
  assert [depth_sweep._fanouts_for("synthetic", k, sweep) for k in (0, 1, 3)] == [{}, {}, {"batch.fanouts": (5, 5, 5)}]
  mixed = dataclasses.replace(sweep, overrides={**sweep.overrides, "batch.fanouts": (5, 3)})
  assert depth_sweep._fanouts_for("synthetic", 3, mixed) == {}  # per-hop values: the cell's check refuses them


def test_per_relation_fanouts_and_drop_last_are_checked_against_the_graph(data):
  """Per-relation fanouts name exactly the graph's relations, and drop_last leaves a batch: both one-line errors
  before anything is written (they were errors from inside the sampler, after the run directory was made)."""
  names = [r.name for r in data.relations]
  n_train = len(data.splits["train"])
  hop = {n: 3 for n in names}
  ok = config(**{"batch.mode": "neighbor", "batch.size": 16, "batch.fanouts": (hop, {**hop, names[0]: 0})})
  cv.validate_config(ok)
  cv.check_batch_for_graph(ok, data)
  settings = minibatch.BatchSettings.from_config(ok)
  source = minibatch.BatchSource(data, settings)
  assert source.sampler.fanouts == ((3,) * len(names), (0,) + (3,) * (len(names) - 1))
  assert json.loads(json.dumps(settings.sampler_meta()))["fanouts"][1][names[0]] == 0
  typo = config(**{"batch.mode": "neighbor", "batch.size": 16, "batch.fanouts": ({**hop, "mx": 1}, hop)})
  with pytest.raises(
      cv.ConfigError, match=rf"^config\.batch\.fanouts=.*hop 1 names no relation .*: mx\. Fix: .*{names[-1]}"
  ):
    cv.check_batch_for_graph(typo, data)
  short = {n: 3 for n in names[1:]}
  with pytest.raises(cv.ConfigError, match=rf"hop 2 leaves out {names[0]}\. Fix"):
    cv.check_batch_for_graph(config(**{"batch.mode": "neighbor", "batch.fanouts": (hop, short)}), data)
  example = re.escape('fanouts="(' + ", ".join([repr(hop)] * 3) + ')"')  # the first hop once per layer
  with pytest.raises(cv.ConfigError, match=rf"Fix: give one per layer, e\.g\. --config\.batch\.{example}$"):
    cv.check_fanouts_per_layer(config(**{"batch.mode": "neighbor", "model.num_layers": 3, "batch.fanouts": (hop,)}))
  # drop_last: 39 targets in batches of 16 are 2 full batches, the 7 left over wait for the next epoch's shuffle
  dropped = config(**{"batch.mode": "hgt", "batch.size": 16, "batch.drop_last": True})
  source = minibatch.BatchSource(data, minibatch.BatchSettings.from_config(dropped))
  assert n_train == 39 and source.num_batches(0) == 2
  assert all(len(source.stream.plan(e).batch(b)) == 16 for e in (0, 1) for b in (0, 1))
  with pytest.raises(cv.ConfigError, match=r"^config\.batch\.drop_last=True: leaves no batch: batch\.size=64 .* 39 "):
    cv.check_batch_for_graph(config(**{"batch.mode": "neighbor", "batch.size": 64, "batch.drop_last": True}), data)
  with pytest.raises(cv.ConfigError, match=r"^config\.batch\.drop_last=True: is not read with batch\.mode=full"):
    cv.validate_config(config(**{"batch.drop_last": True}))  # full batch reads no batch field


def test_num_samples_per_node_type(data):
  """HGTLoader's num_samples per node type, from the config as from `HGTSampler`: validated, checked against the
  graph's types, and what the sampler draws (a type not named samples none)."""
  per_type = {"movie": 6, "actor": 4}
  c = config(**{"batch.mode": "hgt", "batch.size": 16, "batch.num_samples": per_type})
  cv.validate_config(c)
  cv.check_batch_for_graph(c, data)
  source = minibatch.BatchSource(data, minibatch.BatchSettings.from_config(c))
  assert source.sampler.num_samples == {**{t: 0 for t in data.node_types}, **per_type}
  sub = source.stream.sample_batch(0, 0).subgraph
  targets = set(source.stream.plan(0).batch(0).tolist())
  assert len(sub.nodes["director"]) == 0 and 0 < len(sub.nodes["actor"]) <= 4 * source.sampler.num_iterations
  assert set(sub.nodes["movie"].tolist()) >= targets
  with pytest.raises(cv.ConfigError, match=r"^config\.batch\.num_samples=.*names no node type .*: actr\. Fix"):
    cv.check_batch_for_graph(config(**{"batch.mode": "hgt", "batch.num_samples": {"actr": 3}}), data)
  for bad, problem in [({"movie": -1}, "gives 'movie': -1"), ({"movie": 0}, "samples no node"), (0, "not an int >= 1")]:
    with pytest.raises(cv.ConfigError, match=rf"^config\.batch\.num_samples=.*{problem}"):
      cv.validate_config(config(**{"batch.mode": "hgt", "batch.num_samples": bad}))


def test_automatic_eval_chunk_stays_within_the_training_step(data, tmp_path, monkeypatch):
  """The run's choice is bounded by its own compiled step and recorded; that any chunk size gives the full-batch
  outputs is tests/test_inference.py's (every model, chunk sizes 1, 3 and >= N)."""
  from hgnn_ima_jax import evaluation, inference

  monkeypatch.setattr(evaluation, "DEFAULT_EVAL_CHUNK", 64)  # the 500-node graph fits the default in one chunk
  made, init = [], evaluation.Evaluator.__init__
  monkeypatch.setattr(evaluation.Evaluator, "__init__", lambda self, *a: (init(self, *a), made.append(self))[0])
  c = {"batch.mode": "neighbor", "batch.size": 16, "batch.fanouts": (4, 4), "batch.buckets": 1, "num_epochs": 1}
  auto = fit(config(**c), tmp_path / "auto", data)
  ev = made[-1]
  assert ev.settings.eval_chunk == 0 and ev.max_bytes > 0 and ev.chunk_size > 64 and auto["eval_chunk"] == ev.chunk_size
  variables = {"params": ev._layerwise.params, "batch_stats": ev._layerwise.batch_stats}
  assert inference.chunk_program_bytes(ev.model, variables, data, ev.chunk_size) <= ev.max_bytes
  assert ev._layerwise.last_budgets.chunk_size == ev.chunk_size  # the evaluation ran with it
