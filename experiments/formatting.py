"""Formatting of the artefact tables: model display names, mean ± std, best/second marks, Markdown
tables, the notes on generated features and smoke tests, NaN-safe JSON."""

from __future__ import annotations

import json
import math
import os
from typing import Sequence

NOT_COMPARABLE_NOTE = (
    "† features were generated (the synthetic dataset, or --features=generated for absent "
    "feature files): these numbers are NOT comparable with the paper's."
)
TINY_NOTE = (
    "SMOKE TEST (--tiny): experiments/configs/test.py sizes (a small model and a few epochs; the synthetic graph "
    "at a tenth of its size, other datasets whole). Within the code protocol's OneCycle warm-up (50 epochs) the "
    "learning rate stays near its start, so the models are barely trained: these numbers only show that the "
    "pipeline runs; they mean nothing, and cells may tie (equal ablation numbers do not make a variant a no-op)."
)
TINY_FIGURE_NOTE = "SMOKE TEST (--tiny): small model, few epochs; these numbers mean nothing"


def dataset_tag(dataset: str) -> str:
  """A directory name for a dataset name or generic-format path."""
  base = os.path.basename(os.path.normpath(str(dataset)))
  return base[:-4] if base.endswith(".npz") else base


def display_name(model: str) -> str:
  """'hgnn_ima' → 'HGNN-IMA', 'hgt_late' → 'HGT (late)', 'hgnn_ima-align' → 'HGNN-IMA-align'."""
  if model.startswith("hgnn_ima"):
    return "HGNN-IMA" + model[len("hgnn_ima") :]
  return {"hgt": "HGT (one modality)", "hgt_early": "HGT (early)", "hgt_late": "HGT (late)"}.get(model, model)


def format_stats(stats: dict | None, digits: int = 4) -> str:
  if stats is None:
    return "—"
  return f"{stats['mean']:.{digits}f} ± {format_number(stats['std'], digits)}"  # n/a: one seed


def format_number(x, digits: int = 4) -> str:
  return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def rank_marks(values: Sequence[float | None]) -> list[str]:
  """'best'/'second'/'' per value (higher is better; ties share a mark; None is unranked)."""
  distinct = sorted({v for v in values if v is not None and math.isfinite(v)}, reverse=True)
  marks = []
  for v in values:
    if v is None or not math.isfinite(v):
      marks.append("")
    elif v == distinct[0]:
      marks.append("best")
    elif len(distinct) > 1 and v == distinct[1]:
      marks.append("second")
    else:
      marks.append("")
  return marks


def column_marks(cells: dict, datasets, models, metric: str) -> dict[tuple[str, str], str]:
  """(dataset, model) -> `rank_marks` of the models' mean `metric` on that dataset (a results table's
  column); a cell marked 'applicable': False is unranked."""
  marks = {}
  for d in datasets:
    means = [cells[d][m][metric]["mean"] if cells[d][m].get("applicable", True) else None for m in models]
    marks.update({(d, m): mk for m, mk in zip(models, rank_marks(means))})
  return marks


def emphasise(text: str, mark: str) -> str:
  """Markdown: best in bold, second in italics (the paper's convention)."""
  return f"**{text}**" if mark == "best" else f"*{text}*" if mark == "second" else text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def json_safe(obj):
  """NaN/inf → None (standard JSON has no NaN); tuples → lists; NumPy scalars → Python."""
  if isinstance(obj, dict):
    return {str(k): json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [json_safe(v) for v in obj]
  if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
    try:
      obj = obj.item()
    except (ValueError, AttributeError):
      pass
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  return obj


def write_json(path: str, obj):
  with open(path, "w") as f:
    json.dump(json_safe(obj), f, indent=2, allow_nan=False)


def write_text(path: str, text: str):
  with open(path, "w") as f:
    f.write(text if text.endswith("\n") else text + "\n")
