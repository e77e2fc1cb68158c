"""The edge layout every layer shares: softmax segments, and the rows edges gather from node and slot tables.

A graph laid out by `MMHN.to_graphs_tuple` has node types in contiguous global-id ranges and
edges grouped by relation, sorted by receiver inside each relation. A softmax over in-edges is
one segment per (relation, receiver) pair ("slot"). The layers apply relation-specific per-head
matrices once per slot or per sender, never per edge:

* slots: relation r's receivers get the slot block `slot_offsets[r] + local receiver id`;
  `num_slots` = Σ_r N_dst(r). Slots are non-decreasing along the edges (sorted receivers).
* slot tables (Eqs. 2 and 4): <Q_i, K_j W_r> = <Q_i W_rᵀ, K_j>, so each slot holds its
  receiver's queries times its relation's transposed matrices, built per receiver type by ONE
  product (N_dst, M, d) @ (d, |R_dst|·d) with the type's relations side by side
  (`receiver_groups`, `slot_table_layout`); edges gather them by `seg` and the senders' keys
  as they are, by `senders`.
* the sender-side message table (Eq. 10 with `model.remat` only, `layers.HGNNIMALayer.messages`):
  one block per source type holding, for each of its nodes, M rows per relation leaving the
  type (`sender_table_layout`: (offset, stride, slot) per relation), so that a block is the
  output of ONE product (N_src·M, d) @ (d, stride·d); edges gather it by `chan_rows`.

Worked example: node types A = {a0, a1} (global ids 0, 1) and B = {b0} (id 2); relations
r0: A -ab-> B and r1: A -aa-> A; edges a0→b0, a1→b0 (r0) and a1→a0 (r1); M = 2 channels.

  edge  relation  sender  receiver   seg   senders   chan_rows
  e0    r0        a0 (0)  b0 (2)     0     0         [0, 2]
  e1    r0        a1 (1)  b0 (2)     0     1         [4, 6]
  e2    r1        a1 (1)  a0 (0)     1     1         [5, 7]

slot_offsets = (0, 1) (r0's block holds B's one receiver, r1's holds A's two), num_slots = 3;
receiver_groups = ((A, (r1,)), (B, (r0,))), so slot_table_layout = ((1, 0), (0, 0)): r0's
slots are block 0 of B's product, r1's block 0 of A's.
sender_groups = ((A, (r0, r1)),) (B sends nothing); sender_table_layout = ((0, 2, 0), (0, 2, 1)):
per channel m, A's rows are (local·M + m)·stride + slot: e2 (a1 on r1) reads (1·2 + m)·2 + 1 = 5, 7.
`tests/test_edge_layout.py` checks this table.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from hgnn_ima_jax.graph import Schema


class EdgeIndex(NamedTuple):
  """Per-call edge indexing shared by all layers (built once by `edge_index`)."""

  senders: jax.Array  # (E,) row of each edge's sender among the sender-side node states of all types
  chan_rows: jax.Array  # (E, M) rows of each edge's (sender, relation), one per channel, in the message table
  seg: jax.Array  # (E,) softmax segment = (relation, receiver) slot; non-decreasing
  etype: jax.Array  # (E,) relation id


def slot_offsets(schema: Schema) -> tuple[int, ...]:
  """Start of each relation's block of (relation, receiver) slots."""
  offs, acc = [], 0
  for r in range(schema.num_relations):
    offs.append(acc)
    acc += schema.num_nodes[schema.relation_dst(r)]
  return tuple(offs)


def num_slots(schema: Schema) -> int:
  return sum(schema.num_nodes[schema.relation_dst(r)] for r in range(schema.num_relations))


def sender_groups(schema: Schema) -> tuple[tuple[int, tuple[int, ...]], ...]:
  """(source type, the relations leaving it) for every type that sends on some relation."""
  groups = []
  for t in range(schema.num_node_types):
    rels = tuple(r for r in range(schema.num_relations) if schema.relation_src(r) == t)
    if rels:
      groups.append((t, rels))
  return tuple(groups)


