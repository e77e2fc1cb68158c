"""`data_utils.pyg.from_hetero_data`: a PyG HeteroData as an MMHN (without torch: a stand-in with HeteroData's
interface; with torch_geometric installed, the real class too)."""

from __future__ import annotations

import numpy as np
import pytest

from hgnn_ima_jax.data_utils import DatasetError, read_generic, write_generic
from hgnn_ima_jax.data_utils.pyg import from_hetero_data


class Store(dict):
  """A node or edge store: attributes by name, `in` and `keys()`, as PyG's storages."""

  def __getattr__(self, key):
    try:
      return self[key]
    except KeyError:
      raise AttributeError(key) from None

  def __setattr__(self, key, value):
    self[key] = value


class FakeHeteroData:
  """What from_hetero_data reads of a HeteroData: node_types, edge_types and data[type]."""

  def __init__(self):
    self.stores: dict = {}

  def __getitem__(self, key):
    return self.stores.setdefault(key, Store())

  @property
  def node_types(self):
    return [k for k in self.stores if isinstance(k, str)]

  @property
  def edge_types(self):
    return [k for k in self.stores if isinstance(k, tuple)]


def movies(n_movies=30, n_actors=12, seed=0, data=None):
  """Movies (text as x, a poster) and actors (text only) with has / rev_has edges and masks on movie."""
  rng = np.random.default_rng(seed)
  d = data if data is not None else FakeHeteroData()
  d["movie"].x = rng.normal(size=(n_movies, 8))
  d["movie"].poster = rng.normal(size=(n_movies, 5))
  d["movie"].y = np.arange(n_movies) % 3
  perm = rng.permutation(n_movies)
  for split, ids in zip(("train", "val", "test"), np.split(perm, [10, 18])):
    mask = np.zeros(n_movies, bool)
    mask[ids] = True
    d["movie"][f"{split}_mask"] = mask
  d["actor"].x = rng.normal(size=(n_actors, 8))
  e = np.stack([rng.integers(0, n_movies, 60), rng.integers(0, n_actors, 60)])
  d["movie", "has", "actor"].edge_index = e
  d["actor", "rev_has", "movie"].edge_index = e[::-1].copy()
  return d


def test_a_heterodata_becomes_the_mmhn_of_its_arrays(tmp_path):
  d = movies()
  g = from_hetero_data(d, modalities={"text": "x", "image": "poster"}, target_type="movie")
  assert g.node_types == ("movie", "actor") and g.num_nodes == {"movie": 30, "actor": 12}
  assert [tuple(r) for r in g.relations] == [("movie", "has", "actor"), ("actor", "rev_has", "movie")]
  np.testing.assert_array_equal(g.edges["has"], d["movie", "has", "actor"].edge_index.T)  # (2, E) -> (E, 2)
  np.testing.assert_array_equal(g.features["movie"]["image"], d["movie"].poster.astype(np.float32))
  assert g.node_modalities == {"movie": ("text", "image"), "actor": ("text",)}
  np.testing.assert_array_equal(g.features["actor"]["image"], g.features["actor"]["text"])  # the paper's fill
  assert g.feature_provenance["actor/image"] == "filled:text" and g.feature_provenance["movie/image"] == "real"
  for split in ("train", "val", "test"):
    np.testing.assert_array_equal(g.splits[split], np.flatnonzero(d["movie"][f"{split}_mask"]))
  assert g.num_classes == 3
  back = read_generic(write_generic(tmp_path / "movies.npz", g))  # what the command-line scripts then read
  assert back.schema == g.schema and back.feature_provenance == g.feature_provenance
  zeros = from_hetero_data(d, modalities={"text": "x", "image": "poster"}, target_type="movie", missing_fill="zeros")
  assert not zeros.features["actor"]["image"].any()


