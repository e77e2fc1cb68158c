"""An independent, deliberately naive NumPy reference of HGNN-IMA and its HGT baselines.

Written from the paper (Sec. 4) and /work/shared/docs/hgnn_ima_spec.md (§1 forward
as the authors' code does it, §2 L_att, §3 M modalities, §6 paper↔code flags,
§7 Table 4 ablations, §8 baselines), NOT from the model's code. Only the parameter
*names and shapes* of the Flax model are shared (so one params tree feeds both):

  encoder/projection/proj_<type>[_<channel>]/{kernel (D, d), bias (d,)}  x @ kernel + bias
  encoder/projection/bn_<type>_<channel>/{scale, bias} (+ batch_stats mean/var)
  encoder/layer_<k>/{k,q,v,a}_kernel (T, d, d), {k,q,v,a}_bias (T, d)
  encoder/layer_<k>/skip (T,), ln_scale/ln_bias (T, d)      (update='code' only)
  encoder/layer_<k>/w_att, w_msg (R, H, d_k, d_k)   row vector @ matrix per head
  encoder/layer_<k>/mu (R, H)
  encoder/layer_<k>/u_modal (M, R, H, d_k, d_k) or (M', M, R, H, d_k, d_k) for +inf
  fusion/score/{kernel (d,1), bias (1,)}        fusion_form='code'
  fusion/score_in/kernel (d,d), fusion/score_out/{kernel (d,1), bias}   'paper'
  head/{kernel (d, C), bias (C,)}
  HGTLate: encoder_<modality>/... instead of encoder/...

Heads split d head-major: feature h·d_k + c is head h, component c.

Everything is float64 with explicit Python loops over relations, receivers, their
in-edges, heads and modalities — slow and obvious on purpose (small graphs only).
Eval mode by default. `train=True` switches BatchNorm to batch statistics (biased
variance, as Flax normalises); dropout is applied only where `dropout_masks` gives the
keep masks (the test reads them off the model's dropout calls), so the reference checks
where each dropout sits and how it scales, not the random draw.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from hgnn_ima_jax.options import LayerOptions

BN_EPS = 1e-5
LN_EPS = 1e-5

# The layer options (variant, score scale, Eq. 6/8/9/11 forms, dropout) come from the library's one
# declaration, so a new option reaches the reference's defaults too; the reference implements them itself.
DEFAULT_OPTIONS = dict(
    hidden=64,
    heads=8,
    num_layers=3,
    projection="shared",
    input_batch_norm=False,
    input_activation="tanh",
    fusion_form="code",
    latt_norm="code_mean",
    fusion_input_dropout=0.6,
    fusion_score_dropout=0.5,
    **dataclasses.asdict(LayerOptions()),
)


# --------------------------------------------------------------------------- helpers
def _softmax(x):
  """Softmax of a 1-D list/array (shifted by the max; exact)."""
  x = np.asarray(x, np.float64)
  z = np.exp(x - x.max())
  return z / z.sum()


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _np(x):
  return np.asarray(x, dtype=np.float64)


def graph_arrays(graph) -> dict:
  """Features (float64), senders, receivers, edge types from an MMHN or a GraphsTuple."""
  if hasattr(graph, "to_graphs_tuple"):
    graph = graph.to_graphs_tuple(np.float64)
  return dict(
      features={m: _np(x) for m, x in graph.nodes["features"].items()},
      senders=np.asarray(graph.senders, np.int64),
      receivers=np.asarray(graph.receivers, np.int64),
      etype=np.asarray(graph.edges["type"], np.int64),
  )


def type_of_node(schema) -> np.ndarray:
  return np.concatenate([np.full(n, t) for t, n in enumerate(schema.num_nodes)])


def segments(schema, arrays) -> list[tuple[int, int, list[int]]]:
  """Every (relation r, receiver i, [its in-edges of r]) with at least one edge."""
  out = []
  for r in range(schema.num_relations):
    edges_r = [e for e in range(len(arrays["etype"])) if arrays["etype"][e] == r]
    receivers = sorted({int(arrays["receivers"][e]) for e in edges_r})
    for i in receivers:
      out.append((r, i, [e for e in edges_r if arrays["receivers"][e] == i]))
  return out


# --------------------------------------------------------------------------- Eq. 1
def input_projection(schema, arrays, pparams, bstats, channels, *, projection, batch_norm, activation, hidden, train):
  """h^{c,(0)} for every node and channel: act(Lin(BN(f))) per node type (spec §1.1).

  channels: tuple of tuples of modality ids; a channel with several modalities is
  their concatenation (HGT early fusion). Returns (h (N, C, d), batch statistics used).
  """
  N = schema.total_nodes
  h = np.zeros((N, len(channels), hidden))
  used_stats = {}
  for t, tname in enumerate(schema.node_types):
    sl = schema.node_slice(t)
    for c, mods in enumerate(channels):
      cname = "+".join(schema.modalities[m] for m in mods)
      x = np.concatenate(
          [arrays["features"][schema.modalities[m]][sl, : schema.feature_dims[t][m]] for m in mods], axis=1
      )
      if x.shape[1] == 1:  # a scalar input (AMAZON's log-price, spec §3) is embedded by an MLP(1→64→D) first
        mlp0, mlp1 = pparams[f"scalar_{tname}_{cname}_0"], pparams[f"scalar_{tname}_{cname}_1"]
        x = np.maximum(x @ _np(mlp0["kernel"]) + _np(mlp0["bias"]), 0.0) @ _np(mlp1["kernel"]) + _np(mlp1["bias"])
      if batch_norm:
        bn = f"bn_{tname}_{cname}"
        if train:
          mean = x.mean(axis=0)
          var = ((x - mean) ** 2).mean(axis=0)  # biased, as Flax normalises
        else:
          mean, var = _np(bstats[bn]["mean"]), _np(bstats[bn]["var"])
        used_stats[bn] = {"mean": mean, "var": var}
        x = (x - mean) / np.sqrt(var + BN_EPS) * _np(pparams[bn]["scale"]) + _np(pparams[bn]["bias"])
      lin = pparams[f"proj_{tname}" if projection == "shared" else f"proj_{tname}_{cname}"]
      y = x @ _np(lin["kernel"]) + _np(lin["bias"])
      if activation == "tanh":
        y = np.tanh(y)
      elif activation != "linear":
        raise ValueError(activation)
      h[sl, c] = y
  return h, used_stats


# --------------------------------------------------------------------------- Eqs. 2–11
def _typed(h, kernel, bias, tnode):
  """Row n gets node type tnode[n]'s linear: h[n] @ kernel[t] + bias[t]; h is (N, C, d)."""
  out = np.zeros(h.shape[:-1] + (kernel.shape[-1],))
  for n in range(h.shape[0]):
    t = tnode[n]
    out[n] = h[n] @ kernel[t] + bias[t]
  return out


