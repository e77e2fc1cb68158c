"""Specifications of the synthetic MMHN generator (data_utils/synthetic.py)."""

import dataclasses

import numpy as np
import pytest

from hgnn_ima_jax.data_utils import synthetic as syn
from hgnn_ima_jax.data_utils import synthetic_probes as probes
from hgnn_ima_jax.graph import MMHN


@pytest.fixture(scope="module")
def default():
  return syn.generate_synthetic(syn.SyntheticConfig(), seed=0)


def _arrays(g: MMHN) -> dict[str, np.ndarray]:
  out = {"labels": g.labels}
  out.update({f"edges/{k}": v for k, v in g.edges.items()})
  out.update({f"features/{t}/{m}": x for t, d in g.features.items() for m, x in d.items()})
  out.update({f"splits/{k}": v for k, v in g.splits.items()})
  return out


# --- determinism ----------------------------------------------------------------
def test_same_seed_is_bit_identical_and_other_seed_differs():
  a, b, c = (syn.make_synthetic(seed=s) for s in (7, 7, 8))
  xa, xb, xc = _arrays(a), _arrays(b), _arrays(c)
  assert xa.keys() == xb.keys() == xc.keys()
  for k in xa:
    assert xa[k].dtype == xb[k].dtype and xa[k].tobytes() == xb[k].tobytes(), k
  for k in ("labels", "edges/ma", "features/movie/text", "features/actor/text", "splits/train"):
    assert xa[k].shape != xc[k].shape or not np.array_equal(xa[k], xc[k]), k


def test_knob_change_keeps_other_components_paired():
  # Independent streams: changing homophily rewires edges but keeps labels and target noise.
  a = syn.make_synthetic(seed=0)
  b = syn.make_synthetic(seed=0, homophily=0.5)
  np.testing.assert_array_equal(a.labels, b.labels)
  np.testing.assert_array_equal(a.features["movie"]["image"], b.features["movie"]["image"])
  assert not np.array_equal(a.edges["ma"], b.edges["ma"]) or len(a.edges["ma"]) != len(b.edges["ma"])


# --- the graph is well formed ----------------------------------------------------
def test_default_validates_and_lays_out_as_graphs_tuple(default):
  g, _ = default
  g.validate()
  gt = g.to_graphs_tuple()
  s = g.schema
  assert s.node_types == ("movie", "director", "actor")
  assert [r.name for r in s.relations] == ["ma", "md", "dm", "am"]
  assert int(gt.n_node[0]) == s.total_nodes == 5000
  assert int(gt.n_edge[0]) == s.total_edges == len(gt.senders)
  assert 15_000 <= s.total_edges <= 25_000
  assert set(gt.nodes["features"]) == {"text", "image"}
  # Receivers sorted inside each relation slice (the layout models rely on).
  for r in range(s.num_relations):
    rec = gt.receivers[s.edge_slice(r)]
    assert np.all(np.diff(rec) >= 0)
  assert gt.nodes["present"]["image"][s.node_slice(s.type_id("director"))].sum() == 0


def test_counts_links_and_reverses(default):
  g, _ = default
  cfg = syn.SyntheticConfig()
  assert g.num_nodes == {"movie": 2000, "director": 800, "actor": 2200}
  md, ma = g.edges["md"], g.edges["ma"]
  np.testing.assert_array_equal(np.bincount(md[:, 0], minlength=2000), np.ones(2000))  # one director each
  per_movie = np.bincount(ma[:, 0], minlength=2000)
  assert per_movie.min() >= 1 and per_movie.max() <= 5 and 2.8 <= per_movie.mean() <= 3.7
  assert len(np.unique(ma, axis=0)) == len(ma)  # no duplicate edges
  np.testing.assert_array_equal(g.edges["dm"], md[:, ::-1])
  np.testing.assert_array_equal(g.edges["am"], ma[:, ::-1])
  for hub, e in (("director", md), ("actor", ma)):  # no hub is isolated
    assert np.bincount(e[:, 1], minlength=g.num_nodes[hub]).min() >= 1
  big = syn.make_synthetic(scale=2.0)
  assert big.num_nodes == {t: 2 * n for t, n in g.num_nodes.items()}
  assert 1.8 < big.schema.total_edges / g.schema.total_edges < 2.2
  assert cfg.count(cfg.num_targets) == 2000


