"""The generic .npz / directory format round-trips an MMHN, and the README example really runs."""

import os
import pathlib
import re

import numpy as np
import pytest
from data_helpers import expect_error

from hgnn_ima_jax.data_utils import MissingFilesError, load_dataset, read_generic, write_generic
from hgnn_ima_jax.data_utils.check import EXIT_OK, run
from hgnn_ima_jax.graph import MMHN, DatasetError, Relation

README = pathlib.Path(__file__).resolve().parents[1] / "data_utils" / "README.md"


def small_graph() -> MMHN:
  """Two types, a filled modality that no rule reproduces, a generated array."""
  rng = np.random.default_rng(0)
  writes = np.stack([rng.integers(0, 5, 20), rng.integers(0, 7, 20)], 1)
  return MMHN(
      name="small",
      node_types=("paper", "author"),
      num_nodes={"paper": 7, "author": 5},
      modalities=("text", "image", "price"),
      node_modalities={"paper": ("text", "image", "price"), "author": ("text",)},
      relations=(Relation("author", "writes", "paper"), Relation("paper", "written_by", "author")),
      edges={"writes": writes, "written_by": writes[:, ::-1].copy()},
      features={
          "paper": {
              "text": rng.normal(size=(7, 3)).astype(np.float32),
              "image": rng.normal(size=(7, 2)).astype(np.float32),
              "price": rng.normal(size=(7, 1)).astype(np.float32),
          },
          "author": {
              "text": rng.normal(size=(5, 3)).astype(np.float32),
              "image": np.zeros((5, 3), np.float32),  # = zeros rule
              "price": np.full((5, 3), 0.5, np.float32),
          },
      },  # no rule gives this
      target_type="paper",
      labels=np.array([0, 1, 2, 0, 1, 2, 0]),
      num_classes=4,
      splits={"train": np.array([0, 1, 2]), "val": np.array([3]), "test": np.array([4, 5, 6])},
      provenance={
          "features": {
              "paper/text": "real",
              "paper/image": "generated",
              "paper/price": "real",
              "author/text": "real",
              "author/image": "filled:zeros",
              "author/price": "filled:given",
          }
      },
  ).validate()


def assert_same(a: MMHN, b: MMHN):
  assert (a.node_types, a.modalities, a.target_type, a.num_classes) == (
      b.node_types,
      b.modalities,
      b.target_type,
      b.num_classes,
  )
  assert dict(a.num_nodes) == dict(b.num_nodes) and dict(a.node_modalities) == dict(b.node_modalities)
  assert tuple(a.relations) == tuple(b.relations)
  for r in a.relations:
    np.testing.assert_array_equal(a.edges[r.name], b.edges[r.name])
  for t in a.node_types:
    for m in a.modalities:
      np.testing.assert_array_equal(a.features[t][m], b.features[t][m])
      assert a.features[t][m].dtype == b.features[t][m].dtype
  np.testing.assert_array_equal(a.labels, b.labels)
  for s in ("train", "val", "test"):
    np.testing.assert_array_equal(a.splits[s], b.splits[s])
  assert a.feature_provenance == b.feature_provenance
  assert a.comparable_with_paper == b.comparable_with_paper


@pytest.mark.parametrize("suffix", [".npz", ""])
def test_round_trip(tmp_path, suffix):
  g = small_graph()
  path = write_generic(tmp_path / f"small{suffix}", g)
  back = load_dataset(path)
  assert_same(g, back)
  assert not back.comparable_with_paper  # 'generated' survives the round trip
  keys = set(np.load(path).files) if suffix else {str(p.relative_to(path).with_suffix("")) for p in path.rglob("*.npy")}
  assert "features/author/image" not in keys and "features/author/price" in keys  # zeros rule vs given
  assert str(np.load(path)["missing_fill"] if suffix else np.load(path / "missing_fill.npy")) == "zeros"