def propagation_layer(
    schema,
    arrays,
    segs,
    lp,
    h,
    *,
    heads,
    attention,
    variant,
    score_scale,
    align_sign,
    combine,
    beta_norm,
    align_off,
    nei_mode,
    update,
):
  """One layer. h (N, C, d) → (new h, aux with per-edge alpha/lambda/beta/beta2)."""
  N, C, d = h.shape
  H = heads
  dk = d // H
  c = 1.0 / math.sqrt(dk) if score_scale is None else float(score_scale)
  tnode = type_of_node(schema)
  E = len(arrays["etype"])
  snd, rcv = arrays["senders"], arrays["receivers"]
  p = {k: _np(v) for k, v in lp.items()}

  K = _typed(h, p["k_kernel"], p["k_bias"], tnode).reshape(N, C, H, dk)
  Q = _typed(h, p["q_kernel"], p["q_bias"], tnode).reshape(N, C, H, dk)
  V = _typed(h, p["v_kernel"], p["v_bias"], tnode).reshape(N, C, H, dk)

  # Per-edge scores and messages (Eqs. 2, 4, 10 numerators), one edge at a time.
  g = np.zeros((E, C, H))
  s = np.zeros((E, C, C, H)) if variant == "+inf" else np.zeros((E, C, H))
  msg = np.zeros((E, C, H, dk))
  uses_lambda = attention == "ima" and variant not in ("-cross", "-adapt")
  for e in range(E):
    r, j, i = int(arrays["etype"][e]), int(snd[e]), int(rcv[e])
    for hh in range(H):
      for m in range(C):
        g[e, m, hh] = c * p["mu"][r, hh] * Q[i, m, hh] @ (K[j, m, hh] @ p["w_att"][r, hh])
        msg[e, m, hh] = V[j, m, hh] @ p["w_msg"][r, hh]
        if uses_lambda and variant == "+inf":
          # s^{m'→m}: receiver in the influenced modality m, sender in m' (U^{m',m}).
          for mi in range(C):
            s[e, m, mi, hh] = Q[i, mi, hh] @ (K[j, m, hh] @ p["u_modal"][m, mi, r, hh])
        elif uses_lambda:
          s[e, m, hh] = Q[i, m, hh] @ (K[j, m, hh] @ p["u_modal"][m, r, hh])

  alpha = np.zeros((E, C, H))
  per_modality_beta = attention == "hgt" or variant in ("-cross", "+inf")
  beta = np.zeros((E, C, H)) if per_modality_beta else np.zeros((E, H))
  beta1_out = np.zeros_like(beta)
  if attention == "hgt":
    lam = None
  elif variant == "+inf":
    lam = np.zeros((E, C, C, H))
  else:
    lam = np.zeros((E, C, H))
  has_beta2 = attention == "ima" and variant != "-align"
  beta2 = np.zeros((E, H)) if has_beta2 else None

  P = C * (C - 1) / 2
  for r, i, ins in segs:
    for hh in range(H):
      # Eq. 3: α^m over the in-edges of relation r at i.
      for m in range(C):
        a = _softmax([g[e, m, hh] for e in ins])
        for e, v in zip(ins, a):
          alpha[e, m, hh] = v
      if attention == "hgt":  # plain HGT: each channel with its own α
        for e in ins:
          beta[e, :, hh] = alpha[e, :, hh]
        continue

      # Eq. 5: λ per edge (or per receiver for -nei).
      if variant in ("full", "-align", "-cross", "+inf"):
        for e in ins:
          if variant == "+inf":
            for mi in range(C):
              lam[e, :, mi, hh] = _softmax(s[e, :, mi, hh])
          elif variant != "-cross":
            lam[e, :, hh] = _softmax(s[e, :, hh])
      elif variant == "-adapt":
        for e in ins:
          lam[e, :, hh] = 1.0 / C
      elif variant == "-nei":
        if nei_mode == "mean":
          score = [np.mean([s[e, m, hh] for e in ins]) for m in range(C)]
        elif nei_mode == "target":
          t = schema.relation_dst(r)
          ki = h[i] @ p["k_kernel"][t] + p["k_bias"][t]  # K of the receiver itself
          qi = h[i] @ p["q_kernel"][t] + p["q_bias"][t]
          ki, qi = ki.reshape(C, H, dk), qi.reshape(C, H, dk)
          score = [qi[m, hh] @ (ki[m, hh] @ p["u_modal"][m, r, hh]) for m in range(C)]
        else:
          raise ValueError(nei_mode)
        li = _softmax(score)
        for e in ins:
          lam[e, :, hh] = li
      else:
        raise ValueError(variant)

      # Eq. 6 inside the softmax: β1 (one, or one per influenced modality).
      if variant == "-cross":
        b1 = {m: [alpha[e, m, hh] for e in ins] for m in range(C)}
      elif variant == "+inf":
        b1 = {m: [sum(lam[e, mp, m, hh] * alpha[e, mp, hh] for mp in range(C)) for e in ins] for m in range(C)}
      else:
        b1 = {None: [sum(lam[e, m, hh] * alpha[e, m, hh] for m in range(C)) for e in ins]}
      # Eq. 6 as printed: softmax over neighbours first. -cross removes the unit of Eq. 6: α^m,
      # a softmax already, replaces its β (Sec. 5.5), so there is no Eq. 6 softmax to apply.
      if beta_norm == "paper" and variant != "-cross":
        b1 = {k: list(_softmax(v)) for k, v in b1.items()}
      elif beta_norm not in ("code", "paper"):
        raise ValueError(beta_norm)

      # Eq. 8: alignment β2 from the raw (scaled) scores.
      if has_beta2:
        logits = []
        for e in ins:
          if align_sign == "code":
            tot = sum(abs(g[e, m1, hh] - g[e, m2, hh]) for m1 in range(C) for m2 in range(m1 + 1, C))
            logits.append(-tot / P)
          elif align_sign == "paper":
            logits.append(sum(abs(g[e, m1, hh] - g[e, m2, hh]) for m1 in range(C) for m2 in range(C)))
          else:
            raise ValueError(align_sign)
        b2 = _softmax(logits)
        for e, v in zip(ins, b2):
          beta2[e, hh] = v

      # Eq. 9.
      for key, vals in b1.items():
        if combine == "renorm":  # ours: the product renormalised to sum to one
          prod = [v * (beta2[e, hh] if has_beta2 else 1.0) for v, e in zip(vals, ins)]
          final = [p / sum(prod) for p in prod]
        elif not has_beta2:
          # -align: "directly uses β (Eq. 6) to replace β̃ in Eq. 10" (Sec. 5.5): no Eq. 9. β is
          # Σλα softmaxed once: by Eq. 6 itself (beta_norm='paper'), or by the code's softmax,
          # which the code applies after Eq. 9 only; align_off='raw' keeps Σλα as model_modal3.py.
          if align_off == "raw" or beta_norm == "paper":
            final = list(vals)
          elif align_off == "softmax":
            final = _softmax(vals)
          else:
            raise ValueError(align_off)
        elif combine == "mul":
          final = _softmax([v * beta2[e, hh] for v, e in zip(vals, ins)])
        elif combine == "add":
          final = _softmax([v + beta2[e, hh] for v, e in zip(vals, ins)])
        else:
          raise ValueError(combine)
        for e, v, v1 in zip(ins, final, vals):
          if key is None:
            beta[e, hh], beta1_out[e, hh] = v, v1
          else:
            beta[e, key, hh], beta1_out[e, key, hh] = v, v1

  # Eq. 10: aggregate per relation; receivers without in-edges of r get zeros.
  agg = np.zeros((schema.num_relations, N, C, H, dk))
  for r, i, ins in segs:
    for e in ins:
      for m in range(C):
        for hh in range(H):
          w = beta[e, m, hh] if per_modality_beta else beta[e, hh]
          agg[r, i, m, hh] += w * msg[e, m, hh]
  # Cross-relation mean over R_t (every relation into the type, empty ones included).
  t_all = np.zeros((N, C, d))
  for n in range(N):
    rels = schema.relations_into(int(tnode[n]))
    if rels:
      t_all[n] = sum(agg[r, n].reshape(C, d) for r in rels) / len(rels)

  # Eq. 11.
  new = np.zeros_like(h)
  for n in range(N):
    t = int(tnode[n])
    if update == "code":
      a = _sigmoid(p["skip"][t])
      u = a * (t_all[n] @ p["a_kernel"][t] + p["a_bias"][t]) + (1 - a) * h[n]
      mean = u.mean(axis=-1, keepdims=True)
      var = ((u - mean) ** 2).mean(axis=-1, keepdims=True)
      new[n] = (u - mean) / np.sqrt(var + LN_EPS) * p["ln_scale"][t] + p["ln_bias"][t]
    elif update == "paper":
      new[n] = _sigmoid(t_all[n]) @ p["a_kernel"][t] + p["a_bias"][t] + h[n]
    else:
      raise ValueError(update)
  has_lambda = attention == "ima" and variant != "-cross"  # -adapt: the constant 1/M
  aux = dict(alpha=alpha, beta=beta, beta1=beta1_out, beta2=beta2, g=g, **{"lambda": lam if has_lambda else None})
  return new, aux


