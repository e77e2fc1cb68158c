"""Training library in the shape of the flax examples (ogbg_molpcba): `train_and_evaluate`.

`train_and_evaluate(config, workdir, data)` runs every seed of `config.seeds` at once on the
graph it is given (the library never loads datasets: `data_utils.load_for_config` does). It is
three steps, each a function of its own:

  restore_or_init   the seed-stacked `TrainState`: the latest checkpoint with --resume, else fresh
  run_epochs        one compiled program (`steps.make_epoch_fn`) advances every seed an epoch;
                    with config.batch.mode 'neighbor' or 'hgt', `minibatch.run_minibatch_epochs`
                    instead (sampled, padded batches; exact layer-wise evaluation)
  final_evaluation  each seed's selected epoch tested; the results dict (results.json)

The pieces live by job: `optim` (optimizer and schedule), `state` (inputs, model, train state,
seed sharding), `steps` (train/eval step, selection and early stopping, the epoch program),
`checkpointing` (Orbax checkpoints of a run); `restore` loads a finished run for prediction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from tqdm.auto import tqdm

from hgnn_ima_jax import distributed, minibatch, runtime
from hgnn_ima_jax import metrics as metrics_lib
from hgnn_ima_jax.budgets import padded_schema
from hgnn_ima_jax.checkpointing import CheckpointMismatchError, RunCheckpoints
from hgnn_ima_jax.config_compare import config_fingerprint, fingerprinted_fields
from hgnn_ima_jax.config_paths import absolute_path, data_dir_or_env
from hgnn_ima_jax.config_validation import (
    check_batch_for_graph,
    check_fanouts_per_layer,
    check_model_for_graph,
    validate_config,
)
from hgnn_ima_jax.evaluation import Evaluator
from hgnn_ima_jax.field_usage import apply_name_fields
from hgnn_ima_jax.graph import MMHN
from hgnn_ima_jax.graph_checks import check_trainable
from hgnn_ima_jax.hosts import host
from hgnn_ima_jax.inference import encoders_of
from hgnn_ima_jax.losses import val_att_weight, val_rule_changed
from hgnn_ima_jax.memory_check import MemoryCheckedProgram, StepMemoryError, memory_limit, remat_first
from hgnn_ima_jax.models import split_model_name
from hgnn_ima_jax.optim import create_optimizer, learning_rate_at
from hgnn_ima_jax.projection import check_shared_widths
from hgnn_ima_jax.run_dir import (
    WorkdirError,
    check_workdir,
    locked_workdir,
    read_results,
    saved_steps,
    write_config,
    write_schema,
)
from hgnn_ima_jax.run_log import HistoryWriter, TrainingInterrupted, history_rows  # noqa: F401 (re-exported)
from hgnn_ima_jax.state import Batch, TrainState, check_mesh_data, create_model, init_state, make_batch, seed_sharding
from hgnn_ima_jax.steps import make_epoch_fn


def resolve_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy with the fields of the model name's ablation (`hgnn_ima-cross`'s model.variant, `-L_att`'s
  loss.att_weight) and absolute data paths."""
  config = ml_collections.ConfigDict(config.to_dict())
  split_model_name(config.model_name)  # an unknown name: its ValueError
  apply_name_fields(config)
  config.seeds = tuple(int(s) for s in config.seeds)
  if "dataset" in config:  # a Python caller's data_dir='' too: $HGNN_IMA_DATA_DIR, as the scripts record it
    config.data_dir = data_dir_or_env(config)
  for field in ("dataset", "data_dir"):  # absolute in config.json: the run reopens from any directory
    if field in config:
      config[field] = absolute_path(field, config[field])
  if not config.seeds:
    raise ValueError("config.seeds is empty. Fix: give at least one seed, e.g. config.seeds = (0,)")
  return config


def _device_description() -> str:
  d = jax.devices()
  return f"{len(d)}x {d[0].platform}:{getattr(d[0], 'device_kind', '')}".strip(":")


@dataclasses.dataclass
class Run:
  """What the three steps of `train_and_evaluate` share: the built pieces and the seed bookkeeping."""

  config: ml_collections.ConfigDict
  workdir: str
  batch: Batch
  model: Any
  tx: Any
  seeds: list[int]  # the config's seeds
  run_seeds: list[int]  # plus padding seeds (dropped from every output) to fill the devices
  shard: Any  # sharding of seed-leading arrays, or None
  manager: RunCheckpoints
  on_history: HistoryWriter
  num_classes: int
  num_targets: int | None = None  # best_pred's length when `batch` is a mini-batch (default: its targets)
  mesh: Any = None  # distributed.DeviceMesh of the run, or None (one device)


