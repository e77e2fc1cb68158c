"""Every malformed input raises a one-line DatasetError naming the file, the field and the fix."""

import numpy as np
import pytest
import scipy.sparse
from data_helpers import copy_dataset, expect_error, write_features

from hgnn_ima_jax.data_utils import DatasetError, MissingFilesError, load_dataset


@pytest.fixture
def douban(tmp_path, shared_datasets):
  """A writable copy of DOUBAN with small real-format feature files: loads cleanly before each edit."""
  d = copy_dataset(shared_datasets, "douban", tmp_path)
  write_features(tmp_path, "douban", dim=4)
  load_dataset("douban", tmp_path)
  return d


def load(d, **kw):
  return lambda: load_dataset("douban", d.parent, **kw)


def edit(path, fn):
  """Loads an .npy, applies fn, saves it back."""
  np.save(path, fn(np.load(path)))


# --- files --------------------------------------------------------------------------------
def test_missing_published_file_names_it_and_the_download_command(douban):
  (douban / "labels.npy").unlink()
  err = expect_error(
      load(douban),
      douban,
      str(douban / "labels.npy"),
      "python -m hgnn_ima_jax.data_utils.download",
      cls=MissingFilesError,
  )
  assert err.kind == "published" and err.paths == (str(douban / "labels.npy"),)


def test_missing_feature_file_with_real_features(douban):
  (douban / "features_douban_928_1_actor.npz.npy").unlink()
  err = expect_error(load(douban), douban, "features_douban_928_1_actor.npz.npy", cls=MissingFilesError)
  assert err.kind == "features"
  g = load_dataset("douban", douban.parent, features="generated")  # only that one is generated
  assert g.feature_provenance["actor/text"] == "generated" and g.feature_provenance["movie/text"] == "real"
  assert g.features["actor"]["text"].shape == (3267, 4)  # the real files' width


def test_truncated_npy(douban):
  rdf = douban / "douban_actor_rdf.npy"
  rdf.write_bytes(rdf.read_bytes()[:1000])
  expect_error(load(douban), rdf, "cannot be read as a .npy array", "re-download")


def test_npz_without_key(douban):
  split = douban / "train_val_test_idx_929.npz"
  z = dict(np.load(split))
  del z["val_idx"]
  np.savez(split, **z)
  expect_error(load(douban), split, "key 'val_idx' is missing")


def test_npz_feature_without_feature_key(douban):
  img = douban / "img_feature_douban_512_199.npz"
  np.savez(img, features=np.zeros((1888, 4)))
  expect_error(load(douban), img, "key 'feature' is missing")


def test_not_an_npz(douban):
  split = douban / "train_val_test_idx_929.npz"
  split.write_bytes(b"this is not a zip archive")
  expect_error(load(douban), split, "cannot be read as an .npz archive")


def test_object_array_is_refused(douban):
  labels = douban / "labels.npy"
  np.save(labels, np.array([{"a": 1}] * 1888, dtype=object), allow_pickle=True)
  expect_error(load(douban), labels, "cannot be read")


# --- one published .npy edited: (file, edit, what the error says besides the file) ------------------
RDF, LABELS = "douban_actor_rdf.npy", "labels.npy"
DIRECTORS, ACTORS = "features_douban_928_1_directors.npz.npy", "features_douban_928_1_actor.npz.npy"
NPY_EDITS = [
    pytest.param(RDF, lambda a: a[:, :2], ("shape (15032, 2), expected (N, 3)",), id="rdf_wrong_shape"),
    pytest.param(
        RDF, lambda a: a.astype(np.float64), ("dtype float64, expected an integer type",), id="rdf_wrong_dtype"
    ),
    pytest.param(
        RDF,
        lambda a: np.concatenate([a, [[0, 1888, 7]]]).astype(a.dtype),
        ("relation id 7 at row 15032 is unknown",),
        id="unknown_relation_id",
    ),
    pytest.param(
        DIRECTORS,
        lambda a: np.where(np.arange(len(a))[:, None] == 7, np.nan, a),
        ("features['director']['text']", "NaN or inf (first at row 7)"),
        id="nan_in_features",
    ),
    pytest.param(
        ACTORS,
        lambda a: a[:-1],
        ("3266 rows, but node type 'actor' has 3267 nodes",),
        id="feature_rows_must_match_the_id_range",
    ),
    pytest.param(ACTORS, lambda a: a[:, 0], ("shape (3267,), expected (N, D)",), id="feature_wrong_ndim"),
    pytest.param(
        LABELS,
        lambda a: np.where(np.arange(len(a)) == 3, 2, a).astype(a.dtype),
        ("labels", "outside 0..1"),
        id="labels_out_of_range",
    ),
    pytest.param(LABELS, lambda a: a[:-5], ("shape (1883,), expected (1888,)",), id="labels_wrong_length"),
    pytest.param(
        LABELS, lambda a: a.astype(np.float32), ("dtype float32, expected an integer type",), id="labels_wrong_dtype"
    ),
]


@pytest.mark.parametrize("name, fn, fragments", NPY_EDITS)
def test_edited_npy(douban, name, fn, fragments):
  path = douban / name
  edit(path, fn)
  expect_error(load(douban), path, *fragments)