# --------------------------------------------------------------------------- Eq. 7
def attention_loss(schema, arrays, layers_aux, norm="code_mean"):
  """L_att from the λ mass on the modalities each edge's sender lacks (spec §2, §3).

  code_mean: per layer, for each relation whose source type lacks a modality (and
  has edges), mean over (edge, head) of Σ_{m' missing} λ^{m'} (for +inf also mean
  over the influenced modality); mean over those relations; mean over layers.
  paper_sum: Σ over layers, edges and missing m' of the head-mean λ, / (K·M).
  """
  K = len(layers_aux)
  M = schema.num_modalities
  if not layers_aux or layers_aux[0]["lambda"] is None:
    return 0.0
  per_layer, total = [], 0.0
  for aux in layers_aux:
    lam = aux["lambda"]
    rel_means = []
    for r in range(schema.num_relations):
      missing = schema.missing_modalities(schema.relation_src(r))
      edges = [e for e in range(len(arrays["etype"])) if arrays["etype"][e] == r]
      if not missing:
        continue
      # lam[e, m'] is (H,), or (M, H) for +inf: the mean runs over heads (and influenced m)
      vals = [sum(lam[e, mp].mean() for mp in missing) for e in edges]
      total += sum(vals)
      if edges:
        rel_means.append(np.mean(vals))
    per_layer.append(np.mean(rel_means) if rel_means else 0.0)
  if norm == "code_mean":
    return float(np.mean(per_layer))
  if norm == "paper_sum":
    return float(total / (K * M))
  raise ValueError(norm)


