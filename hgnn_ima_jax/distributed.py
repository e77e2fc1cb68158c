"""Data-parallel mini-batches: a global batch in a fixed number of parts over a ('seeds', 'data') device mesh.

Determinism comes from the parts, not the devices: `config.batch.parts` (P) fixes how the global
batch of `config.batch.size` targets is cut (P contiguous slices of the epoch plan's batch) and
how each slice is sampled (`sampling.part_rng(seed, epoch, batch, part, P)`), so the batch
sequence, the padded sub-graphs and the loss are the same on 1 device, on 4, or on 2 hosts.
`config.mesh_data` (D, dividing P) only says how many devices share them: each holds P/D parts
and `vmap`s over them.

The step (`parts_train_step`) minimises the loss of all parts at once, from exact sufficient
statistics (`losses.objective_stats`): Σ CE / Σ targets + w · L_att(Σ per-relation sums / Σ counts).
The counts do not depend on the parameters, so that loss is a sum of per-part terms with global
denominators: each device differentiates its own terms and one `psum` over 'data' gives the
gradient one device would compute for all P parts (summation order aside). BatchNorm batch
statistics stay per part (as DDP without SyncBN); the running averages are the mean over the
non-empty parts. Both are fixed by P, not by D.

Parameters and optimizer state are replicated over 'data' (sharded over 'seeds'): the model has
~0.3 M parameters (a few MB with Adam's moments), so an all-reduce of the gradient per step is
cheaper and simpler than sharding them (ZeRO-style sharding pays off for models that do not fit).

The mesh is `jax.make_mesh((S, D), ('seeds', 'data'))` over all devices of all processes
(`state.seed_sharding`; S = devices / D; the seed sharding of full-batch runs is D = 1). The step is
`jax.shard_map` over that mesh: states in P('seeds'), parts in P('data'), one `psum` of the
gradient, the loss statistics and the BatchNorm sums over 'data'. Each process samples only the parts
of its own devices (`DeviceMesh.local_parts`, `global_parts_batch`). Launching, memory and the
measurements behind these choices: docs/distributed.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hgnn_ima_jax.losses import objective_from_stats, objective_stats
from hgnn_ima_jax.state import DATA, SEEDS, variables_of, where

P = jax.sharding.PartitionSpec
TRACE_COUNT = {"parts_train_step": 0}  # times the parts step was traced (benchmarks count compiles with it)


@flax.struct.dataclass
class PartsBatch:
  """Padded sub-graphs of one global batch stacked on a leading part axis (all padded to one rung)."""

  graph: Any  # jraph.GraphsTuple, every leaf (parts, ...)
  labels: jax.Array  # (parts, N_target_budget) int32
  mask: jax.Array  # (parts, N_target_budget) bool: the part's targets
  part: jax.Array  # (parts,) int32: the part's index in the global batch (its dropout stream)


@dataclasses.dataclass(frozen=True)
class DeviceMesh:
  """The ('seeds', 'data') mesh of a run and the shardings its arrays use."""

  mesh: jax.sharding.Mesh

  @classmethod
  def of(cls, sharding) -> "DeviceMesh | None":
    """The mesh of `state.seed_sharding`'s seed sharding (None: one device)."""
    return None if sharding is None else cls(sharding.mesh)

  @property
  def seeds(self) -> int:
    return self.mesh.shape[SEEDS]

  @property
  def data(self) -> int:
    return self.mesh.shape[DATA]

  @property
  def seed_sharding(self):
    return jax.sharding.NamedSharding(self.mesh, P(SEEDS))

  @property
  def parts_sharding(self):
    return jax.sharding.NamedSharding(self.mesh, P(DATA))

  @property
  def replicated(self):
    return jax.sharding.NamedSharding(self.mesh, P())

  def local_parts(self, parts: int) -> list[int]:
    """The parts this process's devices hold (each process samples only these)."""
    idx = self.parts_sharding.addressable_devices_indices_map((parts,))
    return sorted({p for sl in idx.values() for p in range(parts)[sl[0]]})


