"""`--resume` continues the run in the workdir with its saved config; SIGINT/SIGTERM stop it resumably.

Every test runs experiments/train.py as a subprocess on a tiny graph and compares with one
uninterrupted run of the same flags (module fixture): resumed runs must give identical metrics.
"""

import json
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
EPOCHS = 60
RUN_FLAGS = [
    "--config.model.hidden=16",
    "--config.model.heads=2",
    "--config.model.num_layers=2",
    "--config.synthetic.scale=0.1",
    "--seeds=2",
    f"--epochs={EPOCHS}",
    "--config.checkpoint_every=10",
]


def train_cmd(workdir, *flags):
  return [sys.executable, "experiments/train.py", f"--workdir={workdir}", "--noprogress", *flags]


def start(workdir, *flags):
  return subprocess.Popen(
      train_cmd(workdir, *RUN_FLAGS, *flags), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )


def run(workdir, *flags, timeout=300):
  return subprocess.run(train_cmd(workdir, *flags), cwd=REPO, capture_output=True, text=True, timeout=timeout)


def wait_for_checkpoint(proc, workdir, step):
  """Waits until checkpoints/latest holds a step >= `step` (training is then under way)."""
  latest = workdir / "checkpoints" / "latest"
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if latest.is_dir() and any(p.name.isdigit() and int(p.name) >= step for p in latest.iterdir()):
      return
    time.sleep(0.02)
  pytest.fail(f"no checkpoint {step} appeared (returncode {proc.poll()})")


def same_results(a: pathlib.Path, b: pathlib.Path):
  ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
  assert ra["per_seed"] == rb["per_seed"] and ra["epochs"] == rb["epochs"]
  ha, hb = (json.loads((d / "history.json").read_text()) for d in (a, b))
  assert [(r["epoch"], r["seed"], r["val_loss"], r["train_loss"]) for r in ha] == [
      (r["epoch"], r["seed"], r["val_loss"], r["train_loss"]) for r in hb
  ]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("full") / "run"
  proc = run(workdir, *RUN_FLAGS)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir


def test_sigkill_then_resume_alone_equals_an_uninterrupted_run(full_run, tmp_path):
  killed = tmp_path / "killed"
  proc = start(killed)
  wait_for_checkpoint(proc, killed, 20)
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  assert not (killed / "results.json").exists(), "the run finished before it could be killed"
  resumed = run(killed, "--resume")  # no other flag: the saved config decides everything
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert json.loads((killed / "config.json").read_text())["num_epochs"] == EPOCHS
  same_results(killed, full_run)


@pytest.mark.parametrize(
    "flag,saved",
    [
        (f"--epochs={EPOCHS + 1}", f"num_epochs={EPOCHS}"),
        ("--seeds=3", "seeds=(0, 1)"),
        ("--config.model.hidden=32", "model.hidden=16"),
        ("--model=hgt_late", "model_name=hgnn_ima"),
    ],
)
def test_resume_refuses_a_flag_that_contradicts_the_saved_config(full_run, flag, saved):
  before = (full_run / "config.json").read_text()
  proc = run(full_run, "--resume", flag)
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  assert lines[0].startswith(f"error: {flag} contradicts the run in {full_run}, saved with {saved}.")
  assert "new --workdir" in lines[0]
  assert (full_run / "config.json").read_text() == before


def test_resume_resets_a_field_the_dataset_never_read_and_refuses_one_given(full_run, tmp_path):
  # An older version saved --data_dir given with --dataset=synthetic (ignored then, refused now).
  config = json.loads((full_run / "config.json").read_text())
  assert config["dataset"] == "synthetic" and config["data_dir"] == ""
  old = tmp_path / "old"
  (old / "checkpoints" / "latest" / "10").mkdir(parents=True)
  # ... and a split seed with the file split (also ignored then)
  assert config["split"] == "file" and config["split_seed"] == 0
  # ... and a batch size with full-batch training (also ignored then)
  assert config["batch"]["mode"] == "full" and config["batch"]["size"] == 512
  batch = {**config["batch"], "size": 128}
  # ... and the HGT baselines' score scale with HGNN-IMA (also ignored then)
  assert config["model_name"] == "hgnn_ima" and config["model"]["baseline_score_scale"] is None
  model = {**config["model"], "baseline_score_scale": 3.0}
  old_config = {**config, "data_dir": "/old/dir", "split_seed": 5, "batch": batch, "model": model}
  (old / "config.json").write_text(json.dumps(old_config))
  proc = run(old, "--resume", "--print_config")
  assert proc.returncode == 0, proc.stderr[-2000:]
  resumed = json.loads(proc.stdout)
  assert (resumed["data_dir"], resumed["split_seed"], resumed["num_epochs"]) == ("", 0, EPOCHS)
  assert resumed["batch"]["size"] == 512 and resumed["model"]["baseline_score_scale"] is None
  for flag, error in (
      ("--data_dir=/new/dir", "config.data_dir=/new/dir: is not read by dataset 'synthetic'"),
      ("--config.split_seed=2", "config.split_seed=2: is not read with split=file"),
      ("--config.batch.size=64", "config.batch.size=64: is not read with batch.mode=full"),
      ("--config.model.nei_mode=target", "config.model.nei_mode=target: is not read with variant full"),
  ):
    proc = run(old, "--resume", flag)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith(f"error: {error}")


