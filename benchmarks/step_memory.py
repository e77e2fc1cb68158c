r"""XLA's temp memory per edge of one training step, and what autodiff keeps for the backward pass.

A benchmark that compiles but never runs a step, so its numbers do not depend on the machine's
load: `compiled.memory_analysis()` of `hgnn_ima_jax.train.train_step` as `step_time.py` compiles
it (one seed, the graph as an argument), with and without `config.model.remat`. With
`--residuals`, the arrays autodiff keeps from the forward to the backward pass
(`jax.ad_checkpoint`'s saved residuals), summed per source line: where the memory goes.

  python benchmarks/step_memory.py --graphs=amazon,synthetic_amazon1 --models=hgnn_ima,hgt_late
  python benchmarks/step_memory.py --graphs=synthetic_amazon1 --models=hgnn_ima --remat=false --residuals=8

One JSON line per (graph, model, remat) on stdout, appended to `--out` too.
"""

from __future__ import annotations

import collections
import sys
import time

from absl import app, flags
from bench_cli import at_least, check_out
from bench_env import emit, now_utc, quiet_absl_info
from bench_graphs import GRAPHS, JAX_MODELS, check_graphs_readable, define_graph_flags, graph_config, load_graph
from bench_variants import check_choices

from hgnn_ima_jax.cli_flags import one_line_usage_errors, parse_flags

FLAGS = flags.FLAGS
flags.DEFINE_list("graphs", ["amazon", "synthetic_amazon1"], f"from {GRAPHS}")
flags.DEFINE_list("models", ["hgnn_ima", "hgt_late"], f"from {JAX_MODELS}")
flags.DEFINE_list("remat", ["false", "true"], "config.model.remat values to compile")
flags.DEFINE_integer("residuals", 0, "also list the N source lines whose saved residuals are largest (0: none)")
define_graph_flags(flags)


def residuals_by_source(model, state, batch, config, top: int) -> list[dict]:
  """The forward→backward residuals of the step's loss, in bytes per source line (largest first)."""
  import jax
  import numpy as np
  from jax._src.ad_checkpoint import saved_residuals  # the list print_saved_residuals prints

  from hgnn_ima_jax.losses import objective
  from hgnn_ima_jax.steps import variables_of

  params = jax.tree.map(lambda x: x[0], state.params)
  batch_stats = jax.tree.map(lambda x: x[0], state.batch_stats)

  def loss(params):
    out, _ = model.apply(
        variables_of(params, batch_stats),
        batch.graph,
        train=True,
        rngs={"dropout": jax.random.PRNGKey(0)},
        mutable=["batch_stats"],
    )
    kw = dict(ind_loss=bool(config.loss.ind_loss), att_weight=float(config.loss.att_weight))
    return objective(out, batch.labels, batch.masks["train"], **kw)[0]

  sums = collections.Counter()
  for aval, source in saved_residuals(loss, params):
    sums[source.split(" from ")[-1]] += int(np.prod(aval.shape)) * aval.dtype.itemsize
  return [{"source": s, "bytes": b} for s, b in sums.most_common(top)]


def main(argv):
  del argv
  quiet_absl_info()
  try:  # an unknown graph or model was a traceback; --remat=maybe compiled remat=False
    check_choices("graphs", FLAGS.graphs, GRAPHS)
    check_choices("models", FLAGS.models, JAX_MODELS)
    check_choices("remat", [r.lower() for r in FLAGS.remat], ("false", "true", "0", "1"))
    at_least("residuals", FLAGS.residuals, 0)  # a negative N listed none ("residuals": [])
    out_note = check_out(FLAGS.out)  # was a traceback at the first row, after its compilation
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  check_graphs_readable(FLAGS.graphs, FLAGS.data_dir, FLAGS.feature_dim)
  if out_note:
    print(out_note, file=sys.stderr)
  import jax
  from bench_ours import make_step, xla_memory_mb

  from hgnn_ima_jax import state as state_lib

  for name in FLAGS.graphs:
    data = load_graph(name, FLAGS.data_dir, FLAGS.feature_dim)
    batch = state_lib.make_batch(data)
    edges, nodes = int(batch.graph.senders.shape[0]), data.schema.total_nodes
    for model_name in FLAGS.models:
      for remat in FLAGS.remat:
        config, profile = graph_config(
            name, model_name, range(1), hidden=FLAGS.hidden, heads=FLAGS.heads, layers=FLAGS.layers
        )
        config.model.remat = remat.lower() in ("true", "1")
        step, model, tx, config = make_step(config, data)
        state = state_lib.init_state(model, tx, batch, [0], abstract=True)
        t = time.perf_counter()
        compiled = step.lower(state, batch).compile()
        mem = xla_memory_mb(compiled) or {}
        row = {
            "record": "step_memory",
            "graph": name,
            "model": model_name,
            "profile": profile,
            "remat": bool(config.model.remat),
            "nodes": nodes,
            "edges": edges,
            "xla_memory": mem,
            "temp_bytes_per_edge": round(mem["temp_mb"] * 2**20 / max(edges, 1)) if "temp_mb" in mem else None,
            "compile_s": round(time.perf_counter() - t, 1),
            "jax": jax.__version__,
            "date": now_utc(),
        }
        if FLAGS.residuals:
          concrete = state_lib.init_state(model, tx, batch, [0])
          rows = residuals_by_source(model, concrete, batch, config, FLAGS.residuals)
          row["residuals"] = [{**r, "bytes_per_edge": round(r["bytes"] / max(edges, 1))} for r in rows]
        emit(row, FLAGS.out)


if __name__ == "__main__":
  app.run(one_line_usage_errors(main), flags_parser=lambda argv: parse_flags(argv, positional=False))
