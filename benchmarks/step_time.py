r"""Training-step time of HGNN-IMA and the HGT baselines against PyG's HGTConv, each at its best settings.

A benchmark, not a test. Every measurement runs in its own process (`bench_worker.py`): one
per (framework, graph, variant), so each framework loads under its own allocator, thread
count and (PyG) OpenMP wait policy, and nothing of the other framework shares its process.
Variants (`bench_variants.py`): allocators `--allocators`, our threads `--ours_threads`,
torch threads `--pyg_threads`, OpenMP wait policies `--pyg_omp`, eager or `torch.compile`d PyG
`--pyg_exec`. The graph is built once
(seeded), written in the generic format, and read by every worker; each row records the
checksum of what its worker read, and the run stops if one differs.

The runs of the two frameworks are interleaved (ours, PyG, ours, ...; every other repetition
in reverse order), `--reps` times. A variant's figure is the minimum over repetitions of its
median step; each framework's best variant gives the ratio. `--screen_steps` first times
every variant briefly and keeps the `--finalists` fastest of each model for the repetitions.

Output: JSON lines on stdout and appended to `--out`: one 'run' line (matrix, machine,
date, load), one 'step' line per (worker, model) with the variant, its settings and what
the worker really ran under, 'best' lines per (graph, framework, model) and 'ratio' lines
per (graph, our model); `benchmarks/report.py` turns them into tables.

  python benchmarks/step_time.py --graphs=douban --out=/tmp/bench.jsonl
  python benchmarks/step_time.py --graphs=amazon --models=hgnn_ima --profile_dir=/tmp/prof
  python benchmarks/step_time.py --tiny --steps=2   # what tests/test_benchmark.py runs (with a smaller matrix)
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "benchmarks"):
  if str(_p) not in sys.path:
    sys.path.insert(0, str(_p))

import bench_cli  # noqa: E402
import bench_subprocess  # noqa: E402
import bench_variants as bv  # noqa: E402
from absl import app, flags  # noqa: E402
from bench_cli import at_least, check_out  # noqa: E402
from bench_env import cpu_count, emit, load_avg, machine_info, now_utc  # noqa: E402
from bench_graphs import (  # noqa: E402
    GRAPHS,
    JAX_MODELS,
    PYG_PAIR,
    check_graphs_readable,
    define_graph_flags,
    graph_checksum,
    graph_info,  # noqa: E402
    load_graph,
)
from bench_subprocess import pyg_availability, resolve_python, run_worker  # noqa: E402

from hgnn_ima_jax import data_utils  # noqa: E402
from hgnn_ima_jax.cli_flags import one_line_usage_errors, parse_flags  # noqa: E402
from hgnn_ima_jax.runtime import find_jemalloc  # noqa: E402  (no JAX import)

WORKER = REPO / "benchmarks" / "bench_worker.py"
TINY_DEFAULTS = dict(layers=1, hidden=16, heads=2, feature_dim=32, warmup=1, seeds=2, pyg_check_steps=3, reps=1)

FLAGS = flags.FLAGS
flags.DEFINE_list("graphs", "douban,imdb,amazon,synthetic_amazon1", f"graphs, from {GRAPHS}")
flags.DEFINE_list("models", ",".join(JAX_MODELS), f"our models, from {JAX_MODELS}")
flags.DEFINE_integer("steps", 10, "timed steps per (worker, model)")
flags.DEFINE_integer("warmup", 2, "untimed steps after compilation")
flags.DEFINE_integer(
    "reps", 2, "repetitions of every (framework, variant); a variant's figure is the min of its " "medians"
)
flags.DEFINE_list(
    "allocators",
    "jemalloc,glibc,jemalloc_default",
    f"from {bv.ALLOCATORS}; jemalloc = hgnn_ima_jax.runtime.JEMALLOC_CONF, jemalloc_default = no "
    "MALLOC_CONF; variants needing an absent jemalloc are listed in the run line and skipped",
)
flags.DEFINE_list(
    "ours_threads",
    "default,eigen1",
    f"our thread settings, from {bv.OURS_THREADS}: XLA's pool, " f"+ {bv.EIGEN1_FLAG}, the process pinned to one CPU",
)
flags.DEFINE_list("pyg_threads", None, "torch.set_num_threads values (default: 1 and the CPUs this process may use)")
flags.DEFINE_list("pyg_omp", ",".join(bv.OMP_POLICIES), f"PyG's OMP_WAIT_POLICY values, from {bv.OMP_POLICIES}")
flags.DEFINE_list(
    "pyg_exec",
    "eager",
    f"how PyG's model runs, from {bv.PYG_EXEC}: 'inductor' is torch.compile(model) (its compilation "
    "is in the first step, reported as compile_s)",
)
flags.DEFINE_enum(
    "pyg_device",
    "cpu",
    list(bv.PYG_DEVICES),
    "torch's device for PyG's model and graph ('cuda': a GPU, checked before any work; ours runs where JAX puts it)",
)
flags.DEFINE_integer("screen_steps", 0, "first time every variant with this many steps (0: no screening)")
flags.DEFINE_integer("finalists", 2, "with --screen_steps: fastest variants kept per (framework, model)")
flags.DEFINE_integer(
    "seeds",
    5,
    "also time this many seeds of HGNN-IMA, vmapped and looped, against one (0/1: skip); "
    "in the first repetition of our first variant only",
)
flags.DEFINE_list("seed_graphs", "douban,imdb,amazon,tiny", "graphs on which the multi-seed timing runs")
flags.DEFINE_integer(
    "seed_reps",
    1,
    "repetitions in which our first variant also times --seeds seeds (each against its own 1-seed median: "
    "the ratio of one worker is one sample of a noisy quotient)",
)
flags.DEFINE_boolean(
    "tiny",
    False,
    "only the tiny synthetic graph (overrides --graphs, whose names are still checked) with, unless given: "
    + " ".join(f"--{k}={v}" for k, v in TINY_DEFAULTS.items()),
)
flags.DEFINE_boolean(
    "pyg",
    None,
    "also time PyG's HGTConv (default: when --pyg_python imports torch_geometric; --pyg, or --pyg_python or "
    "--pyg_device given, makes PyG required: the run stops before any work if it cannot run it)",
)
flags.DEFINE_string(
    "pyg_python",
    sys.executable,
    "the Python that runs the PyG workers (e.g. another venv's; a relative path is from the current directory)",
)
flags.DEFINE_integer("pyg_check_steps", 6, "steps of the PyG 'loss falls' check, in its first worker (0: skip)")
define_graph_flags(flags)
flags.DEFINE_boolean(
    "xla_ynn",
    True,
    "XLA:CPU's YNNPACK library fusions (XLA's default); --noxla_ynn sets "
    "XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= for our workers, see README",
)
flags.DEFINE_boolean(
    "xla_cache",
    True,
    "share compiled programs between our workers through a persistent cache in "
    "the work directory (the first worker per graph compiles cold; report.py shows that time)",
)
flags.DEFINE_float(
    "max_temp_gb",
    0.0,
    "skip timing our model when XLA's temp-buffer estimate exceeds this "
    "(0: 70%% of MemAvailable); the row then says why",
)
flags.DEFINE_integer("worker_timeout", 7200, "seconds before a worker is killed (its row then says so)")
flags.DEFINE_string("profile_dir", "", "trace HGNN-IMA's step with jax.profiler into this directory")
flags.DEFINE_list(
    "profile_graphs",
    "amazon,synthetic_amazon1",
    "graphs to profile (with --profile_dir; at least one of them must be among the run's graphs)",
)
flags.DEFINE_integer("profile_steps", 3, "steps inside the profiler trace")
flags.DEFINE_integer("profile_top", 20, "ops listed per profile")
flags.DEFINE_integer("profile_seeds", 1, "vmapped seeds in the profiled step (compare 1 with --seeds)")


class Runner:
  """Starts the workers of one run and turns their rows into this run's JSON lines."""

  def __init__(self, work: pathlib.Path, run: dict, pyg_python: str):
    self.work, self.run, self.pyg_python = work, run, pyg_python
    self.jemalloc, self.failures, self._n = run["jemalloc"], [], 0
    self.base_env = dict(os.environ)
    if not FLAGS.xla_ynn:
      self.base_env["XLA_FLAGS"] = f"{self.base_env.get('XLA_FLAGS', '')} --xla_cpu_experimental_ynn_fusion_type="
    # Only the run's own cache, and only with --xla_cache (bv.worker_env drops an inherited one).
    self.xla_cache = str(work / "xla-cache") if FLAGS.xla_cache else None
    self.tmpdir = work / "tmp"
    self.tmpdir.mkdir()

  def start(
      self,
      v: bv.Variant,
      graph: dict,
      models,
      *,
      phase: str,
      rep: int,
      steps: int,
      warmup: int,
      seeds: int = 0,
      check_steps: int = 0,
      profile: dict | None = None,
  ) -> list[dict]:
    """Runs one worker for `v` on `graph`; returns its rows, completed (or one 'error' row)."""
    # unavailable variants are dropped from the matrix before
    env = bv.worker_env(v, self.base_env, self.jemalloc, xla_cache=self.xla_cache, tmpdir=str(self.tmpdir))
    self._n += 1
    spec_path, out = self.work / f"spec-{self._n}.json", self.work / f"rows-{self._n}.jsonl"
    opts = dict(layers=FLAGS.layers, hidden=FLAGS.hidden, heads=FLAGS.heads, steps=steps, warmup=warmup)
    spec = {
        "framework": v.framework,
        "graph": graph["graph"],
        "graph_file": graph["file"],
        "models": list(models),
        "opts": opts if v.framework == "pyg" else {**opts, "max_temp_gb": FLAGS.max_temp_gb},
        "seeds": seeds,
        "check_steps": check_steps,
        "profile": profile,
        "out": str(out),
        "torch_threads": int(v.threads) if v.framework == "pyg" else None,
        "torch_compile": v.framework == "pyg" and v.pyg_exec == "inductor",
        "torch_device": v.device if v.framework == "pyg" else None,
        "cpus": sorted(os.sched_getaffinity(0))[:1] if v.threads == "cpus1" else None,
    }
    spec_path.write_text(json.dumps(spec))
    python = self.pyg_python if v.framework == "pyg" else sys.executable
    meta = {
        "run_id": self.run["run_id"],
        "graph": graph["graph"],
        **graph["info"],
        "layers": FLAGS.layers,
        "hidden": FLAGS.hidden,
        "heads": FLAGS.heads,
        "steps": steps,
        "warmup": warmup,
        "framework": v.framework,
        "variant": v.name,
        "settings": v.settings(),
        "phase": phase,
        "rep": rep,
    }
    print(f"# [{phase} rep {rep}] {graph['graph']} {v.framework} {v.name}", file=sys.stderr, flush=True)
    t = time.perf_counter()
    rc, err = run_worker([python, str(WORKER), str(spec_path)], env, FLAGS.worker_timeout)
    rows = [json.loads(ln) for ln in out.read_text().splitlines()] if out.exists() else []
    if rc != 0 or not rows:
      row = {"record": "error", **meta, "returncode": rc, "wall_s": time.perf_counter() - t, "stderr_tail": err[-3000:]}
      self.failures.append(row)
      print(f"#   FAILED ({rc}); stderr tail:\n{err[-1500:]}", file=sys.stderr, flush=True)
      return [row]
    for r in rows:
      if r.get("graph_checksum") != graph["checksum"]:
        raise RuntimeError(
            f"{v.framework} worker {r.get('pid')} read a different graph from {graph['file']}: "
            f"checksum {r.get('graph_checksum')} != {graph['checksum']}; the comparison would not "
            "be fair"
        )
    return [{**meta, **r} for r in rows]


