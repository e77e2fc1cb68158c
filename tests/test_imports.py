"""The package's layering, read from the source: the library never imports the data layer or the
scripts, no module imports itself back through others at load time, the config tables import nothing of the
project, and the configs and the data layer load without JAX."""

import ast
import pathlib
import subprocess
import sys

import pytest
from conftest import REPO

LIBRARY = REPO / "hgnn_ima_jax"
ABOVE_THE_LIBRARY = ("hgnn_ima_jax.data_utils", "hgnn_ima_jax.experiments")
# The repository's directories as the installed package names them (pyproject.toml's package-dir).
PACKAGE_DIRS = {
    "hgnn_ima_jax": LIBRARY,
    "hgnn_ima_jax.data_utils": REPO / "data_utils",
    "hgnn_ima_jax.experiments": REPO / "experiments",
    "hgnn_ima_jax.experiments.configs": REPO / "experiments" / "configs",
}
# Modules that every layer reads, so they import nothing of the project: the config tables, the helpers that read and
# spell a config's values, and the commands' flag parsing.
LEAVES = ("choices.py", "config_values.py", "cli_flags.py")
# What the data layer may load from the library, with everything those import: the typed graph and its checks, and
# the JAX-free config modules (the checks read the layer's and batch's options), and memory_check's host memory.
DATA_LAYER_LOADS = {
    f"hgnn_ima_jax.{m}"
    for m in (
        "graph",
        "graph_checks",
        "choices",
        "config_values",
        "field_usage",
        "config_paths",
        "config_validation",
        "options",
        "cli_flags",
        "memory_check",
    )
} | {"hgnn_ima_jax"}


def imported_modules(path: pathlib.Path, package: str = "hgnn_ima_jax") -> set[str]:
  """Every module an `import` or `from ... import` anywhere in the file names (also inside functions);
  relative imports are resolved against `package`, the file's package."""
  out = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: inside the library package
        base = ".".join([package] + ([base] if base else []))
      out.add(base)
      out.update(f"{base}.{a.name}" for a in node.names)  # `from hgnn_ima_jax import data_utils`
  return out


def _top_level_statements(body):
  """The statements that run when the module loads: the body, and the branches of top-level if/try/with blocks,
  but not a function's or class's body, nor an `if TYPE_CHECKING:` block (no import runs there)."""
  for node in body:
    if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
      yield from _top_level_statements(node.orelse)
    elif isinstance(node, (ast.If, ast.Try, ast.With)):
      for field in ("body", "orelse", "finalbody"):
        yield from _top_level_statements(getattr(node, field, []))
      for handler in getattr(node, "handlers", []):
        yield from _top_level_statements(handler.body)
    else:
      yield node


def load_time_imports(path: pathlib.Path, package: str, known: set[str]) -> set[str]:
  """The `known` modules the file imports when it loads (`_top_level_statements`): `from p import m` counts as m
  where m is a module, else as p; relative imports are resolved against `package`, the file's package."""
  out = set()
  for node in _top_level_statements(ast.parse(path.read_text(), str(path)).body):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names if a.name in known)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join(parts + ([base] if base else []))
      for a in node.names:
        if f"{base}.{a.name}" in known:
          out.add(f"{base}.{a.name}")
        elif base in known:
          out.add(base)
  return out


def import_cycle(packages: dict[str, pathlib.Path]) -> list[str] | None:
  """A cycle of load-time imports among the modules of `packages` (package name -> its directory), or None."""
  files = {}
  for package, directory in packages.items():
    for f in sorted(directory.glob("*.py")):
      files[package if f.stem == "__init__" else f"{package}.{f.stem}"] = (f, package)
  known = set(files)
  graph = {m: sorted(load_time_imports(f, package, known) - {m}) for m, (f, package) in files.items()}
  done, path = set(), []

  def visit(m):
    if m in path:
      return path[path.index(m) :] + [m]
    if m in done:
      return None
    path.append(m)
    for n in graph[m]:
      cycle = visit(n)
      if cycle:
        return cycle
    path.pop()
    done.add(m)
    return None

  for m in sorted(graph):
    cycle = visit(m)
    if cycle:
      return cycle
  return None


def test_the_library_imports_neither_the_data_layer_nor_the_scripts():
  files = sorted(LIBRARY.glob("*.py"))
  assert len(files) > 10
  bad = {f.name: sorted(m for m in imported_modules(f) if m.startswith(ABOVE_THE_LIBRARY)) for f in files}
  assert not {k: v for k, v in bad.items() if v}, bad


