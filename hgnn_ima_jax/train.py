"""Training library in the shape of the flax examples (ogbg_molpcba).

`train_and_evaluate(config, workdir)` runs every seed of `config.seeds` at once:
parameters, optimizer states, dropout keys and early-stopping bookkeeping are
stacked on a leading seed axis and one compiled program advances all seeds by one
full-batch epoch: `jit(vmap(...))`, or on CPU (`config.seed_batch`, see
`resolve_seed_batch`) `jit(lax.map(...))`, the seeds one after the other inside the
program. A seed that stops early is frozen by masks, so its state is exactly what it
would have been alone. With several devices the seed axis is sharded over them.

Pieces usable on their own: `create_model`, `create_optimizer`, `make_batch`,
`init_state`, `train_step`, `eval_step`, `track`, `make_epoch_fn`, `predict`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import jraph
import ml_collections
import numpy as np
import optax
from absl import logging

from hgnn_ima_jax import metrics as metrics_lib
from hgnn_ima_jax import runtime
from hgnn_ima_jax.config_validation import CHOICES, validate_config
from hgnn_ima_jax.graph import MMHN, Schema
from hgnn_ima_jax.layout import check_graph_layout
from hgnn_ima_jax.losses import masked_cross_entropy, objective
from hgnn_ima_jax.models import build_model, split_model_name

# Incremented each time `train_step` is traced; tests use it to prove one compilation.
TRACE_COUNT = {"train_step": 0}


# --- inputs -----------------------------------------------------------------------------

@flax.struct.dataclass
class Batch:
  """The full-batch inputs: the graph, target labels and split masks (all on device)."""

  graph: jraph.GraphsTuple
  labels: jax.Array  # (N_target,) int32
  masks: dict  # 'train'/'val'/'test' -> (N_target,) bool


def make_batch(data: MMHN) -> Batch:
  """The graph (checked once here: training runs it under jit, where the model cannot check it), labels, masks."""
  graph = jax.tree.map(jnp.asarray, data.to_graphs_tuple())
  check_graph_layout(data.schema, graph)
  masks = {s: jnp.asarray(data.split_mask(s)) for s in ("train", "val", "test")}
  return Batch(graph, jnp.asarray(data.labels, jnp.int32), masks)


def load_data(config: ml_collections.ConfigDict) -> MMHN:
  """The dataset named by the config (`data_utils.load_dataset`), with the config's split."""
  from hgnn_ima_jax import data_utils  # training sits above the data layer; imported here to keep `import` light
  from hgnn_ima_jax.data_utils import splits

  split = config.get("split", "file")
  if split not in splits.SPLIT_RULES:  # before any file is read
    raise ValueError(f"config.split={split!r}: use one of {splits.SPLIT_RULES}")
  fractions = splits.check_fractions(config.get("split_fractions", (0.2, 0.1, 0.7)))
  kwargs, missing_fill = {}, config.get("missing_fill", "code")
  if config.dataset == "synthetic":
    kwargs = {k: v for k, v in (config.get("synthetic") or {}).items() if v is not None}
    # The generator's own fill rule is the synthetic dataset's "code" default.
    synthetic_fill = kwargs.pop("missing_fill", None)
    if missing_fill == "code" and synthetic_fill:
      missing_fill = synthetic_fill
  data = data_utils.load_dataset(config.dataset, data_dir=config.get("data_dir") or None,
                                 features=config.get("features", "real"), missing_fill=missing_fill,
                                 feature_seed=config.get("feature_seed", 0), **kwargs)
  return splits.resplit(data, split, fractions, int(config.get("split_seed", 0)))


# --- model and optimizer ----------------------------------------------------------------

def create_model(config: ml_collections.ConfigDict, schema: Schema) -> nn.Module:
  """The module named by `config.model_name`, built from the fields in `config.model`."""
  fields = {k: v for k, v in config.model.to_dict().items() if v is not None}
  return build_model(config.model_name, schema, **fields)


