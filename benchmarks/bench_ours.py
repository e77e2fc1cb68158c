"""Our side of the benchmark: compile and time `hgnn_ima_jax.train.train_step` as `make_epoch_fn` runs it.

One step = forward, loss, backward, optimizer update, inside `jit(map_seeds(...))` over the
seed axis, with the graph passed as an argument (never a jit constant). Compile time
(lower + compile) is measured separately from the steps. Imports JAX: load it only in a
worker process whose allocator and threads are already set.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time

import jax
import numpy as np
from bench_env import RssSampler, cpu_seconds, mem_available_mb, peak_rss_mb
from bench_graphs import graph_config

from hgnn_ima_jax import optim, steps
from hgnn_ima_jax import state as state_lib
from hgnn_ima_jax import train as tr
from hgnn_ima_jax.runtime import release_free_memory


@dataclasses.dataclass(frozen=True)
class StepOptions:
  """What every timed (graph, model) shares: model size and how many steps to time."""

  layers: int = 3
  hidden: int = 64
  heads: int = 8
  steps: int = 10
  warmup: int = 2
  max_temp_gb: float = 0.0  # 0: 70% of MemAvailable


def versions() -> dict:
  import flax
  import jaxlib
  import optax

  return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__, "optax": optax.__version__}


def device_info() -> dict:
  devices = jax.devices()
  return {
      "platform": devices[0].platform,
      "device": f"{len(devices)}x {getattr(devices[0], 'device_kind', devices[0].platform)}",
  }


def failed(e: Exception) -> dict:
  """What a row records for a statistic the backend failed to give, so that a report tells a crash (this) from
  a statistic the backend does not have (null)."""
  return {"error": f"{type(e).__name__}: {e}"[:300]}


def device_memory_mb() -> dict | None:
  """Peak/in-use device memory on an accelerator (None on CPU, whose stats are empty)."""
  d = jax.devices()[0]
  if d.platform == "cpu":
    return None
  try:
    s = d.memory_stats() or {}
  except Exception as e:  # pylint: disable=broad-except
    return failed(e)
  return {k: round(v / 2**20, 1) for k, v in s.items() if k in ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")}


def make_step(config, data, seed_batch: int = 0):
  """(jitted train_step over seeds, model, tx, resolved config) for `config` on `data`; as make_epoch_fn, without eval.

  seed_batch: as `hgnn_ima_jax.steps.map_seeds` (0: vmap of all seeds; 1: lax.map, one at a time)."""
  config = tr.resolve_config(config)
  model = state_lib.create_model(config, data.schema)
  tx = optim.create_optimizer(config)
  one = functools.partial(
      steps.train_step,
      model=model,
      tx=tx,
      ind_loss=bool(config.loss.ind_loss),
      att_weight=float(config.loss.att_weight),
  )
  return jax.jit(steps.map_seeds(one, seed_batch), donate_argnums=(0,)), model, tx, config


def tile_seeds(state, num_seeds: int):
  """A `num_seeds` state from a 1-seed one (host arrays): leaves tiled, distinct dropout keys.

  The work of a step does not depend on parameter values, so this times exactly what
  `init_state` with `num_seeds` seeds would, without compiling a second init program.
  """
  import jax.numpy as jnp

  tiled = jax.tree.map(lambda x: jnp.concatenate([jnp.asarray(x)] * num_seeds, axis=0), state)
  keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(num_seeds, dtype=jnp.uint32))
  return tiled.replace(key=keys.astype(tiled.key.dtype))


# Peak memory bandwidth by device kind (substring of `device_kind`, first match), bytes/s, from the vendors'
# datasheets: H200 SXM 4.8 TB/s; H100 SXM (HBM3) 3.35 TB/s; H100 PCIe (HBM2e) 2.0 TB/s; A100 80 GB 2.04 TB/s,
# 40 GB 1.56 TB/s. None elsewhere (CPUs): the share is then not reported.
PEAK_BANDWIDTH = (
    ("H200", 4.8e12),
    ("H100 80GB HBM3", 3.35e12),
    ("H100 PCIe", 2.0e12),
    ("A100-SXM4-80GB", 2.039e12),
    ("A100 80GB PCIe", 1.935e12),
    ("A100", 1.555e12),
)


def peak_bandwidth(device_kind: str) -> float | None:
  """The datasheet peak memory bandwidth (bytes/s) of a device kind, None when not in `PEAK_BANDWIDTH`."""
  return next((bw for name, bw in PEAK_BANDWIDTH if name in device_kind), None)


def xla_cost(compiled) -> dict | None:
  """XLA's cost analysis of the compiled step: bytes accessed (its estimate of memory traffic) and flops."""
  try:
    c = compiled.cost_analysis()
  except Exception as e:  # pylint: disable=broad-except
    return failed(e)
  c = c[0] if isinstance(c, (list, tuple)) and c else c
  if not isinstance(c, dict) or "bytes accessed" not in c:
    return None
  return {"bytes_accessed": float(c["bytes accessed"]), "flops": float(c.get("flops", 0.0))}


def bandwidth(cost: dict | None, step_s: float) -> dict | None:
  """XLA's bytes accessed per second of the median step, and its share of the device's peak bandwidth."""
  if not cost or "bytes_accessed" not in cost or step_s <= 0:
    return None
  rate = cost["bytes_accessed"] / step_s
  peak = peak_bandwidth(getattr(jax.devices()[0], "device_kind", ""))
  return {"bytes_per_s": rate, "peak_bytes_per_s": peak, "peak_share": None if peak is None else rate / peak}