def run_graph(runner: Runner, gname: str, ours: list, pyg: list) -> list[dict]:
  """Every worker of one graph: screening (optional), repetitions, profile; returns the timed rows."""
  t = time.perf_counter()
  data = load_graph(gname, FLAGS.data_dir, FLAGS.feature_dim)
  path = data_utils.write_generic(runner.work / f"{gname}.npz", data)
  graph = {
      "graph": gname,
      "file": str(path),
      "checksum": graph_checksum(data),
      "info": graph_info(data, FLAGS.feature_dim),
  }
  del data
  print(
      f"# {gname}: {graph['info']['nodes']:,} nodes, {graph['info']['edges']:,} edges (built and written in "
      f"{time.perf_counter() - t:.1f} s; sha256 {graph['checksum'][:12]})",
      file=sys.stderr,
      flush=True,
  )
  pyg_models = sorted({PYG_PAIR[m] for m in FLAGS.models})
  models = {"jax": FLAGS.models, "pyg": pyg_models}

  def go(v, phase, rep, steps, warmup, **kw):
    rows = runner.start(v, graph, models[v.framework], phase=phase, rep=rep, steps=steps, warmup=warmup, **kw)
    for r in rows:
      emit(r, FLAGS.out)
    return rows

  if FLAGS.screen_steps:
    screened = [r for v in bv.run_order(ours, pyg, 0) for r in go(v, "screen", 0, FLAGS.screen_steps, 1)]
    keep = bv.finalists(screened, FLAGS.finalists)
    ours, pyg = [v for v in ours if v.name in keep], [v for v in pyg if v.name in keep]
    print(f"# {gname}: finalists {', '.join(v.framework + ':' + v.name for v in ours + pyg)}", file=sys.stderr)
  seeds = FLAGS.seeds if FLAGS.seeds > 1 and (gname in FLAGS.seed_graphs or FLAGS.tiny) else 0
  timed = []
  for rep in range(FLAGS.reps):
    for v in bv.run_order(ours, pyg, rep):
      if v.framework == "jax":
        extra = {"seeds": seeds} if rep < FLAGS.seed_reps and v in ours[:1] else {}
      else:
        extra = {"check_steps": FLAGS.pyg_check_steps} if rep == 0 and v in pyg[:1] else {}
      timed += go(v, "final", rep, FLAGS.steps, FLAGS.warmup, **extra)
  if FLAGS.profile_dir and gname in FLAGS.profile_graphs and ours:  # main checked that a graph and a model match
    prof = {
        "dir": FLAGS.profile_dir,
        "steps": FLAGS.profile_steps,
        "top": FLAGS.profile_top,
        "seeds": FLAGS.profile_seeds,
    }
    for r in runner.start(ours[0], graph, [], phase="profile", rep=0, steps=0, warmup=0, profile=prof):
      emit(r, FLAGS.out)
  os.unlink(path)
  return timed


