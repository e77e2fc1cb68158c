r"""Training-step time of HGNN-IMA and the HGT baselines (and PyG's HGTConv) on real and synthetic graphs.

A benchmark, not a test. One step = `hgnn_ima_jax.train.train_step` (forward, loss,
backward, optimizer update) inside `jit(vmap(...))` over the seed axis, exactly as
`make_epoch_fn` runs it, with the graph passed as an argument (never a jit constant).
Compile time (lower + compile) is measured separately. After `--warmup` calls,
`--steps` calls are timed one by one (`block_until_ready`); median and min are reported.

Graphs (`--graphs`): the real DOUBAN / IMDB / AMAZON topologies, labels and splits from
`--data_dir` with generated `--feature_dim`-wide inputs for both modalities on every
node type (missing modalities filled as the authors' code does); `synthetic_amazon1`
(58,088 nodes, 632,238 edges, 4 relations, 12 classes), `synthetic_amazon1x4` (4x),
`synthetic10m` (~10.1M edges; for a GPU), `tiny` (a ~250-node graph for the test).

Model settings: each graph's training profile (`experiments.configs.get_config`: MISS
for DOUBAN/IMDB/AMAZON, FULL2 for the AMAZON-1-like synthetic graphs) with
`--layers/--hidden/--heads` (default 3/64/8) overriding width and depth.

Output: one JSON line per (graph, model) on stdout and appended to `--out` (JSONL),
with machine, CPU count, versions, date and load average; PyG rows when torch and
torch_geometric import (`--pyg`, auto by default); a ratio table on stderr.
`--profile_dir` additionally traces HGNN-IMA's step with `jax.profiler` on
`--profile_graphs` and reports the costliest XLA ops with their HLO shapes.

  python benchmarks/step_time.py --out=benchmarks/results.jsonl
  python benchmarks/step_time.py --graphs=amazon,synthetic_amazon1 --models=hgnn_ima \
      --profile_dir=/tmp/prof
  python benchmarks/step_time.py --tiny --steps=2   # seconds; what tests/test_benchmark.py runs
"""

from __future__ import annotations

import collections
import datetime
import functools
import glob
import gzip
import json
import os
import pathlib
import platform
import re
import resource
import statistics
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]

if __name__ == "__main__":  # before JAX is imported: the allocator is chosen at process start
  from hgnn_ima_jax.runtime import reexec_with_fast_allocator
  reexec_with_fast_allocator()

# Before torch loads: with OpenMP's default (active, spinning) wait policy, torch's
# thread team stalls for seconds per step whenever the CPUs are shared with other work
# (measured here under load: 0.3-8 s instead of 50-80 ms for a tiny step with 2 threads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from absl import app, flags  # noqa: E402

# Between rows: collect garbage and hand freed pages back, so that each row's RSS is its own
# (the allocator of `hgnn_ima_jax.runtime` keeps them for the next step otherwise).
from hgnn_ima_jax.runtime import release_free_memory  # noqa: E402  (no JAX import)

REAL_GRAPHS = ("douban", "imdb", "amazon")
SYNTHETIC_GRAPHS = ("synthetic_amazon1", "synthetic_amazon1x4", "synthetic10m", "tiny")
GRAPHS = REAL_GRAPHS + SYNTHETIC_GRAPHS
JAX_MODELS = ("hgnn_ima", "hgt_early", "hgt_late")
TINY_DEFAULTS = dict(layers=1, hidden=16, heads=2, feature_dim=32, warmup=1, seeds=2, pyg_check_steps=3)
# Our model -> the PyG model it is compared with.
PYG_PAIR = {"hgnn_ima": "pyg_hgt_late", "hgt_late": "pyg_hgt_late", "hgt_early": "pyg_hgt_early"}