def xla_memory_mb(compiled) -> dict | None:
  try:
    m = compiled.memory_analysis()
  except Exception as e:  # pylint: disable=broad-except
    return failed(e)
  if m is None:
    return None
  keys = ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes")
  return {k.replace("_size_in_bytes", "_mb"): round(getattr(m, k) / 2**20, 1) for k in keys if hasattr(m, k)}


def time_ours(
    data, batch, model_name: str, graph_name: str, num_seeds: int, opts: StepOptions, init=None, seed_batch: int = 0
) -> dict:
  """Compile and time our step for `num_seeds` seeds, vmapped (seed_batch 0) or looped (1).

  init: a 1-seed initial state (host arrays) to tile instead of running `init_state`; the
  result's '_init' is this run's initial state, for a later multi-seed call.
  """
  config, profile = graph_config(
      graph_name, model_name, range(num_seeds), hidden=opts.hidden, heads=opts.heads, layers=opts.layers
  )
  with RssSampler() as mem:
    step, model, tx, config = make_step(config, data, seed_batch)
    t = time.perf_counter()
    state = state_lib.init_state(model, tx, batch, list(config.seeds)) if init is None else tile_seeds(init, num_seeds)
    jax.block_until_ready(state)
    init_s = time.perf_counter() - t
    init_host = jax.device_get(state) if init is None else None  # the step donates `state`
    t = time.perf_counter()
    lowered = step.lower(state, batch)
    lower_s = time.perf_counter() - t
    t = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t
    xla_mem, cost = xla_memory_mb(compiled), xla_cost(compiled)
    release_free_memory()  # what init and the compiler freed, so that the steps' buffers start from a clean heap
    limit_mb = opts.max_temp_gb * 1024 or 0.7 * mem_available_mb()
    if xla_mem and limit_mb and xla_mem.get("temp_mb", 0) > limit_mb:
      return {
          "profile": profile,
          "seeds": num_seeds,
          "skipped": (
              f"XLA temp-buffer estimate {xla_mem['temp_mb'] / 1024:.1f} GiB exceeds {limit_mb / 1024:.1f} GiB "
              "(--max_temp_gb; default 70% of MemAvailable)"
          ),
          "lower_s": lower_s,
          "compile_s": compile_s,
          "xla_memory": xla_mem,
      }
    losses = []
    t = time.perf_counter()
    state, m = compiled(state, batch)
    jax.block_until_ready(state)
    first_step_s = time.perf_counter() - t
    losses.append(float(np.mean(np.asarray(m["train_loss"]))))
    for _ in range(max(opts.warmup - 1, 0)):
      state, m = compiled(state, batch)
      losses.append(float(np.mean(np.asarray(m["train_loss"]))))
    times, cpu0 = [], cpu_seconds()
    for _ in range(opts.steps):
      t = time.perf_counter()
      state, m = compiled(state, batch)
      jax.block_until_ready((state, m))
      times.append(time.perf_counter() - t)
      losses.append(float(np.mean(np.asarray(m["train_loss"]))))
    cpu_per_step = (cpu_seconds() - cpu0) / max(opts.steps, 1)
    n_params = sum(int(np.prod(x.shape[1:])) for x in jax.tree.leaves(state.params))
    dev_mem = device_memory_mb()
  del state, compiled, lowered
  release_free_memory()
  median = statistics.median(times)
  return {
      "profile": profile,
      "seeds": num_seeds,
      "step_s_median": median,
      "step_s_min": min(times),
      "step_s_mean": statistics.fmean(times),
      "step_times_s": times,
      "cpu_s_per_step": cpu_per_step,
      "init_s": init_s,
      "lower_s": lower_s,
      "compile_s": compile_s,
      "first_step_s": first_step_s,
      "losses": losses,
      "loss_falls": bool(losses[-1] < losses[0]),
      "num_params": n_params,
      "rss_start_mb": round(mem.start, 1),
      "rss_peak_mb": round(mem.peak, 1),
      "process_peak_rss_mb": round(peak_rss_mb(), 1),
      "xla_memory": xla_mem,
      "xla_cost": cost,
      "bandwidth": bandwidth(cost, median),
      "device_memory": dev_mem,
      "_init": init_host,
  }


def time_multi_seed(data, batch, graph_name: str, one_seed: dict, num_seeds: int, opts: StepOptions, init) -> dict:
  """Both ways of running `num_seeds` seeds of HGNN-IMA in one program, against `one_seed`'s row.

  'multi_seed': vmap (seed_batch 0); 'multi_seed_map': lax.map, one seed at a time (1, the CPU default).
  """
  out = {}
  for key, sb in (("multi_seed", 0), ("multi_seed_map", 1)):
    rs = time_ours(data, batch, "hgnn_ima", graph_name, num_seeds, opts, init=init, seed_batch=sb)
    out[key] = {
        k: rs.get(k)
        for k in (
            "seeds",
            "step_s_median",
            "step_s_min",
            "cpu_s_per_step",
            "compile_s",
            "rss_peak_mb",
            "xla_memory",
            "device_memory",
            "skipped",
        )
    }
    out[key]["seed_batch"] = sb
    if "skipped" not in rs:
      out[key]["ratio_vs_one_seed"] = rs["step_s_median"] / one_seed["step_s_median"]
      out[key]["cpu_ratio_vs_one_seed"] = rs["cpu_s_per_step"] / one_seed["cpu_s_per_step"]
  return out