def one_cycle_schedules(total_steps: int, max_value: float, pct_start: float, div_factor: float,
                        final_div_factor: float, base_momentum: float, max_momentum: float):
  """torch.optim.lr_scheduler.OneCycleLR (cosine) for the learning rate and Adam's b1.

  Step n ≤ s1 = pct_start·total − 1 anneals lr from max/div to max and b1 from max_m to
  base_m; after that lr goes to max/(div·final_div) and b1 back to max_m by total − 1.
  """
  initial = max_value / div_factor
  final = initial / final_div_factor
  s1 = float(pct_start * total_steps) - 1.0
  s2 = float(total_steps) - 1.0

  def interp(a, b, pct):
    return b + (a - b) * (1.0 + jnp.cos(jnp.pi * pct)) / 2.0

  def phase(count, first, second):
    n = jnp.asarray(count, jnp.float32)
    up = interp(first[0], first[1], jnp.clip(n / s1, 0.0, 1.0))
    down = interp(second[0], second[1], jnp.clip((n - s1) / (s2 - s1), 0.0, 1.0))
    return jnp.where(n <= s1, up, down)

  lr = lambda c: phase(c, (initial, max_value), (max_value, final))
  b1 = lambda c: phase(c, (max_momentum, base_momentum), (base_momentum, max_momentum))
  return lr, b1


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW + OneCycle with cycled b1 (the code) or plain Adam (the paper), with injected hyperparameters."""
  oc = config.optimizer
  if oc.schedule == "onecycle":
    lr, b1 = one_cycle_schedules(oc.onecycle_total_steps, oc.learning_rate, oc.onecycle_pct_start,
                                 oc.onecycle_div_factor, oc.onecycle_final_div_factor,
                                 oc.onecycle_base_momentum, oc.onecycle_max_momentum)
  elif oc.schedule == "constant":
    lr, b1 = oc.learning_rate, oc.b1
  else:
    raise ValueError(f"optimizer.schedule must be one of {CHOICES['optimizer.schedule']}, got {oc.schedule!r}")
  if oc.name == "adamw":
    return optax.inject_hyperparams(optax.adamw)(learning_rate=lr, b1=b1, b2=oc.b2, eps=oc.eps,
                                                 weight_decay=oc.weight_decay)
  if oc.name == "adam":
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=b1, b2=oc.b2, eps=oc.eps)
  raise ValueError(f"optimizer.name must be one of {CHOICES['optimizer.name']}, got {oc.name!r}")


def learning_rate_at(config: ml_collections.ConfigDict, step: int) -> float:
  oc = config.optimizer
  if oc.schedule != "onecycle":
    return float(oc.learning_rate)
  lr, _ = one_cycle_schedules(oc.onecycle_total_steps, oc.learning_rate, oc.onecycle_pct_start,
                              oc.onecycle_div_factor, oc.onecycle_final_div_factor,
                              oc.onecycle_base_momentum, oc.onecycle_max_momentum)
  return float(lr(step))


# --- state ------------------------------------------------------------------------------

@flax.struct.dataclass
class TrainState:
  """One seed's training state (stacked over seeds by `init_state`)."""

  step: jax.Array  # optimizer steps (= epochs) taken
  params: Any
  batch_stats: Any
  opt_state: Any
  key: jax.Array  # uint32[2]: this seed's dropout key; epoch e uses fold_in(key, e)
  active: jax.Array  # False once early stopping fired
  es_best_loss: jax.Array
  es_best_acc: jax.Array
  es_counter: jax.Array
  best_score: jax.Array  # selection metric at the best epoch
  best_epoch: jax.Array  # 0-based epoch of the selected checkpoint (-1: none yet)
  best_params: Any
  best_batch_stats: Any
  best_pred: jax.Array  # (N_target,) eval-mode predicted classes at the selected epoch (-1: none yet)


