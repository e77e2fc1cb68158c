"""Process settings that make JAX fast on CPU: a memory allocator that keeps freed memory.

Why: XLA:CPU allocates an executable's temporary buffers (hundreds of MB for a training step
on AMAZON, GBs at AMAZON-1 scale) afresh on every call. glibc's malloc hands every block above
32 MiB back to the kernel when it is freed, so each step page-faults its whole working set in
again and the kernel zeroes every page: measured on AMAZON (benchmarks/README.md), 0.4 million
page faults and 1.3 s of kernel time per step. jemalloc keeps freed pages for a while
(`dirty_decay_ms`) and hands them to the next step. Keeping them for ever (`-1`) is faster
still but costs memory: on AMAZON with 5 vmapped seeds (XLA temp buffers 6.7 GB) the peak RSS
was 17.4 GB with `-1` and 7.7 GB with 10 s, step 5.2 s vs 8.3 s (benchmarks/README.md); and a
benchmark process holding PyG and JAX models was OOM-killed at 24 GB with `-1`. So the default
keeps freed memory for 10 s; set MALLOC_CONF yourself (e.g. `dirty_decay_ms:-1,...`) to trade
memory for speed. Without jemalloc, glibc's transparent-huge-page tunable cuts the fault count
250x (each fault zeroes 2 MiB), a smaller gain.

The allocator has to be in place when the process starts (LD_PRELOAD, GLIBC_TUNABLES), so the
command-line scripts call `reexec_with_fast_allocator()` before importing JAX: the script
re-executes itself once, same PID, same arguments, with the settings added. Set
HGNN_IMA_ALLOCATOR=system to opt out, =jemalloc to require jemalloc (an error if absent), or
point HGNN_IMA_JEMALLOC at a libjemalloc.so. In a notebook, start Jupyter with the variables
that `allocator_env()` returns.
"""

from __future__ import annotations

import glob
import os
import sys

ENV_CHOICE = "HGNN_IMA_ALLOCATOR"  # auto (default) | jemalloc | glibc-thp | system
ENV_LIBRARY = "HGNN_IMA_JEMALLOC"  # explicit path to libjemalloc.so
ENV_ACTIVE = "HGNN_IMA_ALLOCATOR_ACTIVE"  # set on re-execution: what was applied
CHOICES = ("auto", "jemalloc", "glibc-thp", "system")
JEMALLOC_CONF = "dirty_decay_ms:10000,muzzy_decay_ms:10000,thp:always,metadata_thp:auto"  # $MALLOC_CONF wins
_JEMALLOC_GLOBS = ("/usr/lib/*-linux-gnu/libjemalloc.so.2", "/usr/lib64/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2",
                   "/usr/local/lib/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so")


def find_jemalloc() -> str | None:
  """Path of a jemalloc shared library: $HGNN_IMA_JEMALLOC, else the usual system locations."""
  explicit = os.environ.get(ENV_LIBRARY)
  if explicit:
    return explicit if os.path.isfile(explicit) else None
  for pattern in _JEMALLOC_GLOBS:
    hits = sorted(glob.glob(pattern))
    if hits:
      return hits[0]
  return None


def allocator_env(choice: str | None = None) -> tuple[str, dict[str, str]]:
  """(description, environment variables to add) for `choice` (default: $HGNN_IMA_ALLOCATOR or auto).

  'auto' takes jemalloc when it is installed, else glibc's huge-page tunable; 'system'
  changes nothing. Raises ValueError for an unknown choice or a required jemalloc that is
  not installed.
  """
  choice = (choice or os.environ.get(ENV_CHOICE) or "auto").strip().lower()
  if choice not in CHOICES:
    raise ValueError(f"{ENV_CHOICE}={choice!r}: choose one of {', '.join(CHOICES)}")
  if choice == "system" or not sys.platform.startswith("linux"):
    return "system", {}
  if choice in ("auto", "jemalloc"):
    lib = find_jemalloc()
    if lib:
      preload = " ".join(p for p in (lib, os.environ.get("LD_PRELOAD", "")) if p)
      return f"jemalloc ({lib})", {"LD_PRELOAD": preload, "MALLOC_CONF": os.environ.get("MALLOC_CONF") or JEMALLOC_CONF}
    if choice == "jemalloc":
      raise ValueError(f"{ENV_CHOICE}=jemalloc but no libjemalloc.so.2 was found; install it "
                       f"(Debian/Ubuntu: apt-get install libjemalloc2) or set {ENV_LIBRARY}=/path/to/libjemalloc.so")
  tunables = ":".join(t for t in (os.environ.get("GLIBC_TUNABLES", ""), "glibc.malloc.hugetlb=1") if t)
  return "glibc malloc with transparent huge pages", {"GLIBC_TUNABLES": tunables}


def active_allocator() -> str:
  """What `reexec_with_fast_allocator` applied to this process ('system' when nothing)."""
  return os.environ.get(ENV_ACTIVE, "system")


def reexec_with_fast_allocator(argv: list[str] | None = None) -> None:
  """Re-executes this Python process once with `allocator_env()` applied; returns if nothing to do.

  Call it first thing in a script's main module, before JAX is imported. The new process
  has the same PID (os.execve), interpreter, interpreter options and arguments
  (`sys.orig_argv`, so `python -m pkg.mod` works too), so it is invisible to callers that
  wait for or signal it. `argv` replaces the arguments after the interpreter's.
  """
  if ENV_ACTIVE in os.environ:
    return  # already re-executed (or the user applied the settings and set the marker)
  description, extra = allocator_env()
  env = dict(os.environ, **extra, **{ENV_ACTIVE: description})
  if not extra:
    os.environ[ENV_ACTIVE] = description
    return
  args = [sys.executable, *(sys.orig_argv[1:] if argv is None else argv)]
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, args, env)
