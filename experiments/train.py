r"""Train and evaluate one model on one dataset over one or more seeds (vmapped).

  python experiments/train.py                                  # synthetic, HGNN-IMA, 5 seeds
  python experiments/train.py --dataset=douban --features=generated --seeds=5
  python experiments/train.py --dataset=imdb --model=hgt_late --config.model.num_layers=2
  python experiments/train.py --workdir=runs/x --resume        # continue an interrupted run

Flags choose the dataset, model, seeds and protocol; `--config.<field>=<value>` overrides
any field of the config (experiments/configs/default.py lists them) after the dataset's
defaults and the protocol are applied.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if __name__ == "__main__":  # before JAX is imported: the allocator is chosen at process start
  from hgnn_ima_jax.runtime import reexec_with_fast_allocator
  reexec_with_fast_allocator()

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from experiments.configs import PROTOCOLS, default, get_config, set_path  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "synthetic", "douban | imdb | amazon | amazon1 | amazon2 | synthetic | a generic-format path")
flags.DEFINE_string("data_dir", None, "directory holding <dataset>/ folders (default: $HGNN_IMA_DATA_DIR or ./data)")
flags.DEFINE_enum("features", None, ["real", "generated"],
                  "'generated' explicitly runs the real graph with generated features for files that are absent")
flags.DEFINE_string("model", "hgnn_ima", "hgnn_ima | hgt | hgt_early | hgt_late | hgnn_ima<ablation> "
                    "(-cross, -adapt, +inf, -nei, -align, -L_att, -L_ind)")
flags.DEFINE_string("seeds", "5", "N for seeds 0..N-1, or a comma-separated list such as 0,3,7")
flags.DEFINE_enum("protocol", "code", list(PROTOCOLS), "'code' (the authors' scripts) or 'paper' (Sec. 5.3)")
flags.DEFINE_string("workdir", None, "output directory (default: runs/<dataset>-<model>-<time>)")
flags.DEFINE_integer("epochs", None, "number of epochs (default: the dataset's)")
flags.DEFINE_bool("resume", False, "continue the run in --workdir from its latest checkpoint")
flags.DEFINE_bool("progress", True, "show a progress bar")
flags.DEFINE_string("xla_cache", os.path.join("~", ".cache", "hgnn-ima-jax", "xla"),
                    "persistent XLA compilation cache: a rerun of the same model/graph skips compiling ('' disables)")
config_flags.DEFINE_config_dict("config", default.get_config(), "overrides: --config.<field>=<value>")


def parse_seeds(text: str) -> tuple[int, ...]:
  text = text.strip()
  if "," in text:
    return tuple(int(s) for s in text.split(",") if s.strip())
  n = int(text)
  if n < 1:
    raise ValueError(f"--seeds={text}: give a positive count or a comma-separated list")
  return tuple(range(n))


def host_cache_dir(base: str, jax_version: str) -> str:
  """`base/<jax version>-<CPU fingerprint>`: XLA:CPU programs are compiled for the host's
  instruction set, so a cache shared between machines (a home directory on NFS, a copied
  container) would load programs built for another CPU; keying by CPU flags avoids that."""
  flags_line = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      flags_line = next((l for l in f if l.startswith(("flags", "Features"))), flags_line)
  except OSError:
    pass
  tag = hashlib.sha256(flags_line.encode()).hexdigest()[:12]
  return os.path.join(os.path.expanduser(base), f"jax{jax_version}-{tag}")


def build_config():
  """Dataset defaults + protocol, then the flags, then --config.* overrides."""
  config = get_config(FLAGS.dataset, FLAGS.protocol)
  config.model_name = FLAGS.model
  config.seeds = parse_seeds(FLAGS.seeds)
  if FLAGS.data_dir:
    config.data_dir = FLAGS.data_dir
  if FLAGS.features:
    config.features = FLAGS.features
  if FLAGS.epochs is not None:
    config.num_epochs = FLAGS.epochs
  for path, value in config_flags.get_override_values(FLAGS["config"]).items():
    set_path(config, path, value)
  return config


def main(argv):
  del argv
  import jax

  if FLAGS.xla_cache and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    jax.config.update("jax_compilation_cache_dir", host_cache_dir(FLAGS.xla_cache, jax.__version__))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  from hgnn_ima_jax import train  # after flag parsing: importing the stack is the slow part
  from hgnn_ima_jax.models import MODEL_NAMES

  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  if FLAGS.model not in MODEL_NAMES:
    raise app.UsageError(f"--model={FLAGS.model} is unknown; choose one of {', '.join(MODEL_NAMES)}")
  if FLAGS.resume and not FLAGS.workdir:
    raise app.UsageError("--resume needs the --workdir of the run to continue")
  config = build_config()
  workdir = FLAGS.workdir or os.path.join(
      "runs", f"{os.path.basename(str(config.dataset)).replace('.npz', '')}-{config.model_name}-{time.strftime('%Y%m%d-%H%M%S')}")
  print(f"devices: {jax.devices()}; workdir: {workdir}")
  try:
    results = train.train_and_evaluate(config, workdir, resume=FLAGS.resume, progress=FLAGS.progress)
  except Exception as e:  # pylint: disable=broad-except
    from hgnn_ima_jax.graph import DatasetError
    if isinstance(e, (DatasetError, FileExistsError)):
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    raise
  print(f"\n{config.dataset} / {config.model_name} / protocol={config.protocol} / {len(config.seeds)} seed(s) "
        f"/ {results['epochs']} epochs / {results['train_time_s']:.1f} s training on {results['device']}")
  print(train.results_table(results))
  print(f"workdir: {workdir}")


if __name__ == "__main__":
  app.run(main)
