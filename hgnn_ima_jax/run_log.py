"""What both training loops (full batch and mini-batch) report: per-epoch history rows and the interrupt."""

from __future__ import annotations

from typing import Callable

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
  """`should_stop` asked the run to stop; the checkpoint of `epoch` (finished epochs) is saved in `workdir`."""

  def __init__(self, workdir: str, epoch: int, num_epochs: int):
    self.workdir, self.epoch, self.num_epochs = workdir, epoch, num_epochs
    super().__init__(f"interrupted at epoch {epoch} of {num_epochs}; the checkpoint in {workdir} continues it")
