"""The checks of an `MMHN` (`validate_graph`, which `MMHN.validate` runs) and the error they raise.

Every failure is one `DatasetError` line naming where the data came from, the field, what is
wrong and the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
  from hgnn_ima_jax.graph import MMHN

SPLITS = ("train", "val", "test")
# Feature rows checked for NaN/inf at once: the check's boolean temporary stays a few MB.
_FINITE_CHUNK_ROWS = 65536


class DatasetError(ValueError):
  """Bad input data. `str(err)` is one line: where, which field, what is wrong, the fix."""

  def __init__(self, source: str, field: str, problem: str, fix: str):
    self.source, self.field, self.problem, self.fix = source, field, problem, fix
    super().__init__(f"{source}: {field}: {problem}. Fix: {fix}")


# A -1 label usually marks an unlabelled node: say what to do with one.
UNLABELLED_HINT = (
    "; an unlabelled node needs no real class: give it any id 0..C-1 and keep it out of every split "
    "(training and evaluation read the labels of split nodes only)"
)


def names_problem(given, names, what: str, *, every: bool, graph: str = "the graph") -> str | None:
  """How the keys `given` (a per-relation or per-type option) differ from the graph's `names`, or None: "names no
  {what} of {graph}: x, y" and, with `every` (each name needs an entry), "leaves out z". The config's check
  (`config_validation.check_batch_for_graph`) and the samplers' own share it, so both say the same."""
  unknown = [n for n in given if n not in names]
  missing = [n for n in names if n not in given] if every else []
  parts = ([f"names no {what} of {graph}: {', '.join(map(str, unknown))}"] if unknown else []) + (
      [f"leaves out {', '.join(missing)}"] if missing else []
  )
  return "; ".join(parts) or None


def _first_non_finite_row(x: np.ndarray) -> int | None:
  for a in range(0, len(x), _FINITE_CHUNK_ROWS):
    bad = ~np.isfinite(x[a : a + _FINITE_CHUNK_ROWS])
    if bad.any():
      return a + int(np.argwhere(bad)[0, 0])
  return None


def check_declarations(source: str, node_types, num_nodes, modalities, node_modalities, unused_fix=None) -> None:
  """The names and counts a graph declares: node types, their node counts, modalities, each type's real ones.

  `validate_graph` runs it first; a reader runs it before it loads the arrays those names key (the
  generic format's features/<type>/<modality>), so that a wrong declaration is reported as itself
  rather than as an unknown key or a feature of the wrong shape. `unused_fix` words the fix for a modality no type
  has in the reader's own keys.
  """

  def fail(field, problem, fix):
    raise DatasetError(source, field, problem, fix)

  if not len(node_types):
    fail("node_types", "no node types", "declare at least one node type")
  if len(set(node_types)) != len(node_types):
    fail("node_types", f"duplicate names in {list(node_types)}", "give each node type a unique name")
  for t in node_types:
    n = num_nodes.get(t)
    if n is None:
      fail(f"num_nodes[{t!r}]", "missing", f"give the number of {t!r} nodes")
    if int(n) <= 0:
      fail(f"num_nodes[{t!r}]", f"node type {t!r} has {n} nodes", "remove the node type or add its nodes")
  if not len(modalities):
    fail("modalities", "no modalities", "declare at least one modality")
  if len(set(modalities)) != len(modalities):
    fail("modalities", f"duplicate names in {list(modalities)}", "give each modality a unique name")
  for t in node_types:
    mods = node_modalities.get(t)
    if mods is None:
      fail(f"node_modalities[{t!r}]", "missing", f"list the modalities {t!r} nodes really have")
    unknown = [m for m in mods if m not in modalities]
    if unknown:
      fail(f"node_modalities[{t!r}]", f"unknown modalities {unknown}", f"use names from {list(modalities)}")
    if not len(mods):
      fail(
          f"node_modalities[{t!r}]",
          f"node type {t!r} has no real modality",
          "give it at least one real feature modality",
      )
    if len(set(mods)) != len(mods):
      fail(f"node_modalities[{t!r}]", f"duplicate names in {list(mods)}", "list each modality the type has once")
  # a modality no type really has would be filled (copied from text, or zeros) for every type: the model would attend
  # to a channel that carries no data of its own, which is nearly always a misspelt or stale name
  unused = [m for m in modalities if not any(m in node_modalities[t] for t in node_types)]
  if unused:
    fail(
        "modalities",
        f"no node type has {unused} (no node_modalities lists {'it' if len(unused) == 1 else 'them'})",
        unused_fix
        or "drop it from modalities, or give a node type its features and list it in that type's node_modalities",
    )


