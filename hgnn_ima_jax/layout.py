"""The `GraphsTuple` layout the model relies on, checked once per graph on the host.

The layer reads relation r's edges as the static slice `schema.edge_slice(r)` and runs its
segment ops with `indices_are_sorted=True`; it never reads `edges['type']`. So a graph whose
edges are not grouped by relation in schema order, or not sorted by receiver inside a
relation, or whose ids lie outside their types' ranges, would be computed wrong without any
error. `check_graph_layout` refuses such a graph with one line. `MMHN.to_graphs_tuple()` is
the layout's definition (see `hgnn_ima_jax.graph`):

  edges['type']  0 0 0 1 1 2 2 2 ...   relation ids, grouped in `schema.relations` order
  receivers      4 4 7 1 3 0 0 5 ...   non-decreasing inside each relation
  senders        any order among edges with the same receiver, each in its source type's range

It runs where a graph enters the model from outside: `train.make_batch`, `LoadedRun.predict`
and `.embed`, and every eager `model.apply`. Under `jit` the graph is abstract and the check is
skipped (the training program's graph was checked when its batch was built).
"""

from __future__ import annotations

import collections
import weakref

import jax
import numpy as np

from hgnn_ima_jax.graph import DatasetError, Schema

SOURCE = "GraphsTuple"
FIX = (
    "build the graph with MMHN.to_graphs_tuple() (edges grouped by relation in schema order, sorted by "
    "receiver inside each relation)"
)

# Graphs already found valid, by identity of their arrays (weak references: nothing is kept alive).
_CHECKED: collections.deque = collections.deque(maxlen=16)


def _leaves(graph) -> list:
  nodes = graph.nodes if isinstance(graph.nodes, dict) else {}
  return [
      graph.senders,
      graph.receivers,
      (graph.edges or {}).get("type"),
      nodes.get("type"),
      *dict(nodes.get("features") or {}).values(),
      *dict(nodes.get("present") or {}).values(),
  ]


def _seen(schema: Schema, leaves: list) -> bool:
  for s, refs in _CHECKED:
    if s == schema and len(refs) == len(leaves) and all(r() is x for r, x in zip(refs, leaves)):
      return True
  return False


def _remember(schema: Schema, leaves: list) -> None:
  try:
    _CHECKED.append((schema, tuple(weakref.ref(x) for x in leaves)))
  except TypeError:  # a leaf without weak references (e.g. a list): check it again next time
    pass


def is_abstract(graph) -> bool:
  """True while the graph is traced (inside jit / eval_shape): its values are unknown."""
  return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(graph))


def _has_arrays(graph) -> bool:
  """Whether the graph carries a node-type array and a senders array to count (else the checks below name it)."""
  try:
    return graph.nodes["type"] is not None and graph.senders is not None
  except (AttributeError, KeyError, TypeError):
    return False


