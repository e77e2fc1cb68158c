"""Mini-batch training: sampled, padded sub-graphs per optimizer step; exact layer-wise evaluation.

`config.batch.mode` chooses the path of `train.train_and_evaluate`: 'full' (the default) is one
full-graph step per epoch (`train.run_epochs`); 'neighbor' and 'hgt' run `run_minibatch_epochs`:

* an epoch is one pass over the shuffled training targets in batches of `config.batch.size`
  (`batch_stream.BatchStream`); batch b of epoch e is sampled from (config.batch.seed, e, b) alone;
* each sampled sub-graph is padded to the smallest rung of a `budgets.BudgetLadder` that fits
  (`config.batch.buckets` rungs up to the sampler's upper bound), so the step compiles once per
  rung; padding nodes and edges are masked out of BatchNorm, L_att and the loss;
* with `config.batch.trim` (neighbour sampling; the default) the rungs have per-hop levels and layer k
  of the model computes only the nodes within the hops that later layers read (`budgets.Budget`);
* batches are prepared on a background thread, `config.batch.prefetch` ahead, while the device
  computes (0: in the training thread);
* every `config.batch.eval_every` epochs (and after the last) each seed is evaluated on the whole
  graph by exact layer-wise inference (`inference.LayerwiseInference`), or, with
  `config.batch.eval='sampled'`, on sampled sub-graphs of the validation targets; early stopping
  and checkpoint selection then run as in full batch (`steps.track`).

Seeds share the batch sequence: one sampled sub-graph feeds the vmapped step of every seed. Why:
sampling is the host's cost, and separate sequences would multiply it by the number of seeds and
take the seeds out of one compiled program; the seeds still differ in their initialisation and
dropout, as in full-batch training. The sequence depends on `config.batch.seed`, not on the seeds.

A checkpoint may fall inside an epoch (an interrupt after any batch): its metadata holds the
epoch, the next batch and the epoch's running sums, so a resumed run continues with exactly the
batches and updates an uninterrupted one would have made.
"""

from __future__ import annotations

import dataclasses
import functools
import queue
import threading
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from hgnn_ima_jax import distributed
from hgnn_ima_jax.batch_stream import BatchStream
from hgnn_ima_jax.budgets import Budget, BudgetLadder, padded_schema
from hgnn_ima_jax.graph import MMHN
from hgnn_ima_jax.hosts import host
from hgnn_ima_jax.memory_check import MemoryCheckedProgram, needed_bytes, remat_first
from hgnn_ima_jax.optim import learning_rate_at
from hgnn_ima_jax.options import BatchSettings  # noqa: F401 (re-exported: evaluation, train)
from hgnn_ima_jax.run_log import EpochSums, TrainingInterrupted, history_rows
from hgnn_ima_jax.runtime import decay_freed_memory
from hgnn_ima_jax.samplers import make_sampler
from hgnn_ima_jax.sampling import build_in_csr, part_rng, split_parts, target_ids
from hgnn_ima_jax.state import Batch, TrainState, create_model
from hgnn_ima_jax.steps import map_seeds, resolve_seed_batch, track, train_step
from hgnn_ima_jax.subgraph import PaddedSubgraph, SubgraphBuilder

MODES = ("full", "neighbor", "hgt")