def test_shared_relation_names_are_made_unique_or_given():
  d = movies()
  d["actor", "to", "movie"].edge_index = d["actor", "rev_has", "movie"].edge_index
  d["movie", "to", "actor"].edge_index = d["movie", "has", "actor"].edge_index
  g = from_hetero_data(d, modalities=("x",), target_type="movie")
  assert [r.name for r in g.relations] == ["has", "rev_has", "actor__to__movie", "movie__to__actor"]
  named = from_hetero_data(
      d, modalities=("x",), target_type="movie", relation_names={("movie", "to", "actor"): "plays_in"}
  )
  assert [r.name for r in named.relations][2:] == ["actor__to__movie", "plays_in"]
  with pytest.raises(DatasetError, match=r"relation name 'has' names \('movie', 'has', 'actor'\) too.*relation_names"):
    from_hetero_data(d, modalities=("x",), target_type="movie", relation_names={("movie", "to", "actor"): "has"})


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d: d["movie"].__setitem__("y", np.where(np.arange(30) == 4, -1, np.arange(30) % 3)), r"-1"),
        (lambda d: d["movie"].pop("val_mask"), r"HeteroData\['movie'\]\.val_mask: missing.*splits="),
        (
            lambda d: d["actor"].pop("x"),
            r"HeteroData\['actor'\]: has none of the modality attributes \['x', 'poster'\]",
        ),
        (lambda d: d["movie"].__setitem__("poster", np.zeros((29, 5))), r"poster: has 29 rows where x has 30"),
        (lambda d: d["movie"].pop("y"), r"HeteroData\['movie'\]\.y: missing"),
        (
            lambda d: d["movie", "has", "actor"].__setitem__("edge_index", np.zeros((60, 2), int)),
            r"edge_index.*\(2, E\)",
        ),
        (lambda d: d["actor", "rev_has", "movie"].pop("edge_index"), r"edge_index: missing"),
        (lambda d: d["actor"].__setitem__("num_nodes", 20), r"HeteroData\['actor'\]\.num_nodes: is 20 but x has 12"),
    ],
)
def test_what_cannot_be_converted_is_one_line(edit, message):
  d = movies()
  edit(d)
  with pytest.raises(DatasetError, match=message) as err:
    from_hetero_data(d, modalities={"text": "x", "image": "poster"}, target_type="movie")
  assert "\n" not in str(err.value) and "Fix:" in str(err.value)


def test_a_misspelt_modality_attribute_is_refused():
  """From a review: {'image': 'postr'} made an image modality that every type was filled with, without a word."""
  with pytest.raises(DatasetError, match=r"modalities: no node type has the attribute\(s\) \['postr'\]"):
    from_hetero_data(movies(), modalities={"text": "x", "image": "postr"}, target_type="movie")


def test_a_featureless_type_gets_a_constant_column_when_asked():
  """PyG's featureless types (only num_nodes) are refused with the fix, or with featureless='ones' get one constant
  column as their first modality (the scalar MLP embeds it), marked generated, the other modalities filled."""
  d = movies()
  d["studio"].num_nodes = 4
  d["studio", "makes", "movie"].edge_index = np.stack([np.arange(30) % 4, np.arange(30)])
  with pytest.raises(DatasetError, match=r"HeteroData\['studio'\]: has none .*Fix: pass featureless='ones'"):
    from_hetero_data(d, modalities={"text": "x", "image": "poster"}, target_type="movie")
  g = from_hetero_data(d, modalities={"text": "x", "image": "poster"}, target_type="movie", featureless="ones")
  assert g.num_nodes["studio"] == 4 and g.node_modalities["studio"] == ("text",)
  np.testing.assert_array_equal(g.features["studio"]["text"], np.ones((4, 1)))
  assert g.feature_provenance["studio/text"] == "generated" and g.feature_provenance["studio/image"] == "filled:text"
  assert g.feature_provenance["actor/text"] == "real"


def test_masks_as_numbers():
  """uint8 or 0/1 masks (older PyG datasets) are masks, not node ids (they read as repeated ids 0 and 1)."""
  d = movies()
  want = from_hetero_data(d, modalities=("x",), target_type="movie").splits
  for split in ("train", "val", "test"):
    d["movie"][f"{split}_mask"] = d["movie"][f"{split}_mask"].astype(np.int64)
  assert all(
      np.array_equal(from_hetero_data(d, modalities=("x",), target_type="movie").splits[s], want[s]) for s in want
  )
  as_uint8 = {s: np.isin(np.arange(30), want[s]).astype(np.uint8) for s in want}
  got = from_hetero_data(d, modalities=("x",), target_type="movie", splits=as_uint8).splits
  assert all(np.array_equal(got[s], want[s]) for s in want)


def test_splits_given_as_ids_and_a_scalar_attribute_as_one_column():
  d = movies()
  d["movie"].price = np.linspace(1.0, 2.0, 30)  # (N,): one number per node
  ids = {"train": np.arange(10), "val": np.arange(10, 15), "test": np.arange(15, 30)}
  g = from_hetero_data(d, modalities=("x", "price"), target_type="movie", splits=ids)
  assert g.features["movie"]["price"].shape == (30, 1) and g.features["actor"]["price"].shape == (12, 8)
  np.testing.assert_array_equal(g.splits["val"], np.arange(10, 15))


