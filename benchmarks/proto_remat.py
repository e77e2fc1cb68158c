r"""Prototype: `jax.checkpoint` (flax `nn.remat`) around each HGNN-IMA layer, for memory.

Without it, the backward pass keeps every layer's edge-sized residuals (gathered sender
tables (E, M, H, 3 d_k), queries, scores, attentions): XLA's temp-buffer estimate for one
seed at AMAZON-1 scale is ~9.5 GB, so 5 seeds or the 4x graph do not fit 24 GB. With
remat, a layer's residuals are recomputed in the backward pass and only its input (N, M, d)
is kept. This script does not edit hgnn_ima_jax: it swaps in a remat'd layer class in this
process only, then compares XLA's memory estimate and the step time, interleaved.

  python benchmarks/proto_remat.py --graph=amazon --steps=4
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import time


from absl import app, flags  # noqa: E402

import step_time  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("graph", "amazon", "graph name (see step_time.GRAPHS)")
flags.DEFINE_boolean("compile_only", False, "only XLA's memory estimates, no steps")
flags.DEFINE_integer("num_seeds", 1, "vmapped seeds")


def remat_layer_class():
  import flax.linen as nn
  from hgnn_ima_jax.layers import HGNNIMALayer

  class RematHGNNIMALayer(HGNNIMALayer):
    """HGNNIMALayer whose forward is rematerialised in the backward pass."""

    def __call__(self, h, index, *, train: bool):
      body = nn.remat(lambda mdl, h_, idx: HGNNIMALayer.__call__(mdl, h_, idx, train=train))
      return body(self, h, index)

  return RematHGNNIMALayer


def build(data, batch, remat: bool):
  import jax
  from hgnn_ima_jax import models
  from hgnn_ima_jax import train as tr
  original = models.HGNNIMALayer
  if remat:
    models.HGNNIMALayer = remat_layer_class()
  try:
    config, _ = step_time.graph_config(FLAGS.graph, "hgnn_ima", range(FLAGS.num_seeds))
    step, model, tx, config = step_time.make_step(config, data)
    state = tr.init_state(model, tx, batch, list(config.seeds))
    t = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - t
  finally:
    models.HGNNIMALayer = original
  return compiled, state, compile_s, step_time.xla_memory_mb(compiled)


def main(argv):
  del argv
  import jax
  import numpy as np
  from hgnn_ima_jax import train as tr

  data = step_time.load_graph(FLAGS.graph, FLAGS.data_dir, FLAGS.feature_dim)
  batch = tr.make_batch(data)
  runs = {}
  for name, remat in (("baseline", False), ("remat_per_layer", True)):
    compiled, state, compile_s, mem = build(data, batch, remat)
    runs[name] = {"compiled": compiled, "state": state, "compile_s": compile_s, "xla_memory": mem,
                  "times": [], "cpu": [], "losses": []}
  if not FLAGS.compile_only:
    for r in runs.values():  # warm-up
      r["state"], m = r["compiled"](r["state"], batch)
      jax.block_until_ready(r["state"])
      r["losses"].append(float(np.asarray(m["train_loss"]).mean()))
    for _ in range(FLAGS.steps):
      for r in runs.values():
        c, t = step_time.cpu_seconds(), time.perf_counter()
        r["state"], m = r["compiled"](r["state"], batch)
        jax.block_until_ready((r["state"], m))
        r["times"].append(time.perf_counter() - t)
        r["cpu"].append(step_time.cpu_seconds() - c)
        r["losses"].append(float(np.asarray(m["train_loss"]).mean()))
  for name, r in runs.items():
    out = {"graph": FLAGS.graph, "variant": name, "seeds": FLAGS.num_seeds, "xla_memory": r["xla_memory"],
           "compile_s": round(r["compile_s"], 1), "load_avg": step_time.load_avg(),
           "xla_flags": os.environ.get("XLA_FLAGS", "")}
    if r["times"]:
      out.update(step_s_min=min(r["times"]), step_s_median=statistics.median(r["times"]),
                 cpu_s_median=statistics.median(r["cpu"]), losses=r["losses"])
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
  app.run(main)