def test_round_trip_of_a_real_dataset(tmp_path, shared_datasets):
  g = load_dataset("douban", shared_datasets, features="generated")
  back = read_generic(write_generic(tmp_path / "douban.npz", g))
  assert_same(g, back)
  assert back.provenance["missing_fill"] == "zeros"
  # The fill rule is recorded, not the zero arrays.
  assert "features/director/image" not in np.load(tmp_path / "douban.npz").files


def test_missing_fill_override(tmp_path):
  path = write_generic(tmp_path / "s.npz", small_graph())
  g = load_dataset(path, missing_fill="text")
  np.testing.assert_array_equal(g.features["author"]["image"], g.features["author"]["text"])
  assert g.feature_provenance["author/image"] == "filled:text"
  np.testing.assert_array_equal(g.features["author"]["price"], np.full((5, 3), 0.5))  # stored arrays win


def test_write_directory_refuses_a_non_empty_one(tmp_path):
  (tmp_path / "d").mkdir()
  (tmp_path / "d" / "x.txt").write_text("keep me")
  with pytest.raises(FileExistsError):
    write_generic(tmp_path / "d", small_graph())


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
  example = next(b for b in blocks if "np.savez" in b)
  assert len(example.strip().splitlines()) <= 10
  monkeypatch.chdir(tmp_path)
  exec(compile(example, str(README), "exec"), {})  # pylint: disable=exec-used
  out = capsys.readouterr().out
  assert "paper (target)" in out and "author/image=filled:text" in out
  g = load_dataset(tmp_path / "toy.npz")
  assert g.num_nodes == {"paper": 60, "author": 25} and len(g.edges["writes"]) == 150
  assert run(str(tmp_path / "toy.npz"), out=open(os.devnull, "w")) == EXIT_OK


# --- malformed generic files --------------------------------------------------------------------
def _npz(tmp_path, **changes):
  path = write_generic(tmp_path / "g.npz", small_graph())
  z = dict(np.load(path))
  for k, v in changes.items():
    if v is None:
      del z[k]
    else:
      z[k] = v
  np.savez(path, **z)
  return path


def test_missing_key(tmp_path):
  path = _npz(tmp_path, **{"edges/writes": None})
  expect_error(lambda: read_generic(path), f"{path}[edges/writes]", "edges/writes: missing")


def test_unknown_key(tmp_path):
  path = _npz(tmp_path, **{"feature/paper/text": np.zeros((7, 3))})
  expect_error(lambda: read_generic(path), f"{path}[feature/paper/text]", "unknown key")


def test_edge_out_of_range_names_the_member(tmp_path):
  path = _npz(tmp_path, **{"edges/writes": np.array([[0, 7]])})
  expect_error(lambda: read_generic(path), f"{path}[edges/writes]", "dst node id 7 is outside 'paper' ids 0..6")


def test_nan_feature_names_the_member(tmp_path):
  x = np.ones((7, 3), np.float32)
  x[2, 2] = np.nan
  path = _npz(tmp_path, **{"features/paper/text": x})
  expect_error(lambda: read_generic(path), f"{path}[features/paper/text]", "NaN or inf")


@pytest.mark.parametrize("dtype", [bool, np.int64])
def test_a_split_stored_as_a_mask_is_told_to_store_ids(tmp_path, dtype):
  """From an audit: PyG users keep splits as masks; a bool mask was 'expected an integer type' and a 0/1 one
  'contains repeated ids', both true and neither saying what to store."""
  mask = np.zeros(7, dtype)
  mask[[0, 3]] = 1
  path = _npz(tmp_path, **{"splits/train": mask})
  with pytest.raises(DatasetError) as e:
    read_generic(path)
  assert str(e.value).startswith(f"{path}[splits/train]: ") and "\n" not in str(e.value), e.value
  assert str(e.value).endswith(
      "Fix: it looks like a mask over the 7 'paper' nodes: store np.flatnonzero(mask), the ids " "of its True entries"
  )


def test_relations_wrong_shape(tmp_path):
  path = _npz(tmp_path, relations=np.array(["author", "writes", "paper"]))
  expect_error(lambda: read_generic(path), f"{path}[relations]", "shape (3,), expected (N, 3)")