def check_node_counts(source: str, node_types, num_nodes, features) -> None:
  """A node count that every feature array of its type disagrees with is reported as the count, not the features.

  Runs before the edge and feature checks, which would otherwise blame the edges (an id past a too-small count) or
  each feature array in turn (a row count that differs from a wrong num_nodes).
  """
  for t in node_types:
    arrays = features.get(t) if isinstance(features.get(t), dict) else {}
    rows = {x.shape[0] for x in arrays.values() if isinstance(x, np.ndarray) and x.ndim == 2}
    if len(arrays) and len(rows) == 1 and all(isinstance(x, np.ndarray) and x.ndim == 2 for x in arrays.values()):
      (n,) = rows
      if n != int(num_nodes[t]):
        every = "its feature array" if len(arrays) == 1 else "every feature array"
        raise DatasetError(
            source,
            f"num_nodes[{t!r}]",
            f"is {num_nodes[t]}, but {every} of {t!r} ({', '.join(map(str, arrays))}) has {n} rows",
            f"store {n} as the count of {t!r} in num_nodes, or give each feature array of {t!r} {num_nodes[t]} rows",
        )


def validate_graph(g: MMHN, labels: bool = True) -> MMHN:
  """Checks every field of `g`; raises `DatasetError` naming source, field and fix. Returns `g`.

  labels=False checks what a forward pass reads (names, edges, features) and not the labels and
  splits: a graph to predict on may carry stand-ins for them.
  """
  src = g.source

  def fail(field, problem, fix):
    raise DatasetError(src, field, problem, fix)

  for field in ("num_nodes", "node_modalities", "edges", "features"):
    if not isinstance(getattr(g, field), dict):
      fail(field, f"is a {type(getattr(g, field)).__name__}, expected a dict keyed by name", f"give {field} as a dict")
  bad = [r for r in g.relations if not hasattr(r, "name")]
  if bad:
    fail("relations", f"{bad[0]!r} is not a Relation", "give each as graph.Relation(src, name, dst)")
  check_declarations(src, g.node_types, g.num_nodes, g.modalities, g.node_modalities)
  check_node_counts(src, g.node_types, g.num_nodes, g.features)
  if g.target_type not in g.node_types:
    fail(
        "target_type",
        f"{g.target_type!r} is not a node type {list(g.node_types)}",
        "set target_type to one of the node types",
    )

  names = [r.name for r in g.relations]
  if len(set(names)) != len(names):
    fail("relations", f"duplicate relation names in {names}", "give each relation a unique name")
  for r in g.relations:
    for end, t in (("source", r.src), ("destination", r.dst)):
      if t not in g.node_types:
        fail(
            f"relations[{r.name!r}]",
            f"{end} type {t!r} is not a node type {list(g.node_types)}",
            "fix the relation's node types",
        )
  for key in g.edges:
    if key not in names:
      fail(
          f"edges[{key!r}]",
          f"relation {key!r} is not declared in relations {names}",
          "declare the relation or remove its edges",
      )
  for r in g.relations:
    e = g.edges.get(r.name)
    field = f"edges[{r.name!r}]"
    if e is None:
      fail(field, "missing", "give the relation's (src, dst) pairs (an empty (0, 2) array is allowed)")
    e = np.asarray(e)
    if e.ndim != 2 or e.shape[1] != 2:
      fail(field, f"shape {e.shape}, expected (E, 2) of (src, dst) local ids", "store one (src, dst) row per edge")
    if not np.issubdtype(e.dtype, np.integer):
      fail(field, f"dtype {e.dtype}, expected an integer type", "store node ids as integers")
    for col, t in ((0, r.src), (1, r.dst)):
      if len(e) and (e[:, col].min() < 0 or e[:, col].max() >= g.num_nodes[t]):
        bad = int(e[:, col].min() if e[:, col].min() < 0 else e[:, col].max())
        fail(
            field,
            f"{'src' if col == 0 else 'dst'} node id {bad} is outside {t!r} ids 0..{g.num_nodes[t] - 1}",
            "use local ids (global id minus the type's offset) within the type's range",
        )

  for t in g.node_types:
    for m in g.modalities:
      field = f"features[{t!r}][{m!r}]"
      x = g.features.get(t, {}).get(m)
      if x is None:
        fix = (
            "provide it"
            if m in g.node_modalities[t]
            else "fill it with data_utils fill_missing_modalities (missing_fill='text' or 'zeros')"
        )
        fail(field, "missing", fix)
      if not isinstance(x, np.ndarray):
        fail(field, f"type {type(x).__name__}, expected a dense NumPy array", "convert it with np.asarray / .toarray()")
      if x.ndim != 2 or x.shape[0] != g.num_nodes[t]:
        fail(field, f"shape {x.shape}, expected ({g.num_nodes[t]}, D)", f"give one row per {t!r} node")
      if x.shape[1] == 0:
        fail(field, "has width 0", "give each node a feature vector of width >= 1")
      if not np.issubdtype(x.dtype, np.floating):
        fail(field, f"dtype {x.dtype}, expected float", "cast features to float32")
      bad = _first_non_finite_row(x)
      if bad is not None:
        fail(field, f"contains NaN or inf (first at row {bad})", "clean or impute the feature values")

  if not labels:
    return g
  n_target = g.num_nodes[g.target_type]
  y = np.asarray(g.labels)
  if y.ndim != 1 or len(y) != n_target:
    fail(
        "labels",
        f"shape {y.shape}, expected ({n_target},) one label per {g.target_type!r} node",
        "store one integer label per target node",
    )
  if not np.issubdtype(y.dtype, np.integer):
    fail("labels", f"dtype {y.dtype}, expected an integer type", "store class ids as integers")
  if int(g.num_classes) < 2:
    fail(
        "num_classes",
        f"is {g.num_classes}, but node classification needs at least 2 classes",
        "store the number of classes C (labels 0..C-1), or leave num_classes out to use labels.max() + 1",
    )
  if len(y) and (y.min() < 0 or y.max() >= g.num_classes):
    fail(
        "labels",
        f"values span {y.min()}..{y.max()}, outside 0..{g.num_classes - 1}",
        "relabel classes as 0..C-1 or fix num_classes" + (UNLABELLED_HINT if y.min() < 0 else ""),
    )

  seen = {}
  for s in SPLITS:
    idx = g.splits.get(s)
    field = f"splits[{s!r}]"
    if idx is None:
      fail(field, "missing", f"give the {s} node ids")
    idx = np.asarray(idx)
    if idx.ndim != 1:
      fail(field, f"shape {idx.shape}, expected a 1-D array of ids", "store split ids as a flat array")
    # PyG keeps splits as masks (train_mask): a mask here is the likely slip, so say so
    mask_fix = mask_hint(g.target_type, n_target)
    if not np.issubdtype(idx.dtype, np.integer):
      fail(
          field,
          f"dtype {idx.dtype}, expected integers",
          mask_fix if idx.dtype == bool else "store split ids as integers",
      )
    if len(idx) == 0:
      fail(field, "is empty", f"put at least one {g.target_type!r} node in the {s} split")
    if idx.min() < 0 or idx.max() >= n_target:
      bad = int(idx.min() if idx.min() < 0 else idx.max())
      fail(field, f"id {bad} outside 0..{n_target - 1}", f"use local {g.target_type!r} ids")
    if len(np.unique(idx)) != len(idx):
      looks_like_mask = len(idx) == n_target and np.isin(idx, (0, 1)).all()
      fail(field, "contains repeated ids", mask_fix if looks_like_mask else "list each node once")
    for other, oidx in seen.items():
      both = np.intersect1d(idx, oidx)
      if len(both):
        fail(field, f"overlaps {other!r} in {len(both)} ids (e.g. {int(both[0])})", "make train/val/test disjoint")
    seen[s] = idx
  return g


