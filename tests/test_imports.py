"""The package's layering, read from the source: the library never imports the data layer or the
scripts, and the configs load without JAX."""

import ast
import pathlib
import subprocess
import sys

from conftest import REPO

LIBRARY = REPO / "hgnn_ima_jax"
ABOVE_THE_LIBRARY = ("hgnn_ima_jax.data_utils", "hgnn_ima_jax.experiments")


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
  allowed = (
      "hgnn_ima_jax.graph",
      "hgnn_ima_jax.graph_checks",
      "hgnn_ima_jax.choices",
      "hgnn_ima_jax.config_values",
      "hgnn_ima_jax.field_usage",
      "hgnn_ima_jax.config_validation",
      "hgnn_ima_jax.cli_flags",
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
