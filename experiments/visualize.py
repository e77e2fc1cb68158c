r"""Embeddings and attention of a trained run: a t-SNE of the fused embeddings Z and the case study
behind the paper's remark that "our nested β aligns more closely with node categories than α".

  python experiments/visualize.py --run=runs/synthetic-hgnn_ima-20250101-120000   # a train.py workdir
  python experiments/visualize.py --dataset=douban --features=generated            # trains one itself
  python experiments/visualize.py --run=runs/x --seed=3 --points=all --max_points=3000

(a) t-SNE (sklearn, fixed `--random_state`) of Z for the test nodes (or all target nodes),
    a random subset of `--max_points` when there are more; coloured by class. The JSON
    reports the silhouette score (Euclidean, class labels as clusters) of Z itself and of
    the 2-D t-SNE map.
(b) Attention case study. For each attention kind, the per-edge weights averaged over
    heads: β (the nested weight that aggregates messages; per modality for -cross/+inf),
    α^m (the inter-node attention of each modality) and β2 (the alignment term), or α
    per channel for the HGT baselines. Pairs of target nodes (i, j):
      * direct: where the schema has target→target relations (AMAZON ii, AMAZON-1), the
        weight of edge j→i at layer k;
      * two-hop: otherwise (DOUBAN-like movie←director/actor←movie), every path
        j → hub → i, weight = w^{(k−1)}(hub←j) × w^{(k)}(i←hub), summed over hubs and
        relation pairs, layers (k−1, k) for k = 1..K−1 (a one-layer model uses layer 0 twice).
    Each relation's weights are divided by the number of relations into the receiving type
    (the code's cross-relation mean), so a receiver's pair weights sum to at most 1.
    Reported per kind: mean weight over same-class and different-class pairs and their
    ratio; the same after dividing each pair's weight by its weight under uniform attention
    (1 = uniform, removes degree effects); and, over receivers that have both kinds of
    pairs, the attention mass on same-class pairs against the uniform-attention mass.
    Uses ALL target labels (train, val and test): this is an analysis of a trained model,
    not an evaluation.

Writes tsne.png, tsne.npz, attention.png (one row of panels per layer pair, each titled, with a
caption of what the reference lines mean) and visualize.json into --workdir; the default is the
--run directory itself, or runs/visualize-<time> for a run trained here. Prints the numbers.
"""

from __future__ import annotations

import json
import os

if __name__ == "__main__":  # before JAX is imported: the allocator is chosen at process start
  from hgnn_ima_jax.runtime import reexec_with_fast_allocator

  reexec_with_fast_allocator()

import numpy as np  # noqa: E402

from hgnn_ima_jax import cli_flags  # noqa: E402
from hgnn_ima_jax.experiments import cell_runs, common, figures, formatting, launch, run_options  # noqa: E402
from hgnn_ima_jax.experiments.attention_study import (
    attention_case_study,
    attention_markdown,  # noqa: E402
    base_model_name,
    channel_names,
)

# --- forward pass -----------------------------------------------------------------------


def model_outputs(model, variables, graph):
  """Eval-mode forward with embeddings and per-layer attention, on the host."""
  import jax

  fn = jax.jit(lambda v, g: model.apply(v, g, train=False, return_embeddings=True, return_attention=True))
  return jax.device_get(fn(variables, graph))


# --- t-SNE ------------------------------------------------------------------------------


