"""The paper's datasets load with the published figures and the code's graph construction."""

import numpy as np
import pytest
import scipy.sparse
from data_helpers import copy_dataset, write_features

from hgnn_ima_jax.data_utils import DatasetError, MissingFilesError, load_dataset
from hgnn_ima_jax.data_utils.paper_datasets import PAPER_DATASETS

# Figures from ../shared/datasets/README.md and spec Sec. 5.
FIGURES = {
    "douban": dict(
        nodes={"movie": 1888, "director": 1472, "actor": 3267},
        edges={"ma": 5628, "md": 1888, "dm": 1888, "am": 5628},
        classes=[1067, 821],
        splits=(380, 188, 1320),
    ),
    "imdb": dict(
        nodes={"movie": 4278, "director": 2081, "actor": 5257},
        edges={"ma": 12828, "md": 4278, "dm": 4278, "am": 12828},
        classes=[1135, 1584, 1559],
        splits=(855, 855, 2568),
    ),
    "amazon": dict(
        nodes={"item": 6158, "review": 7031},
        edges={"ii": 14256, "ir": 54171, "ri": 54171},
        classes=[3889, 776, 1493],
        splits=(1233, 615, 4310),
    ),
}
RELATIONS = {
    "douban": [
        ("movie", "ma", "actor"),
        ("movie", "md", "director"),
        ("director", "dm", "movie"),
        ("actor", "am", "movie"),
    ],
    "amazon": [("item", "ii", "item"), ("item", "ir", "review"), ("review", "ri", "item")],
}
RELATIONS["imdb"] = RELATIONS["douban"]


@pytest.fixture(scope="module")
def graphs(shared_datasets):
  """Each real dataset loaded once, with generated stand-ins for the absent feature files."""
  return {name: load_dataset(name, shared_datasets, features="generated") for name in FIGURES}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_published_figures(graphs, name):
  g, want = graphs[name], FIGURES[name]
  assert dict(g.num_nodes) == want["nodes"]
  assert [tuple(r) for r in g.relations] == RELATIONS[name]
  assert {r: len(e) for r, e in g.edges.items()} == want["edges"]
  assert np.bincount(g.labels).tolist() == want["classes"]
  assert tuple(len(g.splits[s]) for s in ("train", "val", "test")) == want["splits"]
  assert g.target_type == g.node_types[0] and g.modalities == ("text", "image")
  assert {t: g.node_modalities[t] for t in g.node_types} == {
      t: ("text", "image") if t == g.target_type else ("text",) for t in g.node_types
  }


def test_totals(graphs):
  assert sum(graphs["douban"].num_nodes.values()) == 6627 and graphs["douban"].schema.total_edges == 15032
  assert sum(graphs["imdb"].num_nodes.values()) == 11616
  assert graphs["amazon"].schema.total_edges == 122598


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_edges_match_a_set_based_reading_of_rdf(graphs, shared_datasets, name):
  """An independent re-reading of the rdf with Python sets, as the authors' code does."""
  g = graphs[name]
  rdf = np.load(shared_datasets / name / PAPER_DATASETS[name].rdf_file)
  offsets = dict(zip(g.node_types, g.schema.node_offsets))
  pairs = lambda *rels: {(int(a), int(b)) for a, b, r in rdf if r in rels}
  local = lambda s, src, dst: {(a - offsets[src], b - offsets[dst]) for a, b in s}
  as_set = lambda e: {(int(a), int(b)) for a, b in e}
  if name == "amazon":
    want = {"ii": local(pairs(0, 1), "item", "item"), "ir": local(pairs(2), "item", "review")}
    want["ri"] = {(b, a) for a, b in want["ir"]}
  else:
    want = {"md": local(pairs(0), "movie", "director"), "ma": local(pairs(2), "movie", "actor")}
    want.update(dm={(b, a) for a, b in want["md"]}, am={(b, a) for a, b in want["ma"]})
  for rel, edges in g.edges.items():
    assert len(as_set(edges)) == len(edges), f"{rel} has duplicate edges"
    assert as_set(edges) == want[rel], rel


def test_amazon_coverage(graphs):
  g = graphs["amazon"]
  with_ii = set(g.edges["ii"][:, 1].tolist())
  with_ri = set(g.edges["ri"][:, 1].tolist())
  assert (len(with_ii), len(with_ri)) == (4415, 4579)
  assert g.num_nodes["item"] - len(with_ii | with_ri) == 561
  ii = {tuple(e) for e in g.edges["ii"].tolist()}
  assert all((b, a) in ii for a, b in ii), "ii must be symmetric"


def test_imdb_real_text_features(graphs, shared_datasets):
  g = graphs["imdb"]
  zero_rows = {}
  for i, t in enumerate(("movie", "director", "actor")):
    x = g.features[t]["text"]
    assert x.shape == (g.num_nodes[t], 3066) and x.dtype == np.float32
    ref = scipy.sparse.load_npz(shared_datasets / "imdb" / f"features_{i}.npz").toarray()
    np.testing.assert_array_equal(x, ref.astype(np.float32))
    zero_rows[t] = int((~x.any(axis=1)).sum())
    assert g.feature_provenance[f"{t}/text"] == "real"
  assert zero_rows == {"movie": 98, "director": 80, "actor": 179}
  assert g.features["movie"]["image"].shape == (4278, 3066)
  assert g.feature_provenance["movie/image"] == "generated"


