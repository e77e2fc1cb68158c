"""Process settings that make JAX fast on CPU: a memory allocator that keeps freed memory.

Why: XLA:CPU allocates an executable's temporary buffers (most of a training step's memory)
afresh on every call. glibc's malloc hands every large block back to the kernel when it is
freed, so each step page-faults its whole working set in again and the kernel zeroes every page.
jemalloc can keep freed pages and hand them to the next step, but only with the right settings
(`JEMALLOC_CONF`; the measurements behind each one are in benchmarks/README.md, *Allocator*):

* `oversize_threshold:0` — jemalloc serves blocks above its oversize threshold (every big XLA
  buffer) from a dedicated arena that returns freed pages to the kernel at once, whatever
  `dirty_decay_ms` says. Off, big blocks live in the normal arenas.
* `narenas:1` — with jemalloc's several arenas (threads spread over them), a buffer freed by
  one XLA thread is not re-used by an allocation from another thread's arena, and the heap grew
  far past the working set.
* `dirty_decay_ms:-1` — freed pages are never handed back by time: with any finite decay (even
  an hour) this jemalloc (5.3) still purged the step's whole working set every step. The
  working set of a training loop is the same every step, so the heap stays at its peak with no
  page faults. A process that runs several programs (a benchmark, a notebook) hands memory back
  with `release_free_memory()`.
* `thp:always` — huge pages for the heap (fewer TLB misses).

The cost is memory in processes that run several programs: the heap does not always fit a
step's buffers into the gaps earlier programs left, and can peak well above XLA's temp buffers.
Mini-batch training (a program per rung) therefore switches to a 10 s decay when it starts
(`decay_freed_memory`). Where memory is the limit elsewhere, set
MALLOC_CONF=dirty_decay_ms:10000,muzzy_decay_ms:10000,thp:always.

The allocator has to be in place when the process starts (LD_PRELOAD, GLIBC_TUNABLES), so the
command-line scripts call `reexec_with_fast_allocator()` before importing JAX: the script
re-executes itself once, same PID, same arguments, with the settings added. Set
HGNN_IMA_ALLOCATOR=system to opt out, =jemalloc to require jemalloc (an error if absent), or
point HGNN_IMA_JEMALLOC at a libjemalloc.so; MALLOC_CONF, when set, replaces `JEMALLOC_CONF`.
Without jemalloc, glibc's transparent-huge-page tunable cuts the fault count (each fault
zeroes 2 MiB), a smaller gain. In a notebook, start Jupyter with the variables that
`allocator_env()` returns.
"""

from __future__ import annotations

import ctypes
import gc
import glob
import os
import sys

from absl import logging

ENV_CHOICE = "HGNN_IMA_ALLOCATOR"  # auto (default) | jemalloc | glibc-thp | system
ENV_LIBRARY = "HGNN_IMA_JEMALLOC"  # explicit path to libjemalloc.so
ENV_ACTIVE = "HGNN_IMA_ALLOCATOR_ACTIVE"  # set on re-execution: what was applied
CHOICES = ("auto", "jemalloc", "glibc-thp", "system")
JEMALLOC_CONF = "narenas:1,oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1,thp:always,metadata_thp:auto"  # $MALLOC_CONF wins
_JEMALLOC_GLOBS = (
    "/usr/lib/*-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so",
)


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
    raise ValueError(
        f"{ENV_CHOICE}={choice!r}: not an allocator choice. Fix: set it to one of {', '.join(CHOICES)}, or unset it"
    )
  if choice == "system" or not sys.platform.startswith("linux"):
    return "system", {}
  if choice in ("auto", "jemalloc"):
    lib = find_jemalloc()
    if lib:
      preload = " ".join(p for p in (lib, os.environ.get("LD_PRELOAD", "")) if p)
      return f"jemalloc ({lib})", {"LD_PRELOAD": preload, "MALLOC_CONF": os.environ.get("MALLOC_CONF") or JEMALLOC_CONF}
    if choice == "jemalloc":
      raise ValueError(
          f"{ENV_CHOICE}=jemalloc but no libjemalloc.so.2 was found. Fix: install it "
          f"(Debian/Ubuntu: apt-get install libjemalloc2), set {ENV_LIBRARY}=/path/to/libjemalloc.so, or unset {ENV_CHOICE}"
      )
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
  wait for or signal it. `argv` replaces the arguments after the interpreter's. A bad $HGNN_IMA_ALLOCATOR (or
  a required jemalloc that is absent) is one `error:` line on stderr and exit status 2, as the scripts' other
  input errors.
  """
  if ENV_ACTIVE in os.environ:
    return  # already re-executed (or the user applied the settings and set the marker)
  try:
    description, extra = allocator_env()
  except ValueError as e:  # a bad $HGNN_IMA_ALLOCATOR: the scripts' one error line, before anything runs
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  env = dict(os.environ, **extra, **{ENV_ACTIVE: description})
  if not extra:
    os.environ[ENV_ACTIVE] = description
    return
  args = [sys.executable, *(sys.orig_argv[1:] if argv is None else argv)]
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, args, env)


_MALLCTL_ARENAS_ALL = 4096  # jemalloc's MALLCTL_ARENAS_ALL: "every arena" in a mallctl name


MINIBATCH_DECAY_MS = 10_000  # freed pages unused this long go back to the kernel (mini-batch training)


def _mallctl():
  """jemalloc's `mallctl` when jemalloc is preloaded, else None."""
  mallctl = getattr(ctypes.CDLL(None), "mallctl", None)
  if mallctl is not None:
    mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
  return mallctl


