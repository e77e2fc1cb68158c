"""The settings each framework is measured under, the order of the runs, and how the best is chosen.

A variant is one process's settings: allocator (glibc malloc; glibc with transparent huge
pages; jemalloc with `hgnn_ima_jax.runtime.JEMALLOC_CONF`; jemalloc with its defaults), threads
(PyG: `torch.set_num_threads`; ours: XLA's default pool, Eigen single-threaded, or the process
pinned to one CPU) and, for PyG, the OpenMP wait policy (unset, PASSIVE, ACTIVE) and how the
model runs: eagerly, or compiled by `torch.compile` (TorchInductor's C++/OpenMP kernels). Our step runs
on XLA's own thread pool: the only OpenMP runtime in our process is scikit-learn's libgomp
(imported for the metrics, never called by the step; each row records the OpenMP libraries
mapped into its process), so the wait policy is not a factor on our side.

Each variant's figure is the minimum over repetitions of its median step; a framework's
best is its variant with the lowest figure, and the ratio divides our best by PyG's.
No JAX, no torch: the orchestrator imports this.
"""

from __future__ import annotations

import collections
import dataclasses

from hgnn_ima_jax.runtime import JEMALLOC_CONF

ALLOCATORS = ("jemalloc", "glibc", "jemalloc_default", "glibc_thp")
OMP_POLICIES = ("unset", "PASSIVE", "ACTIVE")
OURS_THREADS = ("default", "eigen1", "cpus1")
PYG_EXEC = ("eager", "inductor")
PYG_DEVICES = ("cpu", "cuda")
# Variables a variant sets itself: inherited values would leak into every variant.
SCRUBBED = (
    "LD_PRELOAD",
    "MALLOC_CONF",
    "GLIBC_TUNABLES",
    "OMP_WAIT_POLICY",
    "OMP_NUM_THREADS",
    "GOMP_SPINCOUNT",
    "MKL_NUM_THREADS",
    "HGNN_IMA_ALLOCATOR",
    "HGNN_IMA_ALLOCATOR_ACTIVE",
    "HGNN_IMA_JEMALLOC",
)
# The persistent XLA cache is the run's own (`worker_env`, --xla_cache): an inherited JAX_COMPILATION_CACHE_DIR
# made --noxla_cache do nothing and the first worker's "cold" compile warm, and an inherited
# JAX_ENABLE_COMPILATION_CACHE=false or a minimum entry size would turn the run's own cache off.
JAX_CACHE = (
    "JAX_COMPILATION_CACHE_DIR",
    "JAX_ENABLE_COMPILATION_CACHE",
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES",
)
SCRUBBED += JAX_CACHE
EIGEN1_FLAG = "--xla_cpu_multi_thread_eigen=false"


@dataclasses.dataclass(frozen=True)
class Variant:
  """One process's settings. threads: PyG's torch thread count; ours: 'default', 'eigen1' or 'cpus1'.

  pyg_exec: PyG only, 'eager' or 'inductor' (the model under `torch.compile`).
  device: PyG only, torch's device, 'cpu' or 'cuda' (ours runs where JAX puts it: its rows say where).
  """

  framework: str  # 'jax' | 'pyg'
  allocator: str
  threads: str
  omp_wait_policy: str = "unset"
  pyg_exec: str = "eager"
  device: str = "cpu"

  @property
  def name(self) -> str:
    if self.framework == "pyg":
      compiled = "" if self.pyg_exec == "eager" else f"/{self.pyg_exec}"  # eager on the CPU names as before
      on = "" if self.device == "cpu" else f"/{self.device}"
      return f"{self.allocator}/omp-{self.omp_wait_policy}/threads-{self.threads}{compiled}{on}"
    return f"{self.allocator}/xla-{self.threads}"

  def settings(self) -> dict:
    pyg = self.framework == "pyg"
    return {
        "allocator": self.allocator,
        "threads": self.threads,
        "omp_wait_policy": self.omp_wait_policy if pyg else None,
        "pyg_exec": self.pyg_exec if pyg else None,
        "pyg_device": self.device if pyg else None,
    }


def check_choices(kind: str, given, allowed, allow_empty: bool = False) -> list[str]:
  """`given` if every item is in `allowed` (and, unless allow_empty, there is one), else ValueError naming the bad
  one and the choices."""
  given = [g for g in given if g]
  bad = [g for g in given if g not in allowed]
  if bad or not (given or allow_empty):
    raise ValueError(f"--{kind}={','.join(given)}: {bad[0] if bad else 'empty'} is not one of {', '.join(allowed)}")
  return given


def matrix(
    allocators, ours_threads, pyg_threads, pyg_omp, pyg_exec=("eager",), pyg_device: str = "cpu"
) -> tuple[list[Variant], list[Variant]]:
  """(ours, PyG) variants, in flag order: the first of ours is the one multi-seed and profiles use."""
  ours = [Variant("jax", a, t) for a in allocators for t in ours_threads]
  pyg = [
      Variant("pyg", a, str(t), w, x, pyg_device)
      for x in pyg_exec
      for a in allocators
      for w in pyg_omp
      for t in pyg_threads
  ]
  return ours, pyg


