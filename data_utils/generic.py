"""The generic on-disk format: any MMHN as one `.npz` or a directory of `.npy` files.

Keys (a key `a/b/c` is the .npz member `a/b/c` or the file `<dir>/a/b/c.npy`;
strings are unicode arrays, so everything loads with allow_pickle=False):

  node_types                  str (T,)        node type names ('/' not allowed)
  num_nodes                   int (T,)        nodes per type
  modalities                  str (M,)        modality names, each listed in some node_modalities/<type>
  node_modalities/<type>      str (k,)        modalities the type really has (k >= 1)
  relations                   str (R, 3)      rows (src type, name, dst type); reverses listed explicitly
  edges/<relation>            int (E_r, 2)    (src, dst) local ids (0..num_nodes-1 of each end's type);
                                              PyG's edge_index is (2, E): store edge_index.T
  features/<type>/<modality>  float (N_t, D)  required for the modalities the type really has
  labels                      int (N_target,) class ids 0..C-1 of the target type
  splits/train, splits/val, splits/test   int (n,)  local target ids, disjoint, non-empty
Optional:
  target_type                 str ()          default: the only node type
  num_classes                 int ()          default: labels.max() + 1
  missing_fill                str ()          'text' (default) or 'zeros': fills modalities a type lacks
  features/<type>/<modality>  for a modality the type lacks: used as given instead of missing_fill
  feature_provenance          str (K, 2)      ('type/modality', 'generated' | 'filled:<rule>') for arrays
                                              that are not real data; unlisted arrays are 'real'
  name                        str ()          dataset name (default: the file or directory name)

Unknown keys are an error, so a misspelt key never goes unnoticed.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Iterator

import numpy as np

from hgnn_ima_jax.graph import MMHN, DatasetError, Relation, fill_missing_modalities
from hgnn_ima_jax.graph_checks import check_declarations, check_node_counts, mask_hint

from . import files
from .files import check_array

FILL_RULES = ("text", "zeros")
# A user's own file that numpy cannot read is written again, not downloaded again.
_REWRITE = (
    "write it again with np.save / np.savez (or write_generic) from an array of numbers or unicode strings "
    "(object arrays need pickles, which are not loaded)"
)
_OPTIONAL = ("target_type", "num_classes", "missing_fill", "feature_provenance", "name")


class _Store:
  """Read access to the arrays of one generic dataset, whichever container holds them."""

  def __init__(self, path: pathlib.Path):
    self.path = path
    self.is_dir = path.is_dir()
    if self.is_dir:
      self.keys = {str(p.relative_to(path).with_suffix("")).replace(os.sep, "/") for p in path.rglob("*.npy")}
      if not self.keys:
        raise DatasetError(
            str(path),
            "directory",
            "holds no .npy files of the generic format",
            "write it with data_utils.generic.write_generic (see data_utils/README.md)",
        )
    else:
      try:
        z = np.load(path, allow_pickle=False)
        if not hasattr(z, "files"):  # np.load gives a plain array for a .npy, which has no close()
          raise ValueError("it is a single .npy array, not an .npz archive")
        with z:
          self.keys = set(z.files)
      except MemoryError:
        raise
      except Exception as err:
        raise DatasetError(
            str(path),
            "file",
            f"cannot be read as an .npz archive ({files.short_error(err)})",
            "pass an .npz written by np.savez / write_generic, or a directory of .npy files",
        ) from err

  def where(self, key: str) -> str:
    """The file (and member) a key lives in, for error messages."""
    return str(self.path / (key + ".npy")) if self.is_dir else f"{self.path}[{key}]"

  def get(self, key: str, kind: str, shape=None, required: bool = True):
    if key not in self.keys:
      if not required:
        return None
      problem = "missing"
      if self.is_dir:
        others = sorted(p.name for p in (self.path / key).parent.glob(pathlib.Path(key).name + ".*"))
        if others:
          problem += f" (found {', '.join(others)}: a directory dataset holds one .npy file per key)"
      raise DatasetError(self.where(key), key, problem, f"store the {key!r} array (format: data_utils/README.md)")
    if self.is_dir:
      return files.load_npy(self.where(key), key, kind, shape, unreadable_fix=_REWRITE)
    return check_array(files.load_npz(self.path, [key], _REWRITE)[key], self.where(key), key, kind, shape)


def _split(store: _Store, split: str, target_type: str, num_nodes, node_types) -> np.ndarray:
  """splits/<split> as ids; a bool mask (PyG's train_mask) is refused with the fix for a mask."""
  try:
    return store.get(f"splits/{split}", "int", (None,))
  except DatasetError as e:
    if not e.problem.startswith("dtype bool") or target_type not in node_types:
      raise
    n = int(num_nodes[node_types.index(target_type)])
    raise DatasetError(e.source, e.field, e.problem, mask_hint(target_type, n)) from None


def _edges(store: _Store, relation: str) -> np.ndarray:
  """edges/<relation> as (E, 2); PyG's (2, E) edge_index, the likely slip, gets the transpose as its fix."""
  key = f"edges/{relation}"
  try:
    return store.get(key, "int", (None, 2))
  except DatasetError as e:
    x = store.get(key, "int") if e.problem.startswith("shape") else None
    if x is None or x.ndim != 2 or x.shape[0] != 2 or x.shape[1] == 2:
      raise
    raise DatasetError(
        e.source, e.field, e.problem, e.fix + " (PyG's edge_index is (2, E): store edge_index.T)"
    ) from None


def read_generic(path, name: str | None = None, missing_fill: str | None = None) -> MMHN:
  """Reads a dataset in the generic format (an .npz file or a directory of .npy files).

  Args:
    path: the .npz file or the directory.
    name: dataset name; default: the stored 'name' or the file/directory name.
    missing_fill: 'text' or 'zeros' overrides the stored 'missing_fill' (None keeps it).

  Returns:
    The validated `MMHN`; its provenance marks features from 'feature_provenance'
    and modalities filled with 'missing_fill'.

  Raises:
    DatasetError: naming the file (and member), the key and the fix.
  """
  path = pathlib.Path(path).absolute()
  if not path.exists():
    raise files.MissingFilesError(
        str(path.parent), [str(path)], "published", "give an existing .npz file or directory in the generic format"
    )
  store = _Store(path)

  def scalar(key, kind, default):
    x = store.get(key, kind, (), required=False)
    return default if x is None else x.item()

  node_types = [str(t) for t in store.get("node_types", "str", (None,))]
  for t in node_types:
    if "/" in t or not t:
      raise DatasetError(
          store.where("node_types"),
          "node_types",
          f"name {t!r} is empty or contains '/'",
          "use names without '/' (they become key paths)",
      )
  num_nodes = store.get("num_nodes", "int", (None,))  # its length is checked after the names
  modalities = tuple(str(m) for m in store.get("modalities", "str", (None,)))
  node_modalities = {t: tuple(str(m) for m in store.get(f"node_modalities/{t}", "str", (None,))) for t in node_types}
  # the names key the feature arrays: a wrong one is reported as itself, not as an unknown key
  files.with_sources(
      {
          "node_types": store.where("node_types"),
          "num_nodes": store.where("num_nodes"),
          "modalities": store.where("modalities"),
          **{f"node_modalities[{t!r}]": store.where(f"node_modalities/{t}") for t in node_types},
      },
      check_declarations,
      store.where("node_types"),
      node_types,
      dict(zip(node_types, (int(n) for n in num_nodes))),
      modalities,
      node_modalities,
      "drop it from modalities, or store a type's features/<type>/<modality> and list the modality in "
      "node_modalities/<type>",
  )
  if len(num_nodes) != len(node_types):
    raise DatasetError(
        store.where("num_nodes"),
        "num_nodes",
        f"{len(num_nodes)} counts for {len(node_types)} node types {node_types}",
        "store one count per node type, in the order of node_types",
    )
  rel_rows = store.get("relations", "str", (None, 3))
  relations = tuple(Relation(*(str(v) for v in row)) for row in rel_rows)
  edges = {r.name: _edges(store, r.name) for r in relations}
  if not any(len(e) for e in edges.values()):  # one empty relation is legal; a graph without edges is not
    problem = f"all {len(relations)} relations are empty" if relations else "no relation is declared"
    raise DatasetError(
        store.where("relations"),
        "relations",
        problem + " (the graph has no edges)",
        "store each relation's (src, dst) pairs in edges/<relation> (one empty relation is fine)",
    )

  target_type = scalar("target_type", "str", node_types[0] if len(node_types) == 1 else None)
  if target_type is None:
    raise DatasetError(
        store.where("target_type"),
        "target_type",
        "missing (there are several node types)",
        f"store the classified node type, one of {node_types}",
    )
  labels = store.get("labels", "int", (None,))
  num_classes = scalar("num_classes", "int", int(labels.max()) + 1 if len(labels) else 0)
  splits = {s: _split(store, s, target_type, num_nodes, node_types) for s in ("train", "val", "test")}
  rule = scalar("missing_fill", "str", "text")
  if missing_fill is not None:
    if missing_fill not in FILL_RULES:
      raise ValueError(
          f"missing_fill={missing_fill!r}: is not a fill rule of the generic format. Fix: use one of "
          f"{', '.join(FILL_RULES)}, or None for the file's own"
      )
    rule = missing_fill
  if rule not in FILL_RULES:
    raise DatasetError(
        store.where("missing_fill"), "missing_fill", f"{rule!r} is not one of {FILL_RULES}", "store 'text' or 'zeros'"
    )
  stored = [f"{t}/{m}" for t in node_types for m in modalities if f"features/{t}/{m}" in store.keys]
  declared = _declared_provenance(store, stored)

  features, prov = {t: {} for t in node_types}, {}
  for t in node_types:
    for m in modalities:
      key = f"features/{t}/{m}"
      real = m in node_modalities[t]
      x = store.get(key, "float", (None, None), required=real)
      if x is not None:
        features[t][m] = x
        prov[f"{t}/{m}"] = declared.get(f"{t}/{m}", "real" if real else "filled:given")

  expected = {
      "node_types",
      "num_nodes",
      "modalities",
      "relations",
      "labels",
      *_OPTIONAL,
      *(f"node_modalities/{t}" for t in node_types),
      *(f"edges/{r.name}" for r in relations),
      *(f"features/{t}/{m}" for t in node_types for m in modalities),
      *(f"splits/{s}" for s in splits),
  }
  unknown = sorted(store.keys - expected)
  if unknown:
    raise DatasetError(
        store.where(unknown[0]),
        unknown[0],
        f"unknown key (all unknown: {unknown})",
        "remove it or fix its name (format: data_utils/README.md)",
    )

  graph = MMHN(
      name=name or scalar("name", "str", path.stem),
      node_types=tuple(node_types),
      num_nodes={t: int(n) for t, n in zip(node_types, num_nodes)},
      modalities=modalities,
      node_modalities=node_modalities,
      relations=relations,
      edges=edges,
      features=features,
      target_type=target_type,
      labels=labels,
      num_classes=int(num_classes),
      splits=splits,
      provenance={"features": prov},
      source=str(path),
  )
  _check_declarations(graph, store)  # what filling relies on, reported against the right member
  if any(m not in graph.features[t] for t in node_types for m in modalities):
    # fill_missing_modalities rewrites every lacking modality; arrays stored explicitly win.
    given = {
        (t, m): (x, prov[f"{t}/{m}"]) for t in node_types for m, x in features[t].items() if m not in node_modalities[t]
    }
    fill_missing_modalities(graph, rule)
    for (t, m), (x, origin) in given.items():
      graph.features[t][m] = x
      graph.provenance["features"][f"{t}/{m}"] = origin
    graph.provenance["missing_fill"] = rule
  sources = {
      "labels": store.where("labels"),
      "num_classes": store.where("num_classes" if "num_classes" in store.keys else "labels"),
      "num_nodes": store.where("num_nodes"),
      "relations": store.where("relations"),
      "target_type": store.where("target_type"),
      "modalities": store.where("modalities"),
      "node_types": store.where("node_types"),
      **{f"node_modalities[{t!r}]": store.where(f"node_modalities/{t}") for t in node_types},
      **{f"edges[{r.name!r}]": store.where(f"edges/{r.name}") for r in relations},
      **{f"splits[{s!r}]": store.where(f"splits/{s}") for s in splits},
      **{f"features[{t!r}][{m!r}]": store.where(f"features/{t}/{m}") for t in node_types for m in modalities},
  }
  return files.validate_with_sources(graph, sources)


def write_generic(path, graph: MMHN) -> pathlib.Path:
  """Writes `graph` in the generic format: `path` ending in .npz gives one file, else a directory.

  Only real modalities are stored, plus `missing_fill` when it reproduces the
  filled ones (any other filled array is stored as given). Non-real provenance
  ('generated', 'filled:...') is stored in 'feature_provenance', so generated
  data stays marked after a round trip. The .npz is written atomically; a
  directory must not exist yet or be empty.

  Returns:
    The path written.
  """
  graph.validate()
  path = pathlib.Path(path)
  arrays = dict(_arrays(graph))
  if path.suffix == ".npz":
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
      with os.fdopen(fd, "wb") as fh:
        np.savez(fh, **arrays)
      os.replace(tmp, path)
    except BaseException:
      pathlib.Path(tmp).unlink(missing_ok=True)
      raise
    return path
  if path.exists() and any(path.iterdir()):
    raise FileExistsError(
        f"{path}: exists and is not empty. Fix: write the generic format into a new directory (or empty this one)"
    )
  for key, x in arrays.items():
    out = path / (key + ".npy")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, x, allow_pickle=False)
  return path


