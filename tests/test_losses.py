"""The training and validation losses of every profile, against hand formulas (Eqs. 7, 16, 17; spec §2, §4).

Through the library: one epoch of `steps.make_epoch_fn` (train_step → eval_step → track) on a
small graph, from the config each dataset and protocol resolves to. The expected values are
computed here from the model's own outputs (fused logits O, per-modality logits O^m, the λ of
every layer), with the formulas the spec states per profile:

  MISS (DOUBAN/IMDB/AMAZON)  train CE(O) + L_att            val CE(O_val) + L_att (eval mode)
  FULL2/FULL3 (AMAZON-1/2)   train (CE(O) + Σ_m CE(O^m))/(1+M)   val CE(O_val)
  paper protocol             train (CE(O) + Σ_m CE(O^m))/(1+M) + L_att
  -L_att                     drops L_att from the training and validation losses; -L_ind the Σ_m CE(O^m) term
  loss.att_weight w          multiplies L_att in both

with CE the mean over labelled nodes of −log softmax(O)_y and L_att the code's mean λ mass on
a sender's missing modalities (per relation whose source lacks one, averaged over those
relations and the layers). The optimizer is SGD with rate 1, so the step's parameter change is
the gradient: it must be the gradient of the same hand formula.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from model_fixtures import fast_jit, make_graph

from hgnn_ima_jax import MMHN, Relation, losses, steps, train
from hgnn_ima_jax import state as state_lib
from hgnn_ima_jax.experiments.configs import get_config

SIZES = dict(hidden=8, heads=2, num_layers=1)


def full_graph(num_modalities, n=14, seed=0):
  """AMAZON-1/2-like: one node type (items) with every modality, two symmetric item-item relations."""
  rng = np.random.default_rng(seed)
  mods = ("text", "image", "price")[:num_modalities]
  pairs = lambda k: np.unique(rng.integers(0, n, (k, 2)), axis=0)
  a, b = pairs(30), pairs(20)
  edges = {"also_bought": np.concatenate([a, a[:, ::-1]]), "also_viewed": np.concatenate([b, b[:, ::-1]])}
  labels = np.arange(n) % 3
  return MMHN(
      name="items",
      node_types=("item",),
      num_nodes={"item": n},
      modalities=mods,
      node_modalities={"item": mods},
      relations=(Relation("item", "also_bought", "item"), Relation("item", "also_viewed", "item")),
      edges=edges,
      features={"item": {m: rng.normal(size=(n, w)).astype(np.float32) for m, w in zip(mods, (6, 5, 3))}},
      target_type="item",
      labels=labels,
      num_classes=3,
      splits={"train": np.arange(0, 6), "val": np.arange(6, 10), "test": np.arange(10, n)},
  ).validate()


def ce(logits, labels, mask):
  """Mean over masked nodes of −log softmax(logits)[label]."""
  logp = jax.nn.log_softmax(logits, axis=-1)
  picked = jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
  return -jnp.sum(jnp.where(mask, picked, 0.0)) / jnp.sum(mask)


def latt(schema, layers):
  """Spec §2: per layer, mean over relations whose source lacks a modality of the (edge, head)
  mean of λ summed over the source's missing modalities; mean over layers."""
  per_layer = []
  for layer in layers:
    rels = [
        r
        for r in range(schema.num_relations)
        if schema.missing_modalities(schema.relation_src(r)) and schema.num_edges[r]
    ]
    if not rels:
      per_layer.append(0.0)
      continue
    lam = layer["lambda"]  # (E, M, H)
    terms = [
        jnp.mean(jnp.sum(lam[schema.edge_slice(r)][:, list(schema.missing_modalities(schema.relation_src(r)))], axis=1))
        for r in rels
    ]
    per_layer.append(sum(terms) / len(terms))
  return sum(per_layer) / len(per_layer)


# (id, dataset, protocol, model name, overrides, graph, expected: ind (1+M heads), w_att, val includes L_att)
CASES = [
    ("MISS", "douban", "code", "hgnn_ima", {}, "missing2", (False, 1.0, True)),
    ("MISS-L_att", "imdb", "code", "hgnn_ima-L_att", {}, "missing2", (False, 0.0, True)),
    ("FULL2-L_ind", "amazon1", "code", "hgnn_ima-L_ind", {}, "full2", (False, 1.0, False)),
    ("FULL3", "amazon2", "code", "hgnn_ima", {}, "full3", (True, 1.0, False)),
    (
        "paper-MISS3-att_weight",
        "amazon",
        "paper",
        "hgnn_ima",
        {"loss.att_weight": 0.25},
        "missing3",
        (True, 0.25, True),
    ),
]
GRAPHS = {
    "missing2": lambda: make_graph(2, empty_relation=None),
    "missing3": lambda: make_graph(3, empty_relation=None),
    "full2": lambda: full_graph(2),
    "full3": lambda: full_graph(3),
}


