"""A finished run, ready to predict and embed: `load_checkpoint(workdir)` → `LoadedRun`.

Above training: it restores each seed's selected parameters from checkpoints/best and rebuilds the
model the run trained. Parameters do not depend on node or edge counts, so a run predicts on any
graph of its schema (same node types, relations, modalities, feature widths and classes; other
sizes), e.g. the training graph with new products and their edges added:

  run = load_checkpoint("runs/first")                 # no dataset needed
  pred = run.predict(graph=new_graph, nodes=ids)      # classes of target nodes `ids` of new_graph
  emb = run.embed(graph=new_graph, chunk_size=4096)   # layer-wise: graphs too big for one forward

A graph of another schema is one error naming what differs. The library does not load datasets:
pass the graph (`experiments.runs.load_run(workdir)` also rebuilds the run's own dataset).

A run still training, or stopped before its end, has no checkpoints/best yet: `load_checkpoint(workdir,
unfinished=True)` opens each seed's best epoch so far from its latest checkpoint instead (results say
`finished: False`); without it such a run is an error, not a silent substitute.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from hgnn_ima_jax.checkpointing import CheckpointMismatchError, check_config_unchanged, orbax_manager
from hgnn_ima_jax.graph import MMHN, Schema, schema_differences
from hgnn_ima_jax.inference import LayerwiseInference
from hgnn_ima_jax.layout import check_graph_layout
from hgnn_ima_jax.run_dir import read_config, read_schema
from hgnn_ima_jax.state import create_model


class SchemaMismatchError(ValueError):
  """A graph whose schema differs from the run's (one line: what differs, and the fix)."""