def _arrays(graph: MMHN) -> Iterator[tuple[str, np.ndarray]]:
  """(key, array) pairs of the generic format for a validated graph."""
  for t in graph.node_types:
    if "/" in t:
      raise DatasetError(graph.source, "node_types", f"name {t!r} contains '/'", "rename the node type")
  yield "name", np.array(graph.name)
  yield "node_types", np.array(graph.node_types, dtype=str)
  yield "num_nodes", np.array([graph.num_nodes[t] for t in graph.node_types], np.int64)
  yield "modalities", np.array(graph.modalities, dtype=str)
  for t in graph.node_types:
    yield f"node_modalities/{t}", np.array(graph.node_modalities[t], dtype=str)
  yield "relations", np.array([tuple(r) for r in graph.relations], dtype=str).reshape(-1, 3)
  for r in graph.relations:
    yield f"edges/{r.name}", np.asarray(graph.edges[r.name])
  yield "target_type", np.array(graph.target_type)
  yield "num_classes", np.array(int(graph.num_classes), np.int64)
  yield "labels", np.asarray(graph.labels)
  for s in ("train", "val", "test"):
    yield f"splits/{s}", np.asarray(graph.splits[s])

  prov = graph.feature_provenance
  filled = [(t, m) for t in graph.node_types for m in graph.modalities if m not in graph.node_modalities[t]]
  rule = _fill_rule(graph, filled)
  explicit = [(t, m) for t, m in filled if rule is None or not _reproduces(graph, t, m, rule)]
  for t in graph.node_types:
    for m in graph.modalities:
      if m in graph.node_modalities[t] or (t, m) in explicit:
        yield f"features/{t}/{m}", np.asarray(graph.features[t][m])
  if rule is not None:
    yield "missing_fill", np.array(rule)
  rows = [
      (f"{t}/{m}", prov.get(f"{t}/{m}", "real" if m in graph.node_modalities[t] else "filled:given"))
      for t in graph.node_types
      for m in graph.modalities
      if m in graph.node_modalities[t] or (t, m) in explicit
  ]
  rows = [r for r in rows if r[1] != "real"]
  if rows:
    yield "feature_provenance", np.array(rows, dtype=str)