# --------------------------------------------------------------------------- Eqs. 12–15
def _drop(x, keep_mask, rate):
  """Inverted dropout with a given keep mask: kept entries scaled by 1/(1 − rate), the rest 0."""
  return np.where(np.asarray(keep_mask, bool), x / (1.0 - rate), 0.0)


def fusion(fparams, x, form="code", masks=None, rates=(0.6, 0.5)):
  """x (N, M, d) → (Z (N, d), δ (N, M)).

  masks: None (eval mode) or the keep masks of the code form's two dropouts, (input (N, M, d),
  score (N, M, 1)) with `rates`: ω = tanh(Drop_score(Lin(Drop_input(X)))); Z uses the un-dropped X.
  """
  fp = {k: {kk: _np(vv) for kk, vv in v.items()} for k, v in fparams.items()}
  N, M, _ = x.shape
  xs = x if masks is None else _drop(x, masks[0], rates[0])
  omega = np.zeros((N, M))
  for n in range(N):
    for m in range(M):
      if form == "code":
        score = xs[n, m] @ fp["score"]["kernel"][:, 0] + fp["score"]["bias"][0]
        if masks is not None:
          score = _drop(score, masks[1][n, m, 0], rates[1])
        omega[n, m] = np.tanh(score)
      elif form == "paper":
        omega[n, m] = (
            np.tanh(x[n, m] @ fp["score_in"]["kernel"]) @ fp["score_out"]["kernel"][:, 0] + fp["score_out"]["bias"][0]
        )
      else:
        raise ValueError(form)
  delta = np.stack([_softmax(omega[n]) for n in range(N)])
  z = np.einsum("nm,nmd->nd", delta, x)
  return z, delta