FLAGS = flags.FLAGS
flags.DEFINE_list("graphs", "douban,imdb,amazon,synthetic_amazon1,synthetic_amazon1x4", f"graphs, from {GRAPHS}")
flags.DEFINE_list("models", ",".join(JAX_MODELS), f"our models, from {JAX_MODELS}")
flags.DEFINE_integer("steps", 10, "timed steps per (graph, model)")
flags.DEFINE_integer("warmup", 2, "untimed steps after compilation")
flags.DEFINE_integer("seeds", 5, "also time this many seeds of HGNN-IMA, vmapped and looped (lax.map), against one (0 or 1: skip)")
flags.DEFINE_list("seed_graphs", "douban,imdb,amazon,tiny",
                  "graphs on which the multi-seed timing runs (memory grows with seeds x edges)")
flags.DEFINE_boolean("tiny", False, "only the tiny synthetic graph (overrides --graphs) with a small model "
                     "(unless given: --layers=1 --hidden=16 --heads=2 --feature_dim=32 --warmup=1 --seeds=2 "
                     "--pyg_check_steps=3); for the test")
flags.DEFINE_boolean("pyg", None, "also time PyG's HGTConv (default: when torch_geometric imports)")
flags.DEFINE_integer("pyg_check_steps", 6, "steps of the PyG 'loss falls' check (0: skip)")
flags.DEFINE_string("out", "", "append the JSON lines to this JSONL file too")
flags.DEFINE_string("data_dir", os.environ.get("HGNN_IMA_DATA_DIR", str(REPO.parent / "shared" / "datasets")),
                    "directory with douban/, imdb/, amazon/")
flags.DEFINE_integer("feature_dim", 512, "width of the generated inputs of both modalities")
flags.DEFINE_integer("layers", 3, "propagation layers K")
flags.DEFINE_integer("hidden", 64, "hidden width d")
flags.DEFINE_integer("heads", 8, "attention heads H")
flags.DEFINE_integer("threads", 0, "torch.set_num_threads (0: the CPUs this process may use)")
flags.DEFINE_boolean("xla_ynn", True, "XLA:CPU's YNNPACK library fusions (XLA's default); --noxla_ynn sets "
                     "XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= (plain XLA loop fusions), see README")
flags.DEFINE_float("max_temp_gb", 0.0, "skip timing our model when XLA's temp-buffer estimate exceeds this "
                   "(0: 70%% of MemAvailable); the row then says why")
flags.DEFINE_string("profile_dir", "", "trace HGNN-IMA's step with jax.profiler into this directory")
flags.DEFINE_list("profile_graphs", "amazon,synthetic_amazon1", "graphs to profile (with --profile_dir)")
flags.DEFINE_integer("profile_steps", 3, "steps inside the profiler trace")
flags.DEFINE_integer("profile_top", 20, "ops listed per profile")
flags.DEFINE_integer("profile_seeds", 1, "vmapped seeds in the profiled step (compare 1 with --seeds)")


# --- environment ---------------------------------------------------------------------------

def cpu_count() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # pragma: no cover - not Linux
    return os.cpu_count() or 1


def load_avg() -> list[float] | None:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:  # pragma: no cover
    return None


def rss_mb() -> float:
  """Current resident set size."""
  try:
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
  except OSError:  # pragma: no cover - not Linux
    return peak_rss_mb()


def cpu_seconds() -> float:
  """User + system CPU time of this process (all threads). Per step, it is far less sensitive
  than wall time to other processes competing for the CPUs (they delay us, not our work)."""
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def mem_available_mb() -> float:
  try:
    with open("/proc/meminfo") as f:
      for ln in f:
        if ln.startswith("MemAvailable:"):
          return int(ln.split()[1]) / 1024
  except OSError:  # pragma: no cover
    pass
  return 0.0


def peak_rss_mb() -> float:
  """The process's peak RSS so far (getrusage; monotonic over the whole run)."""
  r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return r / 2**20 if sys.platform == "darwin" else r / 2**10


class RssSampler:
  """Peak RSS while a block runs, sampled every `interval` s in a thread (a per-block peak;
  getrusage only gives the process's peak so far)."""

  def __init__(self, interval: float = 0.02):
    self.interval, self.peak, self._stop = interval, 0.0, threading.Event()

  def __enter__(self):
    self.start = rss_mb()
    self.peak = self.start
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()
    return self

  def _run(self):
    while not self._stop.is_set():
      self.peak = max(self.peak, rss_mb())
      time.sleep(self.interval)

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self.peak = max(self.peak, rss_mb())


