"""The paper-artefact scripts (experiments/table2.py, ablation.py, depth_sweep.py, visualize.py) end to end.

Runtime: one module-scoped `table2.py` subprocess trains two tiny cells (HGNN-IMA and
HGT-early, 1 layer, 2 seeds, 2 epochs, synthetic at scale 0.1); the ablation, layers and
visualize tests reuse its workdir with `resume`, so they train only what is new
(HGNN-IMA-L_att and K = 0). The rest are host-side checks on small hand-made inputs.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil

import numpy as np
import pytest
from script_helpers import run_python

from hgnn_ima_jax.experiments import (
    ablation,
    attention_study,
    cell_runs,
    depth_sweep,
    figures,
    formatting,
    run_options,
    table2,
)

REPO = pathlib.Path(__file__).resolve().parents[1]

TINY_FLAGS = [
    "--tiny",
    "--datasets=synthetic",
    "--seeds=2",
    "--epochs=2",
    "--config.model.num_layers=1",
    "--config.synthetic.scale=0.1",
    "--config.checkpoint_every=100",
    "--noprogress",
]


def tiny_options(**kw) -> run_options.Options:
  """The same cells as TINY_FLAGS, for calling the library functions."""
  base = dict(
      datasets=("synthetic",),
      seeds=(0, 1),
      epochs=2,
      tiny=True,
      progress=False,
      overrides={"model.num_layers": 1, "synthetic.scale": 0.1, "checkpoint_every": 100},
  )
  base.update(kw)
  return run_options.Options(**base)


def _is_f1(x) -> bool:
  return isinstance(x, float) and 0.0 <= x <= 1.0


def _png_ok(path) -> None:
  import matplotlib.image

  assert os.path.getsize(path) > 1000
  img = matplotlib.image.imread(path)
  assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


@pytest.fixture(scope="module")
def paper_workdir(tmp_path_factory):
  """A table2.py run (launcher, flags and --config overrides) whose cells the other tests reuse."""
  workdir = tmp_path_factory.mktemp("paper")
  proc = run_python(
      "experiments/table2.py", *TINY_FLAGS, "--models=hgnn_ima,hgt_early", f"--workdir={workdir}", timeout=900
  )
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
  return workdir, proc.stdout


# --- table2.py ----------------------------------------------------------------------------


def test_table2_writes_tables_2_and_3(paper_workdir):
  from hgnn_ima_jax import metrics

  workdir, stdout = paper_workdir
  assert "Table 2" in stdout and "Table 3" in stdout
  table = json.loads((workdir / "table2.json").read_text())
  md = (workdir / "table2.md").read_text()
  assert table["datasets"] == ["synthetic"] and table["models"] == ["hgnn_ima", "hgt_early"]
  for model in ("hgnn_ima", "hgt_early"):
    e = table["cells"]["synthetic"][model]
    # the cell's own results say --tiny too, for `visualize.py --run=<cell>`
    assert json.loads((workdir / "synthetic" / model / "results.json").read_text())["smoke_test"] is True
    assert e["seeds"] == [0, 1] and len(e["per_seed_macro_f1"]) == 2
    for metric in ("test_micro_f1", "test_macro_f1"):
      per_seed = e[f"per_seed_{metric[5:]}"]
      assert all(_is_f1(v) for v in per_seed)
      assert e[metric]["mean"] == pytest.approx(np.mean(per_seed))
      assert e[metric]["std"] == pytest.approx(np.std(per_seed, ddof=1))
    # The synthetic dataset is generated: every cell and the table say so.
    assert e["features_generated"] and not e["comparable_with_paper"]
    assert f"{formatting.format_stats(e['test_macro_f1'])}" in md
  assert not table["comparable_with_paper"] and "NOT comparable" in md and "†" in md
  # --tiny outputs say they are a smoke test, in the heading and in a note.
  assert table["smoke_test"] and "SMOKE TEST, not meaningful" in md.splitlines()[0] and formatting.TINY_NOTE in md
  t3 = table["table3"]["synthetic"]
  ours, hgt = table["cells"]["synthetic"]["hgnn_ima"], table["cells"]["synthetic"]["hgt_early"]
  assert t3["hgt"] == "hgt_early"
  assert t3["ours_std_macro_f1"] == pytest.approx(ours["test_macro_f1"]["std"])
  expect = metrics.t_test(ours["per_seed_macro_f1"], hgt["per_seed_macro_f1"])
  for key in ("t", "p"):
    if math.isfinite(expect[key]):
      assert t3["t_test"][key] == pytest.approx(expect[key])
    else:  # no variance in either model: NaN is written as null and printed n/a
      assert t3["t_test"][key] is None and "n/a" in md


def test_table2_resume_reuses_every_cell(paper_workdir, monkeypatch):
  from hgnn_ima_jax import train

  workdir, _ = paper_workdir
  monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: pytest.fail("a finished cell was retrained"))
  table = table2.run_table2(tiny_options(resume=True), str(workdir), ("hgnn_ima", "hgt_early"), log=None)
  assert all(e["reused"] for e in table["cells"]["synthetic"].values())
  before = json.loads((workdir / "table2.json").read_text())
  assert (
      table["cells"]["synthetic"]["hgnn_ima"]["test_macro_f1"]
      == before["cells"]["synthetic"]["hgnn_ima"]["test_macro_f1"]
  )


def test_resume_refuses_a_cell_of_the_old_validation_rule(paper_workdir, tmp_path, monkeypatch):
  """A review found finished cells of the old validation loss (L_att at weight 1 whatever loss.att_weight) reused
  as equal to new ones; results.json now records L_att's weight there."""
  from hgnn_ima_jax import train

  workdir = tmp_path / "old"
  shutil.copytree(paper_workdir[0] / "synthetic" / "hgnn_ima", workdir / "synthetic" / "hgnn_ima")
  config = json.loads((workdir / "synthetic" / "hgnn_ima" / "config.json").read_text())
  config["loss"]["att_weight"] = 0.5  # as if trained with --config.loss.att_weight=0.5
  (workdir / "synthetic" / "hgnn_ima" / "config.json").write_text(json.dumps(config))
  results_file = workdir / "synthetic" / "hgnn_ima" / "results.json"
  results = json.loads(results_file.read_text())
  assert results["val_att_weight"] == 1.0
  results_file.write_text(json.dumps({**results, "val_att_weight": 0.5}))
  monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: pytest.fail("a finished cell was retrained"))
  options = tiny_options(resume=True)
  options.overrides["loss.att_weight"] = 0.5
  table2.run_table2(options, str(workdir), ("hgnn_ima",), log=None)  # trained under this rule: reused
  del results["val_att_weight"]  # written before the rule: refused
  results_file.write_text(json.dumps(results))
  with pytest.raises(cell_runs.CellConfigError, match=r"was trained when L_att entered the validation loss"):
    table2.run_table2(options, str(workdir), ("hgnn_ima",), log=None)


