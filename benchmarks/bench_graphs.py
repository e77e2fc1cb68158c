"""The benchmark's graphs: built once, written in the generic format, read back by every worker.

Both frameworks train on the same arrays: the orchestrator builds the graph (seeded), writes
it with `data_utils.write_generic`, and each worker process reads that file; every worker
records `graph_checksum` of what it read, and the orchestrator checks it against its own.
"""

from __future__ import annotations

import os
import pathlib
import sys

from hgnn_ima_jax.data_utils.checksum import graph_checksum  # noqa: F401 (the workers import it from here)
from hgnn_ima_jax.data_utils.synthetic import SCALED_SYNTHETIC, make_synthetic, scaled_synthetic_kwargs

REAL_GRAPHS = ("douban", "imdb", "amazon")
SYNTHETIC_GRAPHS = (*SCALED_SYNTHETIC, "tiny")
GRAPHS = REAL_GRAPHS + SYNTHETIC_GRAPHS
JAX_MODELS = ("hgnn_ima", "hgt_early", "hgt_late")
# Our model -> the PyG model it is compared with.
PYG_PAIR = {"hgnn_ima": "pyg_hgt_late", "hgt_late": "pyg_hgt_late", "hgt_early": "pyg_hgt_early"}


REPO = pathlib.Path(__file__).resolve().parents[1]


def define_graph_flags(flags):
  """The flags of the graph and model shape that step_time.py and step_rusage.py share, and --out."""
  flags.DEFINE_string("out", "", "append the JSON lines to this JSONL file too")
  flags.DEFINE_string(
      "data_dir",
      os.environ.get("HGNN_IMA_DATA_DIR", str(REPO.parent / "shared" / "datasets")),
      "directory with douban/, imdb/, amazon/",
  )
  flags.DEFINE_integer("feature_dim", 512, "width of the generated inputs of both modalities")
  flags.DEFINE_integer("layers", 3, "propagation layers K")
  flags.DEFINE_integer("hidden", 64, "hidden width d")
  flags.DEFINE_integer("heads", 8, "attention heads H")


def synthetic_kwargs(name: str, feature_dim: int) -> dict:
  """`make_synthetic` overrides of a synthetic benchmark graph: the `--dataset=` graphs of the same name
  (`data_utils.synthetic.SCALED_SYNTHETIC`), or 'tiny'."""
  if name == "tiny":  # DOUBAN-like: 3 node types, 4 relations, a target type with 100 nodes
    return dict(scale=0.05, feature_dim=feature_dim, modality_dims=())
  return scaled_synthetic_kwargs(name, feature_dim)


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
    return make_synthetic(seed=seed, **synthetic_kwargs(name, feature_dim)).validate()
  raise ValueError(f"unknown graph {name!r}; choose from {GRAPHS}")


def load_graph_or_exit(name: str, data_dir: str, feature_dim: int, seed: int = 0):
  """`load_graph` for a script: a dataset that cannot be read (missing or malformed files) is one line on
  stderr naming the files and the fix, exit code 2, not a traceback."""
  from hgnn_ima_jax.data_utils import DatasetError

  try:
    return load_graph(name, data_dir, feature_dim, seed)
  except DatasetError as e:
    print(f"error: --graph(s) {name}: {e}", file=sys.stderr)
    sys.exit(2)


def check_graphs_readable(names, data_dir: str, feature_dim: int) -> None:
  """Before a script's first worker or compilation: every real graph among `names` loads (0.2-0.6 s each),
  or the script stops with `load_graph_or_exit`'s one line, instead of failing after the graphs before it ran."""
  for name in names:
    if name in REAL_GRAPHS:
      load_graph_or_exit(name, data_dir, feature_dim)


def graph_config(graph_name: str, model_name: str, seeds, *, hidden: int, heads: int, layers: int):
  """(the graph's training profile with the benchmark's width/depth, the profile's name)."""
  from hgnn_ima_jax.experiments.configs import get_config

  profile = graph_name if graph_name in REAL_GRAPHS else ("synthetic" if graph_name == "tiny" else "amazon1")
  c = get_config(profile)
  c.model_name = model_name
  c.model.hidden, c.model.heads, c.model.num_layers = hidden, heads, layers
  c.seeds = tuple(seeds)
  return c, profile


def graph_info(data, feature_dim: int) -> dict:
  s = data.schema
  return {
      "nodes": s.total_nodes,
      "edges": s.total_edges,
      "node_types": s.num_node_types,
      "relations": s.num_relations,
      "classes": s.num_classes,
      "modalities": list(s.modalities),
      "feature_dim": feature_dim,
      "train_nodes": int(len(data.splits["train"])),
  }
