"""One training process of tests/test_devices.py: `python devices_worker.py SPEC_JSON` writes SPEC['out'].

SPEC: {'process_id', 'num_processes', 'devices' (local), 'port', 'workdir', 'out', 'overrides' (config path → value),
'own_overrides' (this process's alone, optional),
'stop_at' (poll index that asks to stop, or None), 'resume'}. The out JSON holds per_seed, history, the files this
process opened for writing under the workdir (outside Orbax's checkpoints/), or the error / interruption.
"""

import builtins
import json
import os
import sys

import jax
import processes

spec = json.loads(sys.argv[1])
processes.join(spec)

from hgnn_ima_jax import train  # noqa: E402
from hgnn_ima_jax.checkpointing import CheckpointMismatchError  # noqa: E402
from hgnn_ima_jax.config_validation import ConfigError  # noqa: E402
from hgnn_ima_jax.data_utils import load_for_config  # noqa: E402
from hgnn_ima_jax.experiments.configs import set_path  # noqa: E402
from hgnn_ima_jax.experiments.configs import test as test_config  # noqa: E402
from hgnn_ima_jax.experiments.outputs import history_writer  # noqa: E402

workdir = os.path.abspath(spec["workdir"])
written = []
_open = builtins.open


def recording_open(file, mode="r", *args, **kwargs):
  path = os.path.abspath(str(file)) if isinstance(file, (str, os.PathLike)) else ""
  if path.startswith(workdir) and any(c in mode for c in "wax+"):
    written.append(os.path.relpath(path, workdir))
  return _open(file, mode, *args, **kwargs)


builtins.open = recording_open
from hgnn_ima_jax import minibatch  # noqa: E402

steps_losses = []
_add = minibatch.EpochSums.add


def recording_add(self, m):  # every optimizer step's loss, not only the epoch means of history.json
  steps_losses.append(float(m["train_loss"][0]))
  _add(self, m)


minibatch.EpochSums.add = recording_add
sampled_parts = set()
_sample_parts = minibatch.BatchSource.sample_parts


def recording_sample_parts(self, epoch, b, part_ids):  # which parts this process sampled
  sampled_parts.add(tuple(part_ids))
  return _sample_parts(self, epoch, b, part_ids)


minibatch.BatchSource.sample_parts = recording_sample_parts
c = test_config.get_config()
for k, v in {**spec["overrides"], **spec.get("own_overrides", {})}.items():
  set_path(c, k, tuple(v) if isinstance(v, list) else v)
polls = iter(range(10**6))
stop = None if spec.get("stop_at") is None else (lambda: next(polls) == spec["stop_at"])
result = {"process": jax.process_index(), "devices": jax.device_count()}
try:
  res = train.train_and_evaluate(
      c,
      workdir,
      load_for_config(c),
      progress=False,
      resume=bool(spec.get("resume")),
      should_stop=stop,
      on_history=history_writer(workdir),
  )
  result["per_seed"] = res["per_seed"]
except train.TrainingInterrupted as e:
  result["interrupted"] = e.epoch
except (CheckpointMismatchError, ConfigError) as e:
  result["error"] = str(e)
if os.path.exists(os.path.join(workdir, "history.json")):
  result["history"] = json.load(_open(os.path.join(workdir, "history.json")))
result["step_losses"] = steps_losses
result["sampled_parts"] = sorted(sampled_parts)
result["written"] = sorted({w for w in written if not w.startswith("checkpoints")})
with _open(spec["out"], "w") as f:
  json.dump(result, f)