def test_directory_truncated_member(tmp_path):
  d = write_generic(tmp_path / "dir", small_graph())
  f = d / "labels.npy"
  f.write_bytes(f.read_bytes()[:20])
  expect_error(lambda: read_generic(d), f, "cannot be read")


def test_absent_path(tmp_path):
  expect_error(lambda: load_dataset(tmp_path / "nope.npz"), tmp_path, "nope.npz", cls=MissingFilesError)


@pytest.mark.parametrize(
    "changes, member, fragment",
    [
        # each declaration reported as itself, not as the unknown key or the feature shape it leads to
        ({"num_nodes": np.array([7, -1])}, "num_nodes", "num_nodes['author']: node type 'author' has -1 nodes"),
        ({"modalities": np.array(["text", "text", "price"])}, "modalities", "duplicate names in ['text', 'text'"),
        ({"modalities": np.array([], dtype=str)}, "modalities", "modalities: no modalities"),
        ({"node_types": np.array([], dtype=str)}, "node_types", "node_types: no node types"),
        ({"node_modalities/author": np.array(["text", "text"])}, "node_modalities/author", "duplicate names in"),
        # feature_provenance: stored arrays only, each once, known origins (it decides the paper NOTE)
        ({"feature_provenance": np.array([["paper/text", "fake"]])}, "feature_provenance", "has origin 'fake'"),
        ({"feature_provenance": np.array([["paper/audio", "generated"]])}, "feature_provenance", "is not a stored"),
        (
            {"feature_provenance": np.array([["paper/image", "generated"], ["paper/image", "real"]])},
            "feature_provenance",
            "'paper/image' is listed twice",
        ),
        ({"features/paper/text": np.ones(7, np.float32)}, "features/paper/text", "shape (7,), expected (N, D)"),
    ],
)
def test_a_wrong_declaration_names_its_own_member(tmp_path, changes, member, fragment):
  path = _npz(tmp_path, **changes)
  expect_error(lambda: read_generic(path), f"{path}[{member}]", fragment)


