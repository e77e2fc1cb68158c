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

Feature files that are absent raise a `MissingFilesError` naming every one with
its full path, unless `features='generated'` asks for generated stand-ins
(`data_utils.generated`; provenance 'generated', never silent).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import numpy as np

from hgnn_ima_jax.graph import MMHN, DatasetError, Relation, fill_missing_modalities

from . import files
from .files import load_npy
from .paper_files import FeatureFile, counts_from_node_types, read_feature, read_rdf

# FILL_RULES: re-exported, the config tables' test reads it here.
from .published import FILL_RULES, add_generated, check_options, dedup, read_splits, require_files, reverse  # noqa: F401

MODALITIES = ("text", "image")
AUTHORS_PAGE = "the authors' download page (not in the MHGAT GitHub repository)"


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


def movie_edges(rel: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
  """DOUBAN/IMDB: only rdf relations 0 (M->D) and 2 (M->A) are read; reverses are rebuilt."""
  md, ma = dedup(rel[0]), dedup(rel[2])
  return {"ma": ma, "md": md, "dm": reverse(md), "am": reverse(ma)}


def amazon_edges(rel: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
  """AMAZON: ii = set(rel 0 | rel 1), ir = set(rel 2), ri its reverse (rel 3 is not read)."""
  ii = dedup(np.concatenate([rel[0], rel[1]]))
  ir = dedup(rel[2])
  return {"ii": ii, "ir": ir, "ri": reverse(ir)}


_MOVIE_RELATIONS = (
    Relation("movie", "ma", "actor"),
    Relation("movie", "md", "director"),
    Relation("director", "dm", "movie"),
    Relation("actor", "am", "movie"),
)
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
        relations=(Relation("item", "ii", "item"), Relation("item", "ir", "review"), Relation("review", "ri", "item")),
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


def load_paper_dataset(
    name: str, data_dir, *, features: str = "real", missing_fill: str = "code", feature_seed: int = 0
) -> MMHN:
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
  topology = [spec.rdf_file, spec.labels_file, spec.split_file] + (
      [spec.node_types_file] if spec.node_types_file else []
  )
  absent_topology = files.missing(path(f) for f in topology)
  absent_features = files.missing(path(f.filename) for f in spec.feature_files)
  command = f"`python -m hgnn_ima_jax.data_utils.download --dataset={name} --data_dir={root.parent}`"
  authors_only = {path(f.filename) for f in spec.authors_only}
  on_github = [p for p in absent_features if p not in authors_only]
  elsewhere = [pathlib.Path(p).name for p in absent_features if p in authors_only]
  feature_fixes = []
  if on_github and not absent_topology:  # else the topology's download fetches them too
    feature_fixes.append(f"download {'the ones on GitHub' if elsewhere else 'them'} with {command}")
  if elsewhere:
    one = len(elsewhere) == 1
    feature_fixes.append(
        f"{', '.join(elsewhere)} {'is' if one else 'are'} published only on {AUTHORS_PAGE}: "
        f"put {'it' if one else 'each'} at the path shown"
    )
  require_files(
      root, absent_topology, absent_features, features, f"download them with {command}", "; ".join(feature_fixes)
  )

  counts = spec.num_nodes or counts_from_node_types(path(spec.node_types_file), spec.node_types)
  num_nodes = dict(zip(spec.node_types, counts))
  offsets = dict(zip(spec.node_types, np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()))
  counted_from = path(spec.node_types_file) if spec.num_nodes is None else None
  rel = read_rdf(path(spec.rdf_file), spec.rdf_relations, num_nodes, offsets, counted_from)
  labels = files.check_labels(
      load_npy(path(spec.labels_file), "labels", "int"),
      path(spec.labels_file),
      num_nodes[spec.target_type],
      spec.num_classes,
      spec.target_type,
  )
  splits = read_splits(path(spec.split_file))

  feats, prov, first = {t: {} for t in spec.node_types}, {}, None
  for f in spec.feature_files:
    p = path(f.filename)
    if p in absent_features:
      continue
    x = read_feature(p, f, num_nodes[f.node_type])
    if first is not None and x.shape[1] != first[1]:
      raise DatasetError(
          p,
          f"features[{f.node_type!r}][{f.modality!r}]",
          f"width {x.shape[1]} differs from width {first[1]} of {first[0]}",
          "the code feeds every type and modality with one input width D: use files of one release",
      )
    first = first or (p, x.shape[1])
    feats[f.node_type][f.modality] = x
    prov[f"{f.node_type}/{f.modality}"] = "real"

  edges = spec.build_edges(rel)
  for r, e in edges.items():  # the published graphs have edges in every relation the code builds
    if len(e) == 0:
      raise DatasetError(
          path(spec.rdf_file),
          f"edges[{r!r}]",
          "has no rows in the rdf: the relation is empty, " "which no published file is",
          "replace the file with the published one (re-download it)",
      )

  graph = MMHN(
      name=name,
      node_types=spec.node_types,
      num_nodes=num_nodes,
      modalities=MODALITIES,
      node_modalities={t: MODALITIES if t == spec.target_type else ("text",) for t in spec.node_types},
      relations=spec.relations,
      edges=edges,
      features=feats,
      target_type=spec.target_type,
      labels=labels,
      num_classes=spec.num_classes,
      splits=splits,
      provenance={"features": prov},
      source=str(root),
  )
  if absent_features:
    # Generated widths follow the real files when some exist (IMDB image = text width, 3066).
    dim = first[1] if first else spec.generated_dim
    add_generated(
        graph,
        {(f.node_type, f.modality): dim for f in spec.feature_files if path(f.filename) in absent_features},
        feature_seed,
        absent_features,
    )
  rule = spec.code_fill if missing_fill == "code" else missing_fill
  fill_missing_modalities(graph, rule)
  graph.provenance["missing_fill"] = rule

  sources = {
      "labels": path(spec.labels_file),
      "splits": path(spec.split_file),
      "edges": path(spec.rdf_file),
      "num_classes": path(spec.labels_file),
  }
  if spec.node_types_file:
    sources["num_nodes"] = path(spec.node_types_file)
  for f in spec.feature_files:
    sources[f"features[{f.node_type!r}][{f.modality!r}]"] = path(f.filename)
  return files.validate_with_sources(graph, sources)
