"""The paths a config names, as the config.json saved with a run records them (JAX-free).

`read_as_path`: whether a dataset value that is not a known name is a path (the rule `data_utils.load_dataset`
follows; the dataset check shares it, so both agree); `absolute_path`: a dataset path or data_dir made absolute;
`data_dir_or_env`: data_dir, or $HGNN_IMA_DATA_DIR where it is empty. A run saved with these reopens its data from
any directory and shell (--resume, visualize, load_run).
"""

from __future__ import annotations

import os

from hgnn_ima_jax.choices import DATA_DIR_ENV, DATASET_NAMES
from hgnn_ima_jax.field_usage import unread_data_fields


def read_as_path(dataset: str) -> bool:
  """Whether `load_dataset` reads a dataset value that is not a known name as a path (the same rule)."""
  return dataset.endswith(".npz") or "/" in dataset or os.sep in dataset or os.path.exists(dataset)


def absolute_path(field: str, value):
  """A dataset path or data_dir made absolute, so that the config saved with a run opens it from any directory
  (resume, visualize, load_run); dataset names, and empty or unset values, as given."""
  if not isinstance(value, str) or not value or (field == "dataset" and value.lower() in DATASET_NAMES):
    return value
  if field == "dataset" and not read_as_path(value):  # a mistyped name stays one: validation names it
    return value
  return os.path.abspath(value)


def data_dir_or_env(config) -> str:
  """config.data_dir, or $HGNN_IMA_DATA_DIR where that is empty and the dataset reads a data_dir: the variable counts
  as if given, so that config.json says where the data came from and the run reopens (--resume, visualize,
  load_run) in a shell without it."""
  given = config.get("data_dir") or ""
  if given or "data_dir" in unread_data_fields(config.get("dataset")):
    return given
  return os.environ.get(DATA_DIR_ENV, "")
