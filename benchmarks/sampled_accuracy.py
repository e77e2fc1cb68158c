r"""Test Macro-F1 of sampled mini-batch training against full-batch training: same graph, seeds and epochs.

A benchmark, not a test (it trains for real: minutes to hours). Each mode is one
`experiments/train.py` run in its own process; the row holds both modes' per-seed test Macro-F1 and
Micro-F1, their means and standard deviations, the difference of the means and the wall times.

  python benchmarks/sampled_accuracy.py --dataset=amazon --features=generated --modes=full,neighbor
  python benchmarks/sampled_accuracy.py --dataset=synthetic_amazon1 --modes=full,neighbor --fanouts=10,5,5

Flags after `--` go to every run unchanged (e.g. `-- --config.model.hidden=32`); a batch field goes only to
the runs whose mode reads it (`--batch_size`, `--fanouts`), since the full-batch run refuses batch fields.

Without --workdir the runs go to a temporary directory (checkpoints included), which is removed at the end
(and on SIGTERM/SIGINT, with the runs stopped); --keep keeps it and prints its path. Any failed run makes the
script exit 1 after its JSON line, whose run then holds an `error`.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(1, str(REPO))  # experiments.run_options

import bench_subprocess  # noqa: E402
from absl import app, flags  # noqa: E402
from bench_cli import at_least, check_out, int_list, mean_std  # noqa: E402
from bench_env import emit, now_utc  # noqa: E402
from bench_variants import check_choices  # noqa: E402

from experiments.run_options import parse_seeds  # noqa: E402
from hgnn_ima_jax import choices  # noqa: E402
from hgnn_ima_jax import config_validation as cv  # noqa: E402
from hgnn_ima_jax.cli_flags import one_line_usage_errors, parse_flags  # noqa: E402
from hgnn_ima_jax.run_dir import check_workdir  # noqa: E402

FLAGS = flags.FLAGS
MODES = choices.CHOICES["batch.mode"]
flags.DEFINE_string("dataset", "amazon", "experiments/train.py --dataset")
flags.DEFINE_string("features", "", "experiments/train.py --features ('' for the dataset's default)")
flags.DEFINE_list(
    "modes", "full,neighbor", "config.batch.mode of each run (the first is the reference): full, neighbor, hgt"
)
flags.DEFINE_string("seeds", "5", "experiments/train.py --seeds (a count or a list)")
flags.DEFINE_integer("epochs", 0, "epochs of every run (0: the dataset's)")
flags.DEFINE_list("fanouts", [], "config.batch.fanouts of the neighbor run (empty: the default)")
flags.DEFINE_integer("batch_size", 0, "config.batch.size of the sampled runs (0: the default)")
flags.DEFINE_string(
    "workdir", "", "where the runs go, one directory per mode (default: a temporary directory, removed at the end)"
)
flags.DEFINE_bool("keep", False, "without --workdir: keep the temporary directory of the runs and print its path")
flags.DEFINE_string("out", "", "append the JSON line to this file too")
flags.DEFINE_integer("timeout", 4 * 3600, "seconds before a run is killed")


def run_mode(mode: str, workdir: pathlib.Path, extra: list[str]) -> dict:
  # The runs start in the repository root: a dataset path, like the workdir, is made absolute first.
  dataset = FLAGS.dataset if FLAGS.dataset.lower() in choices.DATASET_NAMES else os.path.abspath(FLAGS.dataset)
  cmd = [sys.executable, "experiments/train.py", f"--dataset={dataset}", f"--seeds={FLAGS.seeds}"]
  cmd += [f"--workdir={workdir}", "--noprogress", f"--config.batch.mode={mode}"]
  if FLAGS.features:
    cmd.append(f"--features={FLAGS.features}")
  if FLAGS.epochs:
    cmd.append(f"--epochs={FLAGS.epochs}")
  if mode == "neighbor" and FLAGS.fanouts:
    cmd.append(f"--config.batch.fanouts=({','.join(FLAGS.fanouts)},)")
  if mode != "full" and FLAGS.batch_size:
    cmd.append(f"--config.batch.size={FLAGS.batch_size}")
  t = time.perf_counter()
  # bench_subprocess: the run stops with this script (SIGTERM/SIGINT, or killed), with what it started.
  p = bench_subprocess.start(cmd + extra, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  out = bench_subprocess.communicate(p, FLAGS.timeout)
  wall = time.perf_counter() - t
  if out is None:
    return {"mode": mode, "error": f"killed after --timeout={FLAGS.timeout} s", "command": cmd + extra}
  if p.returncode != 0:
    return {"mode": mode, "error": (out[1].strip().splitlines() or ["no output"])[-1], "command": cmd + extra}
  res = json.load(open(workdir / "results.json"))
  macro = [s["test_macro_f1"] for s in res["per_seed"]]
  micro = [s["test_micro_f1"] for s in res["per_seed"]]
  macro_mean, macro_std = mean_std(macro)  # the sample std (n - 1), as everywhere in the project
  return {
      "mode": mode,
      "test_macro_f1": macro,
      "test_micro_f1": micro,
      "macro_mean": round(macro_mean, 4),
      "macro_std": None if macro_std is None else round(macro_std, 4),
      "micro_mean": round(mean_std(micro)[0], 4),
      "epochs_run": [s["epochs_run"] for s in res["per_seed"]],
      "wall_s": round(wall, 1),
      "features": res.get("features"),
      "command": " ".join(cmd + extra),
  }


def check_flags() -> None:
  """What a run would have refused after the runs before it (an error inside the JSON, exit 0), or never read."""
  modes = check_choices("modes", FLAGS.modes, MODES)
  if len(set(modes)) < len(modes):
    raise ValueError(
        f"--modes={','.join(modes)}: a mode given twice would train into the same directory. Fix: give each once"
    )
  dataset = FLAGS.dataset
  if not (dataset.lower() in choices.DATASET_NAMES or os.path.exists(dataset)):
    raise ValueError(
        f"--dataset={dataset}: is neither a known dataset ({', '.join(choices.DATASET_NAMES)}) nor an existing path. "
        "Fix: give one of them"
    )
  try:
    parse_seeds(FLAGS.seeds)
  except cv.ConfigError as e:
    raise ValueError(f"--seeds={FLAGS.seeds}: {e.problem}. Fix: {e.fix}") from None
  at_least("epochs", FLAGS.epochs, 0)
  at_least("batch_size", FLAGS.batch_size, 0)
  at_least("timeout", FLAGS.timeout, 1)
  if FLAGS.fanouts:
    if "neighbor" not in modes:
      raise ValueError(f"--fanouts={','.join(FLAGS.fanouts)}: only the neighbor mode reads it. Fix: add it to --modes")
    int_list("fanouts", FLAGS.fanouts, low=1, also=(-1,))
  if FLAGS.batch_size and set(modes) <= {"full"}:
    raise ValueError(f"--batch_size={FLAGS.batch_size}: full-batch runs have no batches. Fix: drop it")
  if FLAGS.workdir:
    if FLAGS.keep:
      raise ValueError(f"--keep: --workdir={FLAGS.workdir} is always kept. Fix: drop --keep")
    check_workdir(FLAGS.workdir, "--workdir")
    for mode in modes:  # experiments/train.py refuses a workdir with a run in it, after the modes before it ran
      sub = pathlib.Path(FLAGS.workdir) / mode
      if sub.is_dir() and any(sub.iterdir()):
        raise ValueError(f"--workdir={FLAGS.workdir}: {sub} already holds a run. Fix: give a new or empty --workdir")


def main(argv):
  extra = argv[1:]
  bench_subprocess.stop_on_signals("sampled_accuracy.py")
  try:
    check_flags()
    out_note = check_out(FLAGS.out)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if out_note:
    print(out_note, file=sys.stderr)
  temporary = not FLAGS.workdir
  root = bench_subprocess.temp_dir("sampled-accuracy-") if temporary else pathlib.Path(os.path.abspath(FLAGS.workdir))
  try:
    runs = [run_mode(mode, root / mode, extra) for mode in FLAGS.modes]
  finally:
    if temporary and not FLAGS.keep:
      bench_subprocess.remove_temp_dir(root)
  kept = not temporary or FLAGS.keep
  row = {
      "record": "sampled_accuracy",
      "dataset": FLAGS.dataset,
      "date": now_utc(),
      "workdir": str(root) if kept else None,
      "runs": runs,
  }
  ref = runs[0]
  if "error" not in ref:
    row["macro_diff_vs_" + ref["mode"]] = {
        r["mode"]: round(r["macro_mean"] - ref["macro_mean"], 4) for r in runs[1:] if "error" not in r
    }
  emit(row, FLAGS.out)
  if temporary and FLAGS.keep:
    print(f"# the runs are kept in {root}", file=sys.stderr)
  failed = [r["mode"] for r in runs if "error" in r]
  if failed:
    print(f"# failed: {', '.join(failed)}; see their 'error'", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(one_line_usage_errors(main), flags_parser=parse_flags)
