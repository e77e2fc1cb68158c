"""`load_checkpoint(W).predict(graph=G, nodes=ids)` / `.embed(...)`: any graph of the run's schema, one error otherwise."""

from __future__ import annotations

import dataclasses
import gc
import json
import re
import shutil
import time

import jax
import numpy as np
import pytest

from hgnn_ima_jax import restore, train
from hgnn_ima_jax.checkpointing import CheckpointMismatchError
from hgnn_ima_jax.data_utils import load_for_config
from hgnn_ima_jax.experiments.configs import test as test_config
from hgnn_ima_jax.experiments.runs import load_run
from hgnn_ima_jax.run_dir import read_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A finished tiny run of two seeds over 4 epochs (test_an_unfinished_run_opens_each_seeds_best_epoch_so_far's
  uninterrupted run too): (workdir, graph)."""
  c = test_config.get_config()
  c.num_epochs, c.seeds = 4, (0, 1)
  data = load_for_config(c)
  workdir = str(tmp_path_factory.mktemp("predict"))
  train.train_and_evaluate(c, workdir, data, progress=False)
  return workdir, data


def grown(data, seed=5):
  """The graph with 3 new movies and 1 new actor linked only among themselves (same schema, other sizes)."""
  rng = np.random.default_rng(seed)
  num_nodes = {**data.num_nodes, "movie": data.num_nodes["movie"] + 3, "actor": data.num_nodes["actor"] + 1}
  features = {
      t: {
          m: np.concatenate([x, rng.normal(size=(num_nodes[t] - len(x), x.shape[1])).astype(x.dtype)])
          for m, x in f.items()
      }
      for t, f in data.features.items()
  }
  movies, actor = np.arange(data.num_nodes["movie"], num_nodes["movie"]), num_nodes["actor"] - 1
  names = [r.name for r in data.relations]
  into_actor = [r.name for r in data.relations if (r.src, r.dst) == ("movie", "actor")][0]
  into_movie = [r.name for r in data.relations if (r.src, r.dst) == ("actor", "movie")][0]
  assert into_actor in names and into_movie in names
  edges = {
      **data.edges,
      into_actor: np.concatenate([data.edges[into_actor], [[movies[0], actor]]]),
      into_movie: np.concatenate([data.edges[into_movie], [[actor, m] for m in movies]]),
  }
  return dataclasses.replace(
      data,
      num_nodes=num_nodes,
      features=features,
      edges=edges,
      source="grown",
      labels=np.concatenate([data.labels, [0, 1, 2]]),
  ).validate()


def test_a_run_restores_without_its_dataset_and_predicts_on_a_given_graph(run):
  workdir, data = run
  alone = restore.load_checkpoint(workdir)  # no data: the schema comes from schema.json
  assert alone.data is None and alone.schema == data.schema
  with pytest.raises(ValueError, match="graph=None and the run was loaded without data"):
    alone.predict()
  np.testing.assert_array_equal(alone.predict(graph=data), load_run(workdir).predict())


def test_new_unconnected_nodes_leave_the_old_predictions_unchanged(run):
  workdir, data = run
  loaded, bigger = restore.load_checkpoint(workdir), grown(data)
  n = data.num_nodes["movie"]
  old = loaded.predict(graph=data)
  new = loaded.predict(graph=bigger, nodes=np.arange(n))
  np.testing.assert_array_equal(new, old)
  full = loaded.outputs(graph=bigger)
  layerwise = loaded.outputs(graph=bigger, chunk_size=7)  # exact layer-wise inference agrees
  np.testing.assert_allclose(layerwise["logits"], full["logits"], rtol=1e-4, atol=1e-4)
  emb = loaded.embed(graph=bigger, nodes=[n, n + 2], chunk_size=7)
  np.testing.assert_allclose(emb["fused"], full["fused"][[n, n + 2]], rtol=1e-4, atol=1e-4)
  # chunks dealt to a device list (here this process's one device; more: tests/test_inference_devices.py)
  dealt = loaded.outputs(graph=bigger, chunk_size=7, devices=jax.devices())
  np.testing.assert_allclose(dealt["logits"], layerwise["logits"], rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="devices= needs chunk_size="):
    loaded.predict(graph=bigger, devices=jax.devices())
  assert loaded.predict(graph=bigger, nodes=[n, n + 1, n + 2]).shape == (3,)


def test_a_graph_of_another_schema_is_one_clear_error(run):
  workdir, data = run
  loaded = restore.load_checkpoint(workdir)
  t, m = data.node_types[0], data.modalities[0]
  wider = {**data.features, t: {**data.features[t], m: np.pad(data.features[t][m], ((0, 0), (0, 2)))}}
  other = dataclasses.replace(data, features=wider, source="wider")
  with pytest.raises(restore.SchemaMismatchError) as err:
    loaded.predict(graph=other)
  assert "\n" not in str(err.value) and "width" in str(err.value) and "Fix:" in str(err.value)
  with pytest.raises(ValueError, match=r"nodes=.*0\.\."):
    loaded.predict(graph=data, nodes=[data.num_nodes["movie"]])
  assert loaded.predict(graph=data, nodes=[]).shape == (0,)  # no nodes asked (was refused as not integer ids)
  with pytest.raises(
      ValueError, match=rf"^seed=99: this run trained seeds {re.escape(str(list(loaded.seeds)))}\. Fix:"
  ):
    loaded.predict(graph=data, seed=99)  # was list.index's "99 is not in list"


def test_notebook_mistakes_are_one_line_each(run, tmp_path):
  """From an audit of notebook use: each of these was a wrong answer, a 500-line message or an AttributeError."""
  from hgnn_ima_jax.graph import DatasetError

  workdir, data = run
  loaded = restore.load_checkpoint(workdir)
  # a NaN feature gave NaN embeddings and class-0 predictions without a word: the graph is validated
  x = data.features["movie"]["text"].copy()
  x[3, 1] = np.nan
  nan = dataclasses.replace(data, features={**data.features, "movie": {**data.features["movie"], "text": x}})
  with pytest.raises(DatasetError, match=r"features\['movie'\]\['text'\]: contains NaN or inf \(first at row 3\)"):
    loaded.predict(graph=nan)
  # the graph given as the first argument, which is the seed
  with pytest.raises(
      TypeError, match=r"^seed: a MMHN, expected one of the run's seeds \[0, 1\] \(a graph goes in as graph=\)"
  ):
    loaded.predict(data)
  # a boolean mask selects nodes; a long bad array is described, not printed
  mask = np.zeros(data.num_nodes["movie"], bool)
  mask[[2, 5]] = True
  np.testing.assert_array_equal(loaded.predict(graph=data, nodes=mask), loaded.predict(graph=data)[[2, 5]])
  with pytest.raises(ValueError) as err:
    loaded.predict(graph=data, nodes=np.zeros((3, 40), int))
  assert "\n" not in str(err.value) and "an array of shape (3, 40)" in str(err.value)
  # data= of the wrong type is refused before anything is restored
  with pytest.raises(TypeError, match=r"^data: a GraphsTuple, expected an MMHN"):
    restore.load_checkpoint(workdir, data=data.to_graphs_tuple())


def test_a_config_json_edited_after_training_is_refused_on_restore(run, tmp_path):
  """From an audit: load_run/load_checkpoint restored a run whose config.json was edited afterwards and predicted with
  the edited model (model.score_scale: 0.9% of the predictions changed; model.hidden: a Flax shape error at predict),
  where --resume refused the same edit. The best checkpoint keeps the config's fingerprint and fields too."""
  workdir, _ = run
  edited = tmp_path / "edited"
  shutil.copytree(workdir, edited)
  config = json.loads((edited / "config.json").read_text())
  config["model"]["score_scale"] = 100.0
  (edited / "config.json").write_text(json.dumps(config))
  pattern = (
      r"checkpoints/best: checkpoint \d+ was written with another config .*model\.score_scale: None \(checkpoint\)"
  )
  with pytest.raises(CheckpointMismatchError, match=pattern):
    restore.load_checkpoint(str(edited))
  shutil.rmtree(edited / "checkpoints" / "best")  # an unfinished run's latest checkpoint says the same
  with pytest.raises(CheckpointMismatchError, match=r"checkpoints/latest: checkpoint \d+ was written with another"):
    restore.load_checkpoint(str(edited), unfinished=True)


