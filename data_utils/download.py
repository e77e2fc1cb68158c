r"""Downloads the files MHGAT publishes on GitHub, checked against their sha256 sums.

  python -m hgnn_ima_jax.data_utils.download --dataset=douban --data_dir=data
  python -m hgnn_ima_jax.data_utils.download --dataset=all --data_dir=data --base_url=http://mirror/MHGAT

Files go to `<data_dir>/<dataset>/<file>` from `<base_url>/<dataset>/<file>`
(default base: raw.githubusercontent.com/jiaxiangen/MHGAT/main; override with
--base_url or $HGNN_IMA_DOWNLOAD_BASE). Each download

* is skipped when the file is already there with the right sum;
* streams into `<file>.part` and resumes it with an HTTP Range request (a server
  that ignores Range and answers 200 restarts the file cleanly);
* is checked against the sha256 sum before `os.replace` moves it into place, so a
  final file is always complete; on a mismatch the `.part` is deleted.

The feature files that are not on GitHub (DOUBAN's, AMAZON's and every image; IMDB's text
features are on GitHub and downloaded) are not attempted: one line per dataset names those
still absent, and they go next to the downloaded files.

Exit codes: 0 every published file is present and verified; 1 bad command line;
2 a download failed (one line per dataset on stderr).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pathlib
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable

from absl import flags

from hgnn_ima_jax.graph import DatasetError

from . import default_data_dir
from .check import run_cli
from .paper_datasets import AUTHORS_PAGE, PAPER_DATASETS

DEFAULT_BASE_URL = "https://raw.githubusercontent.com/jiaxiangen/MHGAT/main"
BASE_URL_ENV = "HGNN_IMA_DOWNLOAD_BASE"
_CHUNK = 1 << 16


def base_url(override: str | None = None) -> str:
  """The URL base: the argument, else $HGNN_IMA_DOWNLOAD_BASE, else MHGAT on GitHub; checked before any fetch.

  Raises:
    DatasetError: not an http(s):// or file:// URL (urllib's own error named neither the flag nor the fix).
  """
  url = (override or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
  parts = urllib.parse.urlsplit(url)
  if not (parts.scheme in ("http", "https") and parts.netloc or parts.scheme == "file"):
    given = "--base_url" if override else f"${BASE_URL_ENV}"
    raise DatasetError(
        url, given, "is not an http://, https:// or file:// URL", f"give a URL base such as {DEFAULT_BASE_URL}"
    )
  return url


def check_target_dir(path) -> None:
  """`path` is, or can be made as, a directory this process may write; else one `DatasetError` line.

  Checked before the first fetch, without creating anything: pathlib's own errors came after the first
  request, and a path below a file or a read-only place left nothing useful behind.
  """
  path = pathlib.Path(path).absolute()
  existing = next(p for p in (path, *path.parents) if p.exists())
  if not existing.is_dir():
    where = "is a file" if existing == path else f"is below the file {existing}"
    raise DatasetError(str(path), "data_dir", where, "give a directory (it is made if it does not exist)")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise DatasetError(str(path), "data_dir", f"{existing} is not writable", "give a directory you can write to")


def sha256_of(path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as fh:
    for block in iter(lambda: fh.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def fetch(url: str, dest, sha256: str, *, timeout: float = 60.0, log: Callable[[str], None] = print) -> str:
  """Downloads `url` to `dest` unless it is there with `sha256`; returns what happened.

  Returns:
    'present' (already there, sum right), 'downloaded' or 'resumed'.

  Raises:
    DatasetError: HTTP/network failure (a partial `.part` is kept for resuming) or a
      sha256 mismatch (the `.part` is deleted; no final file is written).
  """
  dest = pathlib.Path(dest)
  if dest.is_file():
    if sha256_of(dest) == sha256:
      return "present"
    log(f"{dest}: sha256 differs from the published sum; downloading it again")
  dest.parent.mkdir(parents=True, exist_ok=True)
  part = dest.with_name(dest.name + ".part")
  resumed = _stream(url, part, timeout, log)
  got = sha256_of(part)
  if got != sha256 and resumed:
    # The kept prefix may be stale (the file changed on the server): one clean retry.
    log(f"{dest.name}: sha256 mismatch after resuming; downloading it again from the start")
    part.unlink()
    resumed = _stream(url, part, timeout, log)
    got = sha256_of(part)
  if got != sha256:
    part.unlink()
    raise DatasetError(
        url,
        dest.name,
        f"sha256 {got} does not match the published {sha256}; nothing was written",
        "check --base_url (or $HGNN_IMA_DOWNLOAD_BASE) points at the MHGAT files, then run again",
    )
  os.replace(part, dest)
  return "resumed" if resumed else "downloaded"


def _stream(url: str, part: pathlib.Path, timeout: float, log) -> bool:
  """Writes the body of `url` into `part`, continuing an existing `part` if the server allows; True if resumed."""
  name = part.name.removesuffix(".part")
  offset = part.stat().st_size if part.exists() else 0
  request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
  try:
    response = urllib.request.urlopen(request, timeout=timeout)
  except urllib.error.HTTPError as err:
    if err.code == 416 and offset:  # the .part is as long as (or longer than) the file: start over
      part.unlink()
      return _stream(url, part, timeout, log)
    raise DatasetError(
        url,
        name,
        f"HTTP {err.code} {err.reason}",
        "check the URL base (--base_url or $HGNN_IMA_DOWNLOAD_BASE) and that the file is published there",
    ) from err
  except (urllib.error.URLError, OSError) as err:
    raise DatasetError(
        url,
        name,
        f"cannot connect ({getattr(err, 'reason', err)})",
        "check the network and the URL base (--base_url or $HGNN_IMA_DOWNLOAD_BASE), then run again",
    ) from err
  with response:
    resumed = bool(offset) and response.status == 206 and _range_start(response) == offset
    if offset and response.status == 206 and not resumed:  # not the range we asked for: fetch it whole
      response.close()
      part.unlink(missing_ok=True)
      return _stream(url, part, timeout, log)
    if offset and not resumed:
      log(f"{name}: the server ignored the Range request; restarting the file from byte 0")
    written = offset if resumed else 0
    length = response.headers.get("Content-Length")
    expected = written + int(length) if length and length.isdigit() else None
    problem = None
    try:
      with open(part, "ab" if resumed else "wb") as fh:
        for block in iter(lambda: response.read(_CHUNK), b""):
          fh.write(block)
          written += len(block)
        fh.flush()
        os.fsync(fh.fileno())
    except (OSError, http.client.HTTPException) as err:
      problem = str(err)
    # read(n) returns b"" on a dropped connection without raising, so compare with Content-Length.
    if problem is None and expected is not None and written < expected:
      problem = f"the server announced {expected} bytes"
    if problem is not None:  # keep the .part: the next run resumes it
      raise DatasetError(
          url, name, f"interrupted after {written} bytes ({problem})", "run the same command again to resume"
      )
  return resumed


def _range_start(response) -> int | None:
  """The first byte of a 206 answer, from its Content-Range header."""
  m = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
  return int(m.group(1)) if m else None


def download_dataset(
    name: str, data_dir, base: str | None = None, *, timeout: float = 60.0, log: Callable[[str], None] = print
) -> list[pathlib.Path]:
  """Fetches the GitHub-published files of one paper dataset into `<data_dir>/<name>/`.

  Args:
    name: 'douban', 'imdb' or 'amazon'.
    data_dir: the directory that gets the `<name>/` sub-directory.
    base: URL base (default: `base_url()`); files come from `<base>/<name>/<file>`.
    timeout: seconds per connection attempt.
    log: where progress lines go.

  Returns:
    The paths of the published files, all present and verified.

  Raises:
    DatasetError: one line naming every file that failed.
  """
  if name not in PAPER_DATASETS:
    where = (
        "they are not published anywhere: build them as described in data_utils/README.md"
        if name in ("amazon1", "amazon2")
        else f"use one of {', '.join(PAPER_DATASETS)}"
    )
    raise DatasetError(name, "dataset", "has no published files to download", where)
  spec = PAPER_DATASETS[name]
  root = pathlib.Path(data_dir).absolute() / name
  url_base = base_url(base)
  check_target_dir(root)
  made = next((p for p in (*reversed(root.parents), root) if not p.exists()), None)  # the first folder made here
  try:
    root.mkdir(parents=True, exist_ok=True)
  except OSError as err:
    raise DatasetError(str(root), "data_dir", f"cannot be made ({err.strerror})", "give a directory you can write to")
  paths, failures = [], []
  for filename, sha in spec.published:
    url = f"{url_base}/{urllib.parse.quote(name)}/{urllib.parse.quote(filename)}"
    try:
      what = fetch(url, root / filename, sha, timeout=timeout, log=log)
      log(f"{what:>10}  {root / filename}")
      paths.append(root / filename)
    except DatasetError as err:
      failures.append(err)
  if made is not None and not any(root.iterdir()):  # nothing arrived, not even a .part to resume:
    for p in (root, *root.parents):  # leave no empty folder behind
      p.rmdir()
      if p == made:
        break
  absent = [f.filename for f in spec.authors_only if not (root / f.filename).is_file()]
  if absent:
    log(f"{'skipped':>10}  {root}: {len(absent)} feature file(s) not on GitHub, not attempted: {', '.join(absent)}")
  if failures:
    raise _failed(root, failures, len(spec.published))
  return paths


def _failed(root: pathlib.Path, failures: list[DatasetError], total: int) -> DatasetError:
  """One line for the failed files: a cause shared by all (the network, a wrong base) is said once."""
  head, first = f"{len(failures)} of {total} files failed", failures[0]
  if len({e.problem for e in failures}) == 1:
    names = ", ".join(e.field for e in failures)
    problem = f"{head}, each with {first.problem} ({names}; e.g. {first.source})"
  else:
    problem = f"{head}: " + " | ".join(f"{e.field}: {e.problem}" for e in failures) + f" (e.g. {first.source})"
  one_fix = len({e.fix for e in failures}) == 1
  return DatasetError(
      str(root), "download", problem, first.fix if one_fix else "fix the cause named for each file and run again"
  )


def define_flags() -> None:
  """The CLI's flags; defined only when run as a program, so importing this module defines none."""
  flags.DEFINE_enum("dataset", None, [*PAPER_DATASETS, "all"], "dataset to download ('all': every one)")
  flags.DEFINE_string("data_dir", None, "target directory (default: $HGNN_IMA_DATA_DIR, else ./data)")
  flags.DEFINE_string("base_url", None, f"URL base (default: ${BASE_URL_ENV}, else {DEFAULT_BASE_URL})")
  flags.DEFINE_float("timeout", 60.0, "seconds per connection attempt")
  flags.mark_flag_as_required("dataset")


def main(f: flags.FlagValues) -> int:
  """Downloads the datasets --dataset names; exit status 2 when one failed."""
  names = list(PAPER_DATASETS) if f.dataset == "all" else [f.dataset]
  data_dir = f.data_dir or default_data_dir()
  try:  # once, before any dataset: a bad base or directory would fail each in turn
    base_url(f.base_url)
    check_target_dir(data_dir)
  except DatasetError as err:
    print(f"ERROR: {err}", file=sys.stderr)
    return 1
  rc = 0
  for name in names:
    try:
      download_dataset(name, data_dir, f.base_url, timeout=f.timeout)
    except DatasetError as err:
      print(f"ERROR: {err}", file=sys.stderr)
      rc = 2
  absent = [
      ff
      for n in names
      for ff in PAPER_DATASETS[n].authors_only
      if not (pathlib.Path(data_dir) / n / ff.filename).is_file()
  ]
  if absent:
    print(
        f"'skipped' files are published only on {AUTHORS_PAGE}: put each in the directory named, or run with "
        "--features=generated (generated stand-ins, not comparable with the paper)."
    )
  return rc


if __name__ == "__main__":
  run_cli(define_flags, main)