def check_validation_rule(run: Run, meta: dict) -> None:
  """Refuses to continue a checkpoint written before L_att entered the validation loss with the training loss's
  weight (`losses.val_att_weight`; its checkpoints carry no config fingerprint) when that changes this run's
  validation loss: its early stopping and checkpoint selection would compare losses of the two rules."""
  loss = run.config.loss
  if "config_fingerprint" in meta or not val_rule_changed(run.config):
    return
  raise CheckpointMismatchError(
      f"{run.workdir}: checkpoint {meta.get('epoch')} was written when L_att entered the validation loss with weight "
      f"1, and this version weighs it by loss.att_weight={float(loss.att_weight)} (as the training loss): its best "
      "validation loss so far is of the old rule. Fix: train into a new --workdir"
  )


def restore_or_init(run: Run, resume: bool) -> tuple[TrainState, list[dict], dict | None]:
  """(state, history so far, the checkpoint's metadata or None): the latest checkpoint when resuming, else fresh seeds.

  Raises:
    FileExistsError: not resuming, but `workdir` already holds checkpoints.
    CheckpointMismatchError: the checkpoint was written with another config.
  """
  if resume:
    like = init_state(run.model, run.tx, run.batch, run.run_seeds, run.shard, run.num_targets, abstract=True)
    restored = run.manager.restore_latest(like, run.shard, config=run.config, real_rows=len(run.seeds))
    if restored is not None:
      state, meta = restored
      check_validation_rule(run, meta)
      logging.info("resumed %s at epoch %d", run.workdir, meta["epoch"])
      return state, meta["history"], meta
  elif run.manager.has_checkpoints():
    raise FileExistsError(
        f"{run.workdir}: already holds checkpoints. Fix: pass --resume to continue that run, or use a new --workdir"
    )
  return init_state(run.model, run.tx, run.batch, run.run_seeds, run.shard, run.num_targets), [], None


def _checkpoint(run: Run, state: TrainState, history: list[dict], epoch: int, force: bool = False):
  run.manager.save_latest(epoch, state, {"epoch": epoch, "history": history}, force=force)
  run.on_history(history)


