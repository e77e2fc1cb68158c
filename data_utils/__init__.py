"""Datasets for HGNN-IMA as validated `MMHN` graphs: one entry point, `load_dataset`.

* the paper's DOUBAN, IMDB, AMAZON in their published (MHGAT) format, and the
  self-built AMAZON-1/2 in a documented format (`data_utils.paper_datasets`, `data_utils.electronics`);
* any MMHN in the generic .npz / directory format (`data_utils.generic`), and a PyTorch Geometric
  `HeteroData` (`data_utils.pyg.from_hetero_data`, torch not needed);
* 'synthetic' graphs (`data_utils.synthetic`), and the AMAZON-1-like one at 1x, 4x and 16x
  ('synthetic_amazon1', 'synthetic_amazon1x4', 'synthetic10m').

`load_for_config(config)` loads what a training config names (the experiment scripts call it and
pass the graph to `train.train_and_evaluate`); `validate_run_config` checks a config first.

Command-line tools: `python -m hgnn_ima_jax.data_utils.check` (validate and summarise) and
`python -m hgnn_ima_jax.data_utils.download` (fetch the published files, sha256-checked).
This package imports only `hgnn_ima_jax.graph` (with `graph_checks`) and the JAX-free config
modules (`choices`, `config_values`, `field_usage`, `config_validation`) and `cli_flags` from the model package;
the library never imports it.
"""

from __future__ import annotations

from hgnn_ima_jax.graph import MMHN, DatasetError

from .datasets import DATA_DIR_ENV, DATASETS, default_data_dir, load_dataset, reads_generic_format
from .files import MissingFilesError
from .from_config import check_data_config, load_for_config, validate_run_config
from .generic import read_generic, write_generic
from .pyg import from_hetero_data

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "DatasetError",
    "MissingFilesError",
    "MMHN",
    "default_data_dir",
    "load_dataset",
    "reads_generic_format",
    "load_for_config",
    "check_data_config",
    "validate_run_config",
    "read_generic",
    "write_generic",
    "from_hetero_data",
]
