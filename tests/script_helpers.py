"""Running this checkout's scripts and snippets in a subprocess, for the tests that check them end to end."""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_python(*args, timeout: float) -> subprocess.CompletedProcess:
  """`python ARGS` in the repository root (the scripts' relative paths start there), output captured as text."""
  return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


# experiments/train.py on a tiny synthetic graph and model: the flags the CLI tests share.
TINY_CLI = [
    "--noprogress",
    "--config.synthetic.scale=0.1",
    "--config.model.hidden=8",
    "--config.model.heads=2",
    "--config.model.num_layers=2",
    "--seeds=1",
    "--epochs=2",
]