EXPECTED_MISSING = {
    "douban": [
        "features_douban_928_1_movie.npz.npy",
        "features_douban_928_1_directors.npz.npy",
        "features_douban_928_1_actor.npz.npy",
        "img_feature_douban_512_199.npz",
    ],
    "imdb": ["img_feature_20_6_25_199.npz"],
    "amazon": ["feature_item_amazon.npz", "feature_review_amazon.npz", "img_feature_20_1_25_199.npz"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_MISSING))
def test_real_features_required_and_every_missing_file_named(shared_datasets, name):
  with pytest.raises(MissingFilesError) as info:
    load_dataset(name, shared_datasets)
  err, msg = info.value, str(info.value)
  want = [str((shared_datasets / name / f).absolute()) for f in EXPECTED_MISSING[name]]
  assert err.kind == "features" and list(err.paths) == want
  assert "\n" not in msg and all(p in msg for p in want)
  assert "authors' download page" in msg and "features='generated'" in msg and "--features=generated" in msg


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_graphs_tuple_invariants(graphs, name):
  g = graphs[name]
  s, gt = g.schema, g.to_graphs_tuple()
  etype, snd, rcv, ntype = gt.edges["type"], gt.senders, gt.receivers, gt.nodes["type"]
  assert len(etype) == s.total_edges and etype.min() >= 0 and etype.max() < s.num_relations
  assert np.all(np.diff(etype) >= 0), "edges must be grouped by relation"
  for r in range(s.num_relations):
    sl = s.edge_slice(r)
    assert np.all(etype[sl] == r)
    assert np.all(np.diff(rcv[sl]) >= 0), f"relation {r}: receivers not sorted"
    assert np.all(ntype[snd[sl]] == s.relation_src(r)) and np.all(ntype[rcv[sl]] == s.relation_dst(r))
  for m in g.modalities:
    for t in range(s.num_node_types):
      assert np.all(gt.nodes["present"][m][s.node_slice(t)] == (m in g.node_modalities[g.node_types[t]]))


def test_code_fill_rules(graphs):
  douban, imdb, amazon = graphs["douban"], graphs["imdb"], graphs["amazon"]
  for t in ("director", "actor"):
    assert not douban.features[t]["image"].any() and douban.feature_provenance[f"{t}/image"] == "filled:zeros"
    np.testing.assert_array_equal(imdb.features[t]["image"], imdb.features[t]["text"])
    assert imdb.feature_provenance[f"{t}/image"] == "filled:text"
  assert not amazon.features["review"]["image"].any()
  gt = douban.to_graphs_tuple()
  assert not gt.nodes["features"]["image"][douban.schema.node_slice(1)].any()


@pytest.mark.parametrize("dataset,fill", [("imdb", "zeros"), ("amazon", "text")])
def test_missing_fill_override_against_the_code_rule(shared_datasets, dataset, fill):
  """missing_fill set against the dataset's code rule (test_code_fill_rules; DOUBAN's text override below): the
  filled contents, not only the provenance record, and the real modalities untouched."""
  g = load_dataset(dataset, shared_datasets, features="generated", missing_fill=fill)
  filled = [(t, m) for t in g.node_types for m in g.modalities if m not in g.node_modalities[t]]
  assert filled
  for t, m in filled:
    if fill == "zeros":
      assert not g.features[t][m].any()
    else:
      np.testing.assert_array_equal(g.features[t][m], g.features[t]["text"])
    assert g.feature_provenance[f"{t}/{m}"] == f"filled:{fill}"
  assert all(g.features[t][m].any() for t in g.node_types for m in g.node_modalities[t])


def test_missing_fill_override(shared_datasets):
  g = load_dataset("douban", shared_datasets, features="generated", missing_fill="text")
  np.testing.assert_array_equal(g.features["director"]["image"], g.features["director"]["text"])
  assert g.feature_provenance["director/image"] == "filled:text" and g.provenance["missing_fill"] == "text"
  with pytest.raises(ValueError, match="missing_fill"):
    load_dataset("douban", shared_datasets, features="generated", missing_fill="mean")


# --- generated stand-ins ------------------------------------------------------------------
def test_generated_is_marked_and_deterministic(graphs, shared_datasets):
  a = graphs["douban"]
  assert not a.comparable_with_paper and "NOTE" in a.summary()
  assert a.provenance["feature_seed"] == 0 and len(a.provenance["missing_feature_files"]) == 4
  assert {a.feature_provenance[f"{t}/text"] for t in a.node_types} == {"generated"}
  assert all(a.features[t][m].shape[1] == 512 for t in a.node_types for m in a.modalities)
  assert all(graphs["amazon"].features[t]["text"].shape[1] == 1433 for t in ("item", "review"))
  b = load_dataset("douban", shared_datasets, features="generated", feature_seed=0)
  c = load_dataset("douban", shared_datasets, features="generated", feature_seed=1)
  for t in a.node_types:
    for m in a.modalities:
      np.testing.assert_array_equal(a.features[t][m], b.features[t][m])
  assert not np.allclose(a.features["movie"]["text"], c.features["movie"]["text"])