def machine_info() -> dict:
  import jax
  model = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
  except OSError:  # pragma: no cover
    pass
  mem_gb = None
  try:
    mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
  except (ValueError, OSError):  # pragma: no cover
    pass
  from hgnn_ima_jax.runtime import active_allocator
  devices = jax.devices()
  return {"host": platform.node(), "cpu": model, "cpu_count": cpu_count(), "memory_gb": mem_gb,
          "python": platform.python_version(), "platform": devices[0].platform,
          "device": f"{len(devices)}x {getattr(devices[0], 'device_kind', devices[0].platform)}",
          "allocator": active_allocator(), "malloc_conf": os.environ.get("MALLOC_CONF")}


def versions() -> dict:
  import flax
  import jax
  import jaxlib
  import optax
  return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__, "optax": optax.__version__}


def device_memory_mb() -> dict | None:
  """Peak/in-use device memory on an accelerator (None on CPU, whose stats are empty)."""
  import jax
  d = jax.devices()[0]
  if d.platform == "cpu":
    return None
  try:
    s = d.memory_stats() or {}
  except Exception:  # pylint: disable=broad-except
    return None
  return {k: round(v / 2**20, 1) for k, v in s.items() if k in ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")}


# --- graphs --------------------------------------------------------------------------------

def synthetic_kwargs(name: str, feature_dim: int) -> dict:
  from hgnn_ima_jax.data_utils.synthetic import AMAZON1_LIKE
  wide = dict(feature_dim=feature_dim, modality_dims=())
  if name == "synthetic_amazon1":
    return {**AMAZON1_LIKE, **wide}
  if name == "synthetic_amazon1x4":
    return {**AMAZON1_LIKE, **wide, "scale": 4.0}
  if name == "synthetic10m":  # 16 x 632,238 = 10.1M edges, 929k nodes
    return {**AMAZON1_LIKE, **wide, "scale": 16.0}
  if name == "tiny":  # DOUBAN-like: 3 node types, 4 relations, a target type with 100 nodes
    return dict(scale=0.05, **wide)
  raise ValueError(f"unknown synthetic graph {name!r}")


def load_graph(name: str, data_dir: str, feature_dim: int, seed: int = 0):
  """The MMHN to benchmark: real topology with generated `feature_dim`-wide inputs, or a synthetic graph."""
  if name in REAL_GRAPHS:
    from hgnn_ima_jax import data_utils
    from hgnn_ima_jax.data_utils.generated import generate_features
    from hgnn_ima_jax.graph import fill_missing_modalities
    g = data_utils.load_dataset(name, data_dir, features="generated", feature_seed=seed)
    # Every real (type, modality) input regenerated at one width (IMDB's real text is 3066
    # wide, AMAZON's stand-ins 1433): the benchmark compares graphs at equal input width.
    rule = g.provenance.get("missing_fill", "zeros")
    g.features = {t: {} for t in g.node_types}
    wanted = {(t, m): feature_dim for t in g.node_types for m in g.node_modalities[t]}
    for (t, m), x in generate_features(g, wanted, seed).items():
      g.features[t][m] = x
      g.provenance["features"][f"{t}/{m}"] = "generated"
    fill_missing_modalities(g, rule)
    return g.validate()
  if name in SYNTHETIC_GRAPHS:
    from hgnn_ima_jax.data_utils.synthetic import make_synthetic
    return make_synthetic(seed=seed, **synthetic_kwargs(name, feature_dim)).validate()
  raise ValueError(f"unknown graph {name!r}; choose from {GRAPHS}")


def graph_config(graph_name: str, model_name: str, seeds):
  """The graph's training profile with the benchmark's width/depth."""
  from hgnn_ima_jax.experiments.configs import get_config
  profile = graph_name if graph_name in REAL_GRAPHS else ("synthetic" if graph_name == "tiny" else "amazon1")
  c = get_config(profile)
  c.model_name = model_name
  c.model.hidden, c.model.heads, c.model.num_layers = FLAGS.hidden, FLAGS.heads, FLAGS.layers
  c.seeds = tuple(seeds)
  return c, profile


def graph_info(data) -> dict:
  s = data.schema
  return {"nodes": s.total_nodes, "edges": s.total_edges, "node_types": s.num_node_types,
          "relations": s.num_relations, "classes": s.num_classes, "modalities": list(s.modalities),
          "feature_dim": FLAGS.feature_dim, "train_nodes": int(len(data.splits["train"]))}


# --- our step ------------------------------------------------------------------------------

def make_step(config, data, seed_batch: int = 0):
  """(jitted train_step over seeds, model, tx) for `config` on `data`; as make_epoch_fn, without eval.

  seed_batch: as `hgnn_ima_jax.train.map_seeds` (0: vmap of all seeds; 1: lax.map, one at a time)."""
  import jax
  from hgnn_ima_jax import train as tr
  config = tr.resolve_config(config)
  model = tr.create_model(config, data.schema)
  tx = tr.create_optimizer(config)
  one = functools.partial(tr.train_step, model=model, tx=tx, ind_loss=bool(config.loss.ind_loss),
                          att_weight=float(config.loss.att_weight))
  return jax.jit(tr.map_seeds(one, seed_batch), donate_argnums=(0,)), model, tx, config


def tile_seeds(state, num_seeds: int):
  """A `num_seeds` state from a 1-seed one (host arrays): leaves tiled, distinct dropout keys.

  The work of a step does not depend on parameter values, so this times exactly what
  `init_state` with `num_seeds` seeds would, without compiling a second init program.
  """
  import jax
  import jax.numpy as jnp
  tiled = jax.tree.map(lambda x: jnp.concatenate([jnp.asarray(x)] * num_seeds, axis=0), state)
  keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(num_seeds, dtype=jnp.uint32))
  return tiled.replace(key=keys.astype(tiled.key.dtype))