def test_an_unreadable_user_file_is_to_be_written_again_not_downloaded(tmp_path):
  d = write_generic(tmp_path / "dir", small_graph())
  np.save(d / "labels.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
  err = expect_error(lambda: read_generic(d), d / "labels.npy", "cannot be read")
  assert "write it again with np.save" in err.fix and "download" not in err.fix
  single = tmp_path / "one.npy"
  np.save(single, np.zeros(3))
  expect_error(lambda: read_generic(single), single, "it is a single .npy array, not an .npz archive")


def test_an_npz_inside_a_directory_dataset_is_named(tmp_path):
  d = write_generic(tmp_path / "dir", small_graph())
  np.savez(d / "labels.npz", labels=np.load(d / "labels.npy"))
  (d / "labels.npy").unlink()
  expect_error(lambda: read_generic(d), d / "labels.npy", "missing (found labels.npz: a directory dataset holds one")


def _trainable(**changes):
  g = small_graph()
  g.num_classes = 3
  for k, v in changes.items():
    setattr(g, k, v)
  return g.validate()  # valid as a graph: it could be predicted on


@pytest.mark.parametrize(
    "changes, field, fragment",
    [
        ({"num_classes": 5}, "labels", "2 of the 5 classes have no node (class 3, 4); the labels use 3"),
        ({"labels": np.array([0, 0, 0, 1, 1, 2, 2])}, "splits['train']", "all 3 training nodes have class 0"),
        (
            {"edges": {"writes": np.zeros((0, 2), np.int64), "written_by": np.array([[0, 1]])}},
            "relations",
            "no edge ends at the target type 'paper' (its relations ['writes'] are empty)",
        ),
    ],
)
def test_what_training_needs_is_checked_apart_from_validity(changes, field, fragment):
  from hgnn_ima_jax.graph_checks import check_trainable

  check_trainable(_trainable())
  g = _trainable(**changes)
  with pytest.raises(DatasetError) as info:
    check_trainable(g)
  assert info.value.field == field and fragment in str(info.value) and "Fix: " in str(info.value), str(info.value)


def test_label_errors_say_what_to_do_with_unlabelled_nodes_and_name_num_classes(tmp_path):
  path = _npz(tmp_path, labels=np.array([0, 1, 2, 0, 1, 2, -1]))  # -1: an unlabelled node
  err = expect_error(lambda: read_generic(path), f"{path}[labels]", "values span -1..2")
  assert "keep it out of every split" in err.fix
  path = _npz(tmp_path, num_classes=np.array(1))
  expect_error(lambda: read_generic(path), f"{path}[num_classes]", "is 1, but node classification needs at least 2")


# --- messages from a user audit -----------------------------------------------------------------
def test_a_modality_no_type_has_is_refused(tmp_path):
  """From an audit: modalities ['text', 'image', 'price', 'audio'] with no type having audio loaded, every type's
  audio filled from its text."""
  path = _npz(tmp_path, modalities=np.array(["text", "image", "price", "audio"]))
  with pytest.raises(DatasetError, match=re.escape(f"{path}[modalities]: modalities: no node type has ['audio']")) as e:
    read_generic(path)
  assert e.value.fix.startswith("drop it from modalities, or store a type's features/<type>/<modality>"), e.value
  # an in-memory graph too, before or after a fill (node_modalities still lists no type with it)
  g = small_graph()
  g.modalities = (*g.modalities, "audio")
  with pytest.raises(DatasetError, match=r"modalities: no node type has \['audio'\].*Fix: drop it from modalities"):
    g.validate()
  from hgnn_ima_jax.graph import fill_missing_modalities

  fill_missing_modalities(g, "text")
  assert all("audio" in g.features[t] for t in g.node_types)
  with pytest.raises(DatasetError, match=r"modalities: no node type has \['audio'\]"):
    g.validate()


@pytest.mark.parametrize("suffix", [".npz", ""])
def test_edges_stored_as_pyg_edge_index_are_told_to_transpose(tmp_path, suffix):
  """From an audit: a (2, E) edge array (PyG's edge_index) got 'store a (N, 2) array' alone."""
  g = small_graph()
  path = write_generic(tmp_path / f"g{suffix}", g)
  writes = np.ascontiguousarray(g.edges["writes"].T)  # (2, 20)
  if suffix:
    path = _npz(tmp_path, **{"edges/writes": writes})
  else:
    np.save(path / "edges" / "writes.npy", writes)
  with pytest.raises(
      DatasetError,
      match=re.escape(
          "edges/writes: shape (2, 20), expected (N, 2). Fix: store a (N, 2) array (PyG's edge_index is (2, E): "
          "store edge_index.T)"
      ),
  ):
    read_generic(path)
  other = _npz(tmp_path, **{"edges/writes": np.zeros((3, 5), np.int64)})  # not (2, E): no PyG hint
  with pytest.raises(DatasetError, match=r"shape \(3, 5\), expected \(N, 2\)\. Fix: store a \(N, 2\) array$"):
    read_generic(other)


def test_a_wrong_num_nodes_is_reported_as_the_count(tmp_path):
  """From an audit: num_nodes 61 for 60 feature rows blamed features['paper']['text'], the one thing that was right."""
  for count in (8, 6):  # 6 would also put edge ids out of range: the count is still what is named
    path = _npz(tmp_path, num_nodes=np.array([count, 5]))
    with pytest.raises(
        DatasetError,
        match=re.escape(
            f"{path}[num_nodes]: num_nodes['paper']: is {count}, but every feature array of 'paper' (text, image, price) "
            f"has 7 rows. Fix: store 7 as the count of 'paper' in num_nodes"
        ),
    ):
      read_generic(path)
  # one array that disagrees with the others is still reported as that array
  path = _npz(tmp_path, **{"features/paper/image": np.ones((6, 2), np.float32)})
  with pytest.raises(DatasetError, match=re.escape("features['paper']['image']: shape (6, 2), expected (7, D)")):
    read_generic(path)
  g = small_graph()
  g.num_nodes["author"] = 4
  with pytest.raises(DatasetError, match=r"num_nodes\['author'\]: is 4, but every feature array of 'author'"):
    g.validate()