def tsne_embedding(
    z: np.ndarray, labels: np.ndarray, nodes: np.ndarray, *, max_points: int = 2000, random_state: int = 0
) -> dict:
  """t-SNE of z[nodes] (a random subset of `max_points` when larger) and silhouette scores."""
  from sklearn.manifold import TSNE
  from sklearn.metrics import silhouette_score

  nodes = np.asarray(nodes)
  if len(nodes) > max_points:
    nodes = np.sort(np.random.default_rng(random_state).choice(nodes, max_points, replace=False))
  x, y = np.asarray(z, np.float64)[nodes], np.asarray(labels)[nodes]
  perplexity = float(min(30.0, max(1.0, (len(nodes) - 1) / 3.0)))
  # One OpenMP thread: Barnes-Hut t-SNE slows down tens of times when its threads compete for busy
  # cores (JAX's pool, other jobs), and one thread keeps the map reproducible for a fixed seed.
  from threadpoolctl import threadpool_limits

  with threadpool_limits(limits=1, user_api="openmp"):
    coords = TSNE(n_components=2, random_state=random_state, init="pca", perplexity=perplexity).fit_transform(x)
  ok = 2 <= len(np.unique(y)) < len(y)
  return {
      "nodes": nodes,
      "coords": coords,
      "labels": y,
      "perplexity": perplexity,
      "random_state": random_state,
      "silhouette_embedding": float(silhouette_score(x, y)) if ok else float("nan"),
      "silhouette_tsne": float(silhouette_score(coords, y)) if ok else float("nan"),
  }


# --- the whole analysis -----------------------------------------------------------------


def analyse(
    model,
    variables,
    graph,
    data,
    model_name: str,
    *,
    points: str = "test",
    max_points: int = 2000,
    random_state: int = 0,
) -> dict:
  """t-SNE + attention case study of one set of parameters (no files written)."""
  out = model_outputs(model, variables, graph)
  schema = data.schema
  if points == "test":
    nodes = np.asarray(data.splits["test"])
  elif points == "all":
    nodes = np.arange(len(data.labels))
  else:
    raise ValueError(f"points must be 'test' or 'all', got {points!r}")
  tsne = tsne_embedding(
      np.asarray(out.embeddings["fused"]), data.labels, nodes, max_points=max_points, random_state=random_state
  )
  attention = out.attention or ()
  names = channel_names(model_name, schema, np.asarray(attention[0]["alpha"]).shape[1]) if attention else ()
  nested = base_model_name(model_name) == "hgnn_ima"  # HGT layers' β is their α
  study = attention_case_study(schema, graph, attention, data.labels, names, nested)
  return {"tsne": tsne, "attention": study}


def visualize(
    run,
    out_dir: str,
    *,
    run_dir: str | None = None,
    seed: int | None = None,
    points: str = "test",
    max_points: int = 2000,
    random_state: int = 0,
    tiny: bool = False,
) -> dict:
  """Analyses one seed of a `restore.LoadedRun`; writes tsne.png, tsne.npz, attention.png, visualize.json.

  `tiny`: the run has `--tiny` smoke sizes; every output says its numbers mean nothing.
  """
  os.makedirs(out_dir, exist_ok=True)
  seed = run.seeds[0] if seed is None else int(seed)
  if seed not in run.seeds:
    raise ValueError(f"seed {seed} is not in the run's seeds {run.seeds}")
  model_name = run.config.model_name
  res = analyse(
      run.model,
      run.variables(seed),
      run.graph,
      run.data,
      model_name,
      points=points,
      max_points=max_points,
      random_state=random_state,
  )
  comparable = bool(run.data.comparable_with_paper)
  m = run.config.model
  title = (
      f"{formatting.dataset_tag(run.config.dataset)} / {formatting.display_name(model_name)} / seed {seed} "
      f"(K={m.num_layers}, d={m.hidden}, {run.results.get('epochs', '?')} epochs)"
  )
  notes = figures.footnotes(comparable, tiny)
  paths = {
      "tsne_png": os.path.join(out_dir, "tsne.png"),
      "attention_png": os.path.join(out_dir, "attention.png"),
      "tsne_npz": os.path.join(out_dir, "tsne.npz"),
      "json": os.path.join(out_dir, "visualize.json"),
  }
  tsne = res["tsne"]
  np.savez(paths["tsne_npz"], nodes=tsne["nodes"], coords=tsne["coords"], labels=tsne["labels"])
  figures.plot_tsne(
      tsne, paths["tsne_png"], f"t-SNE of fused embeddings Z, {points} nodes (n={len(tsne['nodes'])})\n{title}", notes
  )
  study = res["attention"]
  if study["last"] is not None:
    figures.plot_attention(study, paths["attention_png"], title, notes)
  else:
    paths.pop("attention_png")
  summary = {
      "dataset": run.config.dataset,
      "model": model_name,
      "seed": seed,
      "run": run_dir,
      "comparable_with_paper": comparable,
      "smoke_test": tiny,
      "notes": ([] if comparable else [formatting.NOT_COMPARABLE_NOTE]) + ([formatting.TINY_NOTE] if tiny else []),
      "tsne": {
          "points": points,
          "n": int(len(tsne["nodes"])),
          "perplexity": tsne["perplexity"],
          "random_state": random_state,
          "silhouette_embedding": tsne["silhouette_embedding"],
          "silhouette_tsne": tsne["silhouette_tsne"],
          "png": os.path.basename(paths["tsne_png"]),
      },
      "attention": {**study, "png": os.path.basename(paths["attention_png"]) if "attention_png" in paths else None},
      "paths": paths,
  }
  formatting.write_json(paths["json"], summary)
  return summary


