"""The edge layout module: its docstring's worked example, and gathers that equal the per-edge products."""

from __future__ import annotations

import numpy as np
from model_fixtures import make_graph

from hgnn_ima_jax import MMHN, Relation, edge_ops
from hgnn_ima_jax import edge_layout as el


def worked_example() -> MMHN:
  """The module docstring's graph: A = {a0, a1}, B = {b0}; r0: A -ab-> B, r1: A -aa-> A."""
  x = lambda n: np.ones((n, 2), np.float32)
  return MMHN(
      name="example",
      node_types=("A", "B"),
      num_nodes={"A": 2, "B": 1},
      modalities=("text",),
      node_modalities={"A": ("text",), "B": ("text",)},
      relations=(Relation("A", "ab", "B"), Relation("A", "aa", "A")),
      edges={"ab": np.array([[1, 0], [0, 0]]), "aa": np.array([[1, 0]])},
      features={"A": {"text": x(2)}, "B": {"text": x(1)}},
      target_type="B",
      labels=np.array([0]),
      num_classes=2,
      splits={"train": np.array([0]), "val": np.array([0]), "test": np.array([0])},
  )


def test_the_docstring_example():
  data = worked_example()
  s, gt = data.schema, data.to_graphs_tuple()
  assert list(gt.senders) == [0, 1, 1] and list(gt.receivers) == [2, 2, 0]
  assert el.slot_offsets(s) == (0, 1) and el.num_slots(s) == 3
  assert el.receiver_groups(s) == ((0, (1,)), (1, (0,)))
  assert el.slot_table_layout(s) == ((1, 0), (0, 0))
  assert el.sender_groups(s) == ((0, (0, 1)),)
  assert el.sender_table_layout(s) == ((0, 2, 0), (0, 2, 1))
  idx = el.edge_index(s, gt.senders, gt.receivers, num_channels=2)
  assert np.asarray(idx.seg).tolist() == [0, 0, 1]
  assert np.asarray(idx.senders).tolist() == [0, 1, 1]
  assert np.asarray(idx.chan_rows).tolist() == [[0, 2], [4, 6], [5, 7]]
  assert np.asarray(idx.etype).tolist() == [0, 0, 1]


def test_gathered_table_rows_are_each_edges_sender_and_relation():
  """Build the tables as the layer does (one product per source type) and compare every gathered row."""
  data = make_graph(2, num_nodes=(7, 4, 9), empty_relation="md")
  s, gt = data.schema, data.to_graphs_tuple()
  M, d = 2, 3
  rng = np.random.default_rng(0)
  h = [rng.normal(size=(n, M, d)) for n in s.num_nodes]
  w = rng.normal(size=(s.num_relations, d, d))
  blocks = []
  for t, rels in el.sender_groups(s):  # (N_t, M, d) @ (d, |rels|·d) → rows (node, channel, relation)
    blocks.append((h[t] @ np.concatenate([w[r] for r in rels], axis=1)).reshape(-1, d))
  table = np.concatenate(blocks, axis=0)
  idx = el.edge_index(s, gt.senders, gt.receivers, num_channels=M)
  seg, chan = np.asarray(idx.seg), np.asarray(idx.chan_rows)
  offs, slots = s.node_offsets, el.slot_offsets(s)
  for e in range(s.total_edges):
    r = int(gt.edges["type"][e])
    src_t, dst_t = s.relation_src(r), s.relation_dst(r)
    j, i = int(gt.senders[e]) - offs[src_t], int(gt.receivers[e]) - offs[dst_t]
    np.testing.assert_allclose(table[chan[e]], h[src_t][j] @ w[r])
    assert seg[e] == slots[r] + i
  assert np.all(np.diff(seg) >= 0)  # the segment ops assume sorted segments


def test_slot_table_rows_are_each_edges_receiver_times_its_relation():
  """The slot tables as the layer builds them (one product per receiver type, `edge_ops.slot_table`), shared
  weights and one matrix per channel, each with its bias: every edge's slot row is its receiver's states times
  its relation's matrix plus its bias, and its sender row is its sender's global id, so <row, K_sender> is the
  edge's score."""
  data = make_graph(2, num_nodes=(7, 4, 9), empty_relation="md")
  s, gt = data.schema, data.to_graphs_tuple()
  M, d = 2, 3
  rng = np.random.default_rng(1)
  q = [rng.normal(size=(n, M, d)).astype(np.float32) for n in s.num_nodes]
  w = rng.normal(size=(M, s.num_relations, d, d)).astype(np.float32)  # one (d, d) per channel and relation
  b = rng.normal(size=(M, s.num_relations, d)).astype(np.float32)
  groups, layout = el.receiver_groups(s), el.slot_table_layout(s)
  side_by_side = lambda m, rels: (np.concatenate([w[m, r] for r in rels], 1), np.concatenate([b[m, r] for r in rels]))
  shared = edge_ops.slot_table(layout, (M, d), [(q[t],) + side_by_side(0, rels) for t, rels in groups])
  per_channel = edge_ops.slot_table(
      layout,
      (M, d),
      [(q[t],) + tuple(np.stack(x) for x in zip(*(side_by_side(m, rels) for m in range(M)))) for t, rels in groups],
  )
  assert shared.shape == per_channel.shape == (el.num_slots(s), M, d)
  idx = el.edge_index(s, gt.senders, gt.receivers, num_channels=M)
  seg, senders = np.asarray(idx.seg), np.asarray(idx.senders)
  offs = s.node_offsets
  for e in range(s.total_edges):
    r = int(gt.edges["type"][e])
    dst_t = s.relation_dst(r)
    i = int(gt.receivers[e]) - offs[dst_t]
    np.testing.assert_allclose(shared[seg[e]], q[dst_t][i] @ w[0, r] + b[0, r], rtol=1e-5, atol=1e-5)
    for m in range(M):
      np.testing.assert_allclose(per_channel[seg[e], m], q[dst_t][i, m] @ w[m, r] + b[m, r], rtol=1e-5, atol=1e-5)
    assert senders[e] == int(gt.senders[e])