def _head(hp, x):
  return x @ _np(hp["kernel"]) + _np(hp["bias"])


# --------------------------------------------------------------------------- models
def encode(schema, arrays, segs, eparams, estats, channels, opts, *, attention, train, layer_masks=None):
  """Eq. 1 and K layers; layer_masks: None or one keep mask (N, C, d) per layer for the dropout
  after each layer's update (spec §1.2: h^(k) = Dropout(LN(u))), at rate opts['dropout']."""
  h, used = input_projection(
      schema,
      arrays,
      eparams["projection"],
      (estats or {}).get("projection"),
      channels,
      projection=opts["projection"],
      batch_norm=opts["input_batch_norm"],
      activation=opts["input_activation"],
      hidden=opts["hidden"],
      train=train,
  )
  layers = []
  for k in range(opts["num_layers"]):
    h, aux = propagation_layer(
        schema,
        arrays,
        segs,
        eparams[f"layer_{k}"],
        h,
        heads=opts["heads"],
        attention=attention,
        variant=opts["variant"] if attention == "ima" else "full",
        score_scale=opts["score_scale"],
        align_sign=opts["align_sign"],
        combine=opts["combine"],
        beta_norm=opts["beta_norm"],
        align_off=opts["align_off"],
        nei_mode=opts["nei_mode"],
        update=opts["update_form"],
    )
    if layer_masks is not None:
      h = _drop(h, layer_masks[k], opts["dropout"])
    layers.append(aux)
  return h, layers, used


