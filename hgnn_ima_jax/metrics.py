"""Micro/Macro-F1 (in JAX for per-epoch selection, scikit-learn for reported numbers) and statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def f1_scores(pred: jax.Array, labels: jax.Array, mask: jax.Array, num_classes: int) -> tuple[jax.Array, jax.Array]:
  """(Micro-F1, Macro-F1) over masked nodes, matching sklearn's f1_score.

  Macro averages over the classes that occur in the true or predicted labels of the
  masked nodes (sklearn's `unique_labels`); a class with no true positives scores 0.
  Micro-F1 equals accuracy for single-label multi-class predictions.
  """
  m = mask.astype(jnp.float32)
  pred_1h = jax.nn.one_hot(pred, num_classes) * m[:, None]
  true_1h = jax.nn.one_hot(labels, num_classes) * m[:, None]
  tp = jnp.sum(pred_1h * true_1h, axis=0)
  n_pred, n_true = jnp.sum(pred_1h, axis=0), jnp.sum(true_1h, axis=0)
  denom = n_pred + n_true
  f1 = jnp.where(denom > 0, 2 * tp / jnp.maximum(denom, 1), 0.0)
  seen = denom > 0
  macro = jnp.sum(f1) / jnp.maximum(jnp.sum(seen), 1)
  micro = jnp.sum(tp) / jnp.maximum(jnp.sum(m), 1)
  return micro, macro


def sklearn_f1(pred: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> dict[str, float]:
  """The reported test metrics: sklearn f1_score micro and macro on the given node ids."""
  # Imported here, not with the module: scikit-learn pulls in scipy.stats, ~1 s of every process's start (a
  # refused run, a benchmark worker, each process of a run), and only the final evaluation and the tables need it.
  import sklearn.metrics  # pylint: disable=import-outside-toplevel

  y, p = np.asarray(labels)[idx], np.asarray(pred)[idx]
  return {
      "micro_f1": float(sklearn.metrics.f1_score(y, p, average="micro")),
      "macro_f1": float(sklearn.metrics.f1_score(y, p, average="macro", zero_division=0)),
  }


def mean_std(values) -> dict[str, float | None]:
  """Mean and sample standard deviation (ddof=1; None for a single run, which has no spread to estimate: a
  0 there read as a perfectly stable result)."""
  v = np.asarray(values, np.float64)
  return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None}


def t_test(a, b, paired: bool = False) -> dict[str, float]:
  """t-test between two models' per-seed scores (Table 3).

  paired=False: Student's two-sample test, df = n_a + n_b − 2 (what the paper's text says).
  paired=True: over matched seeds, df = n − 1 (what the paper's p-values imply: each of its
  (t, p) pairs fits df = 4 for 5 seeds).
  """
  import scipy.stats  # pylint: disable=import-outside-toplevel  (see sklearn_f1)

  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if paired:
    if len(a) != len(b):
      raise ValueError(
          f"a paired t-test needs matched seeds, got {len(a)} and {len(b)} scores. Fix: pass both models' scores "
          "for the same seeds, in the same order (or paired=False)"
      )
    res, df = scipy.stats.ttest_rel(a, b), len(a) - 1
  else:
    res, df = scipy.stats.ttest_ind(a, b), len(a) + len(b) - 2
  return {"t": float(res.statistic), "p": float(res.pvalue), "df": df}
