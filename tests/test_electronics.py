"""AMAZON-1/2 loaders on small files in the documented format (the real sets are not published)."""

import numpy as np
import pytest
from data_helpers import expect_error

from hgnn_ima_jax.data_utils import MissingFilesError, load_dataset
from hgnn_ima_jax.data_utils.electronics import ELECTRONICS_RELATIONS

N = 30


def write_electronics(root, name="amazon1", price=None, features=True):
  """Writes a small AMAZON-1/2 directory; returns it and the raw relation arrays."""
  d = root / name
  d.mkdir(parents=True)
  rng = np.random.default_rng(0)
  np.save(d / "labels.npy", np.arange(N) % 12)
  perm = rng.permutation(N)
  np.savez(d / "train_val_test_idx.npz", train_idx=perm[:6], val_idx=perm[6:9], test_idx=perm[9:])
  raw = {}
  for i, r in enumerate(ELECTRONICS_RELATIONS):
    e = rng.integers(0, N, size=(20 + i, 2))
    e = np.concatenate([e, e[:3], e[3:5, ::-1], [[4, 4]]])  # repeats, both orientations, a self-loop
    np.save(d / f"{r}.npy", e)
    raw[r] = e
  if features:
    np.save(d / "item_text.npy", rng.normal(size=(N, 6)))
    np.save(d / "item_image.npy", rng.normal(size=(N, 5)).astype(np.float32))
  if price is not None:
    np.save(d / "item_price.npy", price)
  return d, raw


def test_amazon1_symmetrisation_keeps_duplicates(tmp_path):
  d, raw = write_electronics(tmp_path)
  g = load_dataset("amazon1", tmp_path)
  assert g.node_types == ("item",) and g.num_classes == 12 and g.modalities == ("text", "image")
  assert [r.name for r in g.relations] == list(ELECTRONICS_RELATIONS)
  assert g.comparable_with_paper and g.features["item"]["text"].dtype == np.float32
  for r, e in raw.items():
    forward = {tuple(p) for p in e.tolist()}
    backward = {(b, a) for a, b in forward}
    got = [tuple(p) for p in g.edges[r].tolist()]
    assert len(got) == len(forward) + len(backward)  # the code concatenates two sets
    assert sorted(got) == sorted(list(forward) + list(backward))
    both = forward & backward
    assert both and all(got.count(p) == 2 for p in both), "pairs listed both ways appear twice"
  assert (4, 4) in [tuple(p) for p in g.edges["also_bought"].tolist()]  # no self-loop removal either


@pytest.mark.parametrize("shape", [(N,), (N, 1)])
def test_amazon2_raw_price_becomes_log1p(tmp_path, shape):
  price = np.linspace(0, 500, N).reshape(shape)
  write_electronics(tmp_path, "amazon2", price=price)
  g = load_dataset("amazon2", tmp_path)
  assert g.modalities == ("text", "image", "price")
  x = g.features["item"]["price"]
  assert x.shape == (N, 1) and x.dtype == np.float32
  np.testing.assert_allclose(x[:, 0], np.log1p(price.ravel()), rtol=1e-6)
  assert g.provenance["feature_notes"]["price"] == "log1p of raw prices"


def test_amazon2_price_embedding_is_kept(tmp_path):
  emb = np.random.default_rng(1).normal(size=(N, 6))
  write_electronics(tmp_path, "amazon2", price=emb)
  g = load_dataset("amazon2", tmp_path)
  np.testing.assert_allclose(g.features["item"]["price"], emb.astype(np.float32))
  assert "feature_notes" not in g.provenance


def test_negative_price_is_an_error(tmp_path):
  d, _ = write_electronics(tmp_path, "amazon2", price=np.full(N, -3.0))
  expect_error(lambda: load_dataset("amazon2", tmp_path), d / "item_price.npy", "raw price -3.0 at row 0 is negative")


def test_missing_files_are_all_named(tmp_path):
  d, _ = write_electronics(tmp_path, "amazon2")
  (d / "also_viewed.npy").unlink()
  err = expect_error(lambda: load_dataset("amazon2", tmp_path), d, "data_utils/README.md", cls=MissingFilesError)
  assert err.paths == (str(d / "also_viewed.npy"), str(d / "item_price.npy"))


def test_generated_features(tmp_path):
  write_electronics(tmp_path, "amazon2", features=False)
  with pytest.raises(MissingFilesError) as info:
    load_dataset("amazon2", tmp_path)
  assert info.value.kind == "features" and len(info.value.paths) == 3
  g = load_dataset("amazon2", tmp_path, features="generated", feature_seed=3)
  assert {m: g.features["item"][m].shape[1] for m in g.modalities} == {"text": 512, "image": 512, "price": 1}
  assert set(g.feature_provenance.values()) == {"generated"} and not g.comparable_with_paper
  again = load_dataset("amazon2", tmp_path, features="generated", feature_seed=3)
  np.testing.assert_array_equal(g.features["item"]["price"], again.features["item"]["price"])


def test_edge_out_of_range_names_the_relation_file(tmp_path):
  d, _ = write_electronics(tmp_path)
  np.save(d / "bought_together.npy", np.array([[0, N]]))
  expect_error(
      lambda: load_dataset("amazon1", tmp_path),
      d / "bought_together.npy",
      "edges['bought_together']",
      f"node id {N} is outside 'item' ids 0..{N - 1}",
  )


def test_labels_out_of_range(tmp_path):
  d, _ = write_electronics(tmp_path)
  np.save(d / "labels.npy", np.full(N, 12))
  expect_error(lambda: load_dataset("amazon1", tmp_path), d / "labels.npy", "outside 0..11")