def _init_one(seed, model, tx, graph, num_targets: int) -> TrainState:
  key = jax.random.PRNGKey(seed)
  init_key, init_dropout, run_key = jax.random.split(key, 3)
  variables = model.init({"params": init_key, "dropout": init_dropout}, graph, train=False)
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params), key=run_key, active=jnp.ones((), bool),
                    es_best_loss=f32(jnp.inf), es_best_acc=f32(-jnp.inf), es_counter=jnp.zeros((), jnp.int32),
                    best_score=f32(-jnp.inf), best_epoch=jnp.full((), -1, jnp.int32),
                    best_params=params, best_batch_stats=batch_stats,
                    best_pred=jnp.full((num_targets,), -1, jnp.int32))


def _init_fn(model: nn.Module, tx: optax.GradientTransformation, batch: Batch, sharding=None) -> Callable:
  n = int(batch.labels.shape[0])
  return jax.jit(jax.vmap(lambda s, g: _init_one(s, model, tx, g, n), in_axes=(0, None)), out_shardings=sharding)


def init_state(model: nn.Module, tx: optax.GradientTransformation, batch: Batch, seeds, sharding=None) -> TrainState:
  """Initialises every seed at once: a TrainState whose leaves lead with the seed axis."""
  # The graph is an argument, not a closed-over constant: XLA would constant-fold its scatters.
  fn = _init_fn(model, tx, batch, sharding)
  seeds = jnp.asarray(seeds, jnp.uint32)
  # Compiled without LLVM optimisation: the program is one Threefry hash per parameter (~20k HLO
  # instructions, no other work) and runs once, so optimising it only costs time: 10-14 s of
  # compilation at the default level against ~3 s (the run takes milliseconds either way). The
  # random bits are identical; uniform and normal values can differ from an optimised compile in
  # the last bit (a fused multiply-add), the same for every run, so results stay reproducible.
  compiled = fn.lower(seeds, batch.graph).compile(compiler_options={"xla_backend_optimization_level": 0})
  return compiled(seeds, batch.graph)


def abstract_state(model: nn.Module, tx: optax.GradientTransformation, batch: Batch, seeds, sharding=None):
  """The shapes and dtypes of `init_state`'s result (nothing is compiled or run)."""
  return jax.eval_shape(_init_fn(model, tx, batch, sharding), jnp.asarray(seeds, jnp.uint32), batch.graph)


def _where(cond, new, old):
  return jax.tree.map(lambda a, b: jnp.where(cond, a, b), new, old)


def _variables(params, batch_stats):
  return {"params": params, "batch_stats": batch_stats} if jax.tree.leaves(batch_stats) else {"params": params}


# --- steps (one seed; vmapped by make_epoch_fn) ----------------------------------------

