"""Training library: schedules, metrics, stopping rules, multi-seed equivalence, checkpoints."""

import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import sklearn.metrics
from data_helpers import with_overrides  # noqa: E402
from script_helpers import run_python

from hgnn_ima_jax import metrics, optim, restore, steps, train
from hgnn_ima_jax import state as state_lib
from hgnn_ima_jax.checkpointing import CheckpointMismatchError
from hgnn_ima_jax.data_utils import load_for_config
from hgnn_ima_jax.experiments.configs import get_config
from hgnn_ima_jax.experiments.configs import test as test_config
from hgnn_ima_jax.experiments.outputs import history_writer
from hgnn_ima_jax.experiments.runs import load_run
from hgnn_ima_jax.graph import Relation

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_config(**overrides):
  return with_overrides(test_config.get_config(), **overrides)


def fit(config, workdir, data, **kw):
  """`train.train_and_evaluate` writing history.json/.csv as the scripts do."""
  return train.train_and_evaluate(config, str(workdir), data, on_history=history_writer(str(workdir)), **kw)


@pytest.fixture(scope="module")
def tiny_data():
  return load_for_config(tiny_config())


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory, tiny_data):
  """One tiny two-seed run shared by several tests: (workdir, results, how many times its run traced train_step)."""
  workdir = str(tmp_path_factory.mktemp("baseline"))
  before = steps.TRACE_COUNT["train_step"]
  results = fit(tiny_config(), workdir, data=tiny_data, progress=False)
  return workdir, results, steps.TRACE_COUNT["train_step"] - before


# --- schedules and metrics ----------------------------------------------------------------


def _cos(a, b, p):
  return b + (a - b) * (1 + math.cos(math.pi * p)) / 2


def _schedules(o, total_steps):
  """optim.one_cycle_schedules with the OneCycle fields of optimizer config `o` over `total_steps` steps."""
  return optim.one_cycle_schedules(
      total_steps,
      o.learning_rate,
      o.onecycle_pct_start,
      o.onecycle_div_factor,
      o.onecycle_final_div_factor,
      o.onecycle_base_momentum,
      o.onecycle_max_momentum,
  )


@pytest.mark.parametrize("step", [0, 1, 25, 49, 50, 100, 500, 999])
def test_one_cycle_matches_torch_formula(step):
  """Spec §4: warm-up to 1e-3 over steps 0..49, cosine to 4e-9 by 999; b1 cycles 0.95→0.85→0.95."""
  c = get_config("douban")
  o = c.optimizer
  lr, b1 = _schedules(o, o.onecycle_total_steps)
  if step <= 49:
    want_lr, want_b1 = _cos(4e-5, 1e-3, step / 49), _cos(0.95, 0.85, step / 49)
  else:
    want_lr, want_b1 = _cos(1e-3, 4e-9, (step - 49) / 950), _cos(0.85, 0.95, (step - 49) / 950)
  assert float(lr(step)) == pytest.approx(want_lr, rel=1e-5, abs=1e-12)
  assert float(b1(step)) == pytest.approx(want_b1, rel=1e-6)


def test_optimizer_uses_the_injected_schedules():
  c = get_config("douban")
  tx = optim.create_optimizer(c)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  for _ in range(3):
    _, state = tx.update({"w": jnp.ones(3)}, state, params)
  # The third update used step 2's values (torch's first step uses lr(0) too).
  assert float(state.hyperparams["learning_rate"]) == pytest.approx(_cos(4e-5, 1e-3, 2 / 49), rel=1e-5)
  assert float(state.hyperparams["b1"]) == pytest.approx(_cos(0.95, 0.85, 2 / 49), rel=1e-6)
  assert float(state.hyperparams["weight_decay"]) == pytest.approx(5e-3)


OTHER_OPTIMIZER_VALUES = {
    "optimizer.b1": 0.5,
    "optimizer.weight_decay": 0.3,
    "optimizer.onecycle_total_steps": 7,
    "optimizer.onecycle_pct_start": 0.5,
    "optimizer.onecycle_div_factor": 3.0,
    "optimizer.onecycle_final_div_factor": 2.0,
    "optimizer.onecycle_base_momentum": 0.5,
    "optimizer.onecycle_max_momentum": 0.6,
}


@pytest.mark.parametrize(
    "name, schedule", [("adamw", "onecycle"), ("adamw", "constant"), ("adam", "onecycle"), ("adam", "constant")]
)
def test_optimizer_fields_the_optimizer_does_not_read_change_nothing(name, schedule):
  """`field_usage.unread_optimizer_fields` is true (the scripts refuse those fields when given): each field
  it lists, set to another value, leaves eight updates of `create_optimizer` bit for bit equal; and each other
  field of OTHER_OPTIMIZER_VALUES changes them (the table misses none)."""
  from hgnn_ima_jax import field_usage
  from hgnn_ima_jax.experiments.configs import set_path

  def updates(**fields):
    c = get_config("douban")
    c.optimizer.name, c.optimizer.schedule = name, schedule
    c.optimizer.onecycle_total_steps, c.optimizer.onecycle_pct_start = 20, 0.2  # 8 updates reach the annealing
    for path, value in fields.items():
      set_path(c, path, value)
    tx = optim.create_optimizer(c)
    params = {"w": jnp.linspace(-1.0, 1.0, 5)}
    state, out = tx.init(params), []
    for k in range(8):
      u, state = tx.update({"w": jnp.cos(params["w"] * (k + 1))}, state, params)
      params = {"w": params["w"] + u["w"]}
      out.append(np.asarray(u["w"]))
    return np.stack(out)

  config = get_config("douban")
  config.optimizer.name, config.optimizer.schedule = name, schedule
  unread = field_usage.unread_optimizer_fields(config)
  base = updates()
  for path, value in OTHER_OPTIMIZER_VALUES.items():
    same = np.array_equal(base, updates(**{path: value}))
    assert same == (path in unread), (name, schedule, path, same)