def run_epochs(
    run: Run,
    state: TrainState,
    history: list[dict],
    *,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[TrainState, list[dict]]:
  """Trains until `config.num_epochs` or every seed stopped early; checkpoints every `checkpoint_every` epochs.

  Raises:
    TrainingInterrupted: `should_stop()` returned True (polled before the first epoch and after
      each one); the state of the last finished epoch is checkpointed first.
  """
  config = run.config
  n = len(run.seeds)
  epoch_fn = MemoryCheckedProgram(
      make_epoch_fn(config, run.model, run.tx, run.num_classes, sharded=run.shard is not None),
      f"{config.dataset} full batch ({run.model.schema.total_nodes} nodes, {run.model.schema.total_edges} edges)",
      remat_first(
          config,
          "train with mini-batches, e.g. --config.batch.mode=neighbor --config.batch.size=1024 "
          f"--config.batch.fanouts={','.join(['2'] * max(1, int(config.model.num_layers)))}",
      ),
  )
  start_epoch = int(np.asarray(host(state.step)).max())
  num_epochs = int(config.num_epochs)
  every = max(1, int(config.get("checkpoint_every", 10)))
  bar = (
      tqdm(total=num_epochs, initial=start_epoch, desc=f"{config.dataset}/{config.model_name}", unit="ep")
      if progress
      else None
  )

  def interrupted(done: int) -> TrainingInterrupted:
    """Checkpoints the state after `done` epochs (the initial state when 0) so that --resume continues it."""
    _checkpoint(run, state, history, done, force=True)
    run.manager.close()
    return TrainingInterrupted(run.workdir, done, num_epochs)

  try:
    # A stop asked for during loading or initialisation: the initial state is the checkpoint.
    if should_stop is not None and should_stop():
      raise interrupted(start_epoch)
    for epoch in range(start_epoch, num_epochs):
      if not bool(np.asarray(host(state.active))[:n].any()):
        break
      state, m = epoch_fn(state, run.batch)
      m = jax.tree.map(lambda x: np.asarray(x)[:n], host(m))
      history.extend(history_rows(epoch, run.seeds, m, learning_rate_at(config, epoch)))
      if bar is not None:
        act = m["active"]
        bar.set_postfix(
            loss=f"{m['train_loss'][act].mean() if act.any() else float('nan'):.4f}",
            val_macro=f"{m['val_macro_f1'][act].mean() if act.any() else float('nan'):.4f}",
            seeds=f"{int(act.sum())}/{n}",
        )
        bar.update(1)
      if (epoch + 1) % every == 0:
        _checkpoint(run, state, history, epoch + 1)
      if should_stop is not None and should_stop():
        raise interrupted(epoch + 1)
  finally:
    if bar is not None:
      bar.close()
  _checkpoint(run, state, history, int(np.asarray(host(state.step)).max()), force=True)
  return state, history


def final_evaluation(run: Run, state: TrainState, data: MMHN, steps_per_epoch: int = 1) -> dict:
  """Every seed tested at its selected epoch; the results dict (without the timings)."""
  # In eval mode: the predictions `track` kept from that epoch's eval forward (the same as the
  # best parameters' forward), scored with scikit-learn.
  config, seeds = run.config, run.seeds
  h = host(state)
  pred = np.asarray(h.best_pred)[: len(seeds)]
  labels = np.asarray(data.labels)
  per_seed = []
  for i, seed in enumerate(seeds):
    test = metrics_lib.sklearn_f1(pred[i], labels, data.splits["test"])
    val = metrics_lib.sklearn_f1(pred[i], labels, data.splits["val"])
    per_seed.append(
        {
            "seed": seed,
            "test_micro_f1": test["micro_f1"],
            "test_macro_f1": test["macro_f1"],
            "val_micro_f1": val["micro_f1"],
            "val_macro_f1": val["macro_f1"],
            "best_epoch": int(np.asarray(h.best_epoch)[i]),
            "epochs_run": int(np.asarray(h.step)[i]) // steps_per_epoch,
            "early_stopped": not bool(np.asarray(h.active)[i]),
        }
    )
  n_params = sum(int(np.prod(x.shape[1:])) for x in jax.tree.leaves(h.params))
  return {
      "dataset": config.dataset,
      "model": config.model_name,
      "protocol": config.get("protocol", "code"),
      "seeds": seeds,
      "per_seed": per_seed,
      "test_micro_f1": metrics_lib.mean_std([r["test_micro_f1"] for r in per_seed]),
      "test_macro_f1": metrics_lib.mean_std([r["test_macro_f1"] for r in per_seed]),
      "num_params": n_params,
      "epochs": int(np.asarray(h.step).max()) // steps_per_epoch,
  }


def check_inputs(config: ml_collections.ConfigDict, schema) -> None:
  """The config against the graph's input widths, before anything is built or written: projection='shared'
  (one Linear per node type for all modalities) needs them equal per type (it was a traceback from inside
  the model's initialisation). Raises `ConfigError`."""
  model = create_model(config, schema)
  if getattr(model, "projection", None) == "shared":
    for encoder in encoders_of(model):
      check_shared_widths(schema, encoder.channels, model.hidden)


def preflight(config: ml_collections.ConfigDict) -> None:
  """What a run checks of the machine before its data loads or anything is written: config.mesh_data against
  the devices, $HGNN_IMA_MEMORY_LIMIT's syntax (both were tracebacks after the workdir had been made), and in a
  run of several processes that all have one config (`distributed.check_same_config`)."""
  check_mesh_data(int(config.get("mesh_data", 1)))
  memory_limit()
  distributed.check_same_config(config)  # every process, alike: one tiny all-gather of the config


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    data: MMHN,
    *,
    resume: bool = False,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
    on_history: HistoryWriter | None = None,
) -> dict:
  """Trains every seed in `config.seeds` on `data`, selects each seed's best epoch, tests it; returns results.

  Writes to `workdir`: config.json (resolved), schema.json (what a graph must have to be predicted on),
  results.json, Orbax checkpoints (checkpoints/latest for resuming, checkpoints/best) and .lock (held while
  it writes); history.json/.csv only through `on_history` (`experiments.outputs.history_writer`, as the
  scripts do). A graph that is not the config's dataset (built in Python, `from_hetero_data`) is recorded
  under its own name with its `graph_source`; `load_run` then needs it passed as `data=`.

  Args:
    config: the run's config (`experiments/configs`); checked by `validate_config` before
      anything is written.
    workdir: the run's directory (created).
    data: the graph (`data_utils.load_for_config(config)` loads the config's dataset).
    resume: continue from the latest checkpoint in `workdir` when there is one; a checkpoint
      written with another config is refused (`checkpointing.CheckpointMismatchError`). A finished run
      (results.json) returns its saved results and rewrites nothing.
    progress: show a tqdm progress bar.
    should_stop: polled before the first epoch and after each one (in mini-batch mode after every
      batch); when it returns True the state reached is checkpointed and `TrainingInterrupted` is raised
      (`resume=True` then continues the run where it stopped, with identical results).
    on_history: called with the per-epoch, per-seed rows so far (`history_rows`) whenever a
      checkpoint is written (the scripts write history.json/.csv with it); None: not reported.

  Returns:
    The results dict (also written to results.json).

  Raises:
    ConfigError, WorkdirError (a `workdir` that cannot be made or written, or that another run is writing to),
    DatasetError (an invalid graph, `MMHN.validate`: NaN features, labels out of range, overlapping splits ...; or
    one that cannot train: an empty class, one class in the train split, no edge into the target type;
    `check_trainable`): before anything is built or written; `CheckpointMismatchError` on resuming another config's run; `StepMemoryError` when
    the compiled step needs more memory than there is (`memory_check`), before the first epoch: a workdir this
    call made (or found empty) is then removed again.
  """
  if not isinstance(config, ml_collections.ConfigDict):
    raise TypeError(
        f"config: a {type(config).__name__}, expected an ml_collections.ConfigDict. Fix: start from "
        "experiments.configs.get_config(dataset), or wrap a dict with ml_collections.ConfigDict(d)"
    )
  validate_config(config)  # before anything is built or written
  if not resume:
    check_fanouts_per_layer(config)
  check_workdir(workdir)
  preflight(config)
  distributed.check_same_workdir(workdir)  # one tiny all-gather, with several processes only
  if not isinstance(data, MMHN):
    raise TypeError(
        f"data: a {type(data).__name__}, expected an MMHN. Fix: pass data_utils.load_dataset(...) or "
        "load_for_config(config) (the model's GraphsTuple is built from it here)"
    )
  data.validate()  # a graph built or edited in Python: NaN features, labels out of range, overlapping splits ...
  config = resolve_config(config)
  check_model_for_graph(config, data)
  check_inputs(config, data.schema)
  check_trainable(data)
  check_batch_for_graph(config, data)
  t_start = time.time()
  new_workdir = not os.path.isdir(workdir) or not os.listdir(workdir)
  os.makedirs(workdir, exist_ok=True)
  main = jax.process_index() == 0  # only process 0 writes config, history, results and the progress bar
  if not main:
    progress, on_history = False, None
  try:
    with contextlib.ExitStack() as lock:  # one run writes a workdir at a time (process 0 holds the lock)
      refused = None
      if main:
        try:
          lock.enter_context(locked_workdir(workdir))
        except WorkdirError as e:
          refused = e
      if not distributed.agree_smallest(int(refused is None)):  # every process stops alike, none waits for 0
        raise refused or WorkdirError(
            f"workdir={workdir}: process 0 found another run writing there. Fix: see its error"
        )
      return _train_and_evaluate(config, workdir, data, resume, progress, should_stop, on_history, t_start)
  except StepMemoryError:
    # Refused by the memory check before anything was trained: like a config error, it leaves nothing behind (it
    # left config.json, schema.json, .lock and empty checkpoint directories), so the suggested fix starts clean.
    if new_workdir and jax.process_count() == 1 and not saved_steps(workdir):
      shutil.rmtree(workdir, ignore_errors=True)
    raise


