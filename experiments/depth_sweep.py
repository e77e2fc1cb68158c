r"""Figure 3 of the paper: test Macro-F1 (mean ± std over seeds) against the number of layers K.

  python experiments/depth_sweep.py                                   # synthetic, HGNN-IMA, K = 0..4, 5 seeds
  python experiments/depth_sweep.py --datasets=douban,imdb --features=generated --layers=1,2,3
  python experiments/depth_sweep.py --tiny --layers=0,1 --seeds=2 --epochs=3

Each (dataset, K) cell is one `train_and_evaluate` run of `--model` with
`config.model.num_layers = K`, in `<workdir>/<dataset>/<model>-K<K>`; with `--resume`,
a finished run with the same resolved config anywhere under `<workdir>/<dataset>/`
(e.g. table2.py's HGNN-IMA at the default K) is reused. Writes `layers.png` (one line
per dataset, error bars = std over seeds), `layers.json` and `layers.md`.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # before JAX is imported: the allocator is chosen at process start
  from hgnn_ima_jax.runtime import reexec_with_fast_allocator

  reexec_with_fast_allocator()
  from hgnn_ima_jax.experiments.launch import catch_signals_early

  catch_signals_early()  # until main installs StopOnSignal

from hgnn_ima_jax.experiments import cell_runs, common, figures, formatting, run_options  # noqa: E402

DEFAULT_LAYERS = (0, 1, 2, 3, 4)


def _fanouts_for(dataset: str, k: int, opts: run_options.Options) -> dict:
  """{'batch.fanouts': one per layer of K} when --config.batch.fanouts gives one value for every layer (as `5` or
  `5,5`): no single list fits every K of a sweep. Fanouts that differ per hop must match each K (refused else)."""
  fanouts = tuple(run_options.base_config(dataset, opts).batch.fanouts or ())
  if k < 1 or not fanouts or len(fanouts) == k or any(f != fanouts[0] for f in fanouts):  # a hop may be a dict
    return {}
  return {"batch.fanouts": (fanouts[0],) * k}


def run_layers(
    opts: run_options.Options, workdir: str, layers=DEFAULT_LAYERS, model: str = "hgnn_ima", *, log=print
) -> dict:
  """Trains (or reuses) one cell per (dataset, K); returns the Figure 3 dict."""
  from hgnn_ima_jax.models import MODEL_NAMES

  if model not in MODEL_NAMES:
    raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODEL_NAMES)}")
  layers = tuple(int(k) for k in layers)
  if not layers or min(layers) < 0:
    raise ValueError(f"layers must be non-negative integers, got {layers}")
  configs = {
      (d, k): run_options.cell_config(d, opts, model, **{"model.num_layers": k, **_fanouts_for(d, k, opts)})
      for d in opts.datasets
      for k in layers
  }
  cell_runs.validate_cells(configs.values(), opts)  # every cell, before the first one trains
  runner = cell_runs.CellRunner(workdir, opts, log=log)
  runner.load_data(configs.values())
  curves = {}
  for dataset in opts.datasets:
    points = []
    for k in layers:
      cell = runner.run(configs[dataset, k], f"{model}-K{k}")
      points.append({"layers": k, **cell.scores(), "run_dir": cell.run_dir, "reused": cell.reused})
    curves[dataset] = points
  comparable = all(p["comparable_with_paper"] for pts in curves.values() for p in pts)
  return {
      "model": model,
      "layers": list(layers),
      "datasets": list(opts.datasets),
      "metric": "test_macro_f1",
      "curves": curves,
      "comparable_with_paper": comparable,
      "smoke_test": opts.tiny,
      "notes": (
          ([formatting.TINY_NOTE] if opts.tiny else []) + ([] if comparable else [formatting.NOT_COMPARABLE_NOTE])
      ),
  }


def plot_layers(table: dict, path: str) -> str:
  """A line per dataset: mean Macro-F1 against K with ± std error bars (Agg backend)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(5.5, 4.0))
  for dataset, pts in table["curves"].items():
    ks = [p["layers"] for p in pts]
    means = [p["test_macro_f1"]["mean"] for p in pts]
    stds = [p["test_macro_f1"]["std"] or 0.0 for p in pts]  # None: one seed, no bar
    ax.errorbar(ks, means, yerr=stds, marker="o", capsize=3, label=formatting.dataset_tag(dataset))
  ax.set_xlabel("number of layers K")
  ax.set_ylabel("test Macro-F1 (mean ± std over seeds)")
  ax.set_xticks(table["layers"])
  ax.set_title(f"{formatting.display_name(table['model'])}: Macro-F1 vs layers")
  ax.grid(alpha=0.3)
  ax.legend()
  notes = figures.footnotes(table["comparable_with_paper"], bool(table.get("smoke_test")))
  figures.add_footnotes(fig, notes)
  fig.tight_layout(rect=(0, 0.03 * max(1, len(notes)), 1, 1))
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def layers_markdown(table: dict) -> str:
  header = ["Dataset"] + [f"K={k}" for k in table["layers"]]
  rows = []
  for dataset, pts in table["curves"].items():
    marks = formatting.rank_marks([p["test_macro_f1"]["mean"] for p in pts])
    gen = "" if all(p["comparable_with_paper"] for p in pts) else "†"
    rows.append(
        [formatting.dataset_tag(dataset) + gen]
        + [formatting.emphasise(formatting.format_stats(p["test_macro_f1"]), mk) for p, mk in zip(pts, marks)]
    )
  parts = [
      f"## Figure 3: test Macro-F1 of {formatting.display_name(table['model'])} vs number of layers K (mean ± sample std (n−1) over seeds)"
      + (" — SMOKE TEST, not meaningful" if table.get("smoke_test") else ""),
      "",
      formatting.markdown_table(header, rows),
  ]
  if table["notes"]:
    parts += [""] + table["notes"]
  return "\n".join(parts)


def write_outputs(table: dict, workdir: str) -> dict[str, str]:
  written = common.write_table(workdir, "layers", table, layers_markdown(table))
  paths = {"png": os.path.join(workdir, "layers.png"), "json": written["json"], "markdown": written["markdown"]}
  plot_layers(table, paths["png"])
  return paths


def main(argv):
  from absl import app, flags

  from hgnn_ima_jax.models import MODEL_NAMES

  del argv
  FLAGS = flags.FLAGS
  opts = common.start(FLAGS)
  try:
    layers = run_options.parse_ints(FLAGS.layers)
  except ValueError:
    raise app.UsageError(f"--layers={FLAGS.layers}: give a comma list of integers such as 0,1,2,3,4") from None
  if not layers or min(layers) < 0:
    raise app.UsageError(f"--layers={FLAGS.layers}: give non-negative layer counts")
  common.refuse_repeats("layers", FLAGS.layers, layers)
  if FLAGS.model not in MODEL_NAMES:
    raise app.UsageError(f"--model={FLAGS.model} is unknown; choose one of {', '.join(MODEL_NAMES)}")
  common.run_script(
      "layers",
      FLAGS,
      lambda workdir: run_layers(opts, workdir, layers, FLAGS.model),
      write_outputs,
      layers_markdown,
      opts.should_stop,
  )


if __name__ == "__main__":
  from absl import flags

  run_options.define_common_flags("layers")
  flags.DEFINE_string("layers", ",".join(map(str, DEFAULT_LAYERS)), "comma list of layer counts K")
  flags.DEFINE_string("model", "hgnn_ima", "the model whose depth is varied (any of MODEL_NAMES)")
  common.run_main(main)
