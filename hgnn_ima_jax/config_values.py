"""A config as the checks, the comparisons and the scripts read it, and a value as a command line spells it.

`to_dict` (a plain nested dict of a ConfigDict), `get_path` (a field by its dotted path), `normalise` (the
JSON-equal form, so that a config compares with the config.json saved from it), `format_value` and `config_flag`
(a value, and a `--config.<path>=<value>` flag, as they can be pasted into a shell: every error message spells
values this way). It imports nothing from the project: the config checks, the field-usage tables and the config
comparisons all build on it.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, Mapping


def format_value(value: Any) -> str:
  """A value as a command line would spell it: strings bare (quoted when empty), the rest as Python."""
  if isinstance(value, str):
    return value if value and value.strip() == value else repr(value)
  return repr(tuple(value)) if isinstance(value, list) else repr(value)


def config_flag(path: str, value: Any) -> str:
  """`--config.<path>=<value>` as it can be pasted into a shell: bare when nothing in it needs quoting, else the
  value in double quotes (the README's spelling of a tuple or dict: --config.batch.fanouts="({'ma': 10}, ...)"),
  or `shlex.quote`'d when double quotes would not protect it."""
  flag = f"--config.{path}={format_value(value)}"
  if shlex.quote(flag) == flag:
    return flag
  text = format_value(value)
  if not any(c in text for c in '"\\$`!'):
    return f'--config.{path}="{text}"'
  return shlex.quote(flag)


def to_dict(config) -> dict:
  """A plain nested dict of a ConfigDict (or mapping)."""
  return (
      config.to_dict()
      if hasattr(config, "to_dict")
      else {k: to_dict(v) if isinstance(v, Mapping) else v for k, v in dict(config).items()}
  )


MISSING = object()


def get_path(tree: Mapping, path: str, default=MISSING):
  node = tree
  for part in path.split("."):
    if not isinstance(node, Mapping) or part not in node:
      return default
    node = node[part]
  return node


def normalise(tree):
  """JSON-equal form (tuples → lists, other objects → str), so a config compares with its config.json."""
  return json.loads(json.dumps(tree, sort_keys=True, default=lambda x: list(x) if isinstance(x, tuple) else str(x)))