def load_or_train(opts: run_options.Options, workdir: str, *, run_dir: str | None, dataset: str, model: str, log=print):
  """A `LoadedRun`: from `run_dir`, or trained (or reused with --resume) in `<workdir>/<dataset>/<model>`."""
  from hgnn_ima_jax.experiments.runs import load_run

  if run_dir:
    return load_run(run_dir), run_dir
  config = cell_runs.validate_cells([run_options.cell_config(dataset, opts, model)], opts)[0]
  runner = cell_runs.CellRunner(workdir, opts, log=log)
  cell = runner.run(config, model)
  return load_run(cell.run_dir, data=runner.data(config)), cell.run_dir


# train-only flags: with --run they would be silently ignored
_TRAINING_FLAGS = ("dataset", "model", "seeds", "epochs", "features", "data_dir", "protocol", "tiny", "resume")


def refuse_training_flags(flag_values, opts: run_options.Options) -> None:
  """With --run the run is analysed as it was trained: a training flag given with it is an error, not ignored."""
  from absl import app

  given = [f"--{name}" for name in _TRAINING_FLAGS if flag_values[name].present]
  given += [f"--config.{path}" for path in opts.overrides]
  if given:
    raise app.UsageError(
        f"{', '.join(given)} with --run={flag_values.run}: a finished run is analysed as it was trained, so "
        "training flags do not apply. Fix: drop them, or drop --run to train a run with them"
    )


def saved_run_facts(run_dir: str) -> tuple[tuple[int, ...], bool]:
  """(the run's seeds, whether it is a --tiny smoke test) from its files, before it is loaded."""
  from hgnn_ima_jax import run_dir as run_files

  seeds = tuple(int(s) for s in run_files.read_config(run_dir).seeds)
  results = os.path.join(run_dir, "results.json")
  tiny = False
  if os.path.isfile(results):
    with open(results) as f:
      tiny = bool(json.load(f).get("smoke_test", False))
  return seeds, tiny