def test_resume_says_where_an_unfinished_cell_goes_on(paper_workdir, tmp_path, monkeypatch):
  """From an audit: a continued cell did not say where it resumed (train.py --resume does)."""
  from hgnn_ima_jax import train

  class Stop(Exception):
    pass

  monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: (_ for _ in ()).throw(Stop()))
  cell = tmp_path / "w" / "synthetic" / "hgnn_ima"
  shutil.copytree(paper_workdir[0] / "synthetic" / "hgnn_ima", cell)
  (cell / "results.json").unlink()  # stopped after its last checkpoint
  epochs = len({r["epoch"] for r in json.loads((cell / "history.json").read_text())})

  def last_line():
    lines = []
    with pytest.raises(Stop):
      table2.run_table2(tiny_options(resume=True), str(tmp_path / "w"), ("hgnn_ima",), log=lines.append)
    return lines[-1]

  assert last_line() == f"[synthetic/hgnn_ima] resuming {cell} from its last checkpoint ({epochs} of 2 epoch(s) done)"
  shutil.rmtree(cell / "checkpoints")  # stopped before its first checkpoint
  assert last_line() == f"[synthetic/hgnn_ima] {cell} has no checkpoint yet: training it from the start"


def test_resume_refuses_a_cell_trained_with_another_config(paper_workdir):
  workdir, _ = paper_workdir
  with pytest.raises(
      cell_runs.CellConfigError,
      match=r"holds a run with a different config \(.*num_epochs.*\)\. Fix: use a new --workdir",
  ):
    table2.run_table2(tiny_options(resume=True, epochs=3), str(workdir), ("hgnn_ima",), log=None)