def parts_train_step(
    state,
    batch: PartsBatch,
    *,
    model,
    tx: optax.GradientTransformation,
    ind_loss: bool,
    att_weight: float,
    parts: int,
    axis_name: str | None = None,
):
  """One optimizer step of one seed on all parts of a global batch (this device's parts, psum over `axis_name`)."""
  TRACE_COUNT["parts_train_step"] += 1
  base_key = jax.random.fold_in(state.key, state.step)
  has_bs = bool(jax.tree.leaves(state.batch_stats))
  schema = model.schema
  opts = getattr(model, "options", None)
  stat_kw = dict(
      ind_loss=ind_loss,
      norm=getattr(model, "latt_norm", "code_mean"),
      learns_lambda=bool(getattr(opts, "learns_lambda", False)),
  )
  psum = (lambda x: jax.lax.psum(x, axis_name)) if axis_name else (lambda x: x)

  def one_part(params, graph, labels, mask, part):
    # parts = 1 keeps the single-batch dropout stream, so that path reproduces `steps.train_step`'s keys
    key = base_key if parts == 1 else jax.random.fold_in(base_key, part)
    variables = variables_of(params, state.batch_stats)
    if has_bs:
      out, mutated = model.apply(
          variables, graph, train=True, rngs={"dropout": key}, mutable=["batch_stats"], return_attention=True
      )
      bs = mutated["batch_stats"]
    else:
      out, bs = model.apply(variables, graph, train=True, rngs={"dropout": key}, return_attention=True), None
    return objective_stats(schema, graph, out, labels, mask, **stat_kw), bs

  def local_stats(params):
    return jax.vmap(one_part, in_axes=(None, 0, 0, 0, 0))(params, batch.graph, batch.labels, batch.mask, batch.part)

  def loss_fn(params):
    stats, bs = local_stats(params)
    local = jax.tree.map(lambda x: jnp.sum(x, axis=0), stats)
    # The denominators do not depend on the parameters: with the global ones, the global loss is a
    # sum of per-device terms, and the gradient a psum of per-device gradients.
    counts = jax.lax.stop_gradient(psum({"count": local["count"], "att_count": local["att_count"]}))
    mine, _ = objective_from_stats(
        {**local, **counts}, att_weight=att_weight, num_modalities=schema.num_modalities, norm=stat_kw["norm"]
    )
    return mine, (local, counts, bs, stats["count"])

  (_, (local, counts, bs, part_counts)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads = psum(grads)
  total = psum({"ce_sum": local["ce_sum"], "att_sum": local["att_sum"]})
  loss, terms = objective_from_stats(
      {**total, **counts}, att_weight=att_weight, num_modalities=schema.num_modalities, norm=stat_kw["norm"]
  )
  new_bs = state.batch_stats
  if has_bs:  # running statistics: the mean over the parts that hold targets
    w = (part_counts > 0).astype(jnp.float32)
    n = psum(jnp.sum(w))
    new_bs = jax.tree.map(lambda x: psum(jnp.tensordot(w, x, axes=(0, 0))) / jnp.maximum(n, 1.0), bs)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  new = state.replace(
      step=state.step + 1, params=optax.apply_updates(state.params, updates), batch_stats=new_bs, opt_state=opt_state
  )
  new = where(state.active, new, state)
  return new, {"train_loss": loss, "train_ce": terms["ce"], "att_loss": terms["att"]}


def stack_parts(padded: list) -> dict:
  """Host pytree of equal-rung `PaddedSubgraph`s stacked on a leading axis (PartsBatch's fields)."""
  graph = jax.tree.map(lambda *xs: np.stack(xs), *[p.graph for p in padded])
  return {
      "graph": graph,
      "labels": np.stack([p.labels for p in padded]).astype(np.int32),
      "mask": np.stack([p.mask for p in padded]),
  }


def global_parts_batch(local: dict, part_ids: list[int], parts: int, mesh: DeviceMesh | None) -> PartsBatch:
  """A `PartsBatch` of global arrays (parts sharded over 'data') from this process's parts only.

  `jax.make_array_from_callback` asks only for the shards of this process's devices; the callback
  slices them out of the local stack (parts replicated over 'seeds' are built once per process).
  """
  local = {**local, "part": np.asarray(part_ids, np.int32)}
  if mesh is None:
    return PartsBatch(**jax.tree.map(jnp.asarray, local))
  where_local = {p: i for i, p in enumerate(part_ids)}
  sharding = mesh.parts_sharding

  def to_global(x):
    shape = (parts,) + x.shape[1:]

    def cb(index):
      rows = range(parts)[index[0]]
      return x[[where_local[p] for p in rows]]

    return jax.make_array_from_callback(shape, sharding, cb)

  return PartsBatch(**jax.tree.map(to_global, local))


def make_parts_program(one_seed, seed_batch: int, mesh: DeviceMesh | None):
  """jit of the multi-seed parts step: `shard_map` over the mesh (psum over 'data'), or plain on one device."""
  from hgnn_ima_jax.steps import map_seeds  # steps imports nothing of this module; keep the import graph flat

  if mesh is None:
    return jax.jit(map_seeds(lambda s, b: one_seed(s, b, axis_name=None), seed_batch), donate_argnums=(0,))
  body = map_seeds(lambda s, b: one_seed(s, b, axis_name=DATA), seed_batch)
  # check_vma=False: the gradient psum is explicit (the replicated parameters' cotangents are per device).
  sm = jax.shard_map(
      body, mesh=mesh.mesh, in_specs=(P(SEEDS), P(DATA)), out_specs=(P(SEEDS), P(SEEDS)), check_vma=False
  )
  return jax.jit(sm, donate_argnums=(0,))


def _agree(value: int, reduce) -> int:
  """`reduce` (np.min, np.max) of every process's value: one tiny all-gather."""
  if jax.process_count() == 1:
    return int(value)
  from jax.experimental import multihost_utils

  return int(reduce(multihost_utils.process_allgather(np.asarray([value], np.int64))))


def agree_smallest(value: int) -> int:
  """The smallest of every process's value: for a choice every process must make alike, from inputs that could
  differ between hosts (e.g. XLA's memory estimates)."""
  return _agree(value, np.min)


def agree_largest(value: int) -> int:
  """The largest of every process's value (one tiny all-gather): e.g. a stop request only one process received."""
  return _agree(value, np.max)


def agree_rung(rung: int) -> int:
  """The rung every process pads its parts to: the largest any process needs (one tiny all-gather per step)."""
  return agree_largest(rung)


# --- one config for every process -----------------------------------------------------------


def gather_texts(text: str) -> list[str]:
  """Every process's `text`, in process order (two tiny all-gathers: the lengths, then the padded bytes)."""
  if jax.process_count() == 1:
    return [text]
  from jax.experimental import multihost_utils

  raw = np.frombuffer(text.encode(), np.uint8)
  lengths = np.asarray(multihost_utils.process_allgather(np.asarray([len(raw)], np.int64))).reshape(-1)
  padded = np.zeros(int(lengths.max()), np.uint8)
  padded[: len(raw)] = raw
  rows = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(lengths), -1)
  return [bytes(row[:n]).decode() for row, n in zip(rows, lengths)]