class BatchSource:
  """The padded batches of every epoch, in order, optionally prepared ahead on a background thread.

  Built once per run: the in-edge CSR, the sampler, the feature store and the budget ladder.
  """

  def __init__(self, data: MMHN, settings: BatchSettings, targets: np.ndarray | None = None, *, shuffle: bool = True):
    self.data, self.settings = data, settings
    csr = build_in_csr(data)
    self.sampler = make_sampler(
        data,
        settings.mode,
        fanouts=list(settings.fanouts),
        num_samples=settings.num_samples,
        num_iterations=settings.num_iterations,
        csr=csr,
    )
    self.targets = target_ids(data, data.splits["train"] if targets is None else targets)
    self.builder = SubgraphBuilder(data, csr=csr)
    self.stream = BatchStream(
        self.sampler, self.targets, settings.size, seed=settings.seed, shuffle=shuffle, drop_last=settings.drop_last
    )
    # With parts, a rung holds one part (ceil(size / parts) targets): the ladder is calibrated on batches that size.
    part_size = -(-min(settings.size, len(self.targets)) // max(1, settings.parts))
    upper = Budget.for_sampler(self.sampler, part_size)
    calib = (
        self.stream
        if settings.parts == 1
        else BatchStream(self.sampler, self.targets, part_size, seed=settings.seed, shuffle=shuffle)
    )
    if not settings.trim:  # no levels: every layer runs on the whole sub-graph
      upper = upper.without_levels()
    self.ladder = (
        BudgetLadder.calibrate(calib, upper, num_buckets=settings.buckets)
        if settings.buckets > 1
        else BudgetLadder([upper])
    )
    self.part_ids: list[int] | None = None  # parts mode: the parts this process samples (set by the run)

  @property
  def largest(self) -> Budget:
    return self.ladder.rungs[-1]

  def num_batches(self, epoch: int) -> int:
    return len(self.stream.plan(epoch))

  def build(self, epoch: int, b: int):
    """Batch b of `epoch`, padded: one `PaddedSubgraph`, or with `part_ids` set, a `PartsItem` of those parts."""
    if self.part_ids is None:
      return self.builder.build(self.stream.sample_batch(epoch, b).subgraph, self.ladder)
    subs = self.sample_parts(epoch, b, self.part_ids)
    rung = max(self.ladder.index(self.ladder.choose(sub, self.data.schema)) for sub in subs)
    return PartsItem(subs, rung, [self.builder.build(sub, self.ladder.rungs[rung]) for sub in subs])

  def sample_parts(self, epoch: int, b: int, part_ids) -> list:
    """The sampled sub-graphs of parts `part_ids` of batch b (`distributed`): contiguous slices, own rng each."""
    parts = self.settings.parts
    slices = split_parts(self.stream.plan(epoch).batch(b), parts)
    return [self.sampler.sample(slices[p], part_rng(self.settings.seed, epoch, b, p, parts)) for p in part_ids]

  def pad_parts(self, item: "PartsItem", rung: int) -> list[PaddedSubgraph]:
    """The parts padded to `rung` (a larger rung than they need, when another process's parts needed it)."""
    if rung == item.rung:
      return item.padded
    return [self.builder.build(sub, self.ladder.rungs[rung]) for sub in item.subs]

  def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[int, PaddedSubgraph]]:
    """(b, padded batch) for b = start, ... of `epoch`; with prefetch, built on a background thread."""
    n = self.num_batches(epoch)
    if self.settings.prefetch <= 0:
      for b in range(start, n):
        yield b, self.build(epoch, b)
      return
    q: queue.Queue = queue.Queue(maxsize=self.settings.prefetch)
    stop = threading.Event()

    def produce():
      try:
        for b in range(start, n):
          item = (b, self.build(epoch, b))
          while not stop.is_set():
            try:
              q.put(item, timeout=0.1)
              break
            except queue.Full:
              continue
          if stop.is_set():
            return
        q.put(None)
      except BaseException as e:  # pylint: disable=broad-except  # re-raised in the training thread
        q.put(e)

    thread = threading.Thread(target=produce, name="batch-prefetch", daemon=True)
    thread.start()
    try:
      while True:
        item = q.get()
        if item is None:
          return
        if isinstance(item, BaseException):
          raise item
        yield item
    finally:
      stop.set()
      thread.join(timeout=5)


@dataclasses.dataclass
class PartsItem:
  """This process's parts of one global batch: sampled, and padded to the smallest rung fitting all of them."""

  subs: list
  rung: int
  padded: list


def device_batch(padded: PaddedSubgraph) -> Batch:
  """A padded sub-graph as the training step's `Batch` (the loss mask is the batch's targets)."""
  graph = jax.tree.map(jnp.asarray, padded.graph)
  return Batch(graph, jnp.asarray(padded.labels), {"train": jnp.asarray(padded.mask)})