def _config(dataset, protocol, model_name, overrides):
  c = get_config(dataset, protocol)
  c.model_name = model_name
  c.model.update(SIZES)
  c.seeds = (0,)
  for path, value in overrides.items():
    node = c
    *parents, leaf = path.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return train.resolve_config(c)  # as train_and_evaluate: the model name's loss-level ablation


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_epoch_losses_and_gradient_follow_the_profile_formula(case):
  _, dataset, protocol, model_name, overrides, graph_kind, (ind, w_att, val_att) = case
  g = GRAPHS[graph_kind]()
  config = _config(dataset, protocol, model_name, overrides)
  model = state_lib.create_model(config, g.schema)
  tx = optax.sgd(1.0)  # params after one step = params − gradient
  batch = state_lib.make_batch(g)
  state0 = jax.device_get(state_lib.init_state(model, tx, batch, config.seeds))
  seed0 = lambda tree: jax.tree_util.tree_map(lambda x: x[0], tree)
  s0 = seed0(state0)
  epoch = steps.make_epoch_fn(config, model, tx, g.num_classes)
  state1, metrics = epoch(jax.tree_util.tree_map(jnp.asarray, state0), batch)
  s1, m = seed0(jax.device_get(state1)), seed0(jax.device_get(metrics))
  labels, train_mask, val_mask = batch.labels, batch.masks["train"], batch.masks["val"]
  dropout_key = jax.random.fold_in(s0.key, 0)  # the first epoch's key (train_step)

  def variables(params, batch_stats):
    return {"params": params, **({"batch_stats": batch_stats} if jax.tree_util.tree_leaves(batch_stats) else {})}

  def hand_train_loss(params, graph):  # the graph is an argument: as a constant XLA would fold its scatters
    out, _ = model.apply(
        variables(params, s0.batch_stats),
        graph,
        train=True,
        rngs={"dropout": dropout_key},
        mutable=["batch_stats"],
        return_attention=True,
    )
    fused = ce(out.logits, labels, train_mask)
    per_mod = [ce(lg, labels, train_mask) for lg in out.modality_logits]
    cls = (fused + sum(per_mod)) / (1 + len(per_mod)) if ind else fused
    att = latt(g.schema, out.attention)
    return cls + w_att * att, (cls, att, len(per_mod))

  hand = fast_jit(jax.value_and_grad(hand_train_loss, has_aux=True))
  (want, (want_ce, want_att, n_mod)), grads = hand(s0.params, batch.graph)
  assert int(n_mod) == g.schema.num_modalities
  assert float(m["train_loss"]) == pytest.approx(float(want), rel=1e-5)
  assert float(m["train_ce"]) == pytest.approx(float(want_ce), rel=1e-5)
  assert float(m["att_loss"]) == pytest.approx(float(want_att), rel=1e-5, abs=1e-7)
  if graph_kind.startswith("full"):
    assert float(m["att_loss"]) == 0.0  # nothing is missing: L_att vanishes
  else:
    assert float(want_att) > 1e-3
  step = jax.tree_util.tree_map(
      lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64), s0.params, s1.params
  )
  scale = max(float(np.max(np.abs(x))) for x in jax.tree_util.tree_leaves(grads))
  for (path, got), wanted in zip(jax.tree_util.tree_flatten_with_path(step)[0], jax.tree_util.tree_leaves(grads)):
    np.testing.assert_allclose(got, wanted, atol=2e-5 * scale, err_msg=jax.tree_util.keystr(path))

  @fast_jit
  def hand_val_loss(params, batch_stats, graph):
    out = model.apply(variables(params, batch_stats), graph, train=False, return_attention=True)
    return ce(out.logits, labels, val_mask) + (w_att * latt(g.schema, out.attention) if val_att else 0.0)

  want_val = hand_val_loss(s1.params, s1.batch_stats, batch.graph)
  assert float(m["val_loss"]) == pytest.approx(float(want_val), rel=1e-5)


def test_masked_cross_entropy_is_the_mean_over_the_masked_nodes():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(7, 3)).astype(np.float32)
  labels = rng.integers(0, 3, 7)
  mask = np.array([1, 0, 1, 1, 0, 0, 1], bool)
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  want = -np.mean(np.log(p[np.arange(7), labels])[mask])
  got = losses.masked_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask))
  assert float(got) == pytest.approx(want, rel=1e-6)
