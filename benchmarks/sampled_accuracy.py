r"""Test Macro-F1 of sampled mini-batch training against full-batch training: same graph, seeds and epochs.

A benchmark, not a test (it trains for real: minutes to hours). Each mode is one
`experiments/train.py` run in its own process; the row holds both modes' per-seed test Macro-F1 and
Micro-F1, their means and standard deviations, the difference of the means and the wall times.

  python benchmarks/sampled_accuracy.py --dataset=amazon --features=generated --modes=full,neighbor
  python benchmarks/sampled_accuracy.py --dataset=synthetic_amazon1 --modes=full,neighbor --fanouts=10,5,5

Flags after `--` go to every run unchanged (e.g. `-- --config.model.hidden=32`); a batch field goes only to
the runs whose mode reads it (`--batch_size`, `--fanouts`), since the full-batch run refuses batch fields.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from absl import app, flags  # noqa: E402
from bench_env import emit, now_utc  # noqa: E402

from hgnn_ima_jax.config_validation import one_line_usage_errors, parse_flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "amazon", "experiments/train.py --dataset")
flags.DEFINE_string("features", "", "experiments/train.py --features ('' for the dataset's default)")
flags.DEFINE_list("modes", "full,neighbor", "config.batch.mode of each run (the first is the reference)")
flags.DEFINE_string("seeds", "5", "experiments/train.py --seeds (a count or a list)")
flags.DEFINE_integer("epochs", 0, "epochs of every run (0: the dataset's)")
flags.DEFINE_list("fanouts", [], "config.batch.fanouts of the neighbor run (empty: the default)")
flags.DEFINE_integer("batch_size", 0, "config.batch.size of the sampled runs (0: the default)")
flags.DEFINE_string("workdir", "", "where the runs go (default: a temporary directory)")
flags.DEFINE_string("out", "", "append the JSON line to this file too")
flags.DEFINE_integer("timeout", 4 * 3600, "seconds before a run is killed")


def run_mode(mode: str, workdir: pathlib.Path, extra: list[str]) -> dict:
  cmd = [sys.executable, "experiments/train.py", f"--dataset={FLAGS.dataset}", f"--seeds={FLAGS.seeds}"]
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
  p = subprocess.run(cmd + extra, cwd=REPO, capture_output=True, text=True, timeout=FLAGS.timeout)
  wall = time.perf_counter() - t
  if p.returncode != 0:
    return {"mode": mode, "error": (p.stderr.strip().splitlines() or ["no output"])[-1], "command": cmd + extra}
  res = json.load(open(workdir / "results.json"))
  macro = [s["test_macro_f1"] for s in res["per_seed"]]
  micro = [s["test_micro_f1"] for s in res["per_seed"]]
  std = lambda xs: statistics.pstdev(xs) if len(xs) > 1 else 0.0
  return {
      "mode": mode,
      "test_macro_f1": macro,
      "test_micro_f1": micro,
      "macro_mean": round(statistics.mean(macro), 4),
      "macro_std": round(std(macro), 4),
      "micro_mean": round(statistics.mean(micro), 4),
      "epochs_run": [s["epochs_run"] for s in res["per_seed"]],
      "wall_s": round(wall, 1),
      "features": res.get("features"),
      "command": " ".join(cmd + extra),
  }


def main(argv):
  extra = argv[1:]
  root = pathlib.Path(FLAGS.workdir or tempfile.mkdtemp(prefix="sampled-accuracy-"))
  runs = [run_mode(mode, root / mode, extra) for mode in FLAGS.modes]
  row = {"record": "sampled_accuracy", "dataset": FLAGS.dataset, "date": now_utc(), "runs": runs}
  ref = runs[0]
  if "error" not in ref:
    row["macro_diff_vs_" + ref["mode"]] = {
        r["mode"]: round(r["macro_mean"] - ref["macro_mean"], 4) for r in runs[1:] if "error" not in r
    }
  emit(row, FLAGS.out)


if __name__ == "__main__":
  app.run(one_line_usage_errors(main), flags_parser=parse_flags)
