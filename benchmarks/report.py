r"""Markdown tables from the JSON lines of `benchmarks/step_time.py` (for benchmarks/README.md).

  python benchmarks/report.py results.jsonl [more.jsonl ...]

Per file: the run (date, machine, load, variant matrix), the ratio table (each framework at
its best variant: the minimum over repetitions of the median step), the step table at those
variants (CPU time, the largest compile time of any worker, memory, multi-seed ratios), every variant's figure,
the multi-seed ratios, each profile's top ops, and the workers that failed.
"""

from __future__ import annotations

import collections
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from bench_graphs import PYG_PAIR  # noqa: E402
from bench_variants import best_records  # noqa: E402


def fmt_ms(s):
  if s is None:
    return "-"
  return f"{s * 1e3:.1f}" if s < 0.1 else f"{s * 1e3:,.0f}"


def md_table(header: list[str], rows) -> str:
  """A Markdown table: the column titles, the separator, one line a row of cells."""
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def multi_seed_cell(ms) -> str:
  """'ratio (CPU ratio)' of an S-seed timing against one seed."""
  ms = ms or {}
  if "ratio_vs_one_seed" in ms:
    cpu = f" ({ms['cpu_ratio_vs_one_seed']:.2f})" if "cpu_ratio_vs_one_seed" in ms else ""
    return f"{ms['ratio_vs_one_seed']:.2f}{cpu}"
  return "skipped (memory)" if ms.get("skipped") else "-"


def run_header(run: dict, steps) -> str:
  m, matrix = run.get("machine", {}), run.get("matrix", {})
  jax_v = next((r["versions"] for r in steps if r["framework"] == "jax"), {})
  pyg_v = next((r["versions"] for r in steps if r["framework"] == "pyg"), {})
  return (
      f"{run.get('date')}, {m.get('cpu')} x{m.get('cpu_count')}, {m.get('memory_gb')} GB, load at start "
      f"{run.get('load_avg')}; jax {jax_v.get('jax', '-')}, flax {jax_v.get('flax', '-')}; torch "
      f"{pyg_v.get('torch', '-')}, torch_geometric {pyg_v.get('torch_geometric', '-')}; {run.get('reps')} "
      f"repetition(s) x {run.get('steps')} steps (warm-up {run.get('warmup')}); variants: ours "
      f"{', '.join(matrix.get('jax', []))}; PyG {', '.join(matrix.get('pyg', [])) or '-'}"
      + (f"; unavailable: {', '.join(run['unavailable'])}" if run.get("unavailable") else "")
      + (f"; PyG skipped: {run['pyg_skipped']}" if run.get("pyg_skipped") else "")
  )


def ratio_table(records, edges) -> str:
  rows = []
  for r in records:
    if r["record"] == "ratio":
      cpu = f" ({r['cpu_ratio']:.2f})" if r.get("cpu_ratio") is not None else ""
      rows.append(
          [
              r["graph"],
              f"{edges.get(r['graph'], 0):,}",
              r["model"],
              f"`{r['variant']}`",
              fmt_ms(r["step_s"]),
              r["pyg_model"],
              f"`{r['pyg_variant']}`",
              fmt_ms(r["pyg_step_s"]),
              f"{r['ratio']:.2f}{cpu}",
          ]
      )
  if not rows:  # a run without PyG (--nopyg, no torch): a header with no rows read as a broken table
    return "No ours/PyG ratio: this run has no PyG row (the header says why)."
  return md_table(
      ["graph", "E", "ours", "best settings", "ms", "PyG", "best settings", "ms", "ours/PyG wall (CPU)"], rows
  )


