"""Training objectives: the attention loss (Eq. 7), the cross-entropies (Eq. 16) and their sum (Eq. 17).

Per-dataset variants follow the code (spec §4). A padded mini-batch graph marks its padding
edges with `graph.edges['valid']`; the attention loss leaves them out (the classification
losses only see the masked target nodes).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import jraph
import optax

from hgnn_ima_jax.choices import CHOICES
from hgnn_ima_jax.graph import Schema


def attention_loss_terms(lam: jax.Array, source_missing: jax.Array) -> jax.Array:
  """Eq. 7 per edge: Σ_{m' ∉ f(ψ(v_j))} λ^{m'}_{e,h}, averaged over heads (and influenced modalities).

  Args:
    lam: (E, M, H), or (E, M', M, H) for `+inf`.
    source_missing: (E, M) True where the edge's sender lacks modality m'.
  Returns:
    (E,) the λ mass on the sender's missing modalities.
  """
  miss = source_missing.astype(lam.dtype)
  miss = miss.reshape(miss.shape + (1,) * (lam.ndim - 2))
  per_edge = jnp.sum(lam * miss, axis=1)
  return jnp.mean(per_edge.reshape(per_edge.shape[0], -1), axis=1)


def attention_loss(schema: Schema, graph: jraph.GraphsTuple, layers_aux: Sequence[dict], norm: str) -> jax.Array:
  """Eq. 7, L_att, from presence masks: λ mass on modalities each edge's *sender* lacks.

  norm 'code_mean' (default, the code): per layer, mean over (edge, head) within each
  relation whose source type lacks a modality, averaged over those relations, then
  over layers. 'paper_sum': Σ over layers, edges and missing modalities (mean over
  heads) divided by K·|M|, as Eq. 7 prints it. With `graph.edges['valid']` (a padded
  batch), padding edges are left out and a relation without valid edges does not count; a
  trimmed layer's 'valid' (its aux) leaves out the edges it did not compute as well.
  """
  if norm not in CHOICES["model.latt_norm"]:
    raise ValueError(f"latt_norm must be one of {CHOICES['model.latt_norm']}, got {norm!r}")
  layers = [aux for aux in layers_aux if aux.get("lambda") is not None]
  if not layers:
    return jnp.zeros(())
  present = graph.nodes["present"]
  graph_valid = graph.edges.get("valid") if isinstance(graph.edges, dict) else None
  missing = jnp.stack([~present[m][graph.senders] for m in schema.modalities], axis=1)  # (E, M)
  rels = [
      r
      for r in range(schema.num_relations)
      if schema.missing_modalities(schema.relation_src(r)) and schema.num_edges[r] > 0
  ]
  per_layer = []
  for aux in layers:
    valid = aux.get("valid", graph_valid)  # a trimmed layer's own edges (`models.Encoder`)
    terms = attention_loss_terms(aux["lambda"], missing)  # (E,)
    if valid is not None:
      terms = jnp.where(valid, terms, 0.0)
    if norm == "paper_sum":
      per_layer.append(jnp.sum(terms))
    elif not rels:
      per_layer.append(jnp.zeros((), terms.dtype))
    elif valid is None:
      per_layer.append(sum(jnp.mean(terms[schema.edge_slice(r)]) for r in rels) / len(rels))
    else:
      counts = [jnp.sum(valid[schema.edge_slice(r)]) for r in rels]
      means = [jnp.sum(terms[schema.edge_slice(r)]) / jnp.maximum(c, 1) for r, c in zip(rels, counts)]
      used = sum((c > 0).astype(terms.dtype) for c in counts)
      per_layer.append(sum(means) / jnp.maximum(used, 1.0))
  total = sum(per_layer)
  if norm == "code_mean":
    return total / len(layers)
  return total / (len(layers) * schema.num_modalities)


def masked_cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean cross-entropy over the nodes where `mask` is True (torch's CE over the indexed nodes)."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  mask = mask.astype(ce.dtype)
  return jnp.sum(ce * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def classification_loss(output, labels: jax.Array, mask: jax.Array, ind_loss: bool) -> jax.Array:
  """Eq. 16: CE on the fused logits, or (CE(O) + Σ_m CE(O^m)) / (1 + M) with `ind_loss`.

  The MISS code uses the fused CE only (the paper's −L_ind); FULL and the paper average
  the 1 + M heads. Means over labelled nodes replace the paper's sums.
  """
  fused = masked_cross_entropy(output.logits, labels, mask)
  if not ind_loss:
    return fused
  per_mod = jax.vmap(lambda lg: masked_cross_entropy(lg, labels, mask))(output.modality_logits)
  return (fused + jnp.sum(per_mod)) / (1 + per_mod.shape[0])


def output_rows(output, labels: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """labels and mask cut to the logits' rows: a trimmed model (`models.Encoder`) returns only the
  target type's nodes within hop 0, a prefix that holds every target of the batch."""
  n = output.logits.shape[0]
  if labels.shape[0] < n:
    raise ValueError(f"labels: {labels.shape[0]} rows for {n} logits. Fix: pass one label per target-type node")
  return (labels, mask) if labels.shape[0] == n else (labels[:n], mask[:n])


def objective(output, labels: jax.Array, mask: jax.Array, *, ind_loss: bool, att_weight: float):
  """Eq. 17: L = L_cro + w · L_att. Returns (loss, {'ce': ..., 'att': ...})."""
  labels, mask = output_rows(output, labels, mask)
  ce = classification_loss(output, labels, mask, ind_loss)
  return ce + att_weight * output.att_loss, {"ce": ce, "att": output.att_loss}


# --- sufficient statistics: one global loss over several sub-graphs (hgnn_ima_jax.distributed) ----------------


def objective_stats(
    schema: Schema,
    graph: jraph.GraphsTuple,
    output,
    labels: jax.Array,
    mask: jax.Array,
    *,
    ind_loss: bool,
    norm: str,
    learns_lambda: bool,
) -> dict:
  """What Eq. 17 over several padded sub-graphs needs from one of them: sums and counts, no means.

  'ce_sum' is Σ over the masked targets of the fused CE (plus the per-modality CEs with `ind_loss`, so
  that ce_sum / count is `classification_loss`), 'count' the masked targets; 'att_sum' and
  'att_count' (L, R) the per-layer, per-relation L_att sums and valid-edge counts (relations that
  `attention_loss` skips are 0). `objective_from_stats` of the stats summed over sub-graphs is the loss
  of all of them at once; for one sub-graph it is `objective` (tests/test_devices.py checks it).
  """
  labels, mask = output_rows(output, labels, mask)
  ce = optax.softmax_cross_entropy_with_integer_labels(output.logits, labels)
  m = mask.astype(ce.dtype)
  ce_sum = jnp.sum(ce * m)
  if ind_loss:
    per_mod = jax.vmap(lambda lg: optax.softmax_cross_entropy_with_integer_labels(lg, labels))(output.modality_logits)
    ce_sum = (ce_sum + jnp.sum(per_mod * m)) / (1 + per_mod.shape[0])
  stats = {"ce_sum": ce_sum, "count": jnp.sum(m)}
  layers = [aux for aux in (output.attention or ()) if aux.get("lambda") is not None] if learns_lambda else []
  R = schema.num_relations
  if not layers:
    stats.update(att_sum=jnp.zeros((1, R), ce.dtype), att_count=jnp.zeros((1, R), ce.dtype))
    return stats
  present = graph.nodes["present"]
  graph_valid = graph.edges.get("valid") if isinstance(graph.edges, dict) else None
  graph_valid = jnp.ones(graph.senders.shape, bool) if graph_valid is None else graph_valid
  missing = jnp.stack([~present[mod][graph.senders] for mod in schema.modalities], axis=1)
  rels = [r for r in range(R) if schema.missing_modalities(schema.relation_src(r)) and schema.num_edges[r] > 0]
  zero = jnp.zeros((), ce.dtype)
  sums, counts = [], []
  for aux in layers:
    valid = aux.get("valid", graph_valid)  # a trimmed layer's own edges (`models.Encoder`)
    terms = jnp.where(valid, attention_loss_terms(aux["lambda"], missing), 0.0)
    row = [jnp.sum(terms[schema.edge_slice(r)]) if r in rels else zero for r in range(R)]
    if norm == "paper_sum":  # a plain sum over edges: the relation split does not matter
      row = [jnp.sum(terms)] + [zero] * (R - 1)
    sums.append(jnp.stack(row))
    counts.append(
        jnp.stack([jnp.sum(valid[schema.edge_slice(r)]).astype(ce.dtype) if r in rels else zero for r in range(R)])
    )
  stats.update(att_sum=jnp.stack(sums), att_count=jnp.stack(counts))
  return stats


def attention_loss_from_stats(att_sum: jax.Array, att_count: jax.Array, num_modalities: int, norm: str) -> jax.Array:
  """`attention_loss` from (summed) per-layer, per-relation sums and counts: the same normalisation."""
  num_layers = att_sum.shape[0]
  if norm == "paper_sum":
    return jnp.sum(att_sum) / (num_layers * num_modalities)
  means = att_sum / jnp.maximum(att_count, 1.0)  # (L, R); unused relations are 0 / 1
  used = jnp.sum((att_count > 0).astype(att_sum.dtype), axis=1)  # (L,): a trimmed layer has its own edges
  return jnp.sum(jnp.sum(means, axis=1) / jnp.maximum(used, 1.0)) / num_layers


def objective_from_stats(stats: dict, *, att_weight: float, num_modalities: int, norm: str):
  """Eq. 17 from `objective_stats` summed over sub-graphs: (loss, {'ce': ..., 'att': ...})."""
  ce = stats["ce_sum"] / jnp.maximum(stats["count"], 1.0)
  att = attention_loss_from_stats(stats["att_sum"], stats["att_count"], num_modalities, norm)
  return ce + att_weight * att, {"ce": ce, "att": att}


def val_att_weight(config) -> float:
  """L_att's weight in the validation loss: the training loss's (loss.att_weight, 1 in the code, whose MISS
  validation loss is CE + L_att) when loss.val_includes_att, else 0. So `-L_att` (att_weight 0) early-stops and
  selects on CE alone, as it trains: with weight 1 there, a term it no longer learns drove the paper protocol's
  stopping and checkpoint choice."""
  return float(config.loss.att_weight) if config.loss.val_includes_att else 0.0


def val_rule_changed(config) -> bool:
  """Whether `val_att_weight` gives this config another validation loss than the rule before it (L_att at weight
  1 whenever val_includes_att): a run saved under the old rule then selected and stopped on another loss."""
  return bool(config.loss.val_includes_att) and float(config.loss.att_weight) != 1.0