def _fake_cell(model, macro, micro=None, generated=False, seeds=(0, 1, 2)):
  micro = micro or macro
  from hgnn_ima_jax import metrics

  results = {
      "seeds": list(seeds),
      "per_seed": [{"test_micro_f1": a, "test_macro_f1": b, "best_epoch": 1} for a, b in zip(micro, macro)],
      "test_micro_f1": metrics.mean_std(micro),
      "test_macro_f1": metrics.mean_std(macro),
      "comparable_with_paper": not generated,
  }
  return cell_runs.Cell("d", model, f"/x/{model}", results, False)


def test_table3_uses_the_strongest_hgt_and_marks_best_and_second():
  import scipy.stats

  cells = {
      "d": {
          "hgt_early": _fake_cell("hgt_early", [0.70, 0.72, 0.71]),
          "hgt_late": _fake_cell("hgt_late", [0.75, 0.74, 0.77]),
          "hgnn_ima": _fake_cell("hgnn_ima", [0.80, 0.81, 0.79], generated=True),
      }
  }
  table = table2.build_table2(cells, ["d"], ["hgt_early", "hgt_late", "hgnn_ima"])
  t3 = table["table3"]["d"]
  assert t3["hgt"] == "hgt_late"  # the higher mean Macro-F1, not the last or first listed
  ref = scipy.stats.ttest_ind([0.80, 0.81, 0.79], [0.75, 0.74, 0.77])
  assert t3["t_test"]["t"] == pytest.approx(ref.statistic) and t3["t_test"]["p"] == pytest.approx(ref.pvalue)
  paired = scipy.stats.ttest_rel([0.80, 0.81, 0.79], [0.75, 0.74, 0.77])
  assert t3["paired_t_test"]["p"] == pytest.approx(paired.pvalue) and t3["paired_t_test"]["df"] == 2
  md = table2.table2_markdown(table)
  row = {
      line.split("|")[1].strip(): line
      for line in md.splitlines()
      if line.startswith("| HGT") or line.startswith("| HGNN")
  }
  assert "**0.8000 ± 0.0100**†" in row["HGNN-IMA"] and "*0.7533" in row["HGT (late)"]
  assert "**" not in row["HGT (early)"] and "*" not in row["HGT (early)"].replace("|", "")
  assert not table["comparable_with_paper"]


# --- ablation.py --------------------------------------------------------------------------


def test_ablation_reuses_ours_and_marks_identical_variants(paper_workdir):
  workdir, _ = paper_workdir
  table = ablation.run_ablation(tiny_options(resume=True), str(workdir), ("-L_att", "-L_ind"), log=None)
  paths = ablation.write_outputs(table, str(workdir))
  row = table["cells"]["synthetic"]
  ours = row["hgnn_ima"]
  assert ours["reused"] and ours["run_dir"] == str(workdir / "synthetic" / "hgnn_ima")
  # The tiny (code-profile) config already trains without per-modality CE: -L_ind is HGNN-IMA.
  assert row["hgnn_ima-L_ind"]["same_as_ours"] and row["hgnn_ima-L_ind"]["run_dir"] == ours["run_dir"]
  latt = row["hgnn_ima-L_att"]
  assert latt["applicable"] and not latt["same_as_ours"] and not latt["reused"]
  assert (workdir / "synthetic" / "hgnn_ima-L_att" / "results.json").exists()
  assert all(_is_f1(v) for e in (ours, latt) for v in e["per_seed_macro_f1"])
  saved = json.loads(pathlib.Path(paths["json"]).read_text())
  assert saved["models"] == ["hgnn_ima-L_att", "hgnn_ima-L_ind", "hgnn_ima"]
  md = pathlib.Path(paths["markdown"]).read_text()
  assert "| -L_att |" in md and "| Ours (HGNN-IMA) |" in md and " =" in md and "NOT comparable" in md
  assert saved["smoke_test"] and formatting.TINY_NOTE in md  # identical tiny cells are not no-op variants