def test_splits_are_stratified_disjoint_and_cover(default):
  g, _ = default
  tr, va, te = (g.splits[k] for k in ("train", "val", "test"))
  allidx = np.concatenate([tr, va, te])
  assert len(np.unique(allidx)) == len(allidx) == len(g.labels)
  for c in range(g.num_classes):
    n_c = np.sum(g.labels == c)
    assert abs(np.sum(g.labels[tr] == c) - 0.2 * n_c) <= 1
    assert abs(np.sum(g.labels[va] == c) - 0.1 * n_c) <= 1
  assert g.labels.dtype.kind == "i"


def test_provenance_marks_data_synthetic(default):
  g, _ = default
  prov = g.provenance
  assert prov["features"]["movie/text"] == prov["features"]["movie/image"] == "generated"
  assert prov["features"]["director/text"] == prov["features"]["actor/text"] == "generated"
  assert prov["features"]["director/image"] == "filled:text"
  assert prov["generator"] == dataclasses.asdict(syn.SyntheticConfig())
  assert prov["seed"] == 0 and prov["synthetic"] is True
  assert not g.comparable_with_paper


# --- knobs ---------------------------------------------------------------------------
def test_feature_widths_per_type_and_modality():
  g = syn.make_synthetic(feature_dim=96, modality_dims=[("image", 32)], feature_dims=[("director", "text", 48)])
  assert g.features["movie"]["text"].shape == (2000, 96)
  assert g.features["movie"]["image"].shape == (2000, 32)
  assert g.features["director"]["text"].shape == (800, 48)
  assert g.features["actor"]["text"].shape == (2200, 96)
  s = g.schema
  assert s.feature_dims[s.type_id("director")] == (48, 48)  # image filled from text
  gt = g.to_graphs_tuple()
  assert gt.nodes["features"]["text"].shape == (s.total_nodes, 96)


@pytest.mark.parametrize("mods", [("text",), ("text", "image", "price")])
def test_one_and_three_modalities(mods):
  g = syn.make_synthetic(modalities=mods)
  assert g.modalities == mods
  assert g.node_modalities["movie"] == mods and g.node_modalities["actor"] == ("text",)
  gt = g.to_graphs_tuple()
  assert set(gt.nodes["features"]) == set(mods)
  if len(mods) == 3:
    # Price has no prescribed width: it takes feature_dim; image keeps its override.
    assert g.features["movie"]["price"].shape == (2000, 128)
    assert g.features["actor"]["price"].shape == (2200, 128)


@pytest.mark.parametrize("rule", ["text", "zeros"])
def test_missing_modalities_filled_as_configured(rule):
  g = syn.make_synthetic(missing_fill=rule, real_modalities=[("actor", ("text", "image"))])
  d_text, d_img = g.features["director"]["text"], g.features["director"]["image"]
  if rule == "text":
    np.testing.assert_array_equal(d_img, d_text)
  else:
    assert d_img.shape == d_text.shape and not d_img.any()
  assert g.provenance["features"]["director/image"] == f"filled:{rule}"
  # An actor that really has images inherits its movies' image, not a fill.
  assert g.provenance["features"]["actor/image"] == "generated"
  assert g.features["actor"]["image"].shape == (2200, 64)
  assert not np.array_equal(g.features["actor"]["image"][:, :64], g.features["actor"]["text"][:, :64])


def test_misalignment_fraction_roles_and_features():
  for frac in (0.0, 0.2, 0.5):
    g, truth = syn.generate_synthetic(syn.SyntheticConfig(misalignment=frac), seed=1)
    wrong = (truth.roles == syn.ROLE_WRONG).any(1)
    assert wrong.sum() == round(frac * 2000)
    assert ((truth.roles == syn.ROLE_WRONG).sum(1) <= 1).all()
    # A misaligned node keeps its true class in another modality.
    assert ((truth.roles[wrong] == syn.ROLE_CARRIER).sum(1) >= 1).all()
    assert (truth.wrong_class[wrong] != g.labels[wrong]).all()
  # Observable from the features alone: with clean features, the class-mean nearest to a node's
  # modality disagrees with its label exactly for the misaligned nodes.
  g = syn.make_synthetic(seed=3, misalignment=0.3, signal=8.0, shared_signal_frac=1.0)
  disagree = np.zeros(2000, bool)
  for m in ("text", "image"):
    x = g.features["movie"][m]
    means = np.stack([x[g.labels == c].mean(0) for c in range(g.num_classes)])
    disagree |= np.argmax(x @ means.T, 1) != g.labels
  assert abs(disagree.mean() - 0.3) < 0.02


