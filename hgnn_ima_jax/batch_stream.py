"""Epochs of sampled batches: `EpochPlan` (shuffled targets cut into batches) and `BatchStream` (resumable).

Batch b of epoch e is `sampler.sample(plan(e).batch(b), batch_rng(seed, e, b))`, whatever ran before, so
`BatchStream.state()` (seed, epoch, next batch) is all a checkpoint needs.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Mapping

import numpy as np

from hgnn_ima_jax.sampling import SampledSubgraph, batch_rng, check_batch_size, check_seed, plan_rng, target_ids

# --- epochs and resumable streams -----------------------------------------------------------


class EpochPlan:
  """Epoch `epoch`'s targets, shuffled by `plan_rng(seed, epoch)` and cut into batches of `batch_size`.

  Every target is in exactly one batch; the last batch is smaller unless `drop_last`.
  """

  def __init__(self, targets, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True, drop_last: bool = False):
    targets = np.asarray(targets, np.int64)
    check_batch_size(batch_size)
    if len(targets) == 0:
      raise ValueError("targets: empty. Fix: pass the training split's target ids")
    self.seed, self.epoch, self.batch_size, self.drop_last = check_seed(seed), int(epoch), int(batch_size), drop_last
    self.order = plan_rng(seed, epoch).permutation(targets) if shuffle else targets.copy()
    n = len(self.order)
    self.num_batches = n // self.batch_size if drop_last else -(-n // self.batch_size)
    if self.num_batches == 0:
      raise ValueError(
          f"batch_size={batch_size} with drop_last=True leaves no batch of the {n} targets. "
          "Fix: lower batch_size or set drop_last=False"
      )

  def __len__(self) -> int:
    return self.num_batches

  def batch(self, b: int) -> np.ndarray:
    if not 0 <= b < self.num_batches:
      raise IndexError(f"batch {b} outside 0..{self.num_batches - 1} of epoch {self.epoch}")
    return self.order[b * self.batch_size : (b + 1) * self.batch_size]

  def __iter__(self) -> Iterator[np.ndarray]:
    return (self.batch(b) for b in range(self.num_batches))


@dataclasses.dataclass
class SampledBatch:
  """One batch of a stream: where it is, its targets, its sub-graph, and the stream state after it."""

  epoch: int
  index: int
  targets: np.ndarray
  subgraph: SampledSubgraph
  state_after: dict


class BatchStream:
  """Epochs of sampled batches, resumable from a small state dict.

  `state()` is {'seed', 'epoch', 'next_batch', 'batch_size', 'num_targets', 'sampler'} — plain ints,
  strings and lists, for a checkpoint's JSON/metadata. Batch b of epoch e is always
  `sampler.sample(plan(e).batch(b), batch_rng(seed, e, b))`, whatever ran before.
  """

  def __init__(
      self,
      sampler,
      targets,
      batch_size: int,
      *,
      seed: int,
      epoch: int = 0,
      next_batch: int = 0,
      shuffle: bool = True,
      drop_last: bool = False,
  ):
    self.sampler = sampler
    self.targets = target_ids(sampler.data, targets) if hasattr(sampler, "data") else np.asarray(targets, np.int64)
    check_batch_size(batch_size)
    self.batch_size, self.seed, self.shuffle, self.drop_last = int(batch_size), check_seed(seed), shuffle, drop_last
    self.epoch, self.next_batch = int(epoch), int(next_batch)
    n = len(self.plan())
    if not 0 <= self.next_batch <= n:
      raise ValueError(
          f"next_batch={next_batch} outside 0..{n} for epoch {epoch}. "
          "Fix: resume from a state this stream's settings produced"
      )

  def plan(self, epoch: int | None = None) -> EpochPlan:
    """Epoch `epoch`'s plan (default: the current epoch); the last one is kept, as a shuffle is O(targets)."""
    epoch = self.epoch if epoch is None else int(epoch)
    cached = getattr(self, "_plan", None)  # one tuple, replaced whole: safe to read from a prefetch thread
    if cached is not None and cached[0] == epoch:
      return cached[1]
    plan = EpochPlan(
        self.targets, self.batch_size, seed=self.seed, epoch=epoch, shuffle=self.shuffle, drop_last=self.drop_last
    )
    self._plan = (epoch, plan)
    return plan

  def sample_batch(self, epoch: int, b: int, plan: EpochPlan | None = None) -> SampledBatch:
    plan = plan or self.plan(epoch)
    targets = plan.batch(b)
    sub = self.sampler.sample(targets, batch_rng(self.seed, epoch, b))
    after = (epoch, b + 1) if b + 1 < plan.num_batches else (epoch + 1, 0)
    return SampledBatch(epoch, b, targets, sub, self._state(*after))

  def epoch_batches(self) -> Iterator[SampledBatch]:
    """The current epoch's remaining batches; the stream advances as each is yielded (next epoch at the end)."""
    epoch, plan = self.epoch, self.plan()
    for b in range(self.next_batch, plan.num_batches):
      batch = self.sample_batch(epoch, b, plan)
      self.epoch, self.next_batch = batch.state_after["epoch"], batch.state_after["next_batch"]
      yield batch
    if self.epoch == epoch:  # an epoch resumed at its very end: move on
      self.epoch, self.next_batch = epoch + 1, 0

  def _state(self, epoch: int, next_batch: int) -> dict:
    return {
        "seed": self.seed,
        "epoch": int(epoch),
        "next_batch": int(next_batch),
        "batch_size": self.batch_size,
        "num_targets": int(len(self.targets)),
        "shuffle": bool(self.shuffle),
        "drop_last": bool(self.drop_last),
        "sampler": self.sampler.config(),
    }

  def state(self) -> dict:
    return self._state(self.epoch, self.next_batch)

  @classmethod
  def from_state(cls, sampler, targets, batch_size: int, state: Mapping) -> "BatchStream":
    """The stream `state` was saved from; refuses a state from other settings (it would give other batches)."""
    want = {"batch_size": int(batch_size), "num_targets": int(len(targets)), "sampler": sampler.config()}
    for key, value in want.items():
      got = state.get(key)
      if key == "sampler" and got is not None:
        got = _jsonish(got)
        value = _jsonish(value)
      if got != value:
        raise ValueError(
            f"sampler state: {key}={got!r} but this run has {value!r}. Fix: resume with the settings "
            "the checkpoint was written with, or start the run afresh"
        )
    return cls(
        sampler,
        targets,
        batch_size,
        seed=state["seed"],
        epoch=state["epoch"],
        next_batch=state["next_batch"],
        shuffle=state.get("shuffle", True),
        drop_last=state.get("drop_last", False),
    )


def _jsonish(x):
  """Lists for tuples, str keys: how a config looks after a JSON round trip."""
  if isinstance(x, Mapping):
    return {str(k): _jsonish(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonish(v) for v in x]
  return x