def print_summary(records):
  if not any(r["record"] == "ratio" for r in records):  # no PyG row: the run's header said why; no empty table
    print("# no ours/PyG ratio: this run has no PyG row", file=sys.stderr)
    return
  print(
      "# graph                 ours model  variant                      ms  | PyG model       variant"
      "                            ms   ours/PyG",
      file=sys.stderr,
  )
  for r in records:
    if r["record"] == "ratio":
      print(
          f"# {r['graph']:<21} {r['model']:<10} {r['variant']:<24} {r['step_s'] * 1e3:8.1f} | {r['pyg_model']:<15} "
          f"{r['pyg_variant']:<30} {r['pyg_step_s'] * 1e3:8.1f}   {r['ratio']:.2f}",
          file=sys.stderr,
      )


def pyg_thread_counts(items) -> list[int]:
  return bench_cli.int_list("pyg_threads", items, low=1, example="1,2")


def check_counts() -> None:
  """The counts a run needs: a 0 that would time nothing, or screen and then time nothing, is refused."""
  at_least("reps", FLAGS.reps, 1)
  at_least("steps", FLAGS.steps, 1)
  at_least("warmup", FLAGS.warmup, 0)
  at_least("screen_steps", FLAGS.screen_steps, 0)
  if FLAGS.screen_steps:
    at_least("finalists", FLAGS.finalists, 1, " (with --screen_steps, the variants kept per model)")
  at_least("seeds", FLAGS.seeds, 0)
  at_least("seed_reps", FLAGS.seed_reps, 0)
  at_least("pyg_check_steps", FLAGS.pyg_check_steps, 0)
  at_least("worker_timeout", FLAGS.worker_timeout, 1)
  if FLAGS.profile_dir:
    at_least("profile_steps", FLAGS.profile_steps, 1)
    at_least("profile_top", FLAGS.profile_top, 1)
    at_least("profile_seeds", FLAGS.profile_seeds, 1)


