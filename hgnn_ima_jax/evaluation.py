"""Evaluation during mini-batch training: every seed's eval-mode outputs on the whole graph.

Exact layer-wise inference of every node (`inference.LayerwiseInference`, config.batch.eval='layerwise'), or
sub-graphs of the validation and test targets sampled as for training ('sampled'); the result is the eval
dict `steps.track` reads.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hgnn_ima_jax import distributed
from hgnn_ima_jax import metrics as metrics_lib
from hgnn_ima_jax.graph import MMHN
from hgnn_ima_jax.hosts import host
from hgnn_ima_jax.inference import LayerwiseInference, largest_chunk_within
from hgnn_ima_jax.losses import masked_cross_entropy, val_att_weight
from hgnn_ima_jax.minibatch import BatchSettings, BatchSource
from hgnn_ima_jax.state import TrainState, create_model, variables_of

# Receivers per layer-wise chunk when config.batch.eval_chunk is 0 and no training batch bounds it, and the
# smallest size the automatic choice considers (the fixed default before it).
DEFAULT_EVAL_CHUNK = 4096


class Evaluator:
  """Eval-mode outputs of every seed on the whole graph: layer-wise (exact) or on sampled sub-graphs."""

  def __init__(self, config: ml_collections.ConfigDict, data: MMHN, settings: BatchSettings):
    self.config, self.data, self.settings = config, data, settings
    self.model = create_model(config, data.schema)
    self.labels = np.asarray(data.labels)
    self._layerwise = None
    self._sampled = None
    self.chunk_size: int | None = None  # the layer-wise chunk size in use, once chosen
    self.max_bytes: int | None = None  # the memory bound of the automatic chunk size (`evaluate` sets it)

  def _chunk_size(self, variables) -> int:
    """`settings.eval_chunk`, or for 0 the largest chunk whose programs need no more memory than the training
    step (`inference.largest_chunk_within`, a chunk for every device), or `DEFAULT_EVAL_CHUNK` without a bound."""
    if self.settings.eval_chunk:
      return self.settings.eval_chunk
    if self.max_bytes is None:
      return DEFAULT_EVAL_CHUNK
    chosen = largest_chunk_within(
        self.model, variables, self.data, self.max_bytes, start=DEFAULT_EVAL_CHUNK, min_chunks=jax.device_count()
    )
    return distributed.agree_smallest(chosen)  # every process must deal the same chunks

  def logits(self, params, batch_stats) -> tuple[np.ndarray, float]:
    """(logits of every target node, L_att) for one seed's variables."""
    variables = variables_of(params, batch_stats)
    if self.settings.eval == "layerwise":
      if self._layerwise is None:
        # Every device of every process takes a share of the chunks (all processes evaluate every seed alike).
        devices = jax.devices() if jax.device_count() > 1 else None
        self.chunk_size = self._chunk_size(variables)
        self._layerwise = LayerwiseInference(
            self.model, variables, self.data, chunk_size=self.chunk_size, devices=devices
        )
      else:
        self._layerwise.set_variables(variables)
      out = self._layerwise.run(self.data, compute_att_loss=bool(val_att_weight(self.config)))
      return out.logits, float(out.att_loss or 0.0)
    return self._sampled_logits(variables)

  def _sampled_logits(self, variables) -> tuple[np.ndarray, float]:
    """Logits of the validation and test targets from their own sampled sub-graphs (other rows stay 0)."""
    if self._sampled is None:
      targets = np.concatenate([self.data.splits["val"], self.data.splits["test"], self.data.splits["train"]])
      # evaluation batches are not split, and every target is evaluated (drop_last is training's)
      one = dataclasses.replace(self.settings, prefetch=0, parts=1, drop_last=False)
      self._sampled = BatchSource(self.data, one, targets, shuffle=False)
      self._apply = {}
    src = self._sampled
    logits = np.zeros((len(self.labels), self.data.num_classes), np.float32)
    att, n = 0.0, 0
    for _, padded in src.epoch(0):
      if padded.budget not in self._apply:
        model = create_model(self.config, padded.schema)
        self._apply[padded.budget] = jax.jit(
            lambda v, g, m=model: (lambda o: (o.logits, o.att_loss))(m.apply(v, g, train=False))
        )
      lg, a = self._apply[padded.budget](variables, jax.tree.map(jnp.asarray, padded.graph))
      logits[padded.targets] = np.asarray(lg)[padded.target_positions]
      att, n = att + float(a), n + 1
    return logits, att / max(n, 1)

  def evaluate(self, state: TrainState, num_seeds: int, max_bytes: int | None = None) -> dict:
    """The eval dict `steps.track` reads, stacked over the run's seeds (padding seeds evaluated as well).

    max_bytes: the training step's bytes per call (`StepPrograms.smallest_bytes`), the bound of an automatic
    `batch.eval_chunk` (read once, at the first layer-wise evaluation).
    """
    if self.max_bytes is None:
      self.max_bytes = max_bytes
    on_host = host((state.params, state.batch_stats))
    masks = {s: self.data.split_mask(s) for s in ("train", "val")}
    labels = jnp.asarray(self.labels, jnp.int32)
    rows = []
    for i in range(num_seeds):
      params, bs = jax.tree.map(lambda x: x[i], on_host[0]), jax.tree.map(lambda x: x[i], on_host[1])
      logits, att = self.logits(params, bs)
      val_loss = float(masked_cross_entropy(jnp.asarray(logits), labels, jnp.asarray(masks["val"])))
      val_loss += val_att_weight(self.config) * att
      pred = np.argmax(logits, axis=-1).astype(np.int32)
      row = {"val_loss": np.float32(val_loss), "pred": pred}
      for split, mask in masks.items():
        micro, macro = metrics_lib.f1_scores(jnp.asarray(pred), labels, jnp.asarray(mask), self.data.num_classes)
        row[f"{split}_micro_f1"], row[f"{split}_macro_f1"] = np.float32(micro), np.float32(macro)
      rows.append(row)
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}