# --- rdf (its .npy edits: NPY_EDITS) --------------------------------------------------------
@pytest.mark.parametrize(
    "row, problem",
    [
        ([5, 100, 0], "dst id 100 is outside the 'director' id range 1888..3359"),  # movie -> movie under M->D
        ([2000, 3400, 2], "src id 2000 is outside the 'movie' id range 0..1887"),  # director as a movie
        ([3400, 9999, 3], "dst id 9999 is outside the 'movie' id range 0..1887"),  # beyond every type
        ([-1, 1888, 0], "src id -1 is outside the 'movie' id range"),
    ],
)
def test_node_id_outside_its_types_range(douban, row, problem):
  rdf = douban / "douban_actor_rdf.npy"
  edit(rdf, lambda a: np.concatenate([a, [row]]).astype(a.dtype))
  expect_error(load(douban), rdf, problem, "rdf row 15032")


# --- features (their .npy edits: NPY_EDITS) --------------------------------------------------
def test_inf_in_image_features(douban):
  f = douban / "img_feature_douban_512_199.npz"
  x = np.zeros((1888, 4))
  x[3, 1] = np.inf
  np.savez(f, feature=x)
  expect_error(load(douban), f, "features['movie']['image']", "NaN or inf")


def test_feature_wrong_dtype(douban):
  f = douban / "features_douban_928_1_movie.npz.npy"
  np.save(f, np.full((1888, 4), "x"))
  expect_error(load(douban), f, "dtype <U1, expected a real number type")


# --- labels and splits -------------------------------------------------------------------------
def _edit_split(d, key, fn):
  """Replaces split `key` by fn(every split of the published file) and returns the file."""
  split = d / "train_val_test_idx_929.npz"
  z = dict(np.load(split))
  z[key] = fn(z)
  np.savez(split, **z)
  return split


def test_split_out_of_range(douban):
  split = _edit_split(douban, "test_idx", lambda z: np.array([1, 2, 1888], np.int32))
  expect_error(load(douban), split, "splits['test']", "id 1888 outside 0..1887")


def test_split_overlap(douban):
  split = _edit_split(douban, "val_idx", lambda z: np.concatenate([z["val_idx"], z["train_idx"][:1]]))
  expect_error(load(douban), split, "splits['val']", "overlaps 'train' in 1 ids")


def test_empty_split(douban):
  split = _edit_split(douban, "val_idx", lambda z: np.zeros((0,), np.int32))
  expect_error(load(douban), split, "splits['val']", "is empty")


def test_split_repeated_ids(douban):
  split = _edit_split(douban, "train_idx", lambda z: np.concatenate([z["train_idx"], z["train_idx"][:2]]))
  expect_error(load(douban), split, "splits['train']", "repeated ids")


def test_split_wrong_dtype(douban):
  split = _edit_split(douban, "train_idx", lambda z: z["train_idx"].astype(np.float64))
  expect_error(load(douban), split, "splits['train']", "dtype float64")


# --- IMDB node types ----------------------------------------------------------------------------
@pytest.fixture
def imdb(tmp_path, shared_datasets):
  return copy_dataset(shared_datasets, "imdb", tmp_path)


def test_node_type_with_no_nodes(imdb):
  nt = imdb / "node_types.npy"
  edit(nt, lambda a: np.where(a == 1, 2, a).astype(a.dtype))
  expect_error(lambda: load_dataset("imdb", imdb.parent, features="generated"), nt, "node type 'director' has no nodes")


def test_node_types_not_contiguous(imdb):
  nt = imdb / "node_types.npy"
  edit(nt, lambda a: a[::-1].copy())
  expect_error(lambda: load_dataset("imdb", imdb.parent, features="generated"), nt, "not contiguous")


@pytest.mark.parametrize("cut", [slice(None, -10), slice(10, None)], ids=["end", "start"])
def test_node_types_shorter_than_the_graph_is_blamed_on_node_types(imdb, cut):
  """From an audit: a node_types.npy cut short gave every type a shorter id range, and the error blamed rdf.npy."""
  nt = imdb / "node_types.npy"
  edit(nt, lambda a: a[cut].copy())
  expect_error(
      lambda: load_dataset("imdb", imdb.parent, features="generated"),
      nt,
      "node types: 11606 entries, but rdf.npy has global ids up to 11615 (11616 nodes)",
  )


def test_a_stray_rdf_id_past_every_node_is_still_blamed_on_the_rdf(imdb):
  rdf = imdb / "rdf.npy"
  edit(rdf, lambda a: np.concatenate([a, [[0, 20000, 2]]]).astype(a.dtype))
  expect_error(
      lambda: load_dataset("imdb", imdb.parent, features="generated"), rdf, "dst id 20000 is outside the 'actor' id"
  )


def test_truncated_sparse_features(imdb):
  f = imdb / "features_1.npz"
  f.write_bytes(f.read_bytes()[:5000])
  expect_error(
      lambda: load_dataset("imdb", imdb.parent, features="generated"), f, "cannot be read as a scipy.sparse .npz matrix"
  )


def test_sparse_features_wrong_rows(imdb):
  f = imdb / "features_2.npz"
  scipy.sparse.save_npz(f, scipy.sparse.csr_matrix(np.ones((10, 3066))))
  expect_error(
      lambda: load_dataset("imdb", imdb.parent, features="generated"),
      f,
      "10 rows, but node type 'actor' has 5257 nodes",
  )


def test_nothing_escapes_half_loaded(douban):
  """A failed load returns nothing and leaves no state: the next good load is unaffected."""
  labels = douban / "labels.npy"
  good = np.load(labels)
  edit(labels, lambda a: a[:-1])
  with pytest.raises(DatasetError):
    load_dataset("douban", douban.parent)
  np.save(labels, good)
  g = load_dataset("douban", douban.parent)
  assert len(g.labels) == 1888