class StepPrograms:
  """The jitted multi-seed train step, one per ladder rung (the model is built on the rung's schema)."""

  def __init__(self, config: ml_collections.ConfigDict, data: MMHN, tx, sharded: bool, mesh=None):
    self.config, self.schema, self.tx, self.mesh = config, data.schema, tx, mesh
    self.seed_batch = resolve_seed_batch(int(config.get("seed_batch", -1)), sharded)
    self.parts = int((config.get("batch") or {}).get("parts", 1) or 1)
    # One part on one data device is today's step (bit for bit); otherwise the parts step of `distributed`.
    self.parts_mode = self.parts > 1 or (mesh is not None and mesh.data > 1)
    self._programs: dict = {}

  def step(self, state: TrainState, item, source: BatchSource):
    """One optimizer step on a sampled batch (`source.epoch`'s item): its parts over the mesh, or today's step."""
    if not self.parts_mode:
      return self(item.budget)(state, device_batch(item))
    rung = distributed.agree_rung(item.rung)  # every process pads to the same rung: one program for all
    padded = source.pad_parts(item, rung)
    parts = distributed.stack_parts(padded)
    batch = distributed.global_parts_batch(parts, source.part_ids, self.parts, self.mesh)
    return self(source.ladder.rungs[rung])(state, batch)

  def model(self, budget: Budget):
    return create_model(self.config, padded_schema(self.schema, budget))

  def __call__(self, budget: Budget) -> Callable:
    if budget not in self._programs and self.parts_mode:
      one = functools.partial(
          distributed.parts_train_step,
          model=self.model(budget),
          tx=self.tx,
          ind_loss=bool(self.config.loss.ind_loss),
          att_weight=float(self.config.loss.att_weight),
          parts=self.parts,
      )
      self._programs[budget] = self._checked(distributed.make_parts_program(one, self.seed_batch, self.mesh), budget)
    if budget not in self._programs:
      one = functools.partial(
          train_step,
          model=self.model(budget),
          tx=self.tx,
          ind_loss=bool(self.config.loss.ind_loss),
          att_weight=float(self.config.loss.att_weight),
      )
      self._programs[budget] = self._checked(jax.jit(map_seeds(one, self.seed_batch), donate_argnums=(0,)), budget)
    return self._programs[budget]

  def smallest_bytes(self) -> int | None:
    """XLA's bytes per call (`memory_check.needed_bytes`) of the smallest compiled step, None before one is compiled
    or where the backend gives no estimate: the memory a run already needs, which evaluation may use too."""
    sizes = [needed_bytes(p.compiled) for p in self._programs.values() if p.compiled is not None]
    sizes = [n for n in sizes if n is not None]
    return min(sizes) if sizes else None

  def _checked(self, jitted, budget: Budget) -> MemoryCheckedProgram:
    b = self.config.get("batch") or {}
    what = (
        f"batch.size={b.get('size')}, batch.fanouts={tuple(BatchSettings.from_config(self.config).fanouts)}: the "
        "training step for batches "
        f"padded to {budget.total_nodes} nodes and {budget.total_edges} edges"
    )
    fix = "lower batch.size or batch.fanouts (memory grows with the sampled nodes), or split batches with batch.parts"
    return MemoryCheckedProgram(jitted, what, remat_first(self.config, fix))


@functools.partial(jax.jit, static_argnames=("rule", "patience", "selection"))
def _track_all(state: TrainState, ev: dict, epoch, *, rule: str, patience: int, selection: str) -> TrainState:
  return jax.vmap(lambda s, e: track(s, e, rule=rule, patience=patience, selection=selection, epoch=epoch))(state, ev)


def init_batch(source: BatchSource) -> tuple[Batch, Budget]:
  """The first batch (its part 0 with parts) padded to the smallest rung it fits, and that rung.

  Parameters do not depend on counts, so any rung gives the same initial state; the top rung is an
  upper bound that on a large graph approaches the whole graph, and initialising on it would cost a
  full-graph forward pass (tens of GB on a 10M-edge graph).
  """
  sub = source.stream.sample_batch(0, 0).subgraph if source.settings.parts == 1 else source.sample_parts(0, 0, [0])[0]
  rung = source.ladder.choose(sub, source.data.schema)
  return device_batch(source.builder.build(sub, rung)), rung


