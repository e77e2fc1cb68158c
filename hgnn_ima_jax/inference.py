"""Exact layer-wise inference for graphs too big for full-batch (like PyG's layer-wise `inference`, DGL's offline one).

The eval-mode forward of HGNN-IMA, HGT (hgt, hgt_early) and HGT-late computed layer by layer:

1. Eq. 1 over chunks of nodes (eval mode: BatchNorm uses its running statistics, so a chunk
   is exact), into one host array of states per node type, (N_t, M, d);
2. per layer k, per chunk of receivers: the sub-graph of the chunk's receivers plus the senders of
   ALL their in-edges (every relation; the attention softmax needs every in-edge), laid out as
   `MMHN.to_graphs_tuple` lays a graph out and padded to fixed budgets; `HGNNIMALayer` applied
   standalone; the receivers' new states go into the next host array. A receiver's new state
   depends only on its own state, its in-edges and their senders' states, so this is the
   full-batch layer exactly;
3. fusion (Eqs. 12–14) and the head (Eq. 15) over chunks of target nodes;
4. L_att (Eq. 7): per (layer, relation), the sum of `losses.attention_loss_terms` over the real
   edges of each chunk (every edge is an in-edge of exactly one receiver chunk), normalised on the
   host as `losses.attention_loss` does.

Chunks and budgets. Every chunk takes the next q_t = max(1, ⌊chunk_size · N_t / N⌋) nodes (in id
order) of every node type t at once, so that each relation's edge budget is in use in every chunk
(chunks of one type at a time would carry the other types' relations as pure padding, many times
the work on a DOUBAN-like graph: benchmarks/README.md, *Layer-wise inference*). The edge budget of
relation r is max(max in-degree_r, ⌈edge_slack · q_dst(r) · E_r / N_dst(r)⌉), at most E_r; a type's range in a
chunk stops early where the next receiver's in-edges would overflow a budget, so a node of any
in-degree fits. The node budget of type t is the most type-t nodes (receivers plus senders) of any
planned chunk (one host pass over the plan; at most min(N_t, q_t + Σ_{r leaving t} edge budget_r)),
plus one reserved padding slot; padding edges run pad(src type) → pad(dst type), so no real
receiver sees them, and `edges['valid']` keeps them out of L_att. The budgets are computed once per
graph (from chunk_size and its in-edges), so each of the three programs (projection, layer, head)
compiles once for all chunks and layers of a model (`LayerwiseInference.traces` counts the traces;
the programs are cached per budget).

Host memory: the graph itself (features, per-relation in-edge CSR), two layers of node states
(Σ_t N_t·M·d floats), the outputs of the target nodes, and one or two padded chunk sub-graphs.
Its cost over full-batch eval (benchmarks/README.md, *Layer-wise inference*, has the measurements):
every chunk recomputes the layer for the senders of its receivers' in-edges, and a node is a sender
in every chunk one of its out-neighbours is in.

Example (any MMHN of the model's schema works the same way):

  import jax
  from hgnn_ima_jax import models
  from hgnn_ima_jax.data_utils import load_dataset
  from hgnn_ima_jax.inference import layerwise_predict

  data = load_dataset("synthetic", num_targets=300)
  model = models.build_model("hgnn_ima", data.schema, hidden=16, heads=2, num_layers=2,
                             projection="per_channel")
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), data.to_graphs_tuple())  # or a checkpoint's
  result = layerwise_predict(model, variables, data, chunk_size=64)
  result.predictions   # (N_target,) class ids; result.logits equals model.apply(...).logits
  result.fused, result.att_loss
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hgnn_ima_jax.chunks import (
    EDGE_SLACK,
    Budgets,
    InEdges,
    build_chunk,
    chunk_in_edges,
    chunk_schema,
    compute_budgets,
    plan_chunks,
)
from hgnn_ima_jax.device_rounds import DeviceRounds
from hgnn_ima_jax.edge_layout import edge_index
from hgnn_ima_jax.fusion import ModalityFusion, class_logits
from hgnn_ima_jax.graph import MMHN, Schema, check_schema
from hgnn_ima_jax.graph_checks import names_problem
from hgnn_ima_jax.layers import HGNNIMALayer
from hgnn_ima_jax.losses import attention_loss_terms
from hgnn_ima_jax.memory_check import needed_bytes
from hgnn_ima_jax.models import HGNNIMA, HGT, HGTLate
from hgnn_ima_jax.projection import InputProjection, dense


class InferenceResult(NamedTuple):
  """Eval-mode outputs for every target node, as NumPy arrays (the full-batch `ModelOutput`'s fields)."""

  logits: np.ndarray  # (N_target, C) fused logits O
  modality_logits: np.ndarray  # (M, N_target, C) O^m with the shared head (M = 1 for hgt / hgt_early)
  fused: np.ndarray  # (N_target, d) Z, embeddings['fused']
  att_loss: float | None  # L_att (Eq. 7); 0 for models without λ; None when not computed
  predictions: np.ndarray  # (N_target,) argmax of logits
  fusion_weights: np.ndarray  # (N_target, M) δ (ones for hgt / hgt_early)
  node_states: tuple | None = None  # on request: one (N_t, M, d) array of final states per node type


class Encoder(NamedTuple):
  """One encoder of a model: its parameter sub-tree, its channels, its attention and its lanes of the state array."""

  key: str  # 'encoder', or 'encoder_<modality>' for HGT-late
  channels: tuple[tuple[int, ...], ...]  # modality ids per channel, as `models.Encoder` takes them
  attention: str  # 'ima' or 'hgt'
  lanes: slice  # its channels in the host state arrays' channel axis


def encoders_of(model) -> tuple[Encoder, ...]:
  """The encoders a model builds (the same channel tables as `models.HGNNIMA/HGT/HGTLate.__call__`)."""
  s = model.schema
  if isinstance(model, HGNNIMA):
    return (Encoder("encoder", tuple((m,) for m in range(s.num_modalities)), "ima", slice(0, s.num_modalities)),)
  if isinstance(model, HGTLate):
    return tuple(Encoder(f"encoder_{name}", ((m,),), "hgt", slice(m, m + 1)) for m, name in enumerate(s.modalities))
  if isinstance(model, HGT):
    mods = s.modalities if model.modalities is None else model.modalities
    return (Encoder("encoder", (tuple(s.modality_id(m) for m in mods),), "hgt", slice(0, 1)),)
  raise TypeError(
      f"model: {type(model).__name__} is not HGNNIMA, HGT or HGTLate. " "Fix: build it with models.build_model"
  )


def _check_edge_budget(edge_budget, relations: list[str]) -> None:
  """None, an int, or ints (or None) keyed by relation names of the graph: a misspelt name was dropped without a
  word (an audit), a string reached `int()` as a raw ValueError."""
  if edge_budget is None:
    return
  if isinstance(edge_budget, Mapping):
    problem = names_problem(edge_budget, relations, "relation", every=False)
    if problem:
      raise ValueError(f"edge_budget {problem}. Fix: key it by relation names ({', '.join(relations)})")
    items = [(f"edge_budget[{k!r}]", v) for k, v in edge_budget.items() if v is not None]
  else:
    items = [("edge_budget", edge_budget)]
  for where, value in items:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(
          f"{where}={value!r}: must be an integer >= 1. Fix: give edges per chunk, or None for the default"
      )


class LayerwiseInference:
  """Exact eval-mode inference of a model, layer by layer over chunks of receivers (see the module docstring).

  Args:
    model: an `HGNNIMA`, `HGT` or `HGTLate` (as `models.build_model` builds them).
    variables: its variables ({'params': ..., 'batch_stats': ...} as `model.init` returns them).
    schema: the schema (or an MMHN) the caller means to run on; checked against the model's up front.
    chunk_size: receivers per layer chunk, shared among the node types by node count (at least one each),
      and the target rows per head chunk; ≥ 1. Device memory per chunk grows with it (times the mean in-degree).
    edge_slack: default edge budget per relation as a multiple of its share × the mean in-degree.
    edge_budget: an int for every relation, or {relation name: int}; overrides the default (≥ max in-degree).
    dtype: the host states' and the programs' float type (float64 needs `jax_enable_x64`).
    jit: how the three programs are compiled (`jax.jit`; tests pass a faster-compiling one).
    devices: None runs on the default device; a list (e.g. `jax.devices()`, all devices of all processes) deals
      the chunks of every stage to those devices, one per device per round (`device_rounds.DeviceRounds`): same
      outputs, and each process builds only its devices' chunks. Every process must then call `run` alike.

  Attributes after `run`: `traces` (program name -> times traced), `last_budgets`, and `last_stats`
  (chunks per layer, real edges and padded edge slots per layer: the padding overhead; chunks this process
  built per layer).
  """

  def __init__(
      self,
      model,
      variables: Mapping[str, Any],
      schema: Schema | MMHN | None = None,
      *,
      chunk_size: int = 4096,
      edge_slack: float = EDGE_SLACK,
      edge_budget: int | Mapping[str, int] | None = None,
      dtype=np.float32,
      jit: Callable = jax.jit,
      devices: Sequence[Any] | None = None,
  ):
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
      raise ValueError(
          f"chunk_size={chunk_size!r}: must be an integer >= 1. Fix: give the receivers per chunk, " "e.g. 4096"
      )
    if not edge_slack > 0:
      raise ValueError(f"edge_slack={edge_slack!r}: must be > 0. Fix: use e.g. 1.5")
    _check_edge_budget(edge_budget, [r.name for r in model.schema.relations])
    if jax.dtypes.canonicalize_dtype(dtype) != np.dtype(dtype):  # float64 without x64: JAX computed float32, warned
      raise ValueError(
          f"dtype={np.dtype(dtype).name}: needs JAX's 64-bit mode. Fix: jax.config.update('jax_enable_x64', True) "
          "at start-up, or use float32"
      )
    self.model, self.encoders = model, encoders_of(model)
    if schema is not None:
      check_schema(
          model.schema, schema.schema if isinstance(schema, MMHN) else schema, getattr(schema, "source", "schema")
      )
    missing = [e.key for e in self.encoders if e.key not in variables.get("params", {})]
    if missing:
      raise ValueError(
          f"variables['params'] has no {missing} (it has {list(variables.get('params', {}))}). "
          f"Fix: pass the variables of this {type(model).__name__} (model.init or a checkpoint)"
      )
    self.chunk_size, self.edge_slack, self.edge_budget = int(chunk_size), float(edge_slack), edge_budget
    self.dtype, self.rounds = np.dtype(dtype), DeviceRounds(devices, jit)
    self.set_variables(variables)
    self.num_lanes = sum(e.lanes.stop - e.lanes.start for e in self.encoders)
    self.has_att = isinstance(model, HGNNIMA) and model.options.learns_lambda
    self.traces: collections.Counter = collections.Counter()  # program name -> times traced
    self._programs: dict = {}
    self._graph = None  # (data, its in-edges, its budgets) of the last run: reused when run on the same graph again

  def set_variables(self, variables: Mapping[str, Any]) -> None:
    """Other variables of the same model (e.g. another seed's, or a later epoch's); the compiled programs are kept."""
    cast = lambda x: jnp.asarray(x, self.dtype) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x
    self.params = self.rounds.replicate(jax.tree_util.tree_map(cast, dict(variables["params"])))
    self.batch_stats = self.rounds.replicate(jax.tree_util.tree_map(cast, dict(variables.get("batch_stats", {}))))

  # --- the three programs, one per budget ---------------------------------------------------------
  def _program(self, kind: str, budgets: Budgets, schema: Schema):
    key = (kind, budgets)
    if key not in self._programs:
      num_args, replicated = {"project": (3, 2), "layer": (6, 1), "head": (2, 1)}[kind]
      self._programs[key] = self.rounds.compile(self.program_fn(kind, budgets, schema), num_args, replicated)
    return self._programs[key]

  def program_fn(self, kind: str, budgets: Budgets, schema: Schema):
    """The uncompiled 'project', 'layer' or 'head' function for `budgets` (`chunk_program_bytes` compiles them)."""
    fns = {"project": self._project_fn, "layer": self._layer_fn, "head": self._head_fn}
    return fns[kind](budgets, schema)

  def _project_fn(self, budgets: Budgets, schema: Schema):
    """Eq. 1 of every encoder over `budgets.receivers[t]` rows of each node type t."""
    m = self.model
    pschema = dataclasses.replace(schema, num_nodes=budgets.receivers)
    projs = [
        InputProjection(pschema, e.channels, m.hidden, m.projection, m.input_batch_norm, m.input_activation)
        for e in self.encoders
    ]

    def project(params, batch_stats, features):
      self.traces["project"] += 1
      outs = []
      for e, proj in zip(self.encoders, projs):
        v = {"params": params[e.key]["projection"]}
        if e.key in batch_stats:
          v["batch_stats"] = batch_stats[e.key]["projection"]
        outs.append(proj.apply(v, features, train=False))
      return tuple(jnp.concatenate([o[t] for o in outs], axis=1) for t in range(schema.num_node_types))

    return project

  def _layer_fn(self, budgets: Budgets, schema: Schema):
    """One layer of every encoder on a padded chunk sub-graph → receivers' new states and per-relation L_att sums."""
    m, s = self.model, schema
    lschema = chunk_schema(s, budgets)
    layers = [HGNNIMALayer(lschema, len(e.channels), m.hidden, m.heads, e.attention, m.options) for e in self.encoders]
    # The sender's missing modalities of each sub-graph edge (a property of the relation's source type).
    missing = np.concatenate(
        [np.tile(~np.asarray(s.present[s.relation_src(r)]), (budgets.edges[r], 1)) for r in range(s.num_relations)]
        or [np.zeros((0, s.num_modalities), bool)]
    )

    def layer_step(params, hs, senders, receivers, edge_valid, recv_rows):
      self.traces["layer"] += 1
      outs, att = [], jnp.zeros((s.num_relations,), self.dtype)
      for e, layer, p in zip(self.encoders, layers, params):
        index = edge_index(lschema, senders, receivers, len(e.channels))
        new, aux = layer.apply({"params": p}, tuple(h[:, e.lanes] for h in hs), index, train=False)
        outs.append(new)
        if self.has_att and aux["lambda"] is not None:
          terms = jnp.where(edge_valid, attention_loss_terms(aux["lambda"], jnp.asarray(missing)), 0.0)
          att = jnp.stack([jnp.sum(terms[lschema.edge_slice(r)]) for r in range(s.num_relations)])
      return tuple(jnp.concatenate([o[t] for o in outs], axis=1)[recv_rows[t]] for t in range(s.num_node_types)), att

    return layer_step

  def _head_fn(self, budgets: Budgets, schema: Schema):
    """Eqs. 12–15 on `budgets.head` target rows: (logits, modality logits, Z, δ)."""
    m = self.model
    fusion = (
        None
        if isinstance(m, HGT)
        else ModalityFusion(m.hidden, m.fusion_form, m.fusion_input_dropout, m.fusion_score_dropout)
    )
    head = dense(schema.num_classes, m.hidden, "head")

    def head_step(params, target):
      self.traces["head"] += 1
      if fusion is None:  # HGT: one channel, no fusion
        fused, delta = target[:, 0], jnp.ones(target.shape[:2], target.dtype)
      else:
        fused, delta = fusion.apply({"params": params["fusion"]}, target, train=False)
      logits, modality_logits = class_logits(lambda x: head.apply({"params": params["head"]}, x), fused, target)
      return logits, modality_logits, fused, delta

    return head_step

  # --- running ------------------------------------------------------------------------------------
  def budgets_for(self, data: MMHN, in_edges: InEdges | None = None) -> Budgets:
    """The budgets `run(data)` uses."""
    return compute_budgets(data.schema, in_edges or InEdges(data), self.chunk_size, self.edge_slack, self.edge_budget)

  def run(self, data: MMHN, *, compute_att_loss: bool = True, return_node_states: bool = False) -> InferenceResult:
    """Outputs for every target node of `data` (any MMHN of the model's schema; other node and edge counts are fine).

    compute_att_loss: False skips L_att (then the last layer only visits target receivers); att_loss is None.
    return_node_states: also return every node's final states (the last layer then visits every node).
    """
    if not isinstance(data, MMHN):
      raise TypeError(f"data: {type(data).__name__}, expected an MMHN. Fix: pass the dataset (loaders return one)")
    s = data.schema
    check_schema(self.model.schema, s, data.source)
    if self._graph is None or self._graph[0] is not data:  # an evaluation every epoch reruns the same graph
      in_edges = InEdges(data)
      self._graph = (data, in_edges, self.budgets_for(data, in_edges))
    _, in_edges, budgets = self._graph
    self.last_budgets = budgets
    self.last_stats = {"chunks": [], "real_edges": [], "edge_slots": [], "built": []}
    states = self._project(data, s, budgets)
    K, need_att = self.model.num_layers, self.has_att and compute_att_loss
    att_sums = np.zeros((K, s.num_relations), np.float64)
    layer_step = self._program("layer", budgets, s)
    for k in range(K):
      last = k == K - 1
      types = (s.target_id,) if last and not (need_att or return_node_states) else tuple(range(s.num_node_types))
      nxt = [np.zeros_like(states[t]) if t in types else None for t in range(s.num_node_types)]
      params = [self.params[e.key][f"layer_{k}"] for e in self.encoders]
      plan = list(plan_chunks(s, in_edges, budgets, types))  # every process knows the whole plan
      built = self.rounds.built

      def make(i, states=states):
        c = build_chunk(s, in_edges, budgets, plan[i])
        hs = []
        for t in range(s.num_node_types):
          h = np.zeros((budgets.nodes[t],) + states[t].shape[1:], self.dtype)
          h[: len(c.hs_rows[t])] = states[t][c.hs_rows[t]]
          hs.append(h)
        return tuple(hs), c.senders, c.receivers, c.edge_valid, c.recv_rows

      for i, (new, att) in self.rounds.run(layer_step, (params,), len(plan), make):
        for t, a, b in plan[i]:
          nxt[t][a:b] = new[t][: b - a]
        att_sums[k] += np.asarray(att, np.float64)
      states = nxt
      real = sum(chunk_in_edges(s, in_edges, ranges) for ranges in plan)
      for key, value in zip(
          ("chunks", "real_edges", "edge_slots", "built"),
          (len(plan), real, len(plan) * sum(budgets.edges), self.rounds.built - built),
      ):
        self.last_stats[key].append(value)
    return self._heads(s, budgets, states, att_sums if need_att else None, return_node_states)

  def _project(self, data: MMHN, s: Schema, budgets: Budgets) -> list[np.ndarray]:
    """Eq. 1 for every node; step i projects nodes [i·q_t, (i+1)·q_t) of every type t at once."""
    q, T = budgets.receivers, s.num_node_types
    offs = np.concatenate([[0], np.cumsum(q)[:-1]])
    project = self._program("project", budgets, s)
    states = [np.zeros((n, self.num_lanes, self.model.hidden), self.dtype) for n in s.num_nodes]

    def make(i):
      features = {}
      for mi, mname in enumerate(s.modalities):
        x = np.zeros((sum(q), s.max_feature_dim(mi)), self.dtype)
        for t, tname in enumerate(s.node_types):
          rows = data.features[tname][mname][i * q[t] : (i + 1) * q[t]]
          x[offs[t] : offs[t] + len(rows), : rows.shape[1]] = rows
        features[mname] = x
      return (features,)

    steps = max(math.ceil(n / qt) for n, qt in zip(s.num_nodes, q))
    for i, out in self.rounds.run(project, (self.params, self.batch_stats), steps, make):
      for t in range(T):
        n = max(0, min(q[t], s.num_nodes[t] - i * q[t]))
        if n:
          states[t][i * q[t] : i * q[t] + n] = out[t][:n]
    return states

  def _heads(self, s: Schema, budgets: Budgets, states, att_sums, return_node_states) -> InferenceResult:
    """Eqs. 12–15 over chunks of target nodes, and L_att from the per-(layer, relation) sums."""
    head_step = self._program("head", budgets, s)
    n, P, C = s.num_nodes[s.target_id], budgets.head, s.num_classes
    target = states[s.target_id]
    logits = np.zeros((n, C), self.dtype)
    modality_logits = np.zeros((self.num_lanes, n, C), self.dtype)
    fused = np.zeros((n, self.model.hidden), self.dtype)
    delta = np.zeros((n, self.num_lanes), self.dtype)

    def make(j):
      x = np.zeros((P,) + target.shape[1:], self.dtype)
      rows = target[j * P : (j + 1) * P]
      x[: len(rows)] = rows
      return (x,)

    for j, (lg, mlg, z, d) in self.rounds.run(head_step, (self.params,), math.ceil(n / P) if n else 0, make):
      lo, hi = j * P, min(n, (j + 1) * P)
      logits[lo:hi], fused[lo:hi], delta[lo:hi] = lg[: hi - lo], z[: hi - lo], d[: hi - lo]
      modality_logits[:, lo:hi] = mlg[:, : hi - lo]
    att = None if att_sums is None else self._att_loss(s, att_sums)
    if att is None and not self.has_att:
      att = 0.0
    return InferenceResult(
        logits,
        modality_logits,
        fused,
        att,
        np.argmax(logits, axis=-1),
        delta,
        tuple(states) if return_node_states else None,
    )

  def _att_loss(self, s: Schema, sums: np.ndarray) -> float:
    """`losses.attention_loss`'s normalisation of the per-(layer, relation) sums of the per-edge terms."""
    K = sums.shape[0]
    if K == 0 or s.num_relations == 0:  # no layer, no λ: 0, as `losses.attention_loss` (a mean of nothing was NaN)
      return 0.0
    if self.model.latt_norm == "paper_sum":
      return float(sums.sum() / (K * s.num_modalities))
    rels = [r for r in range(s.num_relations) if s.missing_modalities(s.relation_src(r)) and s.num_edges[r] > 0]
    if not rels:
      return 0.0
    per_layer = sum(sums[:, r] / s.num_edges[r] for r in rels) / len(rels)
    return float(np.mean(per_layer))


def chunk_program_bytes(
    model, variables: Mapping[str, Any], data: MMHN, chunk_size: int, in_edges: InEdges | None = None
):
  """XLA's bytes per call (`memory_check.needed_bytes`) of the larger of the projection and layer programs of
  `LayerwiseInference` at `chunk_size` on `data`, from compiling them on the default device (nothing runs);
  None where the backend gives no estimate."""
  lw = LayerwiseInference(model, variables, chunk_size=chunk_size)
  s, dt = data.schema, lw.dtype
  budgets = lw.budgets_for(data, in_edges)
  spec = lambda shape, dtype=dt: jax.ShapeDtypeStruct(tuple(shape), dtype)
  features = {m: spec((sum(budgets.receivers), s.max_feature_dim(mi))) for mi, m in enumerate(s.modalities)}
  layer_args = (
      [lw.params[e.key].get("layer_0") for e in lw.encoders],
      tuple(spec((budgets.nodes[t], lw.num_lanes, model.hidden)) for t in range(s.num_node_types)),
      spec((sum(budgets.edges),), np.int32),
      spec((sum(budgets.edges),), np.int32),
      spec((sum(budgets.edges),), bool),
      tuple(spec((q,), np.int32) for q in budgets.receivers),
  )
  programs = [(lw.program_fn("project", budgets, s), (lw.params, lw.batch_stats, features))]
  if model.num_layers:
    programs.append((lw.program_fn("layer", budgets, s), layer_args))
  sizes = [needed_bytes(jax.jit(fn).lower(*args).compile()) for fn, args in programs]
  return None if None in sizes else max(sizes)


def largest_chunk_within(
    model,
    variables: Mapping[str, Any],
    data: MMHN,
    max_bytes: int,
    *,
    start: int = 4096,
    min_chunks: int = 1,
    min_gain: float = 0.1,
) -> int:
  """The largest of start, 2·start, 4·start, ... whose chunk programs need at most `max_bytes` per call
  (`chunk_program_bytes`), with at least `min_chunks` receiver chunks per layer, and where each doubling paid:
  it cut a layer's estimated work (chunks × bytes per chunk) by at least `min_gain`; `start` otherwise.

  Why: each chunk recomputes the keys and values of all senders of its receivers. Where chunks share
  senders (a dense graph: AMAZON, `synthetic_amazon1`), a chunk twice as large needs much less than twice the
  memory and time, and fewer, larger chunks are faster (benchmarks/README.md, *Layer-wise inference*); where they
  do not (`synthetic10m` at 4,096), doubling only doubles the memory, so it stops. Mini-batch evaluation passes
  the training step's bytes as `max_bytes`, so that evaluating needs no more memory than training already does.
  Each size probed costs one compilation of the projection and layer programs (start included, unless one
  chunk of `start` holds every node).
  """
  total, in_edges = sum(data.schema.num_nodes), InEdges(data)
  size, need = start, None
  while size < total and -(-total // (2 * size)) >= min_chunks:
    if need is None:
      need = chunk_program_bytes(model, variables, data, size, in_edges)
    bigger = chunk_program_bytes(model, variables, data, 2 * size, in_edges)
    if need is None or bigger is None or bigger > max_bytes or bigger > 2 * (1 - min_gain) * need:
      break
    size, need = 2 * size, bigger
  return size


def layerwise_predict(
    model, variables: Mapping[str, Any], data: MMHN, *, chunk_size: int = 4096, **kwargs
) -> InferenceResult:
  """`LayerwiseInference(model, variables, data, chunk_size=...).run(data)` in one call."""
  return LayerwiseInference(model, variables, data, chunk_size=chunk_size, **kwargs).run(data)
