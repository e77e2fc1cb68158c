"""The downloader against a local HTTP server: sha256 checks, atomic writes, resume, clean failures."""

import hashlib
import http.server
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse

import pytest

from hgnn_ima_jax.data_utils import DatasetError
from hgnn_ima_jax.data_utils.download import BASE_URL_ENV, base_url, check_target_dir, download_dataset, fetch
from hgnn_ima_jax.data_utils.paper_datasets import PAPER_DATASETS

REPO = pathlib.Path(__file__).resolve().parents[1]
RDF = "douban_actor_rdf.npy"


class _Handler(http.server.BaseHTTPRequestHandler):
  """Serves server.root; honours `Range: bytes=N-` unless server.honour_range is False."""

  def do_GET(self):  # pylint: disable=invalid-name
    srv = self.server
    srv.requests.append((self.path, self.headers.get("Range")))
    path = srv.root / urllib.parse.unquote(self.path.lstrip("/"))
    if not path.is_file():
      self.send_error(404)
      return
    data = path.read_bytes()
    m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
    if m and srv.honour_range:
      start = int(m.group(1))
      if start >= len(data):
        self.send_response(416)
        self.send_header("Content-Range", f"bytes */{len(data)}")
        self.send_header("Content-Length", "0")
        self.end_headers()
        return
      body = data[start:]
      self.send_response(206)
      self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
    else:
      body = data
      self.send_response(200)
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    if srv.cut_after is not None:  # promise the whole body, send a prefix, hang up
      self.wfile.write(body[: srv.cut_after])
      self.wfile.flush()
      srv.cut_after = None
      self.close_connection = True
      return
    self.wfile.write(body)

  def log_message(self, *args):  # keep pytest output clean
    pass


@pytest.fixture
def server(tmp_path, shared_datasets):
  """A Range-capable HTTP server on 127.0.0.1 serving a copy of the shared datasets."""
  root = tmp_path / "served"
  for name in ("douban",):
    shutil.copytree(shared_datasets / name, root / name, copy_function=shutil.copyfile)
  srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
  srv.root, srv.requests, srv.honour_range, srv.cut_after = root, [], True, None
  srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
  thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
  thread.start()
  yield srv
  srv.shutdown()
  srv.server_close()


def sha(path) -> str:
  return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def published_sha(filename: str) -> str:
  return dict(PAPER_DATASETS["douban"].published)[filename]


def test_download_verifies_and_skips_present_files(tmp_path, server, shared_datasets):
  lines = []
  paths = download_dataset("douban", tmp_path / "data", server.url, log=lines.append)
  d = tmp_path / "data" / "douban"
  assert sorted(p.name for p in paths) == sorted(f for f, _ in PAPER_DATASETS["douban"].published)
  for f, want in PAPER_DATASETS["douban"].published:
    assert sha(d / f) == want == sha(shared_datasets / "douban" / f)
  assert sorted(p.name for p in d.iterdir()) == sorted(p.name for p in paths)  # no .part, no temp files
  # The four files that only the authors' page has: one brief line, and no request for any of them.
  skipped = [l for l in lines if l.lstrip().startswith("skipped")]
  assert len(skipped) == 1 and str(d) in skipped[0] and "4 feature file(s) not on GitHub" in skipped[0]
  assert all(f.filename in skipped[0] for f in PAPER_DATASETS["douban"].feature_files)
  assert not any(p.endswith((".npz.npy", "512_199.npz")) for p, _ in server.requests)
  n = len(server.requests)
  lines.clear()
  download_dataset("douban", tmp_path / "data", server.url, log=lines.append)
  assert len(server.requests) == n, "files present with the right sum must not be fetched again"
  assert sum(l.lstrip().startswith("present") for l in lines) == 3


def test_corrupted_file_leaves_nothing_behind(tmp_path, server):
  served = server.root / "douban" / "labels.npy"
  data = bytearray(served.read_bytes())
  data[-1] ^= 0xFF
  served.write_bytes(bytes(data))
  with pytest.raises(DatasetError) as info:
    download_dataset("douban", tmp_path / "data", server.url, log=lambda _: None)
  msg = str(info.value)
  assert "labels.npy" in msg and "sha256" in msg and "does not match the published" in msg and "\n" not in msg
  d = tmp_path / "data" / "douban"
  assert sorted(p.name for p in d.iterdir()) == sorted([RDF, "train_val_test_idx_929.npz"])  # the good ones only


