r"""Tables 2 and 3 of the paper: models × datasets × seeds → Micro/Macro-F1 mean ± std, STD and t-test.

  python experiments/table2.py                                   # synthetic; HGT early/late, HGNN-IMA; 5 seeds
  python experiments/table2.py --datasets=douban,imdb,amazon --features=generated
  python experiments/table2.py --models=hgt,hgt_early,hgt_late,hgnn_ima --seeds=0,1,2
  python experiments/table2.py --tiny --seeds=2 --epochs=3       # a smoke run on CPU
  python experiments/table2.py --workdir=runs/paper --resume     # reuse finished cells

Each (dataset, model) cell is one `train_and_evaluate` run over all seeds (vmapped), in
`<workdir>/<dataset>/<model>`. Writes `table2.md` (Table 2 and Table 3) and `table2.json`.

Table 3 (per dataset): the STD of HGNN-IMA and of the strongest HGT variant in the run
(highest mean Macro-F1 among hgt, hgt_early, hgt_late) and a t-test between their per-seed
Macro-F1: the two-sample Student test of `metrics.t_test` (df = 2n − 2), and, because the
paper's (t, p) pairs all match df = n − 1 = 4, the paired test over seeds as well.
"""

from __future__ import annotations

if __name__ == "__main__":  # before JAX is imported: the allocator is chosen at process start
  from hgnn_ima_jax.runtime import reexec_with_fast_allocator

  reexec_with_fast_allocator()
  from hgnn_ima_jax.experiments.launch import catch_signals_early

  catch_signals_early()  # until main installs StopOnSignal

from hgnn_ima_jax import choices  # noqa: E402
from hgnn_ima_jax.experiments import cell_runs, common, formatting, run_options  # noqa: E402

DEFAULT_MODELS = ("hgt_early", "hgt_late", "hgnn_ima")
MODELS_HELP = "comma list of model names (any of MODEL_NAMES: hgnn_ima, hgt, hgt_early, hgt_late, hgnn_ima-cross, ...)"
OURS = "hgnn_ima"
HGT_MODELS = ("hgt", "hgt_early", "hgt_late")


def run_table2(opts: run_options.Options, workdir: str, models=DEFAULT_MODELS, *, log=print) -> dict:
  """Trains (or reuses) every (dataset, model) cell; returns the Table 2/3 dict (see `build_table2`)."""
  from hgnn_ima_jax.models import MODEL_NAMES

  models = tuple(models)
  unknown = [m for m in models if m not in MODEL_NAMES]
  if unknown:
    raise ValueError(f"unknown models {unknown}; choose from {', '.join(MODEL_NAMES)}")
  if not opts.datasets:
    raise ValueError("no datasets given")
  configs = {(d, m): run_options.cell_config(d, opts, m) for d in opts.datasets for m in models}
  cell_runs.validate_cells(configs.values(), opts)  # every cell, before the first one trains
  runner = cell_runs.CellRunner(workdir, opts, log=log)
  runner.load_data(configs.values())
  cells = {}
  for dataset in opts.datasets:
    cells[dataset] = {m: runner.run(configs[dataset, m], m) for m in models}
  return build_table2(cells, opts.datasets, models, tiny=opts.tiny)


def _cell_entry(cell: cell_runs.Cell) -> dict:
  r = cell.results
  return {
      "test_micro_f1": r["test_micro_f1"],
      "test_macro_f1": r["test_macro_f1"],
      "per_seed_micro_f1": [s["test_micro_f1"] for s in r["per_seed"]],
      "per_seed_macro_f1": [s["test_macro_f1"] for s in r["per_seed"]],
      "seeds": list(r["seeds"]),
      "best_epochs": [s["best_epoch"] for s in r["per_seed"]],
      "epochs": r.get("epochs"),
      "protocol": r.get("protocol"),
      "comparable_with_paper": bool(r.get("comparable_with_paper", True)),
      "features_generated": not bool(r.get("comparable_with_paper", True)),
      "device": r.get("device"),
      "train_time_s": r.get("train_time_s"),
      "run_dir": cell.run_dir,
      "reused": cell.reused,
  }


def paired_t_test(a, b) -> dict:
  """Paired t-test over matched seeds (`metrics.t_test(paired=True)`); NaN when not computable."""
  import numpy as np

  from hgnn_ima_jax import metrics

  if len(a) != len(b) or len(a) < 2:
    return {"t": float("nan"), "p": float("nan"), "df": None}
  with np.errstate(all="ignore"):
    return metrics.t_test(a, b, paired=True)


def table3_entry(ours: dict, baselines: dict[str, dict]) -> dict | None:
  """Table 3 for one dataset: `ours` and `baselines` are `_cell_entry` dicts (by model name)."""
  import warnings

  from hgnn_ima_jax import metrics

  if not baselines:
    return None
  hgt = max(baselines, key=lambda m: baselines[m]["test_macro_f1"]["mean"])
  b = baselines[hgt]
  a_scores, b_scores = ours["per_seed_macro_f1"], b["per_seed_macro_f1"]
  if min(len(a_scores), len(b_scores)) >= 2:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # zero variance in both: scipy warns and returns NaN
      student = metrics.t_test(a_scores, b_scores)
  else:
    student = {"t": float("nan"), "p": float("nan"), "df": len(a_scores) + len(b_scores) - 2}
  # Seeds are matched when both runs used the same seed list.
  paired = (
      paired_t_test(a_scores, b_scores)
      if ours["seeds"] == b["seeds"]
      else {"t": float("nan"), "p": float("nan"), "df": None}
  )
  return {
      "ours": OURS,
      "hgt": hgt,
      "ours_std_macro_f1": ours["test_macro_f1"]["std"],
      "hgt_std_macro_f1": b["test_macro_f1"]["std"],
      "ours_std_micro_f1": ours["test_micro_f1"]["std"],
      "hgt_std_micro_f1": b["test_micro_f1"]["std"],
      "t_test": student,
      "paired_t_test": paired,
      "n_seeds": len(a_scores),
      "comparable_with_paper": ours["comparable_with_paper"] and b["comparable_with_paper"],
  }


