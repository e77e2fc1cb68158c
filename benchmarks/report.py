r"""Markdown tables from the JSON lines of `benchmarks/step_time.py` (for benchmarks/README.md).

  python benchmarks/report.py results.jsonl [more.jsonl ...]

Prints, per file: the step table (wall median/min, CPU seconds per step, compile, memory,
ours/PyG ratios, multi-seed ratio, load average) and each profile's top ops.
"""

from __future__ import annotations

import json
import sys


def fmt_ms(s):
  return "-" if s is None else f"{s * 1e3:,.0f}"


def multi_seed_cell(ms) -> str:
  """'ratio (CPU ratio)' of an S-seed timing against one seed."""
  ms = ms or {}
  if "ratio_vs_one_seed" in ms:
    cpu = f" ({ms['cpu_ratio_vs_one_seed']:.2f})" if "cpu_ratio_vs_one_seed" in ms else ""
    return f"{ms['ratio_vs_one_seed']:.2f}{cpu}"
  return "skipped (memory)" if ms.get("skipped") else "-"


def step_table(rows):
  out = ["| graph | E | model | median ms | min ms | CPU ms/step | compile s | XLA temp MB | peak RSS MB "
         "| ours/PyG wall (CPU) | 5 seeds vmapped / 1 wall (CPU) | 5 seeds looped / 1 wall (CPU) | load avg |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    if r.get("record") != "step":
      continue
    if "skipped" in r:
      out.append(f"| {r['graph']} | {r['edges']:,} | {r['model']} | skipped: {r['skipped']} | | | "
                 f"{r.get('compile_s', 0):.0f} | {(r.get('xla_memory') or {}).get('temp_mb', '-')} | | | | | "
                 f"{r.get('load_avg_start')} |")
      continue
    vs = r.get("vs_pyg")
    vs = f"{vs['ratio']:.2f} ({vs['cpu_ratio']:.2f})" if vs and "cpu_ratio" in vs else (
        f"{vs['ratio']:.2f}" if vs else "-")
    ms, msm = multi_seed_cell(r.get("multi_seed")), multi_seed_cell(r.get("multi_seed_map"))
    cpu = fmt_ms(r.get("cpu_s_per_step"))
    temp = (r.get("xla_memory") or {}).get("temp_mb", "-")
    la = r.get("load_avg_start") or r.get("load_avg")
    la = f"{la[0]:.1f}" if la else "-"
    out.append(f"| {r['graph']} | {r['edges']:,} | {r['model']} | {fmt_ms(r['step_s_median'])} | "
               f"{fmt_ms(r['step_s_min'])} | {cpu} | {r.get('compile_s', 0):.1f} | {temp} | "
               f"{r.get('rss_peak_mb', '-'):,.0f} | {vs} | {ms} | {msm} | {la} |")
  return "\n".join(out)


def profile_tables(rows, top=12):
  out = []
  for r in rows:
    if r.get("record") != "profile":
      continue
    out.append(f"\n**{r['graph']}** ({r['op_ms_per_step']:,.0f} ms of XLA ops per step; wall "
               f"{r['wall_s_per_step'] * 1e3:,.0f} ms under the profiler; load {r['load_avg'][0]:.1f})\n")
    if r.get("by_class_ms_per_step"):
      out.append("by class (ms/step): " + ", ".join(f"{k} {v:,.0f}" for k, v in r["by_class_ms_per_step"].items()))
      out.append("")
    out.append("| ms/step | share | op | output shape | fused ops |")
    out.append("|---|---|---|---|---|")
    for op in r["top_ops"][:top]:
      out.append(f"| {op['ms_per_step']:,.1f} | {op['share'] * 100:.1f}% | `{op['name']}` | `{op['shape'].split('{')[0]}` "
                 f"| {op['fused']} |")
  return "\n".join(out)


def main(paths):
  for p in paths:
    with open(p) as f:
      rows = [json.loads(ln) for ln in f if ln.strip()]
    first = next((r for r in rows if r.get("record") == "step"), {})
    print(f"### {p}\n")
    if first:
      v = first["versions"]
      print(f"{first['machine']['cpu']} x{first['machine']['cpu_count']}, {first['machine']['memory_gb']} GB; "
            f"jax {v['jax']}, flax {v['flax']}; XLA_FLAGS='{first.get('xla_flags', '')}'; "
            f"PyG {(first.get('pyg_versions') or {}).get('torch_geometric', '-')} / torch "
            f"{(first.get('pyg_versions') or {}).get('torch', '-')}; {first['date']}\n")
    print(step_table(rows))
    print(profile_tables(rows))
    print()


if __name__ == "__main__":
  main(sys.argv[1:])
