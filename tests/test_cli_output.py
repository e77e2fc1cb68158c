"""What the scripts print: a --help that fits a screen and tells the truth, no native log noise."""

import os
import pathlib
import re
import subprocess
import sys

import pytest
from script_helpers import TINY_CLI, run_python

REPO = pathlib.Path(__file__).resolve().parents[1]
NATIVE_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")  # absl/XLA C++ log lines: 'E1202 05:53:24.157 ... .cc:220]'


def help_of(script, *flags):
  proc = subprocess.run(
      [sys.executable, f"experiments/{script}", *flags, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  return proc.stdout


def test_train_help_shows_the_flags_then_the_config_this_run_would_use():
  text = help_of("train.py")
  lines = text.splitlines()
  assert len(lines) <= 76  # a screen, not a flattened dump
  flags_at, config_at = lines.index("flags:"), next(i for i, l in enumerate(lines) if l.startswith("config fields"))
  for flag in ("--seeds", "--epochs", "--[no]resume", "--workdir", "--dataset", "--[no]print_config"):
    assert any(l.lstrip().startswith(flag) for l in lines[flags_at:config_at]), flag
  # The values the default run uses (60 epochs, 5 seeds, per-channel projection), not default.py's 100 and 1.
  config = "\n".join(lines[config_at:])
  assert "num_epochs=60" in config and "seeds=(0,1,2,3,4)" in config and "projection=per_channel" in config
  assert "checkpoint_every: 10" not in text and "!!python/tuple" not in text  # no flattened dump
  # every top-level field is shown, in a section or as not read (the split fields and mesh_data were missing);
  # the groups (model, batch, ...) are shown whole
  from experiments.configs import default

  shown, unread = " ".join(config.split()).split(" not read ")
  for field, value in default.get_config().items():
    assert f" {field}=" in shown or f" {field} " in f" {unread} " or hasattr(value, "keys"), field
  assert "split=file" in config and "mesh_data=1" in config and "split_seed" in config
  douban = help_of("train.py", "--dataset=douban", "--epochs=7")
  douban_config = douban.split("config fields")[1]
  assert "num_epochs=7" in douban_config and "score_scale=100.0" in douban_config and "synthetic " not in douban_config
  # the fields this run does not read are apart (an HGT baseline reads no attention field of HGNN-IMA's)
  late = help_of("train.py", "--model=hgt_late").split("config fields")[1]
  sections, unread = late.split("  not read")
  assert "combine=" not in sections and "fusion_form=code" in sections and "batch           mode=full" in sections
  assert "model.(align_off, align_sign, beta_norm, combine," in " ".join(unread.split()) and "batch.(buckets," in unread


@pytest.mark.parametrize("script", ["table2.py", "ablation.py", "depth_sweep.py", "visualize.py"])
def test_artefact_script_help_lists_the_shared_flags(script):
  text = help_of(script, "--tiny")
  own = text.split("flags:")[1].split("config fields")[0]
  for flag in ("--[no]tiny", "--seeds", "--epochs", "--features", "--protocol", "--workdir", "--[no]resume"):
    assert flag in own, (script, flag)
  assert "hidden=16" in text.split("config fields")[1]  # the --tiny sizes


@pytest.mark.parametrize(
    "command, message",
    [
        (
            "experiments/train.py --config.num_epochs=abc",
            "error: flag --config.num_epochs=abc: invalid literal for int()",
        ),
        (
            "experiments/train.py --config.synthetic.homophily=x",
            "error: flag --config.synthetic.homophily=x: could not",
        ),
        (
            "experiments/train.py --seed=3",
            "error: Unknown command line flag 'seed'. Did you mean: seeds? Fix: use a flag",
        ),
        (
            "experiments/table2.py --bogus",
            "error: Unknown command line flag 'bogus'. Fix: use a flag that --help lists",
        ),
        ("-m hgnn_ima_jax.data_utils.check --features=x", "error: flag --features=x: value should be one of <real|"),
        # a positional argument (--dataset= forgotten) is refused, not ignored (it trained the synthetic graph)
        ("experiments/train.py douban", "error: unexpected argument(s) 'douban': this command takes flags only. Fix:"),
        ("-m hgnn_ima_jax.data_utils.check --dataset=douban x", "error: unexpected argument(s) 'x': this command"),
    ],
)
def test_a_flag_absl_cannot_parse_is_one_line_with_the_fix(tmp_path, command, message):
  """absl's own parse errors (a value of the wrong type, an unknown flag) and stray positional arguments in the
  scripts' one-line form, not absl's 'FATAL Flags parsing error' and a second line; nothing is written."""
  workdir = [f"--workdir={tmp_path / 'run'}"] if command.startswith("experiments/") else []
  proc = subprocess.run(
      [sys.executable, *command.split(), *workdir], cwd=REPO, capture_output=True, text=True, timeout=120
  )
  assert proc.returncode == 1 and proc.stdout == ""
  assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1 and "Fix: " in proc.stderr, proc.stderr
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "command, message",
    [
        ("experiments/table2.py --models=bogus", "error: --models=bogus: give a comma list of hgnn_ima,"),
        ("experiments/table2.py --datasets=", "error: --datasets=: names no dataset in a comma list"),
        # a name given twice: the table had the same row (or column) twice
        ("experiments/table2.py --models=hgt,hgt", "error: --models=hgt,hgt: names hgt more than once"),
        ("experiments/ablation.py --datasets=imdb,imdb", "error: --datasets=imdb,imdb: names a dataset more than"),
        ("experiments/depth_sweep.py --layers=1,2,1", "error: --layers=1,2,1: names 1 more than once"),
        ("experiments/train.py --resume", "error: --resume needs the --workdir of the run to continue"),
        # a required flag left out, its value given bare: absl said "--dataset=None must have a value"
        (
            "-m hgnn_ima_jax.data_utils.download douban",
            "error: --dataset is required ('douban' alone is not a flag: write --dataset=douban). Fix:",
        ),
    ],
)
def test_a_usage_error_is_one_line_without_the_help(tmp_path, command, message):
  """absl prints the whole --help before an `app.UsageError` (48 lines for table2.py), burying the line that
  says what to fix: the scripts print that line alone."""
  workdir = (
      [f"--workdir={tmp_path / 'run'}"] if command.startswith("experiments/") and "--resume" not in command else []
  )
  proc = subprocess.run(
      [sys.executable, *command.split(), *workdir], cwd=REPO, capture_output=True, text=True, timeout=120
  )
  assert proc.returncode == 1 and proc.stdout == ""
  assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
  assert not (tmp_path / "run").exists()


def test_a_table_script_fix_names_its_datasets_flag(tmp_path):
  """From an audit: table2.py --features=generated on the synthetic graph said `(e.g. --dataset=douban)`, a flag
  table2/ablation/depth_sweep do not take; their fixes name --datasets."""
  proc = run_python(
      "experiments/table2.py", "--tiny", "--features=generated", f"--workdir={tmp_path / 'run'}", timeout=120
  )
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
  assert lines[0].startswith("error: config.features=generated: ") and "(e.g. --datasets=douban)" in lines[0]
  assert "--dataset=" not in lines[0]


def test_the_attention_study_module_run_directly_names_the_script():
  """From an audit: experiments/attention_study.py (visualize.py's library) run with --help printed nothing and
  exited 0; it now says what it is and which script to run."""
  proc = subprocess.run(
      [sys.executable, "experiments/attention_study.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
  )
  assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
  assert proc.stderr.startswith("error: experiments/attention_study.py is the attention case study that visualize.py")
  assert "Fix: run python experiments/visualize.py" in proc.stderr


def _train(tmp_path, cache, *extra) -> subprocess.Popen:
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)
  return subprocess.Popen(
      [
          sys.executable,
          "experiments/train.py",
          f"--workdir={tmp_path / os.urandom(4).hex()}",
          "--seeds=1",
          "--epochs=1",
          "--config.model.hidden=8",
          "--config.model.heads=1",
          "--config.model.num_layers=1",
          "--config.synthetic.scale=0.05",
          "--noprogress",
          *extra,
      ],
      cwd=REPO,
      env=env,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
  )


def _finish(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
  """(exit code, stderr) of each run, all stopped in any case."""
  try:
    errs = [p.communicate(timeout=300)[1] for p in procs]
    return [(p.returncode, err) for p, err in zip(procs, errs)]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()


def test_a_warm_cache_run_prints_no_native_log_lines(tmp_path):
  cache = tmp_path / "xla-cache"
  ((code, err),) = _finish([_train(tmp_path, cache)])
  assert code == 0, err[-2000:]
  assert any(cache.iterdir())
  # the warm runs, together: one as users run it, one with --verbosity
  (code, warm), (vcode, verbose) = _finish([_train(tmp_path, cache), _train(tmp_path, cache, "--verbosity=0")])
  assert code == 0, warm[-2000:]
  assert [l for l in warm.splitlines() if NATIVE_LOG.match(l)] == []
  # --verbosity shows them again (loading cached programs logs at least the version-compatibility warning).
  assert vcode == 0 and any(NATIVE_LOG.match(l) for l in verbose.splitlines()), verbose


@pytest.mark.parametrize(
    "orig_argv,command",
    [
        (["python3", "experiments/train.py", "--seeds=2"], "python experiments/train.py"),
        (["/v/bin/python", "-u", "-m", "hgnn_ima_jax.experiments.train"], "python -m hgnn_ima_jax.experiments.train"),
        (["/v/bin/python", "/v/bin/hgnn-ima-train", "--resume"], "hgnn-ima-train"),
    ],
)
def test_the_printed_command_is_the_one_that_started_the_run(monkeypatch, orig_argv, command):
  from hgnn_ima_jax.experiments import launch

  monkeypatch.setattr(sys, "orig_argv", orig_argv)
  assert launch.launch_command() == command


def test_a_workdir_that_cannot_be_written_mid_run_is_one_line_with_the_resume_command(tmp_path):
  """From an audit: a workdir that became unwritable during training (a read-only remount, a full disk) ended in a
  PermissionError traceback; here a directory stands where history.json is written after the first epoch."""
  workdir = tmp_path / "run"
  (workdir / "history.json").mkdir(parents=True)
  # one layer: the failed write after the first epoch is the point, not the model
  proc = run_python(
      "experiments/train.py", f"--workdir={workdir}", *TINY_CLI, "--config.model.num_layers=1", timeout=300
  )
  lines = [l for l in proc.stderr.splitlines() if l.strip() and not NATIVE_LOG.match(l)]
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  assert lines[-1].startswith(f"error: {workdir}/history.json: Is a directory. Fix: clear what stops writing in ")
  assert lines[-1].endswith(f"continue with: python experiments/train.py --workdir={workdir} --resume")
