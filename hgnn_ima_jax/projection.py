"""Eq. 1: the input projection of every node type's modality features into d-dimensional channels."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from hgnn_ima_jax import edge_ops
from hgnn_ima_jax.choices import CHOICES
from hgnn_ima_jax.config_validation import ConfigError
from hgnn_ima_jax.graph import Schema
from hgnn_ima_jax.ops import torch_linear_init

# The code's BatchNorm1d settings, shared by flax's `nn.BatchNorm` path and the recomputed one.
BN_MOMENTUM, BN_EPSILON = 0.9, 1e-5


def dense(features: int, fan_in: int, name: str, use_bias: bool = True) -> nn.Dense:
  """A Linear with torch's default initialisation (U(±1/sqrt(fan_in)) for weight and bias)."""
  init = torch_linear_init(fan_in)
  return nn.Dense(features, use_bias=use_bias, kernel_init=init, bias_init=init, name=name)


class BatchNormStats(nn.Module):
  """`nn.BatchNorm`'s variables and statistics without its normalisation: (mean, var, scale, bias).

  The same variable names, initial values and running-average update as `nn.BatchNorm` on the
  last axis (fast variance, `mask` rows left out), so a checkpoint holds the same tree;
  `bn_dense` normalises. Used when the input projection is recomputed (`recompute`).
  """

  momentum: float = BN_MOMENTUM

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None):
    feat = (x.shape[-1],)
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), feat)
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), feat)
    scale = self.param("scale", nn.initializers.ones, feat, jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, feat, jnp.float32)
    if not train:
      return ra_mean.value, ra_var.value, scale, bias
    where = None if mask is None else jnp.broadcast_to(mask, x.shape)
    mean = x.mean(0, where=where)
    var = jnp.maximum(0.0, jnp.square(x).mean(0, where=where) - jnp.square(mean))
    if not self.is_initializing():
      ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    return mean, var, scale, bias


class DenseParams(nn.Module):
  """`dense`'s parameters (same names, shapes, order and initialisation), for `bn_dense` to apply."""

  features: int
  fan_in: int

  @nn.compact
  def __call__(self):
    init = torch_linear_init(self.fan_in)
    return self.param("kernel", init, (self.fan_in, self.features)), self.param("bias", init, (self.features,))


def bn_dense(x, mean, var, scale, bias, kernel, dense_bias, *, epsilon: float):
  """Lin(BN(x)) with BatchNorm's given statistics, in `nn.BatchNorm`'s and `nn.Dense`'s order of operations."""
  mul = jax.lax.rsqrt(var + epsilon) * scale
  return ((x - mean) * mul + bias) @ kernel + dense_bias


# Lin(BN(f)) that keeps only its arguments and is rebuilt once its cotangent exists (`recompute`).
_late_bn_dense = edge_ops.recompute_after_cotangent(functools.partial(bn_dense, epsilon=BN_EPSILON))


def shared_width_problem(schema: Schema, channels, hidden: int, scalar_hidden: int = 64) -> str | None:
  """Why projection='shared' (one Linear per node type for every channel, the MISS code) cannot take a
  graph's inputs: a node type whose channels reach that Linear with different widths (a width-1 input passes
  the scalar MLP and takes the widest other width, as `InputProjection` does); None when it can."""
  for t, tname in enumerate(schema.node_types):
    raw = [sum(schema.feature_dims[t][m] for m in ch) for ch in channels]
    wide = [w for w in raw if w > 1]
    ref = max(wide) if wide else hidden
    widths = {
        "+".join(schema.modalities[m] for m in ch): ref if w == 1 and scalar_hidden else w
        for ch, w in zip(channels, raw)
    }
    if len(set(widths.values())) > 1:
      return f"needs equal input widths per node type (one Linear for all modalities), but {tname!r} has {widths}"
  return None


def check_shared_widths(schema: Schema, channels, hidden: int, scalar_hidden: int = 64) -> None:
  """`shared_width_problem` as a `ConfigError` on config.model.projection."""
  problem = shared_width_problem(schema, channels, hidden, scalar_hidden)
  if problem:
    raise ConfigError(
        "model.projection",
        "shared",
        problem,
        "use --config.model.projection=per_channel (one input layer per modality)",
    )