def train_step(state: TrainState, batch: Batch, *, model: nn.Module, tx: optax.GradientTransformation,
               ind_loss: bool, att_weight: float):
  """One full-batch optimizer step with dropout; a stopped seed's state does not change."""
  TRACE_COUNT["train_step"] += 1
  dropout_key = jax.random.fold_in(state.key, state.step)
  has_bs = bool(jax.tree.leaves(state.batch_stats))

  def loss_fn(params):
    variables = _variables(params, state.batch_stats)
    if has_bs:
      out, mutated = model.apply(variables, batch.graph, train=True, rngs={"dropout": dropout_key},
                                 mutable=["batch_stats"])
      new_bs = mutated["batch_stats"]
    else:
      out, new_bs = model.apply(variables, batch.graph, train=True, rngs={"dropout": dropout_key}), state.batch_stats
    loss, parts = objective(out, batch.labels, batch.masks["train"], ind_loss=ind_loss, att_weight=att_weight)
    return loss, (parts, new_bs)

  (loss, (parts, new_bs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  new = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                      batch_stats=new_bs, opt_state=opt_state)
  new = _where(state.active, new, state)
  return new, {"train_loss": loss, "train_ce": parts["ce"], "att_loss": parts["att"]}


def eval_step(params, batch_stats, batch: Batch, *, model: nn.Module, num_classes: int,
              val_includes_att: bool) -> dict:
  """Eval-mode forward: validation loss (the early-stopping signal), F1 on train/val and 'pred'."""
  out = model.apply(_variables(params, batch_stats), batch.graph, train=False)
  pred = jnp.argmax(out.logits, axis=-1)
  val_loss = masked_cross_entropy(out.logits, batch.labels, batch.masks["val"])
  if val_includes_att:
    val_loss = val_loss + out.att_loss
  res = {"val_loss": val_loss, "pred": pred}
  for split in ("train", "val"):
    micro, macro = metrics_lib.f1_scores(pred, batch.labels, batch.masks[split], num_classes)
    res[f"{split}_micro_f1"], res[f"{split}_macro_f1"] = micro, macro
  return res


def track(state: TrainState, ev: dict, *, rule: str, patience: int, selection: str) -> TrainState:
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
  """
  loss, acc = ev["val_loss"], ev["val_micro_f1"]
  epoch = state.step - 1  # train_step already counted this epoch
  if selection == "paper_rule":
    improve = (loss <= state.es_best_loss) & (acc >= state.es_best_acc)
    score = ev["val_macro_f1"]
  elif selection in ("macro_f1", "micro_f1"):
    score = ev[f"val_{selection}"]
    improve = score >= state.best_score
  else:
    raise ValueError(f"selection_metric must be one of {CHOICES['selection_metric']}, got {selection!r}")
  new = state.replace(
      best_params=_where(improve, state.params, state.best_params),
      best_batch_stats=_where(improve, state.batch_stats, state.best_batch_stats),
      best_score=jnp.where(improve, score, state.best_score),
      best_epoch=jnp.where(improve, epoch, state.best_epoch))
  if "pred" in ev:  # the test predictions of the selected epoch, so no separate test program is compiled
    new = new.replace(best_pred=jnp.where(improve, ev["pred"], state.best_pred))
  if rule == "val_loss":
    worse = loss > state.es_best_loss
    new = new.replace(es_best_loss=jnp.where(worse, state.es_best_loss, loss))
  elif rule == "paper":
    worse = (loss > state.es_best_loss) & (acc < state.es_best_acc)
    both = (loss <= state.es_best_loss) & (acc >= state.es_best_acc)  # utils.py: min/max of both, only here
    new = new.replace(es_best_loss=jnp.where(both, loss, state.es_best_loss),
                      es_best_acc=jnp.where(both, acc, state.es_best_acc))
  else:
    raise ValueError(f"early_stopping.rule must be one of {CHOICES['early_stopping.rule']}, got {rule!r}")
  counter = jnp.where(worse, state.es_counter + 1, 0)
  new = new.replace(es_counter=counter, active=counter < patience)
  return _where(state.active, new, state)


def resolve_seed_batch(seed_batch: int, sharded: bool = False) -> int:
  """Seeds advanced together by one `vmap` (0: all of them); the rest loop in the same program.

  -1 (auto) means 1 on CPU and 0 on accelerators. On XLA:CPU a `vmap` over seeds costs more
  per seed than one seed alone (its gathers and scatters get transposed copies, and 5 seeds'
  temporaries stop fitting in cache): in benchmarks/step_time.py a training step of 5 seeds took
  5.5-9.3x one seed's time vmapped and 4.7-5.5x looped with `lax.map` on DOUBAN, IMDB and AMAZON,
  with 4.4-4.7x less XLA temp memory (benchmarks/README.md).
  Seeds sharded over several devices are always vmapped (each device runs its share at once).
  """
  if sharded:
    return 0
  if seed_batch < 0:
    return 1 if jax.default_backend() == "cpu" else 0
  return int(seed_batch)


def map_seeds(fn: Callable, seed_batch: int) -> Callable:
  """fn(state, batch) of one seed → the same over seed-stacked states: `vmap` (seed_batch 0) or
  `lax.map` over groups of `seed_batch` vmapped seeds (1: one seed at a time)."""
  if seed_batch == 0:
    return jax.vmap(fn, in_axes=(0, None))
  return lambda states, batch: jax.lax.map(lambda s: fn(s, batch), states,
                                           batch_size=None if seed_batch == 1 else seed_batch)


def make_epoch_fn(config: ml_collections.ConfigDict, model: nn.Module, tx: optax.GradientTransformation,
                  num_classes: int, sharded: bool = False) -> Callable:
  """jit(map over seeds(train_step → eval_step → track)): one compiled program advances every seed an epoch."""
  loss_cfg = dict(ind_loss=bool(config.loss.ind_loss), att_weight=float(config.loss.att_weight))
  es = dict(rule=config.early_stopping.rule, patience=int(config.early_stopping.patience),
            selection=config.selection_metric)

  def one_seed(state, batch):
    state, train_metrics = train_step(state, batch, model=model, tx=tx, **loss_cfg)
    ev = eval_step(state.params, state.batch_stats, batch, model=model, num_classes=num_classes,
                   val_includes_att=bool(config.loss.val_includes_att))
    new = track(state, ev, **es)
    ev.pop("pred")
    # A seed that was already stopped reports its frozen state, flagged inactive.
    return new, {**train_metrics, **ev, "active": state.active}

  seed_batch = resolve_seed_batch(int(config.get("seed_batch", -1)), sharded)
  return jax.jit(map_seeds(one_seed, seed_batch), donate_argnums=(0,))


def predict(model: nn.Module, params, batch_stats, batch: Batch) -> jax.Array:
  """Eval-mode logits (N_target, C) for one seed's parameters."""
  return model.apply(_variables(params, batch_stats), batch.graph, train=False).logits


# --- the run ----------------------------------------------------------------------------

def resolve_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy with the model name's loss-level ablation applied (`-L_att`, `-L_ind`)."""
  config = ml_collections.ConfigDict(config.to_dict())
  _, _, loss_over = split_model_name(config.model_name)
  for k, v in loss_over.items():
    config.loss[k] = v
  config.seeds = tuple(int(s) for s in config.seeds)
  if not config.seeds:
    raise ValueError("config.seeds is empty; give at least one seed")
  return config


def seed_sharding(num_seeds: int, enabled: bool = True):
  """(sharding for seed-leading arrays, replicated sharding, padded seed count) for the local devices."""
  devices = jax.devices()
  if not enabled or len(devices) == 1:
    return None, None, num_seeds
  mesh = jax.sharding.Mesh(np.asarray(devices), ("seeds",))
  padded = int(math.ceil(num_seeds / len(devices)) * len(devices))
  return (jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds")),
          jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()), padded)