@dataclasses.dataclass
class LoadedRun:
  """A trained run: every seed's selected parameters, the config, the training schema (and graph, if given)."""

  params: Any  # stacked: leading axis = seeds
  batch_stats: Any
  config: ml_collections.ConfigDict
  schema: Schema  # the training graph's
  seeds: list[int]
  results: dict
  data: MMHN | None = None  # the default graph of predict/embed

  @property
  def model(self) -> nn.Module:
    """The model on the training graph's schema."""
    return create_model(self.config, self.schema)

  @property
  def graph(self):
    """The default graph as a `jraph.GraphsTuple` (None without `data`)."""
    return None if self.data is None else self.data.to_graphs_tuple()

  def variables(self, seed: int | None = None) -> dict:
    """Flax variables of one seed (default: the first), for `model.apply(variables, graph)`."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
      hint = " (a graph goes in as graph=)" if isinstance(seed, MMHN) else ""
      raise TypeError(
          f"seed: a {type(seed).__name__}, expected one of the run's seeds {list(self.seeds)}{hint}. "
          "Fix: pass seed=<int> or None (the first), and the graph as graph=<MMHN>"
      )
    if seed is not None and seed not in self.seeds:
      raise ValueError(
          f"seed={seed!r}: this run trained seeds {list(self.seeds)}. Fix: pass one of them (or None: the first)"
      )
    i = 0 if seed is None else self.seeds.index(seed)
    take = lambda t: jax.tree.map(lambda x: np.asarray(x)[i], t)
    v = {"params": take(self.params)}
    if jax.tree.leaves(self.batch_stats):
      v["batch_stats"] = take(self.batch_stats)
    return v

  def check_graph(self, graph: MMHN | None) -> MMHN:
    """The graph to predict on (default: the run's), checked against the training schema."""
    graph = self.data if graph is None else graph
    if graph is None:
      raise ValueError(
          "graph=None and the run was loaded without data. Fix: pass graph=<an MMHN of the run's "
          "schema>, or open the run with experiments.runs.load_run(workdir)"
      )
    if not isinstance(graph, MMHN):
      raise TypeError(f"graph: {type(graph).__name__}, expected an MMHN. Fix: pass a dataset (the loaders return one)")
    if graph is not self.data:  # the run's own graph was checked when it was loaded
      graph.validate(labels=False)  # NaN features, short feature rows, edges out of range: one line each
    diffs = schema_differences(self.schema, graph.schema)
    if diffs:
      raise SchemaMismatchError(
          f"graph {graph.source}: its schema differs from the run's: {'; '.join(diffs)}. "
          "Fix: predict on a graph with the run's node types, relations, modalities and "
          "feature widths (sizes may differ)"
      )
    return graph

  def outputs(
      self, seed: int | None = None, *, graph: MMHN | None = None, chunk_size: int | None = None, devices=None
  ) -> dict:
    """Eval-mode outputs of `graph`: 'logits' (N, C), 'fused' (N, d) Z and 'fusion_weights' (N, M) δ of every
    target node; with a full-graph forward (no chunk_size) also 'modalities' (N, M, d) and 'nodes' (every
    node, (N_all, M, d)).

    chunk_size: None runs one full-graph forward; an int runs exact layer-wise inference over chunks of
    that many receivers (`inference.LayerwiseInference`: bounded memory, for graphs too big for one forward).
    devices: with chunk_size, the devices the chunks are dealt to (e.g. `jax.devices()`); None: the default one.
    """
    if devices is not None and chunk_size is None:
      raise ValueError(
          "devices= needs chunk_size=: only layer-wise inference is split over devices. Fix: add chunk_size"
      )
    variables = self.variables(seed)  # first: a graph passed where the seed goes is named as such
    graph = self.check_graph(graph)
    model = create_model(self.config, graph.schema)
    if chunk_size is not None:
      engine = LayerwiseInference(model, variables, graph, chunk_size=chunk_size, devices=devices)
      r = engine.run(graph, compute_att_loss=False)
      return {"logits": r.logits, "fused": r.fused, "fusion_weights": r.fusion_weights}
    gt = graph.to_graphs_tuple()
    check_graph_layout(graph.schema, gt)
    out = model.apply(variables, gt, train=False, return_embeddings=True)
    return {"logits": np.asarray(out.logits), **{k: np.asarray(v) for k, v in out.embeddings.items()}}

  def predict(self, seed: int | None = None, *, nodes=None, **where) -> np.ndarray:
    """Predicted class of the target nodes `nodes` (local ids; default all); `where`: `outputs`' graph=,
    chunk_size=, devices= (default: the run's graph, one full-graph forward)."""
    pred = self.outputs(seed, **where)["logits"].argmax(-1)
    return pred if nodes is None else pred[self._nodes(nodes, len(pred))]

  def embed(self, seed: int | None = None, *, nodes=None, **where) -> dict[str, np.ndarray]:
    """Eval-mode embeddings of the target nodes: 'fused' (N, d) Z, 'fusion_weights' (N, M) δ, and with a
    full-graph forward also 'modalities' (N, M, d) and 'nodes' (every node, (N_all, M, d)); `where` as `predict`'s."""
    out = self.outputs(seed, **where)
    out.pop("logits")
    if nodes is None:
      return out
    idx = self._nodes(nodes, len(out["fused"]))
    return {k: (v if k == "nodes" else v[idx]) for k, v in out.items()}

  @staticmethod
  def _nodes(nodes, n: int) -> np.ndarray:
    idx = np.asarray(nodes)
    if idx.ndim == 1 and idx.size == 0:  # np.asarray([]) is float64: no nodes asked, none returned
      idx = idx.astype(np.int64)
    if idx.dtype == bool and idx.shape == (n,):  # a mask over the target nodes
      return np.flatnonzero(idx)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or (len(idx) and (idx.min() < 0 or idx.max() >= n)):
      shown = repr(nodes) if idx.size <= 8 else f"an array of shape {idx.shape}, dtype {idx.dtype}"
      raise ValueError(
          f"nodes={shown}: expected a 1-D array of target-node ids in 0..{n - 1} (or a boolean mask of length {n}). "
          "Fix: pass local ids of the graph's target type"
      )
    return idx


def load_checkpoint(workdir: str, data: MMHN | None = None, *, unfinished: bool = False) -> LoadedRun:
  """Loads a run written by `train_and_evaluate`: every seed's best parameters, the config and the schema.

  Args:
    workdir: the run's directory.
    data: optional default graph of `predict`/`embed` (the run's dataset, or another graph of its schema).
      Needed only for runs written before schema.json existed.
    unfinished: for a run without checkpoints/best (interrupted, or still training): each seed's best epoch
      so far, from checkpoints/latest. Ignored once the run has finished.
  """
  if data is not None:  # before anything is restored
    if not isinstance(data, MMHN):
      raise TypeError(f"data: a {type(data).__name__}, expected an MMHN. Fix: pass a dataset (the loaders return one)")
    data.validate(labels=False)
  config = read_config(workdir)
  schema = read_schema(workdir)
  if schema is None:
    if data is None:
      raise FileNotFoundError(
          f"{workdir}/schema.json not found (a run from an older version). Fix: pass data=<the "
          "run's dataset> (experiments.runs.load_run(workdir) loads it)"
      )
    schema = data.schema
  if data is not None and schema_differences(schema, data.schema):  # before the parameters are restored
    raise SchemaMismatchError(
        f"data {data.source}: its schema differs from the run's: "
        f"{'; '.join(schema_differences(schema, data.schema))}. Fix: pass a graph of the run's "
        "schema"
    )
  manager = orbax_manager(os.path.join(os.path.abspath(workdir), "checkpoints", "best"))
  step = manager.latest_step()
  if step is None and not unfinished:
    if os.path.isfile(os.path.join(workdir, "results.json")):  # --resume would only print its results (an audit)
      raise FileNotFoundError(
          f"{workdir}/checkpoints/best has no checkpoint, though the run finished (results.json). Fix: put back "
          "checkpoints/best, or open each seed's best epoch from its latest checkpoint with "
          "load_checkpoint(workdir, unfinished=True)"
      )
    raise FileNotFoundError(
        f"{workdir}/checkpoints/best has no checkpoint: the run did not finish. Fix: resume it "
        f"with experiments/train.py --resume --workdir={workdir}, or open each seed's best epoch so far with "
        "load_checkpoint(workdir, unfinished=True)"
    )
  model = create_model(config, schema)
  # Abstract init on a graph of the schema's shapes (nothing is computed): the tree Orbax restores into.
  graph = jax.eval_shape(lambda: _shape_graph(schema))
  variables = jax.eval_shape(
      lambda g: model.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)}, g, train=False), graph
  )
  if step is None:
    manager.close()
    tree, seeds, results = _best_so_far(workdir, config, variables)
  else:
    with _reading(
        manager,
        f"{workdir}/checkpoints/best/{step}",
        "it is damaged, or its config.json is not the one the run wrote. Fix: put back the run's files, or open "
        "the best epoch of its latest checkpoint with load_checkpoint(workdir, unfinished=True)",
    ):
      meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
      # an edited config.json builds another model, which Orbax restored into without a word (an audit)
      check_config_unchanged(f"{workdir}/checkpoints/best", step, meta, config)
      seeds, results = [int(s) for s in meta["seeds"]], meta["results"]
      stack = lambda t: jax.tree.map(lambda x: jax.ShapeDtypeStruct((len(seeds),) + x.shape, x.dtype), t)
      target = {"params": stack(variables["params"]), "batch_stats": stack(variables.get("batch_stats", {}))}
      tree = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
  return LoadedRun(tree["params"], tree.get("batch_stats", {}), config, schema, seeds, results, data)