def test_signal_is_spread_over_modalities(default):
  _, truth = default
  roles = truth.roles
  both = (roles == syn.ROLE_CARRIER).all(1).mean()
  text_only = ((roles[:, 0] == syn.ROLE_CARRIER) & (roles[:, 1] != syn.ROLE_CARRIER)).mean()
  image_only = ((roles[:, 1] == syn.ROLE_CARRIER) & (roles[:, 0] != syn.ROLE_CARRIER)).mean()
  assert 0.22 < both < 0.38 and 0.25 < text_only < 0.45 and 0.25 < image_only < 0.45
  assert ((roles == syn.ROLE_CARRIER).any(1)).all()


def test_homophily_knob_moves_measured_homophily():
  for kw in ({}, {"single_type": True}):
    h = [probes.same_type_homophily(syn.make_synthetic(homophily=x, **kw)) for x in (0.3, 0.75, 0.95)]
    assert h[0] + 0.1 < h[1] and h[1] + 0.1 < h[2], (kw, h)
  # At 1/num_classes the structure carries no label information.
  h0 = probes.same_type_homophily(syn.make_synthetic(homophily=1 / 3))
  assert abs(h0 - 1 / 3) < 0.03


def test_single_type_amazon1_like():
  g = syn.make_synthetic(single_type=True, num_edges=20_000, num_classes=5)
  assert g.node_types == ("item",) and g.target_type == "item"
  assert [r.name for r in g.relations] == ["also_bought", "also_viewed", "bought_together", "buy_after_viewing"]
  assert all(r.src == r.dst == "item" for r in g.relations)
  assert g.schema.total_edges == 20_000
  for name, e in g.edges.items():
    assert (e[:, 0] != e[:, 1]).all(), name
    assert len(np.unique(e, axis=0)) == len(e), name
    fwd = {tuple(p) for p in e}
    assert fwd == {(b, a) for a, b in e}, name  # symmetric
  gt = g.to_graphs_tuple()
  assert int(gt.n_node[0]) == 2000 and int(gt.n_edge[0]) == 20_000
  assert g.comparable_with_paper is False


def test_amazon1_size_is_exact_and_fast():
  import time

  t0 = time.perf_counter()
  g = syn.make_synthetic(**syn.AMAZON1_LIKE)
  assert time.perf_counter() - t0 < 10.0
  assert g.num_nodes == {"item": 58_088} and g.schema.total_edges == 632_238
  assert g.num_classes == 12 and set(np.unique(g.labels)) == set(range(12))


# --- errors ----------------------------------------------------------------------------
def test_unknown_override_and_bad_values_raise():
  with pytest.raises(ValueError, match="homophilly"):
    syn.make_synthetic(homophilly=0.5)
  with pytest.raises(ValueError, match="missing_fill"):
    syn.make_synthetic(missing_fill="mean")
  with pytest.raises(ValueError, match="homophily"):
    syn.make_synthetic(homophily=1.5)
  with pytest.raises(ValueError, match="num_edges"):
    syn.make_synthetic(num_edges=1000)  # only for single_type
  with pytest.raises(ValueError, match="real_modalities"):
    syn.make_synthetic(real_modalities=[("actor", ("audio",))])


