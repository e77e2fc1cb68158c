"""Data-parallel mini-batches (hgnn_ima_jax.distributed): the result is fixed by config.batch.parts, not by devices.

Runs on other device counts and process counts start as subprocesses (the device count is fixed when
JAX starts); they only use 127.0.0.1, have timeouts and are killed when the test ends.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import processes
import pytest
from conftest import REPO
from script_helpers import TINY_CLI

from hgnn_ima_jax import checkpointing, distributed, minibatch, steps
from hgnn_ima_jax.data_utils import load_for_config
from hgnn_ima_jax.experiments.configs import set_path
from hgnn_ima_jax.experiments.configs import test as test_config
from hgnn_ima_jax.losses import objective, objective_from_stats, objective_stats
from hgnn_ima_jax.optim import create_optimizer
from hgnn_ima_jax.state import init_state, variables_of

WORKER = pathlib.Path(__file__).with_name("devices_worker.py")
# 39 training targets in batches of 16: 3 steps per epoch, each of 4 parts (the last of 7 targets: parts 2,2,2,1).
RUN = {
    "seeds": (0,),
    "num_epochs": 2,
    "batch.mode": "neighbor",
    "batch.size": 16,
    "batch.fanouts": (4, 4),
    "batch.parts": 4,
    "batch.buckets": 1,
    "batch.prefetch": 0,
}
TIMEOUT = 240
# One layer (one fanout) for the runs whose property does not depend on the depth (which seed a process holds,
# a resume onto more devices, the one-part step): tracing a second layer cost each run's process about a third more.
# test_one_device_four_devices_and_two_processes_train_alike keeps RUN's two layers: the trimmed per-hop levels of a
# parts step across devices and processes.
ONE_LAYER = {"model.num_layers": 1, "batch.fanouts": (4,)}
ONE_LAYER_CLI = ["--config.model.num_layers=1"]


def config(**overrides):
  c = test_config.get_config()
  for k, v in {**RUN, **overrides}.items():
    set_path(c, k, v)
  return c


@pytest.fixture(scope="module")
def data():
  return load_for_config(config())


@pytest.fixture(scope="module")
def two_seeds_on_one_device(data, tmp_path_factory):
  """(results, history rows) of seeds 0 and 1 trained in this process (1 device), which two tests compare with:
  trained on the first call, so that a test starts its processes before it (they run meanwhile)."""

  @functools.cache
  def results():
    from hgnn_ima_jax import train
    from hgnn_ima_jax.experiments.outputs import history_writer

    workdir = tmp_path_factory.mktemp("one")
    c = config(seeds=(0, 1), **ONE_LAYER)
    r = train.train_and_evaluate(c, str(workdir), data, progress=False, on_history=history_writer(str(workdir)))
    return r, json.load(open(workdir / "history.json"))

  return results


def test_parts_of_a_batch_are_disjoint_cover_it_and_share_one_rung(data):
  c = config(**{"batch.buckets": 3})
  settings = minibatch.BatchSettings.from_config(c)
  source = minibatch.BatchSource(data, settings)
  source.part_ids = [0, 1, 2, 3]
  for b in range(source.num_batches(0)):
    batch = source.stream.plan(0).batch(b)
    item = source.build(0, b)
    targets = [np.sort(p.targets) for p in item.padded]
    assert len(targets) == 4 and sum(len(t) for t in targets) == len(batch)
    assert np.array_equal(np.sort(np.concatenate(targets)), np.sort(batch))  # cover, and no target twice
    assert len({p.budget for p in item.padded}) == 1  # one rung for all parts of the step
    assert all(p.mask.sum() == len(t) for p, t in zip(item.padded, targets))
  # a process that owns parts 2 and 3 samples exactly what the whole batch has there
  mine = source.sample_parts(0, 1, [2, 3])
  whole = source.sample_parts(0, 1, [0, 1, 2, 3])
  for a, b in zip(mine, whole[2:]):
    assert all(np.array_equal(a.nodes[t], b.nodes[t]) for t in a.nodes)


def test_one_part_step_is_todays_step_and_stats_give_the_loss(data):
  c = config(**{"batch.parts": 1, **ONE_LAYER})
  settings = minibatch.BatchSettings.from_config(c)
  source = minibatch.BatchSource(data, settings)
  programs = minibatch.StepPrograms(c, data, create_optimizer(c, 3), sharded=False)
  assert not programs.parts_mode  # parts = 1 on one device runs today's program, bit for bit
  padded = source.build(0, 0)
  model, tx = programs.model(padded.budget), programs.tx
  batch = minibatch.device_batch(padded)
  state = jax.tree.map(lambda x: x[0], init_state(model, tx, batch, [0]))
  kw = dict(model=model, tx=tx, ind_loss=True, att_weight=0.7)
  old, m_old = jax.jit(functools.partial(steps.train_step, **kw))(state, batch)
  pb = distributed.global_parts_batch(distributed.stack_parts([padded]), [0], 1, None)
  new, m_new = jax.jit(functools.partial(distributed.parts_train_step, parts=1, **kw))(state, pb)
  for k in m_old:
    assert float(m_new[k]) == pytest.approx(float(m_old[k]), rel=1e-6, abs=1e-7), k
  assert float(m_old["att_loss"]) > 0  # L_att takes part, so its statistics are checked too
  for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(old.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)

  # the statistics of one sub-graph give `objective` exactly as it is computed today
  @jax.jit
  def both(state, batch):
    out = model.apply(variables_of(state.params, state.batch_stats), batch.graph, train=False, return_attention=True)
    want, _ = objective(out, batch.labels, batch.masks["train"], ind_loss=True, att_weight=0.7)
    stats = objective_stats(
        model.schema,
        batch.graph,
        out,
        batch.labels,
        batch.masks["train"],
        ind_loss=True,
        norm=model.latt_norm,
        learns_lambda=True,
    )
    got, _ = objective_from_stats(
        stats, att_weight=0.7, num_modalities=model.schema.num_modalities, norm=model.latt_norm
    )
    return want, got

  want, got = both(state, batch)
  assert float(got) == pytest.approx(float(want), rel=1e-6)


def _start(tmp_path, name, *, num_processes, devices, workdir, overrides=None, port=0, **extra):
  """Processes of one run (same workdir); returns [(Popen, out path, log path)]."""
  spec = {"num_processes": num_processes, "devices": devices, "port": port, "workdir": str(workdir)}
  overrides = {**RUN, **(overrides or {})}
  specs = [{**spec, "process_id": i, "overrides": overrides, **extra} for i in range(num_processes)]
  return processes.start(WORKER, tmp_path, name, specs)


def _two(tmp_path, name, workdir, overrides, **extra):
  """A run of 2 processes x 2 devices on a fresh port."""
  port = processes.free_port()
  return _start(tmp_path, name, num_processes=2, devices=2, workdir=workdir, port=port, overrides=overrides, **extra)


def _wait(procs) -> list[dict]:
  return processes.wait(procs, TIMEOUT)


def _losses(history):
  return [(r["epoch"], r["train_loss"], r["train_ce"], r["att_loss"]) for r in history]


def test_one_device_four_devices_and_two_processes_train_alike(data, tmp_path, monkeypatch):
  """1 device vs 4 host devices vs 2 processes x 2 devices (interrupted and resumed): same losses and metrics."""
  four = _start(tmp_path, "four", num_processes=1, devices=4, workdir=tmp_path / "four", overrides={"mesh_data": 4})
  # Polls: before training, after batches 1 and 2 of epoch 1, after epoch 1 (the 4th): stop with one epoch done.
  cut = _two(tmp_path, "cut", tmp_path / "two", {"mesh_data": 4}, stop_at=3)
  try:
    from hgnn_ima_jax import train
    from hgnn_ima_jax.experiments.outputs import history_writer

    step_losses, add = [], minibatch.EpochSums.add
    monkeypatch.setattr(
        minibatch.EpochSums, "add", lambda self, m: (step_losses.append(float(m["train_loss"][0])), add(self, m))[1]
    )
    one = train.train_and_evaluate(
        config(), str(tmp_path / "one"), data, progress=False, on_history=history_writer(str(tmp_path / "one"))
    )
    h_one = json.load(open(tmp_path / "one" / "history.json"))
    (r_four,) = _wait(four)
    cut_results = _wait(cut)
  finally:
    processes.stop(four + cut)
  assert [r["interrupted"] for r in cut_results] == [1, 1]
  resumed = _wait(_two(tmp_path, "resumed", tmp_path / "two", {"mesh_data": 4}, resume=True))
  assert r_four["devices"] == 4 and resumed[0]["devices"] == 4
  assert len(h_one) == 2 and len(step_losses) == 6  # 2 epochs of 3 steps
  np.testing.assert_allclose(r_four["step_losses"], step_losses, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      cut_results[0]["step_losses"] + resumed[0]["step_losses"], step_losses, rtol=1e-5, atol=1e-6
  )
  for other in (r_four, resumed[0]):
    for a, b in zip(_losses(h_one), _losses(other["history"]), strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert other["per_seed"] == one["per_seed"]
  assert resumed[1]["per_seed"] == one["per_seed"]
  # each process sampled only the parts of its two devices (part 0 alone: the initialisation batch)
  assert [r["sampled_parts"] for r in resumed] == [[[0], [0, 1]], [[0], [2, 3]]]
  assert r_four["sampled_parts"] == [[0], [0, 1, 2, 3]]
  # only process 0 writes config, history and results (Orbax's checkpoints/ aside, written as it syncs them)
  assert set(resumed[0]["written"]) >= {"config.json", "results.json"} and resumed[1]["written"] == []
  assert cut_results[1]["written"] == []
  # a 2-process run resumes only with 2 processes: one clear error otherwise (this test is one process; the
  # refusal comes before the saved state is read, which is where train_and_evaluate's resume starts)
  with pytest.raises(
      checkpointing.CheckpointMismatchError, match=r"written by a run of 2 process\(es\), this one has 1"
  ):
    checkpointing.RunCheckpoints(str(tmp_path / "two")).restore_latest(None)


def test_seeds_split_over_two_processes_train_as_one_device(two_seeds_on_one_device, tmp_path):
  """mesh (seeds 2 × data 2) over 2 processes × 2 devices: each process holds one seed; same as 1 device."""
  over = {"seeds": [0, 1], "mesh_data": 2, **ONE_LAYER}
  two = _two(tmp_path, "seeds", tmp_path / "two", over)
  try:
    one, h_one = two_seeds_on_one_device()
    results = _wait(two)
  finally:
    processes.stop(two)
  assert [r["devices"] for r in results] == [4, 4]
  for r in results:
    assert r["per_seed"] == one["per_seed"] and len(r["per_seed"]) == 2
  # the losses of every epoch and seed too: the test metrics alone did not notice gradients left un-summed over
  # the data axis (a mutation check)
  key = lambda r: (r["epoch"], r["seed"])
  for a, b in zip(sorted(h_one, key=key), sorted(results[0]["history"], key=key), strict=True):
    assert key(a) == key(b)
    np.testing.assert_allclose(_losses([a])[0], _losses([b])[0], rtol=1e-5, atol=1e-6)
  assert results[0]["per_seed"][0] != results[0]["per_seed"][1]  # two different seeds, not one twice


def test_a_run_stopped_on_one_device_continues_on_four(two_seeds_on_one_device, data, tmp_path):
  """From an audit: 2 seeds on 1 device, resumed on 4 (a requeue onto another node), failed on the seeds padded to
  fill the devices (2 rows saved, 4 asked); the real rows continue, with the results of an uninterrupted run."""
  from hgnn_ima_jax import train
  from hgnn_ima_jax.experiments.outputs import history_writer

  over = {"seeds": [0, 1], **ONE_LAYER}
  workdir = tmp_path / "moved"
  # the run on 1 device is this process's (it has one device); polls as the workers': stop with one epoch done
  polls = iter(range(10**6))
  with pytest.raises(train.TrainingInterrupted) as cut:
    train.train_and_evaluate(
        config(**over),
        str(workdir),
        data,
        progress=False,
        should_stop=lambda: next(polls) == 3,
        on_history=history_writer(str(workdir)),
    )
  assert cut.value.epoch == 1, cut.value
  moved = _wait(_start(tmp_path, "on4", num_processes=1, devices=4, workdir=workdir, overrides=over, resume=True))
  one, _ = two_seeds_on_one_device()
  assert moved[0]["devices"] == 4 and moved[0]["per_seed"] == one["per_seed"], moved[0]


def test_processes_given_different_configs_are_refused_alike(tmp_path):
  """From an audit: a learning rate given to process 1 alone trained its seed with it while config.json recorded
  process 0's (exit 0); another --epochs ended in a Gloo collective mismatch and a native abort."""
  port = processes.free_port()
  spec = {"num_processes": 2, "devices": 2, "port": port, "workdir": str(tmp_path / "mixed"), "overrides": RUN}
  specs = [{**spec, "process_id": 0}, {**spec, "process_id": 1, "own_overrides": {"optimizer.learning_rate": 0.05}}]
  results = _wait(processes.start(WORKER, tmp_path, "mixed", specs))
  for r in results:  # both refuse, before anything is written
    assert r["error"] == (
        "config.optimizer.learning_rate=0.05: is process 1's value, process 0 has 0.001: every process of a run "
        "trains with one config. Fix: give every process the same flags (and the same --resume)"
    ), r
  assert not (tmp_path / "mixed").exists()


