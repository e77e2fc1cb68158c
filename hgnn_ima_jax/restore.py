"""A finished run, ready to predict and embed: `load_checkpoint(workdir, data)` → `LoadedRun`.

Above training: it rebuilds the model the run trained and restores each seed's selected
parameters from checkpoints/best. The library does not load datasets; the caller passes the
graph (`experiments.runs.load_run` loads the run's own dataset from its saved config).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import flax.linen as nn
import jax
import jraph
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from hgnn_ima_jax.checkpointing import orbax_manager
from hgnn_ima_jax.graph import MMHN
from hgnn_ima_jax.layout import check_graph_layout
from hgnn_ima_jax.run_dir import read_config
from hgnn_ima_jax.state import create_model, make_batch


@dataclasses.dataclass
class LoadedRun:
  """A trained run, ready to predict and embed: the model, every seed's parameters and the graph."""

  model: nn.Module
  params: Any  # stacked: leading axis = seeds
  batch_stats: Any
  config: ml_collections.ConfigDict
  data: MMHN
  graph: jraph.GraphsTuple
  seeds: list[int]
  results: dict

  def variables(self, seed: int | None = None) -> dict:
    """Flax variables of one seed (default: the first), for `model.apply(variables, graph)`."""
    i = 0 if seed is None else self.seeds.index(seed)
    take = lambda t: jax.tree.map(lambda x: x[i], t)
    v = {"params": take(self.params)}
    if jax.tree.leaves(self.batch_stats):
      v["batch_stats"] = take(self.batch_stats)
    return v

  def predict(self, seed: int | None = None) -> np.ndarray:
    """Predicted class of every target node (eval mode)."""
    check_graph_layout(self.model.schema, self.graph)  # `graph` is a field a user can replace
    out = self.model.apply(self.variables(seed), self.graph, train=False)
    return np.asarray(out.logits.argmax(-1))

  def embed(self, seed: int | None = None) -> dict[str, np.ndarray]:
    """Eval-mode embeddings of the target nodes: 'fused' (N, d) Z, 'modalities' (N, M, d),
    'fusion_weights' (N, M) δ, and 'nodes' (all nodes, (N_all, M, d))."""
    check_graph_layout(self.model.schema, self.graph)
    out = self.model.apply(self.variables(seed), self.graph, train=False, return_embeddings=True)
    return {k: np.asarray(v) for k, v in out.embeddings.items()}


def load_checkpoint(workdir: str, data: MMHN) -> LoadedRun:
  """Loads a run written by `train_and_evaluate`: model, best parameters, config, graph.

  Args:
    workdir: the run's directory.
    data: the graph to predict on: the run's dataset (`data_utils.load_for_config(read_config(workdir))`,
      which `experiments.runs.load_run` does for you) or another graph of the same schema.
  """
  config = read_config(workdir)
  model = create_model(config, data.schema)
  batch = make_batch(data)
  manager = orbax_manager(os.path.join(os.path.abspath(workdir), "checkpoints", "best"))
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"{workdir}/checkpoints/best has no checkpoint: the run did not finish; "
                            "resume it with experiments/train.py --resume --workdir=" + workdir)
  meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  seeds = [int(s) for s in meta["seeds"]]
  variables = jax.eval_shape(lambda: model.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)},
                                                batch.graph, train=False))
  stack = lambda t: jax.tree.map(lambda x: jax.ShapeDtypeStruct((len(seeds),) + x.shape, x.dtype), t)
  target = {"params": stack(variables["params"]), "batch_stats": stack(variables.get("batch_stats", {}))}
  tree = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
  manager.close()
  return LoadedRun(model, tree["params"], tree.get("batch_stats", {}), config, data, batch.graph, seeds,
                   meta["results"])
