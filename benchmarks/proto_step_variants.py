r"""Prototype: how the *wrapping* of HGNN-IMA's train step changes its time (no layer change).

Variants, all the same `hgnn_ima_jax.train.train_step` on the same graph:
  vmap1:   jit(vmap(train_step)) over a 1-seed axis, as `make_epoch_fn` runs it (the benchmark's number);
  plain:   jit(train_step) on one seed's state, no seed axis;
Run it twice, with and without `XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=`, to see the
effect of XLA:CPU's YNNPACK library fusions. Steps of the variants are interleaved so that
machine load hits them alike; min and median are printed.

  python benchmarks/proto_step_variants.py --graph=amazon --steps=6
  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python benchmarks/proto_step_variants.py --graph=amazon
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import time


from absl import app, flags  # noqa: E402

import step_time  # noqa: E402  (reuses its graph loader and flags)

FLAGS = flags.FLAGS
flags.DEFINE_string("graph", "amazon", "graph name (see step_time.GRAPHS)")
flags.DEFINE_list("variants", "vmap1,plain", "variants to time")


def main(argv):
  del argv
  import jax
  from hgnn_ima_jax import train as tr

  data = step_time.load_graph(FLAGS.graph, FLAGS.data_dir, FLAGS.feature_dim)
  batch = tr.make_batch(data)
  config, _ = step_time.graph_config(FLAGS.graph, "hgnn_ima", [0])
  config = tr.resolve_config(config)
  model, tx = tr.create_model(config, data.schema), tr.create_optimizer(config)
  one = functools.partial(tr.train_step, model=model, tx=tx, ind_loss=bool(config.loss.ind_loss),
                          att_weight=float(config.loss.att_weight))
  state1 = tr.init_state(model, tx, batch, [0])
  fns, states = {}, {}
  for v in FLAGS.variants:
    if v == "vmap1":
      fns[v] = jax.jit(jax.vmap(one, in_axes=(0, None)))
      states[v] = state1
    elif v == "plain":
      fns[v] = jax.jit(one)
      states[v] = jax.tree.map(lambda x: x[0], state1)
    else:
      raise app.UsageError(f"unknown variant {v!r}")
  compile_s = {}
  for v, f in fns.items():
    t = time.perf_counter()
    fns[v] = f.lower(states[v], batch).compile()
    compile_s[v] = time.perf_counter() - t
    states[v], _ = fns[v](states[v], batch)  # warm-up
    jax.block_until_ready(states[v])
  times = {v: [] for v in fns}
  for _ in range(FLAGS.steps):
    for v, f in fns.items():
      t = time.perf_counter()
      states[v], m = f(states[v], batch)
      jax.block_until_ready((states[v], m))
      times[v].append(time.perf_counter() - t)
  for v in fns:
    print(json.dumps({"graph": FLAGS.graph, "variant": v, "xla_flags": os.environ.get("XLA_FLAGS", ""),
                      "step_s_min": min(times[v]), "step_s_median": statistics.median(times[v]),
                      "compile_s": compile_s[v], "load_avg": step_time.load_avg()}), flush=True)


if __name__ == "__main__":
  app.run(main)
