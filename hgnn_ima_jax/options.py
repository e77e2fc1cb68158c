"""The propagation layer's options: one frozen dataclass for the layer, the models, the configs and the reference.

Adding an attention or update option means adding one field here (and its allowed values to
`choices.CHOICES` when it is a string): `HGNNIMALayer` reads it from `options`, the
models forward the whole object, `experiments/configs/default.py` builds `config.model` from
`dataclasses.asdict(LayerOptions())`, and the dense reference in the tests takes its defaults
from the same place. JAX-free, so configs import it without starting JAX.

`BatchSettings` (config.batch, resolved) and `BATCH_FIELDS_READ` (which fields each batch mode reads) live
here for the same reason: config validation reads them before anything starts JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from hgnn_ima_jax.choices import CHOICES, nearest


@dataclasses.dataclass(frozen=True)
class LayerOptions:
  """How one HGNN-IMA (or HGT) layer computes its attention and update (Eqs. 2–11).

  Attributes:
    variant: Table 4 ablation of the nested attention: 'full', '-cross', '-adapt', '+inf',
      '-nei', '-align'.
    score_scale: c in Eq. 2; None means 1/sqrt(d_k) (HGT, FULL); the MISS code uses 100.
    align_sign: Eq. 8, 'code' (−mean over unordered modality pairs) or 'paper' (+sum over
      ordered pairs, as printed).
    combine: Eq. 9, 'mul' (softmax of β1·β2), 'add' (softmax of β1 + β2) or 'renorm' (ours:
      β1·β2 renormalised; see `attention.combine_attention`).
    beta_norm: Eq. 6, 'code' (β1 = Σλα unnormalised before Eq. 9) or 'paper' (softmax of Σλα
      over the in-edges first). `-cross` has no Eq. 6 and ignores it.
    align_off: `-align`'s β (no Eqs. 8–9): 'softmax' (softmax of Σλα, Eq. 6 as printed) or 'raw'
      (Σλα unnormalised, as the authors' model_modal3.py aggregates).
    nei_mode: `-nei`'s λ: 'mean' (segment mean of s over the neighbours) or 'target' (from the
      receiver alone).
    update_form: Eq. 11, 'code' (LN(σ(skip)·A(t) + (1−σ(skip))·h)) or 'paper' (A(σ(t)) + h).
    dropout: rate after the update.
    remat: recompute the node-sized products (the input projection, each layer's slot tables
      and sender-side message table) in the backward pass instead of keeping them, each where
      its gradient needs it: less memory per step, a few more matrix products
      (benchmarks/README.md, *Memory per edge*). Values and gradients are the same.
  """

  variant: str = "full"
  score_scale: float | None = None
  align_sign: str = "code"
  combine: str = "mul"
  beta_norm: str = "code"
  align_off: str = "softmax"
  nei_mode: str = "mean"
  update_form: str = "code"  # not `update`: --config.model.update= resolved to ConfigDict.update, a method
  dropout: float = 0.2
  remat: bool = False

  def __post_init__(self):
    for name in ("variant", "align_sign", "combine", "beta_norm", "align_off", "nei_mode", "update_form"):
      allowed, value = CHOICES[f"model.{name}"], getattr(self, name)
      if value not in allowed:
        raise ValueError(f"model.{name}={value!r} is not one of {allowed}. Fix: use one of them")
    if self.score_scale is not None and not self.score_scale > 0:
      raise ValueError(f"model.score_scale={self.score_scale}: must be > 0. Fix: give a positive c or None")
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"model.dropout={self.dropout}: must be in [0, 1). Fix: use a rate below 1")
    if self.variant == "-align" and self.align_off == "raw" and self.combine == "renorm":
      raise ValueError(
          "model.align_off='raw' and model.combine='renorm' both choose -align's β (raw Σλα vs Σλα "
          "renormalised). Fix: set only one of them"
      )

  @classmethod
  def names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))

  @classmethod
  def split(cls, fields: Mapping[str, Any]) -> tuple["LayerOptions", dict]:
    """(the layer options among `fields`, the remaining fields) — how models take flat config fields."""
    names = set(cls.names())
    return cls(**{k: v for k, v in fields.items() if k in names}), {k: v for k, v in fields.items() if k not in names}

  @property
  def uses_alignment(self) -> bool:
    """Eqs. 8–9 run (every variant but `-align`)."""
    return self.variant != "-align"

  @property
  def learns_lambda(self) -> bool:
    """λ has parameters U^m (Eq. 4); `-cross` has no λ and `-adapt` fixes it at 1/M."""
    return self.variant not in ("-cross", "-adapt")


@dataclasses.dataclass(frozen=True)
class BatchSettings:
  """`config.batch`, resolved (fanouts and iterations default to one per layer). experiments/configs/default.py
  builds `config.batch` from these defaults, as `config.model` from `LayerOptions`'."""

  # 'full' (one full-graph step per epoch, as the authors' code) | 'neighbor' (per-hop fanouts, like PyG's
  # NeighborLoader) | 'hgt' (HGSampling, like PyG's HGTLoader); hgnn_ima_jax.minibatch.
  mode: str = "full"
  size: int = 512  # target nodes per batch; an epoch is one pass over the shuffled training targets
  drop_last: bool = False  # leave out each epoch's last, smaller batch (its targets go unseen that epoch)
  # neighbor: one entry per hop: in-edges sampled per node and relation (-1: all), or a dict relation name ->
  # in-edges naming every relation (0 skips one), as `samplers.NeighborSampler` (empty: 10 per layer)
  fanouts: tuple = ()
  # hgt: nodes sampled per type per iteration: an int for every type, or a dict node type -> int (types not named
  # sample none), as `samplers.HGTSampler` and PyG's HGTLoader
  num_samples: Any = 128
  num_iterations: int = 0  # hgt: sampling iterations (0: one per layer)
  buckets: int = 3  # padded sizes a batch is rounded up to (the step compiles once per size)
  prefetch: int = 2  # batches prepared ahead on a background thread (0: in the training thread)
  seed: int = 0  # the batch sequence's seed (every model seed trains on the same batches)
  eval: str = "layerwise"  # 'layerwise' (exact, every node) | 'sampled' (sampled sub-graphs of val/test targets)
  eval_every: int = 1  # epochs between evaluations
  # Receivers per layer-wise chunk; 0: doubled from 4096 while the chunk programs need no more memory than the
  # smallest training step and each doubling pays (inference.largest_chunk_within: fewer chunks are faster).
  eval_chunk: int = 0
  parts: int = 1  # sub-graphs per batch, each sampled on its own; fixes the result on any number of devices
  # neighbor: layer k runs only on the nodes within the hops the later layers read (PyG's trim_to_layer): the
  # targets' outputs are unchanged; L_att then covers the edges those layers compute.
  trim: bool = True

  @classmethod
  def from_config(cls, config) -> "BatchSettings":
    batch = config.get("batch") or {}
    b = dict(batch.to_dict() if hasattr(batch, "to_dict") else batch)
    layers = int(config.model.num_layers)
    fanouts = b.get("fanouts")
    # a per-relation hop is a plain dict (it may arrive as a ConfigDict or from JSON)
    b["fanouts"] = (
        tuple(dict(f) if isinstance(f, Mapping) else f for f in fanouts) if fanouts else (10,) * max(1, layers)
    )
    b["num_iterations"] = int(b.get("num_iterations") or max(1, layers))
    if isinstance(b.get("num_samples"), Mapping):  # a plain dict (a ConfigDict once read back from config.json)
      b["num_samples"] = dict(b["num_samples"])
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(b) - known)
    if unknown:  # dropped without a word before (validate_config catches it in a config; a plain dict reached here)
      near = nearest(unknown[0], known)
      raise ValueError(
          f"config.batch.{unknown[0]}={b[unknown[0]]!r}: is not a batch field"
          + (f" (did you mean batch.{near}?)" if near else "")
          + f". Fix: drop it; the batch fields are {', '.join(sorted(known))}"
      )
    return cls(**b)

  @property
  def sampled(self) -> bool:
    return self.mode != "full"

  def sampler_meta(self) -> dict:
    """What fixes the batch sequence (kept in checkpoints, checked on resume)."""
    return {
        "mode": self.mode,
        "size": self.size,
        "fanouts": list(self.fanouts),
        "num_samples": self.num_samples,
        "num_iterations": self.num_iterations,
        "seed": self.seed,
        **({"parts": self.parts} if self.parts > 1 else {}),
        **({"drop_last": True} if self.drop_last else {}),
    }


# The batch fields each mode reads (`mode` aside). A field only another mode reads would be ignored, so a value
# other than its default is refused (`field_usage.unread_batch_fields`, `config_validation`): e.g.
# --config.batch.size without batch.mode. Both sampled modes read the batching fields; each reads its own sampler's.
_SAMPLED_FIELDS = ("size", "drop_last", "buckets", "prefetch", "seed", "eval", "eval_every", "eval_chunk", "parts")
BATCH_FIELDS_READ = {
    "full": (),
    "neighbor": _SAMPLED_FIELDS + ("fanouts", "trim"),
    "hgt": _SAMPLED_FIELDS + ("num_samples", "num_iterations"),
}