def test_the_import_check_sees_a_lazy_import(tmp_path):
  f = tmp_path / "m.py"
  f.write_text("def f():\n  from hgnn_ima_jax import data_utils\n  from . import experiments\n")
  assert {"hgnn_ima_jax.data_utils", "hgnn_ima_jax.experiments"} <= imported_modules(f)


def test_the_data_layer_imports_only_the_graph_and_config_tables_from_the_library():
  # and memory_check, JAX-free at load: the synthetic generator refuses a graph larger than the available memory
  allowed = (
      "hgnn_ima_jax.graph",
      "hgnn_ima_jax.graph_checks",
      "hgnn_ima_jax.choices",
      "hgnn_ima_jax.config_values",
      "hgnn_ima_jax.field_usage",
      "hgnn_ima_jax.config_validation",
      "hgnn_ima_jax.cli_flags",
      "hgnn_ima_jax.memory_check",
  )
  for f in sorted((REPO / "data_utils").glob("*.py")):
    library = {
        m
        for m in imported_modules(f, "hgnn_ima_jax.data_utils")
        if m.startswith("hgnn_ima_jax.") and not m.startswith(ABOVE_THE_LIBRARY)
    }
    bad = sorted(m for m in library if not any(m == a or m.startswith(a + ".") for a in allowed))
    assert not bad, (f.name, bad)


def test_configs_and_scripts_import_without_jax():
  """The configs never need JAX; the scripts import it only after their flags are parsed (fast --help, and
  the allocator is chosen before JAX starts)."""
  scripts = ("train", "table2", "ablation", "depth_sweep", "visualize", "common", "outputs", "cell_runs", "run_options")
  code = (
      "import sys\n"
      "import hgnn_ima_jax.experiments.configs as c, hgnn_ima_jax.experiments.configs.default as d\n"
      "import hgnn_ima_jax.experiments.configs.test as t\n"
      + "".join(f"import hgnn_ima_jax.experiments.{m}\n" for m in scripts)
      + "c.get_config('douban', 'paper'); d.get_config(); t.get_config()\n"
      "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax', 'jraph', 'optax')))\n"
  )
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == "[]"


def test_no_module_imports_itself_back_when_it_loads():
  """A cycle of load-time imports (config_validation and options were one, each importing the other) works only in
  one import order and leaves half-initialised modules; the library, data layer and scripts have none."""
  assert import_cycle(PACKAGE_DIRS) is None


def test_the_cycle_check_sees_a_cycle(tmp_path):
  (tmp_path / "a.py").write_text("from pkg import b\n")
  (tmp_path / "b.py").write_text("import typing\nif typing.TYPE_CHECKING:\n  pass\nfrom . import c\n")
  (tmp_path / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n  from pkg import b\n")
  assert import_cycle({"pkg": tmp_path}) is None  # b -> c, and c's import of b never runs
  (tmp_path / "c.py").write_text(
      "def f():\n  from pkg import b\ntry:\n  from pkg.a import x\nexcept ImportError:\n  pass\n"
  )
  assert import_cycle({"pkg": tmp_path}) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


@pytest.mark.parametrize("leaf", LEAVES)
def test_the_config_tables_import_nothing_from_the_project(leaf):
  """choices.py, config_values.py and cli_flags.py are read by the data layer, the model, training and the scripts
  alike: an import of the project from them (even inside a function) would tie those layers together again."""
  project = sorted(
      m for m in imported_modules(LIBRARY / leaf) if m.split(".")[0] in ("hgnn_ima_jax", "data_utils", "experiments")
  )
  assert not project, (leaf, project)


def test_the_data_layer_loads_no_model_or_training_module():
  """Importing every data_utils module loads only the graph and the JAX-free config modules from the library, and
  no JAX: the data layer stays usable (and its commands fast) without the model."""
  code = (
      "import importlib, pathlib, sys\n"
      "for f in sorted(pathlib.Path('data_utils').glob('*.py')):\n"
      "  importlib.import_module('hgnn_ima_jax.data_utils' + ('' if f.stem == '__init__' else '.' + f.stem))\n"
      "print(sorted(m for m in sys.modules\n"
      "             if m.startswith('hgnn_ima_jax') and not m.startswith('hgnn_ima_jax.data_utils')))\n"
      "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax', 'jraph', 'optax')))\n"
  )
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  library, jax_modules = (ast.literal_eval(line) for line in out.stdout.strip().splitlines())
  assert set(library) <= DATA_LAYER_LOADS, sorted(set(library) - DATA_LAYER_LOADS)
  assert "hgnn_ima_jax.graph" in library  # the check ran
  assert jax_modules == []
