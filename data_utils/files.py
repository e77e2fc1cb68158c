"""Reading arrays from disk so that every failure is a one-line `DatasetError`.

NumPy and SciPy fail on bad files with tracebacks that name neither the file nor
a fix (truncated .npy, a zip without the key, an object array). Every reader
here catches those and raises `DatasetError(path, field, problem, fix)`.
"""

from __future__ import annotations

import os
import pathlib
from typing import Iterable, Sequence

import numpy as np

from hgnn_ima_jax.graph import MMHN, DatasetError
from hgnn_ima_jax.graph_checks import UNLABELLED_HINT

# dtype kinds accepted by `check_array`: ids and labels must be integers; features
# may be any real number (paper files are float64 or float32, IMDB counts are float).
_KINDS = {"int": "iu", "float": "fiub", "str": "U"}
_KIND_WORDS = {"int": "an integer type", "float": "a real number type", "str": "a unicode string array"}


class MissingFilesError(DatasetError):
  """Files a dataset needs are absent; `paths` lists every one with its full path.

  `kind` is 'features' when only feature files published outside GitHub are
  missing (topology, labels and splits were found), 'published' otherwise.
  """

  def __init__(self, source: str, paths: Sequence[str], kind: str, fix: str):
    self.paths, self.kind = tuple(str(p) for p in paths), kind
    what = "feature files" if kind == "features" else "files"
    super().__init__(source, what, f"{len(self.paths)} missing: {', '.join(self.paths)}", fix)


def missing(paths: Iterable[os.PathLike | str]) -> list[str]:
  """The paths among `paths` that are not existing files, as absolute strings."""
  return [str(pathlib.Path(p).absolute()) for p in paths if not pathlib.Path(p).is_file()]


def check_array(x, source: str, field: str, kind: str, shape: Sequence[int | None] | None = None) -> np.ndarray:
  """Checks dtype kind and shape (None = any size in that axis); returns x as an array."""
  x = np.asarray(x)
  if x.dtype.kind not in _KINDS[kind]:
    raise DatasetError(
        source, field, f"dtype {x.dtype}, expected {_KIND_WORDS[kind]}", f"store it as {_KIND_WORDS[kind]}"
    )
  if shape is not None:
    # free sizes read N (rows), then D (widths): (N, D) for features, (N, 2) for edges
    names = iter("ND")
    want = (
        "(" + ", ".join(next(names, "K") if s is None else str(s) for s in shape) + (",)" if len(shape) == 1 else ")")
    )
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
      raise DatasetError(source, field, f"shape {x.shape}, expected {want}", f"store a {want} array")
  return x


REDOWNLOAD = "replace it with an intact copy (re-download it)"


def load_npy(
    path, field: str, kind: str, shape: Sequence[int | None] | None = None, unreadable_fix: str = REDOWNLOAD
) -> np.ndarray:
  """np.load of one .npy file (no pickles), checked with `check_array`.

  `unreadable_fix` is the fix named when the file cannot be read: a re-download for published
  files, a re-write for the user's own (`generic`).
  """
  path = str(path)
  try:
    x = np.load(path, allow_pickle=False)
    if not isinstance(x, np.ndarray):  # an .npz saved under a .npy name
      x.close()
      raise ValueError("it is an .npz archive, not a single .npy array")
  except DatasetError:
    raise
  except MemoryError:  # a file too large for this machine is not a damaged one
    raise
  except Exception as err:  # truncated, not an array, object dtype, permissions...
    raise DatasetError(
        path,
        field,
        f"cannot be read as a .npy array ({short_error(err)})",
        unreadable_fix,
    ) from err
  return check_array(x, path, field, kind, shape)


def load_npz(path, keys: Sequence[str], unreadable_fix: str = REDOWNLOAD) -> dict[str, np.ndarray]:
  """Reads `keys` from an .npz archive (no pickles); a missing key or a bad member is a DatasetError."""
  path = str(path)
  out = {}
  try:
    with np.load(path, allow_pickle=False) as z:
      if not hasattr(z, "files"):
        raise ValueError("it is a single .npy array, not an .npz archive")
      for k in keys:
        if k not in z.files:
          raise DatasetError(
              path, k, f"key {k!r} is missing (keys: {sorted(z.files)})", f"store the array under the key {k!r}"
          )
        out[k] = z[k]  # reading here, inside the try, catches a truncated member
  except (DatasetError, MemoryError):
    raise
  except Exception as err:
    raise DatasetError(
        path,
        ",".join(keys),
        f"cannot be read as an .npz archive ({short_error(err)})",
        unreadable_fix,
    ) from err
  return out


def load_sparse_dense(path, field: str) -> np.ndarray:
  """A scipy.sparse matrix saved with `save_npz`, as a dense float32 array."""
  import scipy.sparse  # only IMDB needs SciPy

  path = str(path)
  try:
    m = scipy.sparse.load_npz(path)
    x = np.asarray(m.toarray())
  except MemoryError:
    raise
  except Exception as err:
    raise DatasetError(
        path,
        field,
        f"cannot be read as a scipy.sparse .npz matrix ({short_error(err)})",
        REDOWNLOAD,
    ) from err
  return check_array(x, path, field, "float", (None, None)).astype(np.float32)


def check_labels(labels: np.ndarray, source: str, num_nodes: int, num_classes: int, target: str) -> np.ndarray:
  """Labels checked early (generated features index by them before `MMHN.validate` runs)."""
  y = check_array(labels, source, "labels", "int", (num_nodes,))
  if len(y) and (y.min() < 0 or y.max() >= num_classes):
    raise DatasetError(
        source,
        "labels",
        f"values span {y.min()}..{y.max()}, outside 0..{num_classes - 1}",
        f"store one class id 0..{num_classes - 1} per {target!r} node" + (UNLABELLED_HINT if y.min() < 0 else ""),
    )
  return y


def validate_with_sources(graph: MMHN, sources: dict[str, str]) -> MMHN:
  """`graph.validate()`, re-pointing an error at the file its field came from (`with_sources`)."""
  return with_sources(sources, graph.validate)


def with_sources(sources: dict[str, str], check, *args):
  """`check(*args)`, re-pointing a `DatasetError` at the file its field came from.

  `sources` maps a field prefix (e.g. "labels", "splits", "features['movie']['text']")
  to the file that field was read from; the longest matching prefix wins.
  """
  try:
    return check(*args)
  except DatasetError as err:
    hits = [p for p in sources if err.field.startswith(p)]
    if not hits:
      raise
    raise DatasetError(sources[max(hits, key=len)], err.field, err.problem, err.fix) from err


def short_error(err: BaseException) -> str:
  """The exception as one short line."""
  text = " ".join(str(err).split()) or type(err).__name__
  return f"{type(err).__name__}: {text}"[:200]