def xla_memory_mb(compiled) -> dict | None:
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if m is None:
    return None
  keys = ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes")
  return {k.replace("_size_in_bytes", "_mb"): round(getattr(m, k) / 2**20, 1) for k in keys if hasattr(m, k)}


def time_ours(data, batch, model_name: str, graph_name: str, num_seeds: int, init=None,
              seed_batch: int = 0) -> dict:
  """Compile and time our step for `num_seeds` seeds, vmapped (seed_batch 0) or looped (1).

  init: a 1-seed initial state (host arrays) to tile instead of running `init_state`; the
  result's '_init' is this run's initial state, for a later multi-seed call.
  """
  import jax
  import numpy as np
  from hgnn_ima_jax import train as tr
  config, profile = graph_config(graph_name, model_name, range(num_seeds))
  with RssSampler() as mem:
    step, model, tx, config = make_step(config, data, seed_batch)
    t = time.perf_counter()
    state = tr.init_state(model, tx, batch, list(config.seeds)) if init is None else tile_seeds(init, num_seeds)
    jax.block_until_ready(state)
    init_s = time.perf_counter() - t
    init_host = jax.device_get(state) if init is None else None  # the step donates `state`
    t = time.perf_counter()
    lowered = step.lower(state, batch)
    lower_s = time.perf_counter() - t
    t = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t
    xla_mem = xla_memory_mb(compiled)
    release_free_memory()  # what init and the compiler freed, so that the steps' buffers start from a clean heap
    limit_mb = FLAGS.max_temp_gb * 1024 or 0.7 * mem_available_mb()
    if xla_mem and limit_mb and xla_mem.get("temp_mb", 0) > limit_mb:
      return {"profile": profile, "seeds": num_seeds, "skipped": (
          f"XLA temp-buffer estimate {xla_mem['temp_mb'] / 1024:.1f} GiB exceeds {limit_mb / 1024:.1f} GiB "
          "(--max_temp_gb; default 70% of MemAvailable)"), "lower_s": lower_s, "compile_s": compile_s,
              "xla_memory": xla_mem}
    losses = []
    t = time.perf_counter()
    state, m = compiled(state, batch)
    jax.block_until_ready(state)
    first_step_s = time.perf_counter() - t
    losses.append(float(np.mean(np.asarray(m["train_loss"]))))
    for _ in range(max(FLAGS.warmup - 1, 0)):
      state, m = compiled(state, batch)
      losses.append(float(np.mean(np.asarray(m["train_loss"]))))
    times, cpu0 = [], cpu_seconds()
    for _ in range(FLAGS.steps):
      t = time.perf_counter()
      state, m = compiled(state, batch)
      jax.block_until_ready((state, m))
      times.append(time.perf_counter() - t)
      losses.append(float(np.mean(np.asarray(m["train_loss"]))))
    cpu_per_step = (cpu_seconds() - cpu0) / max(FLAGS.steps, 1)
    n_params = sum(int(np.prod(x.shape[1:])) for x in jax.tree.leaves(state.params))
    dev_mem = device_memory_mb()
  del state, compiled, lowered
  release_free_memory()
  return {"profile": profile, "seeds": num_seeds, "step_s_median": statistics.median(times),
          "step_s_min": min(times), "step_s_mean": statistics.fmean(times), "step_times_s": times,
          "cpu_s_per_step": cpu_per_step,
          "init_s": init_s, "lower_s": lower_s, "compile_s": compile_s, "first_step_s": first_step_s,
          "losses": losses, "loss_falls": bool(losses[-1] < losses[0]), "num_params": n_params,
          "rss_start_mb": round(mem.start, 1), "rss_peak_mb": round(mem.peak, 1),
          "process_peak_rss_mb": round(peak_rss_mb(), 1), "xla_memory": xla_mem, "device_memory": dev_mem,
          "_init": init_host}


