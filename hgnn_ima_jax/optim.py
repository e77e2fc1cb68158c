"""The optimizer: AdamW + OneCycle with cycled b1 (the authors' code) or plain Adam (the paper).

The schedule counts optimizer steps. Full-batch training takes one step per epoch; mini-batch
training passes `steps_per_epoch`, which stretches the same schedule over the same epochs.
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import optax

from hgnn_ima_jax.choices import CHOICES


def one_cycle_schedules(
    total_steps: int,
    max_value: float,
    pct_start: float,
    div_factor: float,
    final_div_factor: float,
    base_momentum: float,
    max_momentum: float,
):
  """torch.optim.lr_scheduler.OneCycleLR (cosine) for the learning rate and Adam's b1.

  Step n ≤ s1 = pct_start·total − 1 anneals lr from max/div to max and b1 from max_m to
  base_m; after that lr goes to max/(div·final_div) and b1 back to max_m by total − 1.
  """
  initial = max_value / div_factor
  final = initial / final_div_factor
  s1 = float(pct_start * total_steps) - 1.0
  s2 = float(total_steps) - 1.0

  def interp(a, b, pct):
    return b + (a - b) * (1.0 + jnp.cos(jnp.pi * pct)) / 2.0

  def phase(count, first, second):
    n = jnp.asarray(count, jnp.float32)
    up = interp(first[0], first[1], jnp.clip(n / s1, 0.0, 1.0))
    down = interp(second[0], second[1], jnp.clip((n - s1) / (s2 - s1), 0.0, 1.0))
    return jnp.where(n <= s1, up, down)

  lr = lambda c: phase(c, (initial, max_value), (max_value, final))
  b1 = lambda c: phase(c, (max_momentum, base_momentum), (base_momentum, max_momentum))
  return lr, b1


def _config_schedules(config: ml_collections.ConfigDict, steps_per_epoch: int):
  """The config's OneCycle schedules; `onecycle_total_steps` is in epochs' worth of steps (one step per epoch
  in full-batch training, as the authors' code), so mini-batch training multiplies it by `steps_per_epoch`."""
  if int(steps_per_epoch) < 1:
    raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
  oc = config.optimizer
  return one_cycle_schedules(
      oc.onecycle_total_steps * int(steps_per_epoch),
      oc.learning_rate,
      oc.onecycle_pct_start,
      oc.onecycle_div_factor,
      oc.onecycle_final_div_factor,
      oc.onecycle_base_momentum,
      oc.onecycle_max_momentum,
  )


def create_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int = 1) -> optax.GradientTransformation:
  """AdamW + OneCycle with cycled b1 (the code) or plain Adam (the paper), with injected hyperparameters.

  Args:
    config: the run's config (`config.optimizer`).
    steps_per_epoch: optimizer steps per epoch (1: full batch); the OneCycle schedule spans
      `optimizer.onecycle_total_steps × steps_per_epoch` steps.
  """
  oc = config.optimizer
  if oc.schedule == "onecycle":
    lr, b1 = _config_schedules(config, steps_per_epoch)
  elif oc.schedule == "constant":
    lr, b1 = oc.learning_rate, oc.b1
  else:
    raise ValueError(f"optimizer.schedule must be one of {CHOICES['optimizer.schedule']}, got {oc.schedule!r}")
  if oc.name == "adamw":
    return optax.inject_hyperparams(optax.adamw)(
        learning_rate=lr, b1=b1, b2=oc.b2, eps=oc.eps, weight_decay=oc.weight_decay
    )
  if oc.name == "adam":
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=b1, b2=oc.b2, eps=oc.eps)
  raise ValueError(f"optimizer.name must be one of {CHOICES['optimizer.name']}, got {oc.name!r}")


def learning_rate_at(config: ml_collections.ConfigDict, step: int, steps_per_epoch: int = 1) -> float:
  """The learning rate `create_optimizer(config, steps_per_epoch)` applies at optimizer step `step`."""
  if config.optimizer.schedule != "onecycle":
    return float(config.optimizer.learning_rate)
  lr, _ = _config_schedules(config, steps_per_epoch)
  return float(lr(step))