def test_a_graph_whose_features_exceed_the_memory_is_refused_before_any_array(default, monkeypatch):
  """From an audit: --config.synthetic.scale=1e9 (or 1e4 on a 24 GB machine) was killed by the OOM killer, exit -9 and
  no message, after the generator had filled the memory. `feature_bytes` is what the real modalities' matrices take
  (exactly, at scale 1), so the check refuses only graphs that could not have been generated."""
  cfg = syn.SyntheticConfig()
  g = default[0]
  real = sum(x.nbytes for t, d in g.features.items() for m, x in d.items() if m in g.node_modalities[t])
  assert cfg.feature_bytes() == real > 0
  amazon = syn.SyntheticConfig(**syn.AMAZON1_LIKE)
  assert amazon.node_counts() == {"item": 58_088} and amazon.feature_bytes() == 4 * 58_088 * (128 + 64)
  monkeypatch.setattr(syn, "streams", lambda *a: pytest.fail("the generator started"))
  with pytest.raises(
      syn.SyntheticConfigError,
      match=r"^SyntheticConfig\.scale: the features of its [\d,]+ nodes alone "
      r"take [\d.]+ GB, more than the [\d.]+ [GM]B this machine has available\. Fix: lower scale",
  ):
    syn.make_synthetic(scale=1e9)
  monkeypatch.setenv("HGNN_IMA_MEMORY_CHECK", "0")  # swap: the user's call
  syn.check_fits_in_memory(syn.SyntheticConfig(scale=1e9))


@pytest.mark.parametrize(
    "override, message",
    [
        ({"homophily": "abc"}, "SyntheticConfig.homophily: 'abc' is not a number. Fix: give a number, e.g. 0.8"),
        ({"num_classes": 2.5}, "SyntheticConfig.num_classes: 2.5 is not an integer. Fix: give an integer, e.g. 3"),
        ({"single_type": 1}, "SyntheticConfig.single_type: 1 is not True or False"),
        ({"scale": True}, "SyntheticConfig.scale: True is not a number"),
        ({"num_edges": "many"}, "num_edges: 'many' is not an integer. Fix: give an integer or None, e.g. None"),
    ],
)
def test_wrongly_typed_overrides_are_named_before_any_work(override, message):
  with pytest.raises(syn.SyntheticConfigError) as info:
    syn.make_synthetic(**override)
  assert message in str(info.value)
  syn.make_synthetic(num_targets=np.int64(60), scale=np.float32(1.0), num_edges=None)  # numpy scalars are numbers


@pytest.mark.parametrize(
    "argv, message",
    [
        (["homophily=abc"], "error: SyntheticConfig.homophily: 'abc' is not a number"),
        (["scale=-1"], "error: SyntheticConfig.scale: -1 is negative"),
        (["bogus=1"], "error: make_synthetic: unknown option(s) ['bogus']"),
        (["scale"], "error: override 'scale': is not field=value"),
    ],
)
def test_probe_command_refuses_bad_overrides_in_one_line(argv, message):
  with pytest.raises(SystemExit) as info:
    probes.main(argv + ["--no-probe"])
  assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_config_is_hashable_after_list_overrides():
  cfg = syn.SyntheticConfig(modalities=["text", "image"], split=[0.2, 0.1, 0.7], feature_dims=[["actor", "text", 32]])
  assert hash(cfg) == hash(syn.SyntheticConfig(modalities=("text", "image"), feature_dims=(("actor", "text", 32),)))
  g = syn.make_synthetic(cfg, hub_noise=0.1)
  assert g.provenance["generator"]["hub_noise"] == 0.1


# --- the designed signal ------------------------------------------------------------
def test_designed_signal_needs_propagation_and_both_modalities(default):
  """Own features weak; 2-hop mean better; both modalities beat either; choosing neighbours would pay."""
  g, _ = default
  rep = probes.linear_probe_report(g)
  own, prop, oracle = rep["own"], rep["mean2hop"], rep["oracle_same_class"]
  chance = 1 / g.num_classes
  assert own["all"] < chance + 0.15, rep
  assert prop["all"] > own["all"] + 0.15, rep
  assert prop["all"] > max(prop["text"], prop["image"]) + 0.03, rep
  assert oracle["all"] > prop["all"] + 0.15, rep
  # Without structure (homophily at chance) propagation is no help: the gain above is the graph's.
  flat = probes.linear_probe_report(syn.make_synthetic(homophily=1 / 3))
  assert flat["mean2hop"]["all"] < own["all"] + 0.05, flat


def test_a_modality_no_type_has_is_refused_by_the_config():
  """real_modalities that leave a modality to no type would fill it everywhere: the config says so itself."""
  with pytest.raises(ValueError, match=r"SyntheticConfig\.real_modalities: .*no node type has \['image'\]"):
    syn.make_synthetic(real_modalities=[("movie", ("text",))])