def reference_forward(
    schema,
    graph,
    variables: dict,
    model: str = "hgnn_ima",
    *,
    train: bool = False,
    dropout_masks: dict | None = None,
    **options: Any,
) -> dict:
  """The full forward of `model` ∈ {'hgnn_ima', 'hgt', 'hgt_late'}.

  graph: the MMHN or its GraphsTuple. variables: {'params': ..., 'batch_stats': ...}
  (numpy or jax arrays). options: the model's fields (see DEFAULT_OPTIONS); for
  'hgt' also `modalities` (names, concatenated into one channel; None = all).
  train: BatchNorm uses batch statistics. dropout_masks: None (no dropout) or the keep masks of
  every dropout site, {'layers': [(N, C, d) per layer], 'fusion_input': (N*, M, d),
  'fusion_score': (N*, M, 1)}; for 'hgt_late' 'layers' maps each modality name to its list.
  Rates are the options dropout / fusion_input_dropout / fusion_score_dropout.

  Returns dict: layers (list of per-layer dicts alpha (E,C,H), lambda, beta, beta1,
  beta2, g; for hgt_late a list of such lists, one per modality), nodes (N, C, d),
  modalities (N*, C, d), fused (N*, d), fusion_weights (N*, C), logits (N*, C_cls),
  modality_logits (C, N*, C_cls), att_loss, batch_stats (BN statistics used).
  """
  unknown = set(options) - set(DEFAULT_OPTIONS) - {"modalities"}
  if unknown:
    raise TypeError(f"unknown options {unknown}")
  opts = {**DEFAULT_OPTIONS, **options}
  arrays = graph_arrays(graph)
  segs = segments(schema, arrays)
  params = variables["params"]
  stats = variables.get("batch_stats", {})
  tsl = schema.node_slice(schema.target_id)
  M = schema.num_modalities
  out: dict[str, Any] = {}
  dm = dropout_masks or {}
  fusion_masks = (dm["fusion_input"], dm["fusion_score"]) if "fusion_input" in dm else None
  fusion_rates = (opts["fusion_input_dropout"], opts["fusion_score_dropout"])

  def run_encoder(name, channels, attention, layer_masks):
    """One encoder (Eq. 1 and the K layers) with its parameters and BN statistics under `name`."""
    return encode(
        schema,
        arrays,
        segs,
        params[name],
        stats.get(name),
        channels,
        opts,
        attention=attention,
        train=train,
        layer_masks=layer_masks,
    )

  if model == "hgnn_ima":
    channels = tuple((m,) for m in range(M))
    h, layers, used = run_encoder("encoder", channels, "ima", dm.get("layers"))
    x = h[tsl]
    z, delta = fusion(params["fusion"], x, opts["fusion_form"], fusion_masks, fusion_rates)
    # λ-free ablations (-cross: no λ; -adapt: λ fixed at 1/M) have nothing for L_att to train.
    latt = 0.0 if opts["variant"] in ("-cross", "-adapt") else attention_loss(schema, arrays, layers, opts["latt_norm"])
    out.update(layers=layers, att_loss=latt, batch_stats=used)
  elif model == "hgt":
    mods = opts.get("modalities")
    mods = schema.modalities if mods is None else mods
    channels = (tuple(schema.modality_id(m) for m in mods),)
    h, layers, used = run_encoder("encoder", channels, "hgt", dm.get("layers"))
    x = h[tsl]
    z, delta = x[:, 0], np.ones((x.shape[0], 1))
    out.update(layers=layers, att_loss=0.0, batch_stats=used)
  elif model == "hgt_late":
    hs, all_layers, used = [], [], {}
    for m, mname in enumerate(schema.modalities):
      hm, layers, u = run_encoder(f"encoder_{mname}", ((m,),), "hgt", dm["layers"][mname] if dropout_masks else None)
      hs.append(hm[:, 0])
      all_layers.append(layers)
      used[mname] = u
    h = np.stack(hs, axis=1)
    x = h[tsl]
    z, delta = fusion(params["fusion"], x, opts["fusion_form"], fusion_masks, fusion_rates)
    out.update(layers=all_layers, att_loss=0.0, batch_stats=used)
  else:
    raise ValueError(model)

  out.update(
      nodes=h,
      modalities=x,
      fused=z,
      fusion_weights=delta,
      logits=_head(params["head"], z),
      modality_logits=np.stack([_head(params["head"], x[:, m]) for m in range(x.shape[1])]),
  )
  return out