def check_same_workdir(workdir: str, gather=gather_texts) -> None:
  """Refuses a multi-process run whose processes were given different workdirs (as absolute paths), on every
  process alike: each trained its part, process 0's directory got the run, and the others' --resume pointed at
  directories without one.

  Raises:
    run_dir.WorkdirError: the first process that differs, both paths and the fix.
  """
  import os

  from hgnn_ima_jax.run_dir import WorkdirError

  paths = gather(os.path.abspath(workdir))
  for k, path in enumerate(paths[1:], start=1):
    if path != paths[0]:
      raise WorkdirError(
          f"workdir={path}: is process {k}'s, process 0 has {paths[0]}: every process of a run writes one directory. "
          "Fix: give every process the same --workdir (on a file system they all see)"
      )


def check_same_config(config, gather=gather_texts) -> None:
  """Refuses a multi-process run whose processes were given different configs, on every process alike.

  Each process trains its own seeds with its own config: a learning rate given to one process only trained its
  seeds with it while config.json recorded process 0's, and another --epochs ended in a collective mismatch (a
  native abort). Host-local fields (data_dir, a dataset path) may differ; the data itself is not compared.

  Raises:
    ConfigError: the first field that differs, the process, both values and the fix.
  """
  import json

  from hgnn_ima_jax import config_compare, config_values
  from hgnn_ima_jax import config_validation as cv

  d = config_compare.without_host_paths(config_values.normalise(config_values.to_dict(config)))
  texts = gather(json.dumps(d, sort_keys=True))
  first = json.loads(texts[0])
  for k, text in enumerate(texts[1:], start=1):
    diffs = config_compare.leaf_differences(first, json.loads(text))
    if diffs:
      path, ours, theirs = diffs[0]
      more = f" (and {len(diffs) - 1} more field(s))" if len(diffs) > 1 else ""
      raise cv.ConfigError(
          path,
          theirs,
          f"is process {k}'s value, process 0 has {config_values.format_value(ours)}{more}: every process of a run "
          "trains with one config",
          "give every process the same flags (and the same --resume)",
      )