def test_steps_per_epoch_stretches_the_schedule_over_the_same_epochs():
  """Mini-batch training takes several optimizer steps per epoch: the OneCycle schedule spans
  onecycle_total_steps × steps_per_epoch steps; one step per epoch is the full-batch schedule."""
  c = get_config("douban")
  o = c.optimizer
  assert [optim.learning_rate_at(c, k) for k in (0, 2, 49, 500)] == [
      optim.learning_rate_at(c, k, steps_per_epoch=1) for k in (0, 2, 49, 500)
  ]
  spe = 4
  lr, _ = _schedules(o, o.onecycle_total_steps * spe)
  warmup_end = int(o.onecycle_pct_start * o.onecycle_total_steps * spe) - 1
  assert optim.learning_rate_at(c, warmup_end, spe) == pytest.approx(o.learning_rate, rel=1e-6)  # peak at 4x the step
  assert optim.learning_rate_at(c, 123, spe) == pytest.approx(float(lr(123)), rel=1e-6)
  last = o.onecycle_total_steps * spe - 1
  assert optim.learning_rate_at(c, last, spe) == pytest.approx(optim.learning_rate_at(c, o.onecycle_total_steps - 1))
  tx = optim.create_optimizer(c, steps_per_epoch=spe)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  for _ in range(3):
    _, state = tx.update({"w": jnp.ones(3)}, state, params)
  assert float(state.hyperparams["learning_rate"]) == pytest.approx(float(lr(2)), rel=1e-6)
  with pytest.raises(ValueError, match="steps_per_epoch"):
    optim.create_optimizer(c, steps_per_epoch=0)


def test_f1_matches_sklearn():
  rng = np.random.default_rng(0)
  for trial in range(20):
    n, c = 60, 5
    y = rng.integers(0, c - (trial % 2), n)  # sometimes a class never occurs
    p = rng.integers(0, c, n)
    mask = rng.random(n) < 0.7
    micro, macro = metrics.f1_scores(jnp.asarray(p), jnp.asarray(y), jnp.asarray(mask), c)
    assert float(micro) == pytest.approx(sklearn.metrics.f1_score(y[mask], p[mask], average="micro"), abs=1e-6)
    assert float(macro) == pytest.approx(
        sklearn.metrics.f1_score(y[mask], p[mask], average="macro", zero_division=0), abs=1e-6
    )


def test_t_test_and_mean_std():
  a, b = [0.80, 0.82, 0.81, 0.83, 0.79], [0.70, 0.72, 0.69, 0.71, 0.73]
  tt = metrics.t_test(a, b)
  assert tt["t"] > 5 and tt["p"] < 1e-4 and tt["df"] == 8
  # The paper's Table 3 (t, p) pairs fit a paired test over 5 seeds (df = 4), not df = 8.
  for t, p in ((3.01, 0.039), (4.18, 0.014), (4.09, 0.015), (4.36, 0.012), (6.14, 0.004)):
    assert 2 * scipy.stats.t.sf(t, 4) == pytest.approx(p, abs=1e-3)
    assert abs(2 * scipy.stats.t.sf(t, 8) - p) > 2e-3
  diffs = np.array([0.011, 0.019, 0.005, 0.021, 0.009])
  tp = metrics.t_test(diffs + 0.5, np.full(5, 0.5), paired=True)
  want_t = diffs.mean() / (diffs.std(ddof=1) / math.sqrt(5))
  assert tp["df"] == 4 and tp["t"] == pytest.approx(want_t)
  assert tp["p"] == pytest.approx(2 * scipy.stats.t.sf(want_t, 4))
  assert metrics.mean_std(a)["std"] == pytest.approx(np.std(a, ddof=1))


# --- early stopping and selection ---------------------------------------------------------


def _run_track(losses, accs, macros, **kw):
  """Feeds a sequence of validation results through `track` for one seed."""
  params = {"w": jnp.zeros(())}
  state = state_lib.TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      batch_stats={},
      opt_state=(),
      key=jnp.zeros(2, jnp.uint32),
      active=jnp.ones((), bool),
      es_best_loss=jnp.inf,
      es_best_acc=-jnp.inf,
      es_counter=jnp.zeros((), jnp.int32),
      best_score=-jnp.inf,
      best_epoch=jnp.full((), -1, jnp.int32),
      best_params=params,
      best_batch_stats={},
      best_pred=jnp.zeros((1,), jnp.int32),
  )
  stopped_at = None
  for e, (l, a, m) in enumerate(zip(losses, accs, macros)):
    if not bool(state.active):
      break
    state = state.replace(step=state.step + 1, params={"w": jnp.asarray(float(e))})
    state = steps.track(
        state, {"val_loss": jnp.asarray(l), "val_micro_f1": jnp.asarray(a), "val_macro_f1": jnp.asarray(m)}, **kw
    )
    if not bool(state.active) and stopped_at is None:
      stopped_at = e
  return state, stopped_at