def test_resume_from_a_partial_file(tmp_path, server, shared_datasets):
  good = (shared_datasets / "douban" / RDF).read_bytes()
  dest = tmp_path / "douban" / RDF
  dest.parent.mkdir()
  (dest.parent / (RDF + ".part")).write_bytes(good[:50000])
  assert fetch(f"{server.url}/douban/{RDF}", dest, published_sha(RDF), log=lambda _: None) == "resumed"
  assert server.requests == [(f"/douban/{RDF}", "bytes=50000-")]
  assert sha(dest) == published_sha(RDF) and not (dest.parent / (RDF + ".part")).exists()


def test_interrupted_transfer_resumes_on_the_next_run(tmp_path, server):
  dest = tmp_path / "douban" / RDF
  url = f"{server.url}/douban/{RDF}"
  server.cut_after = 70000
  with pytest.raises(DatasetError, match="interrupted after 70000 bytes.*run the same command again"):
    fetch(url, dest, published_sha(RDF), log=lambda _: None)
  part = dest.parent / (RDF + ".part")
  assert part.stat().st_size == 70000 and not dest.exists()
  assert fetch(url, dest, published_sha(RDF), log=lambda _: None) == "resumed"
  assert server.requests[-1][1] == "bytes=70000-" and sha(dest) == published_sha(RDF)


def test_server_ignoring_range_restarts_cleanly(tmp_path, server):
  server.honour_range = False
  dest = tmp_path / "douban" / RDF
  dest.parent.mkdir()
  (dest.parent / (RDF + ".part")).write_bytes(b"\0" * 50000)  # would corrupt the file if appended to
  lines = []
  assert fetch(f"{server.url}/douban/{RDF}", dest, published_sha(RDF), log=lines.append) == "downloaded"
  assert sha(dest) == published_sha(RDF) and any("ignored the Range request" in l for l in lines)


def test_stale_partial_file_is_retried_from_scratch(tmp_path, server):
  dest = tmp_path / "douban" / RDF
  dest.parent.mkdir()
  (dest.parent / (RDF + ".part")).write_bytes(b"\0" * 50000)
  assert fetch(f"{server.url}/douban/{RDF}", dest, published_sha(RDF), log=lambda _: None) == "downloaded"
  assert [r for _, r in server.requests] == ["bytes=50000-", None]
  assert sha(dest) == published_sha(RDF)


def test_partial_file_longer_than_the_file(tmp_path, server):
  dest = tmp_path / "douban" / RDF
  dest.parent.mkdir()
  (dest.parent / (RDF + ".part")).write_bytes(b"\0" * 10_000_000)  # the server answers 416
  assert fetch(f"{server.url}/douban/{RDF}", dest, published_sha(RDF), log=lambda _: None) == "downloaded"
  assert sha(dest) == published_sha(RDF)


def test_http_error_is_a_clear_error(tmp_path, server):
  with pytest.raises(DatasetError) as info:
    download_dataset("douban", tmp_path / "data", server.url + "/wrong", log=lambda _: None)
  # the shared cause and its fix once, with the files it hit (it was repeated per file, then a second Fix)
  message = str(info.value)
  assert "3 of 3 files failed, each with HTTP 404" in message and message.count("Fix:") == 1, message
  assert "douban_actor_rdf.npy, labels.npy, train_val_test_idx_929.npz" in message and "--base_url" in message
  assert not (tmp_path / "data").exists()  # nothing arrived: no empty folder is left behind


@pytest.mark.parametrize(
    "base, data_dir, fragment",
    [
        ("notaurl", "data", "notaurl: --base_url: is not an http://, https:// or file:// URL"),
        (None, "file/sub", "data_dir: is below the file"),
        (None, "file", "douban: data_dir: is below the file"),  # <data_dir>/douban
    ],
)
def test_a_bad_base_or_directory_is_refused_before_any_request(tmp_path, server, base, data_dir, fragment):
  where = tmp_path / "w"
  where.mkdir()
  (where / "file").write_text("not a directory")
  with pytest.raises(DatasetError, match=re.escape(fragment)):
    download_dataset("douban", where / data_dir, base or server.url, log=lambda _: None)
  assert not server.requests and [p.name for p in where.iterdir()] == ["file"]
  with pytest.raises(DatasetError, match="data_dir: is a file"):  # the command checks --data_dir itself first
    check_target_dir(where / "file")