def tree(path) -> list[str]:
  """Every file and directory below `path` (relative), sorted: what a refusal must leave as it was."""
  return sorted(str(p.relative_to(path)) + ("/" if p.is_dir() else "") for p in path.rglob("*"))


def test_a_refused_resume_or_restore_leaves_the_workdir_as_it_was(run, tmp_path):
  """A resume refused for an edited config.json, or for a config that contradicts the saved one, left an empty
  checkpoints/best in an unfinished run (Orbax made each checkpoint directory when it opened it); so did a refused
  load_checkpoint(unfinished=True)."""
  workdir, data = run
  edited = tmp_path / "edited"
  shutil.copytree(workdir, edited)
  shutil.rmtree(edited / "checkpoints" / "best")  # stopped before its end
  (edited / "results.json").unlink()
  config = json.loads((edited / "config.json").read_text())
  config["optimizer"]["weight_decay"] *= 2
  (edited / "config.json").write_text(json.dumps(config))
  before = tree(edited)
  assert "checkpoints/latest/" in before and ".lock" in before
  with pytest.raises(CheckpointMismatchError, match=r"was written with another config .*optimizer\.weight_decay"):
    train.train_and_evaluate(read_config(str(edited)), str(edited), data, resume=True, progress=False)
  assert tree(edited) == before
  other = read_config(str(edited))
  other.optimizer.weight_decay, other.num_epochs = config["optimizer"]["weight_decay"] / 2, 3
  with pytest.raises(CheckpointMismatchError, match=r"belongs to another run: .*num_epochs"):
    train.train_and_evaluate(other, str(edited), data, resume=True, progress=False)
  assert tree(edited) == before
  with pytest.raises(CheckpointMismatchError, match=r"checkpoints/latest: checkpoint \d+ was written with another"):
    restore.load_checkpoint(str(edited), unfinished=True)
  assert tree(edited) == before


