r"""Prototype: building the per-relation sender tables with one GEMM per relation instead of
K/Q/V linears followed by per-head einsums (forward + backward, with the per-edge gather).

Today (hgnn_ima_jax/layers.py, HGNNIMALayer.__call__):
  kqv = typed_linear(h, [Wk|Wq|Wv]) -> k, v (N, M, H, d_k);
  per relation r: einsum('nmhc,hcd->nmhd', k_src, W_att[r]), the same with W_msg[r] on v, and
  einsum('nmhc,mhcd->nmhd', k_src, U[:, r]); concatenated, stacked, gathered per edge.
XLA:CPU lowers each per-head einsum to a batched dot with transposes into and out of a
head-major layout (the step profile shows dozens of `copy_bitcast_fusion` transposes of shape
(2, 8, 8, N) at 10-15 ms each on AMAZON) and fuses the concatenation and those transposes
into the per-edge gather (`bitcast_gather_fusion` (E, M, H, 24): 100-220 ms per layer).

Proposed: the relation matrices are block-diagonal in the head split, so they fold into the
type linears: W^att-part = Wk_s @ blockdiag(W_att[r]) (d x d), likewise Wv_s @ blockdiag(W_msg[r])
and, per modality m, Wk_s @ blockdiag(U[m, r]); biases likewise. Each relation's table is then
one plain (N_s*M, d) x (d, 2d) GEMM plus one (N_s, d) x (d, d) GEMM per modality, written
row-major, and the gather copies contiguous rows. Composing the (d, d) kernels costs
O(R d^3) per step, nothing next to the edge work. Same math (checked below to 1e-5).

  python benchmarks/proto_tables.py --graph=amazon --reps=7
"""

from __future__ import annotations

import json
import os
import statistics
import time


from absl import app, flags  # noqa: E402

import step_time  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("graph", "amazon", "graph whose schema and edges are used (see step_time.GRAPHS)")
flags.DEFINE_integer("reps", 7, "timed calls per variant (interleaved)")


def main(argv):
  del argv
  import jax
  import jax.numpy as jnp
  import numpy as np
  from hgnn_ima_jax import train as tr
  from hgnn_ima_jax.layers import edge_index, typed_linear

  data = step_time.load_graph(FLAGS.graph, FLAGS.data_dir, 8)  # inputs unused: only the schema and edges
  s = data.schema
  g = tr.make_batch(data).graph
  index = edge_index(s, g.senders, g.receivers)
  T, R, M, d, H = s.num_node_types, s.num_relations, s.num_modalities, FLAGS.hidden, FLAGS.heads
  dk = d // H
  N, E = s.total_nodes, s.total_edges
  rng = np.random.default_rng(0)
  f32 = lambda *shape: jnp.asarray(rng.standard_normal(shape) * 0.1, jnp.float32)
  params = {"k_kernel": f32(T, d, d), "q_kernel": f32(T, d, d), "v_kernel": f32(T, d, d),
            "k_bias": f32(T, d), "q_bias": f32(T, d), "v_bias": f32(T, d),
            "w_att": f32(R, H, dk, dk), "w_msg": f32(R, H, dk, dk), "u_modal": f32(M, R, H, dk, dk)}
  h = f32(N, M, d)
  q_w = f32(E, M, H, dk)  # stand-in cotangent weights so every table column feeds the loss

  def tables_current(p, h):
    kqv_kernel = jnp.concatenate([p["k_kernel"], p["q_kernel"], p["v_kernel"]], axis=-1)
    kqv_bias = jnp.concatenate([p["k_bias"], p["q_bias"], p["v_bias"]], axis=-1)
    kqv = typed_linear(h, kqv_kernel, kqv_bias, s).reshape(N, M, 3, H, dk)
    k, q, v = kqv[:, :, 0], kqv[:, :, 1], kqv[:, :, 2]
    tabs = []
    for r in range(R):
      sl = s.node_slice(s.relation_src(r))
      cols = [jnp.einsum("nmhc,hcd->nmhd", k[sl], p["w_att"][r]), jnp.einsum("nmhc,hcd->nmhd", v[sl], p["w_msg"][r]),
              jnp.einsum("nmhc,mhcd->nmhd", k[sl], p["u_modal"][:, r])]
      tabs.append(jnp.concatenate(cols, axis=-1))
    src = jnp.concatenate(tabs, axis=0)[index.src_rows]  # (E, M, H, 3 dk)
    return src[..., :dk], src[..., dk:2 * dk], src[..., 2 * dk:], q

  def blockdiag(w):  # (H, dk, dk) -> (d, d)
    return jax.scipy.linalg.block_diag(*[w[i] for i in range(H)])

  def tables_gemm(p, h):
    q = typed_linear(h, p["q_kernel"], p["q_bias"], s).reshape(N, M, H, dk)
    tabs = []
    for r in range(R):
      t = s.relation_src(r)
      sl = s.node_slice(t)
      wk, wv, bk, bv = p["k_kernel"][t], p["v_kernel"][t], p["k_bias"][t], p["v_bias"][t]
      a, b = blockdiag(p["w_att"][r]), blockdiag(p["w_msg"][r])
      kern = jnp.concatenate([wk @ a, wv @ b], axis=1)  # (d, 2d)
      bias = jnp.concatenate([bk @ a, bv @ b])
      am = (h[sl] @ kern + bias).reshape(-1, M, 2, d)  # (N_s, M, 2, d): [k W_att | v W_msg]
      mod = jnp.stack([h[sl, m] @ (wk @ blockdiag(p["u_modal"][m, r])) + bk @ blockdiag(p["u_modal"][m, r])
                       for m in range(M)], axis=1)  # (N_s, M, d): k^m U^m
      tabs.append(jnp.concatenate([am, mod[:, :, None]], axis=2))  # (N_s, M, 3, d)
    src = jnp.concatenate(tabs, axis=0)[index.src_rows]  # (E, M, 3, d), contiguous rows
    split = lambda x: x.reshape(E, M, H, dk)
    return split(src[:, :, 0]), split(src[:, :, 1]), split(src[:, :, 2]), q

  def loss(fn, p, h):
    k_att, msg, k_mod, q = fn(p, h)
    q_e = q[index.receivers]
    return jnp.sum(q_e * k_att) + jnp.sum(q_w * msg) + jnp.sum(q_e * k_mod * 0.5)

  variants = {name: jax.jit(jax.value_and_grad(lambda p, h, f=fn: loss(f, p, h), argnums=(0, 1)))
              for name, fn in (("current_einsum", tables_current), ("folded_gemm", tables_gemm))}
  ref = variants["current_einsum"](params, h)
  new = variants["folded_gemm"](params, h)
  err = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(a)) + 1e-12))
            for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(new)))
  times = {n: [] for n in variants}
  cpus = {n: [] for n in variants}
  for _ in range(FLAGS.reps):
    for n, f in variants.items():
      c, t = step_time.cpu_seconds(), time.perf_counter()
      jax.block_until_ready(f(params, h))
      times[n].append(time.perf_counter() - t)
      cpus[n].append(step_time.cpu_seconds() - c)
  for n in variants:
    print(json.dumps({"graph": FLAGS.graph, "edges": E, "variant": n, "ms_min": round(min(times[n]) * 1e3, 1),
                      "ms_median": round(statistics.median(times[n]) * 1e3, 1),
                      "cpu_ms_median": round(statistics.median(cpus[n]) * 1e3, 1), "max_rel_err_vs_current": err,
                      "xla_flags": os.environ.get("XLA_FLAGS", ""), "load_avg": step_time.load_avg()}), flush=True)


if __name__ == "__main__":
  app.run(main)