def _train_and_evaluate(config, workdir, data, resume, progress, should_stop, on_history, t_start) -> dict:
  """`train_and_evaluate` once its arguments are checked and its workdir is locked."""
  settings = minibatch.BatchSettings.from_config(config)
  seeds = list(config.seeds)
  mesh_data = int(config.get("mesh_data", 1))
  shard_seeds = bool(config.get("shard_seeds", True))
  shard, replicated, padded = seed_sharding(len(seeds), shard_seeds, mesh_data)
  if settings.sampled:  # the graph stays on the host; parameters are built on the first padded batch
    source = minibatch.BatchSource(data, settings)
    (batch, rung), steps_per_epoch = minibatch.init_batch(source), source.num_batches(0)
    model = create_model(config, padded_schema(data.schema, rung))
  else:
    source, batch, steps_per_epoch, model = None, make_batch(data), 1, create_model(config, data.schema)
  if replicated is not None:
    batch = jax.device_put(batch, replicated)
  run = Run(
      config=config,
      workdir=workdir,
      batch=batch,
      model=model,
      tx=create_optimizer(config, steps_per_epoch),
      seeds=seeds,
      run_seeds=seeds + [max(seeds) + 1 + i for i in range(padded - len(seeds))],
      shard=shard,
      manager=RunCheckpoints(
          workdir, fingerprint=config_fingerprint(config), config_fields=fingerprinted_fields(config)
      ),
      on_history=on_history or (lambda rows: None),
      num_classes=data.schema.num_classes,
      num_targets=len(data.labels) if settings.sampled else None,
      mesh=distributed.DeviceMesh.of(shard),
  )

  try:
    return _train_run(run, data, resume, settings, source, steps_per_epoch, progress, should_stop, t_start)
  except BaseException:
    # Wait for the checkpoint saves in flight and stop Orbax's threads: a failed run left a step half-written
    # (only its .orbax-checkpoint-tmp directory), which a new run in the workdir did not count as a checkpoint. One
    # process only: with several, the others may never reach the save this would wait for.
    if jax.process_count() == 1:
      run.manager.close()
    raise


