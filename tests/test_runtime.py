"""hgnn_ima_jax.runtime: the allocator the command-line scripts re-execute themselves with."""

import ctypes
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from hgnn_ima_jax import runtime

REEXEC = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {repo!r})
    print("pid", os.getpid(), "argv", sys.argv[1:], "active", os.environ.get("HGNN_IMA_ALLOCATOR_ACTIVE"), flush=True)
    from hgnn_ima_jax.runtime import reexec_with_fast_allocator
    reexec_with_fast_allocator()
    print("after", os.getpid(), os.environ.get("LD_PRELOAD", ""), os.environ.get("GLIBC_TUNABLES", ""),
          os.environ.get("MALLOC_CONF", ""), "jax" in sys.modules, flush=True)
""")


def _run(tmp_path, env_extra, *args):
  script = tmp_path / "script.py"
  script.write_text(REEXEC.format(repo=str(runtime.__file__).rsplit("/hgnn_ima_jax/", 1)[0]))
  env = {k: v for k, v in os.environ.items() if not k.startswith("HGNN_IMA_ALLOCATOR")}
  env.update(env_extra)
  out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=120)
  assert out.returncode == 0, out.stderr
  return out.stdout.splitlines()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD/GLIBC_TUNABLES are Linux settings")
def test_reexec_keeps_pid_and_arguments_and_applies_the_allocator(tmp_path):
  lines = _run(tmp_path, {"MALLOC_CONF": ""}, "--flag=1", "x y")
  first, second, after = lines
  assert first.startswith("pid ") and "'--flag=1', 'x y'" in first and first.endswith("active None")
  pid = first.split()[1]
  assert second.split()[1] == pid  # os.execve: same process
  assert "'--flag=1', 'x y'" in second and "active " in second and not second.endswith("active None")
  fields = after.split(" ")
  assert fields[1] == pid
  lib = runtime.find_jemalloc()
  if lib:
    assert lib in after and runtime.JEMALLOC_CONF in after and "oversize_threshold:0" in after
  else:
    assert "glibc.malloc.hugetlb=1" in after
  assert fields[-1] == "False"  # decided before JAX was imported


def test_system_choice_changes_nothing(tmp_path):
  lines = _run(tmp_path, {"HGNN_IMA_ALLOCATOR": "system", "LD_PRELOAD": "", "GLIBC_TUNABLES": "", "MALLOC_CONF": ""})
  assert len(lines) == 2  # no second start
  assert lines[1].split(" ")[2:5] == ["", "", ""]


def test_a_bad_allocator_choice_is_one_error_line_from_a_script(tmp_path):
  """From an audit: HGNN_IMA_ALLOCATOR=bogus was a traceback from every script's first line."""
  script = tmp_path / "script.py"
  script.write_text(REEXEC.format(repo=str(runtime.__file__).rsplit("/hgnn_ima_jax/", 1)[0]))
  env = {k: v for k, v in os.environ.items() if not k.startswith("HGNN_IMA_ALLOCATOR")}
  out = subprocess.run(
      [sys.executable, str(script)],
      capture_output=True,
      text=True,
      env={**env, "HGNN_IMA_ALLOCATOR": "bogus"},
      timeout=120,
  )
  assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
  assert out.stderr.strip() == (
      "error: HGNN_IMA_ALLOCATOR='bogus': not an allocator choice. Fix: set it to one of auto, jemalloc, glibc-thp, "
      "system, or unset it"
  )


def test_allocator_env_choices(monkeypatch, tmp_path):
  monkeypatch.setattr(sys, "platform", "linux")
  monkeypatch.setenv("HGNN_IMA_JEMALLOC", str(tmp_path / "missing.so"))
  monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  desc, env = runtime.allocator_env("auto")  # jemalloc absent: glibc's huge-page tunable
  assert env == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"} and "glibc" in desc
  with pytest.raises(ValueError, match="apt-get install libjemalloc2"):
    runtime.allocator_env("jemalloc")
  fake = tmp_path / "libjemalloc.so.2"
  fake.write_bytes(b"")
  monkeypatch.setenv("HGNN_IMA_JEMALLOC", str(fake))
  monkeypatch.setenv("LD_PRELOAD", "/other.so")
  monkeypatch.delenv("MALLOC_CONF", raising=False)
  desc, env = runtime.allocator_env("jemalloc")
  assert env["LD_PRELOAD"] == f"{fake} /other.so" and env["MALLOC_CONF"] == runtime.JEMALLOC_CONF
  monkeypatch.setenv("MALLOC_CONF", "dirty_decay_ms:-1")  # the user's own setting wins
  assert runtime.allocator_env("jemalloc")[1]["MALLOC_CONF"] == "dirty_decay_ms:-1"
  assert runtime.allocator_env("system") == ("system", {})
  with pytest.raises(ValueError, match="HGNN_IMA_ALLOCATOR='tcmalloc'"):
    runtime.allocator_env("tcmalloc")


RELEASE = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from hgnn_ima_jax import runtime
    runtime.reexec_with_fast_allocator()
    import numpy as np
    rss = lambda: [int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("VmRSS")][0]
    before = rss()
    a = np.ones(64 * 2**20)  # 512 MiB, written
    del a
    kept = rss()
    how = runtime.release_free_memory()
    print(runtime.active_allocator(), "|", before, kept, rss(), how)