def _fill_rule(graph: MMHN, filled: list[tuple[str, str]]) -> str | None:
  """The fill rule that reproduces most filled arrays (provenance's rule first on ties); None if none does."""
  if not filled:
    return None
  declared = [v.split(":", 1)[1] for v in graph.feature_provenance.values() if v in ("filled:text", "filled:zeros")]
  order = sorted(FILL_RULES, key=lambda r: -declared.count(r))
  hits = {r: sum(_reproduces(graph, t, m, r) for t, m in filled) for r in order}
  best = max(order, key=lambda r: hits[r])  # max keeps the first of equal counts
  return best if hits[best] else None


def _reproduces(graph: MMHN, t: str, m: str, rule: str) -> bool:
  """Whether `fill_missing_modalities(rule)` would give exactly graph.features[t][m]."""
  real = [x for x in graph.modalities if x in graph.node_modalities[t]]
  src, x = graph.features[t][real[0]], graph.features[t][m]
  want = src if rule == "text" else np.zeros_like(src)
  return x.shape == want.shape and x.dtype == want.dtype and np.array_equal(x, want)


def _declared_provenance(store: _Store, stored: list[str]) -> dict[str, str]:
  """feature_provenance as {'type/modality': origin}: stored arrays only, each once, known origins.

  It decides whether a run is marked as not comparable with the paper, so a slip in it is an error.
  """
  where = store.where("feature_provenance")
  rows = store.get("feature_provenance", "str", (None, 2), required=False)
  declared = {}
  for key, origin in ((str(k), str(v)) for k, v in (rows if rows is not None else [])):
    if key in declared:
      raise DatasetError(where, "feature_provenance", f"{key!r} is listed twice", "list each array once")
    if key not in stored:
      raise DatasetError(
          where,
          "feature_provenance",
          f"{key!r} is not a stored feature array (stored: {stored})",
          "name a stored features/<type>/<modality> as 'type/modality', or drop the row",
      )
    if origin not in ("real", "generated") and not (origin.startswith("filled:") and origin != "filled:"):
      raise DatasetError(
          where,
          "feature_provenance",
          f"{key!r} has origin {origin!r}",
          "use 'real', 'generated' or 'filled:<rule>' (e.g. filled:text)",
      )
    declared[key] = origin
  return declared


def _check_declarations(graph: MMHN, store: _Store) -> None:
  """Runs validate()'s checks on names and row counts before filling (fill assumes declared modalities exist)."""
  check_node_counts(store.where("num_nodes"), graph.node_types, graph.num_nodes, graph.features)
  for t in graph.node_types:
    unknown = [m for m in graph.node_modalities[t] if m not in graph.modalities]
    if unknown:
      raise DatasetError(
          store.where(f"node_modalities/{t}"),
          f"node_modalities[{t!r}]",
          f"unknown modalities {unknown}",
          f"use names from {list(graph.modalities)}",
      )
    if not graph.node_modalities[t]:
      raise DatasetError(
          store.where(f"node_modalities/{t}"),
          f"node_modalities[{t!r}]",
          f"node type {t!r} has no real modality",
          "give it at least one real feature modality",
      )
    for m, x in graph.features[t].items():
      if x.ndim != 2 or x.shape[0] != graph.num_nodes[t]:
        raise DatasetError(
            store.where(f"features/{t}/{m}"),
            f"features[{t!r}][{m!r}]",
            f"shape {x.shape}, expected ({graph.num_nodes[t]}, D)",
            f"give one row per {t!r} node",
        )