def check_graph_lists(graphs: list[str]) -> None:
  """--profile_graphs and --seed_graphs: known names, and, where the work they ask for is asked, one of the run's
  graphs (a --profile_dir with none of them did nothing, without a word)."""
  profile_graphs = bv.check_choices("profile_graphs", FLAGS.profile_graphs, GRAPHS, allow_empty=True)
  seed_graphs = bv.check_choices("seed_graphs", FLAGS.seed_graphs, GRAPHS, allow_empty=True)
  run = ",".join(graphs)
  if FLAGS.profile_dir:
    if not set(profile_graphs) & set(graphs):
      raise ValueError(
          f"--profile_graphs={','.join(profile_graphs)}: names none of this run's graphs ({run}), so "
          f"--profile_dir={FLAGS.profile_dir} would profile nothing. Fix: give --profile_graphs={graphs[0]}"
      )
    if "hgnn_ima" not in FLAGS.models:
      raise ValueError(
          f"--profile_dir={FLAGS.profile_dir}: profiles HGNN-IMA's step, and --models={','.join(FLAGS.models)} "
          "leaves it out. Fix: add hgnn_ima to --models, or drop --profile_dir"
      )
  elif FLAGS["profile_graphs"].present:
    raise ValueError(
        f"--profile_graphs={','.join(FLAGS.profile_graphs)}: profiles nothing without --profile_dir. Fix: add it"
    )
  seeds_asked = FLAGS["seeds"].present or FLAGS["seed_graphs"].present
  if seeds_asked and FLAGS.seeds > 1 and not FLAGS.tiny and not set(seed_graphs) & set(graphs):
    raise ValueError(
        f"--seed_graphs={','.join(seed_graphs)}: names none of this run's graphs ({run}), so --seeds={FLAGS.seeds} "
        f"would time nothing. Fix: give --seed_graphs={graphs[0]}, or --seeds=0"
    )