# --- profile -------------------------------------------------------------------------------

def _hlo_index(hlo_text: str) -> dict:
  """instruction name -> (shape, opcode, text) from compiled HLO text."""
  idx = {}
  pat = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\S+(?:\s*\{[^}]*\})?)\s+([\w\-]+)\(")
  for line in hlo_text.splitlines():
    mt = pat.match(line)
    if mt:
      idx.setdefault(mt.group(1), (mt.group(2), mt.group(3), line.strip()))
  return idx


def _fused_ops(hlo_text: str, name: str) -> str:
  """A short summary of the ops inside the fusion `name` calls (e.g. 'gather, multiply, reduce')."""
  mt = re.search(rf"%?{re.escape(name)}\s*=.*?calls=%?([\w.\-]+)", hlo_text)
  if not mt:
    return ""
  comp = mt.group(1)
  body = re.search(rf"^%?{re.escape(comp)}\s.*?\{{\n(.*?)\n\}}", hlo_text, re.S | re.M)
  if not body:
    return ""
  ops = collections.Counter(re.findall(r"=\s*\S+\s+([\w\-]+)\(", body.group(1)))
  ops.pop("parameter", None)
  return ", ".join(f"{k}x{v}" if v > 1 else k for k, v in ops.most_common(8))


def aggregate_trace(trace_dir: str) -> tuple[dict, float]:
  """Sums the duration (us) of the complete ('X') events of the newest trace by name."""
  files = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True), key=os.path.getmtime)
  if not files:
    raise FileNotFoundError(f"no *.trace.json.gz under {trace_dir}")
  with gzip.open(files[-1], "rt") as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  totals = collections.defaultdict(lambda: [0.0, 0])
  for e in events:
    if e.get("ph") == "X" and "dur" in e:
      t = totals[e.get("name", "?")]
      t[0] += float(e["dur"])
      t[1] += 1
  return dict(totals), files[-1]