def step_table(records, steps, every_step) -> str:
  """Each (graph, framework, model) at its best variant: the repetition that gave the figure.

  The compile time shown is not that repetition's: it is the largest over every worker of the graph and model
  (`every_step`, screening included, all variants), hence the heading. With step_time.py's shared XLA cache
  (--xla_cache) only the first worker per graph and XLA_FLAGS compiles cold (an `eigen1` variant's flags are
  another cache key) and the others load the program, so the largest is a cold compile; under --noxla_cache every
  worker compiles cold and the largest is the slowest of them.
  """
  cold = collections.defaultdict(float)
  for r in every_step:
    cold[(r["graph"], r["model"])] = max(cold[(r["graph"], r["model"])], r.get("compile_s") or 0.0)
  rows = []
  for b in records:
    if b["record"] != "best":
      continue
    r = next(
        r
        for r in steps
        if (r["graph"], r["framework"], r["model"], r["variant"])
        == (b["graph"], b["framework"], b["model"], b["best_variant"])
        and r["step_s_median"] == b["step_s"]
    )
    la = f"{r['load_avg_start'][0]:.1f}" if r.get("load_avg_start") else "-"
    rows.append(
        [
            b["graph"],
            b["model"],
            f"`{b['best_variant']}`",
            fmt_ms(b["step_s"]),
            fmt_ms(r.get("cpu_s_per_step")),
            f"{cold[(b['graph'], b['model'])]:.1f}",
            (r.get("xla_memory") or {}).get("temp_mb", "-"),
            f"{r.get('rss_peak_mb', 0):,.0f}",
            (r.get("device_memory") or {}).get("peak_bytes_in_use", "-"),
            bandwidth_cell(r.get("bandwidth")),
            la,
        ]
    )
  header = [
      "graph",
      "model",
      "best settings",
      "median ms (min of reps)",
      "CPU ms/step",
      "compile s (cold, max of workers)",
  ]
  return md_table(header + ["XLA temp MB", "peak RSS MB", "device peak MB", "XLA GB/s (of peak)", "load avg"], rows)


def bandwidth_cell(bw) -> str:
  """XLA's bytes accessed per second of the median step, in GB/s, with its share of the device's peak when known."""
  if not bw:
    return "-"
  share = f" ({bw['peak_share'] * 100:.0f}%)" if bw.get("peak_share") is not None else ""
  return f"{bw['bytes_per_s'] / 1e9:,.1f}{share}"


def seed_table(steps) -> str:
  """S seeds in one program against one seed, both timed in the same worker (our first variant)."""
  rows = []
  for r in steps:
    if "multi_seed" in r:
      v, m = r["multi_seed"], r["multi_seed_map"]
      rows.append(
          [
              r["graph"],
              f"`{r['variant']}`",
              r.get("rep", 0),
              v["seeds"],
              fmt_ms(r["step_s_median"]),
              fmt_ms(v.get("step_s_median")),
              multi_seed_cell(v),
              fmt_ms(m.get("step_s_median")),
              multi_seed_cell(m),
          ]
      )
  header = ["graph", "settings", "rep", "seeds", "1 seed ms", "vmapped ms", "/ 1 seed wall (CPU)", "looped ms"]
  return md_table(header + ["/ 1 seed wall (CPU)"], rows) if rows else ""


def variant_table(steps) -> str:
  """Every variant's figure (min over repetitions of the median step) and how many repetitions it had."""
  medians = collections.defaultdict(list)
  for r in steps:
    medians[(r["graph"], r["framework"], r["model"], r["phase"], r["variant"])].append(r["step_s_median"])
  rows = [
      [g, fw, m, ph, f"`{v}`", fmt_ms(min(xs)), len(xs)]
      for (g, fw, m, ph, v), xs in sorted(medians.items(), key=lambda kv: (kv[0][:4], min(kv[1])))
  ]
  return md_table(["graph", "framework", "model", "phase", "settings", "ms (min of medians)", "repetitions"], rows)