def test_a_finished_run_missing_a_file_says_what_to_do_without_a_loop(run, tmp_path):
  """From an audit: a finished run without checkpoints/best was told to --resume (which only prints its results),
  one without config.json that it was no training run (and a new run there was refused for its checkpoints)."""
  workdir, _ = run
  copy = tmp_path / "copy"
  shutil.copytree(workdir, copy)
  shutil.rmtree(copy / "checkpoints" / "best")
  with pytest.raises(FileNotFoundError, match=r"has no checkpoint, though the run finished .*unfinished=True\)$"):
    restore.load_checkpoint(str(copy))
  (copy / "config.json").unlink()
  with pytest.raises(FileNotFoundError, match=r"holds checkpoints but no config\.json.*Fix: put back the config\.json"):
    restore.load_checkpoint(str(copy))


def _damaged_copy(workdir, tmp_path, which: str):
  """A copy of the run whose `checkpoints/<which>` steps have every data file cut short."""
  copy = tmp_path / "damaged"
  shutil.copytree(workdir, copy)
  for f in (copy / "checkpoints" / which).glob("*/state/**/d/*"):
    f.write_bytes(b"")
  return copy


def _no_late_reports():
  """Waits for the reads Orbax left in flight: their "Event loop is closed" reports (`checkpointing.
  drop_late_read_reports`) would reach pytest's hook now, and fail the test (the filter on the tests below)."""
  time.sleep(1.0)
  gc.collect()


