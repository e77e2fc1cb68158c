"""Loader of the authors' self-built AMAZON-1 and AMAZON-2 (Amazon Electronics) sets.

AMAZON-1 and AMAZON-2 (authors' self-built Amazon Electronics sets) are not
published anywhere. Their loaders expect, in `<data_dir>/amazon1/` (or `amazon2/`):

  labels.npy                 int (N,), classes 0..11, N items (58,088 in the paper)
  train_val_test_idx.npz     int 1-D arrays train_idx, val_idx, test_idx (item ids)
  also_bought.npy  also_viewed.npy  bought_together.npy  buy_after_viewing.npy
                             int (E, 2) item-id pairs, one file per relation (ids 0..3
                             in this order); each is symmetrised as the code does:
                             set((a, b)) followed by set((b, a)), duplicates kept
  item_text.npy              float (N, D_text)   e.g. CLIP text embeddings
  item_image.npy             float (N, D_image)  e.g. CLIP image embeddings
  item_price.npy             amazon2 only: float (N, D) precomputed embedding, or raw
                             prices (N,) / (N, 1) >= 0, which become log1p(price) (N, 1)

Feature files that are absent raise a `MissingFilesError` naming every one with its full path,
unless `features='generated'` asks for generated stand-ins (provenance 'generated', never silent).
"""

from __future__ import annotations

import pathlib

import numpy as np

from hgnn_ima_jax.graph import MMHN, DatasetError, Relation

from . import files
from .files import check_array, load_npy
from .published import add_generated, check_options, dedup, read_splits, require_files, reverse

# One node type, four item-item relations in this (code) order.
ELECTRONICS_RELATIONS = ("also_bought", "also_viewed", "bought_together", "buy_after_viewing")
ELECTRONICS_CLASSES = 12
ELECTRONICS_SPLIT_FILE = "train_val_test_idx.npz"
ELECTRONICS_GENERATED_DIM = {"text": 512, "image": 512, "price": 1}  # CLIP-sized; price is log-scale
ELECTRONICS_MODALITIES = {"amazon1": ("text", "image"), "amazon2": ("text", "image", "price")}


def load_electronics(
    name: str, data_dir, *, features: str = "real", missing_fill: str = "code", feature_seed: int = 0
) -> MMHN:
  """Loads the self-built AMAZON-1 / AMAZON-2 from `<data_dir>/<name>/` (format in the module docstring).

  Args:
    name: 'amazon1' (text, image) or 'amazon2' (text, image, price).
    data_dir: the directory holding the `amazon1/` or `amazon2/` sub-directory.
    features: 'real' or 'generated' (absent feature files replaced, marked 'generated').
    missing_fill: accepted for a uniform API; items have every modality, so nothing is filled.
    feature_seed: seed of the generated features.

  Returns:
    The validated `MMHN` (one node type 'item', four symmetrised item-item relations).
  """
  check_options(features, missing_fill)
  modalities = ELECTRONICS_MODALITIES[name]
  root = pathlib.Path(data_dir).absolute() / name
  path = lambda f: str(root / f)
  feature_file = {m: f"item_{m}.npy" for m in modalities}
  topology = ["labels.npy", ELECTRONICS_SPLIT_FILE] + [f"{r}.npy" for r in ELECTRONICS_RELATIONS]
  absent_features = files.missing(path(f) for f in feature_file.values())
  how = "AMAZON-1/2 are not published: build these files as described in data_utils/README.md"
  require_files(
      root,
      files.missing(path(f) for f in topology),
      absent_features,
      features,
      how,
      "build them as described in data_utils/README.md",
  )

  labels = load_npy(path("labels.npy"), "labels", "int", (None,))
  n = len(labels)
  if n == 0:
    raise DatasetError(
        path("labels.npy"), "labels", "has no items, so node type 'item' has no nodes", "store one label per item"
    )
  files.check_labels(labels, path("labels.npy"), n, ELECTRONICS_CLASSES, "item")
  edges = {}
  for r in ELECTRONICS_RELATIONS:
    e = load_npy(path(f"{r}.npy"), f"edges[{r!r}]", "int", (None, 2))
    if len(e) == 0:
      raise DatasetError(
          path(f"{r}.npy"),
          f"edges[{r!r}]",
          "has no rows: an empty relation file",
          "store the relation's (item, item) pairs (the format is in data_utils/README.md)",
      )
    edges[r] = np.concatenate([dedup(e), dedup(reverse(e))])  # the code's symmetrisation keeps duplicates
  splits = read_splits(path(ELECTRONICS_SPLIT_FILE))

  feats, prov, notes = {"item": {}}, {}, {}
  for m, f in feature_file.items():
    if path(f) in absent_features:
      continue
    x = load_npy(path(f), f"features['item'][{m!r}]", "float")
    if m == "price" and (x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1)):
      x = _log_price(path(f), x)
      notes["price"] = "log1p of raw prices"
    x = check_array(x, path(f), f"features['item'][{m!r}]", "float", (n, None)).astype(np.float32)
    feats["item"][m] = x
    prov[f"item/{m}"] = "real"

  graph = MMHN(
      name=name,
      node_types=("item",),
      num_nodes={"item": n},
      modalities=modalities,
      node_modalities={"item": modalities},
      relations=tuple(Relation("item", r, "item") for r in ELECTRONICS_RELATIONS),
      edges=edges,
      features=feats,
      target_type="item",
      labels=labels,
      num_classes=ELECTRONICS_CLASSES,
      splits=splits,
      provenance={"features": prov, **({"feature_notes": notes} if notes else {})},
      source=str(root),
  )
  if absent_features:
    add_generated(
        graph,
        {("item", m): ELECTRONICS_GENERATED_DIM[m] for m, f in feature_file.items() if path(f) in absent_features},
        feature_seed,
        absent_features,
    )
  graph.provenance["missing_fill"] = "none (items have every modality)"
  sources = {
      "labels": path("labels.npy"),
      "num_classes": path("labels.npy"),
      "splits": path(ELECTRONICS_SPLIT_FILE),
      **{f"edges[{r!r}]": path(f"{r}.npy") for r in ELECTRONICS_RELATIONS},
      **{f"features['item'][{m!r}]": path(f) for m, f in feature_file.items()},
  }
  return files.validate_with_sources(graph, sources)


def _log_price(path: str, price: np.ndarray) -> np.ndarray:
  """Raw prices (N,) or (N, 1) -> log1p(price) as (N, 1); prices must be finite and >= 0."""
  price = np.asarray(price, np.float64).reshape(-1, 1)
  bad = ~np.isfinite(price[:, 0]) | (price[:, 0] < 0)
  if bad.any():
    row = int(np.argmax(bad))
    raise DatasetError(
        path,
        "features['item']['price']",
        f"raw price {price[row, 0]} at row {row} is negative or not finite",
        "store prices >= 0 (they become log1p(price)), or a precomputed (N, D) embedding",
    )
  return np.log1p(price)