def sender_table_layout(schema: Schema) -> tuple[tuple[int, int, int], ...]:
  """Per relation r: (offset, stride, slot); its sender j (a local id) is table row offset + j·stride + slot."""
  layout, acc = {}, 0
  for t, rels in sender_groups(schema):
    for slot, r in enumerate(rels):
      layout[r] = (acc, len(rels), slot)
    acc += schema.num_nodes[t] * len(rels)
  return tuple(layout[r] for r in range(schema.num_relations))


def receiver_groups(schema: Schema) -> tuple[tuple[int, tuple[int, ...]], ...]:
  """(receiver type, the relations into it) for every type that receives on some relation."""
  return tuple((t, schema.relations_into(t)) for t in range(schema.num_node_types) if schema.relations_into(t))


def slot_table_layout(schema: Schema) -> tuple[tuple[int, int], ...]:
  """Per relation r, in slot order: (i, j) = (its receiver type's place in `receiver_groups`, r's place among that
  type's relations), which locates r's slot block in the products of the receiver-side tables."""
  place = {}
  for i, (_, rels) in enumerate(receiver_groups(schema)):
    for j, r in enumerate(rels):
      place[r] = (i, j)
  return tuple(place[r] for r in range(schema.num_relations))


def edge_index(
    schema: Schema,
    senders: jax.Array,
    receivers: jax.Array,
    num_channels: int,
    *,
    sender_schema: Schema | None = None,
    receiver_schema: Schema | None = None,
    live: jax.Array | None = None,
) -> EdgeIndex:
  """Sender rows, message-table rows and segment ids of a graph laid out by `MMHN.to_graphs_tuple` (module docstring).

  A trimmed layer (`models.Encoder` on a padded sub-graph with levels) reads a prefix of each
  type's nodes and relation's edges: `sender_schema` holds the counts of its input states (the
  senders' keys and values), `receiver_schema` those of its output states and the edge prefixes
  it reads, and `live` (E,) which edges of the graph it uses. An edge of a prefix that is not
  live is sent from local node 0 to the last slot of its receiver type, a padding slot (a budget
  keeps one per level), so no real receiver sees it. `schema` is the graph's own layout (global ids).
  """
  snd_s = schema if sender_schema is None else sender_schema
  rcv_s = schema if receiver_schema is None else receiver_schema
  offs, slots, M = schema.node_offsets, slot_offsets(rcv_s), num_channels
  snd_offs, rows = snd_s.node_offsets, sender_table_layout(snd_s)
  snd, chan_rows, seg, etype = [], [], [], []
  for r in range(schema.num_relations):
    start, n_e = schema.edge_offsets[r], rcv_s.num_edges[r]
    sl = slice(start, start + n_e)
    src, dst = schema.relation_src(r), schema.relation_dst(r)
    local, local_dst = senders[sl] - offs[src], receivers[sl] - offs[dst]
    if live is not None:
      local = jnp.where(live[sl], local, 0)
      local_dst = jnp.where(live[sl], local_dst, rcv_s.num_nodes[dst] - 1)
    snd.append(local + snd_offs[src])
    offset, stride, slot = rows[r]
    chan_rows.append(M * offset + (local[:, None] * M + jnp.arange(M)) * stride + slot)
    seg.append(local_dst + slots[r])
    etype.append(jnp.full((n_e,), r, jnp.int32))
  cat = lambda xs: jnp.concatenate(xs).astype(jnp.int32) if xs else jnp.zeros((0,), jnp.int32)
  sent = jnp.asarray(senders) if snd_s is schema and live is None else cat(snd)
  chan = jnp.concatenate(chan_rows).astype(jnp.int32) if chan_rows else jnp.zeros((0, M), jnp.int32)
  return EdgeIndex(sent, chan, cat(seg), cat(etype))