# an unraisable report, a traceback on the user's screen, fails these tests
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_an_unreadable_latest_step_opened_as_unfinished_is_one_line(run, tmp_path):
  """From an audit: load_checkpoint(unfinished=True) on a damaged latest step was a raw tensorstore ValueError."""
  copy = _damaged_copy(run[0], tmp_path, "latest")
  shutil.rmtree(copy / "checkpoints" / "best")
  (copy / "results.json").unlink()
  with pytest.raises(
      CheckpointMismatchError, match=r"checkpoints/latest/\d+: cannot be read \(.*\): it is damaged\. Fix:"
  ):
    restore.load_checkpoint(str(copy), unfinished=True)
  _no_late_reports()


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # as in the test above
def test_an_unreadable_best_step_is_one_line(run, tmp_path):
  """The best checkpoint's read errors are worded as the latest one's (one helper wraps both)."""
  copy = _damaged_copy(run[0], tmp_path, "best")
  with pytest.raises(
      CheckpointMismatchError,
      match=r"checkpoints/best/\d+: cannot be read \(.*\): it is damaged, or its config\.json is not the one the run "
      r"wrote\. Fix: put back the run's files, or open the best epoch of its latest checkpoint with "
      r"load_checkpoint\(workdir, unfinished=True\)$",
  ):
    restore.load_checkpoint(str(copy))
  _no_late_reports()


def test_load_run_refuses_a_rebuilt_graph_of_other_sizes_than_the_trained_one(run, tmp_path):
  """A run trained on a graph that is not its config's dataset (here scale 0.1 under a config saying 0.05) was
  rebuilt from the config by load_run, and predicted on a graph it never saw as if it were its own."""
  _, data = run  # the run fixture's graph (scale 0.1), trained as its run was: the compiled program serves both
  c = test_config.get_config()
  c.num_epochs, c.synthetic.scale = 1, 0.05
  train.train_and_evaluate(c, str(tmp_path / "run"), data, progress=False)
  with pytest.raises(
      restore.SchemaMismatchError, match=r"other sizes than the graph it trained on: movie .* Fix: pass"
  ):
    load_run(str(tmp_path / "run"))
  assert load_run(str(tmp_path / "run"), data=data).predict().shape == (data.num_nodes["movie"],)


def test_an_unfinished_run_opens_each_seeds_best_epoch_so_far(run, tmp_path):
  """An interrupted (or still running) run had no checkpoints/best: load_checkpoint refused it. With
  unfinished=True it opens the best epochs so far from checkpoints/latest. The OneCycle schedule spans
  optimizer.onecycle_total_steps, not num_epochs, so 8 epochs stopped after 4 train exactly as 4 epochs (the run
  fixture's)."""
  four_epochs, data = run
  saved = read_config(four_epochs)
  assert saved.num_epochs == 4 and list(saved.seeds) == [0, 1]
  c = test_config.get_config()
  c.num_epochs, c.seeds = 8, (0, 1)
  polls = iter(range(100))  # before epoch 1, then after each epoch
  with pytest.raises(train.TrainingInterrupted):
    train.train_and_evaluate(c, str(tmp_path / "cut"), data, progress=False, should_stop=lambda: next(polls) == 4)
  with pytest.raises(FileNotFoundError, match=r"the run did not finish.*unfinished=True"):
    restore.load_checkpoint(str(tmp_path / "cut"))
  so_far = restore.load_checkpoint(str(tmp_path / "cut"), unfinished=True)
  four = restore.load_checkpoint(four_epochs)
  assert so_far.seeds == four.seeds == [0, 1] and so_far.results["finished"] is False
  assert so_far.results["best_epoch"] == [s["best_epoch"] for s in four.results["per_seed"]]
  jax.tree.map(np.testing.assert_array_equal, so_far.params, four.params)
  np.testing.assert_array_equal(so_far.predict(graph=data), four.predict(graph=data))