def main(argv):
  del argv
  bench_subprocess.stop_on_signals("step_time.py")
  if FLAGS.tiny:  # seconds of compilation instead of a minute: the test checks the schema, not speed
    for name, value in TINY_DEFAULTS.items():
      if FLAGS[name].using_default_value:
        FLAGS[name].value = value
  graphs = ["tiny"] if FLAGS.tiny else list(FLAGS.graphs)
  try:
    bv.check_choices("graphs", FLAGS.graphs, GRAPHS)  # also under --tiny, which overrides them: a typo is named
    bv.check_choices("models", FLAGS.models, JAX_MODELS)
    allocators = bv.check_choices("allocators", FLAGS.allocators, bv.ALLOCATORS)
    ours_threads = bv.check_choices("ours_threads", FLAGS.ours_threads, bv.OURS_THREADS)
    pyg_omp = bv.check_choices("pyg_omp", FLAGS.pyg_omp, bv.OMP_POLICIES)
    pyg_exec = bv.check_choices("pyg_exec", FLAGS.pyg_exec, bv.PYG_EXEC)
    pyg_threads = sorted({1, cpu_count()}) if FLAGS.pyg_threads is None else pyg_thread_counts(FLAGS.pyg_threads)
    check_counts()
    check_graph_lists(graphs)
    out_note = check_out(FLAGS.out)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  check_graphs_readable(graphs, FLAGS.data_dir, FLAGS.feature_dim)

  # Asked for by a flag, PyG must run: its flags were silently dropped ("0 of PyG") when it could not.
  asked = ["--pyg"] * bool(FLAGS.pyg) + [
      f"--{n}={FLAGS[n].value}" for n in ("pyg_python", "pyg_device") if FLAGS[n].present
  ]
  pyg_python = resolve_python(FLAGS.pyg_python) or FLAGS.pyg_python
  if FLAGS.pyg is False:  # an explicit --nopyg wins over the other PyG flags (gpu_check.sh's dry run on a CPU)
    pyg_skipped = "disabled with --nopyg"
  else:
    pyg_skipped = pyg_availability(FLAGS.pyg_python, FLAGS.pyg_device)
    if pyg_skipped and asked:
      raise app.UsageError(f"{pyg_skipped} (PyG was asked for with {' '.join(asked)}; --nopyg runs without it)")
  ours, pyg = bv.matrix(allocators, ours_threads, pyg_threads, pyg_omp, pyg_exec, FLAGS.pyg_device)
  if pyg_skipped:
    pyg = []
  jemalloc = find_jemalloc()
  unavailable = {
      f"{v.framework}:{v.name}": why for v in ours + pyg for _, why in [bv.variant_env(v, {}, jemalloc)] if why
  }
  ours = [v for v in ours if f"jax:{v.name}" not in unavailable]
  pyg = [v for v in pyg if f"pyg:{v.name}" not in unavailable]
  if not ours:
    raise app.UsageError(f"no variant of ours can run here: {unavailable}")
  run = {
      "record": "run",
      "run_id": uuid.uuid4().hex[:12],
      "pid": os.getpid(),
      "date": now_utc(),
      "machine": machine_info(),
      "load_avg": load_avg(),
      "argv": sys.argv,
      "graphs": graphs,
      "models": list(FLAGS.models),
      "reps": FLAGS.reps,
      "steps": FLAGS.steps,
      "warmup": FLAGS.warmup,
      "screen_steps": FLAGS.screen_steps,
      "finalists": FLAGS.finalists if FLAGS.screen_steps else None,
      "matrix": {"jax": [v.name for v in ours], "pyg": [v.name for v in pyg]},
      "unavailable": unavailable,
      "pyg_skipped": pyg_skipped,
      "pyg_python": pyg_python if not pyg_skipped else None,
      "jemalloc": jemalloc,
      "scrubbed_env": [k for k in bv.SCRUBBED if k in os.environ],
  }
  if out_note:
    print(out_note, file=sys.stderr)
  emit(run, FLAGS.out)
  print(
      f"# {run['machine']['cpu']} x{run['machine']['cpu_count']}, load {run['load_avg']}; "
      f"{len(ours)} variants of ours, {len(pyg)} of PyG ({pyg_skipped or 'PyG: ' + pyg_python}); "
      f"unavailable: {unavailable or 'none'}",
      file=sys.stderr,
      flush=True,
  )

  work = bench_subprocess.temp_dir("hgnn-bench-")  # removed at the end, and on SIGTERM/SIGINT
  runner = Runner(work, run, pyg_python)
  records = []
  try:
    for gname in graphs:
      rows = run_graph(runner, gname, ours, pyg)
      for rec in bv.best_records(rows, PYG_PAIR):
        rec.update(run_id=run["run_id"], date=now_utc(), load_avg=load_avg())
        emit(rec, FLAGS.out)
        records.append(rec)
  finally:
    bench_subprocess.remove_temp_dir(work)
  print_summary(records)
  if runner.failures:
    print(f"# {len(runner.failures)} worker(s) failed; see the 'error' lines", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(one_line_usage_errors(main), flags_parser=lambda argv: parse_flags(argv, positional=False))
