"""PyTorch Geometric's `HGTConv` as the reference baseline of `benchmarks/step_time.py`.

Needs `requirements-bench.txt` (torch, torch_geometric); this module imports torch at import
time, so import it only after checking `available()`.

Models (spec §8 widths: K layers, d wide, H heads; the same graph and inputs as ours):
  pyg_hgt_early: per node type tanh(Linear(D_text + D_image → d)) on the concatenated
    features, K × HGTConv(d, d, heads=H), dropout after each layer, Linear(d → C) head.
  pyg_hgt_late: one such stack per modality (no shared parameters, each on its own
    modality's D-wide input), the modality attention of spec §1.3 on the target nodes
    (ω = tanh(Dropout_0.5(Linear_{d→1}(Dropout_0.6(X)))), δ = softmax over modalities,
    Z = Σ δ X), then the Linear(d → C) head.
One step = forward, CE on the train split of the target type, backward, Adam step.

PyG's HGTConv is PyG's HGT, not ours: it softmaxes over all of a node's in-edges across
relations at once (ours: per relation, then a mean over relations, as the authors' DGL
code), applies GELU before the output linear and has no LayerNorm. The work per edge is
the same order (one K/Q/V per node, one relation transform per sender, one gather per edge).
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import time

import numpy as np

try:
  import torch
  import torch.nn.functional as F
  import torch_geometric
  from torch_geometric.data import HeteroData
  from torch_geometric.nn import HGTConv

  _IMPORT_ERROR = None
except ImportError as e:  # pragma: no cover - exercised when requirements-bench.txt is absent
  torch = None
  _IMPORT_ERROR = e

MODELS = ("pyg_hgt_early", "pyg_hgt_late")


def _cpu_seconds() -> float:
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def available() -> tuple[bool, str]:
  """(importable, reason when not)."""
  if _IMPORT_ERROR is None:
    return True, ""
  return False, f"torch/torch_geometric not importable ({_IMPORT_ERROR}); pip install -r requirements-bench.txt"


def versions() -> dict:
  if torch is None:
    return {}
  import torch_geometric.typing as pyg_typing

  return {
      "torch": torch.__version__,
      "torch_geometric": torch_geometric.__version__,
      "torch_threads": torch.get_num_threads(),
      "pyg_lib": bool(pyg_typing.WITH_PYG_LIB),
      "torch_scatter": bool(pyg_typing.WITH_TORCH_SCATTER),
      "torch_sparse": bool(pyg_typing.WITH_TORCH_SPARSE),
      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
  }


def to_hetero_data(data) -> "HeteroData":
  """Our `MMHN` as a `HeteroData`: same node types, same edges (receiver-sorted), relation names as edge types.

  Per node type: `x_<modality>` (N_t, D_m) float32 for every modality (missing ones as our
  loader filled them), `y`/`train_mask` on the target type.
  """
  hd = HeteroData()
  for t in data.node_types:
    for m in data.modalities:
      hd[t][f"x_{m}"] = torch.from_numpy(np.ascontiguousarray(data.features[t][m], np.float32))
    hd[t].num_nodes = int(data.num_nodes[t])
  for r in data.relations:
    e = np.asarray(data.edges[r.name], np.int64).reshape(-1, 2)
    e = e[np.lexsort((e[:, 0], e[:, 1]))]  # the order of MMHN.to_graphs_tuple
    hd[r.src, r.name, r.dst].edge_index = torch.from_numpy(np.ascontiguousarray(e.T))
  tgt = data.target_type
  hd[tgt].y = torch.from_numpy(np.asarray(data.labels, np.int64))
  hd[tgt].train_mask = torch.from_numpy(data.split_mask("train"))
  return hd


if torch is not None:

  class HGTStack(torch.nn.Module):
    """tanh(Linear_t) input projection, then `layers` HGTConv layers with dropout."""

    def __init__(self, in_dims: dict, hidden: int, heads: int, layers: int, metadata, dropout: float):
      super().__init__()
      self.proj = torch.nn.ModuleDict({t: torch.nn.Linear(d, hidden) for t, d in in_dims.items()})
      self.convs = torch.nn.ModuleList([HGTConv(hidden, hidden, metadata, heads=heads) for _ in range(layers)])
      self.dropout = dropout

    def forward(self, x_dict, edge_index_dict):
      h = {t: torch.tanh(self.proj[t](x)) for t, x in x_dict.items()}
      for conv in self.convs:
        out = conv(h, edge_index_dict)
        h = {t: F.dropout(out.get(t, h[t]), self.dropout, self.training) for t in h}
      return h

  class PygHGTEarly(torch.nn.Module):
    """Early fusion: concatenated modalities → one HGT stack → head."""

    def __init__(self, hd, modalities, target, num_classes, hidden, heads, layers, dropout=0.2):
      super().__init__()
      self.modalities, self.target = tuple(modalities), target
      dims = {t: sum(hd[t][f"x_{m}"].shape[1] for m in modalities) for t in hd.node_types}
      self.stack = HGTStack(dims, hidden, heads, layers, hd.metadata(), dropout)
      self.head = torch.nn.Linear(hidden, num_classes)

    def inputs(self, hd):
      return {t: torch.cat([hd[t][f"x_{m}"] for m in self.modalities], dim=1) for t in hd.node_types}

    def forward(self, x_dict, edge_index_dict):
      return self.head(self.stack(x_dict, edge_index_dict)[self.target])

  class PygHGTLate(torch.nn.Module):
    """Late fusion: one HGT stack per modality, modality attention (spec §1.3) on the target, head."""

    def __init__(
        self,
        hd,
        modalities,
        target,
        num_classes,
        hidden,
        heads,
        layers,
        dropout=0.2,
        fusion_input_dropout=0.6,
        fusion_score_dropout=0.5,
    ):
      super().__init__()
      self.modalities, self.target = tuple(modalities), target
      self.stacks = torch.nn.ModuleDict(
          {
              m: HGTStack(
                  {t: hd[t][f"x_{m}"].shape[1] for t in hd.node_types}, hidden, heads, layers, hd.metadata(), dropout
              )
              for m in modalities
          }
      )
      self.score = torch.nn.Linear(hidden, 1)
      self.head = torch.nn.Linear(hidden, num_classes)
      self.fdrop_in, self.fdrop_score = fusion_input_dropout, fusion_score_dropout

    def inputs(self, hd):
      return {m: {t: hd[t][f"x_{m}"] for t in hd.node_types} for m in self.modalities}

    def forward(self, x_dicts, edge_index_dict):
      x = torch.stack([self.stacks[m](x_dicts[m], edge_index_dict)[self.target] for m in self.modalities], 1)
      w = self.score(F.dropout(x, self.fdrop_in, self.training))
      w = torch.tanh(F.dropout(w, self.fdrop_score, self.training))  # (N, M, 1)
      z = (torch.softmax(w, dim=1) * x).sum(1)
      return self.head(z)


def build(name: str, hd, data, hidden: int, heads: int, layers: int):
  kw = dict(
      modalities=data.modalities,
      target=data.target_type,
      num_classes=int(data.num_classes),
      hidden=hidden,
      heads=heads,
      layers=layers,
  )
  if name == "pyg_hgt_early":
    return PygHGTEarly(hd, **kw)
  if name == "pyg_hgt_late":
    return PygHGTLate(hd, **kw)
  raise ValueError(f"unknown PyG model {name!r}; choose from {MODELS}")


def _device(name: str) -> "torch.device":
  """torch's device `name`; 'cuda' must see a GPU (the orchestrator checks this before any work, too)."""
  if name == "cuda" and not torch.cuda.is_available():
    raise RuntimeError(f"--pyg_device=cuda: torch {torch.__version__} sees no CUDA device; use --pyg_device=cpu")
  return torch.device(name)


