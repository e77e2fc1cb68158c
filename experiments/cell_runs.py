"""Training the cells of a paper artefact: `CellRunner` trains each (dataset, model, ...) cell once.

It runs `train.train_and_evaluate` in `<workdir>/<dataset>/<cell>` and reuses a cell when the
same training was already done: in this invocation (e.g. `hgnn_ima-L_ind` resolves to
`hgnn_ima` in the code profile), or, with `resume`, by any finished run under
`<workdir>/<dataset>/` whose resolved config is the same (`signature`), so table2, ablation,
depth_sweep and visualize share runs in one workdir.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import time
from typing import Any, Callable

import ml_collections

from hgnn_ima_jax import config_compare, config_values
from hgnn_ima_jax import config_validation as cv
from hgnn_ima_jax import run_dir as run_files
from hgnn_ima_jax.data_utils import load_for_config, validate_run_config

from .formatting import dataset_tag, format_stats, write_json
from .outputs import history_writer, resume_note
from .run_options import Options, check_overrides_read

# Beyond choices.RESULT_NEUTRAL: the device layout changes results only in the last float bits.
# data_dir: where the paper's files are, not what they hold (a cell saved before $HGNN_IMA_DATA_DIR was recorded
# has ''; checkpoint fingerprints leave it out too, `config_compare.without_host_paths`)
_IGNORED_FIELDS = ("shard_seeds", "data_dir")
# Data fields: cells with equal values share one loaded MMHN.
_DATA_FIELDS = (
    "dataset",
    "data_dir",
    "features",
    "missing_fill",
    "feature_seed",
    "synthetic",
    "split",
    "split_fractions",
    "split_seed",
)


def validate_cells(configs, opts: Options) -> list:
  """`data_utils.validate_run_config` on every cell config, and the run's --config overrides against them
  (`run_options.check_overrides_read`), before any cell runs; returns them."""
  configs = list(configs)
  for config in configs:
    validate_run_config(config)
    if not opts.resume:  # cells saved before the rule still resume
      cv.check_fanouts_per_layer(config)
  check_overrides_read(configs, opts)
  return configs


def signature(config: ml_collections.ConfigDict) -> dict:
  """What determines a training run: the resolved config, with the model name reduced to the
  module it builds (its base model + the ablation's field overrides) and bookkeeping fields dropped.

  Two cells with equal signatures train the same program on the same data with the same seeds.
  """
  # The library imports JAX: only once cells are compared or run, so the scripts' --help stays fast.
  from hgnn_ima_jax import train
  from hgnn_ima_jax.models import split_model_name

  d = config_compare.result_fields(train.resolve_config(config))  # without bookkeeping and unread data fields
  for k in _IGNORED_FIELDS:
    d.pop(k, None)
  base, model_over, _ = split_model_name(d["model_name"])
  d["model_name"] = base
  d["model"] = {**d["model"], **model_over}
  return config_values.normalise(d)


class CellConfigError(ValueError):
  """A cell directory holds a run with a different config."""


@dataclasses.dataclass
class Cell:
  """One finished (dataset, model, ...) run."""

  dataset: str
  name: str
  run_dir: str
  results: dict
  reused: bool  # True: not trained by this call (an earlier run with the same signature)

  def scores(self) -> dict:
    """What the ablation and depth-sweep tables record of a cell: test Macro-/Micro-F1, per-seed Macro-F1, seeds."""
    r = self.results
    return {
        "test_macro_f1": r["test_macro_f1"],
        "test_micro_f1": r["test_micro_f1"],
        "per_seed_macro_f1": [s["test_macro_f1"] for s in r["per_seed"]],
        "seeds": list(r["seeds"]),
        "comparable_with_paper": bool(r.get("comparable_with_paper", True)),
    }


class CellRunner:
  """Trains cells under `workdir`, each at most once (see the module docstring)."""

  def __init__(self, workdir: str, opts: Options, *, log: Callable[[str], None] | None = print):
    self.workdir = workdir
    self.opts = opts
    self.log = log or (lambda s: None)
    self._done: dict[str, Cell] = {}  # signature json -> cell
    self._data: dict[str, Any] = {}

  def data(self, config: ml_collections.ConfigDict):
    """The MMHN for a config, loaded once per distinct data fields."""
    key = json.dumps(config_values.normalise({k: config.to_dict().get(k) for k in _DATA_FIELDS}), sort_keys=True)
    if key not in self._data:
      self._data[key] = load_for_config(config)
    return self._data[key]

  def load_data(self, configs) -> None:
    """Loads every cell's dataset before the first cell trains, so that a missing file or a bad array in the
    last dataset is reported before the others have trained (they are kept for their cells in any case); then
    refuses an override that every cell's graph makes moot (`check_overrides_read` with the schemas), and batch
    settings and models that do not fit a cell's graph (`config_validation.check_batch_for_graph`,
    `check_model_for_graph`)."""
    configs = list(configs)
    schemas = {config.dataset: self.data(config).schema for config in configs}
    check_overrides_read(configs, self.opts, schemas)
    for (
        config
    ) in configs:  # the model fits the graph; per-relation fanouts name its relations; drop_last leaves a batch
      cv.check_model_for_graph(config, self.data(config))
      cv.check_batch_for_graph(config, self.data(config))

  def _finished_runs(self, dataset_dir: str) -> list[str]:
    return sorted(os.path.dirname(p) for p in glob.glob(os.path.join(dataset_dir, "*", "results.json")))

  def run(self, config: ml_collections.ConfigDict, name: str) -> Cell:
    """Trains (or reuses) the cell `<workdir>/<dataset>/<name>` for `config`."""
    from hgnn_ima_jax import runtime, train  # imports JAX: only once a cell is run
    from hgnn_ima_jax.losses import val_rule_changed

    dataset = str(config.dataset)
    sig = signature(config)
    key = json.dumps(sig, sort_keys=True)
    if key in self._done:
      prev = self._done[key]
      self.log(f"[{dataset_tag(dataset)}/{name}] same training as {prev.run_dir}: reused")
      return Cell(dataset, name, prev.run_dir, prev.results, True)
    dataset_dir = os.path.join(self.workdir, dataset_tag(dataset))
    run_dir = os.path.join(dataset_dir, name)
    if os.path.exists(os.path.join(run_dir, "config.json")):
      there = signature(run_files.read_config(run_dir))
      if there != sig:
        diffs = "; ".join(config_compare.diff_configs(there, sig)[:6])
        raise CellConfigError(
            f"{run_dir} holds a run with a different config ({diffs}). Fix: use a new --workdir, or move that "
            "directory aside (or delete it) to train the cell again"
        )
    if self.opts.resume:
      candidates = [run_dir] + [d for d in self._finished_runs(dataset_dir) if d != run_dir]
      for d in candidates:
        if os.path.exists(os.path.join(d, "results.json")) and signature(run_files.read_config(d)) == sig:
          results = run_files.read_results(d)
          if "val_att_weight" not in results and val_rule_changed(train.resolve_config(config)):
            raise CellConfigError(
                f"{d} was trained when L_att entered the validation loss with weight 1; this version weighs it by "
                f"loss.att_weight={float(config.loss.att_weight)}, so its selected epoch may differ. Fix: move that "
                "directory aside to train the cell again, or use a new --workdir"
            )
          self.log(f"[{dataset_tag(dataset)}/{name}] reusing finished run {d}")
          cell = Cell(dataset, name, d, results, True)
          self._done[key] = cell
          return cell
      if os.path.exists(os.path.join(run_dir, "config.json")):  # a cell an earlier run started: say where it goes on
        self.log(f"[{dataset_tag(dataset)}/{name}] {resume_note(run_dir, int(config.num_epochs), config.batch.mode)}")
    t0 = time.time()
    if hasattr(self.opts.should_stop, "unit"):  # what its signal message says the cell finishes first
      self.opts.should_stop.unit = "epoch" if config.batch.mode == "full" else "batch"
    results = train.train_and_evaluate(
        config,
        run_dir,
        self.data(config),
        resume=self.opts.resume,
        progress=self.opts.progress,
        on_history=history_writer(run_dir),
        should_stop=self.opts.should_stop,
    )
    if self.opts.tiny:  # in the run's own files, so that `visualize.py --run=<this cell>` marks its outputs too
      results = {**results, "smoke_test": True}
      write_json(os.path.join(run_dir, "results.json"), results)
    # The allocator keeps freed pages for re-use by the next step (hgnn_ima_jax.runtime); between
    # cells, whose programs differ in size, they go back to the kernel.
    runtime.release_free_memory()
    self.log(
        f"[{dataset_tag(dataset)}/{name}] Micro-F1 {format_stats(results['test_micro_f1'])}  "
        f"Macro-F1 {format_stats(results['test_macro_f1'])}  ({time.time() - t0:.1f} s, {run_dir})"
    )
    cell = Cell(dataset, name, run_dir, results, False)
    self._done[key] = cell
    return cell
