"""What both training loops (full batch and mini-batch) report: per-epoch history rows and the interrupt."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

HistoryWriter = Callable[[list], None]  # called with every epoch's rows so far (see `history_rows`)


def history_rows(epoch: int, seeds, m: dict, lr: float) -> list[dict]:
  """One row per seed of an epoch's metrics: epoch, seed, lr, then each metric as a Python scalar."""
  rows = []
  for i, seed in enumerate(seeds):
    row = {"epoch": epoch, "seed": seed, "lr": lr}
    for k, v in m.items():
      row[k] = bool(v[i]) if k == "active" else float(v[i])
    rows.append(row)
  return rows


class TrainingInterrupted(Exception):
  """`should_stop` asked the run to stop; the checkpoint of `epoch` (finished epochs), and in mini-batch training
  `batch` finished batches of the next one (of `num_batches`), is saved in `workdir`."""

  def __init__(self, workdir: str, epoch: int, num_epochs: int, batch: int = 0, num_batches: int | None = None):
    self.workdir, self.epoch, self.num_epochs, self.batch = workdir, epoch, num_epochs, batch
    # "at epoch 0 of 3" read as nothing done when a mini-batch run stopped after batches of its first epoch
    self.where = (
        f"in epoch {epoch + 1} of {num_epochs} after batch {batch} of {num_batches}"
        if batch
        else f"at epoch {epoch} of {num_epochs}"
    )
    super().__init__(f"interrupted {self.where}; the checkpoint in {workdir} continues it")


@dataclasses.dataclass
class EpochSums:
  """Running sums of the training metrics within an epoch (kept in a mid-epoch checkpoint)."""

  batches: int = 0
  train_loss: Any = 0.0
  train_ce: Any = 0.0
  att_loss: Any = 0.0

  def add(self, m: dict):
    self.batches += 1
    for k in ("train_loss", "train_ce", "att_loss"):
      setattr(self, k, getattr(self, k) + np.asarray(m[k], np.float64))

  def means(self) -> dict:
    n = max(self.batches, 1)
    return {k: np.asarray(getattr(self, k), np.float64) / n for k in ("train_loss", "train_ce", "att_loss")}

  def to_meta(self) -> dict:
    return {
        "batches": self.batches,
        **{k: np.asarray(getattr(self, k)).tolist() for k in ("train_loss", "train_ce", "att_loss")},
    }

  @classmethod
  def from_meta(cls, meta: dict | None) -> "EpochSums":
    if not meta:
      return cls()
    return cls(int(meta["batches"]), *(np.asarray(meta[k], np.float64) for k in ("train_loss", "train_ce", "att_loss")))