def _best_so_far(workdir: str, config, variables) -> tuple[dict, list[int], dict]:
  """(parameters, seeds, results) of each seed's best epoch so far, from the newest checkpoints/latest."""
  manager = orbax_manager(os.path.join(os.path.abspath(workdir), "checkpoints", "latest"))
  step = manager.latest_step()
  if step is None:
    manager.close()
    raise FileNotFoundError(
        f"{workdir}/checkpoints has no checkpoint: the run stopped before its first one. Fix: train it again"
    )
  # The saved training state as nested dicts (its dataclass fields by name); the seed axis may be padded to
  # the devices, so only the config's seeds are kept.
  with _reading(
      manager,
      f"{workdir}/checkpoints/latest/{step}",
      "it is damaged. Fix: move that step out of checkpoints/latest to open the one before it, if any",
  ):
    saved = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
    )
    check_config_unchanged(f"{workdir}/checkpoints/latest", step, saved["meta"], config)
  state, seeds = saved["state"], [int(s) for s in config.seeds]
  epochs = np.asarray(state["best_epoch"])[: len(seeds)]
  if (epochs < 0).any():
    raise FileNotFoundError(
        f"{workdir}: seed(s) {[s for s, e in zip(seeds, epochs) if e < 0]} have no evaluated epoch yet at checkpoint "
        f"{step}. Fix: let the run pass its first evaluation (batch.eval_every), or resume it"
    )
  tree = {
      "params": jax.tree.map(lambda x: np.asarray(x)[: len(seeds)], state["best_params"]),
      "batch_stats": jax.tree.map(lambda x: np.asarray(x)[: len(seeds)], state.get("best_batch_stats", {})),
  }
  want = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
  if jax.tree.structure(tree) != jax.tree.structure(want) or any(
      a.shape[1:] != b.shape for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(want))
  ):
    raise CheckpointMismatchError(
        f"{workdir}/checkpoints/latest/{step}: its parameters do not fit the model its config.json builds. "
        "Fix: open it with the version of this code that trained it"
    )
  results = {
      "finished": False,
      "checkpoint": int(step),
      "epoch": saved["meta"].get("epoch"),
      "best_epoch": epochs.tolist(),
  }
  return tree, seeds, results


