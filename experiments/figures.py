"""The figures of visualize.py: the t-SNE of Z and the attention case study (matplotlib, Agg backend).

Every figure carries its own explanation: a title per panel, a caption saying what the reference
lines mean, and footnotes when the numbers are not the paper's (generated features) or not
meaningful at all (`--tiny` smoke sizes).
"""

from __future__ import annotations

import textwrap

import numpy as np

from . import formatting

ATTENTION_CAPTION = (
    "(a) mean attention weight of same-class and different-class target pairs (±95% CI); (b) the same with each "
    "pair's weight divided by the weight uniform attention would give it: 1.0 (dashed) = uniform, no selection; "
    "same-class above 1 = attention prefers same-class neighbours; (c) attention mass on same-class pairs, per "
    "receiver that has both kinds (blue), against uniform attention's (grey): blue above grey = attention moves "
    "weight to same-class neighbours. Pairs are two-hop (target ← hub ← target) or direct; all labels are used."
)


def _plt():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def footnotes(comparable: bool, tiny: bool) -> list[str]:
  """The red lines under a figure: generated features, smoke-test sizes."""
  notes = [] if comparable else ["features generated: not comparable with the paper"]
  return notes + ([formatting.TINY_FIGURE_NOTE] if tiny else [])


def add_footnotes(fig, notes: list[str], bottom: float = 0.01):
  for i, note in enumerate(notes):
    fig.text(0.01, bottom + 0.025 * i, note, fontsize=7, color="firebrick")


def plot_tsne(tsne: dict, path: str, title: str, notes: list[str]) -> str:
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.5, 5.2))
  cmap = plt.get_cmap("tab10")
  for c in np.unique(tsne["labels"]):
    m = tsne["labels"] == c
    ax.scatter(
        tsne["coords"][m, 0], tsne["coords"][m, 1], s=8, alpha=0.8, color=cmap(int(c) % 10), label=f"class {int(c)}"
    )
  ax.set_title(
      f"{title}\nsilhouette: Z {formatting.format_number(tsne['silhouette_embedding'], 3)}, "
      f"t-SNE {formatting.format_number(tsne['silhouette_tsne'], 3)}",
      fontsize=9,
  )
  ax.set_xticks([])
  ax.set_yticks([])
  ax.legend(fontsize=7, markerscale=2)
  add_footnotes(fig, notes)
  fig.tight_layout(rect=(0, 0.03 * max(1, len(notes)), 1, 1))
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def _layer_label(entry: dict) -> str:
  return (
      f"layers {entry['hop_layers'][0]}→{entry['hop_layers'][1]}"
      if "hop_layers" in entry
      else f"layer {entry['layer']}"
  )


def attention_figure(study: dict, title: str, notes: list[str]):
  """One row of three panels per layer (pair) of the case study; returns the matplotlib figure."""
  plt = _plt()
  entries = study["layers"]
  fig, axes = plt.subplots(len(entries), 3, figsize=(13, 3.6 * len(entries) + 1.2), squeeze=False)
  for row, entry in zip(axes, entries):
    kinds = list(entry["kinds"])
    x = np.arange(len(kinds))
    get = lambda key: np.array([entry["kinds"][k][key] for k in kinds], np.float64)  # noqa: B023
    where = _layer_label(entry)
    panels = (
        ("mean", "ci95", "mean pair weight", f"(a) mean weight per pair, {where}"),
        ("norm_mean", "norm_ci95", "pair weight / uniform weight", f"(b) weight relative to uniform, {where}"),
    )
    for ax, (mean, ci, ylabel, panel_title) in zip(row[:2], panels):
      for off, (side, colour) in zip((-0.2, 0.2), (("same", "tab:green"), ("diff", "tab:red"))):
        ax.bar(
            x + off,
            get(f"{mean}_{side}"),
            0.4,
            yerr=np.nan_to_num(get(f"{ci}_{side}")),
            capsize=3,
            color=colour,
            label="same class" if side == "same" else "different class",
        )
      ax.set_ylabel(ylabel, fontsize=8)
      ax.set_title(panel_title, fontsize=9)
    row[1].axhline(1.0, color="grey", lw=0.8, ls="--", label="uniform = 1.0")
    row[2].bar(x - 0.2, get("mass_same"), 0.4, color="tab:blue", label="attention")
    row[2].bar(x + 0.2, get("mass_same_uniform"), 0.4, color="tab:grey", label="uniform attention")
    row[2].set_ylabel("mass on same-class pairs", fontsize=8)
    row[2].set_ylim(0, 1)
    row[2].set_title(f"(c) same-class mass vs uniform, {where}", fontsize=9)
    for ax in row:
      ax.set_xticks(x)
      ax.set_xticklabels(kinds, rotation=20, fontsize=8)
      ax.legend(fontsize=7)
  fig.suptitle(
      f"{title}: {study['mode'].replace('_', '-')} target pairs via {', '.join(study['relations'])}", fontsize=10
  )
  caption = textwrap.fill(ATTENTION_CAPTION, 190)
  n_caption = caption.count("\n") + 1
  fig.text(0.01, 0.012 + 0.025 * len(notes), caption, fontsize=7, va="bottom")
  add_footnotes(fig, notes)
  bottom = (0.03 * (n_caption + len(notes))) * 4.8 / (3.6 * len(entries) + 1.2) + 0.02
  fig.tight_layout(rect=(0, bottom, 1, 0.96))
  return fig


def plot_attention(study: dict, path: str, title: str, notes: list[str]) -> str:
  """`attention_figure` saved as a PNG."""
  plt = _plt()
  fig = attention_figure(study, title, notes)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