def test_generated_features_carry_a_moderate_class_signal(graphs):
  g = graphs["douban"]
  y, tr, te = g.labels, g.splits["train"], g.splits["test"]
  for m in g.modalities:
    x = g.features["movie"][m]
    means = np.stack([x[tr][y[tr] == c].mean(0) for c in range(g.num_classes)])
    pred = np.argmin(((x[te][:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    recall = [np.mean(pred[y[te] == c] == c) for c in range(g.num_classes)]
    assert 0.6 < np.mean(recall) < 0.98, (m, recall)  # learnable, but not trivially separable
  # A director's row is its movies' mean plus noise, so it correlates with that mean.
  md = g.edges["md"]
  mean = np.zeros_like(g.features["director"]["text"])
  np.add.at(mean, md[:, 1], g.features["movie"]["text"][md[:, 0]])
  mean /= np.bincount(md[:, 1], minlength=len(mean))[:, None]
  corr = np.corrcoef(mean.ravel(), g.features["director"]["text"].ravel())[0, 1]
  assert 0.4 < corr < 0.95


# --- real feature files (tmp copies with small feature files) -------------------------------
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_real_feature_files_are_read(tmp_path, shared_datasets, name):
  copy_dataset(shared_datasets, name, tmp_path)
  written = write_features(tmp_path, name, dim=3066 if name == "imdb" else 8)
  g = load_dataset(name, tmp_path)
  assert g.comparable_with_paper and "NOTE" not in g.summary()
  for f in PAPER_DATASETS[name].feature_files:
    assert g.feature_provenance[f"{f.node_type}/{f.modality}"] == "real"
    if f.filename in written:
      np.testing.assert_allclose(g.features[f.node_type][f.modality], written[f.filename], rtol=1e-6)
  again = load_dataset(name, tmp_path, features="generated")  # nothing absent: nothing generated
  assert again.comparable_with_paper


def test_feature_width_must_agree_across_files(tmp_path, shared_datasets):
  d = copy_dataset(shared_datasets, "douban", tmp_path)
  write_features(tmp_path, "douban", dim=8)
  np.savez(d / "img_feature_douban_512_199.npz", feature=np.zeros((1888, 9)))
  with pytest.raises(DatasetError, match="width 9 differs from width 8"):
    load_dataset("douban", tmp_path)


def test_directory_path_of_a_paper_dataset(shared_datasets):
  g = load_dataset(shared_datasets / "douban", features="generated")
  assert g.name == "douban" and g.schema.total_edges == 15032


# --- the entry point ---------------------------------------------------------------------------
def test_synthetic_dispatch_is_lazy_and_passes_the_seed():
  from hgnn_ima_jax.data_utils.synthetic import make_synthetic  # pylint: disable=import-outside-toplevel

  g = load_dataset("synthetic", feature_seed=1, missing_fill="zeros")
  ref = make_synthetic(seed=1, missing_fill="zeros")
  for t in g.node_types:
    for m in g.modalities:
      np.testing.assert_array_equal(g.features[t][m], ref.features[t][m])
  assert not g.comparable_with_paper


def test_entry_point_rejects_what_does_not_apply(shared_datasets, tmp_path):
  with pytest.raises(TypeError, match="homophily"):
    load_dataset("douban", shared_datasets, homophily=0.5)
  with pytest.raises(ValueError, match=r"^features='fake': is not a feature mode\. Fix: use one of"):
    load_dataset("douban", shared_datasets, features="fake")
  with pytest.raises(DatasetError, match="neither a known dataset nor an existing path"):
    load_dataset("doubam")


def test_data_dir_given_as_the_datasets_own_directory_says_give_its_parent(shared_datasets):
  """From an audit: --data_dir=<.../douban> listed the files as missing and said to download them."""
  with pytest.raises(MissingFilesError, match=rf"Fix: {shared_datasets / 'douban'} holds these files: give its parent"):
    load_dataset("douban", shared_datasets / "douban", features="generated")


def test_default_data_dir_from_environment(shared_datasets, monkeypatch, tmp_path):
  monkeypatch.setenv("HGNN_IMA_DATA_DIR", str(shared_datasets))
  assert load_dataset("douban", features="generated").source == str(shared_datasets.absolute() / "douban")
  monkeypatch.delenv("HGNN_IMA_DATA_DIR")
  monkeypatch.chdir(tmp_path)
  with pytest.raises(MissingFilesError) as info:
    load_dataset("douban")
  assert info.value.paths[0] == str(tmp_path / "data" / "douban" / "douban_actor_rdf.npy")
