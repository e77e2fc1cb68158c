"""docs/equations.md's table is true: every listed function exists and its docstring names its equation."""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

from hgnn_ima_jax import layers
from hgnn_ima_jax.choices import CHOICES

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "equations.md"


def table() -> dict[int, list[str]]:
  rows = {}
  for line in DOC.read_text().splitlines():
    m = re.match(r"\|\s*(\d+)\s*\|[^|]*\|(.*)\|\s*$", line)
    if m:
      rows[int(m.group(1))] = re.findall(r"`([\w.]+)`", m.group(2))
  return rows


def equations_named(doc: str) -> set[int]:
  """Equation numbers a docstring names: 'Eq. 7', 'Eqs. 3 and 8', 'Eqs. 12–15', 'Eqs. 16–17'."""
  found = set()
  for m in re.finditer(r"Eqs?\.\s*(\d+)(?:\s*(–|-|and)\s*(\d+))?", doc):
    a, op, b = int(m.group(1)), m.group(2), m.group(3)
    found |= set(range(a, int(b) + 1)) if op in ("–", "-") else {a} | ({int(b)} if b else set())
  return found


def resolve(path: str):
  module, _, name = path.partition(".")
  obj = importlib.import_module(f"hgnn_ima_jax.{module}")
  for part in name.split("."):
    obj = getattr(obj, part)
  return obj


def test_the_table_lists_every_equation_once():
  assert sorted(table()) == list(range(1, 18))


@pytest.mark.parametrize("eq", range(1, 18))
def test_each_function_exists_and_names_its_equation(eq):
  for path in table()[eq]:
    fn = resolve(path)
    assert eq in equations_named(fn.__doc__ or ""), f"{path}'s docstring does not name Eq. {eq}"


def test_every_table4_variant_has_its_function():
  assert set(layers.NESTED) == set(CHOICES["model.variant"])
