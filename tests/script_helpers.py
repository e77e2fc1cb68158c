"""Running this checkout's scripts and snippets in a subprocess, for the tests that check them end to end."""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_python(*args, timeout: float) -> subprocess.CompletedProcess:
  """`python ARGS` in the repository root (the scripts' relative paths start there), output captured as text."""
  return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