def test_the_real_heterodata_class():
  """The same conversion from PyG's own class and tensors, after ToUndirected (which names reverses rev_*)."""
  torch = pytest.importorskip("torch")
  pyg_data = pytest.importorskip("torch_geometric.data")
  transforms = pytest.importorskip("torch_geometric.transforms")
  plain = movies()
  d = pyg_data.HeteroData()
  for t in plain.node_types:
    for k, v in plain[t].items():
      d[t][k] = torch.from_numpy(np.asarray(v))
  d["movie", "has", "actor"].edge_index = torch.from_numpy(plain["movie", "has", "actor"].edge_index)
  d = transforms.ToUndirected()(d)
  got = from_hetero_data(d, modalities={"text": "x", "image": "poster"}, target_type="movie")
  want = from_hetero_data(plain, modalities={"text": "x", "image": "poster"}, target_type="movie")
  assert got.schema == want.schema
  for t in want.node_types:
    for m in want.modalities:
      np.testing.assert_array_equal(got.features[t][m], want.features[t][m])
  for r in want.relations:
    np.testing.assert_array_equal(got.edges[r.name], want.edges[r.name])
  d["movie"].poster = d["movie"].poster.to(torch.bfloat16)  # a dtype NumPy lacks: its float32 values
  half = from_hetero_data(d, modalities={"text": "x", "image": "poster"}, target_type="movie")
  np.testing.assert_array_equal(half.features["movie"]["image"], d["movie"].poster.float().numpy())


def _nan_at(attr, t="movie"):
  def edit(d):
    d[t][attr] = np.array(d[t][attr], float)
    d[t][attr][3, 1] = np.nan

  return edit


@pytest.mark.parametrize(
    "edit,message",
    [
        (_nan_at("x"), r"^<HeteroData>: HeteroData\['movie'\]\.x: contains NaN or inf \(first at row 3\)\. Fix: clean"),
        (_nan_at("poster"), r"^<HeteroData>: HeteroData\['movie'\]\.poster: contains NaN or inf"),
        # actor's image is filled from its x: the NaN is in the attribute the user wrote
        (_nan_at("x", "actor"), r"^<HeteroData>: HeteroData\['actor'\]\.x: contains NaN or inf"),
        (
            lambda d: d["movie", "has", "actor"].edge_index.__setitem__((0, 5), 99),
            r"^<HeteroData>: HeteroData\['movie', 'has', 'actor'\]\.edge_index: edge_index\[0\] holds node id 99, outside 'movie' ids "
            r"0\.\.29\. Fix: use local ids",
        ),
        (
            lambda d: d["actor", "rev_has", "movie"].edge_index.__setitem__((1, 0), -1),
            r"^<HeteroData>: HeteroData\['actor', 'rev_has', 'movie'\]\.edge_index: edge_index\[1\] holds node id -1, outside 'movie'",
        ),
        (
            lambda d: d["movie"].__setitem__("y", np.where(np.arange(30) == 4, -1, np.arange(30) % 3)),
            r"^<HeteroData>: HeteroData\['movie'\]\.y: values span -1\.\.2",
        ),
        (
            lambda d: d["movie"].__setitem__("val_mask", d["movie"].train_mask | d["movie"].val_mask),
            r"^<HeteroData>: HeteroData\['movie'\]\.val_mask: overlaps 'train'",
        ),
    ],
)
def test_validation_errors_name_the_attribute_the_user_wrote(edit, message):
  """From an audit: errors found after conversion named the MMHN's fields (features['movie']['text'],
  edges['has']), not the HeteroData attribute the docstring promises."""
  d = movies()
  edit(d)
  with pytest.raises(DatasetError, match=message) as err:
    from_hetero_data(d, modalities={"text": "x", "image": "poster"}, target_type="movie")
  assert "\n" not in str(err.value) and "features[" not in str(err.value) and "edges[" not in str(err.value)


def test_an_edge_index_stored_as_pairs_is_told_to_store_2_by_e():
  """A HeteroData user's edge_index is (2, E): the generic format's (E, 2) advice would be wrong for them."""
  d = movies()
  d["movie", "has", "actor"].edge_index = d["movie", "has", "actor"].edge_index.T.copy()
  where = r"HeteroData\['movie', 'has', 'actor'\]\.edge_index"
  with pytest.raises(DatasetError, match=where + r": has shape \(60, 2\).*Fix: store \(2, E\)") as err:
    from_hetero_data(d, modalities=("x",), target_type="movie")
  assert "(N, 2)" not in str(err.value) and "(E, 2)" not in str(err.value)
