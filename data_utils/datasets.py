"""`load_dataset`: a dataset name or a generic-format path → a validated `MMHN`."""

from __future__ import annotations

import os
import pathlib

from hgnn_ima_jax.choices import DATA_DIR_ENV, DATASET_NAMES, SCALED_SYNTHETIC  # noqa: F401 (re-exported)
from hgnn_ima_jax.graph import MMHN, DatasetError

from .electronics import ELECTRONICS_MODALITIES, load_electronics
from .generic import read_generic
from .paper_datasets import PAPER_DATASETS, load_paper_dataset
from .published import check_options
from .synthetic import make_scaled_synthetic, make_synthetic

DATASETS = DATASET_NAMES  # the table config_validation checks `config.dataset` against


def default_data_dir() -> pathlib.Path:
  """$HGNN_IMA_DATA_DIR, else ./data."""
  return pathlib.Path(os.environ.get(DATA_DIR_ENV) or "data")


def load_dataset(
    name_or_path,
    data_dir=None,
    *,
    features: str = "real",
    missing_fill: str = "code",
    feature_seed: int = 0,
    **synthetic_kwargs,
) -> MMHN:
  """Loads a dataset by name, or a generic-format file/directory by path, as a validated MMHN.

  Args:
    name_or_path: one of `DATASETS`, or a path to a generic-format `.npz` file or
      directory (a directory named like a paper dataset, e.g. `.../douban`, is read
      in that dataset's published format).
    data_dir: the directory with one sub-directory per dataset; default
      `default_data_dir()` ($HGNN_IMA_DATA_DIR, else ./data).
    features: 'real' (default; absent feature files are an error naming each of
      them) or 'generated' (absent feature files replaced by generated stand-ins,
      marked in provenance; `comparable_with_paper` is then False).
    missing_fill: 'code' (each dataset's own rule; for a generic file, its stored
      rule), 'text' or 'zeros'.
    feature_seed: seed of generated features; for the synthetic graphs the default seed.
    **synthetic_kwargs: passed to `data_utils.synthetic.make_synthetic` (only for
      'synthetic', where `seed` overrides `feature_seed`, and for the `SCALED_SYNTHETIC` names,
      where they replace the name's fields and `feature_dim` sets every modality's width).

  Returns:
    The validated `MMHN`.

  Raises:
    MissingFilesError: files are absent (a `DatasetError` listing every path).
    DatasetError: a file is unreadable or inconsistent; one line, file, field and fix.
  """
  g = _load(name_or_path, data_dir, features, missing_fill, feature_seed, synthetic_kwargs)
  # What it was loaded as, as config.dataset spells it: train_and_evaluate records a graph that is not its config's
  # dataset (one built or loaded otherwise) under its own name, and load_run then asks for it
  key = os.fspath(name_or_path)
  as_name = key.lower() in DATASETS and not isinstance(name_or_path, os.PathLike)
  g.provenance.setdefault("dataset", key.lower() if as_name else os.path.abspath(key))
  return g


def _load(name_or_path, data_dir, features, missing_fill, feature_seed, synthetic_kwargs) -> MMHN:
  """`load_dataset` without the provenance stamp."""
  check_options(features, missing_fill)
  key = os.fspath(name_or_path)
  if not key:  # Path("") is the current directory: it would be read as a generic-format dataset
    raise DatasetError("''", "dataset", "is empty", f"give one of {', '.join(DATASETS)}, or a generic-format path")
  name = key.lower()
  # A name string wins over a same-named directory; a Path object (or './douban') is always a path.
  if name in DATASETS and not isinstance(name_or_path, os.PathLike):
    if name not in ("synthetic", *SCALED_SYNTHETIC) and synthetic_kwargs:
      raise TypeError(
          f"load_dataset({name!r}): unexpected arguments {sorted(synthetic_kwargs)}. Fix: drop them; only the "
          "synthetic datasets take generator arguments"
      )
    if name == "synthetic":
      return _synthetic(missing_fill, feature_seed, synthetic_kwargs)  # generated in full; `features` is moot
    if name in SCALED_SYNTHETIC:
      if missing_fill != "code":
        synthetic_kwargs = {**synthetic_kwargs, "missing_fill": missing_fill}
      return make_scaled_synthetic(name, seed=feature_seed, **synthetic_kwargs).validate()
    data_dir = default_data_dir() if data_dir is None else data_dir
    if name in PAPER_DATASETS:
      return load_paper_dataset(name, data_dir, features=features, missing_fill=missing_fill, feature_seed=feature_seed)
    return load_electronics(name, data_dir, features=features, missing_fill=missing_fill, feature_seed=feature_seed)

  path = pathlib.Path(key)
  if synthetic_kwargs:
    raise TypeError(
        f"load_dataset({key!r}): unexpected arguments {sorted(synthetic_kwargs)}. Fix: drop them; only the synthetic "
        "datasets take generator arguments"
    )
  if not path.exists() and path.suffix != ".npz" and os.sep not in key and "/" not in key:
    raise DatasetError(
        key,
        "dataset",
        "is neither a known dataset nor an existing path",
        f"use one of {', '.join(DATASETS)}, or a generic-format .npz file or directory",
    )
  if _published_copy(path):
    return load_dataset(path.name, path.parent, features=features, missing_fill=missing_fill, feature_seed=feature_seed)
  if features != "real":
    raise DatasetError(str(path), "features", GENERATED_ON_GENERIC[0], GENERATED_ON_GENERIC[1])
  return read_generic(path, missing_fill=None if missing_fill == "code" else missing_fill)


# (problem, fix) of features='generated' for a generic-format path
GENERATED_ON_GENERIC = (
    "'generated' applies to the paper's published format; a generic-format file holds its own features",
    "drop features='generated' (--features); mark generated arrays in the file's feature_provenance",
)


def _published_copy(path: pathlib.Path) -> bool:
  """A directory in a paper dataset's published format (named after it), not in the generic format."""
  published = PAPER_DATASETS.keys() | ELECTRONICS_MODALITIES.keys()
  return path.is_dir() and not (path / "relations.npy").exists() and path.name in published


def reads_generic_format(dataset: str) -> bool:
  """Whether `load_dataset(dataset)` reads the generic format: a path that is not a published-format copy."""
  return dataset.lower() not in DATASETS and not _published_copy(pathlib.Path(dataset))


def _synthetic(missing_fill: str, seed: int, kwargs: dict) -> MMHN:
  """`make_synthetic` with the dataset's seed and fill rule."""
  kwargs = {"seed": seed, **kwargs}
  if missing_fill != "code":  # 'code' = the generator's own default rule
    kwargs["missing_fill"] = missing_fill
  return make_synthetic(**kwargs).validate()
