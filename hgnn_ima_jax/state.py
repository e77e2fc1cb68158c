"""The training state of every seed and the full-batch inputs.

`init_state` stacks parameters, optimizer states, dropout keys and early-stopping bookkeeping of
all seeds on a leading seed axis; `seed_sharding` spreads that axis over all devices (every process's).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import jraph
import ml_collections
import optax

from hgnn_ima_jax.config_validation import ConfigError
from hgnn_ima_jax.graph import MMHN, Schema
from hgnn_ima_jax.layout import check_graph_layout
from hgnn_ima_jax.models import build_model, model_fields

# The axes of the device mesh (`seed_sharding`; `hgnn_ima_jax.distributed` imports them from here).
SEEDS, DATA = "seeds", "data"


@flax.struct.dataclass
class Batch:
  """The full-batch inputs: the graph, target labels and split masks (all on device)."""

  graph: jraph.GraphsTuple
  labels: jax.Array  # (N_target,) int32
  masks: dict  # 'train'/'val'/'test' -> (N_target,) bool


def make_batch(data: MMHN) -> Batch:
  """The graph (checked once here: training runs it under jit, where the model cannot check it), labels, masks."""
  graph = jax.tree.map(jnp.asarray, data.to_graphs_tuple())
  check_graph_layout(data.schema, graph)
  masks = {s: jnp.asarray(data.split_mask(s)) for s in ("train", "val", "test")}
  return Batch(graph, jnp.asarray(data.labels, jnp.int32), masks)


def create_model(config: ml_collections.ConfigDict, schema: Schema) -> nn.Module:
  """The module named by `config.model_name`, built from the fields of `config.model` it reads (a config holds every
  model's fields; `validate_config` has refused one given to a model that does not read it)."""
  reads = model_fields(config.model_name)
  fields = {k: v for k, v in config.model.to_dict().items() if v is not None and k in reads}
  return build_model(config.model_name, schema, **fields)


@flax.struct.dataclass
class TrainState:
  """One seed's training state (stacked over seeds by `init_state`)."""

  step: jax.Array  # optimizer steps (= epochs) taken
  params: Any
  batch_stats: Any
  opt_state: Any
  key: jax.Array  # uint32[2]: this seed's dropout key; epoch e uses fold_in(key, e)
  active: jax.Array  # False once early stopping fired
  es_best_loss: jax.Array
  es_best_acc: jax.Array
  es_counter: jax.Array
  best_score: jax.Array  # selection metric at the best epoch
  best_epoch: jax.Array  # 0-based epoch of the selected checkpoint (-1: none yet)
  best_params: Any
  best_batch_stats: Any
  best_pred: jax.Array  # (N_target,) eval-mode predicted classes at the selected epoch (-1: none yet)


def _init_one(seed, model, tx, graph, num_targets: int) -> TrainState:
  key = jax.random.PRNGKey(seed)
  init_key, init_dropout, run_key = jax.random.split(key, 3)
  variables = model.init({"params": init_key, "dropout": init_dropout}, graph, train=False)
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      batch_stats=batch_stats,
      opt_state=tx.init(params),
      key=run_key,
      active=jnp.ones((), bool),
      es_best_loss=f32(jnp.inf),
      es_best_acc=f32(-jnp.inf),
      es_counter=jnp.zeros((), jnp.int32),
      best_score=f32(-jnp.inf),
      best_epoch=jnp.full((), -1, jnp.int32),
      best_params=params,
      best_batch_stats=batch_stats,
      best_pred=jnp.full((num_targets,), -1, jnp.int32),
  )


def _init_fn(
    model: nn.Module, tx: optax.GradientTransformation, batch: Batch, sharding=None, num_targets: int | None = None
) -> Callable:
  n = int(batch.labels.shape[0]) if num_targets is None else int(num_targets)
  return jax.jit(jax.vmap(lambda s, g: _init_one(s, model, tx, g, n), in_axes=(0, None)), out_shardings=sharding)


def init_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    batch: Batch,
    seeds,
    sharding=None,
    num_targets: int | None = None,
    *,
    abstract: bool = False,
) -> TrainState:
  """Initialises every seed at once: a TrainState whose leaves lead with the seed axis.

  num_targets: length of `best_pred` (default: the batch's targets; a mini-batch run passes the graph's).
  abstract: only the shapes and dtypes of that state (nothing is compiled or run), e.g. for a restore.
  """
  # The graph is an argument, not a closed-over constant: XLA would constant-fold its scatters.
  fn = _init_fn(model, tx, batch, sharding, num_targets)
  seeds = jnp.asarray(seeds, jnp.uint32)
  if abstract:
    return jax.eval_shape(fn, seeds, batch.graph)
  # Compiled without LLVM optimisation: the program is one Threefry hash per parameter and runs
  # once, so optimising it only costs compile time (benchmarks/README.md, *Start-up*). The
  # random bits are identical; uniform and normal values can differ from an optimised compile in
  # the last bit (a fused multiply-add), the same for every run, so results stay reproducible.
  compiled = fn.lower(seeds, batch.graph).compile(compiler_options={"xla_backend_optimization_level": 0})
  return compiled(seeds, batch.graph)


def where(cond, new, old):
  """`new` where `cond` (a scalar per seed) holds, else `old`, leaf by leaf."""
  return jax.tree.map(lambda a, b: jnp.where(cond, a, b), new, old)


def variables_of(params, batch_stats):
  """Flax variables for `model.apply`: BatchNorm statistics only when the model has them."""
  return {"params": params, "batch_stats": batch_stats} if jax.tree.leaves(batch_stats) else {"params": params}


def check_mesh_data(data: int) -> None:
  """`config.mesh_data` divides the devices of the run (every process's); else a one-line `ConfigError`."""
  n = jax.device_count()
  if n % data:
    raise ConfigError(
        "mesh_data", data, f"does not divide the {n} devices", f"set --config.mesh_data to a divisor of {n}"
    )


def seed_sharding(num_seeds: int, enabled: bool = True, data: int = 1):
  """(sharding for seed-leading arrays, replicated sharding, padded seed count) over all devices.

  The mesh is ('seeds', 'data') (`hgnn_ima_jax.distributed`): `data` devices share each global
  batch, the rest of the devices split the seeds; (None, None, num_seeds) when there is only one device
  to use.
  """
  devices = jax.devices()
  check_mesh_data(data)
  seeds = len(devices) // data if enabled else 1
  if seeds * data == 1:
    return None, None, num_seeds
  mesh = jax.make_mesh(
      (seeds, data), (SEEDS, DATA), axis_types=(jax.sharding.AxisType.Auto,) * 2, devices=devices[: seeds * data]
  )
  padded = int(math.ceil(num_seeds / seeds) * seeds)
  return (
      jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(SEEDS)),
      jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()),
      padded,
  )