def run_minibatch_epochs(
    run,
    state: TrainState,
    history: list[dict],
    resumed: dict | None,
    *,
    source: BatchSource,
    evaluator,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[TrainState, list[dict]]:
  """`train.run_epochs` for sampled batches: trains until `config.num_epochs` or every seed stopped early.

  run: the `train.Run` of this training. resumed: the metadata of the checkpoint this run continues
  (None for a fresh run). Checkpoints every `checkpoint_every` epochs, and after the batch at which
  `should_stop()` (polled after every batch) asks to stop; then raises `TrainingInterrupted`.
  """
  config, settings = run.config, source.settings
  n, num_epochs = len(run.seeds), int(config.num_epochs)
  # One program per rung plus layer-wise evaluation: let freed pages go back to the kernel (runtime.py says why).
  decay_freed_memory()
  every = max(1, int(config.get("checkpoint_every", 10)))
  nb = source.num_batches(0)
  mesh = getattr(run, "mesh", None)
  programs = StepPrograms(config, source.data, run.tx, sharded=run.shard is not None, mesh=mesh)
  if programs.parts_mode:
    source.part_ids = mesh.local_parts(settings.parts) if mesh is not None else list(range(settings.parts))
  es = dict(
      rule=config.early_stopping.rule, patience=int(config.early_stopping.patience), selection=config.selection_metric
  )
  resumed = resumed or {}
  start_epoch, start_batch = int(resumed.get("epoch", 0)), int(resumed.get("next_batch", 0))
  sums = EpochSums.from_meta(resumed.get("epoch_sums"))

  def save(epoch: int, next_batch: int, force: bool = False):
    meta = {
        "epoch": epoch,
        "next_batch": next_batch,
        "epoch_sums": sums.to_meta(),
        "history": history,
        "sampler": {**settings.sampler_meta(), "epoch": epoch, "next_batch": next_batch},
    }
    run.manager.save_latest(epoch * nb + next_batch, state, meta, force=force)
    run.on_history(history)

  def stop(epoch: int, next_batch: int):
    save(epoch, next_batch, force=True)
    run.manager.close()
    return TrainingInterrupted(run.workdir, epoch, num_epochs, next_batch, nb)

  if should_stop is not None and should_stop():
    raise stop(start_epoch, start_batch)
  done = start_epoch
  for epoch in range(start_epoch, num_epochs):
    if not bool(np.asarray(host(state.active))[:n].any()):
      break
    first = start_batch if epoch == start_epoch else 0
    if first == 0:
      sums = EpochSums()
    bar = (
        tqdm(
            total=nb,
            initial=first,
            desc=f"{config.dataset}/{config.model_name} epoch {epoch + 1}/{num_epochs}",
            unit="batch",
            leave=False,
        )
        if progress
        else None
    )
    try:
      for b, item in source.epoch(epoch, first):
        state, m = programs.step(state, item, source)
        sums.add(host(m))
        if bar is not None:
          bar.set_postfix(loss=f"{float(np.mean(np.asarray(m['train_loss'])[:n])):.4f}")
          bar.update(1)
        if b + 1 < nb and should_stop is not None and should_stop():
          raise stop(epoch, b + 1)
    finally:
      if bar is not None:
        bar.close()
    row = {k: v for k, v in sums.means().items()}
    if (epoch + 1) % max(1, settings.eval_every) == 0 or epoch + 1 == num_epochs:
      ev = evaluator.evaluate(state, len(run.run_seeds), programs.smallest_bytes())
      active = np.asarray(host(state.active))
      state = _track_all(state, jax.tree.map(jnp.asarray, ev), jnp.asarray(epoch, jnp.int32), **es)
      row.update({k: v for k, v in ev.items() if k != "pred"})
    else:
      active = np.asarray(host(state.active))
      row.update(
          {
              k: np.full(len(run.run_seeds), np.nan)
              for k in ("val_loss", "train_micro_f1", "train_macro_f1", "val_micro_f1", "val_macro_f1")
          }
      )
    row["active"] = active
    row = {k: np.asarray(v)[:n] for k, v in row.items()}
    history.extend(history_rows(epoch, run.seeds, row, learning_rate_at(config, epoch * nb, nb)))
    sums, done = EpochSums(), epoch + 1
    if progress:
      act = row["active"]
      tqdm.write(
          f"epoch {epoch + 1}/{num_epochs}: loss {row['train_loss'][act].mean() if act.any() else float('nan'):.4f}"
          f" val_macro {np.nanmean(row['val_macro_f1'][act]) if act.any() else float('nan'):.4f}"
          f" seeds {int(act.sum())}/{n}"
      )
    if (epoch + 1) % every == 0:
      save(epoch + 1, 0)
    if should_stop is not None and should_stop():
      raise stop(epoch + 1, 0)
  save(done, 0, force=True)
  return state, history
