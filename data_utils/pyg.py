"""A PyTorch Geometric `HeteroData` as an MMHN: `from_hetero_data(data, modalities=..., target_type=...)`.

PyG users keep their graphs as `HeteroData`: one store per node type with feature tensors as attributes
(`data['movie'].x`, `data['movie'].poster`), one per edge type `(src, rel, dst)` with `edge_index` (2, E),
and on the classified type `y` and `train_mask` / `val_mask` / `test_mask`. This reads such an object without
importing torch (every tensor goes through `.detach().cpu().numpy()`, or `np.asarray` for NumPy arrays), so
the conversion costs no dependency; `write_generic(path, graph)` then stores it for the command-line scripts
(`experiments/train.py --dataset=path`).

What differs from PyG, and is therefore asked for or refused rather than guessed:
* Modalities are named feature attributes (`modalities=('x', 'poster')`, or `{'text': 'x', 'image': 'poster'}`
  to rename them). A node type without one of them lacks that modality; it is filled by `missing_fill` (the
  paper's rule copies the type's first modality; 'zeros' writes zeros), as the paper's datasets are.
* Every relation has a name of its own: PyG's `rel` where it is unique, else `src__rel__dst` (or give
  `relation_names`). Messages flow along each edge type as stored, so reverse edges must be there
  (`torch_geometric.transforms.ToUndirected()` adds them) for a type to hear from its neighbours.
* Labels: every node of the target type has a class in 0..C-1 (a -1 for an unlabelled node is refused with
  the fix), and the three masks give the splits (or pass `splits`).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import numpy as np

from hgnn_ima_jax.graph import MMHN, DatasetError, Relation, fill_missing_modalities

SOURCE = "<HeteroData>"
SPLITS = ("train", "val", "test")


def from_hetero_data(
    data: Any,
    *,
    modalities: Sequence[str] | Mapping[str, str],
    target_type: str,
    label_attr: str = "y",
    splits: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
    relation_names: Mapping[tuple[str, str, str], str] | None = None,
    missing_fill: str = "text",
    featureless: str | None = None,
    name: str = "heterodata",
) -> MMHN:
  """The validated MMHN of a PyG `HeteroData` (see the module docstring).

  Args:
    data: a `torch_geometric.data.HeteroData` (or any object with its `node_types`, `edge_types` and
      `data[type]` stores).
    modalities: the feature attributes that are modalities, in order: names (each attribute is a modality of
      that name) or {modality name: attribute}. The first is the one `missing_fill='text'` copies.
    target_type: the classified node type.
    label_attr: the target type's label attribute.
    splits: {'train'|'val'|'test': a mask (bool or uint8) or local ids}; default: the target type's
      `<split>_mask` (bool, or 0/1 numbers).
    num_classes: default: the largest label + 1.
    relation_names: {(src, rel, dst): name} for some or all edge types; default: `rel`, or `src__rel__dst`
      where several edge types share a `rel`.
    missing_fill: 'text' (the paper's rule: the type's first modality) or 'zeros'.
    featureless: None refuses a node type without any modality attribute; 'ones' gives such a type (it needs
      `num_nodes`, as PyG's featureless types have) one constant column as its first modality, marked generated.
    name: the dataset's name in messages and results.

  Raises:
    DatasetError: one line naming the store and attribute (e.g. HeteroData['movie'].y), the problem and the fix.
  """
  if missing_fill not in ("text", "zeros"):
    raise ValueError(f"missing_fill={missing_fill!r}: is not a fill rule. Fix: use 'text' or 'zeros'")
  if featureless not in (None, "ones"):
    raise ValueError(
        f"featureless={featureless!r}: is not a rule. Fix: use None (refuse a type without features) or 'ones'"
    )
  attrs = dict(modalities) if isinstance(modalities, Mapping) else {str(m): str(m) for m in modalities}
  if not attrs or isinstance(modalities, str):
    raise ValueError(f"modalities={modalities!r}: names no feature attribute. Fix: name them, e.g. modalities=('x',)")
  node_types = [str(t) for t in data.node_types]
  if target_type not in node_types:
    raise DatasetError(SOURCE, "target_type", f"{target_type!r} is not a node type of it", f"use one of {node_types}")

  num_nodes, features, node_modalities, generated = {}, {}, {}, {}
  for t in node_types:
    store = data[t]
    features[t] = {}
    for modality, attr in attrs.items():
      x = getattr(store, attr, None) if attr in store else None
      if x is None:
        continue
      x = _numpy(x, f"HeteroData[{t!r}].{attr}")
      if x.ndim == 1:  # a scalar per node (a price): one column, as the scalar MLP takes it
        x = x[:, None]
      if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise DatasetError(
            SOURCE,
            f"HeteroData[{t!r}].{attr}",
            f"has shape {x.shape} and dtype {x.dtype}, not (nodes, width) numbers",
            "store one float row per node (a sparse or text attribute is not a modality)",
        )
      features[t][modality] = x.astype(np.float32)
    node_modalities[t] = tuple(m for m in attrs if m in features[t])
    if not node_modalities[t] and featureless == "ones" and "num_nodes" in store:
      # PyG's featureless types (DBLP's conference, MAG's authors) carry num_nodes alone: one constant column as
      # their first modality (the scalar MLP embeds it), marked generated; the others are filled from it
      first = next(iter(attrs))
      features[t][first] = np.ones((int(store.num_nodes), 1), np.float32)
      node_modalities[t], generated[t] = (first,), first
    if not node_modalities[t]:
      present = sorted(k for k in store.keys() if k not in (label_attr,) and not k.endswith("_mask"))
      raise DatasetError(
          SOURCE,
          f"HeteroData[{t!r}]",
          f"has none of the modality attributes {list(attrs.values())} (it has {present})",
          "pass featureless='ones' (one constant feature per node; the type needs num_nodes), give the type a "
          "feature attribute, or name its attribute in modalities=",
      )
    num_nodes[t] = int(next(iter(features[t].values())).shape[0])
    if "num_nodes" in store and int(store.num_nodes) != num_nodes[t]:  # set explicitly, and not the rows' count
      raise DatasetError(
          SOURCE,
          f"HeteroData[{t!r}].num_nodes",
          f"is {int(store.num_nodes)} but {attrs[node_modalities[t][0]]} has {num_nodes[t]} rows",
          "store one feature row per node (or fix num_nodes)",
      )
    for modality, x in features[t].items():
      if x.shape[0] != num_nodes[t]:
        raise DatasetError(
            SOURCE,
            f"HeteroData[{t!r}].{attrs[modality]}",
            f"has {x.shape[0]} rows where {attrs[node_modalities[t][0]]} has {num_nodes[t]}",
            "store one row per node in every feature attribute of a type",
        )

  unused = [a for m, a in attrs.items() if not any(m in features[t] for t in node_types)]
  if unused:  # a misspelt attribute made a modality that every type was then filled with
    raise DatasetError(
        SOURCE,
        "modalities",
        f"no node type has the attribute(s) {unused}",
        "name attributes the stores have (data[type].keys()), or leave the modality out",
    )
  relations = _relations(data, relation_names or {})
  edges = {r.name: _edges(data[et], et) for et, r in relations}
  store = data[target_type]
  if label_attr not in store:
    raise DatasetError(
        SOURCE, f"HeteroData[{target_type!r}].{label_attr}", "missing", "store the class ids of the target type there"
    )
  labels = _numpy(getattr(store, label_attr), f"HeteroData[{target_type!r}].{label_attr}")
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise DatasetError(
        SOURCE,
        f"HeteroData[{target_type!r}].{label_attr}",
        f"has shape {labels.shape} and dtype {labels.dtype}",
        "store one integer class id per node (multi-label targets are not supported)",
    )
  split_ids = {s: _split(store, s, splits, target_type, num_nodes[target_type]) for s in SPLITS}
  graph = MMHN(
      name=name,
      node_types=tuple(node_types),
      num_nodes=num_nodes,
      modalities=tuple(attrs),
      node_modalities=node_modalities,
      relations=tuple(r for _, r in relations),
      edges=edges,
      features=features,
      target_type=target_type,
      labels=labels.astype(np.int64),
      num_classes=int(num_classes if num_classes is not None else (labels.max() + 1 if len(labels) else 0)),
      splits=split_ids,
      provenance={
          "features": {
              f"{t}/{m}": "generated" if generated.get(t) == m else "real"
              for t in node_types
              for m in node_modalities[t]
          }
      },
      source=SOURCE,
  )
  if any(len(node_modalities[t]) < len(attrs) for t in node_types):
    fill_missing_modalities(graph, missing_fill)
    graph.provenance["missing_fill"] = missing_fill
  # validate() names the MMHN's fields; the user wrote HeteroData attributes (a filled modality came from the type's
  # first one)
  fields = {
      **{
          f"features[{t!r}][{m!r}]": f"HeteroData[{t!r}].{attrs[m if m in node_modalities[t] else node_modalities[t][0]]}"
          for t in node_types
          for m in attrs
      },
      **{f"edges[{r.name!r}]": _edge_where(et) for et, r in relations},
      "labels": f"HeteroData[{target_type!r}].{label_attr}",
      **({f"splits[{s!r}]": f"HeteroData[{target_type!r}].{s}_mask" for s in SPLITS} if splits is None else {}),
  }
  try:
    return graph.validate()
  except DatasetError as err:
    if err.field not in fields:
      raise
    # an edge's end as the user indexes it: edge_index[0] holds the sources, edge_index[1] the destinations
    problem = re.sub(
        r"^(src|dst) node id (\S+) is outside",
        lambda m: f"edge_index[{int(m[1] == 'dst')}] holds node id {m[2]}, outside",
        err.problem,
    )
    raise DatasetError(SOURCE, fields[err.field], problem, err.fix) from err


def _numpy(x, where: str) -> np.ndarray:
  """A tensor (torch, on any device) or array as NumPy, without importing torch."""
  if hasattr(x, "detach"):
    x = x.detach().cpu()
  if getattr(x, "is_sparse", False):
    raise DatasetError(SOURCE, where, "is a sparse tensor", "store it dense (x.to_dense())")
  if not hasattr(x, "numpy"):
    return np.asarray(x)
  try:
    return np.asarray(x.numpy())
  except TypeError:  # a dtype NumPy lacks (bfloat16): its float32 values
    if hasattr(x, "float") and getattr(x, "is_floating_point", lambda: False)():
      return np.asarray(x.float().numpy())
    raise DatasetError(SOURCE, where, f"has dtype {getattr(x, 'dtype', '?')}, which NumPy cannot hold", "convert it")


def _relations(data, names: Mapping) -> list[tuple[tuple[str, str, str], Relation]]:
  """(edge type, Relation) in PyG's order: each edge type's relation, named uniquely."""
  edge_types = [tuple(str(p) for p in et) for et in data.edge_types]
  unknown = [et for et in names if tuple(et) not in edge_types]
  if unknown:
    raise ValueError(
        f"relation_names: {unknown} are not edge types of the graph. Fix: name edge types of data.edge_types "
        f"({edge_types})"
    )
  rels = [et[1] for et in edge_types]
  out, seen = [], {}
  for et in edge_types:
    src, rel, dst = et
    name = names.get(et) or (rel if rels.count(rel) == 1 else f"{src}__{rel}__{dst}")
    if "/" in name or name in seen:
      problem = (
          "contains '/' (relation names become keys of the generic format)"
          if "/" in name
          else (f"names {seen.get(name)} too")
      )
      raise DatasetError(
          SOURCE,
          f"edge type {et}",
          f"relation name {name!r} {problem}",
          "name it with relation_names={edge type: name}",
      )
    seen[name] = et
    out.append((et, Relation(src, name, dst)))
  return out


def _edge_where(et) -> str:
  """An edge store's edge_index as the user indexes it: HeteroData['movie', 'has', 'actor'].edge_index."""
  return f"HeteroData[{', '.join(map(repr, et))}].edge_index"


def _edges(store, et) -> np.ndarray:
  """(E, 2) int64 (src, dst) local ids from PyG's (2, E) edge_index."""
  where = _edge_where(et)
  if "edge_index" not in store:
    raise DatasetError(SOURCE, where, "missing (an adj_t-only edge type?)", "store the edges as edge_index (2, E)")
  e = _numpy(store.edge_index, where)
  if e.ndim != 2 or e.shape[0] != 2 or not np.issubdtype(e.dtype, np.integer):
    raise DatasetError(SOURCE, where, f"has shape {e.shape} and dtype {e.dtype}", "store (2, E) integer node ids")
  return np.ascontiguousarray(e.T.astype(np.int64))


def _split(store, split: str, given: Mapping | None, target_type: str, n: int) -> np.ndarray:
  """A split's local target ids from `given[split]` or the store's `<split>_mask` (a mask, or ids)."""
  where = f"splits[{split!r}]" if given is not None else f"HeteroData[{target_type!r}].{split}_mask"
  if given is not None:
    if split not in given:
      raise ValueError(f"splits: no {split!r} entry. Fix: give 'train', 'val' and 'test' (node ids or masks)")
    x = _numpy(given[split], where)
  elif f"{split}_mask" in store:
    x = _numpy(getattr(store, f"{split}_mask"), where)
  else:
    raise DatasetError(
        SOURCE,
        where,
        "missing",
        "store train_mask, val_mask and test_mask on the target type, or pass splits={'train': ..., ...}",
    )
  # a mask: bool, or (a `<split>_mask`, or uint8 anywhere) n numbers that are all 0 or 1; else node ids
  binary = x.shape == (n,) and np.isin(x, (0, 1)).all()
  if x.dtype == bool or (x.dtype == np.uint8 and binary) or (given is None and binary):
    if x.shape != (n,):
      raise DatasetError(SOURCE, where, f"is a mask of shape {x.shape} for {n} nodes", f"give a ({n},) mask")
    return np.flatnonzero(x).astype(np.int64)
  return x.astype(np.int64).reshape(-1)