def _train_run(run: Run, data, resume, settings, source, steps_per_epoch, progress, should_stop, t_start) -> dict:
  """Restores or initialises the state, trains, evaluates and writes the results (`_train_and_evaluate`'s run)."""
  config, workdir, seeds = run.config, run.workdir, run.seeds
  main = jax.process_index() == 0
  state, history, resumed = restore_or_init(run, resume)
  saved = os.path.join(workdir, "results.json")
  if resume and distributed.agree_smallest(int(os.path.exists(saved))):  # every process sees it: all return
    run.manager.close()  # a finished run: its results stay as they were (timings, eval_chunk), as checkpoints/best
    diffs = run.manager.config_differences(config)  # (restore_latest compared nothing without checkpoints/latest)
    if diffs is None or diffs:
      raise CheckpointMismatchError(
          f"{workdir}: holds a finished run of another config ({'; '.join(diffs[:6]) if diffs else 'no readable config.json'}). "
          "Fix: open it with load_run/load_checkpoint, or train into a new --workdir"
      )
    return read_results(workdir)
  if main:
    write_config(workdir, config)
    write_schema(workdir, data.schema)
  t_train = time.time()
  evaluator = Evaluator(config, data, settings) if settings.sampled else None
  if settings.sampled:
    state, history = minibatch.run_minibatch_epochs(
        run,
        state,
        history,
        resumed,
        source=source,
        evaluator=evaluator,
        progress=progress,
        should_stop=should_stop,
    )
  else:
    state, history = run_epochs(run, state, history, progress=progress, should_stop=should_stop)
  train_time = time.time() - t_train
  results = final_evaluation(run, state, data, steps_per_epoch)
  results.update(
      {
          "wall_time_s": time.time() - t_start,
          "train_time_s": train_time,
          "device": _device_description(),
          "allocator": runtime.active_allocator(),
          "comparable_with_paper": data.comparable_with_paper,
          "features": data.feature_provenance,
          "split": data.provenance.get("split", "file"),
          "val_att_weight": val_att_weight(config),  # L_att's weight in the validation loss (absent: weight 1)
      }
  )
  if data.provenance.get("dataset") != config.get("dataset"):
    # A graph built or loaded otherwise than config.dataset says (in memory, from_hetero_data, ...): its own name,
    # and where it came from, not the config's dataset, which load_run would rebuild
    results.update(dataset=data.name, graph_source=data.source)
  if evaluator is not None:
    # How a mini-batch run's metrics were computed: `sampled` ones are estimates that load_run(...).predict(),
    # exact, does not reproduce (an audit compared them)
    results["eval"] = evaluator.settings.eval
    if evaluator.chunk_size is not None:
      results["eval_chunk"] = evaluator.chunk_size  # receivers per layer-wise chunk (chosen when batch.eval_chunk=0)
  run.manager.save_best(state, seeds, results)
  run.manager.close()
  if main:
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(results, f, indent=2)
  return results