def test_latt_is_inapplicable_without_missing_modalities():
  from hgnn_ima_jax import data_utils

  full = data_utils.load_dataset(
      "synthetic", single_type=True, num_targets=60, feature_dim=8, modality_dims=(("image", 8),)
  )
  missing = data_utils.load_dataset("synthetic", scale=0.05, feature_dim=8, modality_dims=(("image", 8),))
  assert not ablation.latt_applicable(full.schema)
  assert ablation.latt_applicable(missing.schema)
  ours = {
      "applicable": True,
      "test_macro_f1": {"mean": 0.8, "std": 0.01},
      "seeds": [0, 1],
      "comparable_with_paper": True,
      "features_generated": False,
      "same_as_ours": False,
  }
  rows = {
      "amazon1": {
          "hgnn_ima": ours,
          "hgnn_ima-L_att": {"applicable": False, "reason": "full data"},
          "hgnn_ima-align": {**ours, "test_macro_f1": {"mean": 0.7, "std": 0.02}},
      }
  }
  md = ablation.ablation_markdown(ablation.build_ablation(rows, ["amazon1"], ["-align", "-L_att"]))
  assert "| -L_att | \\ |" in md
  assert "| Ours (HGNN-IMA) | **0.8000 ± 0.0100** |" in md and "| -align | *0.7000 ± 0.0200* |" in md


# --- depth_sweep.py -----------------------------------------------------------------------


def test_layers_plots_macro_f1_against_depth(paper_workdir, tmp_path):
  workdir, _ = paper_workdir
  table = depth_sweep.run_layers(tiny_options(resume=True), str(workdir), (0, 1), log=None)
  out = tmp_path / "layers"
  paths = depth_sweep.write_outputs(table, str(out))
  pts = table["curves"]["synthetic"]
  assert [p["layers"] for p in pts] == [0, 1]
  # K = 1 is table2's HGNN-IMA cell (same resolved config), K = 0 is new.
  assert pts[1]["reused"] and pts[1]["run_dir"] == str(workdir / "synthetic" / "hgnn_ima")
  assert not pts[0]["reused"] and (workdir / "synthetic" / "hgnn_ima-K0" / "results.json").exists()
  for p in pts:
    assert _is_f1(p["test_macro_f1"]["mean"]) and p["test_macro_f1"]["std"] >= 0
  _png_ok(paths["png"])
  saved = json.loads(pathlib.Path(paths["json"]).read_text())
  assert saved["layers"] == [0, 1] and len(saved["curves"]["synthetic"]) == 2 and not saved["comparable_with_paper"]
  assert saved["smoke_test"] and "SMOKE TEST" in pathlib.Path(paths["markdown"]).read_text()
  assert "K=0" in pathlib.Path(paths["markdown"]).read_text()


# --- visualize.py -------------------------------------------------------------------------


def test_visualize_cli_on_a_trained_run(paper_workdir):
  workdir, _ = paper_workdir
  out = workdir / "synthetic" / "hgnn_ima"  # without --workdir the figures go into the run's own directory
  new_dirs = lambda: set(workdir.iterdir()) | set((REPO / "runs").glob("visualize-*"))
  before = new_dirs()
  proc = run_python("experiments/visualize.py", f"--run={out}", "--seed=1", timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert new_dirs() == before  # no new folder
  assert "mean same" in proc.stdout and "beta" in proc.stdout
  summary = json.loads((out / "visualize.json").read_text())
  assert summary["seed"] == 1 and summary["model"] == "hgnn_ima" and not summary["comparable_with_paper"]
  assert summary["smoke_test"]  # a --tiny cell, told by its results.json (no --tiny flag with --run)
  t = summary["tsne"]
  assert t["n"] == 140 and -1 <= t["silhouette_embedding"] <= 1 and -1 <= t["silhouette_tsne"] <= 1
  att = summary["attention"]
  assert att["mode"] == "two_hop" and att["labels"] == "all"
  assert sorted(att["relations"]) == ["ma>am", "md>dm"]
  kinds = att["last"]["kinds"]
  assert {"beta", "alpha[text]", "alpha[image]", "beta2"} <= set(kinds)
  for s in kinds.values():
    assert s["n_same"] > 0 and s["n_diff"] > 0
    for key in (
        "mean_same",
        "mean_diff",
        "ratio",
        "norm_mean_same",
        "norm_mean_diff",
        "mass_same",
        "mass_same_uniform",
    ):
      assert isinstance(s[key], float) and math.isfinite(s[key]) and s[key] > 0, (key, s[key])
  _png_ok(out / "tsne.png")
  _png_ok(out / "attention.png")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--model=hgt_late", "--config.model.hidden=32"], "error: --model, --config.model.hidden with --run="),
        (["--tiny"], "error: --tiny with --run="),
        (["--seed=9"], "error: --seed=9 is not a seed of the run [0, 1]"),
        (["--max_points=1"], "error: --max_points=1: give at least 2"),
    ],
)
def test_visualize_refuses_what_it_cannot_honour_before_any_work(paper_workdir, tmp_path, flags, message):
  """Training flags with --run used to be ignored; a seed the run lacks and too few t-SNE points were tracebacks
  after the run had loaded, leaving an empty --workdir."""
  workdir, _ = paper_workdir
  out = tmp_path / "out"
  proc = run_python(
      "experiments/visualize.py", f"--run={workdir / 'synthetic' / 'hgnn_ima'}", *flags, f"--workdir={out}", timeout=120
  )
  assert proc.returncode == 1 and proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
  assert not out.exists()


