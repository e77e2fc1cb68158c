"""The synthetic graphs' arrays, pinned by content hash.

The hashes were computed with the generator as it was before its memory-lean rewrite (features
drawn per type in row chunks); equal hashes prove that the rewrite and any later refactoring leave
every label, edge, feature and split bit-identical for these seeds and sizes.
"""

import pytest

from hgnn_ima_jax.data_utils import load_dataset
from hgnn_ima_jax.data_utils.checksum import graph_checksum
from hgnn_ima_jax.data_utils.synthetic import AMAZON1_LIKE, make_synthetic

PINNED = {
    # The default dataset at configs/test.py's size (--tiny) and at full size.
    "default_scale0.1": (
        lambda: load_dataset("synthetic", scale=0.1),
        "dada447e7de2af6f8b8b032588b044a246e567d8f9cc1e62e6e848fae471a88e",
    ),
    "default_scale1": (
        lambda: load_dataset("synthetic"),
        "5cd03de9cdcf38c30264c70ace1f35f909a678cbb573c8b1812102a800dd6aef",
    ),
    "seed3_zeros_fill": (
        lambda: make_synthetic(seed=3, missing_fill="zeros", scale=0.2),
        "d7d5319812ba4a07ff897b604558a4948670f34cf4417954b67a2af81bb619c6",
    ),
    # The single-type (AMAZON-1-like) layout, the one the large benchmark graphs use.
    "amazon1_scale0.02": (
        lambda: make_synthetic(**{**AMAZON1_LIKE, "scale": 0.02}),
        "878010faba9fd0ecde3e6b0f1c67a610f0c61a9472f6f2f0ca183043de916de3",
    ),
    "amazon1_width32_scale0.02": (
        lambda: make_synthetic(**{**AMAZON1_LIKE, "feature_dim": 32, "modality_dims": (), "scale": 0.02}),
        "9561c9bd49e00f7c3dc62170dc12154da7f864444ea76ef6c4a2a83f620f42e7",
    ),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_synthetic_arrays_are_pinned(name):
  build, want = PINNED[name]
  assert graph_checksum(build()) == want, f"{name}: the generator's arrays changed"


def test_checksum_sees_one_changed_feature_value():
  g = load_dataset("synthetic", scale=0.1)
  before = graph_checksum(g)
  g.features["movie"]["text"][3, 5] += 1e-3
  assert graph_checksum(g) != before