CLI_FLAGS = [
    *TINY_CLI,
    *ONE_LAYER_CLI,
    "--config.batch.mode=neighbor",
    "--config.batch.fanouts=10",
    "--config.batch.size=64",
    "--config.batch.parts=2",
    "--config.batch.prefetch=2",
]


def _slurm_job_with_free_port() -> int:
  """A SLURM_JOB_ID whose coordinator port (JAX: 61440 + id mod 4096) is free on 127.0.0.1."""
  for job in range(int(time.time()) % 4096, 4096 * 2):
    with socket.socket() as s:
      try:
        s.bind(("127.0.0.1", 61440 + job % 4096))
        return job
      except OSError:
        continue
  pytest.skip("no free port in JAX's SLURM range")


def test_cli_coordinator_auto_reads_slurm_and_trains_as_one_process(tmp_path):
  """experiments/train.py --coordinator=auto in 2 processes of a (faked) SLURM step = 1 process; prefetch on."""
  env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
  env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f)
  slurm = {"SLURM_JOB_ID": str(_slurm_job_with_free_port()), "SLURM_STEP_NODELIST": "127.0.0.1", "SLURM_NTASKS": "2"}
  script = [sys.executable, "experiments/train.py", *CLI_FLAGS]
  procs = [
      subprocess.Popen(
          [*script, f"--workdir={tmp_path / 'two'}", "--coordinator=auto", "--config.mesh_data=2"],
          cwd=processes.REPO,
          env={**env, **slurm, "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i)},
          stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT,
          text=True,
      )
      for i in range(2)
  ]
  try:
    one = subprocess.run(
        [*script, f"--workdir={tmp_path / 'one'}"],
        cwd=processes.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    outs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
  finally:
    processes.stop([(p, None, None) for p in procs])
  assert one.returncode == 0, one.stderr[-2000:]
  assert [p.returncode for p in procs] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
  want = json.load(open(tmp_path / "one" / "results.json"))
  got = json.load(open(tmp_path / "two" / "results.json"))
  assert got["per_seed"] == want["per_seed"]
  # every epoch's losses too (the test metrics alone passed with the data-axis gradient psum removed)
  h_one, h_two = (json.load(open(tmp_path / w / "history.json")) for w in ("one", "two"))
  assert [r["epoch"] for r in h_two] == [r["epoch"] for r in h_one] and h_one
  np.testing.assert_allclose(_losses(h_two), _losses(h_one), rtol=1e-5, atol=1e-6)
  assert json.load(open(tmp_path / "two" / "config.json"))["mesh_data"] == 2


@pytest.mark.parametrize(
    "overrides,field,problem",
    [
        ({"batch.parts": 4, "mesh_data": 3}, "mesh_data", "does not divide batch.parts=4"),
        ({"batch.parts": 0}, "batch.parts", "out of range"),
        ({"batch.mode": "full", "batch.parts": 2, "mesh_data": 1}, "batch.parts", "needs sampled mini-batches"),
    ],
)
def test_bad_parts_or_mesh_are_one_line_errors(overrides, field, problem):
  from hgnn_ima_jax import config_validation as cv

  with pytest.raises(cv.ConfigError, match=rf"^config\.{field}=.*{problem}") as e:
    cv.validate_config(config(**overrides))
  assert "\n" not in str(e.value) and "Fix:" in str(e.value)


def test_distributed_flags_are_checked_before_jax_distributed_starts():
  from absl import app

  from hgnn_ima_jax.experiments import train as train_cli

  with pytest.raises(app.UsageError, match="need --coordinator"):
    train_cli.initialize_distributed(None, 2, 0)
  with pytest.raises(app.UsageError, match="needs --num_processes and --process_id"):
    train_cli.initialize_distributed("127.0.0.1:1234", None, 0)
  train_cli.initialize_distributed(None, None, None)  # a single process: nothing to do
  # refused before jax.distributed.initialize, which raised a traceback (or waited) for these
  for bad_id, count in ((5, 2), (-1, 2), (0, 0)):
    with pytest.raises(app.UsageError, match=f"--process_id={bad_id} with --num_processes={count}: process ids"):
      train_cli.initialize_distributed("127.0.0.1:1234", count, bad_id)
  for address in ("127.0.0.1", "127.0.0.1:port", ":1234", "127.0.0.1:70000"):
    with pytest.raises(app.UsageError, match="expected HOST:PORT"):
      train_cli.initialize_distributed(address, 2, 0)


def test_a_process_waiting_for_its_run_stops_at_once_and_a_busy_port_is_one_line(tmp_path):
  """From an audit: a SIGTERM while process 0 waited for its peers was only recorded (it waited out JAX's 300 s),
  and a coordinator port already in use gave a 21-line traceback without the port."""
  port = processes.free_port()
  cmd = [sys.executable, "experiments/train.py", *TINY_CLI, f"--workdir={tmp_path / 'run'}", "--num_processes=2"]
  waiting = subprocess.Popen(
      [*cmd, f"--coordinator=127.0.0.1:{port}", "--process_id=0"],
      cwd=REPO,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
  )
  try:
    assert waiting.stdout.readline().startswith(f"process 0: waiting up to 300 s for 2 process(es) at 127.0.0.1:{port}")
    time.sleep(1)
    waiting.send_signal(signal.SIGTERM)
    _, err = waiting.communicate(timeout=30)
  finally:
    processes.stop([(waiting, None, None)])
  assert waiting.returncode == 143 and "SIGTERM received while waiting for the other processes" in err, err[-2000:]
  with socket.socket() as busy:
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    proc = subprocess.run(
        [*cmd, f"--coordinator=127.0.0.1:{busy.getsockname()[1]}", "--process_id=0", "--coordinator_timeout=20"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    port = busy.getsockname()[1]
  lines = proc.stderr.strip().splitlines()
  # refused before jax.distributed.initialize, which raised for a busy port, or at times crashed (a segfault)
  assert proc.returncode == 2 and lines == [
      f"error: --coordinator=127.0.0.1:{port}: port {port} is in use on this host, where process 0 starts the "
      "coordinator. Fix: give every process a free port of process 0's host"
  ], proc.stderr[-2000:]
  from hgnn_ima_jax.experiments import train as train_cli

  assert not train_cli._port_in_use(processes.free_port())


def _train_processes(tmp_path, runs: list[list[str]]) -> list[subprocess.Popen]:
  cmd = [sys.executable, "experiments/train.py", *TINY_CLI]
  return [
      subprocess.Popen([*cmd, *flags], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for flags in runs
  ]


def test_a_missing_peer_or_coordinator_is_one_line_when_the_wait_runs_out(tmp_path):
  """From an audit: a process alone (its peer never started, or nothing listening at --coordinator) waited out
  --coordinator_timeout, then JAX aborted it natively: a 36-line dump, exit 134, "another task died". Now one line
  and exit 2 when the wait runs out, for process 0 (the coordinator) and for another process, nothing written."""
  runs = [
      [f"--workdir={tmp_path / f'alone{i}'}", f"--coordinator=127.0.0.1:{processes.free_port()}", "--num_processes=2"]
      + [f"--process_id={i}", "--coordinator_timeout=3"]
      for i in (0, 1)
  ]
  procs = _train_processes(tmp_path, runs)
  try:
    outs = [p.communicate(timeout=TIMEOUT) for p in procs]
  finally:
    processes.stop([(p, None, None) for p in procs])
  for i, (p, (_, err)) in enumerate(zip(procs, outs)):
    last = err.strip().splitlines()[-1]
    assert p.returncode == 2 and "Check failure" not in err and "Fatal Python error" not in err, err[-3000:]
    assert last.startswith("error: --coordinator=127.0.0.1:") and f"process {i} of 2: not every process" in last
    assert "within --coordinator_timeout=3 s. Fix: start every process with the same --coordinator" in last
    assert not (tmp_path / f"alone{i}").exists()


def test_processes_given_other_workdirs_or_process_counts_are_refused(tmp_path):
  """From an audit: processes given different --workdir trained as one run (process 0's directory got it, the
  other's stayed empty, its --resume pointed there), and a process given another --num_processes trained as one of
  process 0's number. Each is now refused in one line before anything is written."""
  apart = [f"--coordinator=127.0.0.1:{processes.free_port()}", "--num_processes=2"]
  counts = [f"--coordinator=127.0.0.1:{processes.free_port()}", f"--workdir={tmp_path / 'counts'}"]
  runs = [[*apart, f"--workdir={tmp_path / w}", f"--process_id={i}"] for i, w in enumerate(("a", "b"))]
  runs += [[*counts, f"--num_processes={n}", f"--process_id={i}"] for i, n in enumerate((2, 3))]
  procs = _train_processes(tmp_path, runs)
  try:
    outs = [p.communicate(timeout=TIMEOUT) for p in procs[:2]] + [procs[3].communicate(timeout=TIMEOUT)]
  finally:
    processes.stop([(p, None, None) for p in procs])  # process 0 of the counts waits for a peer that left
  for p, (_, err) in zip(procs[:2], outs[:2]):
    assert p.returncode == 2, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"error: workdir={tmp_path / 'b'}: is process 1's, process 0 has {tmp_path / 'a'}: every process of a run "
        "writes one directory. Fix: give every process the same --workdir (on a file system they all see)"
    )
  assert procs[3].returncode == 2 and outs[2][1].strip().splitlines()[-1] == (
      "error: --num_processes=3: the run's coordinator has 2 processes (process 0's --num_processes). Fix: give "
      "every process the same --num_processes"
  )
  assert not any((tmp_path / w).exists() for w in ("a", "b"))


def test_a_process_whose_peer_died_exits_with_one_line(tmp_path):
  """From an audit: when one process of a run was killed, the other printed a Gloo traceback, then aborted natively
  when JAX's heartbeat timed out (~1 min later), with no way on."""
  port, workdir = processes.free_port(), tmp_path / "run"
  cmd = [sys.executable, "experiments/train.py", *TINY_CLI, *ONE_LAYER_CLI, f"--workdir={workdir}", "--num_processes=2"]
  cmd += [f"--coordinator=127.0.0.1:{port}", "--epochs=400", "--config.checkpoint_every=5"]
  procs = [
      subprocess.Popen([*cmd, f"--process_id={i}"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)
  ]
  try:
    latest, deadline = workdir / "checkpoints" / "latest", time.time() + 180
    while time.time() < deadline and not (latest.is_dir() and any(p.name.isdigit() for p in latest.iterdir())):
      assert all(p.poll() is None for p in procs), procs[0].communicate()[1][-2000:]
      time.sleep(0.1)
    procs[1].kill()
    _, err = procs[0].communicate(timeout=60)
  finally:
    processes.stop([(p, None, None) for p in procs])
  last = err.strip().splitlines()[-1]
  assert procs[0].returncode == 1 and last.startswith("error: process 0: a collective with the other processes failed")
  assert last.endswith(f"--workdir={workdir} --coordinator=127.0.0.1:{port} --num_processes=2 --process_id=0 --resume")