def test_every_dataset_loads_before_the_first_cell_trains(tmp_path, monkeypatch):
  from hgnn_ima_jax import train
  from hgnn_ima_jax.data_utils import DatasetError, load_dataset, write_generic

  bad = write_generic(tmp_path / "bad.npz", load_dataset("synthetic", scale=0.1))
  arrays = dict(np.load(bad))
  arrays["features/movie/text"][3, 1] = np.nan  # a bad array in the last dataset of the run
  np.savez(bad, **arrays)
  monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: pytest.fail("a cell trained before the data check"))
  with pytest.raises(DatasetError, match="NaN or inf"):
    table2.run_table2(tiny_options(datasets=("synthetic", str(bad))), str(tmp_path / "t2"), ("hgnn_ima",), log=None)


def test_visualize_refuses_a_run_directory_without_a_run(tmp_path):
  """A directory without config.json is one line; a table script's workdir (from an audit: the same line, though
  --help says a cell is a run) also names its cells, <dataset>/<cell>."""
  fix = (
      "Fix: give the --workdir of an experiments/train.py run or a table script's cell, or drop --run to train one "
      "here"
  )
  proc = run_python("experiments/visualize.py", f"--run={tmp_path}", timeout=120)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  assert proc.stderr.strip() == f"error: --run={tmp_path}: holds no training run (no config.json). {fix}"
  assert list(tmp_path.iterdir()) == []
  for cell in ("douban/hgnn_ima", "douban/hgt_late"):
    (tmp_path / "table" / cell).mkdir(parents=True)
    (tmp_path / "table" / cell / "config.json").write_text("{}")
  proc = run_python("experiments/visualize.py", f"--run={tmp_path / 'table'}", timeout=120)
  cells = f"{tmp_path / 'table' / 'douban' / 'hgnn_ima'}, {tmp_path / 'table' / 'douban' / 'hgt_late'}"
  assert proc.returncode == 2 and proc.stderr.strip() == (
      f"error: --run={tmp_path / 'table'}: holds no training run (no config.json); its cells are runs: {cells}. {fix}"
  )


def test_attention_figure_has_a_row_per_layer_pair_titles_and_a_caption():
  kind = {
      "mean_same": 0.04,
      "mean_diff": 0.03,
      "ci95_same": 0.001,
      "ci95_diff": 0.001,
      "norm_mean_same": 1.1,
      "norm_mean_diff": 0.9,
      "norm_ci95_same": 0.01,
      "norm_ci95_diff": 0.01,
      "mass_same": 0.7,
      "mass_same_uniform": 0.65,
  }
  layers_ = [{"layer": k, "hop_layers": [k - 1, k], "kinds": {"beta": kind, "alpha[text]": kind}} for k in (1, 2)]
  study = {"mode": "two_hop", "relations": ["ma>am"], "layers": layers_, "last": layers_[-1]}
  fig = figures.attention_figure(study, "t", figures.footnotes(False, True))
  titles = [ax.get_title() for ax in fig.axes]
  assert len(titles) == 6 and all(titles)
  assert sum("layers 0→1" in t for t in titles) == 3 and sum("layers 1→2" in t for t in titles) == 3
  texts = " ".join(" ".join(t.get_text() for t in fig.texts).split())  # the caption is wrapped
  assert "1.0 (dashed) = uniform" in texts and "SMOKE TEST" in texts and "not comparable" in texts