def test_resume_without_a_run_or_checkpoint_is_one_line(tmp_path):
  proc = run(tmp_path / "nothing", "--resume")
  assert proc.returncode == 2 and proc.stderr.strip().startswith("error: --resume: ")
  assert "no config.json" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
  assert not (tmp_path / "nothing").exists()
  (tmp_path / "early").mkdir()
  (tmp_path / "early" / "config.json").write_text("{}")  # killed before its first checkpoint
  proc = run(tmp_path / "early", "--resume")
  assert proc.returncode == 2 and "no checkpoint to continue from" in proc.stderr


LINE = re.compile(
    r"^interrupted at epoch (\d+) of (\d+); continue with: (python experiments/train\.py) " r"--workdir=(\S+) --resume$"
)


def test_signal_saves_a_checkpoint_and_prints_the_resume_command(full_run, tmp_path):
  """SIGINT in training; SIGTERM takes the same path (StopOnSignal.install connects both: the test below), and
  train.py's exit with 143 is test_a_signal_as_soon_as_the_process_catches_it_stops_the_run_cleanly's."""
  signum, code = signal.SIGINT, 130
  workdir = tmp_path / "stopped"
  proc = start(workdir)
  wait_for_checkpoint(proc, workdir, 10)
  proc.send_signal(signum)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == code, err[-3000:]
  assert "Traceback" not in err
  m = LINE.match(err.strip().splitlines()[-1])
  assert m, err[-2000:]
  epoch = int(m.group(1))
  assert 10 <= epoch < EPOCHS and int(m.group(2)) == EPOCHS and m.group(4) == str(workdir)
  history = json.loads((workdir / "history.json").read_text())
  assert max(r["epoch"] for r in history) == epoch - 1  # the checkpoint holds every finished epoch
  assert str(epoch) in [p.name for p in (workdir / "checkpoints" / "latest").iterdir()]
  # The printed command, as printed (with this interpreter for `python`) plus a result-neutral flag.
  resumed = subprocess.run(
      [
          sys.executable,
          *m.group(3).split()[1:],
          f"--workdir={m.group(4)}",
          "--resume",
          "--noprogress",
          "--config.checkpoint_every=7",
      ],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  # said before it trains (--noprogress hides the bar, which showed where it starts)
  assert f"resuming {workdir} from its last checkpoint ({epoch} of {EPOCHS} epoch(s) done)\n" in resumed.stdout
  same_results(workdir, full_run)


STOP_ON_SIGNAL = """
import os, signal, time
from hgnn_ima_jax.experiments.launch import StopOnSignal
stop = StopOnSignal().install()
os.kill(os.getpid(), signal.SIG{name})
deadline = time.time() + 20
while not stop() and time.time() < deadline:
  time.sleep(0.01)
print(stop(), stop.exit_code, flush=True)
"""


@pytest.mark.parametrize("name,code", [("INT", 130), ("TERM", 143)])
def test_stop_on_signal_connects_sigint_and_sigterm(name, code):
  """What a signal in training reaches (train.py and the table scripts install it): a stop request with the signal's
  exit code, for SIGTERM as for SIGINT (whose run train.py's test above follows to its resume)."""
  proc = subprocess.run(
      [sys.executable, "-c", STOP_ON_SIGNAL.format(name=name)], cwd=REPO, capture_output=True, text=True, timeout=60
  )
  assert proc.returncode == 0 and proc.stdout.split() == ["True", str(code)], (proc.returncode, proc.stderr[-2000:])
  assert f"SIG{name} received: stopping after the current epoch" in proc.stderr, proc.stderr[-2000:]


BLOCKED_IN_C = """
import ctypes, threading, time
from hgnn_ima_jax.experiments.launch import StopOnSignal
StopOnSignal().install()
libc, mutex = ctypes.CDLL(None), ctypes.create_string_buffer(64)
libc.pthread_mutex_init(mutex, None)
libc.pthread_mutex_lock(mutex)
threading.Thread(target=lambda: (time.sleep(0.5), print("ready", flush=True)), daemon=True).start()
libc.pthread_mutex_lock(mutex)  # the main thread blocks in C for good, as in a long XLA compile: no Python handler runs
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses glibc's pthread_mutex_t via ctypes")
def test_a_second_signal_exits_at_once_even_inside_a_long_c_call():
  proc = subprocess.Popen(
      [sys.executable, "-c", BLOCKED_IN_C], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )
  try:
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    assert "SIGINT received: stopping after the current epoch" in proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
  finally:
    proc.kill()
  assert proc.returncode == 130 and "second SIGINT: exiting now" in err, err


@pytest.mark.parametrize(
    "script,where",
    # every script on a missing workdir; the other two cases through both callers of refuse_resume_without_cells
    # (common.run_script, for table2, ablation and depth_sweep alike, and visualize.py's own)
    [(script, "missing") for script in ("table2.py", "ablation.py", "depth_sweep.py", "visualize.py")]
    + [(script, where) for script in ("table2.py", "visualize.py") for where in ("empty", "train_run")],
)
def test_a_table_script_refuses_resume_without_cells(tmp_path, script, where):
  """From an audit: table2.py --resume on a mistyped --workdir trained every cell from scratch and exited 0, where
  train.py refuses; the artefact scripts now refuse in one line, before anything is trained or written."""
  workdir = tmp_path / "w"
  if where != "missing":
    workdir.mkdir()
  if where == "train_run":  # a train.py run is not a cell (<dataset>/<cell>/config.json)
    (workdir / "config.json").write_text("{}")
  before = sorted(p.name for p in tmp_path.rglob("*"))
  proc = subprocess.run(
      [sys.executable, f"experiments/{script}", "--tiny", "--noprogress", f"--workdir={workdir}", "--resume"],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=120,
  )
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2 and proc.stdout == "" and len(lines) == 1, proc.stderr[-2000:]
  if where == "train_run":  # named for what it is (common.refuse_a_training_run), --resume or not
    assert lines[0].startswith(f"error: --workdir={workdir}: holds an experiments/train.py run"), lines[0]
  else:
    what = "does not exist" if where == "missing" else "holds no cell of an earlier"
    assert lines[0].startswith("error: --resume: ") and what in lines[0], lines[0]
    assert "Fix: check the path of the earlier run, or drop --resume to start a new one there" in lines[0]
  assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_resume_accepts_a_workdir_with_a_cell_or_a_table(tmp_path):
  """The refusal above leaves resuming alone: a workdir with a cell (an unfinished one has its config.json from
  its start) or a table of any of the scripts (table2's cells serve ablation and depth_sweep) is continued."""
  from hgnn_ima_jax.experiments import common

  (tmp_path / "cell" / "synthetic" / "hgt").mkdir(parents=True)
  (tmp_path / "cell" / "synthetic" / "hgt" / "config.json").write_text("{}")
  (tmp_path / "table").mkdir()
  (tmp_path / "table" / "layers.json").write_text("{}")
  (tmp_path / "none" / "synthetic" / "hgt").mkdir(parents=True)  # a cell directory without its config.json
  for accepted in ("cell", "table"):
    assert common.holds_cells(str(tmp_path / accepted))
    common.refuse_resume_without_cells(str(tmp_path / accepted))  # returns, no exit
  assert not common.holds_cells(str(tmp_path / "none"))
  with pytest.raises(SystemExit) as e:
    common.refuse_resume_without_cells(str(tmp_path / "none"))
  assert e.value.code == 2


def test_a_signal_one_process_received_stops_every_process(monkeypatch):
  """Ctrl-C in one process of a multi-process run stopped that process alone; the others waited in the next
  collective forever and no checkpoint was written. Every process now polls the request through one all-gather
  (`StopOnSignal.across_processes`), so all stop at the same step, with the signal's exit code. The all-gather
  is a stand-in here; two real processes were checked by hand (benchmarks/README.md has no timing for it)."""
  from hgnn_ima_jax import distributed
  from hgnn_ima_jax.experiments.launch import StopOnSignal

  sent, peers = [], {"signum": 0}
  monkeypatch.setattr(distributed, "agree_largest", lambda v: sent.append(v) or max(v, peers["signum"]))
  logs = []
  here = StopOnSignal(log=logs.append)
  here.unit = "batch"
  poll = here.across_processes()
  assert not poll() and not here()
  peers["signum"] = int(signal.SIGTERM)  # another process was signalled
  assert poll() and here() and here.exit_code == 143
  assert logs == ["SIGTERM reached another process: stopping after the current batch"]
  # ... and a signal this process received is what it sends to the others
  there = StopOnSignal(log=logs.append)
  there._record(signal.SIGINT)  # pylint: disable=protected-access
  peers["signum"] = 0
  assert there.across_processes()() and sent[-1] == int(signal.SIGINT)


def test_a_signal_stops_a_table_script_with_its_resume_command(tmp_path):
  """From an audit: Ctrl-C in table2/ablation/depth_sweep was a KeyboardInterrupt traceback (and an Orbax error
  after it) with no way on printed; they now stop after the cell's epoch as train.py does."""
  workdir = tmp_path / "t2"
  flags = ["--tiny", "--models=hgt", "--seeds=1", "--epochs=60", "--config.checkpoint_every=5", "--noprogress"]
  proc = subprocess.Popen(
      [sys.executable, "experiments/table2.py", *flags, f"--workdir={workdir}"],
      cwd=REPO,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
  )
  wait_for_checkpoint(proc, workdir / "synthetic" / "hgt", 5)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
  last = err.strip().splitlines()[-1]
  m = re.match(r"^interrupted at epoch (\d+) of 60 in (\S+); finished cells are kept\. Continue with: (.*)$", last)
  assert m and m.group(2) == str(workdir / "synthetic" / "hgt"), last
  assert m.group(3) == f"python experiments/table2.py {' '.join(flags)} --workdir={workdir} --resume"
  resumed = subprocess.run(
      [sys.executable, *m.group(3).split()[1:]], cwd=REPO, capture_output=True, text=True, timeout=300
  )
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert json.loads((workdir / "synthetic" / "hgt" / "results.json").read_text())["epochs"] == 60
  # the continued cell says where it goes on, as train.py --resume does
  cell = workdir / "synthetic" / "hgt"
  assert f"[synthetic/hgt] resuming {cell} from its last checkpoint ({m.group(1)} of 60 epoch(s) done)\n" in (
      resumed.stdout
  ), resumed.stdout[-2000:]
  # and the finished table is not replaced by a later run of other cells into the same workdir without --resume
  table = (workdir / "table2.json").read_text()
  again = subprocess.run(
      [sys.executable, "experiments/table2.py", "--tiny", "--models=hgt_early", f"--workdir={workdir}"],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert again.returncode == 2 and again.stderr.startswith(f"error: {workdir}/table2.json: --workdir holds the table")
  assert (workdir / "table2.json").read_text() == table and not (workdir / "synthetic" / "hgt_early").exists()


def test_resume_takes_a_moved_data_dir(tmp_path):
  """From an audit: a dataset directory moved since the run started could not be given (--data_dir "contradicts"
  the run, and the missing-files error said to download into the old place). It is a host path, as for the
  processes of one run: --resume takes it and config.json records it."""
  from hgnn_ima_jax.experiments.configs import get_config

  workdir = tmp_path / "douban_run"
  (workdir / "checkpoints" / "latest" / "10").mkdir(parents=True)
  config = get_config("douban")
  config.data_dir = "/old/dir"
  (workdir / "config.json").write_text(config.to_json())
  proc = run(workdir, "--resume", "--print_config", f"--data_dir={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert json.loads(proc.stdout)["data_dir"] == str(tmp_path)


def test_resume_of_a_finished_run_whose_latest_checkpoints_are_gone_prints_its_results(full_run, tmp_path):
  """From an audit: --resume said the run had no checkpoint (start again without --resume), and without it the run
  was refused for its checkpoints/best (pass --resume): a loop. A finished run prints its results either way."""
  import shutil

  finished = tmp_path / "finished"
  shutil.copytree(full_run, finished)
  shutil.rmtree(finished / "checkpoints" / "latest")
  before = (finished / "results.json").read_text()
  proc = run(finished, "--resume")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "mean" in proc.stdout and (finished / "results.json").read_text() == before


def _catches_sigterm(pid: int) -> bool:
  """Whether process `pid` has a handler for SIGTERM (its /proc status SigCgt mask)."""
  try:
    with open(f"/proc/{pid}/status") as f:
      mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
  except (OSError, StopIteration):
    return False
  return bool(mask & (1 << (signal.SIGTERM - 1)))


def test_a_signal_as_soon_as_the_process_catches_it_stops_the_run_cleanly(tmp_path):
  """From an audit: SIGTERM during the imports, before `main` installed StopOnSignal, killed the process silently
  (exit 143, no checkpoint, nothing printed). train.py now catches it from its first lines and hands it on: sent as
  soon as the process catches SIGTERM (after the allocator re-exec), during the imports, the run stops as documented."""
  workdir = tmp_path / "early"
  proc = start(workdir)
  deadline = time.time() + 60
  while not _catches_sigterm(proc.pid) and time.time() < deadline and proc.poll() is None:
    time.sleep(0.005)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 143 and "SIGTERM received" in err and "Traceback" not in err, err[-2000:]
  assert LINE.match(err.strip().splitlines()[-1]) and (workdir / "checkpoints" / "latest" / "0").is_dir(), err[-2000:]