def test_code_early_stopping_counts_strict_increases():
  losses = [1.0, 0.9, 0.9, 0.95, 0.96, 0.97, 0.5]
  state, stopped = _run_track(losses, [0.5] * 7, [0.5] * 7, rule="val_loss", patience=3, selection="macro_f1")
  # 0.9 == best resets; then three strict increases stop at epoch 5 and epoch 6 never runs.
  assert stopped == 5
  assert float(state.es_best_loss) == pytest.approx(0.9)


def test_code_selection_prefers_later_epoch_on_ties():
  state, _ = _run_track(
      [1.0] * 5, [0.5] * 5, [0.3, 0.6, 0.6, 0.5, 0.2], rule="val_loss", patience=100, selection="macro_f1"
  )
  assert int(state.best_epoch) == 2 and float(state.best_params["w"]) == 2.0


class AuthorsEarlyStopping:
  """`EarlyStopping.step` of the authors' utils.py (the HAN stopper Sec. 5.3 describes), transcribed
  for the tests: no checkpoint file, `saved` records the epoch whose parameters it would keep."""

  def __init__(self, patience):
    self.patience, self.counter, self.best_loss, self.best_acc, self.saved = patience, 0, None, None, None

  def step(self, epoch, loss, acc) -> bool:
    if self.best_loss is None:
      self.best_acc, self.best_loss, self.saved = acc, loss, epoch
    elif loss > self.best_loss and acc < self.best_acc:
      self.counter += 1
      if self.counter >= self.patience:
        return True
    else:
      if loss <= self.best_loss and acc >= self.best_acc:
        self.saved = epoch
        self.best_loss, self.best_acc = min(loss, self.best_loss), max(acc, self.best_acc)
      self.counter = 0
    return False


def replay_authors_rule(losses, accs, patience):
  """(epoch at which the authors' loop breaks or None, epoch of the checkpoint it reloads, stopper)."""
  stopper = AuthorsEarlyStopping(patience)
  for e, (l, a) in enumerate(zip(losses, accs)):
    if stopper.step(e, l, a):
      return e, stopper.saved, stopper
  return None, stopper.saved, stopper


@pytest.mark.parametrize(
    "losses,accs,stop,best,best_loss,best_acc",
    [
        # Epoch 1 lowers the loss but not the accuracy: the counter resets, the bests stay (1.0, 0.5),
        # so 0.9 at epochs 2-3 is not worse and the stop comes at epoch 5. (A min/max update would
        # have taken 0.8 as the best loss and stopped at epoch 3.)
        ([1.0, 0.8, 0.9, 0.9, 1.1, 1.2, 1.3], [0.5, 0.4, 0.45, 0.45, 0.3, 0.3, 0.3], 5, 0, 1.0, 0.5),
        # Epoch 2 improves both: bests (0.7, 0.6) and its parameters are kept; two worse epochs stop at 4.
        ([1.0, 0.8, 0.7, 0.9, 0.9, 0.6], [0.5, 0.4, 0.6, 0.55, 0.55, 0.9], 4, 2, 0.7, 0.6),
        # Worse loss with better accuracy (and the reverse) never counts.
        ([1.0, 1.1, 0.9, 1.2, 0.95], [0.5, 0.6, 0.4, 0.7, 0.45], None, 0, 1.0, 0.5),
    ],
)
def test_paper_rule_is_the_authors_early_stopping(losses, accs, stop, best, best_loss, best_acc):
  """rule='paper' + selection='paper_rule' stop and select exactly as the authors' utils.py."""
  assert replay_authors_rule(losses, accs, 2)[:2] == (stop, best)  # the transcription agrees with the cases
  state, stopped = _run_track(losses, accs, accs, rule="paper", patience=2, selection="paper_rule")
  assert stopped == stop and int(state.best_epoch) == best and float(state.best_params["w"]) == best
  assert float(state.es_best_loss) == pytest.approx(best_loss) and float(state.es_best_acc) == pytest.approx(best_acc)


# --- runs -----------------------------------------------------------------------------------


def test_loss_decreases_on_learnable_graph(tiny_data, tmp_path):
  c = tiny_config(
      num_epochs=40,
      checkpoint_every=40,  # result-neutral: one save at the end, not 20
      **{"optimizer.schedule": "constant", "optimizer.learning_rate": 5e-3, "model.dropout": 0.0, "seeds": (0,)},
  )
  res = fit(c, str(tmp_path), data=tiny_data, progress=False)
  hist = json.load(open(tmp_path / "history.json"))
  losses = [r["train_ce"] for r in hist]
  assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])
  assert res["per_seed"][0]["val_micro_f1"] > 1.0 / tiny_data.num_classes


def test_train_step_compiles_once(baseline_run):
  """The shared run's epochs (6, two seeds) traced the train step once."""
  assert baseline_run[2] == 1


@pytest.fixture(scope="module")
def separate_seed_runs(tmp_path_factory, tiny_data):
  """{seed: (results, workdir)} of each seed of tiny_config() trained alone: both cases of
  test_vmapped_seeds_equal_separate_runs compare with these runs (they trained the same ones each)."""
  runs = {}
  for seed in tiny_config().seeds:
    workdir = tmp_path_factory.mktemp(f"alone{seed}")
    runs[seed] = fit(tiny_config(seeds=(seed,)), str(workdir), data=tiny_data, progress=False), workdir
  return runs