def _hub_graph():
  """4 movies, 2 directors: movies 0,1 → director 0; movies 2,3 → director 1; plus reverse edges."""
  from hgnn_ima_jax.graph import MMHN, Relation

  f = lambda n: np.ones((n, 2), np.float32)
  md = np.array([[0, 0], [1, 0], [2, 1], [3, 1]])
  return MMHN(
      name="hub",
      node_types=("movie", "director"),
      num_nodes={"movie": 4, "director": 2},
      modalities=("text",),
      node_modalities={"movie": ("text",), "director": ("text",)},
      relations=(Relation("movie", "md", "director"), Relation("director", "dm", "movie")),
      edges={"md": md, "dm": md[:, ::-1].copy()},
      features={"movie": {"text": f(4)}, "director": {"text": f(2)}},
      target_type="movie",
      labels=np.array([0, 0, 1, 0]),
      num_classes=2,
      splits={"train": np.array([0]), "val": np.array([1]), "test": np.array([2, 3])},
  ).validate()


def test_two_hop_pair_weights_match_a_brute_force_path_sum():
  data = _hub_graph()
  schema, g = data.schema, data.to_graphs_tuple()
  snd, rcv = np.asarray(g.senders), np.asarray(g.receivers)
  rng = np.random.default_rng(0)
  w_prev, w_last = rng.uniform(0.1, 1, len(snd)), rng.uniform(0.1, 1, len(snd))
  w_last[(snd == 4) & (rcv == 0)] = 0.0  # an underflowed weight: the pair must still be there
  mode, rels = attention_study.pair_mode(schema)
  assert mode == "two_hop" and rels == [(0, 1)]
  rows, cols, w, uw = attention_study.pair_weights(schema, mode, rels, snd, rcv, w_last, w_prev)
  # Brute force over paths j → hub → i (global ids: movies 0-3, directors 4-5), i ≠ j;
  # each type has one relation in, so the 1/|R_dst| factors are 1.
  expect = {}
  for e1 in range(len(snd)):
    for e2 in range(len(snd)):
      j, hub, hub2, i = snd[e1], rcv[e1], snd[e2], rcv[e2]
      if j < 4 and hub >= 4 and hub == hub2 and i < 4 and i != j:
        expect[(i, j)] = expect.get((i, j), 0.0) + w_prev[e1] * w_last[e2]
  got = {(int(i), int(j)): float(x) for i, j, x in zip(rows, cols, w)}
  assert got.keys() == expect.keys() == {(0, 1), (1, 0), (2, 3), (3, 2)}
  for k in expect:
    assert got[k] == pytest.approx(expect[k])
  assert got[(0, 1)] == 0.0
  # Uniform attention: each director averages its 2 movies, each movie has 1 director.
  assert np.allclose(uw, 0.5)
  stats = attention_study.same_vs_different(rows, cols, w, uw, data.labels)
  assert (stats["n_same"], stats["n_diff"]) == (2, 2)  # (0,1),(1,0) same; (2,3),(3,2) different
  assert stats["mean_same"] == pytest.approx((expect[(0, 1)] + expect[(1, 0)]) / 2)
  assert stats["norm_ratio"] == pytest.approx(stats["ratio"])  # uniform weights are all equal here
  # Under uniform attention every normalised weight is exactly 1 and the mass matches the baseline.
  uni = attention_study.uniform_weights(schema, rcv)
  r2, c2, w2, u2 = attention_study.pair_weights(schema, mode, rels, snd, rcv, uni, uni)
  s2 = attention_study.same_vs_different(r2, c2, w2, u2, data.labels)
  assert s2["norm_mean_same"] == pytest.approx(1.0) and s2["norm_mean_diff"] == pytest.approx(1.0)


