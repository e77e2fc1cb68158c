r"""Prototype: the edge-sized primitives of an HGNN-IMA layer, timed alone (forward + backward).

Isolates what the step profile shows as hot, at AMAZON (E = 122,598) or AMAZON-1 (E = 632,238)
sizes, M = 2 channels, H = 8 heads, d_k = 8, to tell apart what XLA:CPU does slowly from
what is simply a lot of work, and to try cheaper formulations of the same math:

  gather_rows      table[src] (E, M, H, 3 d_k); its gradient is a scatter-add into the table
  gather_sorted    the same gather with a custom VJP: cotangent permuted into sender order and
                   reduced by a *sorted* segment_sum (no unsorted scatter)
  score_mulsum     <q_e, k_e> per head as jnp.sum(q * k, -1)  (what attention.inter_node_score does)
  score_einsum     the same as jnp.einsum('emhc,emhc->emh')
  score_flat       the same on a (E, M*H*d_k) layout: (q * k).reshape(E, M*H, d_k).sum(-1)
  segsm            ops.segment_softmax on (E, M + 1, H) logits (α and the alignment term)
  aggregate        segment_sum(β (E, H) * msg (E, M, H, d_k)) over sorted receiver slots
  torch_*          the same gather / scatter / segment sum in torch, when importable

Every function is jitted with the arrays as arguments; calls are interleaved round-robin so
machine load hits all alike. Also reports process CPU seconds per call (less load-sensitive).

  python benchmarks/proto_primitives.py --edges=122598 --rows=19347 --slots=26378
  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python benchmarks/proto_primitives.py
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("edges", 122598, "E (AMAZON 122,598; AMAZON-1 632,238)")
flags.DEFINE_integer("rows", 19347, "rows of the stacked sender tables (AMAZON: 6158 + 6158 + 7031)")
flags.DEFINE_integer("slots", 26378, "(relation, receiver) softmax segments (AMAZON: 6158 + 7031 + 6158 + ...)")
flags.DEFINE_integer("reps", 7, "timed calls per variant")
flags.DEFINE_list("only", [], "run only these variants")

M, H, DK = 2, 8, 8


def cpu_s():
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def main(argv):
  del argv
  import jax
  import jax.numpy as jnp
  import numpy as np

  from hgnn_ima_jax.ops import segment_softmax

  E, N, S = FLAGS.edges, FLAGS.rows, FLAGS.slots
  rng = np.random.default_rng(0)
  seg = np.sort(rng.integers(0, S, E)).astype(np.int32)  # receiver-sorted, as the layout
  src = rng.integers(0, N, E).astype(np.int32)  # senders arbitrary
  order = np.argsort(src, kind="stable").astype(np.int32)  # edges in sender order (precomputable per graph)
  src_sorted = src[order]
  table = jnp.asarray(rng.standard_normal((N, M, H, 3 * DK)), jnp.float32)
  q = jnp.asarray(rng.standard_normal((E, M, H, DK)), jnp.float32)
  k = jnp.asarray(rng.standard_normal((E, M, H, DK)), jnp.float32)
  logits = jnp.asarray(rng.standard_normal((E, M + 1, H)), jnp.float32)
  beta = jnp.asarray(rng.random((E, H)), jnp.float32)
  msg = jnp.asarray(rng.standard_normal((E, M, H, DK)), jnp.float32)
  seg_j, src_j, order_j, src_sorted_j = map(jnp.asarray, (seg, src, order, src_sorted))

  @jax.custom_vjp
  def gather_sorted(tab, idx, perm, idx_sorted):
    return tab[idx]

  def _fwd(tab, idx, perm, idx_sorted):
    return tab[idx], (perm, idx_sorted, tab.shape[0])

  def _bwd(res, ct):
    perm, idx_sorted, n = res
    g = jax.ops.segment_sum(ct[perm], idx_sorted, n, indices_are_sorted=True)
    return g, None, None, None

  gather_sorted.defvjp(_fwd, _bwd)

  def grad_of(f):
    return jax.jit(jax.grad(lambda *a: jnp.sum(f(*a) * 1.0001), argnums=0))

  variants = {
      "gather_rows": (grad_of(lambda t, i: t[i]), (table, src_j)),
      "gather_sorted": (grad_of(gather_sorted), (table, src_j, order_j, src_sorted_j)),
      "score_mulsum": (grad_of(lambda a, b: jnp.sum(a * b, -1)), (q, k)),
      "score_einsum": (grad_of(lambda a, b: jnp.einsum("emhc,emhc->emh", a, b)), (q, k)),
      "score_flat": (grad_of(lambda a, b: (a.reshape(E, -1) * b.reshape(E, -1)).reshape(E, M * H, DK).sum(-1)),
                     (q, k)),
      "segsm": (grad_of(lambda x, s: segment_softmax(x, s, S, indices_are_sorted=True)), (logits, seg_j)),
      "aggregate": (jax.jit(jax.grad(lambda m_, b, s: jnp.sum(jax.ops.segment_sum(
          b[:, None, :, None] * m_, s, S, indices_are_sorted=True)), argnums=(0, 1))), (msg, beta, seg_j)),
  }
  try:
    import torch
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    t_table = torch.from_numpy(np.asarray(table)).requires_grad_()
    t_src = torch.from_numpy(src.astype(np.int64))
    t_seg = torch.from_numpy(seg.astype(np.int64))
    t_msg = torch.from_numpy(np.asarray(msg)).reshape(E, -1)

    def torch_gather():
      t_table.grad = None
      (t_table.index_select(0, t_src) * 1.0001).sum().backward()

    def torch_segsum():
      out = torch.zeros(S, t_msg.shape[1])
      out.index_add_(0, t_seg, t_msg)
      return out

    variants["torch_gather_rows"] = (torch_gather, ())
    variants["torch_segment_sum"] = (torch_segsum, ())
  except ImportError:
    pass
  if FLAGS.only:
    variants = {k_: v for k_, v in variants.items() if k_ in FLAGS.only}

  compile_s = {}
  for name, (f, args) in variants.items():
    t = time.perf_counter()
    jax.block_until_ready(f(*args))
    compile_s[name] = time.perf_counter() - t
  times = {n: [] for n in variants}
  cpus = {n: [] for n in variants}
  for _ in range(FLAGS.reps):
    for name, (f, args) in variants.items():
      c, t = cpu_s(), time.perf_counter()
      jax.block_until_ready(f(*args))
      times[name].append(time.perf_counter() - t)
      cpus[name].append(cpu_s() - c)
  la = os.getloadavg()
  for name in variants:
    print(json.dumps({"variant": name, "edges": E, "ms_min": round(min(times[name]) * 1e3, 2),
                      "ms_median": round(statistics.median(times[name]) * 1e3, 2),
                      "cpu_ms_median": round(statistics.median(cpus[name]) * 1e3, 2),
                      "first_call_s": round(compile_s[name], 2), "xla_flags": os.environ.get("XLA_FLAGS", ""),
                      "load_avg": [round(x, 2) for x in la]}), flush=True)


if __name__ == "__main__":
  app.run(main)
