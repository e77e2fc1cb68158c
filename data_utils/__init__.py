"""Datasets for HGNN-IMA as validated `MMHN` graphs: one entry point, `load_dataset`.

* the paper's DOUBAN, IMDB, AMAZON in their published (MHGAT) format, and the
  self-built AMAZON-1/2 in a documented format (`data_utils.paper_datasets`);
* any MMHN in the generic .npz / directory format (`data_utils.generic`);
* 'synthetic' graphs (`data_utils.synthetic`, loaded on first use).

Command-line tools: `python -m hgnn_ima_jax.data_utils.check` (validate and summarise) and
`python -m hgnn_ima_jax.data_utils.download` (fetch the published files, sha256-checked).
This package imports only `hgnn_ima_jax.graph` from the model package.
"""

from __future__ import annotations

from .datasets import DATA_DIR_ENV, DATASETS, default_data_dir, load_dataset
from .files import MissingFilesError
from .from_config import load_for_config
from .generic import read_generic, write_generic
from hgnn_ima_jax.graph import MMHN, DatasetError

__all__ = ["DATASETS", "DATA_DIR_ENV", "DatasetError", "MissingFilesError", "MMHN", "default_data_dir", "load_dataset",
           "load_for_config", "read_generic", "write_generic"]