@contextlib.contextmanager
def _reading(manager: ocp.CheckpointManager, where: str, what_then: str):
  """Closes `manager` at the end; an error Orbax or tensorstore raises while reading (a raw traceback before, an
  audit found) becomes one `CheckpointMismatchError`: "<where>: cannot be read (<error>): <what_then>". A
  `CheckpointMismatchError` raised inside (a ValueError too) passes as it is."""
  try:
    yield
  except CheckpointMismatchError:
    raise
  except (ValueError, KeyError, TypeError, OSError) as e:
    first = (str(e).splitlines() or [""])[0][:200]
    raise CheckpointMismatchError(f"{where}: cannot be read ({type(e).__name__}: {first}): {what_then}") from None
  finally:
    manager.close()


def _shape_graph(schema: Schema):
  """A `GraphsTuple` with the schema's shapes (zeros), for abstract initialisation only."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import jraph  # pylint: disable=import-outside-toplevel

  n, e = schema.total_nodes, schema.total_edges
  offs = schema.node_offsets
  senders = jnp.concatenate(
      [jnp.full((schema.num_edges[r],), offs[schema.relation_src(r)], jnp.int32) for r in range(schema.num_relations)]
      or [jnp.zeros((0,), jnp.int32)]
  )
  receivers = jnp.concatenate(
      [jnp.full((schema.num_edges[r],), offs[schema.relation_dst(r)], jnp.int32) for r in range(schema.num_relations)]
      or [jnp.zeros((0,), jnp.int32)]
  )
  features = {m: jnp.zeros((n, schema.max_feature_dim(i)), jnp.float32) for i, m in enumerate(schema.modalities)}
  present = {m: jnp.zeros((n,), bool) for m in schema.modalities}
  node_type = jnp.concatenate([jnp.full((c,), t, jnp.int32) for t, c in enumerate(schema.num_nodes)])
  etype = jnp.concatenate(
      [jnp.full((c,), r, jnp.int32) for r, c in enumerate(schema.num_edges)] or [jnp.zeros((0,), jnp.int32)]
  )
  return jraph.GraphsTuple(
      nodes={"type": node_type, "features": features, "present": present},
      edges={"type": etype},
      senders=senders,
      receivers=receivers,
      n_node=jnp.array([n], jnp.int32),
      n_edge=jnp.array([e], jnp.int32),
      globals=None,
  )
