"""Whether two configs train the same run, and what differs between them (JAX-free).

`result_fields` is a config without the fields that do not change what is trained (`choices.RESULT_NEUTRAL`), those
the run does not read (`field_usage.unread_fields`) and an `choices.ADDED_FIELDS` field at its old value;
`config_fingerprint` hashes it for the checkpoints; `leaf_differences` and `diff_configs` say what differs.
Resume, the table scripts' cell reuse, checkpoint fingerprints and the multi-process config check compare configs
through these and check nothing, so they are apart from the checks (`config_validation`).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from hgnn_ima_jax.choices import ADDED_FIELDS, DATASET_NAMES, RESULT_NEUTRAL
from hgnn_ima_jax.config_values import MISSING, format_value, get_path, normalise, to_dict
from hgnn_ima_jax.field_usage import unread_fields


def result_fields(config) -> dict:
  """The fields that decide what a run trains: the config without `RESULT_NEUTRAL` fields, without the
  fields it does not read (`unread_fields`: data_dir/features for 'synthetic', the synthetic knobs otherwise,
  the split's fractions and seed with split='file', the batch fields its batch mode ignores), and without an
  `ADDED_FIELDS` field at the value runs saved before it had."""
  d = normalise(to_dict(config))
  at_default = tuple(k for k, v in ADDED_FIELDS.items() if get_path(d, k, MISSING) == v)
  for k in RESULT_NEUTRAL + unread_fields(d) + at_default:
    *parents, leaf = k.split(".")
    node = get_path(d, ".".join(parents), None) if parents else d
    if isinstance(node, dict):
      node.pop(leaf, None)
  return d


def leaf_differences(a, b, prefix: str = "") -> list[tuple[str, Any, Any]]:
  """(path, a's value, b's value) for every leaf that differs between two nested dicts ('<absent>' if missing)."""
  if isinstance(a, Mapping) and isinstance(b, Mapping):
    out = []
    for k in sorted(set(a) | set(b)):
      out += leaf_differences(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{prefix}{k}.")
    return out
  return [] if a == b else [(prefix[:-1], a, b)]


def without_host_paths(d: dict) -> dict:
  """`d` (a normalised config dict) without the fields that may differ between the hosts of one run: data_dir and
  a dataset path (each host may mount the data elsewhere)."""
  d = dict(d)
  d.pop("data_dir", None)
  if isinstance(d.get("dataset"), str) and d["dataset"].lower() not in DATASET_NAMES:
    d.pop("dataset")
  return d


def fingerprinted_fields(config) -> dict:
  """What `config_fingerprint` hashes: `result_fields(config)` without host paths (a checkpoint keeps it too, so
  that a mismatch can name the fields)."""
  return without_host_paths(result_fields(config))


def config_fingerprint(config) -> str:
  """A short hash of `fingerprinted_fields(config)`: equal for two configs that train the same run, on every process
  of it."""
  import hashlib

  text = json.dumps(fingerprinted_fields(config), sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def diff_configs(saved, asked) -> list[str]:
  """'field: <saved> (saved) vs <asked> (asked)' for every leaf that differs between two nested dicts."""
  return [f"{p}: {format_value(s)} (saved) vs {format_value(a)} (asked)" for p, s, a in leaf_differences(saved, asked)]
