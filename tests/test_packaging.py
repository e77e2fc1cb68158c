"""`pip install .` and `pip install -e .` give one package, hgnn_ima_jax, usable outside the repository.

Fast and offline: a fresh venv in a temporary directory sees this interpreter's site-packages
through a .pth file (JAX and the other dependencies are not installed again: --no-deps), and the
package is built without build isolation when setuptools and wheel are importable here (the test
extra installs wheel); otherwise pip builds it in isolation, fetching only setuptools and wheel.
"""

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TRAIN = [
    "--seeds=1",
    "--epochs=2",
    "--config.model.hidden=16",
    "--config.model.heads=2",
    "--config.model.num_layers=1",
    "--config.synthetic.scale=0.1",
    "--noprogress",
]


def clean_copy(dest: pathlib.Path) -> pathlib.Path:
  """The repository's tracked and untracked-but-not-ignored files, as a fresh clone would have them."""
  files = (
      subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True)
      .stdout.decode()
      .split("\0")
  )
  for f in filter(None, files):
    if (REPO / f).is_file():
      (dest / f).parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(REPO / f, dest / f)
  return dest


def fresh_venv(path: pathlib.Path) -> pathlib.Path:
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
  py = path / "bin" / "python"
  site = subprocess.run(
      [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
      capture_output=True,
      text=True,
      check=True,
  ).stdout.strip()
  (pathlib.Path(site) / "_outer_site_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
  return py


def env_outside_the_repo() -> dict:
  env = dict(os.environ)
  env.pop("PYTHONPATH", None)  # conftest puts the checkout there; here only the installed copy may be found
  return env


def pip_install(py: pathlib.Path, *args, cwd):
  offline = all(importlib.util.find_spec(m) for m in ("setuptools", "wheel"))  # the venv sees them through the .pth
  cmd = [
      sys.executable,
      "-m",
      "pip",
      "--python",
      str(py),
      "install",
      "-q",
      "--no-deps",
      *(["--no-build-isolation"] if offline else []),
      *args,
  ]
  proc = subprocess.run(cmd, cwd=cwd, env=env_outside_the_repo(), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """(venv python, a directory outside any checkout) after `pip install <clean copy>`."""
  root = tmp_path_factory.mktemp("pkg")
  src = clean_copy(root / "src")
  py = fresh_venv(root / "venv")
  pip_install(py, ".", cwd=src)
  shutil.rmtree(src)  # the installed copy must not need its source
  elsewhere = root / "elsewhere"
  elsewhere.mkdir()
  return py, elsewhere


def run_in(py, cwd, *args, timeout=300):
  return subprocess.run(
      [str(py), *args], cwd=cwd, env=env_outside_the_repo(), capture_output=True, text=True, timeout=timeout
  )


def test_installed_package_trains_and_restores_outside_the_repo(installed):
  py, elsewhere = installed
  train = elsewhere.parent / "venv" / "bin" / "hgnn-ima-train"  # the console script
  proc = subprocess.run(
      [str(train), "--workdir=myrun", *TRAIN],
      cwd=elsewhere,
      env=env_outside_the_repo(),
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  notebook = elsewhere / "notebook"
  notebook.mkdir()
  code = (
      "import hgnn_ima_jax, hgnn_ima_jax.data_utils, hgnn_ima_jax.experiments, importlib.util\n"
      "from hgnn_ima_jax.experiments.runs import load_run\n"
      "run = load_run('../myrun')\n"
      "print(hgnn_ima_jax.__file__, hgnn_ima_jax.data_utils.__file__, hgnn_ima_jax.experiments.__file__)\n"
      "n = run.data.num_nodes[run.data.target_type]\n"
      "print(run.predict(0).shape == (n,), run.embed(0)['fused'].shape == (n, 16), run.seeds)\n"
      "print([importlib.util.find_spec(m) is None for m in ('data_utils', 'experiments')])\n"
  )
  out = run_in(py, notebook, "-c", code)
  assert out.returncode == 0, out.stderr[-4000:]
  paths, shapes, generic = out.stdout.strip().splitlines()
  venv = str(elsewhere.parent / "venv")
  assert all(p.startswith(venv) for p in paths.split()), paths  # the installed copy, not a checkout
  assert shapes == "True True [0]", shapes
  assert generic == "[True, True]"  # no generic top-level names in site-packages


def test_installed_cli_modules(installed):
  py, elsewhere = installed
  check = run_in(py, elsewhere, "-m", "hgnn_ima_jax.data_utils.check", "--dataset=synthetic")
  assert check.returncode == 0 and "movie (target)" in check.stdout, check.stderr[-2000:]
  helped = run_in(py, elsewhere, "-m", "hgnn_ima_jax.experiments.table2", "--help")
  assert helped.returncode == 0 and "--[no]tiny" in helped.stdout


def test_editable_install_maps_the_sub_packages(tmp_path):
  src = clean_copy(tmp_path / "src")
  py = fresh_venv(tmp_path / "venv")
  pip_install(py, "-e", ".", cwd=src)
  (tmp_path / "elsewhere").mkdir()
  out = run_in(
      py,
      tmp_path / "elsewhere",
      "-c",
      "import hgnn_ima_jax.experiments.configs as c, "
      "hgnn_ima_jax.data_utils.synthetic as s; print(c.__file__); print(s.__file__)",
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.split() == [
      str(src / "experiments" / "configs" / "__init__.py"),
      str(src / "data_utils" / "synthetic.py"),
  ]
