"""Loaders for the paper's datasets in their published on-disk formats.

DOUBAN, IMDB and AMAZON are read exactly as MHGAT publishes them
(github.com/jiaxiangen/MHGAT, directories douban/, imdb/, amazon/), one directory
per dataset under `data_dir`:

  douban/  douban_actor_rdf.npy  labels.npy  train_val_test_idx_929.npz
           features_douban_928_1_{movie,directors,actor}.npz.npy   (text, (N_t, D))
           img_feature_douban_512_199.npz['feature']                (movie image)
  imdb/    rdf.npy  labels.npy  node_types.npy  train_val_test_idx1.npz
           features_{0,1,2}.npz   (text; scipy.sparse CSR, 3066 wide)
           img_feature_20_6_25_199.npz['feature']                   (movie image, (4278, 3066))
  amazon/  rdf.npy  labels.npy  train_val_test_idx_amaze.npz
           feature_item_amazon.npz['feature']  feature_review_amazon.npz['feature']   (text)
           img_feature_20_1_25_199.npz['feature']                   (item image)

`rdf` rows are (src global id, dst global id, relation id); every node type owns
one contiguous id range (movies/items first); local id = global id - offset.
The graph is built as the HGNN-IMA code builds it (spec Sec. 5):

* DOUBAN/IMDB read only rdf relations 0 (movie->director) and 2 (movie->actor),
  deduplicate them and add the reverses: relations 0 ma, 1 md, 2 dm, 3 am over
  node types (movie, director, actor); target movie.
* AMAZON: ii = set(rel 0 | rel 1) (symmetric, 14,256 edges), ir = set(rel 2)
  (54,171), ri its reverse: relations 0 ii, 1 ir, 2 ri over (item, review).
* No self-loops are added. Modalities (text, image); only the target type has a
  real image; the others are filled by `missing_fill` (spec Sec. 2).

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

Feature files that are absent raise a `MissingFilesError` naming every one with
its full path, unless `features='generated'` asks for generated stand-ins
(`data_utils.generated`; provenance 'generated', never silent).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import numpy as np

from . import files
from .files import MissingFilesError, check_array, load_npy, load_npz
from .generated import generate_features
from hgnn_ima_jax.config_validation import CHOICES
from hgnn_ima_jax.graph import MMHN, DatasetError, Relation, fill_missing_modalities

MODALITIES = ("text", "image")
FILL_RULES = CHOICES["missing_fill"]
FEATURE_MODES = CHOICES["features"]
SPLIT_KEYS = {"train": "train_idx", "val": "val_idx", "test": "test_idx"}
AUTHORS_PAGE = "the authors' download page (they are not in the MHGAT GitHub repository)"


@dataclasses.dataclass(frozen=True)
class FeatureFile:
  """One published feature array: which (type, modality) and how it is stored."""

  node_type: str
  modality: str
  filename: str
  fmt: str  # 'npy': (N, D) array; 'npz': key 'feature'; 'sparse': scipy.sparse.save_npz


@dataclasses.dataclass(frozen=True)
class PaperDataset:
  """Everything that differs between DOUBAN, IMDB and AMAZON."""

  name: str
  node_types: tuple[str, ...]
  num_nodes: tuple[int, ...] | None  # published id ranges; None: counted from node_types_file
  rdf_file: str
  rdf_relations: tuple[tuple[str, str], ...]  # rdf relation id -> (src type, dst type)
  labels_file: str
  split_file: str
  num_classes: int
  relations: tuple[Relation, ...]
  build_edges: Callable[[dict[int, np.ndarray]], dict[str, np.ndarray]]
  feature_files: tuple[FeatureFile, ...]
  code_fill: str  # what the authors' code fills missing images with (spec Sec. 2)
  generated_dim: int  # width of generated features when no real feature file fixes it
  published: tuple[tuple[str, str], ...]  # (file, sha256) published on GitHub
  node_types_file: str | None = None

  @property
  def target_type(self) -> str:
    return self.node_types[0]

  @property
  def authors_only(self) -> tuple[FeatureFile, ...]:
    """The feature files that are not on GitHub (the authors' download page has them); IMDB's text is on GitHub."""
    on_github = {f for f, _ in self.published}
    return tuple(f for f in self.feature_files if f.filename not in on_github)


def dedup(pairs: np.ndarray) -> np.ndarray:
  """set() of (src, dst) rows, in sorted order so the result is deterministic."""
  return np.unique(np.asarray(pairs, np.int64).reshape(-1, 2), axis=0)


def reverse(pairs: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(pairs[:, ::-1])


def movie_edges(rel: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
  """DOUBAN/IMDB: only rdf relations 0 (M->D) and 2 (M->A) are read; reverses are rebuilt."""
  md, ma = dedup(rel[0]), dedup(rel[2])
  return {"ma": ma, "md": md, "dm": reverse(md), "am": reverse(ma)}


def amazon_edges(rel: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
  """AMAZON: ii = set(rel 0 | rel 1), ir = set(rel 2), ri its reverse (rel 3 is not read)."""
  ii = dedup(np.concatenate([rel[0], rel[1]]))
  ir = dedup(rel[2])
  return {"ii": ii, "ir": ir, "ri": reverse(ir)}


_MOVIE_RELATIONS = (Relation("movie", "ma", "actor"), Relation("movie", "md", "director"),
                    Relation("director", "dm", "movie"), Relation("actor", "am", "movie"))
_MOVIE_RDF = (("movie", "director"), ("director", "movie"), ("movie", "actor"), ("actor", "movie"))

PAPER_DATASETS = {
    "douban": PaperDataset(
        name="douban",
        node_types=("movie", "director", "actor"),
        num_nodes=(1888, 1472, 3267),
        rdf_file="douban_actor_rdf.npy",
        rdf_relations=_MOVIE_RDF,
        labels_file="labels.npy",
        split_file="train_val_test_idx_929.npz",
        num_classes=2,
        relations=_MOVIE_RELATIONS,
        build_edges=movie_edges,
        feature_files=(
            FeatureFile("movie", "text", "features_douban_928_1_movie.npz.npy", "npy"),
            FeatureFile("director", "text", "features_douban_928_1_directors.npz.npy", "npy"),
            FeatureFile("actor", "text", "features_douban_928_1_actor.npz.npy", "npy"),
            FeatureFile("movie", "image", "img_feature_douban_512_199.npz", "npz"),
        ),
        code_fill="zeros",
        generated_dim=512,
        published=(
            ("douban_actor_rdf.npy", "1d63e83216679576dd749b823d2e12b27a94382c96c15efc6579aa476f27bf2c"),
            ("labels.npy", "78f9044a682e91672322679624c969ab26d688b0dd022e3328a59cd9723f82c7"),
            ("train_val_test_idx_929.npz", "190f18aa2cecbe26df4a542dd36b9cfda57c514b2c6498565715282cfcb9640f"),
        ),
    ),
    "imdb": PaperDataset(
        name="imdb",
        node_types=("movie", "director", "actor"),
        num_nodes=None,
        node_types_file="node_types.npy",
        rdf_file="rdf.npy",
        rdf_relations=_MOVIE_RDF,
        labels_file="labels.npy",
        split_file="train_val_test_idx1.npz",
        num_classes=3,
        relations=_MOVIE_RELATIONS,
        build_edges=movie_edges,
        feature_files=(
            FeatureFile("movie", "text", "features_0.npz", "sparse"),
            FeatureFile("director", "text", "features_1.npz", "sparse"),
            FeatureFile("actor", "text", "features_2.npz", "sparse"),
            FeatureFile("movie", "image", "img_feature_20_6_25_199.npz", "npz"),
        ),
        code_fill="text",
        generated_dim=3066,
        published=(
            ("features_0.npz", "8e57b1244933eb2c86774bf1fc45775503c0a679d2b75de45fc08c9d9bf17f4f"),
            ("features_1.npz", "a6d98f230b269407a9b40c88e490d4578e5c6966323325c98dbe4790dd726caf"),
            ("features_2.npz", "c6e84ca4c66c7bb775879e0390b409c7288f8f4c29da2452551101848e001b91"),
            ("labels.npy", "34321e008b9d7fac93942e1ec52aa5190d8e85654147c2a21d4ce0991fff4225"),
            ("node_types.npy", "a8bbd38f8231efbfef166e0cb38fa9a5ec5de79047c46afa2fb3390566bf32f1"),
            ("rdf.npy", "f8c6c20bafd6b3dd888e2dfd1f5a5bdc171073c9a5384ece0406ca43fc0ec6a6"),
            ("train_val_test_idx1.npz", "25b1f844fb41d10d902245b5a410ca4ff2686305a6e3a8c626b4dfb4dc181a76"),
        ),
    ),
    "amazon": PaperDataset(
        name="amazon",
        node_types=("item", "review"),
        num_nodes=(6158, 7031),
        rdf_file="rdf.npy",
        rdf_relations=(("item", "item"), ("item", "item"), ("item", "review"), ("review", "item")),
        labels_file="labels.npy",
        split_file="train_val_test_idx_amaze.npz",
        num_classes=3,
        relations=(Relation("item", "ii", "item"), Relation("item", "ir", "review"),
                   Relation("review", "ri", "item")),
        build_edges=amazon_edges,
        feature_files=(
            FeatureFile("item", "text", "feature_item_amazon.npz", "npz"),
            FeatureFile("review", "text", "feature_review_amazon.npz", "npz"),
            FeatureFile("item", "image", "img_feature_20_1_25_199.npz", "npz"),
        ),
        code_fill="zeros",
        generated_dim=1433,
        published=(
            ("labels.npy", "4417ee895540be50cc2f1619bc0bcee21de8093c7c3d67eba19d3b5ff0e082cc"),
            ("rdf.npy", "e5e996fb889c8345606c91e89033f50ac7a2ffbac8d62dfb6c6812fba2f418ba"),
            ("train_val_test_idx_amaze.npz", "fda17723f1b79b2192f44685a2a22cb45f1baed3f3a1728e788deb10798d1198"),
        ),
    ),
}

# AMAZON-1/2: one node type, four item-item relations in this (code) order.
ELECTRONICS_RELATIONS = ("also_bought", "also_viewed", "bought_together", "buy_after_viewing")
ELECTRONICS_CLASSES = 12
ELECTRONICS_SPLIT_FILE = "train_val_test_idx.npz"
ELECTRONICS_GENERATED_DIM = {"text": 512, "image": 512, "price": 1}  # CLIP-sized; price is log-scale
ELECTRONICS_MODALITIES = {"amazon1": ("text", "image"), "amazon2": ("text", "image", "price")}


def check_options(features: str, missing_fill: str) -> None:
  """Rejects unknown `features` / `missing_fill` values."""
  if features not in FEATURE_MODES:
    raise ValueError(f"features must be one of {FEATURE_MODES}, got {features!r}")
  if missing_fill not in FILL_RULES:
    raise ValueError(f"missing_fill must be one of {FILL_RULES}, got {missing_fill!r}")


def load_paper_dataset(name: str, data_dir, *, features: str = "real", missing_fill: str = "code",
                       feature_seed: int = 0) -> MMHN:
  """Loads DOUBAN, IMDB or AMAZON from `<data_dir>/<name>/` in the published format.

  Args:
    name: 'douban', 'imdb' or 'amazon'.
    data_dir: the directory holding one sub-directory per dataset.
    features: 'real' (every feature file must exist) or 'generated' (absent feature
      files are replaced by generated stand-ins marked 'generated' in provenance).
    missing_fill: 'code' (the dataset's own rule: DOUBAN zeros, IMDB text, AMAZON
      zeros), 'text' or 'zeros' for the modalities a node type lacks.
    feature_seed: seed of the generated features.

  Returns:
    The validated `MMHN`.

  Raises:
    MissingFilesError: a published file, or (features='real') a feature file, is absent.
    DatasetError: any file is unreadable or inconsistent.
  """
  check_options(features, missing_fill)
  spec = PAPER_DATASETS[name]
  root = pathlib.Path(data_dir).absolute() / name
  path = lambda f: str(root / f)
  topology = [spec.rdf_file, spec.labels_file, spec.split_file] + ([spec.node_types_file] if spec.node_types_file else [])
  absent_features = files.missing(path(f.filename) for f in spec.feature_files)
  download = (f"download them with `python -m hgnn_ima_jax.data_utils.download --dataset={name} "
              f"--data_dir={root.parent}`")
  authors_only = {path(f.filename) for f in spec.authors_only}
  _require(root, files.missing(path(f) for f in topology), absent_features, features, download,
           f"they are published only on {AUTHORS_PAGE}: put each at the path shown"
           if set(absent_features) <= authors_only else
           f"those on GitHub: {download}; any other is published only on {AUTHORS_PAGE}: put it at the path shown")

  counts = spec.num_nodes or _counts_from_node_types(path(spec.node_types_file), spec.node_types)
  num_nodes = dict(zip(spec.node_types, counts))
  offsets = dict(zip(spec.node_types, np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()))
  rel = _read_rdf(path(spec.rdf_file), spec.rdf_relations, num_nodes, offsets)
  labels = files.check_labels(load_npy(path(spec.labels_file), "labels", "int"), path(spec.labels_file),
                              num_nodes[spec.target_type], spec.num_classes, spec.target_type)
  splits = _read_splits(path(spec.split_file))

  feats, prov, first = {t: {} for t in spec.node_types}, {}, None
  for f in spec.feature_files:
    p = path(f.filename)
    if p in absent_features:
      continue
    x = _read_feature(p, f, num_nodes[f.node_type])
    if first is not None and x.shape[1] != first[1]:
      raise DatasetError(p, f"features[{f.node_type!r}][{f.modality!r}]",
                         f"width {x.shape[1]} differs from width {first[1]} of {first[0]}",
                         "the code feeds every type and modality with one input width D: use files of one release")
    first = first or (p, x.shape[1])
    feats[f.node_type][f.modality] = x
    prov[f"{f.node_type}/{f.modality}"] = "real"

  edges = spec.build_edges(rel)
  for r, e in edges.items():  # the published graphs have edges in every relation the code builds
    if len(e) == 0:
      raise DatasetError(path(spec.rdf_file), f"edges[{r!r}]", "has no rows in the rdf: the relation is empty, "
                         "which no published file is", "replace the file with the published one (re-download it)")

  graph = MMHN(
      name=name, node_types=spec.node_types, num_nodes=num_nodes, modalities=MODALITIES,
      node_modalities={t: MODALITIES if t == spec.target_type else ("text",) for t in spec.node_types},
      relations=spec.relations, edges=edges, features=feats,
      target_type=spec.target_type, labels=labels, num_classes=spec.num_classes, splits=splits,
      provenance={"features": prov}, source=str(root))
  if absent_features:
    # Generated widths follow the real files when some exist (IMDB image = text width, 3066).
    dim = first[1] if first else spec.generated_dim
    _generate(graph, {(f.node_type, f.modality): dim for f in spec.feature_files
                      if path(f.filename) in absent_features}, feature_seed, absent_features)
  rule = spec.code_fill if missing_fill == "code" else missing_fill
  fill_missing_modalities(graph, rule)
  graph.provenance["missing_fill"] = rule

  sources = {"labels": path(spec.labels_file), "splits": path(spec.split_file), "edges": path(spec.rdf_file),
             "num_classes": path(spec.labels_file)}
  if spec.node_types_file:
    sources["num_nodes"] = path(spec.node_types_file)
  for f in spec.feature_files:
    sources[f"features[{f.node_type!r}][{f.modality!r}]"] = path(f.filename)
  return files.validate_with_sources(graph, sources)


def load_electronics(name: str, data_dir, *, features: str = "real", missing_fill: str = "code",
                     feature_seed: int = 0) -> MMHN:
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
  _require(root, files.missing(path(f) for f in topology), absent_features, features, how,
           "build them as described in data_utils/README.md")

  labels = load_npy(path("labels.npy"), "labels", "int", (None,))
  n = len(labels)
  if n == 0:
    raise DatasetError(path("labels.npy"), "labels", "has no items, so node type 'item' has no nodes",
                       "store one label per item")
  files.check_labels(labels, path("labels.npy"), n, ELECTRONICS_CLASSES, "item")
  edges = {}
  for r in ELECTRONICS_RELATIONS:
    e = load_npy(path(f"{r}.npy"), f"edges[{r!r}]", "int", (None, 2))
    if len(e) == 0:
      raise DatasetError(path(f"{r}.npy"), f"edges[{r!r}]", "has no rows: an empty relation file",
                         "store the relation's (item, item) pairs (the format is in data_utils/README.md)")
    edges[r] = np.concatenate([dedup(e), dedup(reverse(e))])  # the code's symmetrisation keeps duplicates
  splits = _read_splits(path(ELECTRONICS_SPLIT_FILE))

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
      name=name, node_types=("item",), num_nodes={"item": n}, modalities=modalities,
      node_modalities={"item": modalities}, relations=tuple(Relation("item", r, "item") for r in ELECTRONICS_RELATIONS),
      edges=edges, features=feats, target_type="item", labels=labels, num_classes=ELECTRONICS_CLASSES,
      splits=splits, provenance={"features": prov, **({"feature_notes": notes} if notes else {})}, source=str(root))
  if absent_features:
    _generate(graph, {("item", m): ELECTRONICS_GENERATED_DIM[m] for m, f in feature_file.items()
                      if path(f) in absent_features}, feature_seed, absent_features)
  graph.provenance["missing_fill"] = "none (items have every modality)"
  sources = {"labels": path("labels.npy"), "num_classes": path("labels.npy"), "splits": path(ELECTRONICS_SPLIT_FILE),
             **{f"edges[{r!r}]": path(f"{r}.npy") for r in ELECTRONICS_RELATIONS},
             **{f"features['item'][{m!r}]": path(f) for m, f in feature_file.items()}}
  return files.validate_with_sources(graph, sources)


# --- helpers ----------------------------------------------------------------
def _require(root: pathlib.Path, absent_topology: list[str], absent_features: list[str], features: str,
             fix_topology: str, fix_features: str) -> None:
  """Raises one MissingFilesError naming every absent file that the request needs."""
  fix_features += ", or pass features='generated' (--features=generated) to generate stand-ins (not comparable with the paper)"
  if absent_topology:
    need_features = features == "real" and absent_features
    listed = absent_topology + (absent_features if need_features else [])
    fix = fix_topology + (f"; the feature files: {fix_features}" if need_features else "")
    raise MissingFilesError(str(root), listed, "published", fix)
  if features == "real" and absent_features:
    raise MissingFilesError(str(root), absent_features, "features", fix_features)


def _generate(graph: MMHN, wanted: dict[tuple[str, str], int], seed: int, absent: list[str]) -> None:
  """Adds generated arrays for `wanted` to `graph` and records it in provenance."""
  for (t, m), x in generate_features(graph, wanted, seed).items():
    graph.features[t][m] = x
    graph.provenance["features"][f"{t}/{m}"] = "generated"
  graph.provenance["feature_seed"] = int(seed)
  graph.provenance["missing_feature_files"] = list(absent)


def _counts_from_node_types(path: str, names: tuple[str, ...]) -> tuple[int, ...]:
  """Nodes per type from a node-type-per-global-id array (IMDB's node_types.npy)."""
  nt = load_npy(path, "node types", "int", (None,))
  if len(nt) and (nt.min() < 0 or nt.max() >= len(names)):
    bad = int(nt.min() if nt.min() < 0 else nt.max())
    raise DatasetError(path, "node types", f"type id {bad} is unknown; expected 0..{len(names) - 1} ({', '.join(names)})",
                       "store one type id per node")
  if np.any(np.diff(nt) < 0):
    row = int(np.argmax(np.diff(nt) < 0)) + 1
    raise DatasetError(path, "node types", f"ids are not contiguous per type (type decreases at global id {row})",
                       f"order nodes by type ({', '.join(names)}), each type one id range")
  counts = np.bincount(nt, minlength=len(names))
  for t, c in zip(names, counts):
    if c == 0:
      raise DatasetError(path, "node types", f"node type {t!r} has no nodes", "use the published node_types.npy")
  return tuple(int(c) for c in counts)


def _read_rdf(path: str, rdf_relations, num_nodes: dict[str, int], offsets: dict[str, int]) -> dict[int, np.ndarray]:
  """Reads (src, dst, relation) global-id rows; returns relation id -> local (src, dst) pairs."""
  rdf = load_npy(path, "rdf", "int", (None, 3)).astype(np.int64)
  if len(rdf) == 0:
    raise DatasetError(path, "rdf", "has no rows: an empty relation file", "replace it with the published file "
                       "(re-download it)")
  rel_ids = rdf[:, 2]
  known = (rel_ids >= 0) & (rel_ids < len(rdf_relations))
  if not known.all():
    row = int(np.argmin(known))
    desc = ", ".join(f"{k}: {s}->{d}" for k, (s, d) in enumerate(rdf_relations))
    raise DatasetError(path, "rdf column 2 (relation id)", f"relation id {rdf[row, 2]} at row {row} is unknown; expected {desc}",
                       "keep only rows of the published relations")
  out = {}
  for k, (s, d) in enumerate(rdf_relations):
    rows = np.flatnonzero(rel_ids == k)
    pairs = rdf[rows, :2]
    for col, t, end in ((0, s, "src"), (1, d, "dst")):
      lo, hi = offsets[t], offsets[t] + num_nodes[t]
      bad = (pairs[:, col] < lo) | (pairs[:, col] >= hi)
      if bad.any():
        j = int(np.argmax(bad))
        raise DatasetError(path, f"rdf row {int(rows[j])} (relation {k}: {s}->{d})",
                           f"{end} id {int(pairs[j, col])} is outside the {t!r} id range {lo}..{hi - 1}",
                           "use global ids in each node type's published contiguous range (movies/items first)")
    out[k] = pairs - np.array([offsets[s], offsets[d]])
  return out


def _read_splits(path: str) -> dict[str, np.ndarray]:
  """train/val/test ids from an .npz with keys train_idx, val_idx, test_idx."""
  raw = load_npz(path, list(SPLIT_KEYS.values()))
  return {s: check_array(raw[k], path, f"splits[{s!r}] ({k})", "int", (None,)) for s, k in SPLIT_KEYS.items()}


def _read_feature(path: str, f: FeatureFile, rows: int) -> np.ndarray:
  """One published feature array as float32 (rows, D), its row count checked against the id range."""
  field = f"features[{f.node_type!r}][{f.modality!r}]"
  if f.fmt == "sparse":
    x = files.load_sparse_dense(path, field)
  elif f.fmt == "npz":
    x = check_array(load_npz(path, ["feature"])["feature"], path, field + " (key 'feature')", "float", (None, None))
  else:
    x = load_npy(path, field, "float", (None, None))
  if x.shape[0] != rows:
    raise DatasetError(path, field, f"{x.shape[0]} rows, but node type {f.node_type!r} has {rows} nodes in the rdf id ranges",
                       "use the feature file from the same release as the rdf, labels and splits")
  return x.astype(np.float32, copy=False)


def _log_price(path: str, price: np.ndarray) -> np.ndarray:
  """Raw prices (N,) or (N, 1) -> log1p(price) as (N, 1); prices must be finite and >= 0."""
  price = np.asarray(price, np.float64).reshape(-1, 1)
  bad = ~np.isfinite(price[:, 0]) | (price[:, 0] < 0)
  if bad.any():
    row = int(np.argmax(bad))
    raise DatasetError(path, "features['item']['price']", f"raw price {price[row, 0]} at row {row} is negative or not finite",
                       "store prices >= 0 (they become log1p(price)), or a precomputed (N, D) embedding")
  return np.log1p(price)
