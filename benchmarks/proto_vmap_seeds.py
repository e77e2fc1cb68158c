r"""Prototype: what `vmap` over seeds does to the edge-sized part of a layer on XLA:CPU.

One attention block in miniature (forward + backward, float32): gather sender rows
`table[src]` (E, H, d_k), per-head scores, a segment softmax over sorted receiver slots and
the weighted segment sum of the gathered rows. Timed four ways for S seeds:

  one_seed      one seed, plain `jit(grad)` (the unit of work)
  vmap_shared   `jit(vmap(grad))` with the graph's indices shared (in_axes=None), as
                `hgnn_ima_jax.train.make_epoch_fn` batches seeds
  vmap_batched  the same with the indices broadcast to (S, E) and batched too
  unrolled      S single-seed calls written out inside one `jit` (no vmap)

Under vmap, XLA:CPU's gather puts the edge axis first ((E, S, ...) rows) while every
batched elementwise op and reduction wants the seed axis first, so transposed copies appear
around each gather and scatter; the unrolled loop has none. What this means for the model
is in benchmarks/README.md ("Multi-seed").

  python benchmarks/proto_vmap_seeds.py                    # the synthetic default graph's sizes
  python benchmarks/proto_vmap_seeds.py --edges=122598 --rows=19347 --slots=26378   # AMAZON
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("seeds", 5, "S")
flags.DEFINE_integer("edges", 17852, "E (default: the synthetic default graph, 8,926 edges x 2 channels)")
flags.DEFINE_integer("rows", 2500, "sender-table rows")
flags.DEFINE_integer("slots", 2500, "softmax segments (receiver slots)")
flags.DEFINE_integer("heads", 8, "H")
flags.DEFINE_integer("head_dim", 8, "d_k")
flags.DEFINE_integer("reps", 20, "timed calls per variant (interleaved)")
flags.DEFINE_string("out", "", "append the JSON line to this file too")


def block(table, q, src, seg, num_slots):
  """One seed: gather, scores, segment softmax, weighted segment sum; a scalar to differentiate."""
  import jax
  import jax.numpy as jnp
  x = table[src]  # (E, H, d_k)
  s = jnp.sum(x * q, -1)  # (E, H)
  mx = jax.lax.stop_gradient(jax.ops.segment_max(s, seg, num_slots, indices_are_sorted=True))
  e = jnp.exp(s - mx[seg])
  a = e / jax.ops.segment_sum(e, seg, num_slots, indices_are_sorted=True)[seg]
  out = jax.ops.segment_sum(a[..., None] * x, seg, num_slots, indices_are_sorted=True)
  return jnp.sum(out * out)


def main(argv):
  del argv
  import functools
  import jax
  import jax.numpy as jnp
  import numpy as np

  S, E, N, R, H, dk = FLAGS.seeds, FLAGS.edges, FLAGS.rows, FLAGS.slots, FLAGS.heads, FLAGS.head_dim
  rng = np.random.default_rng(0)
  table = jnp.asarray(rng.normal(size=(S, N, H, dk)).astype(np.float32))
  q = jnp.asarray(rng.normal(size=(S, E, H, dk)).astype(np.float32))
  src = jnp.asarray(rng.integers(0, N, E).astype(np.int32))
  seg = jnp.asarray(np.sort(rng.integers(0, R, E)).astype(np.int32))
  grad = jax.grad(functools.partial(block, num_slots=R), argnums=(0, 1))

  variants = {
      "one_seed": (jax.jit(grad), (table[0], q[0], src, seg)),
      "vmap_shared": (jax.jit(jax.vmap(grad, in_axes=(0, 0, None, None))), (table, q, src, seg)),
      "vmap_batched": (jax.jit(jax.vmap(grad)), (table, q, jnp.broadcast_to(src, (S, E)),
                                                  jnp.broadcast_to(seg, (S, E)))),
      "unrolled": (jax.jit(lambda t, x, i, g: [grad(t[k], x[k], i, g) for k in range(S)]), (table, q, src, seg)),
  }
  for fn, args in variants.values():
    jax.block_until_ready(fn(*args))
  times = {k: [] for k in variants}
  cpu = {k: 0.0 for k in variants}
  for _ in range(FLAGS.reps):  # round-robin, so machine load hits every variant alike
    for name, (fn, args) in variants.items():
      r0 = resource.getrusage(resource.RUSAGE_SELF)
      t = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[name].append(time.perf_counter() - t)
      r1 = resource.getrusage(resource.RUSAGE_SELF)
      cpu[name] += (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
  one = statistics.median(times["one_seed"])
  rows = {}
  for name in variants:
    med = statistics.median(times[name])
    rows[name] = {"median_ms": round(med * 1e3, 2), "min_ms": round(min(times[name]) * 1e3, 2),
                  "cpu_ms": round(cpu[name] / FLAGS.reps * 1e3, 2), "x_one_seed": round(med / one, 2)}
    print(f"{name:<13} {med * 1e3:8.2f} ms (min {min(times[name]) * 1e3:.2f}, cpu {cpu[name] / FLAGS.reps * 1e3:.1f})"
          f"  x{med / one:.2f} one seed", file=sys.stderr)
  record = {"record": "proto_vmap_seeds", "seeds": S, "edges": E, "rows": N, "slots": R, "heads": H,
            "head_dim": dk, "reps": FLAGS.reps, "variants": rows, "jax": jax.__version__,
            "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
  line = json.dumps(record)
  print(line)
  if FLAGS.out:
    with open(FLAGS.out, "a") as f:
      f.write(line + "\n")


if __name__ == "__main__":
  app.run(main)
