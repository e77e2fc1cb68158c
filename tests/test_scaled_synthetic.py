"""The AMAZON-1-like synthetic graphs at scale (`synthetic_amazon1`, `synthetic_amazon1x4`,
`synthetic10m`) as dataset names: one definition for `load_dataset`, the configs and the benchmark.

The large sizes are never built here: a small `scale` goes through the same code path.
"""

import sys

import numpy as np
import pytest
from conftest import REPO

from hgnn_ima_jax import choices, config_compare
from hgnn_ima_jax import config_validation as cv
from hgnn_ima_jax.data_utils import DATASETS, load_dataset, load_for_config, validate_run_config
from hgnn_ima_jax.data_utils.checksum import graph_checksum
from hgnn_ima_jax.data_utils.synthetic import AMAZON1_LIKE, SCALED_SYNTHETIC, make_synthetic, scaled_synthetic_kwargs
from hgnn_ima_jax.experiments.configs import get_config


def test_names_are_one_table():
  assert tuple(SCALED_SYNTHETIC) == choices.SCALED_SYNTHETIC and DATASETS is choices.DATASET_NAMES
  assert set(choices.SCALED_SYNTHETIC) <= set(DATASETS)
  assert SCALED_SYNTHETIC == {"synthetic_amazon1": 1.0, "synthetic_amazon1x4": 4.0, "synthetic10m": 16.0}


@pytest.mark.parametrize("name", choices.SCALED_SYNTHETIC)
def test_small_scale_through_load_dataset_is_the_generator_graph(name):
  g = load_dataset(name, scale=0.01, feature_dim=16)
  want = make_synthetic(**{**AMAZON1_LIKE, "feature_dim": 16, "modality_dims": (), "scale": 0.01})
  assert graph_checksum(g) == graph_checksum(want)
  assert g.node_types == ("item",) and g.num_classes == 12 and len(g.relations) == 4
  for m in g.modalities:
    x = g.features["item"][m]
    assert x.dtype == np.float32 and x.shape == (g.num_nodes["item"], 16)
  assert all(np.issubdtype(e.dtype, np.integer) for e in g.edges.values())


def test_scaled_sizes_are_the_benchmark_sizes():
  """Node and edge counts of the full-size graphs, from the definition alone (nothing is built)."""
  for name, factor in SCALED_SYNTHETIC.items():
    kw = scaled_synthetic_kwargs(name)
    assert kw["scale"] == factor and kw["feature_dim"] == 512 and kw["single_type"]
    assert round(kw["num_edges"] * kw["scale"]) == round(632238 * factor)
  sys.path.insert(0, str(REPO / "benchmarks"))
  try:
    import bench_graphs
  finally:
    sys.path.remove(str(REPO / "benchmarks"))
  for name in choices.SCALED_SYNTHETIC:
    assert name in bench_graphs.SYNTHETIC_GRAPHS
    assert bench_graphs.synthetic_kwargs(name, 64) == scaled_synthetic_kwargs(name, 64)


def test_a_config_names_them_and_validates():
  for name in choices.SCALED_SYNTHETIC:
    config = get_config(name)
    validate_run_config(config)
    assert config.model.projection == get_config("amazon1").model.projection  # AMAZON-1's profile
  config = get_config("synthetic_amazon1")
  config.synthetic.scale = 0.001  # the synthetic knobs are not read for the fixed graphs...
  assert config_compare.result_fields(config) == config_compare.result_fields(get_config("synthetic_amazon1"))
  # ... so a knob set for one is refused, not ignored; so is one for a file dataset
  with pytest.raises(
      cv.ConfigError, match=r"^config\.synthetic\.scale=0\.001: is not read by dataset 'synthetic_amazon1'"
  ):
    validate_run_config(config)
  config = get_config("douban")
  config.synthetic.modalities = ("text", "image")  # the default, written out: not a change
  validate_run_config(config)
  config.synthetic.homophily = 0.5
  with pytest.raises(cv.ConfigError, match=r"^config\.synthetic\.homophily=0\.5: is not read by dataset 'douban'"):
    validate_run_config(config)


def test_a_run_over_several_datasets_gives_the_knobs_to_its_synthetic_cells():
  from hgnn_ima_jax.experiments import run_options

  opts = run_options.Options(datasets=("synthetic", "synthetic_amazon1"), overrides={"synthetic.scale": 0.1})
  assert run_options.base_config("synthetic", opts).synthetic.scale == 0.1
  validate_run_config(run_options.base_config("synthetic_amazon1", opts))
  alone = run_options.Options(datasets=("synthetic_amazon1",), overrides={"synthetic.scale": 0.1})
  with pytest.raises(cv.ConfigError, match=r"^config\.synthetic\.scale=0\.1: is not read"):
    validate_run_config(run_options.base_config("synthetic_amazon1", alone))


def test_unknown_bare_dataset_name_is_a_config_error():
  config = get_config("synthetic")
  config.dataset = "synthetic_amazon2"
  with pytest.raises(cv.ConfigError, match=r"^config\.dataset=synthetic_amazon2: is neither a known dataset"):
    validate_run_config(config)
  config = get_config("some/dir/graph.npz")  # a path: checked when it is read
  validate_run_config(config)
  # the CLI made every dataset absolute, so a mistyped name read as a missing file under the working directory
  from hgnn_ima_jax.experiments import run_options

  typo = run_options.base_config("doubna", run_options.Options(datasets=("doubna",)))
  assert typo.dataset == "doubna"
  with pytest.raises(cv.ConfigError, match=r"^config\.dataset=doubna: .*Fix: did you mean douban\? Otherwise"):
    validate_run_config(typo)


def test_load_for_config_builds_a_scaled_graph(monkeypatch):
  from hgnn_ima_jax.data_utils import datasets

  seen = {}
  real = datasets.make_scaled_synthetic
  monkeypatch.setattr(
      datasets,
      "make_scaled_synthetic",
      lambda name, **kw: seen.setdefault(name, real(name, **{**kw, "scale": 0.01, "feature_dim": 8})),
  )
  g = load_for_config(get_config("synthetic_amazon1x4"))
  assert seen and g is seen["synthetic_amazon1x4"] and g.num_nodes["item"] == round(58088 * 0.01)