def profile_ours(data, batch, graph_name: str) -> dict:
  """jax.profiler trace of HGNN-IMA's step; top XLA ops by time, mapped to HLO shapes."""
  import jax
  from hgnn_ima_jax import train as tr
  seeds = FLAGS.profile_seeds
  config, profile = graph_config(graph_name, "hgnn_ima", [0])
  step, model, tx, config = make_step(config, data)
  state = tr.init_state(model, tx, batch, [0])
  if seeds > 1:
    state = tile_seeds(jax.device_get(state), seeds)
  compiled = step.lower(state, batch).compile()
  hlo = compiled.as_text()
  for _ in range(2):
    state, _ = compiled(state, batch)
  jax.block_until_ready(state)
  out_dir = os.path.join(FLAGS.profile_dir, graph_name + (f"-{seeds}seeds" if seeds > 1 else ""))
  n = FLAGS.profile_steps
  t = time.perf_counter()
  with jax.profiler.trace(out_dir, create_perfetto_trace=True):
    for _ in range(n):
      state, m = compiled(state, batch)
      jax.block_until_ready((state, m))
  wall = (time.perf_counter() - t) / n
  totals, path = aggregate_trace(out_dir)
  hidx = _hlo_index(hlo)
  # Only XLA instruction events (names found in the HLO) are ranked; the rest are runtime wrappers.
  ops = [(k, v) for k, v in totals.items() if k in hidx]
  op_total = sum(v[0] for _, v in ops)
  ops.sort(key=lambda kv: -kv[1][0])
  with open(os.path.join(out_dir, "step.hlo.txt"), "w") as f:
    f.write(hlo)
  by_opcode, by_class = collections.Counter(), collections.Counter()
  n_edges = str(data.schema.total_edges)
  for k, (us, _) in ops:
    by_opcode[hidx[k][1] + ("" if hidx[k][1] != "fusion" else ":" + _kind(hidx[k][2]))] += us
    by_class[_op_class(k, hidx[k], _fused_ops(hlo, k), n_edges)] += us
  top = []
  for k, (us, cnt) in ops[:FLAGS.profile_top]:
    shape, opcode, line = hidx[k]
    top.append({"name": k, "ms_per_step": round(us / 1e3 / n, 2), "share": round(us / op_total, 4),
                "calls_per_step": cnt // n, "opcode": opcode, "shape": shape, "fused": _fused_ops(hlo, k),
                "hlo": line[:400]})
  del state, compiled
  release_free_memory()
  return {"record": "profile", "graph": graph_name, "model": "hgnn_ima", "seeds": seeds, "profile": profile,
          "trace": path,
          "steps": n, "wall_s_per_step": wall, "op_ms_per_step": round(op_total / 1e3 / n, 1),
          "by_opcode_ms_per_step": {k: round(v / 1e3 / n, 1) for k, v in by_opcode.most_common(12)},
          "by_class_ms_per_step": {k: round(v / 1e3 / n, 1) for k, v in by_class.most_common()},
          "top_ops": top, "load_avg": load_avg()}


def _op_class(name: str, entry, fused: str, n_edges: str) -> str:
  """'edge'/'node' (does the output have an E-sized axis) + what the op does, for a coarse breakdown."""
  shape, opcode, _ = entry
  size = "edge" if re.search(rf"[\[,]{n_edges}[,\]]", shape) else "node"
  text = f"{opcode} {fused} {name}"
  for what in ("scatter", "gather", "dot", "reduce", "sort"):
    if what in text:
      return f"{size}:{what}"
  return f"{size}:elementwise/copy"


def _kind(line: str) -> str:
  mt = re.search(r"kind=(\w+)", line)
  return mt.group(1) if mt else "?"


# --- driver --------------------------------------------------------------------------------

def emit(record: dict, out_path: str):
  line = json.dumps(record, sort_keys=False)
  print(line, flush=True)
  if out_path:
    with open(out_path, "a") as f:
      f.write(line + "\n")