def main(argv):
  from absl import app, flags

  from hgnn_ima_jax.models import MODEL_NAMES

  del argv
  FLAGS = flags.FLAGS
  common.quiet_logging()
  if FLAGS.model not in MODEL_NAMES:
    raise app.UsageError(f"--model={FLAGS.model} is unknown; choose one of {', '.join(MODEL_NAMES)}")
  if FLAGS.resume and not FLAGS.workdir:
    raise app.UsageError("--resume needs the --workdir of the earlier run")
  if FLAGS.max_points < 2:  # t-SNE needs two points; sklearn's own error came after the run had loaded
    raise app.UsageError(f"--max_points={FLAGS.max_points}: give at least 2 (default 2000)")
  if FLAGS.run and not os.path.isfile(os.path.join(FLAGS.run, "config.json")):  # was a traceback when loading
    # a table script's workdir holds its runs one level down, <dataset>/<cell>: name them
    cells = common.cell_dirs(FLAGS.run)
    hint = f"; its cells are runs: {', '.join(cells[:4])}{' ...' if len(cells) > 4 else ''}" if cells else ""
    common.fail(
        f"--run={FLAGS.run}: holds no training run (no config.json){hint}. "
        "Fix: give the --workdir of an experiments/train.py run or a table script's cell, or drop --run to train "
        "one here"
    )
  opts = common.options_or_exit(FLAGS)
  if FLAGS.run:
    refuse_training_flags(FLAGS, opts)
    seeds, tiny = saved_run_facts(FLAGS.run)
  else:
    seeds, tiny = opts.seeds or run_options.base_config(FLAGS.dataset, opts).seeds, opts.tiny
  if FLAGS.seed is not None and FLAGS.seed not in seeds:  # before a run is trained or loaded
    raise app.UsageError(
        f"--seed={FLAGS.seed} is not a seed of {'the run' if FLAGS.run else 'the run to train'} {list(seeds)}; "
        "give one of them (default: the first)"
    )
  # A finished run's figures go next to it; a run trained here gets a new directory.
  workdir = FLAGS.workdir or FLAGS.run or common.default_workdir("visualize")
  if not FLAGS.run:
    common.refuse_a_training_run(workdir, f"--run={workdir} draws that run's figures; a new --workdir trains one")
  if FLAGS.resume:  # (with --run, refused above as a training flag)
    common.refuse_resume_without_cells(workdir)
  import jax

  print(f"devices: {jax.devices()}; workdir: {workdir}")
  try:
    run, run_dir = load_or_train(opts, workdir, run_dir=FLAGS.run, dataset=FLAGS.dataset, model=FLAGS.model)
    summary = visualize(
        run,
        workdir,
        run_dir=run_dir,
        seed=FLAGS.seed,
        points=FLAGS.points,
        max_points=FLAGS.max_points,
        random_state=FLAGS.random_state,
        tiny=tiny,
    )
  except common.user_errors() as e:
    common.fail(e)
  t = summary["tsne"]
  print(
      f"\nrun {run_dir}, seed {summary['seed']}: t-SNE of {t['n']} {t['points']} nodes; silhouette of Z "
      f"{formatting.format_number(t['silhouette_embedding'], 3)}, of the t-SNE map "
      f"{formatting.format_number(t['silhouette_tsne'], 3)}"
  )
  print(attention_markdown(summary["attention"]))
  for n in summary["notes"]:
    print(n)
  print("\nwrote " + ", ".join(summary["paths"].values()))


if __name__ == "__main__":
  from absl import app, flags

  run_options.define_common_flags(
      "visualize",
      multi_dataset=False,
      default_seeds="1",
      workdir_default="the --run directory; without --run, runs/visualize-<time>",
  )
  flags.DEFINE_string(
      "run",
      None,
      "workdir of a finished train.py run (or a cell of table2.py/ablation.py); "
      "without it, a run is trained on --dataset first",
  )
  flags.DEFINE_string("dataset", "synthetic", "dataset to train on when --run is not given")
  flags.DEFINE_string("model", "hgnn_ima", "model to train when --run is not given")
  flags.DEFINE_integer("seed", None, "which seed of the run to analyse (default: its first)")
  flags.DEFINE_enum("points", "test", ["test", "all"], "target nodes in the t-SNE")
  flags.DEFINE_integer("max_points", 2000, "at most this many nodes in the t-SNE (a random subset)")
  flags.DEFINE_integer("random_state", 0, "t-SNE and subset seed")
  app.run(
      cli_flags.one_line_usage_errors(main),
      flags_parser=launch.app_flags_parser(lambda: run_options.config_help(flags.FLAGS)),
  )