def _device_description() -> str:
  d = jax.devices()
  return f"{len(d)}x {d[0].platform}:{getattr(d[0], 'device_kind', '')}".strip(":")


def _history_rows(epoch: int, seeds, m: dict, lr: float) -> list[dict]:
  rows = []
  for i, seed in enumerate(seeds):
    row = {"epoch": epoch, "seed": seed, "lr": lr}
    for k, v in m.items():
      row[k] = bool(v[i]) if k == "active" else float(v[i])
    rows.append(row)
  return rows


def _write_history(workdir: str, rows: list[dict]):
  with open(os.path.join(workdir, "history.json"), "w") as f:
    json.dump(rows, f)
  if rows:
    with open(os.path.join(workdir, "history.csv"), "w", newline="") as f:
      w = csv.DictWriter(f, fieldnames=list(rows[0]))
      w.writeheader()
      w.writerows(rows)


class TrainingInterrupted(Exception):
  """`should_stop` asked the run to stop; the checkpoint of `epoch` (finished epochs) is saved in `workdir`."""

  def __init__(self, workdir: str, epoch: int, num_epochs: int):
    self.workdir, self.epoch, self.num_epochs = workdir, epoch, num_epochs
    super().__init__(f"interrupted at epoch {epoch} of {num_epochs}; the checkpoint in {workdir} continues it")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, resume: bool = False,
                       data: MMHN | None = None, progress: bool = True,
                       should_stop: Callable[[], bool] | None = None) -> dict:
  """Trains every seed in `config.seeds`, selects each seed's best epoch, tests it; returns results.

  Writes to `workdir`: config.json (resolved), history.json/.csv (per epoch and seed),
  results.json, and Orbax checkpoints (checkpoints/latest for resuming, checkpoints/best).

  Args:
    config: the run's config (`experiments/configs`); checked by `validate_config` before
      anything is loaded or written.
    workdir: the run's directory (created).
    resume: continue from the latest checkpoint in `workdir` when there is one; a checkpoint
      written with another config is refused (`checkpoint.CheckpointMismatchError`).
    data: the dataset, if already loaded (default: `load_data(config)`).
    progress: show a tqdm progress bar.
    should_stop: polled before the first epoch and after each one; when it returns True the
      state of the last finished epoch is checkpointed and `TrainingInterrupted` is raised
      (`resume=True` then continues the run where it stopped, with identical results).

  Returns:
    The results dict (also written to results.json).
  """
  from hgnn_ima_jax import checkpoint as ckpt  # checkpointing depends on this module's types

  validate_config(config)  # before any data is loaded or anything is written
  config = resolve_config(config)
  t_start = time.time()
  data = load_data(config) if data is None else data  # fails before anything is written
  os.makedirs(workdir, exist_ok=True)
  schema = data.schema
  batch = make_batch(data)
  model = create_model(config, schema)
  tx = create_optimizer(config)
  seeds = list(config.seeds)
  shard, replicated, padded = seed_sharding(len(seeds), bool(config.get("shard_seeds", True)))
  run_seeds = seeds + [max(seeds) + 1 + i for i in range(padded - len(seeds))]  # padding seeds are dropped
  if replicated is not None:
    batch = jax.device_put(batch, replicated)

  manager = ckpt.RunCheckpoints(workdir)
  history: list[dict] = []
  state = None
  if resume:
    restored = manager.restore_latest(abstract_state(model, tx, batch, run_seeds, shard), shard, config=config)
    if restored is not None:
      state, meta = restored
      history = meta["history"]
      logging.info("resumed %s at epoch %d", workdir, meta["epoch"])
  elif manager.has_checkpoints():
    raise FileExistsError(f"{workdir} already holds checkpoints; pass --resume to continue that run or use a new --workdir")
  if state is None:
    state = init_state(model, tx, batch, run_seeds, shard)
  ckpt.write_config(workdir, config)

  epoch_fn = make_epoch_fn(config, model, tx, schema.num_classes, sharded=shard is not None)
  start_epoch = int(np.asarray(jax.device_get(state.step)).max())
  num_epochs = int(config.num_epochs)
  every = max(1, int(config.get("checkpoint_every", 10)))
  bar = None
  if progress:
    from tqdm.auto import tqdm
    bar = tqdm(total=num_epochs, initial=start_epoch, desc=f"{config.dataset}/{config.model_name}", unit="ep")

  def interrupted(done: int) -> TrainingInterrupted:
    """Checkpoints the state after `done` epochs (the initial state when 0) so that --resume continues it."""
    manager.save_latest(done, state, {"epoch": done, "history": history}, force=True)
    _write_history(workdir, history)
    manager.close()
    return TrainingInterrupted(workdir, done, num_epochs)

  t_train = time.time()
  try:
    # A stop asked for during loading or initialisation: the initial state is the checkpoint.
    if should_stop is not None and should_stop():
      raise interrupted(start_epoch)
    for epoch in range(start_epoch, num_epochs):
      if not bool(np.asarray(jax.device_get(state.active))[: len(seeds)].any()):
        break
      state, m = epoch_fn(state, batch)
      m = jax.tree.map(lambda x: np.asarray(x)[: len(seeds)], jax.device_get(m))
      history.extend(_history_rows(epoch, seeds, m, learning_rate_at(config, epoch)))
      if bar is not None:
        act = m["active"]
        bar.set_postfix(loss=f"{m['train_loss'][act].mean() if act.any() else float('nan'):.4f}",
                        val_macro=f"{m['val_macro_f1'][act].mean() if act.any() else float('nan'):.4f}",
                        seeds=f"{int(act.sum())}/{len(seeds)}")
        bar.update(1)
      if (epoch + 1) % every == 0:
        manager.save_latest(epoch + 1, state, {"epoch": epoch + 1, "history": history})
        _write_history(workdir, history)
      if should_stop is not None and should_stop():
        raise interrupted(epoch + 1)
  finally:
    if bar is not None:
      bar.close()
  train_time = time.time() - t_train
  final_epoch = int(np.asarray(jax.device_get(state.step)).max())
  manager.save_latest(final_epoch, state, {"epoch": final_epoch, "history": history}, force=True)
  _write_history(workdir, history)

  # Test every seed at its selected epoch, in eval mode (the predictions `track` kept from that
  # epoch's eval forward: the same as `predict` with the best parameters); report with scikit-learn.
  host = jax.device_get(state)
  pred = np.asarray(host.best_pred)[: len(seeds)]
  labels = np.asarray(data.labels)
  per_seed = []
  for i, seed in enumerate(seeds):
    test = metrics_lib.sklearn_f1(pred[i], labels, data.splits["test"])
    val = metrics_lib.sklearn_f1(pred[i], labels, data.splits["val"])
    per_seed.append({"seed": seed, "test_micro_f1": test["micro_f1"], "test_macro_f1": test["macro_f1"],
                     "val_micro_f1": val["micro_f1"], "val_macro_f1": val["macro_f1"],
                     "best_epoch": int(np.asarray(host.best_epoch)[i]),
                     "epochs_run": int(np.asarray(host.step)[i]),
                     "early_stopped": not bool(np.asarray(host.active)[i])})
  n_params = sum(int(np.prod(x.shape[1:])) for x in jax.tree.leaves(host.params))
  results = {
      "dataset": config.dataset, "model": config.model_name, "protocol": config.get("protocol", "code"),
      "seeds": seeds, "per_seed": per_seed,
      "test_micro_f1": metrics_lib.mean_std([r["test_micro_f1"] for r in per_seed]),
      "test_macro_f1": metrics_lib.mean_std([r["test_macro_f1"] for r in per_seed]),
      "num_params": n_params, "epochs": final_epoch,
      "wall_time_s": time.time() - t_start, "train_time_s": train_time, "device": _device_description(),
      "allocator": runtime.active_allocator(),
      "comparable_with_paper": data.comparable_with_paper, "features": data.feature_provenance,
      "split": data.provenance.get("split", "file"),
  }
  manager.save_best(state, seeds, results)
  manager.close()
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  return results


def results_table(results: dict) -> str:
  """A small plain-text table of per-seed and mean ± std test scores."""
  lines = [f"{'seed':>6} {'best ep':>8} {'test Micro-F1':>14} {'test Macro-F1':>14}"]
  for r in results["per_seed"]:
    lines.append(f"{r['seed']:>6} {r['best_epoch']:>8} {r['test_micro_f1']:>14.4f} {r['test_macro_f1']:>14.4f}")
  lines.append(f"{'mean':>6} {'':>8} {metrics_lib.format_mean_std(results['test_micro_f1']):>14} "
               f"{metrics_lib.format_mean_std(results['test_macro_f1']):>14}")
  if not results.get("comparable_with_paper", True):
    lines.append("NOTE: features were generated; these numbers are not comparable with the paper.")
  return "\n".join(lines)