def main(argv):
  del argv
  if not FLAGS.xla_ynn:  # read when the CPU client starts, i.e. before the first jax.devices()
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_experimental_ynn_fusion_type=").strip()
  import jax
  from hgnn_ima_jax import train as tr

  graphs = ["tiny"] if FLAGS.tiny else list(FLAGS.graphs)
  for g in graphs:
    if g not in GRAPHS:
      raise app.UsageError(f"unknown graph {g!r}; choose from {', '.join(GRAPHS)}")
  for m in FLAGS.models:
    if m not in JAX_MODELS:
      raise app.UsageError(f"unknown model {m!r}; choose from {', '.join(JAX_MODELS)}")
  if FLAGS.tiny:  # seconds of compilation instead of a minute: the test checks the schema, not speed
    for name, value in TINY_DEFAULTS.items():
      if FLAGS[name].using_default_value:
        FLAGS[name].value = value

  pyg_ok, pyg_reason = False, "disabled with --nopyg"
  if FLAGS.pyg is not False:
    import pyg_hgt
    pyg_ok, pyg_reason = pyg_hgt.available()
    if FLAGS.pyg and not pyg_ok:
      raise app.UsageError(pyg_reason)
  threads = FLAGS.threads or cpu_count()
  if pyg_ok:
    import torch
    torch.set_num_threads(threads)
  common = {"machine": machine_info(), "versions": versions(),
            "pyg_versions": pyg_hgt.versions() if pyg_ok else None, "pyg_skipped": None if pyg_ok else pyg_reason,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
  print(f"# {common['machine']['cpu']} x{common['machine']['cpu_count']}, jax {jax.__version__}, "
        f"PyG: {'yes' if pyg_ok else pyg_reason}", file=sys.stderr, flush=True)

  summary = []
  for gname in graphs:
    t = time.perf_counter()
    data = load_graph(gname, FLAGS.data_dir, FLAGS.feature_dim)
    batch = tr.make_batch(data)
    load_s = time.perf_counter() - t
    ginfo = graph_info(data)
    print(f"# {gname}: {ginfo['nodes']:,} nodes, {ginfo['edges']:,} edges (loaded in {load_s:.1f} s)",
          file=sys.stderr, flush=True)
    base = {"graph": gname, **ginfo, "layers": FLAGS.layers, "hidden": FLAGS.hidden, "heads": FLAGS.heads,
            "steps": FLAGS.steps, "warmup": FLAGS.warmup}

    pyg_rows = {}
    if pyg_ok:
      pyg_models = sorted({PYG_PAIR[m] for m in FLAGS.models})
      for pm in pyg_models:
        la = load_avg()
        check = None
        if FLAGS.pyg_check_steps:
          check = pyg_hgt.check_trains(pm, data, hidden=FLAGS.hidden, heads=FLAGS.heads, layers=FLAGS.layers,
                                       steps=FLAGS.pyg_check_steps, threads=threads)
        release_free_memory()
        with RssSampler() as mem:
          r = pyg_hgt.time_steps(pm, data, hidden=FLAGS.hidden, heads=FLAGS.heads, layers=FLAGS.layers,
                                 steps=FLAGS.steps, warmup=FLAGS.warmup, threads=threads)
        row = {"record": "step", **base, "model": pm, "framework": "pyg", **r, "compile_s": 0.0,
               "train_check": check, "rss_start_mb": round(mem.start, 1), "rss_peak_mb": round(mem.peak, 1),
               "process_peak_rss_mb": round(peak_rss_mb(), 1), "load_avg_start": la, "load_avg_end": load_avg(),
               **common}
        pyg_rows[pm] = row
        emit(row, FLAGS.out)
        print(f"#   {pm:<14} step {r['step_s_median'] * 1e3:9.1f} ms (min {r['step_s_min'] * 1e3:.1f}, "
              f"cpu {r['cpu_s_per_step'] * 1e3:.0f}); "
              f"loss {r['losses'][0]:.3f} -> {r['losses'][-1]:.3f}", file=sys.stderr, flush=True)
        release_free_memory()

    for mname in FLAGS.models:
      la = load_avg()
      r = time_ours(data, batch, mname, gname, 1)
      init = r.pop("_init", None)
      row = {"record": "step", **base, "model": mname, "framework": "jax", **r}
      if "skipped" in r:
        row.update({"load_avg_start": la, "load_avg_end": load_avg(), **common})
        emit(row, FLAGS.out)
        print(f"#   {mname:<14} skipped: {r['skipped']}", file=sys.stderr, flush=True)
        jax.clear_caches()
        release_free_memory()
        continue
      if mname == "hgnn_ima" and FLAGS.seeds > 1 and (gname in FLAGS.seed_graphs or FLAGS.tiny):
        # Both ways of running S seeds in one program: vmap (seed_batch 0) and lax.map (1, the CPU default).
        for key, sb in (("multi_seed", 0), ("multi_seed_map", 1)):
          rs = time_ours(data, batch, mname, gname, FLAGS.seeds, init=init, seed_batch=sb)
          row[key] = {k: rs.get(k) for k in ("seeds", "step_s_median", "step_s_min", "cpu_s_per_step", "compile_s",
                                              "rss_peak_mb", "xla_memory", "device_memory", "skipped")}
          row[key]["seed_batch"] = sb
          if "skipped" not in rs:
            row[key]["ratio_vs_one_seed"] = rs["step_s_median"] / r["step_s_median"]
            row[key]["cpu_ratio_vs_one_seed"] = rs["cpu_s_per_step"] / r["cpu_s_per_step"]
      pair = PYG_PAIR[mname]
      if pair in pyg_rows:
        row["vs_pyg"] = {"pyg_model": pair, "ratio": r["step_s_median"] / pyg_rows[pair]["step_s_median"],
                         "cpu_ratio": r["cpu_s_per_step"] / pyg_rows[pair]["cpu_s_per_step"]}
      row.update({"load_avg_start": la, "load_avg_end": load_avg(), **common})
      emit(row, FLAGS.out)
      msg = (f"#   {mname:<14} step {r['step_s_median'] * 1e3:9.1f} ms (min {r['step_s_min'] * 1e3:.1f}, "
             f"cpu {r['cpu_s_per_step'] * 1e3:.0f}), "
             f"compile {r['compile_s']:.1f} s, loss {r['losses'][0]:.3f} -> {r['losses'][-1]:.3f}")
      if "ratio_vs_one_seed" in row.get("multi_seed", {}):
        msg += f"; {FLAGS.seeds} seeds x{row['multi_seed']['ratio_vs_one_seed']:.2f} vmapped"
      if "ratio_vs_one_seed" in row.get("multi_seed_map", {}):
        msg += f", x{row['multi_seed_map']['ratio_vs_one_seed']:.2f} looped"
      if "vs_pyg" in row:
        msg += f"; /{pair} = {row['vs_pyg']['ratio']:.2f}"
      print(msg, file=sys.stderr, flush=True)
      summary.append(row)
      jax.clear_caches()
      release_free_memory()

    if FLAGS.profile_dir and gname in FLAGS.profile_graphs and "hgnn_ima" in FLAGS.models:
      prof = profile_ours(data, batch, gname)
      emit(prof, FLAGS.out)
      print(f"# profile {gname}: {prof['op_ms_per_step']} ms of XLA ops per step "
            f"(wall {prof['wall_s_per_step'] * 1e3:.0f} ms); by opcode {prof['by_opcode_ms_per_step']}; "
            f"by class {prof['by_class_ms_per_step']}", file=sys.stderr)
      for op in prof["top_ops"]:
        print(f"#   {op['ms_per_step']:8.2f} ms {op['share'] * 100:5.1f}%  {op['name']:<36} {op['shape']:<40} "
              f"{op['fused']}", file=sys.stderr)
      jax.clear_caches()
    del data, batch
    release_free_memory()

  print("# graph                 model       ours ms  cpu ms/step  /PyG wall  /PyG cpu  seeds x (wall, cpu)",
        file=sys.stderr)
  for row in summary:
    vs = (f"{row['vs_pyg']['ratio']:9.2f} {row['vs_pyg']['cpu_ratio']:9.2f}" if "vs_pyg" in row
          else f"{'-':>9} {'-':>9}")
    ms = row.get("multi_seed") or {}
    ms = f"{ms['ratio_vs_one_seed']:.2f}, {ms['cpu_ratio_vs_one_seed']:.2f}" if "ratio_vs_one_seed" in ms else "-"
    print(f"# {row['graph']:<21} {row['model']:<10} {row['step_s_median'] * 1e3:9.1f} "
          f"{row['cpu_s_per_step'] * 1e3:12.0f} {vs}  {ms}", file=sys.stderr)


if __name__ == "__main__":
  app.run(main)
