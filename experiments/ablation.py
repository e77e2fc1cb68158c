r"""Table 4 of the paper: Macro-F1 (mean ± std over seeds) of HGNN-IMA and its ablations per dataset.

  python experiments/ablation.py                                  # synthetic, all seven variants, 5 seeds
  python experiments/ablation.py --datasets=douban,imdb,amazon --features=generated
  python experiments/ablation.py --variants=-cross,-align --tiny --seeds=2
  python experiments/ablation.py --workdir=runs/paper --resume    # reuse table2.py's HGNN-IMA cells

Variants (spec §7): -cross, -adapt, +inf, -nei, -align, -L_att, -L_ind; each is the model
name `hgnn_ima<variant>` trained with `train_and_evaluate` in `<workdir>/<dataset>/<model>`.
A variant whose resolved config equals HGNN-IMA's (e.g. -L_ind in the code profile of
DOUBAN/IMDB/AMAZON, which already trains on the fused CE only) is not trained again: it
reuses HGNN-IMA's run and is marked "=". -L_att is inapplicable ("\" as in the paper)
where no relation's source type misses a modality (L_att is 0 there). Writes
`ablation.md` and `ablation.json`.
"""

from __future__ import annotations

if __name__ == "__main__":  # before JAX is imported: the allocator is chosen at process start
  from hgnn_ima_jax.runtime import reexec_with_fast_allocator

  reexec_with_fast_allocator()
  from hgnn_ima_jax.experiments.launch import catch_signals_early

  catch_signals_early()  # until main installs StopOnSignal

from hgnn_ima_jax import choices  # noqa: E402
from hgnn_ima_jax.experiments import cell_runs, common, formatting, run_options  # noqa: E402

VARIANTS = ("-cross", "-adapt", "+inf", "-nei", "-align", "-L_att", "-L_ind")
VARIANTS_HELP = "comma list of Table 4 variants: " + ", ".join(VARIANTS)
OURS = "hgnn_ima"
INAPPLICABLE = "\\"


def latt_applicable(schema) -> bool:
  """L_att (Eq. 7) has terms only on relations whose source type lacks a modality."""
  return any(
      schema.missing_modalities(schema.relation_src(r)) and schema.num_edges[r] > 0 for r in range(schema.num_relations)
  )


def run_ablation(opts: run_options.Options, workdir: str, variants=VARIANTS, *, log=print) -> dict:
  """Trains (or reuses) HGNN-IMA and each variant per dataset; returns the Table 4 dict."""
  from hgnn_ima_jax.models import ABLATIONS

  variants = tuple(variants)
  unknown = [v for v in variants if v not in ABLATIONS]
  if unknown:
    raise ValueError(f"unknown variants {unknown}; choose from {', '.join(ABLATIONS)}")
  models = (OURS, *(OURS + v for v in variants))
  configs = {(d, m): run_options.cell_config(d, opts, m) for d in opts.datasets for m in models}
  cell_runs.validate_cells(configs.values(), opts)  # every cell, before the first one trains
  runner = cell_runs.CellRunner(workdir, opts, log=log)
  runner.load_data(configs.values())
  out = {}
  for dataset in opts.datasets:
    ours_cfg = configs[dataset, OURS]
    ours = runner.run(ours_cfg, OURS)
    ours_sig = cell_runs.signature(ours_cfg)
    row = {"hgnn_ima": _entry(ours, same_as_ours=False)}
    for v in variants:
      model = OURS + v
      cfg = configs[dataset, model]
      if v == "-L_att" and not latt_applicable(runner.data(cfg).schema):
        row[model] = {"applicable": False, "reason": "no relation's source type misses a modality: L_att is 0"}
        log(f"[{formatting.dataset_tag(dataset)}/{model}] inapplicable (full data)")
        continue
      cell = runner.run(cfg, model)
      row[model] = _entry(cell, same_as_ours=cell_runs.signature(cfg) == ours_sig)
    out[dataset] = row
  return build_ablation(out, opts.datasets, variants, tiny=opts.tiny)