@pytest.mark.parametrize("seed_batch", [-1, 0])
def test_vmapped_seeds_equal_separate_runs(baseline_run, separate_seed_runs, tiny_data, tmp_path, seed_batch):
  """Seeds trained together equal separate runs: looped (-1: auto, one at a time on CPU) or vmapped (0)."""
  if seed_batch == -1:
    together = baseline_run[1]
  else:
    together = fit(tiny_config(seed_batch=seed_batch), str(tmp_path / "vmapped"), data=tiny_data, progress=False)
  assert list(together["seeds"]) == list(separate_seed_runs)
  for i, seed in enumerate(together["seeds"]):
    alone, _ = separate_seed_runs[seed]
    a, b = together["per_seed"][i], alone["per_seed"][0]
    assert a["best_epoch"] == b["best_epoch"]
    for k in ("test_micro_f1", "test_macro_f1", "val_macro_f1"):
      assert a[k] == pytest.approx(b[k], abs=1e-6), k
  hist_t = json.load(
      open((pathlib.Path(baseline_run[0]) if seed_batch == -1 else tmp_path / "vmapped") / "history.json")
  )
  hist_s = json.load(open(separate_seed_runs[1][1] / "history.json"))
  losses_t = [r["val_loss"] for r in hist_t if r["seed"] == 1]
  losses_s = [r["val_loss"] for r in hist_s]
  np.testing.assert_allclose(losses_t, losses_s, rtol=1e-4)