def profile_tables(rows, top=12) -> str:
  out = []
  for r in rows:
    if r.get("record") != "profile":
      continue
    out.append(
        f"\n**{r['graph']}** ({r['op_ms_per_step']:,.0f} ms of XLA ops per step; wall "
        f"{r['wall_s_per_step'] * 1e3:,.0f} ms under the profiler; load {r['load_avg'][0]:.1f})\n"
    )
    if r.get("by_class_ms_per_step"):
      out.append("by class (ms/step): " + ", ".join(f"{k} {v:,.0f}" for k, v in r["by_class_ms_per_step"].items()))
      out.append("")
    ops = [
        (
            f"{op['ms_per_step']:,.1f}",
            f"{op['share'] * 100:.1f}%",
            f"`{op['name']}`",
            f"`{op['shape'].split('{')[0]}`",
            op["fused"],
        )
        for op in r["top_ops"][:top]
    ]
    out.append(md_table(["ms/step", "share", "op", "output shape", "fused ops"], ops))
  return "\n".join(out)


def report(rows) -> str:
  """The markdown for one file's rows (one or more runs)."""
  parts = []
  for run in [r for r in rows if r.get("record") == "run"] or [{}]:
    mine = [r for r in rows if r.get("run_id") == run.get("run_id")] if run else rows
    steps = [r for r in mine if r.get("record") == "step" and "step_s_median" in r]
    final = [r for r in steps if r.get("phase") == "final"]
    records = best_records(final, PYG_PAIR)
    edges = {r["graph"]: r["edges"] for r in steps}
    parts += [
        run_header(run, steps),
        "",
        ratio_table(records, edges),
        "",
        step_table(records, final, steps),
        "",
        seed_table(final),
        "",
        variant_table(steps),
        profile_tables(mine),
    ]
    skipped = [r for r in mine if r.get("record") == "step" and "skipped" in r]
    errors = [r for r in mine if r.get("record") == "error"]
    parts += [f"\nskipped: {r['graph']} {r['model']} `{r['variant']}`: {r['skipped']}" for r in skipped]
    parts += [
        f"\nFAILED: {r['graph']} {r['framework']} `{r['variant']}` rep {r['rep']}: exit {r['returncode']}"
        for r in errors
    ]
  return "\n".join(parts)


USAGE = "usage: python benchmarks/report.py results.jsonl [more.jsonl ...]"


# The records step_time.py writes; a file with neither a run nor a step line is another script's (or none).
STEP_TIME_RECORDS = ("run", "step")


def read_rows(path: str) -> list[dict]:
  """The JSON lines of one step_time.py output; a missing or malformed file, a line that is not a JSON object,
  or a file without step_time.py rows is one line (with the file's line number) and exit 1."""
  fix = "Fix: give the JSON-lines --out file of step_time.py"
  rows = []
  try:
    with open(path) as f:
      for n, ln in enumerate(f, 1):  # the file's line: the decoder's lineno counts within one line
        if not ln.strip():
          continue
        try:
          row = json.loads(ln)
        except json.JSONDecodeError as e:
          raise SystemExit(f"error: {path}: line {n} is not JSON ({e.msg}). {fix}") from None
        if not isinstance(row, dict):
          raise SystemExit(f"error: {path}: line {n} is not a JSON object ({type(row).__name__}). {fix}")
        rows.append(row)
  except OSError as e:
    raise SystemExit(f"error: {path}: cannot be read ({e.strerror}). {fix}") from None
  except UnicodeDecodeError as e:
    raise SystemExit(f"error: {path}: is not text ({e.reason}). {fix}") from None
  if not any(r.get("record") in STEP_TIME_RECORDS for r in rows):
    raise SystemExit(f"error: no step_time.py rows in {path} (no 'run' or 'step' line). {fix}")
  return rows


def main(paths):
  if not paths or any(p in ("-h", "--help", "-help") for p in paths):
    print(__doc__.strip() if paths else USAGE, file=sys.stdout if paths else sys.stderr)
    raise SystemExit(0 if paths else 1)
  files = [(p, read_rows(p)) for p in paths]  # every file checked before the first table is printed
  for p, rows in files:
    print(f"### {p}\n")
    print(report(rows))
    print()


if __name__ == "__main__":
  main(sys.argv[1:])
