r"""Validates a dataset and prints its summary table.

  python -m hgnn_ima_jax.data_utils.check --dataset=douban --data_dir=../shared/datasets
  python -m hgnn_ima_jax.data_utils.check --dataset=imdb --features=generated --missing_fill=text
  python -m hgnn_ima_jax.data_utils.check --dataset=path/to/graph.npz        # generic format

Exit codes:
  0  valid; every feature array is real (or --features=generated was asked for).
  1  bad command line or an option that does not apply to the dataset.
  2  invalid or absent data: a `DatasetError` (printed as one line on stderr).
  3  topology, labels and splits are valid, but feature files are missing
     (listed with their full paths; the table then shows generated stand-ins).
"""

from __future__ import annotations

import os
import sys
from typing import Callable

import numpy as np
from absl import app, flags

from hgnn_ima_jax import data_utils
from hgnn_ima_jax.cli_flags import one_line_usage_errors, parse_flags
from hgnn_ima_jax.graph import MMHN, SPLITS, DatasetError
from hgnn_ima_jax.graph_checks import check_trainable

from .files import MissingFilesError
from .from_config import unread_file_field

EXIT_OK, EXIT_USAGE, EXIT_INVALID, EXIT_FEATURES_MISSING = 0, 1, 2, 3


def report(graph: MMHN) -> str:
  """`graph.summary()` plus split shares and how many target nodes each relation reaches."""
  s = graph.schema
  n_target = s.num_nodes[s.target_id]
  lines = [graph.summary()]
  lines.append("split shares: " + " / ".join(f"{k} {100.0 * len(graph.splits[k]) / n_target:.1f}%" for k in SPLITS))
  # Nodes without in-edges of a relation get zeros that still count in the mean over R_t.
  for t in range(s.num_node_types):
    into = s.relations_into(t)
    if not into:
      continue
    reached = {r: np.unique(np.asarray(graph.edges[s.relations[r].name])[:, 1]) for r in into}
    parts = [f"{len(reached[r]):,} with {s.relations[r].name} in-edges" for r in into]
    none = s.num_nodes[t] - len(np.unique(np.concatenate(list(reached.values()))))
    lines.append(
        f"in-edge coverage of {s.node_types[t]!r} ({s.num_nodes[t]:,}): {', '.join(parts)}, {none:,} with none"
    )
  # Kept as given (each row is one message, as DGL and PyG keep them), but worth knowing about.
  repeats = {r.name: _repeated_rows(graph.edges[r.name]) for r in s.relations}
  if any(repeats.values()):
    lines.append(
        "repeated edges (rows kept, each one a message): "
        + ", ".join(f"{name} {n:,}" for name, n in repeats.items() if n)
    )
  return "\n".join(lines)


def _repeated_rows(edges) -> int:
  """Rows of an (E, 2) edge array that repeat an earlier (src, dst) pair."""
  e = np.asarray(edges, np.int64)
  if len(e) == 0:
    return 0
  keys = e[:, 0] * (int(e[:, 1].max()) + 1) + e[:, 1]
  return len(keys) - len(np.unique(keys))


def run(
    dataset: str,
    data_dir=None,
    features: str = "real",
    missing_fill: str = "code",
    feature_seed: int = 0,
    out=sys.stdout,
    err=sys.stderr,
) -> int:
  """Loads, validates and reports one dataset; returns the exit code (see module docstring)."""
  kwargs = dict(features=features, missing_fill=missing_fill, feature_seed=feature_seed)
  for field, value in (("data_dir", data_dir), ("features", features), ("feature_seed", feature_seed)):
    unread = unread_file_field(dataset, field, value)
    if unread:  # it would be ignored
      print(f"ERROR: --{field}={value}: {unread[0]}. Fix: {unread[1]}", file=err)
      return EXIT_USAGE
  try:
    try:
      graph = check_trainable(data_utils.load_dataset(dataset, data_dir, **kwargs))
    except MissingFilesError as e:
      if e.kind != "features":
        raise
      # Validate everything else with stand-ins, then say exactly what is missing.
      graph = check_trainable(data_utils.load_dataset(dataset, data_dir, **{**kwargs, "features": "generated"}))
      print(
          "Topology, labels and splits are VALID; feature files are MISSING "
          "(the feature columns below describe generated stand-ins).",
          file=out,
      )
      print(report(graph), file=out)
      print(f"\nMISSING FEATURE FILES ({len(e.paths)}):", file=out)
      for p in e.paths:
        print(f"  {p}", file=out)
      print(f"How to proceed: {e.fix}.", file=out)
      return EXIT_FEATURES_MISSING
  except DatasetError as e:
    print(f"ERROR: {e}", file=err)
    return EXIT_INVALID
  except ValueError as e:  # an option that does not apply (e.g. --features=generated on a generic file)
    print(f"ERROR: {e}", file=err)
    return EXIT_USAGE
  print(report(graph), file=out)
  return EXIT_OK


def define_flags() -> None:
  """The CLI's flags; defined only when run as a program, so importing this module defines none."""
  flags.DEFINE_string("dataset", None, f"one of {', '.join(data_utils.DATASETS)}, or a generic-format path")
  flags.DEFINE_string(
      "data_dir", None, "directory with one sub-directory per dataset " "(default: $HGNN_IMA_DATA_DIR, else ./data)"
  )
  flags.DEFINE_enum(
      "features", "real", ["real", "generated"], "'generated': replace absent feature files by generated stand-ins"
  )
  flags.DEFINE_enum(
      "missing_fill",
      "code",
      ["code", "text", "zeros"],
      "fill for modalities a node type lacks ('code': the dataset's own rule)",
  )
  flags.DEFINE_integer("feature_seed", 0, "seed of generated features")
  flags.mark_flag_as_required("dataset")


def run_cli(define: Callable[[], None], command: Callable[[flags.FlagValues], int]) -> None:
  """Runs a data_utils command line (check, download): its flags, no positional arguments, exit status command(FLAGS)."""
  define()

  def main(argv):
    del argv  # none: parse_flags refuses positional arguments
    try:
      return command(flags.FLAGS)
    except BrokenPipeError:  # `check ... | head` closed the pipe: the reader wanted no more
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that exiting flushes nowhere
      return 0

  app.run(one_line_usage_errors(main), flags_parser=lambda argv: parse_flags(argv, positional=False))


if __name__ == "__main__":
  run_cli(define_flags, lambda f: run(f.dataset, f.data_dir, f.features, f.missing_fill, f.feature_seed))
