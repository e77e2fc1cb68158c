"""A `jax.profiler` trace of HGNN-IMA's step, summed by XLA op and mapped to the compiled HLO.

The trace's complete (`ph == 'X'`) events are summed by name; names found in the HLO are XLA
instructions (the rest are runtime wrappers). The result is a `"record": "profile"` line: top
ops with shapes and fused ops, totals by opcode and by class (edge-/node-sized x
gather/scatter/reduce/dot/elementwise). `step.hlo.txt` is written beside the trace.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import time

import jax
from bench_env import load_avg
from bench_graphs import graph_config
from bench_ours import StepOptions, make_step, tile_seeds

from hgnn_ima_jax import state as state_lib
from hgnn_ima_jax.runtime import release_free_memory


def _hlo_index(hlo_text: str) -> dict:
  """instruction name -> (shape, opcode, text) from compiled HLO text."""
  idx = {}
  pat = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\S+(?:\s*\{[^}]*\})?)\s+([\w\-]+)\(")
  for line in hlo_text.splitlines():
    mt = pat.match(line)
    if mt:
      idx.setdefault(mt.group(1), (mt.group(2), mt.group(3), line.strip()))
  return idx


def _fused_ops(hlo_text: str) -> dict:
  """instruction name -> a short summary of the ops in the computation it calls (e.g. 'gather, multiply, reduce').

  One pass over the HLO text: computations are `name (...) -> ... {` ... `}` blocks.
  """
  bodies, current, lines = {}, None, []
  head = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
  for line in hlo_text.splitlines():
    if current is None:
      mt = head.match(line)
      if mt:
        current, lines = mt.group(1), []
    elif line.startswith("}"):
      bodies.setdefault(current, lines)
      current = None
    else:
      lines.append(line)
  out = {}
  for mt in re.finditer(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=[^\n]*?calls=%?([\w.\-]+)", hlo_text, re.M):
    if mt.group(1) in out or mt.group(2) not in bodies:
      continue
    ops = collections.Counter(re.findall(r"=\s*\S+\s+([\w\-]+)\(", "\n".join(bodies[mt.group(2)])))
    ops.pop("parameter", None)
    out[mt.group(1)] = ", ".join(f"{k}x{v}" if v > 1 else k for k, v in ops.most_common(8))
  return out


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


def profile_ours(
    data,
    batch,
    graph_name: str,
    opts: StepOptions,
    profile_dir: str,
    steps: int = 3,
    top: int = 20,
    seeds: int = 1,
    model_name: str = "hgnn_ima",
) -> dict:
  """jax.profiler trace of a model's step (`seeds` vmapped); top XLA ops by time, mapped to HLO shapes."""
  config, profile = graph_config(graph_name, model_name, [0], hidden=opts.hidden, heads=opts.heads, layers=opts.layers)
  step, model, tx, config = make_step(config, data)
  state = state_lib.init_state(model, tx, batch, [0])
  if seeds > 1:
    state = tile_seeds(jax.device_get(state), seeds)
  compiled = step.lower(state, batch).compile()
  hlo = compiled.as_text()
  for _ in range(2):
    state, _ = compiled(state, batch)
  jax.block_until_ready(state)
  out_dir = os.path.join(profile_dir, graph_name + (f"-{seeds}seeds" if seeds > 1 else "") + f"-{model_name}")
  n = steps
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
  fused = _fused_ops(hlo)
  for k, (us, _) in ops:
    by_opcode[hidx[k][1] + ("" if hidx[k][1] != "fusion" else ":" + _kind(hidx[k][2]))] += us
    by_class[_op_class(k, hidx[k], fused.get(k, ""), n_edges)] += us
  top_ops = []
  for k, (us, cnt) in ops[:top]:
    shape, opcode, line = hidx[k]
    top_ops.append(
        {
            "name": k,
            "ms_per_step": round(us / 1e3 / n, 2),
            "share": round(us / op_total, 4),
            "calls_per_step": cnt // n,
            "opcode": opcode,
            "shape": shape,
            "fused": fused.get(k, ""),
            "hlo": line[:400],
        }
    )
  del state, compiled
  release_free_memory()
  return {
      "record": "profile",
      "graph": graph_name,
      "model": model_name,
      "seeds": seeds,
      "profile": profile,
      "trace": path,
      "steps": n,
      "wall_s_per_step": wall,
      "op_ms_per_step": round(op_total / 1e3 / n, 1),
      "by_opcode_ms_per_step": {k: round(v / 1e3 / n, 1) for k, v in by_opcode.most_common(12)},
      "by_class_ms_per_step": {k: round(v / 1e3 / n, 1) for k, v in by_class.most_common()},
      "top_ops": top_ops,
      "load_avg": load_avg(),
  }


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