@pytest.mark.parametrize("seed_batch", [0, 1, 2, 5])
def test_map_seeds_groups_give_the_same_result(seed_batch):
  """vmap of all seeds, one at a time, and groups of 2 (with a remainder of 1) agree."""

  def fn(state, batch):
    w = state["w"]
    return {"w": jnp.tanh(w @ batch) + w}, {"norm": jnp.sum(w * w)}

  states = {"w": jax.random.normal(jax.random.PRNGKey(0), (5, 4, 4))}
  batch = jax.random.normal(jax.random.PRNGKey(1), (4, 4))
  want = [fn({"w": states["w"][i]}, batch) for i in range(5)]
  got_state, got_out = jax.jit(steps.map_seeds(fn, seed_batch))(states, batch)
  for i, (ws, wo) in enumerate(want):
    np.testing.assert_allclose(got_state["w"][i], ws["w"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_out["norm"][i], wo["norm"], rtol=1e-6)


def test_default_epoch_program_loops_over_seeds_on_cpu(tiny_data):
  """README: on CPU the default (seed_batch -1) program advances the seeds one after the other
  (a loop in the compiled program, less memory); seed_batch 0 vmaps them (no loop)."""
  if jax.default_backend() != "cpu":
    pytest.skip("the default is a vmap on accelerators")
  c = tiny_config(seeds=(0, 1))
  batch = state_lib.make_batch(tiny_data)
  model, tx = state_lib.create_model(c, tiny_data.schema), optim.create_optimizer(c)
  state = state_lib.init_state(model, tx, batch, c.seeds, abstract=True)

  def has_loop(seed_batch):  # a scan over the seed axis at the top of the compiled epoch program
    fn = steps.make_epoch_fn(tiny_config(seed_batch=seed_batch), model, tx, tiny_data.num_classes)
    (program,) = jax.make_jaxpr(fn)(state, batch).jaxpr.eqns
    return any(str(e.primitive) == "scan" for e in program.params["jaxpr"].jaxpr.eqns)

  assert has_loop(-1) and not has_loop(0)


def test_same_seed_same_metrics(baseline_run, tiny_data, tmp_path):
  again = fit(tiny_config(), str(tmp_path), data=tiny_data, progress=False)
  assert again["per_seed"] == baseline_run[1]["per_seed"]


def test_checkpoint_restore_gives_identical_predictions(baseline_run, tiny_data):
  workdir, results, _ = baseline_run
  run = restore.load_checkpoint(workdir, tiny_data)
  assert run.seeds == results["seeds"]
  for i, seed in enumerate(run.seeds):
    pred = run.predict(seed)
    got = metrics.sklearn_f1(pred, tiny_data.labels, tiny_data.splits["test"])
    assert got["macro_f1"] == results["per_seed"][i]["test_macro_f1"]
    assert got["micro_f1"] == results["per_seed"][i]["test_micro_f1"]
  out = run.model.apply(run.variables(), run.graph, return_embeddings=True)
  assert out.embeddings["fused"].shape == (tiny_data.num_nodes[tiny_data.target_type], run.config.model.hidden)
  emb = run.embed(run.seeds[1])
  assert emb["fused"].shape == out.embeddings["fused"].shape
  assert not np.allclose(emb["fused"], np.asarray(out.embeddings["fused"]))  # the second seed's parameters
  np.testing.assert_allclose(run.embed()["fused"], np.asarray(out.embeddings["fused"]), rtol=1e-6, atol=1e-6)


def test_load_checkpoint_rebuilds_dataset_from_config(baseline_run):
  workdir, results, _ = baseline_run
  run = load_run(workdir)
  assert run.results["test_macro_f1"] == results["test_macro_f1"]
  np.testing.assert_array_equal(run.predict(0), restore.load_checkpoint(workdir, run.data).predict(0))


def test_existing_run_is_not_overwritten(baseline_run, tiny_data):
  with pytest.raises(
      FileExistsError, match=r": already holds checkpoints\. Fix: pass --resume to continue that run, or use a new"
  ):
    fit(tiny_config(), baseline_run[0], data=tiny_data, progress=False)


def test_a_finished_run_resumed_is_left_as_it_was(baseline_run, tiny_data, tmp_path, monkeypatch):
  """From an audit: --resume on a finished run (as requeue scripts pass it every time) re-evaluated it and
  rewrote results.json with ~0 s of training, no longer the results checkpoints/best keeps."""
  workdir = tmp_path / "run"
  shutil.copytree(baseline_run[0], workdir)
  saved = (workdir / "results.json").read_text()
  monkeypatch.setattr(train, "final_evaluation", lambda *a, **k: pytest.fail("evaluated again"))
  assert fit(tiny_config(), workdir, data=tiny_data, progress=False, resume=True) == json.loads(saved)
  assert (workdir / "results.json").read_text() == saved


def test_a_workdir_being_written_is_refused(tiny_data, tmp_path):
  """From an audit: two runs started into one workdir both found no checkpoint and both wrote there (config.json
  of one, results.json of the other, checkpoints of both)."""
  from hgnn_ima_jax.run_dir import WorkdirError, locked_workdir

  workdir = tmp_path / "run"
  workdir.mkdir()
  with locked_workdir(str(workdir)):  # as a run in another process holds it
    with pytest.raises(WorkdirError, match=rf"^workdir={workdir}: a run is writing there now \(pid \d+ on .+\)\. Fix:"):
      fit(tiny_config(), workdir, data=tiny_data, progress=False)
  assert sorted(p.name for p in workdir.iterdir()) == [".lock"]  # nothing written by the refused run


def test_resume_with_another_config_fails_clearly(baseline_run, tiny_data, tmp_path):
  """A latest checkpoint whose state does not fit the config is refused in one line, naming the fix."""
  workdir = str(tmp_path / "run")
  shutil.copytree(baseline_run[0], workdir)  # the shared run stays untouched
  other = tiny_config(**{"model.hidden": 2 * tiny_config().model.hidden})
  with pytest.raises(
      CheckpointMismatchError,
      match=r"checkpoints/latest: checkpoint \d+ does not match .*"
      r"encoder.*shape.*config.json differs: model.hidden: 16 \(saved\) vs 32 \(asked\).*new --workdir",
  ):
    fit(other, workdir, data=tiny_data, progress=False, resume=True)


def test_resume_refuses_another_run_even_when_the_shapes_fit(baseline_run, tiny_data, tmp_path, monkeypatch):
  """More epochs or another learning rate fit the saved state, but would change that run: refused, nothing trained."""
  workdir = str(tmp_path / "run")
  shutil.copytree(baseline_run[0], workdir)
  saved = (tmp_path / "run" / "config.json").read_text()
  monkeypatch.setattr(train, "make_epoch_fn", lambda *a, **k: pytest.fail("training started"))
  longer = tiny_config(num_epochs=tiny_config().num_epochs + 3, **{"optimizer.learning_rate": 0.002})
  with pytest.raises(
      CheckpointMismatchError,
      match=r"belongs to another run: its run's config.json differs: num_epochs: 6 \(saved\) vs 9 "
      r"\(asked\); optimizer.learning_rate: 0.001 \(saved\) vs 0.002",
  ):
    fit(longer, workdir, data=tiny_data, progress=False, resume=True)
  assert (tmp_path / "run" / "config.json").read_text() == saved


def test_best_predictions_are_those_of_the_best_parameters(baseline_run, tiny_data):
  """results.json's test scores come from the predictions kept at the selected epoch (no separate
  test program); they must equal a fresh eval-mode forward with the selected parameters."""
  workdir, results, _ = baseline_run
  run = restore.load_checkpoint(workdir, tiny_data)
  for i, seed in enumerate(run.seeds):
    want = metrics.sklearn_f1(run.predict(seed), tiny_data.labels, tiny_data.splits["val"])
    assert want["macro_f1"] == results["per_seed"][i]["val_macro_f1"]


def test_batchnorm_profile_trains_and_restores(tiny_data, tmp_path):
  c = tiny_config(
      num_epochs=3,
      seeds=(0,),
      **{"model.projection": "per_channel", "model.input_batch_norm": True, "loss.ind_loss": True},
  )
  res = fit(c, str(tmp_path), data=tiny_data, progress=False)
  run = restore.load_checkpoint(str(tmp_path), tiny_data)
  assert "batch_stats" in run.variables()
  got = metrics.sklearn_f1(run.predict(0), tiny_data.labels, tiny_data.splits["test"])
  assert got["macro_f1"] == res["per_seed"][0]["test_macro_f1"]


def test_paper_protocol_stops_and_selects_as_the_authors_rule(tiny_data, tmp_path):
  """A --protocol=paper run (Adam, constant lr, L_cro + L_att, the utils.py stopper) stops each
  seed at the epoch, and keeps the epoch, that the authors' EarlyStopping gives on its history."""
  c = get_config("synthetic", "paper")
  base = tiny_config()
  for k in ("hidden", "heads", "num_layers"):
    c.model[k] = base.model[k]
  # lr 1e-2 over-fits the tiny graph within ~20 epochs, so the stopper fires; 40 leaves room for the epoch it fires
  # at to move with the dropout stream (it was the 20th, the last, when that stream changed in 807484e)
  c.num_epochs, c.seeds, c.checkpoint_every = 40, (0,), 40  # checkpoint_every is result-neutral: fewer saves
  c.early_stopping.patience = 3
  c.optimizer.learning_rate = 1e-2
  res = fit(c, str(tmp_path), data=tiny_data, progress=False)
  hist = [r for r in json.load(open(tmp_path / "history.json")) if r["active"]]
  stop, saved, _ = replay_authors_rule([r["val_loss"] for r in hist], [r["val_micro_f1"] for r in hist], 3)
  r = res["per_seed"][0]
  assert stop is not None and r["early_stopped"] and r["epochs_run"] == stop + 1 < c.num_epochs
  assert r["best_epoch"] == saved
  cfg = json.load(open(tmp_path / "config.json"))
  assert cfg["optimizer"]["name"] == "adam" and cfg["optimizer"]["schedule"] == "constant"
  assert cfg["loss"]["ind_loss"] is True and cfg["loss"]["att_weight"] == 1.0


def test_loss_level_ablations_resolve_into_config():
  c = train.resolve_config(tiny_config(model_name="hgnn_ima-L_att"))
  assert c.loss.att_weight == 0.0
  c = train.resolve_config(tiny_config(model_name="hgnn_ima-L_ind", **{"loss.ind_loss": True}))
  assert c.loss.ind_loss is False


# --- processes: CLI, kill-and-resume, sharding ----------------------------------------------

TINY_FLAGS = [
    "--config.model.hidden=16",
    "--config.model.heads=2",
    "--config.model.num_layers=2",
    "--config.synthetic.scale=0.1",
    "--noprogress",
]


def _train_cli(workdir, *extra):
  return [str(REPO / "experiments" / "train.py"), f"--workdir={workdir}", *TINY_FLAGS, *extra]


def test_train_cli_end_to_end(tmp_path):
  out = run_python(*_train_cli(tmp_path / "run", "--seeds=2", "--epochs=3"), timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "test Macro-F1" in out.stdout and "mean" in out.stdout
  res = json.load(open(tmp_path / "run" / "results.json"))
  for key in (
      "dataset",
      "model",
      "protocol",
      "seeds",
      "per_seed",
      "test_micro_f1",
      "test_macro_f1",
      "num_params",
      "wall_time_s",
      "device",
      "comparable_with_paper",
      "features",
  ):
    assert key in res, key
  assert res["seeds"] == [0, 1] and len(res["per_seed"]) == 2
  for r in res["per_seed"]:
    assert set(r) >= {"seed", "test_micro_f1", "test_macro_f1", "best_epoch", "epochs_run"}
    assert 0.0 <= r["test_macro_f1"] <= 1.0
  assert set(res["test_macro_f1"]) == {"mean", "std"}
  assert res["comparable_with_paper"] is False  # synthetic features
  rows = list(open(tmp_path / "run" / "history.csv"))
  assert len(rows) == 1 + 3 * 2
  cfg = json.load(open(tmp_path / "run" / "config.json"))
  assert cfg["model"]["hidden"] == 16 and cfg["num_epochs"] == 3


def test_train_cli_rejects_unknown_model(tmp_path):
  out = run_python(*_train_cli(tmp_path / "run", "--model=gat"), timeout=120)
  assert out.returncode == 2 and "config.model_name=gat: is not one of the allowed values" in out.stderr
  assert not (tmp_path / "run").exists()


SHARDED_SNIPPET = r"""
import json
import jax
from hgnn_ima_jax.experiments.configs import test as tc
from hgnn_ima_jax import train
c = tc.get_config(); c.seeds = (2, 0, 1)
from hgnn_ima_jax.data_utils import load_for_config
res = train.train_and_evaluate(c, {workdir!r}, load_for_config(c), progress=False)
print(json.dumps({{"devices": jax.device_count(), "per_seed": res["per_seed"]}}))
"""


def test_seeds_shard_over_devices(separate_seed_runs, tmp_path):
  """Three seeds on two devices, padded to four: seeds 2 and 0 share the first device, seed 1 the second with the
  padding, which is dropped; seeds 0 and 1 train there as each trains alone (tiny_config(), as separate_seed_runs)."""
  env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2")
  code = SHARDED_SNIPPET.format(workdir=str(tmp_path / "sharded"))
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  sharded = json.loads(out.stdout.strip().splitlines()[-1])
  assert sharded["devices"] == 2 and [r["seed"] for r in sharded["per_seed"]] == [2, 0, 1]  # the padding dropped
  for a in sharded["per_seed"][1:]:
    b = separate_seed_runs[a["seed"]][0]["per_seed"][0]
    assert a["seed"] == b["seed"] and a["best_epoch"] == b["best_epoch"]
    assert a["test_macro_f1"] == pytest.approx(b["test_macro_f1"], abs=1e-6)


def test_shared_projection_of_unequal_widths_is_refused_before_the_run(tmp_path):
  """projection='shared' (the default) on a graph whose modalities differ in width: one ConfigError line,
  before the workdir exists (it was a traceback from the model's initialisation, after Orbax made the
  checkpoint directory); the same graph trains with per_channel, and through the CLI it is one line."""
  from model_fixtures import make_graph

  from hgnn_ima_jax import config_validation as cv
  from hgnn_ima_jax.data_utils.generic import write_generic

  graph, shared = make_graph(2, widths="mixed"), {"model.projection": "shared"}
  with pytest.raises(cv.ConfigError, match=r"^config\.model\.projection=shared: needs equal input widths") as e:
    train.train_and_evaluate(tiny_config(**shared), str(tmp_path / "run"), graph, progress=False)
  assert "but 'movie' has {'text': 7, 'image': 5}" in str(e.value), str(e.value)
  assert "Fix: use --config.model.projection=per_channel" in str(e.value) and not (tmp_path / "run").exists()
  train.check_inputs(train.resolve_config(tiny_config()), graph.schema)  # per_channel, the synthetic profile's
  train.check_inputs(train.resolve_config(tiny_config(**shared)), make_graph(2, widths="equal").schema)
  path = write_generic(tmp_path / "mixed.npz", graph)  # a generic-format graph's profile is shared (MISS)
  proc = run_python("experiments/train.py", f"--dataset={path}", f"--workdir={tmp_path / 'cli'}", timeout=300)
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert lines[-1].startswith("error: config.model.projection=shared: needs equal input widths per node type")
  assert not (tmp_path / "cli").exists()


def test_hgnn_ima_on_a_one_modality_graph_is_refused_before_the_run(tmp_path):
  """From an audit: a one-modality graph (PyG's DBLP through from_hetero_data) with --model=hgnn_ima was a
  47-line traceback from the layer's set-up, with .lock and empty checkpoint directories left in the workdir.
  Now one ConfigError line before anything is written; an HGT baseline trains on the same graph."""
  from model_fixtures import make_graph

  from hgnn_ima_jax import config_validation as cv
  from hgnn_ima_jax.data_utils.generic import write_generic
  from hgnn_ima_jax.data_utils.synthetic import make_synthetic

  graph = make_synthetic(modalities=("text",), scale=0.03)
  assert graph.schema.modalities == ("text",)
  for name in ("hgnn_ima", "hgnn_ima-cross"):
    with pytest.raises(cv.ConfigError, match=rf"^config\.model_name={name}: attends across modalities, .* has one"):
      train.train_and_evaluate(tiny_config(model_name=name), str(tmp_path / "run"), graph, progress=False)
  assert not (tmp_path / "run").exists()
  cv.check_model_for_graph(tiny_config(model_name="hgt_late"), graph)
  cv.check_model_for_graph(tiny_config(), make_graph(2))
  path = write_generic(tmp_path / "one.npz", graph)
  proc = run_python("experiments/train.py", f"--dataset={path}", f"--workdir={tmp_path / 'cli'}", timeout=300)
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert (
      lines[-1].startswith("error: config.model_name=hgnn_ima: attends across modalities") and "hgt_late" in lines[-1]
  )
  assert not (tmp_path / "cli").exists()


def _nan(g):
  g.features["movie"]["text"][2, 1] = np.nan


def _overlap(g):
  g.splits["val"] = np.concatenate([g.splits["val"], g.splits["train"][:1]])


def _as_mask(g):
  g.splits["train"] = np.isin(np.arange(9), g.splits["train"])


def _relation_type(g):
  g.relations = (*g.relations[:3], Relation("actr", "am", "movie"))


def _rows(g):
  g.features["actor"]["text"] = g.features["actor"]["text"][:-1]


# A graph built or edited in Python, with the mistakes an audit made through the API (each trained without a word, or
# failed with a traceback, some after the workdir was made): (mutation, the refusal's field and problem).
GRAPH_MISTAKES = {
    "NaN feature": (_nan, r"features\['movie'\]\['text'\]: contains NaN or inf \(first at row 2\)"),
    "label out of range": (lambda g: g.labels.__setitem__(0, 3), r"labels: values span 0\.\.3, outside 0\.\.2"),
    "float labels": (lambda g: setattr(g, "labels", g.labels.astype(float)), r"labels: dtype float64"),
    "overlapping splits": (_overlap, r"splits\['val'\]: overlaps 'train' in 1 ids"),
    "split as a mask": (_as_mask, r"splits\['train'\]: dtype bool.*np\.flatnonzero\(mask\)"),
    "empty test split": (lambda g: g.splits.__setitem__("test", g.splits["test"][:0]), r"splits\['test'\]: is empty"),
    "edge out of range": (lambda g: g.edges["dm"].__setitem__((0, 0), 6), r"edges\['dm'\]: src node id 6 is outside"),
    "unknown node type": (_relation_type, r"relations\['am'\]: source type 'actr' is not a node type"),
    "feature rows": (_rows, r"features\['actor'\]\['text'\]: shape \(11, 6\), expected \(12, D\)"),
}


@pytest.mark.parametrize("mistake", GRAPH_MISTAKES)
def test_an_invalid_graph_given_to_train_and_evaluate_is_refused_before_the_run(mistake, tmp_path):
  """From an audit: train_and_evaluate did not validate the graph it was given (the loaders do, an MMHN built in
  Python was never checked): NaN features, labels out of range and overlapping splits trained without a word; the
  rest were tracebacks, some after the workdir was made. Now one DatasetError line before anything is written."""
  import copy

  from model_fixtures import make_graph

  from hgnn_ima_jax.graph import DatasetError

  mutate, message = GRAPH_MISTAKES[mistake]
  graph = copy.deepcopy(make_graph(2))
  mutate(graph)
  with pytest.raises(DatasetError, match=message) as e:
    train.train_and_evaluate(tiny_config(), str(tmp_path / "run"), graph, progress=False)
  assert len(str(e.value).splitlines()) == 1 and "Fix: " in str(e.value), str(e.value)
  assert not (tmp_path / "run").exists()


def test_a_graph_that_is_not_the_configs_dataset_is_recorded_by_its_own_name(baseline_run, tiny_data, tmp_path):
  """From an audit: a graph built in Python and trained with the default config was recorded as dataset 'synthetic'
  (the config's), and load_run(workdir) then rebuilt the synthetic graph and failed on its schema with a fix that
  did not say to pass the graph. Now results.json names the graph and where it came from, load_run asks for it in
  one line, and given it, predicts as the run did."""
  import dataclasses

  from hgnn_ima_jax.restore import SchemaMismatchError

  # the tiny graph rebuilt in Python under its own name (the compiled program of a one-seed tiny run serves it)
  provenance = {k: v for k, v in tiny_data.provenance.items() if k != "dataset"}
  graph = dataclasses.replace(tiny_data, name="mine", source="<memory>", provenance=provenance)
  workdir = str(tmp_path / "mine")
  results = train.train_and_evaluate(tiny_config(seeds=(0,), num_epochs=1), workdir, graph, progress=False)
  assert results["dataset"] == "mine" and results["graph_source"] == "<memory>"
  assert json.load(open(os.path.join(workdir, "results.json")))["dataset"] == "mine"
  with pytest.raises(SchemaMismatchError, match=r"trained on graph 'mine' \(<memory>\) given to train_and_evaluate"):
    load_run(workdir)
  assert load_run(workdir, data=graph).results["per_seed"] == results["per_seed"]
  # the config's own dataset keeps the config's name (load_dataset says what it loaded)
  baseline = json.load(open(os.path.join(baseline_run[0], "results.json")))
  assert baseline["dataset"] == "synthetic" and "graph_source" not in baseline


def test_a_run_that_fails_after_training_finishes_its_checkpoint_saves(tiny_data, tmp_path, monkeypatch):
  """From an audit: a run that failed after an epoch (sklearn on an empty split, before validation caught that) left
  Orbax's save threads running and checkpoints/latest holding only a half-written step, which a new run in the
  workdir did not count: it trained over the failed one. Now the saves in flight finish before the error goes on:
  the step is complete, the workdir is refused to a fresh run and resumes."""
  workdir = str(tmp_path / "failed")

  def fails(*args, **kwargs):
    raise RuntimeError("evaluation failed")

  monkeypatch.setattr(train, "final_evaluation", fails)
  with pytest.raises(RuntimeError, match="evaluation failed"):
    train.train_and_evaluate(tiny_config(seeds=(0,), num_epochs=2), workdir, tiny_data, progress=False)
  latest = os.listdir(os.path.join(workdir, "checkpoints", "latest"))
  assert latest == ["2"], latest  # no *.orbax-checkpoint-tmp left
  with pytest.raises(FileExistsError, match="already holds checkpoints"):
    train.train_and_evaluate(tiny_config(seeds=(0,), num_epochs=2), workdir, tiny_data, progress=False)
  monkeypatch.undo()
  resumed = train.train_and_evaluate(
      tiny_config(seeds=(0,), num_epochs=2), workdir, tiny_data, progress=False, resume=True
  )
  assert resumed["epochs"] == 2


def test_a_finished_run_of_another_config_is_refused_on_resume(baseline_run, tiny_data, tmp_path):
  """A review found a finished run's results returned to another config when checkpoints/latest was gone."""
  workdir = tmp_path / "run"
  shutil.copytree(baseline_run[0], workdir)
  shutil.rmtree(workdir / "checkpoints" / "latest")
  other = tiny_config(**{"optimizer.learning_rate": 0.002})
  with pytest.raises(
      CheckpointMismatchError, match=r"holds a finished run of another config \(optimizer.learning_rate"
  ):
    fit(other, workdir, data=tiny_data, progress=False, resume=True)


def test_a_checkpoint_of_the_old_validation_rule_is_not_continued_where_it_differs():
  """A review found a -L_att run checkpointed before L_att's weight entered the validation loss resuming under the
  new rule, its best validation loss so far being of the old one."""
  import types

  def run(**loss):
    return types.SimpleNamespace(workdir="w", config=tiny_config(**{f"loss.{k}": v for k, v in loss.items()}))

  old = {"epoch": 4, "history": []}  # no config fingerprint: written before the change
  with pytest.raises(CheckpointMismatchError, match=r"^w: checkpoint 4 was written when L_att entered the validation"):
    train.check_validation_rule(run(att_weight=0.0), old)
  train.check_validation_rule(run(att_weight=1.0), old)  # the code's weight: the same validation loss
  train.check_validation_rule(run(att_weight=0.0, val_includes_att=False), old)
  train.check_validation_rule(run(att_weight=0.0), {**old, "config_fingerprint": "0123"})  # written after it