def mask_hint(target_type: str, n_target: int) -> str:
  """The fix for a split given as a mask (bool, or 0/1 over every target node) where ids are expected."""
  return (
      f"it looks like a mask over the {n_target} {target_type!r} nodes: store np.flatnonzero(mask), the ids of its "
      "True entries"
  )


def check_trainable(g: MMHN) -> MMHN:
  """What training needs beyond a valid graph; raises `DatasetError` (one line). Returns `g`.

  Every class 0..C-1 has a node, the train split holds two classes or more, and some edge ends
  at the target type. A graph to predict on needs none of it (its labels may be stand-ins, its
  new nodes unlinked), so `validate_graph` does not ask; the loaders of a run
  (`data_utils.load_for_config`), `hgnn-ima-check` and `train.train_and_evaluate` do.
  """
  src = g.source

  def fail(field, problem, fix):
    raise DatasetError(src, field, problem, fix)

  # an empty class is a labelling slip (ids not relabelled 0..C-1, a wrong num_classes) that would skew Macro-F1
  # and the classifier's width without a word
  y, num_classes = np.asarray(g.labels), int(g.num_classes)
  empty = np.flatnonzero(np.bincount(y, minlength=num_classes) == 0)
  if len(empty):
    shown = ", ".join(str(int(c)) for c in empty[:5]) + (", ..." if len(empty) > 5 else "")
    fail(
        "labels",
        f"{len(empty)} of the {num_classes} classes {'has' if len(empty) == 1 else 'have'} no node "
        f"(class {shown}); the labels use {num_classes - len(empty)}",
        "relabel the classes as 0..C-1 (np.unique(labels, return_inverse=True)) or lower num_classes",
    )
  train_classes = np.unique(y[np.asarray(g.splits["train"])])
  if len(train_classes) < 2:
    fail(
        "splits['train']",
        f"all {len(g.splits['train'])} training nodes have class {int(train_classes[0])}",
        "put nodes of at least two classes in the train split",
    )
  into_target = [r.name for r in g.relations if r.dst == g.target_type]
  if not any(len(g.edges[name]) for name in into_target):
    leaving = [r.name for r in g.relations if r.src == g.target_type]
    fail(
        "relations",
        f"no edge ends at the target type {g.target_type!r} "
        + (f"(its relations {into_target} are empty)" if into_target else "(no relation has it as destination)")
        + ", so its nodes would be classified from their own features alone",
        "add the reverse of a relation that leaves it"
        + (f" (e.g. of {leaving[0]!r})" if leaving else "")
        + ", as the paper's datasets list both directions",
    )
  return g