def _model_on(name: str, data, device: str, hidden: int, heads: int, layers: int):
  """(model in training mode, its graph) on `device`."""
  dev = _device(device)
  hd = to_hetero_data(data).to(dev)
  model = build(name, hd, data, hidden, heads, layers).to(dev)
  model.train()
  return model, hd


def device_memory_mb(device: str) -> dict | None:
  """torch's peak and in-use CUDA memory (None on the CPU), named as our rows name JAX's."""
  if device != "cuda":
    return None
  return {
      "peak_bytes_in_use": round(torch.cuda.max_memory_allocated() / 2**20, 1),
      "bytes_in_use": round(torch.cuda.memory_allocated() / 2**20, 1),
  }


def time_steps(
    name: str,
    data,
    *,
    hidden: int,
    heads: int,
    layers: int,
    steps: int,
    warmup: int,
    threads: int,
    seed: int = 0,
    lr: float = 1e-3,
    on_step=None,
    compiled: bool = False,
    device: str = "cpu",
) -> dict:
  """Times `steps` full-batch training steps after `warmup` ones; returns times, losses and sizes.

  on_step: optional callable run after every step (the caller's memory sampler).
  compiled: run the model under `torch.compile` (static shapes: the graph never changes), so
    that its first step includes TorchInductor's compilation; the optimizer step stays eager.
  device: 'cpu' or 'cuda'. Each step ends by reading its loss on the host, which waits for the
    GPU, so the step times are the GPU's too.
  """
  torch.set_num_threads(threads)
  torch.manual_seed(seed)
  if device == "cuda":  # the peak of this model's steps, not of an earlier check_trains in this process
    torch.cuda.reset_peak_memory_stats()
  model, hd = _model_on(name, data, device, hidden, heads, layers)
  opt = torch.optim.Adam(model.parameters(), lr=lr)
  inputs = model.inputs(hd)
  eidx = hd.edge_index_dict
  tgt = data.target_type
  y, mask = hd[tgt].y, hd[tgt].train_mask
  forward = torch.compile(model, dynamic=False) if compiled else model

  def step():
    opt.zero_grad(set_to_none=True)
    logits = forward(inputs, eidx)
    loss = F.cross_entropy(logits[mask], y[mask])
    loss.backward()
    opt.step()
    return float(loss.detach())

  losses, times = [], []
  t0 = time.perf_counter()
  losses.append(step())
  first_step_s = time.perf_counter() - t0
  for _ in range(max(warmup - 1, 0)):
    losses.append(step())
  cpu0 = _cpu_seconds()
  for _ in range(steps):
    t = time.perf_counter()
    losses.append(step())
    times.append(time.perf_counter() - t)
    if on_step is not None:
      on_step()
  cpu_per_step = (_cpu_seconds() - cpu0) / max(steps, 1)
  n_params = sum(p.numel() for p in model.parameters())
  return {
      "step_times_s": times,
      "step_s_median": statistics.median(times),
      "step_s_min": min(times),
      "cpu_s_per_step": cpu_per_step,
      "first_step_s": first_step_s,
      "losses": losses,
      "num_params": int(n_params),
      "loss_falls": bool(losses[-1] < losses[0]) and all(map(math.isfinite, losses)),
      "torch_device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
      "device_memory": device_memory_mb(device),
  }


def check_trains(
    name: str,
    data,
    *,
    hidden: int,
    heads: int,
    layers: int,
    steps: int = 8,
    threads: int = 1,
    lr: float = 1e-2,
    device: str = "cpu",
) -> dict:
  """A few steps at a larger learning rate: the training loss must fall (we time a real model)."""
  torch.set_num_threads(threads)
  torch.manual_seed(1)
  model, hd = _model_on(name, data, device, hidden, heads, layers)
  opt = torch.optim.Adam(model.parameters(), lr=lr)
  inputs, eidx = model.inputs(hd), hd.edge_index_dict
  tgt = data.target_type
  y, mask = hd[tgt].y, hd[tgt].train_mask
  losses = []
  for _ in range(steps):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(inputs, eidx)[mask], y[mask])
    loss.backward()
    opt.step()
    losses.append(float(loss.detach()))
  return {"losses": losses, "falls": bool(losses[-1] < losses[0])}
