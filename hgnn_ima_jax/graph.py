"""The typed multi-modal heterogeneous network (MMHN) and its `jraph.GraphsTuple` form.

Two objects:

* `MMHN` — the host-side dataset (NumPy): node types and counts, relations with
  their (src, dst) local-id pairs, modalities, which modalities each node type
  really has, per-(type, modality) features, the target type, labels and splits.
  `MMHN.validate()` checks all of it and raises `DatasetError` with one line that
  names the file, the field and the fix.
* `Schema` — the static, hashable description a model is built from (types,
  counts, relations, edge counts, modalities, feature widths, presence). It is a
  Flax module attribute, so everything in it is a Python int/str/bool tuple.

`MMHN.to_graphs_tuple()` lays the network out for segment ops:

* global node ids, node types in contiguous ranges in `node_types` order;
* edges grouped by relation (relation id = position in `relations`), and inside a
  relation sorted by receiver, then sender; so every relation is a static slice
  `schema.edge_slice(r)` and receivers are sorted inside it;
* ``nodes = {'type': int32[N], 'features': {m: float32[N, D_m]},
  'present': {m: bool[N]}}`` where ``D_m`` is the widest width of modality ``m``
  over the node types (narrower types are zero-padded on the right; a model
  reads type ``t``'s features as ``features[m][node_slice(t), :feature_dims[t][m]]``);
* ``edges = {'type': int32[E]}``, ``senders``/``receivers`` int32[E] global ids.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from hgnn_ima_jax.choices import PAPER_DATASET_NAMES
from hgnn_ima_jax.graph_checks import SPLITS, DatasetError, validate_graph

if TYPE_CHECKING:
  import jraph


class Relation(NamedTuple):
  """A directed edge type `src --name--> dst` (reverse relations are relations too)."""

  src: str
  name: str
  dst: str


@dataclasses.dataclass(frozen=True)
class Schema:
  """Static description of an MMHN; hashable so it can be a Flax module attribute."""

  node_types: tuple[str, ...]
  num_nodes: tuple[int, ...]
  relations: tuple[Relation, ...]
  num_edges: tuple[int, ...]
  modalities: tuple[str, ...]
  feature_dims: tuple[tuple[int, ...], ...]  # [type][modality]
  present: tuple[tuple[bool, ...], ...]  # [type][modality]: type really has it
  target_type: str
  num_classes: int
  # A padded sub-graph's per-hop levels (`budgets.Budget.levels`): per hop j, (nodes per type, edges per
  # relation) within hop j, prefixes of the blocks above. Empty for a graph; a model trims its layers by them.
  levels: tuple = ()

  # --- counts -------------------------------------------------------------
  @property
  def num_node_types(self) -> int:
    return len(self.node_types)

  @property
  def num_relations(self) -> int:
    return len(self.relations)

  @property
  def num_modalities(self) -> int:
    return len(self.modalities)

  @property
  def total_nodes(self) -> int:
    return sum(self.num_nodes)

  @property
  def total_edges(self) -> int:
    return sum(self.num_edges)

  # --- ids ----------------------------------------------------------------
  def type_id(self, name: str) -> int:
    return self.node_types.index(name)

  def modality_id(self, name: str) -> int:
    return self.modalities.index(name)

  @property
  def target_id(self) -> int:
    return self.type_id(self.target_type)

  def relation_src(self, r: int) -> int:
    return self.type_id(self.relations[r].src)

  def relation_dst(self, r: int) -> int:
    return self.type_id(self.relations[r].dst)

  # --- static slices ------------------------------------------------------
  @property
  def node_offsets(self) -> tuple[int, ...]:
    return tuple(int(x) for x in np.concatenate([[0], np.cumsum(self.num_nodes)[:-1]]))

  @property
  def edge_offsets(self) -> tuple[int, ...]:
    if not self.num_edges:
      return ()
    return tuple(int(x) for x in np.concatenate([[0], np.cumsum(self.num_edges)[:-1]]))

  def node_slice(self, t: int) -> slice:
    off = self.node_offsets[t]
    return slice(off, off + self.num_nodes[t])

  def edge_slice(self, r: int) -> slice:
    off = self.edge_offsets[r]
    return slice(off, off + self.num_edges[r])

  def relations_into(self, t: int) -> tuple[int, ...]:
    """Relation ids whose destination is node type `t` (the code's R_t)."""
    return tuple(r for r in range(self.num_relations) if self.relation_dst(r) == t)

  def missing_modalities(self, t: int) -> tuple[int, ...]:
    """Modality ids node type `t` does not really have (filled in by the loader)."""
    return tuple(m for m in range(self.num_modalities) if not self.present[t][m])

  def max_feature_dim(self, m: int) -> int:
    return max(dims[m] for dims in self.feature_dims)


@dataclasses.dataclass
class MMHN:
  """A multi-modal heterogeneous network with labels on one target node type.

  Attributes:
    name: dataset name, used in messages.
    node_types: node type names; ids are positions, global node ids follow this order.
    num_nodes: nodes per type.
    modalities: modality names (e.g. ('text', 'image')).
    node_modalities: modalities each type really has (its f(o) in the paper).
    relations: directed edge types; reverse relations are listed explicitly.
    edges: relation name -> int array (E_r, 2) of (src local id, dst local id).
    features: type -> modality -> float array (N_t, D). Every type has every
      modality; the ones it lacks are filled (see `fill_missing_modalities`).
    target_type: the node type that is classified.
    labels: int array (N_target,), values in [0, num_classes).
    num_classes: number of classes.
    splits: 'train'/'val'/'test' -> local target ids; disjoint, non-empty.
    provenance: free-form notes; key 'features' maps 'type/modality' to 'real',
      'generated' or 'filled:<rule>'. Anything not 'real' is not the paper's data.
    source: where the data came from (a directory or file), used in error messages.
  """

  name: str
  node_types: tuple[str, ...]
  num_nodes: dict[str, int]
  modalities: tuple[str, ...]
  node_modalities: dict[str, tuple[str, ...]]
  relations: tuple[Relation, ...]
  edges: dict[str, np.ndarray]
  features: dict[str, dict[str, np.ndarray]]
  target_type: str
  labels: np.ndarray
  num_classes: int
  splits: dict[str, np.ndarray]
  provenance: dict = dataclasses.field(default_factory=dict)
  source: str = "<memory>"

  # --- derived ------------------------------------------------------------
  @property
  def schema(self) -> Schema:
    return Schema(
        node_types=tuple(self.node_types),
        num_nodes=tuple(int(self.num_nodes[t]) for t in self.node_types),
        relations=tuple(Relation(*r) for r in self.relations),
        num_edges=tuple(int(len(self.edges[r.name])) for r in self.relations),
        modalities=tuple(self.modalities),
        feature_dims=tuple(tuple(int(self.features[t][m].shape[1]) for m in self.modalities) for t in self.node_types),
        present=tuple(tuple(m in self.node_modalities[t] for m in self.modalities) for t in self.node_types),
        target_type=self.target_type,
        num_classes=int(self.num_classes),
    )

  @property
  def feature_provenance(self) -> dict[str, str]:
    return dict(self.provenance.get("features", {}))

  @property
  def comparable_with_paper(self) -> bool:
    """False when any feature array was generated rather than read from the paper's files."""
    return not any(v == "generated" for v in self.feature_provenance.values())

  def split_mask(self, split: str) -> np.ndarray:
    mask = np.zeros(len(self.labels), bool)
    mask[self.splits[split]] = True
    return mask

  # --- validation ---------------------------------------------------------
  def validate(self, labels: bool = True) -> "MMHN":
    """Checks every field (`graph_checks.validate_graph`); raises `DatasetError` naming source, field and fix.
    labels=False skips the labels and splits (a graph to predict on). Returns self."""
    return validate_graph(self, labels)

  # --- jraph layout -------------------------------------------------------
  def to_graphs_tuple(self, dtype=np.float32) -> jraph.GraphsTuple:
    """The network as one `GraphsTuple` laid out for segment ops (see module docstring)."""
    # Imported here: jraph imports JAX, and the data layer and config checks load without it.
    import jraph  # pylint: disable=import-outside-toplevel

    schema = self.schema
    offsets = dict(zip(self.node_types, schema.node_offsets))
    n_total = schema.total_nodes

    node_type = np.concatenate([np.full(self.num_nodes[t], i, np.int32) for i, t in enumerate(self.node_types)])
    features, present = {}, {}
    for mi, m in enumerate(self.modalities):
      width = schema.max_feature_dim(mi)
      x = np.zeros((n_total, width), dtype)
      p = np.zeros((n_total,), bool)
      for ti, t in enumerate(self.node_types):
        sl = schema.node_slice(ti)
        f = self.features[t][m]
        x[sl, : f.shape[1]] = f
        p[sl] = schema.present[ti][mi]
      features[m], present[m] = x, p

    senders, receivers, etype = [], [], []
    for ri, r in enumerate(schema.relations):
      e = np.asarray(self.edges[r.name], np.int64).reshape(-1, 2)
      order = np.lexsort((e[:, 0], e[:, 1]))  # by receiver, then sender
      e = e[order]
      senders.append(e[:, 0] + offsets[r.src])
      receivers.append(e[:, 1] + offsets[r.dst])
      etype.append(np.full(len(e), ri, np.int32))
    cat = lambda xs: np.concatenate(xs).astype(np.int32) if xs else np.zeros((0,), np.int32)
    return jraph.GraphsTuple(
        nodes={"type": node_type, "features": features, "present": present},
        edges={"type": cat(etype)},
        senders=cat(senders),
        receivers=cat(receivers),
        n_node=np.array([n_total], np.int32),
        n_edge=np.array([schema.total_edges], np.int32),
        globals=None,
    )

  # --- reporting ----------------------------------------------------------
  def summary(self) -> str:
    """A plain-text table: nodes per type, edges per relation, modalities, classes, splits."""
    s = self.schema
    lines = [f"dataset {self.name}  ({self.source})"]
    lines.append(f"{'node type':<16}{'nodes':>10}  {'id range':<16} modalities (real | filled)")
    for ti, t in enumerate(s.node_types):
      sl = s.node_slice(ti)
      real = [m for m in s.modalities if m in self.node_modalities[t]]
      filled = [m for m in s.modalities if m not in self.node_modalities[t]]
      dims = ",".join(f"{m}:{self.features[t][m].shape[1]}" for m in s.modalities)
      mark = " (target)" if t == s.target_type else ""
      lines.append(
          f"{t + mark:<16}{s.num_nodes[ti]:>10,}  {f'{sl.start}-{sl.stop - 1}':<16} "
          f"{'+'.join(real) or '-'} | {'+'.join(filled) or '-'}  [{dims}]"
      )
    lines.append(f"{'total':<16}{s.total_nodes:>10,}")
    labels = [f"{r.src} -{r.name}-> {r.dst}" for r in s.relations]
    width = max([28] + [len(t) + 2 for t in labels])  # PyG's src__to__dst names are long
    lines.append(f"{'relation':<{width}}{'edges':>10}")
    for ri, label in enumerate(labels):
      note = "  (empty: no messages along this relation)" if s.num_edges[ri] == 0 else ""
      lines.append(f"{label:<{width}}{s.num_edges[ri]:>10,}{note}")
    lines.append(f"{'total':<{width}}{s.total_edges:>10,}")
    counts = np.bincount(np.asarray(self.labels), minlength=self.num_classes)
    lines.append(f"classes ({self.num_classes}): " + ", ".join(f"{c}: {n:,}" for c, n in enumerate(counts)))
    lines.append("splits: " + " / ".join(f"{k} {len(self.splits[k]):,}" for k in SPLITS))
    prov = self.feature_provenance
    if prov:
      lines.append("features: " + ", ".join(f"{k}={v}" for k, v in sorted(prov.items())))
    if not self.comparable_with_paper:  # the paper's clause only for its graphs, not for a user's own
      paper = "; results are not comparable with the paper" if self.name in PAPER_DATASET_NAMES else ""
      lines.append(f"NOTE: some features are GENERATED{paper}.")
    return "\n".join(lines)


def fill_missing_modalities(graph: MMHN, rule: str) -> MMHN:
  """Fills features of modalities a node type lacks, in place; returns the graph.

  rule: 'text' copies the type's first real modality (its text for the paper's
  datasets: the paper's Sec. 5.3 and the IMDB code); 'zeros' writes zeros of
  that width (the DOUBAN and AMAZON code). Existing arrays are left alone only
  for modalities the type really has.
  """
  if rule not in ("text", "zeros"):
    raise ValueError(
        f"fill_missing_modalities: rule={rule!r} is not a fill rule. Fix: pass rule='text' (copy the type's first "
        "real modality) or rule='zeros'"
    )
  prov = graph.provenance.setdefault("features", {})
  for t in graph.node_types:
    real = [m for m in graph.modalities if m in graph.node_modalities[t]]
    if not real:
      raise DatasetError(
          graph.source,
          f"node_modalities[{t!r}]",
          "no real modality to fill from",
          "give the type at least one real modality",
      )
    src = graph.features[t][real[0]]
    for m in graph.modalities:
      if m in graph.node_modalities[t]:
        continue
      graph.features.setdefault(t, {})[m] = src.copy() if rule == "text" else np.zeros_like(src)
      prov[f"{t}/{m}"] = f"filled:{rule}"
  return graph


def schema_differences(model_schema: Schema, data_schema: Schema) -> list[str]:
  """What differs between two schemas apart from node and edge counts (empty when a model can run on the data)."""
  a, b, out = model_schema, data_schema, []
  if a.node_types != b.node_types:
    out.append(f"node types {list(b.node_types)} (model: {list(a.node_types)})")
  if a.relations != b.relations:
    out.append(f"relations {[tuple(r) for r in b.relations]} (model: {[tuple(r) for r in a.relations]})")
  if a.modalities != b.modalities:
    out.append(f"modalities {list(b.modalities)} (model: {list(a.modalities)})")
  if out:
    return out  # the finer comparisons below index by type and modality
  for t, tname in enumerate(a.node_types):
    for m, mname in enumerate(a.modalities):
      if a.feature_dims[t][m] != b.feature_dims[t][m]:
        out.append(f"feature width of {tname}/{mname} {b.feature_dims[t][m]} (model: {a.feature_dims[t][m]})")
      if a.present[t][m] != b.present[t][m]:
        out.append(f"{tname} {'has' if b.present[t][m] else 'lacks'} modality {mname} (model: the opposite)")
  if a.target_type != b.target_type:
    out.append(f"target type {b.target_type!r} (model: {a.target_type!r})")
  if a.num_classes != b.num_classes:
    out.append(f"num_classes {b.num_classes} (model: {a.num_classes})")
  return out


def check_schema(model_schema: Schema, data_schema: Schema, source: str = "graph") -> None:
  """Raises `DatasetError` (one line) naming what differs, unless only node and edge counts do."""
  diff = schema_differences(model_schema, data_schema)
  if diff:
    raise DatasetError(
        source,
        "schema",
        "differs from the model's: " + "; ".join(diff),
        "run the model on a graph of its own schema (same node types, relations, modalities, "
        "feature widths; other sizes are fine) or train a model for this schema",
    )