""")


def _run_allocator_script(tmp_path, template: str, env_extra: dict, *args):
  """`template` run as a script that re-executes itself with the default allocator (no MALLOC_CONF of the caller's)."""
  script = tmp_path / "allocator_script.py"
  script.write_text(template.format(repo=str(runtime.__file__).rsplit("/hgnn_ima_jax/", 1)[0]))
  env = {k: v for k, v in os.environ.items() if not k.startswith("HGNN_IMA_ALLOCATOR") and k != "MALLOC_CONF"}
  env.update(env_extra)
  out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=120)
  assert out.returncode == 0, out.stderr
  return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_freed_memory_is_kept_for_reuse_and_released_on_request(tmp_path):
  out = _run_allocator_script(tmp_path, RELEASE, {})
  allocator, numbers = out.stdout.strip().rsplit("|", 1)
  before, kept, released, how = numbers.split(maxsplit=3)
  before, kept, released = int(before), int(kept), int(released)
  if allocator.startswith("jemalloc"):
    assert kept >= before + 400, out.stdout  # the freed 512 MiB stay mapped for the next step
    assert how == "jemalloc purge"
  else:
    assert how in ("malloc_trim", "none")
  assert released <= before + 100, out.stdout  # and go back to the kernel on request


DECAY = textwrap.dedent("""
    import ctypes, sys
    sys.path.insert(0, {repo!r})
    from hgnn_ima_jax import runtime
    runtime.reexec_with_fast_allocator()
    import numpy as np
    rss = lambda: [int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("VmRSS")][0]
    def read(name):
      m, v = runtime._mallctl(), ctypes.c_ssize_t(0)
      size = ctypes.c_size_t(ctypes.sizeof(v))
      return v.value if m(name.encode(), ctypes.addressof(v), ctypes.addressof(size), None, 0) == 0 else None
    before = rss()
    applied = runtime.decay_freed_memory(int(sys.argv[1]))
    a = np.ones(64 * 2**20)  # 512 MiB, written, then freed
    del a
    decays = [read("arena.0.dirty_decay_ms"), read("arenas.muzzy_decay_ms")] if runtime._mallctl() else []
    print(runtime.active_allocator(), "|", applied, before, rss(), *decays)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("user_conf", [False, True])
def test_decay_lets_freed_memory_go_back_unless_the_user_chose_malloc_conf(tmp_path, user_conf):
  """decay_freed_memory (mini-batch training) sets jemalloc's decay under our JEMALLOC_CONF: with 0 ms a freed
  512 MiB buffer leaves the RSS at once. A MALLOC_CONF of the user's own is left alone."""
  user = {"MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"} if user_conf else {}
  out = _run_allocator_script(tmp_path, DECAY, user, "0")
  allocator, fields = out.stdout.strip().rsplit("|", 1)
  applied, before, after, *decays = fields.split()
  if not allocator.startswith("jemalloc"):
    assert applied == "False" and decays == []  # glibc hands large blocks back by itself
    return
  if user_conf:
    assert applied == "False" and decays == ["-1", "-1"]
  else:
    assert applied == "True" and decays == ["0", "0"]
    assert int(after) <= int(before) + 100, out.stdout  # without the decay the 512 MiB stay (test above)


def _mallctl_refusing(prefix: str):
  """A stand-in for jemalloc's mallctl with one arena that refuses (EFAULT) every name starting with `prefix`."""

  def mallctl(name, oldp, oldlenp, newp, newlen):
    if name.decode().startswith(prefix):
      return 14
    if name == b"arenas.narenas":
      ctypes.c_uint.from_address(oldp).value = 1
    return 0

  return mallctl


@pytest.mark.parametrize(
    "prefix, named",
    [("arenas.narenas", "arenas.narenas"), ("arenas.dirty", "arenas.dirty_decay_ms"), ("arena.0.", "arena.<i>.*")],
)
def test_a_refused_decay_is_a_warning_with_the_malloc_conf_that_would_set_it(monkeypatch, caplog, prefix, named):
  """Under our JEMALLOC_CONF a decay jemalloc refuses is logged, naming the mallctl and the fix, not a silent no-op."""
  monkeypatch.setenv("MALLOC_CONF", runtime.JEMALLOC_CONF)
  monkeypatch.setattr(runtime, "_mallctl", lambda: _mallctl_refusing(prefix))
  with caplog.at_level(logging.WARNING):
    assert runtime.decay_freed_memory(10_000) is False
  (msg,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
  assert f"mallctl {named})" in msg
  assert "MALLOC_CONF=narenas:1," in msg and "dirty_decay_ms:10000,muzzy_decay_ms:10000" in msg


def test_a_decay_jemalloc_takes_is_not_logged(monkeypatch, caplog):
  monkeypatch.setenv("MALLOC_CONF", runtime.JEMALLOC_CONF)
  monkeypatch.setattr(runtime, "_mallctl", lambda: _mallctl_refusing("nothing"))
  with caplog.at_level(logging.WARNING):
    assert runtime.decay_freed_memory(10_000) is True
  assert not [r for r in caplog.records if "refused" in r.getMessage()]
