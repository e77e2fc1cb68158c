"""Epochs of sampled batches: `EpochPlan` (shuffled targets cut into batches) and `BatchStream` (any batch on demand).

Batch b of epoch e is `sampler.sample(plan(e).batch(b), batch_rng(seed, e, b))`, whatever ran before, so a
stream built again from the same settings samples the same batch. That is how mini-batch training resumes
(`minibatch.run_minibatch_epochs`): its checkpoint keeps the epoch and the next batch, beside the settings that
fix the sequence (`BatchSettings.sampler_meta()`); the resumed run builds its stream from the run's config and
goes on with `sample_batch(epoch, next_batch)`.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from hgnn_ima_jax.sampling import SampledSubgraph, batch_rng, check_batch_size, check_seed, plan_rng, target_ids

# --- epochs and streams ---------------------------------------------------------------------


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
  """Batch `index` of epoch `epoch`: its targets and its sampled sub-graph."""

  epoch: int
  index: int
  targets: np.ndarray
  subgraph: SampledSubgraph


class BatchStream:
  """Epochs of sampled batches, any batch on demand: `sample_batch(e, b)` is
  `sampler.sample(plan(e).batch(b), batch_rng(seed, e, b))`, whatever was sampled before."""

  def __init__(self, sampler, targets, batch_size: int, *, seed: int, shuffle: bool = True, drop_last: bool = False):
    self.sampler = sampler
    self.targets = target_ids(sampler.data, targets) if hasattr(sampler, "data") else np.asarray(targets, np.int64)
    check_batch_size(batch_size)
    self.batch_size, self.seed, self.shuffle, self.drop_last = int(batch_size), check_seed(seed), shuffle, drop_last

  def plan(self, epoch: int) -> EpochPlan:
    """Epoch `epoch`'s plan; the last one is kept, as a shuffle is O(targets)."""
    epoch = int(epoch)
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
    return SampledBatch(epoch, b, targets, self.sampler.sample(targets, batch_rng(self.seed, epoch, b)))