def test_base_url_from_environment(tmp_path, server, monkeypatch):
  monkeypatch.setenv(BASE_URL_ENV, server.url + "/")
  assert base_url() == server.url and base_url("http://x/") == "http://x"
  download_dataset("douban", tmp_path, log=lambda _: None)
  assert server.requests and all(p.startswith("/douban/") for p, _ in server.requests)
  monkeypatch.delenv(BASE_URL_ENV)
  assert base_url() == "https://raw.githubusercontent.com/jiaxiangen/MHGAT/main"


def test_unpublished_datasets(tmp_path):
  with pytest.raises(DatasetError, match="not published anywhere"):
    download_dataset("amazon1", tmp_path)


def test_cli(tmp_path, server):
  cmd = [
      sys.executable,
      "-m",
      "hgnn_ima_jax.data_utils.download",
      "--dataset=douban",
      f"--data_dir={tmp_path / 'data'}",
      f"--base_url={server.url}",
  ]
  env = {k: v for k, v in os.environ.items() if k != BASE_URL_ENV}
  ok = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert ok.returncode == 0, ok.stderr
  assert ok.stdout.count("downloaded") == 3 and "img_feature_douban_512_199.npz" in ok.stdout
  assert ok.stdout.count("authors' download page") == 1  # said once, after the list
  (tmp_path / "data" / "douban" / "labels.npy").unlink()
  (server.root / "douban" / "labels.npy").write_bytes(b"corrupt")
  bad = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and "ERROR:" in bad.stderr and "sha256" in bad.stderr
  assert not (tmp_path / "data" / "douban" / "labels.npy").exists()


def test_helper_and_loader_agree_on_what_github_has():
  """IMDB's text features are on GitHub (downloaded); every other feature file is the authors' page's only."""
  for name, spec in PAPER_DATASETS.items():
    on_github = {f for f, _ in spec.published}
    for f in spec.feature_files:
      assert (f in spec.authors_only) == (f.filename not in on_github), (name, f.filename)
  assert [f.filename for f in PAPER_DATASETS["imdb"].authors_only] == ["img_feature_20_6_25_199.npz"]
  assert len(PAPER_DATASETS["douban"].authors_only) == 4 and len(PAPER_DATASETS["amazon"].authors_only) == 3


def test_missing_imdb_text_points_at_the_downloader(tmp_path, shared_datasets):
  """A missing IMDB text file is on GitHub: the loader's fix names the download command, not only the authors' page."""
  from data_helpers import copy_dataset

  from hgnn_ima_jax.data_utils import MissingFilesError, load_dataset

  d = copy_dataset(shared_datasets, "imdb", tmp_path)
  (d / "features_0.npz").unlink()
  with pytest.raises(MissingFilesError) as info:
    load_dataset("imdb", tmp_path)
  assert "python -m hgnn_ima_jax.data_utils.download --dataset=imdb" in str(info.value) and "\n" not in str(info.value)


def test_an_empty_data_dir_names_the_download_once_and_the_authors_only_files(tmp_path):
  """Nothing downloaded yet: one download command (it fetches the topology and the GitHub-hosted text), then the
  files it cannot fetch, by name, with where they are published and the --features=generated way out."""
  from hgnn_ima_jax.data_utils import MissingFilesError, load_dataset

  with pytest.raises(MissingFilesError) as info:
    load_dataset("imdb", tmp_path)
  msg = str(info.value)
  assert "\n" not in msg and msg.count("python -m hgnn_ima_jax.data_utils.download --dataset=imdb") == 1
  assert "img_feature_20_6_25_199.npz is published only on the authors' download page" in msg
  assert "features_0.npz is published" not in msg and "--features=generated" in msg
  assert info.value.kind == "published" and len(info.value.paths) == 8
