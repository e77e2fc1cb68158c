"""The compiled pieces of an epoch: one seed's train step, eval step and checkpoint selection, and
`make_epoch_fn`, which maps them over the seed axis in one jitted program.

A seed that stops early is frozen by masks, so its state is exactly what it would have been alone.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from hgnn_ima_jax import metrics as metrics_lib
from hgnn_ima_jax.choices import CHOICES
from hgnn_ima_jax.losses import masked_cross_entropy, objective, val_att_weight
from hgnn_ima_jax.state import Batch, TrainState, variables_of, where

# Incremented each time `train_step` is traced; tests use it to prove one compilation.
TRACE_COUNT = {"train_step": 0}


def train_step(
    state: TrainState,
    batch: Batch,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    ind_loss: bool,
    att_weight: float,
):
  """One full-batch optimizer step with dropout; a stopped seed's state does not change."""
  TRACE_COUNT["train_step"] += 1
  dropout_key = jax.random.fold_in(state.key, state.step)
  has_bs = bool(jax.tree.leaves(state.batch_stats))

  def loss_fn(params):
    variables = variables_of(params, state.batch_stats)
    if has_bs:
      out, mutated = model.apply(
          variables, batch.graph, train=True, rngs={"dropout": dropout_key}, mutable=["batch_stats"]
      )
      new_bs = mutated["batch_stats"]
    else:
      out, new_bs = model.apply(variables, batch.graph, train=True, rngs={"dropout": dropout_key}), state.batch_stats
    loss, parts = objective(out, batch.labels, batch.masks["train"], ind_loss=ind_loss, att_weight=att_weight)
    return loss, (parts, new_bs)

  (loss, (parts, new_bs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  new = state.replace(
      step=state.step + 1, params=optax.apply_updates(state.params, updates), batch_stats=new_bs, opt_state=opt_state
  )
  new = where(state.active, new, state)
  return new, {"train_loss": loss, "train_ce": parts["ce"], "att_loss": parts["att"]}


def eval_step(params, batch_stats, batch: Batch, *, model: nn.Module, num_classes: int, val_att_weight: float) -> dict:
  """Eval-mode forward: validation loss (the early-stopping signal), F1 on train/val and 'pred'.

  val_att_weight: L_att's weight in the validation loss (`val_att_weight(config)`).
  """
  out = model.apply(variables_of(params, batch_stats), batch.graph, train=False)
  pred = jnp.argmax(out.logits, axis=-1)
  val_loss = masked_cross_entropy(out.logits, batch.labels, batch.masks["val"])
  if val_att_weight:
    val_loss = val_loss + val_att_weight * out.att_loss
  res = {"val_loss": val_loss, "pred": pred}
  for split in ("train", "val"):
    micro, macro = metrics_lib.f1_scores(pred, batch.labels, batch.masks[split], num_classes)
    res[f"{split}_micro_f1"], res[f"{split}_macro_f1"] = micro, macro
  return res


def track(state: TrainState, ev: dict, *, rule: str, patience: int, selection: str, epoch=None) -> TrainState:
  """Checkpoint selection then early stopping for one epoch; only active seeds change.

  selection 'macro_f1'/'micro_f1' (the code): keep the params with the best validation
  F1, later epochs winning ties (>=). selection 'paper_rule': keep them when val loss
  <= best and val accuracy >= best (the authors' utils.py EarlyStopping saves its checkpoint then).
  rule 'val_loss' (the code's utils/pytorchtools.py): the counter grows when val loss > best
  (strictly) and resets otherwise; the best loss is the minimum. rule 'paper' (utils.py's
  EarlyStopping.step, the rule Sec. 5.3 describes): the counter grows when val loss > best AND
  accuracy < best and resets otherwise; best loss and best accuracy move only at an epoch that
  improves both (loss <= best and accuracy >= best), to that epoch's values. Accuracy is
  Micro-F1 (single-label). The seed stops when the counter reaches `patience`.

  epoch: the 0-based epoch of `ev` (default: `state.step - 1`, full batch's one step per epoch).
  """
  loss, acc = ev["val_loss"], ev["val_micro_f1"]
  if epoch is None:
    epoch = state.step - 1  # full batch: train_step already counted this epoch
  if selection == "paper_rule":
    improve = (loss <= state.es_best_loss) & (acc >= state.es_best_acc)
    score = ev["val_macro_f1"]
  elif selection in ("macro_f1", "micro_f1"):
    score = ev[f"val_{selection}"]
    improve = score >= state.best_score
  else:
    raise ValueError(f"selection_metric must be one of {CHOICES['selection_metric']}, got {selection!r}")
  new = state.replace(
      best_params=where(improve, state.params, state.best_params),
      best_batch_stats=where(improve, state.batch_stats, state.best_batch_stats),
      best_score=jnp.where(improve, score, state.best_score),
      best_epoch=jnp.where(improve, epoch, state.best_epoch),
  )
  if "pred" in ev:  # the test predictions of the selected epoch, so no separate test program is compiled
    new = new.replace(best_pred=jnp.where(improve, ev["pred"], state.best_pred))
  if rule == "val_loss":
    worse = loss > state.es_best_loss
    new = new.replace(es_best_loss=jnp.where(worse, state.es_best_loss, loss))
  elif rule == "paper":
    worse = (loss > state.es_best_loss) & (acc < state.es_best_acc)
    both = (loss <= state.es_best_loss) & (acc >= state.es_best_acc)  # utils.py: min/max of both, only here
    new = new.replace(
        es_best_loss=jnp.where(both, loss, state.es_best_loss), es_best_acc=jnp.where(both, acc, state.es_best_acc)
    )
  else:
    raise ValueError(f"early_stopping.rule must be one of {CHOICES['early_stopping.rule']}, got {rule!r}")
  counter = jnp.where(worse, state.es_counter + 1, 0)
  new = new.replace(es_counter=counter, active=counter < patience)
  return where(state.active, new, state)


def resolve_seed_batch(seed_batch: int, sharded: bool = False) -> int:
  """Seeds advanced together by one `vmap` (0: all of them); the rest loop in the same program.

  -1 (auto) means 1 on CPU and 0 on accelerators. On XLA:CPU a `vmap` over seeds costs more
  per seed than one seed alone (its gathers and scatters get transposed copies, and several seeds'
  temporaries stop fitting in cache); benchmarks/README.md (*Multi-seed*) has the measurements.
  Seeds sharded over several devices are always vmapped (each device runs its share at once).
  """
  if sharded:
    return 0
  if seed_batch < 0:
    return 1 if jax.default_backend() == "cpu" else 0
  return int(seed_batch)


def map_seeds(fn: Callable, seed_batch: int) -> Callable:
  """fn(state, batch) of one seed → the same over seed-stacked states: `vmap` (seed_batch 0) or
  `lax.map` over groups of `seed_batch` vmapped seeds (1: one seed at a time).

  One seed at a time is a `vmap` of one seed in the loop body (`batch_size=1`), not `fn` itself:
  on XLA:CPU the vmapped one-seed step runs faster than the unbatched one, and that, not the loop,
  was the looped seeds' overhead (benchmarks/README.md, *Multi-seed, three repetitions*).
  """
  if seed_batch == 0:
    return jax.vmap(fn, in_axes=(0, None))
  return lambda states, batch: jax.lax.map(lambda s: fn(s, batch), states, batch_size=seed_batch)


def make_epoch_fn(
    config: ml_collections.ConfigDict,
    model: nn.Module,
    tx: optax.GradientTransformation,
    num_classes: int,
    sharded: bool = False,
) -> Callable:
  """jit(map over seeds(train_step → eval_step → track)): one compiled program advances every seed an epoch."""
  loss_cfg = dict(ind_loss=bool(config.loss.ind_loss), att_weight=float(config.loss.att_weight))
  es = dict(
      rule=config.early_stopping.rule, patience=int(config.early_stopping.patience), selection=config.selection_metric
  )

  def one_seed(state, batch):
    state, train_metrics = train_step(state, batch, model=model, tx=tx, **loss_cfg)
    ev = eval_step(
        state.params,
        state.batch_stats,
        batch,
        model=model,
        num_classes=num_classes,
        val_att_weight=val_att_weight(config),
    )
    new = track(state, ev, **es)
    ev.pop("pred")
    # A seed that was already stopped reports its frozen state, flagged inactive.
    return new, {**train_metrics, **ev, "active": state.active}

  seed_batch = resolve_seed_batch(int(config.get("seed_batch", -1)), sharded)
  return jax.jit(map_seeds(one_seed, seed_batch), donate_argnums=(0,))