def _entry(cell: cell_runs.Cell, *, same_as_ours: bool) -> dict:
  scores = cell.scores()
  return {
      "applicable": True,
      **scores,
      "features_generated": not scores["comparable_with_paper"],
      "same_as_ours": same_as_ours,
      "run_dir": cell.run_dir,
      "reused": cell.reused,
  }


def build_ablation(rows: dict[str, dict[str, dict]], datasets, variants, *, tiny: bool = False) -> dict:
  """{'datasets', 'variants', 'models', 'cells': {dataset: {model: entry}}, 'comparable_with_paper', 'notes'}."""
  models = [OURS + v for v in variants] + [OURS]
  comparable = all(
      e.get("comparable_with_paper", True) for row in rows.values() for e in row.values() if e.get("applicable")
  )
  notes = [formatting.TINY_NOTE] if tiny else []
  if not comparable:
    notes.append(formatting.NOT_COMPARABLE_NOTE)
  if any(e.get("same_as_ours") for row in rows.values() for e in row.values()):
    notes.append(
        "= this variant's resolved config equals HGNN-IMA's under this profile (e.g. -L_ind in the code "
        "profile, which already trains on the fused CE only), so it reuses HGNN-IMA's run."
    )
  if any(not e.get("applicable", True) for row in rows.values() for e in row.values()):
    notes.append(f"{INAPPLICABLE} inapplicable: no node type misses a modality (full data), so L_att is 0.")
  return {
      "datasets": list(datasets),
      "variants": list(variants),
      "models": models,
      "metric": "test_macro_f1",
      "cells": rows,
      "comparable_with_paper": comparable,
      "smoke_test": tiny,
      "notes": notes,
  }


def ablation_markdown(table: dict) -> str:
  """Table 4 as Markdown: rows = variants then Ours, columns = datasets; best bold, second italic."""
  datasets, models = table["datasets"], table["models"]
  marks = formatting.column_marks(table["cells"], datasets, models, "test_macro_f1")
  rows = []
  for m in models:
    label = "Ours (HGNN-IMA)" if m == OURS else m[len(OURS) :]
    row = [label]
    for d in datasets:
      e = table["cells"][d][m]
      if not e.get("applicable"):
        row.append(INAPPLICABLE)
        continue
      text = formatting.emphasise(formatting.format_stats(e["test_macro_f1"]), marks[(d, m)])
      text += ("†" if e["features_generated"] else "") + (" =" if e.get("same_as_ours") and m != OURS else "")
      row.append(text)
    rows.append(row)
  n_seeds = sorted({len(e["seeds"]) for row in table["cells"].values() for e in row.values() if e.get("applicable")})
  parts = [
      f"## Table 4: test Macro-F1 of ablative models, mean ± sample std (n−1) over {'/'.join(map(str, n_seeds))} seed(s)"
      + (" — SMOKE TEST, not meaningful" if table.get("smoke_test") else ""),
      "",
      formatting.markdown_table(["Variants"] + [formatting.dataset_tag(d) for d in datasets], rows),
  ]
  if table["notes"]:
    parts += [""] + table["notes"]
  return "\n".join(parts)


def write_outputs(table: dict, workdir: str) -> dict[str, str]:
  return common.write_table(workdir, "ablation", table, ablation_markdown(table))


if __name__ == "__main__":
  # choices.ABLATIONS, not models.ABLATIONS: the same names (a test keeps them equal) without importing JAX before
  # the logs are quieted.
  # A leading '-' would read as a flag: pass --variants=-cross,-align (with '=').
  common.run_choices_script(
      "ablation", "variants", VARIANTS, VARIANTS_HELP, choices.ABLATIONS, run_ablation, write_outputs, ablation_markdown
  )