class InputProjection(nn.Module):
  """Eq. 1 as the code computes it: h^{m,(0)} = act(Lin(BN(f))) per node type.

  Attributes:
    schema: static graph description.
    channels: modality ids per channel; a channel with several modalities gets their
      features concatenated (early fusion).
    hidden: d.
    mode: 'shared' — one Linear per node type for all channels (MISS profile, needs
      equal widths); 'per_channel' — one per (type, channel) (FULL profile).
    batch_norm: BatchNorm1d before the Linear (FULL profile).
    activation: 'tanh' (code) or 'linear' (paper Eq. 1).
    scalar_hidden: width-1 inputs (e.g. raw log-price) first pass an MLP(1→scalar_hidden→D)
      whose D is the widest other input of the type (the paper embeds price with an FFNN).
    recompute: with `batch_norm`, Lin(BN(f)) keeps only f and BN's statistics for the backward
      pass and recomputes the rest there, after its cotangent (`edge_ops.recompute_after_cotangent`);
      the same values and variables (`config.model.remat`).
  """

  schema: Schema
  channels: tuple[tuple[int, ...], ...]
  hidden: int = 64
  mode: str = "shared"
  batch_norm: bool = False
  activation: str = "tanh"
  scalar_hidden: int = 64
  recompute: bool = False

  def channel_name(self, c: int) -> str:
    return "+".join(self.schema.modalities[m] for m in self.channels[c])

  def channel_width(self, t: int, c: int) -> int:
    return sum(self.schema.feature_dims[t][m] for m in self.channels[c])

  @nn.compact
  def __call__(self, features: dict, *, train: bool, valid: jax.Array | None = None) -> tuple[jax.Array, ...]:
    """features: {modality: (N, D_m)} → one (N_t, C, d) array per node type.

    valid: optional (N,) bool; padding nodes (False) are left out of BatchNorm's batch statistics.
    """
    s = self.schema
    if self.mode not in CHOICES["model.projection"]:
      raise ValueError(f"projection must be one of {CHOICES['model.projection']}, got {self.mode!r}")
    if self.activation not in CHOICES["model.input_activation"]:
      raise ValueError(f"input_activation must be one of {CHOICES['model.input_activation']}, got {self.activation!r}")
    if self.mode == "shared":  # every node type at once, before any parameter is made
      check_shared_widths(s, self.channels, self.hidden, self.scalar_hidden)
      if self.batch_norm:
        raise ValueError("batch_norm needs projection='per_channel' (the FULL profile)")
    rows = []
    for t, tname in enumerate(s.node_types):
      sl = s.node_slice(t)
      xs = self._inputs(features, t, tname, sl)
      if self.mode == "shared":
        lin = dense(self.hidden, xs[0].shape[-1], f"proj_{tname}")
        ys = [lin(x) for x in xs]
      else:
        ys = []
        mask = None if valid is None else valid[sl][:, None]
        for c, x in enumerate(xs):
          cname = self.channel_name(c)
          if self.batch_norm and self.recompute:
            stats = BatchNormStats(name=f"bn_{tname}_{cname}")(x, train=train, mask=mask)
            lin = DenseParams(self.hidden, x.shape[-1], name=f"proj_{tname}_{cname}")()
            ys.append(_late_bn_dense(x, *stats, *lin))
            continue
          if self.batch_norm:
            bn = nn.BatchNorm(
                use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"bn_{tname}_{cname}"
            )
            x = bn(x) if mask is None else bn(x, mask=mask)
          ys.append(dense(self.hidden, x.shape[-1], f"proj_{tname}_{cname}")(x))
      y = jnp.stack(ys, axis=1)
      rows.append(jnp.tanh(y) if self.activation == "tanh" else y)
    return tuple(rows)

  def _inputs(self, features: dict, t: int, tname: str, sl: slice) -> list[jax.Array]:
    """Type t's input of each channel (its modalities side by side); width-1 inputs through the scalar MLP."""
    s = self.schema
    widths = [self.channel_width(t, c) for c in range(len(self.channels))]
    wide = [w for w in widths if w > 1]
    ref_width = max(wide) if wide else self.hidden
    xs = []
    for c in range(len(self.channels)):
      x = jnp.concatenate([features[s.modalities[m]][sl, : s.feature_dims[t][m]] for m in self.channels[c]], -1)
      cname = self.channel_name(c)
      if x.shape[-1] == 1 and self.scalar_hidden:
        x = nn.relu(dense(self.scalar_hidden, 1, f"scalar_{tname}_{cname}_0")(x))
        x = dense(ref_width, self.scalar_hidden, f"scalar_{tname}_{cname}_1")(x)
      xs.append(x)
    return xs
