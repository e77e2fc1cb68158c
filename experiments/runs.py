"""A finished training run, from its directory alone: `load_run(workdir)` for notebooks and scripts."""

from __future__ import annotations

import os

from hgnn_ima_jax.data_utils import load_for_config
from hgnn_ima_jax.graph import MMHN
from hgnn_ima_jax.restore import LoadedRun, SchemaMismatchError, load_checkpoint
from hgnn_ima_jax.run_dir import read_config, read_results, read_schema


def load_run(workdir: str, data: MMHN | None = None, *, unfinished: bool = False) -> LoadedRun:
  """`restore.load_checkpoint` on the run's own dataset, rebuilt from its saved config (pass `data` to skip that);
  `unfinished`: a run without its final checkpoint opens each seed's best epoch so far.

  Raises:
    SchemaMismatchError: the config rebuilds a graph of other sizes than the one the run trained on (a graph
      passed to `train_and_evaluate` that is not the config's dataset, e.g. another synthetic scale).
  """
  if data is None:
    _check_trained_on_its_dataset(workdir)
    data = load_for_config(read_config(workdir))
    _check_rebuilt_sizes(workdir, data)
  return load_checkpoint(workdir, data, unfinished=unfinished)


def _check_trained_on_its_dataset(workdir: str) -> None:
  """A run given a graph that is not its config's dataset (results.json's `graph_source`) cannot rebuild it: one line
  that asks for the graph, where the rebuilt one failed on its schema or sizes."""
  path = os.path.join(workdir, "results.json")
  if not os.path.exists(path):
    return
  results = read_results(workdir)
  if "graph_source" in results:
    raise SchemaMismatchError(
        f"{workdir}: trained on graph {results.get('dataset')!r} ({results['graph_source']}) given to "
        f"train_and_evaluate, not on its config's dataset {read_config(workdir).get('dataset')!r}, which it would "
        "rebuild. Fix: pass that graph, load_run(workdir, data=graph)"
    )


def _check_rebuilt_sizes(workdir: str, data: MMHN) -> None:
  """The rebuilt graph has the training graph's node and edge counts (schema.json), or one line says which differ.

  A schema check alone allows other sizes (predicting on new nodes is the point of it); here the graph is meant
  to be the one the run trained on, and predictions on another would look like the run's own.
  """
  saved, now = read_schema(workdir), data.schema
  if saved is None or (saved.node_types, saved.relations) != (now.node_types, now.relations):
    return  # a run from before schema.json, or another schema: load_checkpoint names what differs
  diffs = [
      f"{t} {b:,} nodes (trained on {a:,})"
      for t, a, b in zip(saved.node_types, saved.num_nodes, now.num_nodes)
      if a != b
  ]
  diffs += [
      f"{r.name} {b:,} edges (trained on {a:,})"
      for r, a, b in zip(saved.relations, saved.num_edges, now.num_edges)
      if a != b
  ]
  if diffs:
    raise SchemaMismatchError(
        f"{workdir}: its config.json rebuilds dataset {data.source} with other sizes than the graph it trained on: "
        f"{'; '.join(diffs[:4])}{' ...' if len(diffs) > 4 else ''}. Fix: pass the training graph as data= "
        "(train_and_evaluate was given a graph that is not its config's dataset)"
    )
