"""What the scripts write and print about a training run: history.json/.csv and the results table."""

from __future__ import annotations

import csv
import functools
import json
import os

from hgnn_ima_jax import run_dir

from .formatting import format_stats, json_safe


def write_history(workdir: str, rows: list[dict]):
  """history.json (every row; a metric not computed that epoch is null, strict JSON) and history.csv (one line
  per epoch and seed) in `workdir`."""
  with open(os.path.join(workdir, "history.json"), "w") as f:
    json.dump(json_safe(rows), f, allow_nan=False)
  if rows:
    with open(os.path.join(workdir, "history.csv"), "w", newline="") as f:
      w = csv.DictWriter(f, fieldnames=list(rows[0]))
      w.writeheader()
      w.writerows(rows)


def history_writer(workdir: str):
  """`train_and_evaluate(..., on_history=history_writer(workdir))`: the history files of that run."""
  return functools.partial(write_history, workdir)


def resume_note(workdir: str, num_epochs: int, batch_mode: str) -> str:
  """What --resume continues, said before it does (the progress bar shows it; --noprogress said nothing): the epochs
  the latest finished checkpoint holds, that there is none yet (train.py refuses such a --resume; a table script trains
  the cell from the start), or that the run finished (its saved results are printed again). The table scripts say it
  of each cell an earlier run started.

  The checkpoint, not history.json, is what training continues: history.json is written once a checkpoint's save has
  started, so a run killed mid-save has it ahead of every finished checkpoint. batch_mode: config.batch.mode; a
  full-batch checkpoint's step is its epoch, a mini-batch one's counts optimizer steps, so its metadata says.
  """
  if os.path.exists(os.path.join(workdir, "results.json")):
    return f"resuming {workdir}: the run finished; its saved results"
  steps = run_dir.saved_steps(workdir)
  if not steps:
    return f"{workdir} has no checkpoint yet: training it from the start"
  step = steps[-1]
  if batch_mode == "full":
    done = f"{step} of {num_epochs} epoch(s) done"
  else:
    try:
      meta = run_dir.latest_meta(workdir, step)
      epoch, batch = int(meta["epoch"]), int(meta.get("next_batch", 0))
    except (OSError, ValueError, KeyError, TypeError):  # training reads it again, and says what is wrong
      done = f"checkpoint {step}, its metadata unreadable"
    else:
      done = f"{epoch} of {num_epochs} epoch(s) done" + (
          f", and {batch} batch(es) of epoch {epoch + 1}" if batch else ""
      )
  return f"resuming {workdir} from its last checkpoint ({done})"


def results_table(results: dict, paper_dataset: bool = True) -> str:
  """A small plain-text table of per-seed and mean ± std test scores; generated features get a note, which says
  that the numbers are not the paper's only for a `paper_dataset` (a user's own graph was never the paper's)."""
  lines = [f"{'seed':>6} {'best ep':>8} {'test Micro-F1':>14} {'test Macro-F1':>14}"]
  for r in results["per_seed"]:
    lines.append(f"{r['seed']:>6} {r['best_epoch']:>8} {r['test_micro_f1']:>14.4f} {r['test_macro_f1']:>14.4f}")
  lines.append(
      f"{'mean':>6} {'':>8} {format_stats(results['test_micro_f1']):>14} "
      f"{format_stats(results['test_macro_f1']):>14}"
  )
  if not results.get("comparable_with_paper", True):
    paper = "; these numbers are not comparable with the paper" if paper_dataset else ""
    lines.append(f"NOTE: {generated_features(results)}{paper}.")
  return "\n".join(lines)


def generated_features(results: dict) -> str:
  """Which features were generated, by results.json's `features` (node type/modality -> provenance).

  A real graph with some files absent (IMDB's posters here) says which, so that the note does not read as if
  the text features were made up too.
  """
  features = results.get("features") or {}
  generated = sorted(k for k, v in features.items() if v == "generated")
  if not generated or "real" not in features.values():  # all made up (a synthetic graph): nothing to name
    return "features were generated"
  return f"{', '.join(generated)} features were generated (the rest come from the dataset)"