def decay_freed_memory(ms: int = MINIBATCH_DECAY_MS) -> bool:
  """Lets jemalloc hand freed pages back after `ms` of disuse, in a process running `JEMALLOC_CONF` (which never does).

  For processes that run several programs of different sizes over and over: mini-batch training (one
  step program per rung, layer-wise evaluation). Kept forever, the freed buffers of one program are not
  always where the next one's fit, and the heap grows past the working set; a 10 s decay keeps the peak
  far lower for a slightly slower epoch (benchmarks/README.md, *`synthetic10m` end to end*). Returns
  whether the decay was set: not when jemalloc is absent (glibc hands large blocks back by itself) or
  when the user chose MALLOC_CONF (theirs is kept); when jemalloc refuses the setting it also logs a
  warning with the MALLOC_CONF that would do it.
  """
  if os.environ.get("MALLOC_CONF") != JEMALLOC_CONF:
    return False
  mallctl = _mallctl()
  if mallctl is None:
    return False
  narenas, size = ctypes.c_uint(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_uint))
  if mallctl(b"arenas.narenas", ctypes.addressof(narenas), ctypes.addressof(size), None, 0) != 0:
    return _decay_refused(ms, "arenas.narenas")
  value = ctypes.c_ssize_t(int(ms))
  names = [f"arenas.{k}_decay_ms" for k in ("dirty", "muzzy")]  # arenas made later
  names += [f"arena.{i}.{k}_decay_ms" for i in range(narenas.value) for k in ("dirty", "muzzy")]
  # An arena index that was never initialised answers EFAULT; the others must take the value.
  done = [mallctl(n.encode(), None, None, ctypes.addressof(value), ctypes.sizeof(value)) == 0 for n in names]
  if all(done[:2]) and any(done[2:]):
    return True
  return _decay_refused(ms, ", ".join([n for n, ok in zip(names[:2], done[:2]) if not ok] or ["arena.<i>.*"]))


def _decay_refused(ms: int, what: str) -> bool:
  """Results do not change, memory does: says so rather than keep the never-purged heap silently."""
  conf = JEMALLOC_CONF.replace("decay_ms:-1", f"decay_ms:{ms}")
  logging.warning(
      "jemalloc refused the %d ms decay (mallctl %s): freed memory stays in the heap, which can grow past "
      "the working set; to hand it back, run with MALLOC_CONF=%s",
      ms,
      what,
      conf,
  )
  return False


def release_free_memory() -> str:
  """Hands the allocator's freed-but-kept pages back to the kernel; says how ('none' if it could not).

  Under `JEMALLOC_CONF` jemalloc never does this by itself (so that a training loop re-uses its
  pages); a process that moves on to another program — the next (graph, model) of a
  benchmark, the next cell of a notebook — calls this. Python's garbage is collected first, so
  that arrays no longer referenced are freed; live data are untouched.
  """
  gc.collect()
  libc = ctypes.CDLL(None)
  mallctl = _mallctl()
  if mallctl is not None:
    if mallctl(f"arena.{_MALLCTL_ARENAS_ALL}.purge".encode(), None, None, None, 0) == 0:
      return "jemalloc purge"
  trim = getattr(libc, "malloc_trim", None)  # glibc
  if trim is not None:
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return "malloc_trim"
  return "none"