def test_direct_mode_uses_target_to_target_edges_and_finds_class_aligned_attention():
  from hgnn_ima_jax import data_utils

  data = data_utils.load_dataset(
      "synthetic", single_type=True, num_targets=60, feature_dim=8, modality_dims=(("image", 8),)
  )
  schema, g = data.schema, data.to_graphs_tuple()
  snd, rcv = np.asarray(g.senders), np.asarray(g.receivers)
  same = data.labels[snd] == data.labels[rcv]
  # Fake per-layer attention: beta prefers same-class senders 3:1 within each receiver's in-edges,
  # alpha is uniform; both are proper softmaxes over (relation, receiver) segments.
  uni = attention_study.uniform_weights(schema, rcv)
  beta = np.zeros(len(snd))
  for r in range(schema.num_relations):
    sl = schema.edge_slice(r)
    raw = np.where(same[sl], 3.0, 1.0)
    beta[sl] = raw / np.bincount(rcv[sl], raw, len(data.labels))[rcv[sl]]
  E, H = len(snd), 2
  layer = {
      "alpha": np.repeat(uni[:, None, None], 2, 1).repeat(H, 2),
      "beta": np.repeat(beta[:, None], H, 1),
      "lambda": np.full((E, 2, H), 0.5),
      "beta2": np.repeat(uni[:, None], H, 1),
  }
  study = attention_study.attention_case_study(schema, g, [layer], data.labels, ("text", "image"))
  assert study["mode"] == "direct" and set(study["relations"]) == {r.name for r in data.relations}
  kinds = study["last"]["kinds"]
  assert set(kinds) == {"beta", "alpha[text]", "alpha[image]", "beta2"}
  assert kinds["alpha[text]"]["norm_ratio"] == pytest.approx(1.0)
  assert kinds["alpha[text]"]["mass_same"] == pytest.approx(kinds["alpha[text]"]["mass_same_uniform"])
  assert kinds["beta"]["norm_ratio"] > 1.5 and kinds["beta"]["ratio"] > 1.5
  assert kinds["beta"]["mass_same"] > kinds["beta"]["mass_same_uniform"] + 0.05


def test_results_note_names_the_generated_features():
  """The train CLI's note: which features were generated when the rest are the dataset's (IMDB without posters)."""
  from hgnn_ima_jax.experiments import outputs

  seed = {"seed": 0, "best_epoch": 1, "test_micro_f1": 0.5, "test_macro_f1": 0.4}
  stats = {"mean": 0.5, "std": 0.0}
  base = {"per_seed": [seed], "test_micro_f1": stats, "test_macro_f1": stats, "comparable_with_paper": False}
  imdb = {"movie/text": "real", "movie/image": "generated", "actor/image": "filled:text", "actor/text": "real"}
  table = outputs.results_table({**base, "features": imdb})
  assert table.splitlines()[-1] == (
      "NOTE: movie/image features were generated (the rest come from the dataset); "
      "these numbers are not comparable with the paper."
  )
  synthetic = {"movie/text": "generated", "movie/image": "generated", "actor/image": "filled:text"}
  every = outputs.results_table({**base, "features": synthetic})
  assert every.splitlines()[-1].startswith("NOTE: features were generated;")
  assert "NOTE" not in outputs.results_table({**base, "comparable_with_paper": True, "features": imdb})
  # a user's own graph (a PyG graph with a featureless type given ones) was never the paper's: no paper clause
  own = {"paper/x": "real", "venue/x": "generated"}
  assert outputs.results_table({**base, "features": own}, paper_dataset=False).splitlines()[-1] == (
      "NOTE: venue/x features were generated (the rest come from the dataset)."
  )


def test_summary_aligns_long_relation_names_and_says_paper_only_for_its_graphs():
  """From an audit: PyG's src__to__dst relation names pushed the edge counts out of their column, and a user's own
  graph with a generated (featureless) type was told its numbers are not comparable with the paper."""
  import dataclasses

  from model_fixtures import make_graph

  from hgnn_ima_jax.graph import Relation

  g = make_graph(2)
  long_names = [Relation(r.src, f"{r.src}__{r.name}_with_a_long_name__{r.dst}", r.dst) for r in g.relations]
  edges = {new.name: g.edges[old.name] for old, new in zip(g.relations, long_names)}
  g = dataclasses.replace(g, relations=long_names, edges=edges, name="mine")
  g.provenance["features"] = {**g.provenance.get("features", {}), "movie/text": "generated"}
  lines = g.summary().splitlines()
  head = next(i for i, l in enumerate(lines) if l.startswith("relation"))
  rows = lines[head : head + len(long_names) + 2]
  assert len({len(l.split("  (empty")[0]) for l in rows}) == 1, rows  # every count ends in the same column
  assert lines[-1] == "NOTE: some features are GENERATED."
  assert dataclasses.replace(g, name="imdb").summary().splitlines()[-1].endswith("not comparable with the paper.")