def variant_env(v: Variant, base: dict, jemalloc: str | None) -> tuple[dict, str | None]:
  """(environment for `v`'s worker, None) or (None, why `v` cannot run here)."""
  env = {k: val for k, val in base.items() if k not in SCRUBBED}
  if v.allocator in ("jemalloc", "jemalloc_default"):
    if not jemalloc:
      return None, (
          "no libjemalloc.so.2 found (Debian/Ubuntu: apt-get install libjemalloc2; or set "
          "HGNN_IMA_JEMALLOC=/path/to/libjemalloc.so)"
      )
    env["LD_PRELOAD"] = jemalloc
    if v.allocator == "jemalloc":
      env["MALLOC_CONF"] = JEMALLOC_CONF
  elif v.allocator == "glibc_thp":
    env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
  # Marks the settings as applied, so that nothing in the worker re-executes under other ones.
  env["HGNN_IMA_ALLOCATOR_ACTIVE"] = v.allocator
  if v.framework == "pyg" and v.omp_wait_policy != "unset":
    env["OMP_WAIT_POLICY"] = v.omp_wait_policy
  if v.framework == "jax" and v.threads == "eigen1":
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {EIGEN1_FLAG}".strip()
  return env, None


def worker_env(v: Variant, base: dict, jemalloc: str | None, *, xla_cache: str | None, tmpdir: str) -> dict:
  """`variant_env` (which must allow `v`) plus what the run sets for every worker: the run's persistent XLA cache
  for ours (`xla_cache`; None: no cache at all), and TMPDIR in the run's work directory, so that what a worker
  writes to the temporary directory (PyG's generated `HGTConv` propagate modules, TorchInductor's cache) goes
  with the work directory instead of staying in /tmp."""
  env, why = variant_env(v, base, jemalloc)
  if why is not None:
    raise ValueError(f"{v.framework}:{v.name} cannot run here: {why}")
  if xla_cache and v.framework == "jax":
    env.update(JAX_COMPILATION_CACHE_DIR=xla_cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  env["TMPDIR"] = tmpdir
  return env


def interleave(a: list, b: list) -> list:
  """a and b merged with each list's items spread evenly: a0 b0 a1 b1 ... for equal lengths."""
  out, i, j = [], 0, 0
  while i < len(a) or j < len(b):
    if j >= len(b) or (i < len(a) and i * len(b) <= j * len(a)):
      out.append(a[i])
      i += 1
    else:
      out.append(b[j])
      j += 1
  return out


def run_order(ours: list, pyg: list, rep: int) -> list:
  """The frameworks' workers interleaved; every other repetition in reverse, so that drift hits both alike."""
  order = interleave(ours, pyg)
  return order[::-1] if rep % 2 else order


def variant_figures(rows) -> dict:
  """{(graph, framework, model): {variant: min over reps of the median step}} of the timed step rows."""
  figs = collections.defaultdict(dict)
  for r in rows:
    if r.get("record") == "step" and "step_s_median" in r:
      key, v = (r["graph"], r["framework"], r["model"]), r["variant"]
      figs[key][v] = min(figs[key].get(v, float("inf")), r["step_s_median"])
  return dict(figs)


def finalists(rows, k: int) -> set[str]:
  """Names of the `k` fastest variants of every (framework, model) in `rows` (a screening phase)."""
  keep = set()
  for figs in variant_figures(rows).values():
    keep.update(sorted(figs, key=figs.get)[:k])
  return keep


def best_records(rows, pair: dict) -> list[dict]:
  """A 'best' line per (graph, framework, model) and a 'ratio' line per (graph, our model with a PyG pair)."""
  figs = variant_figures(rows)
  cpu = {}
  for r in rows:
    if r.get("record") == "step" and "cpu_s_per_step" in r:
      k = (r["graph"], r["framework"], r["model"], r["variant"])
      if r["step_s_median"] == figs[k[:3]][k[3]]:
        cpu[k] = r["cpu_s_per_step"]  # the CPU time of the repetition that gave the figure
  out, best = [], {}
  for (g, fw, m), f in sorted(figs.items()):
    v = min(f, key=f.get)
    best[(g, fw, m)] = (v, f[v], cpu.get((g, fw, m, v)))
    out.append(
        {
            "record": "best",
            "graph": g,
            "framework": fw,
            "model": m,
            "best_variant": v,
            "step_s": f[v],
            "cpu_s_per_step": cpu.get((g, fw, m, v)),
            "variants": dict(sorted(f.items(), key=lambda kv: kv[1])),
        }
    )
  for (g, fw, m), (v, s, c) in sorted(best.items()):
    if fw != "jax" or (g, "pyg", pair.get(m)) not in best:
      continue
    pv, ps, pc = best[(g, "pyg", pair[m])]
    out.append(
        {
            "record": "ratio",
            "graph": g,
            "model": m,
            "variant": v,
            "step_s": s,
            "pyg_model": pair[m],
            "pyg_variant": pv,
            "pyg_step_s": ps,
            "ratio": s / ps,
            "cpu_ratio": c / pc if c is not None and pc else None,
        }
    )
  return out