def build_table2(cells: dict[str, dict[str, cell_runs.Cell]], datasets, models, *, tiny: bool = False) -> dict:
  """The JSON-able tables: {'datasets', 'models', 'cells': {dataset: {model: entry}}, 'table3': {dataset: ...}}."""
  out_cells = {d: {m: _cell_entry(cells[d][m]) for m in models} for d in datasets}
  table3 = {}
  for d in datasets:
    if OURS in models:
      baselines = {m: out_cells[d][m] for m in models if m in HGT_MODELS}
      table3[d] = table3_entry(out_cells[d][OURS], baselines)
    else:
      table3[d] = None
  comparable = all(e["comparable_with_paper"] for row in out_cells.values() for e in row.values())
  notes = [formatting.TINY_NOTE] if tiny else []
  if not comparable:
    notes.append(formatting.NOT_COMPARABLE_NOTE)
  if OURS not in models or not any(m in HGT_MODELS for m in models):
    notes.append("Table 3 needs hgnn_ima and at least one HGT model (hgt, hgt_early, hgt_late) in --models.")
  return {
      "datasets": list(datasets),
      "models": list(models),
      "metric_order": ["test_micro_f1", "test_macro_f1"],
      "cells": out_cells,
      "table3": table3,
      "comparable_with_paper": comparable,
      "smoke_test": tiny,
      "notes": notes,
  }


def table2_markdown(table: dict) -> str:
  """Table 2 (and Table 3 below it) as Markdown; best per column in bold, second in italics."""
  datasets, models = table["datasets"], table["models"]
  header = ["Model"] + [f"{formatting.dataset_tag(d)} {lab}" for d in datasets for lab in ("Micro-F1", "Macro-F1")]
  marks = {k: formatting.column_marks(table["cells"], datasets, models, k) for k in ("test_micro_f1", "test_macro_f1")}
  rows = []
  for m in models:
    row = [formatting.display_name(m)]
    for d in datasets:
      e = table["cells"][d][m]
      for metric in ("test_micro_f1", "test_macro_f1"):
        text = formatting.emphasise(formatting.format_stats(e[metric]), marks[metric][(d, m)])
        row.append(text + ("†" if e["features_generated"] else ""))
    rows.append(row)
  n_seeds = sorted({len(table["cells"][d][m]["seeds"]) for d in datasets for m in models})
  parts = [
      f"## Table 2: test Micro/Macro-F1, mean ± sample std (n−1) over {'/'.join(map(str, n_seeds))} seed(s)"
      + (" — SMOKE TEST, not meaningful" if table.get("smoke_test") else ""),
      "",
      formatting.markdown_table(header, rows),
  ]
  t3 = table3_markdown(table)
  if t3:
    parts += ["", t3]
  if table["notes"]:
    parts += [""] + [f"{n}" for n in table["notes"]]
  return "\n".join(parts)


def table3_markdown(table: dict) -> str:
  datasets = [d for d in table["datasets"] if table["table3"].get(d)]
  if not datasets:
    return ""
  t3 = table["table3"]
  fmt = formatting.format_number
  header = ["Metrics"] + [formatting.dataset_tag(d) for d in datasets]
  rows = [
      ["Ours (STD)"] + [fmt(t3[d]["ours_std_macro_f1"]) for d in datasets],
      ["HGT (STD)"] + [f"{fmt(t3[d]['hgt_std_macro_f1'])} ({formatting.display_name(t3[d]['hgt'])})" for d in datasets],
      ["t-value"] + [fmt(t3[d]["t_test"]["t"], 2) for d in datasets],
      ["p-value"] + [fmt(t3[d]["t_test"]["p"], 3) for d in datasets],
      ["t-value (paired)"] + [fmt(t3[d]["paired_t_test"]["t"], 2) for d in datasets],
      ["p-value (paired)"] + [fmt(t3[d]["paired_t_test"]["p"], 3) for d in datasets],
  ]
  note = (
      "STD of test Macro-F1 over seeds. HGT = the strongest HGT variant in this run by mean Macro-F1. "
      "t/p: two-sample Student t-test on per-seed Macro-F1 (metrics.t_test, df = 2n−2); paired: over "
      "matched seeds (df = n−1; the paper's (t, p) pairs are consistent with df = 4 for 5 seeds). "
      "n/a: fewer than 2 seeds, or no variance."
  )
  return "\n".join(
      [
          "## Table 3: STD and t-test, HGNN-IMA vs the strongest HGT",
          "",
          formatting.markdown_table(header, rows),
          "",
          note,
      ]
  )


def write_outputs(table: dict, workdir: str) -> dict[str, str]:
  return common.write_table(workdir, "table2", table, table2_markdown(table))


if __name__ == "__main__":
  common.run_choices_script(
      "table2", "models", DEFAULT_MODELS, MODELS_HELP, choices.MODEL_NAMES, run_table2, write_outputs, table2_markdown
  )