def check_graph_layout(schema: Schema, graph) -> None:
  """Raises `DatasetError` (one line, ending in the fix) unless `graph` has the layout above.

  Checks: edge arrays are 1-D with `schema.total_edges` entries; `edges['type']` groups the
  relations in schema order with `schema.num_edges` edges each; every sender and receiver lies
  in its relation's source and destination type ranges; receivers are non-decreasing inside
  each relation; node types, feature row counts and widths and the presence masks match the
  schema. Does nothing for an abstract (traced) graph; a graph found valid is not checked again.
  """
  if hasattr(graph, "to_graphs_tuple"):  # an MMHN: its arrays are per type, the model reads one GraphsTuple
    raise TypeError(
        "graph: an MMHN, but the model takes a jraph.GraphsTuple. Fix: pass graph.to_graphs_tuple() (or use "
        "LoadedRun.predict(graph=...), which takes the MMHN)"
    )
  if is_abstract(graph):
    return
  sizes = (len(np.asarray(graph.nodes["type"])), len(np.asarray(graph.senders))) if _has_arrays(graph) else None
  if sizes is not None and sizes != (schema.total_nodes, schema.total_edges):
    # A well-formed graph of other sizes: the model was built for another graph of its schema.
    raise DatasetError(
        SOURCE,
        "sizes",
        f"{sizes[0]:,} nodes and {sizes[1]:,} edges, but the model was built for {schema.total_nodes:,} and "
        f"{schema.total_edges:,} (its schema's counts)",
        "build the model for this graph (state.create_model(config, mmhn.schema), or models.build_model(name, "
        "mmhn.schema, ...)), or predict with LoadedRun.predict(graph=mmhn), which does",
    )
  leaves = _leaves(graph)
  if _seen(schema, leaves):
    return

  def fail(field, problem):
    raise DatasetError(SOURCE, field, problem, FIX)

  E, N = schema.total_edges, schema.total_nodes
  arrays = {}
  for field, x in (
      ("senders", graph.senders),
      ("receivers", graph.receivers),
      ("edges['type']", (graph.edges or {}).get("type")),
  ):
    if x is None:
      fail(field, "missing")
    a = np.asarray(x)
    if a.shape != (E,) or not np.issubdtype(a.dtype, np.integer):
      fail(
          field,
          f"shape {a.shape} dtype {a.dtype}, the schema needs ({E},) integers "
          f"(edges per relation {dict(zip([r.name for r in schema.relations], schema.num_edges))})",
      )
    arrays[field] = a.astype(np.int64)
  snd, rcv, etype = arrays["senders"], arrays["receivers"], arrays["edges['type']"]
  want = np.repeat(np.arange(schema.num_relations), schema.num_edges)
  if not np.array_equal(etype, want):
    e = int(np.argmax(etype != want))
    fail(
        "edges['type']",
        f"edge {e} has relation {int(etype[e])} where the schema's grouping (relations in "
        f"order {[r.name for r in schema.relations]}, {list(schema.num_edges)} edges) puts "
        f"relation {int(want[e])}",
    )
  offs = schema.node_offsets
  for r, rel in enumerate(schema.relations):
    sl = schema.edge_slice(r)
    for field, ids, t in (("senders", snd[sl], schema.relation_src(r)), ("receivers", rcv[sl], schema.relation_dst(r))):
      lo, hi = offs[t], offs[t] + schema.num_nodes[t]
      bad = np.flatnonzero((ids < lo) | (ids >= hi))
      if bad.size:
        fail(
            field,
            f"relation {rel.name!r} ({rel.src}->{rel.dst}): edge {sl.start + int(bad[0])} has node "
            f"{int(ids[bad[0]])}, outside {schema.node_types[t]!r} ids "
            f"{lo}..{hi - 1}",
        )
    down = np.flatnonzero(np.diff(rcv[sl]) < 0)
    if down.size:
      e = sl.start + int(down[0]) + 1
      fail(
          "receivers",
          f"relation {rel.name!r} is not sorted by receiver (edge {e}: receiver {int(rcv[e])} "
          f"after {int(rcv[e - 1])})",
      )

  nodes = graph.nodes if isinstance(graph.nodes, dict) else {}
  ntype = nodes.get("type")
  want_types = np.repeat(np.arange(schema.num_node_types), schema.num_nodes)
  if ntype is None or not np.array_equal(np.asarray(ntype), want_types):
    counts = dict(zip(schema.node_types, schema.num_nodes))
    fail("nodes['type']", f"does not list the {N} nodes type by type ({counts})")
  for m, name in enumerate(schema.modalities):
    x = (nodes.get("features") or {}).get(name)
    width = schema.max_feature_dim(m)
    if x is None or np.ndim(x) != 2 or np.shape(x)[0] != N or np.shape(x)[1] < width:
      fail(
          f"nodes['features'][{name!r}]", f"shape {None if x is None else np.shape(x)}, the schema needs ({N}, {width})"
      )
    p = (nodes.get("present") or {}).get(name)
    want_p = np.repeat([schema.present[t][m] for t in range(schema.num_node_types)], schema.num_nodes)
    if p is None or not np.array_equal(np.asarray(p, bool), want_p):
      fail(
          f"nodes['present'][{name!r}]",
          "does not match the node types that really have this modality "
          f"({[t for t, pr in zip(schema.node_types, schema.present) if pr[m]]})",
      )
  _remember(schema, leaves)
