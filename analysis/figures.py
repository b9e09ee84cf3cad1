"""Figures of the analysis (paper Figs. 6, 7, 8 and Table 3), byte-stable PNG and PDF.

Helpers build ``matplotlib.figure.Figure`` objects on the Agg canvas (no pyplot state), take
``ax=None`` (or ``fig=None`` for multi-panel figures) and return what they drew on. Sizes,
fonts, the per-method colours and the file writing are :mod:`analysis.figure_style`'s:
every figure is at most :data:`~analysis.figure_style.TEXT_WIDTH_IN` wide, a method has the
same colour everywhere, long method names wrap onto several lines, and no figure repeats
its caption as a title.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.figure_style import (
    BLACK,
    INK,
    TEXT_WIDTH_IN,
    display_name,
    method_color,
    new_figure,
    save_figure,
    styled,
)

__all__ = ["image_mosaic", "plot_ab_histograms", "plot_image_grid", "plot_intersections",
           "plot_msssim_histogram", "plot_pairs", "plot_vtt", "save_figure"]

HIST_COLS = 3  # methods per row in Fig. 7's panels (each an a and a b panel)
ORACLE_SUFFIX = "_oracle"  # Fig. 6: such a bar stands apart, to the right


def _new_ax(ax: Axes | None, height: float = 2.4) -> Axes:
    return ax if ax is not None else new_figure(TEXT_WIDTH_IN, height).add_subplot()


def _method_ticks(ax: Axes, x: np.ndarray, methods: Sequence[str]) -> None:
    """Method names under bars: slanted when there are many (then only names over 20
    characters wrap), else level and wrapped at 12 characters."""
    many = len(methods) > 6
    ax.set_xticks(x, [display_name(m, 20 if many else 12) for m in methods],
                  rotation=35 if many else 0,
                  ha="right" if many else "center", rotation_mode="anchor")
    ax.tick_params(axis="x", length=0)


def _value_grid(ax: Axes) -> None:
    ax.yaxis.grid(True)
    ax.set_axisbelow(True)


@styled
def plot_vtt(scores: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Fig. 6: VTT score (%) per method with its bootstrap interval; 50 % is chance.

    Bars keep the frame's order; an oracle row (method ending in ``_oracle``, the raters'
    best sample) stands apart on the right, as the paper's Oracle column does.
    """
    ax = _new_ax(ax, 2.5)
    s = scores.dropna(subset=["score"]).reset_index(drop=True)
    oracle = s["method"].str.endswith(ORACLE_SUFFIX).to_numpy()
    s = pd.concat([s[~oracle], s[oracle]], ignore_index=True)
    x = np.arange(len(s), dtype=float) + np.r_[np.zeros((~oracle).sum()), np.full(
        oracle.sum(), 0.6)]
    err = np.vstack([s["score"] - s["low"], s["high"] - s["score"]]) * 100
    ax.bar(x, s["score"] * 100, 0.7, color=[method_color(m) for m in s["method"]])
    ax.errorbar(x, s["score"] * 100, yerr=err, fmt="none", ecolor=INK, elinewidth=0.8,
                capsize=2, capthick=0.8)
    if oracle.any() and (~oracle).any():
        ax.axvline(x[(~oracle).sum()] - 0.8, color=INK, lw=0.5, ls=":")
    ax.axhline(50, color=INK, ls="--", lw=0.7)
    ax.text(1.005, 50, "chance", transform=ax.get_yaxis_transform(), ha="left",
            va="center", fontsize=7, color=INK)
    _method_ticks(ax, x, list(s["method"]))
    ax.set_ylabel("VTT fool rate (%)")
    ax.set_ylim(0, max(60.0, float(np.nanmax(s["high"].to_numpy(float), initial=0)) * 100 + 5))
    ax.set_xlim(-0.6, (x[-1] if len(x) else 0) + 0.6)
    _value_grid(ax)
    return ax


def _hist_panel(ax: Axes, truth: np.ndarray, values: np.ndarray, centers: np.ndarray,
                color: str) -> None:
    ax.plot(centers, np.maximum(truth, 1e-7), color=BLACK, lw=1.0)
    ax.plot(centers, np.maximum(values, 1e-7), color=color, lw=1.0)


@styled
def plot_ab_histograms(hists: dict[str, np.ndarray], edges: np.ndarray, gt_method: str = "gt",
                       fig: Figure | None = None) -> Figure:
    """Fig. 7 left: each method's a and b histograms (its colour) over the truth's (black).

    One cell per method, :data:`HIST_COLS` cells a row, each an a panel and a b panel on a
    shared log scale, titled with the method's name (wrapped if long).

    Args:
        hists: method -> float (2, n_bins) normalised histograms (a row, b row).
        edges: (n_bins + 1,) bin edges.
        gt_method: key of the reference histograms.
        fig: figure to draw into (default: a new one at the text width, sized to the rows).
    """
    methods = [m for m in hists if m != gt_method] or [gt_method]
    cols = min(HIST_COLS, len(methods))
    rows = -(-len(methods) // cols)
    fig = fig or new_figure(TEXT_WIDTH_IN, 0.3 + 1.3 * rows)
    cells = fig.subfigures(rows, cols, squeeze=False, wspace=0.02, hspace=0.02)
    centers = (edges[:-1] + edges[1:]) / 2
    for k, m in enumerate(methods):
        cell = cells[k // cols, k % cols]
        axes = cell.subplots(1, 2, sharex=True, sharey=True)
        cell.suptitle(display_name(m, 26), color=BLACK)
        for c, ax in enumerate(axes):
            _hist_panel(ax, hists[gt_method][c], hists[m][c], centers, method_color(m))
            ax.text(0.03, 0.97, "ab"[c], transform=ax.transAxes, ha="left", va="top",
                    fontsize=8, fontstyle="italic")
        ax0 = axes[0]
        ax0.set_yscale("log")
        ax0.set_ylim(1e-6, 1)
        ax0.yaxis.set_major_locator(ticker.FixedLocator([1e-6, 1e-3, 1]))
        ax0.yaxis.set_major_formatter(ticker.FixedFormatter(
            ["$10^{-6}$", "$10^{-3}$", "1"]))
        ax0.yaxis.set_minor_locator(ticker.NullLocator())
        ax0.set_xlim(edges[0], edges[-1])
        ax0.xaxis.set_major_locator(ticker.FixedLocator([-100, 0, 100]))
    for k in range(len(methods), rows * cols):
        cells[k // cols, k % cols].set_visible(False)
    fig.legend([Line2D([], [], color=BLACK)], [f"ground truth ({gt_method})"],
               loc="outside upper right")
    fig.supxlabel("CIELAB a or b", fontsize=8)
    fig.supylabel("share of pixels", fontsize=8)
    return fig


@styled
def plot_intersections(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Fig. 7 right: histogram intersection with the truth per method; a solid, b hatched."""
    own = ax is None
    ax = _new_ax(ax, 2.4)
    x = np.arange(len(table), dtype=float)
    colors = [method_color(m) for m in table["method"]]
    ax.bar(x - 0.19, table["a"], 0.38, color=colors, edgecolor=colors, lw=0.6)
    ax.bar(x + 0.19, table["b"], 0.38, color="white", edgecolor=colors, hatch="//////",
           lw=0.6)
    _method_ticks(ax, x, list(table["method"]))
    ax.set_ylim(0, 1)
    ax.set_xlim(-0.6, len(x) - 0.4)
    ax.set_ylabel("histogram intersection")
    keys = [Patch(color=INK), Patch(facecolor="white", edgecolor=INK, hatch="//////")]
    if own:  # above the bars (a figure legend: constrained layout makes room for it)
        ax.figure.legend(keys, ["a", "b"], loc="outside upper right", ncols=2)
    else:
        ax.legend(keys, ["a", "b"], loc="lower left", ncols=2)
    _value_grid(ax)
    return ax


@styled
def plot_msssim_histogram(values: np.ndarray, ax: Axes | None = None, bins: int = 40,
                          method: str = "pixcolor_s* (pooled)") -> Axes:
    """Fig. 8 top: histogram of MS-SSIM between pairs of samples of the same image, in the
    colour of ``method`` (the PixColor samples')."""
    ax = _new_ax(ax, 2.0)
    v = np.asarray(values, dtype=np.float64)
    lo = min(0.8, float(v.min())) if len(v) else 0.8
    ax.hist(v, bins=np.linspace(lo, 1.0, bins + 1), color=method_color(method),
            edgecolor="white", linewidth=0.3)
    ax.set_xlim(lo, 1.0)
    ax.set_xlabel("MS-SSIM between two samples of the same image (1 = identical)")
    ax.set_ylabel("pairs")
    ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=5, integer=True))
    return ax


@styled
def plot_pairs(pairs: Sequence[tuple[np.ndarray, np.ndarray, str]],
               fig: Figure | None = None) -> Figure:
    """Fig. 8 bottom: example pairs, one column per pair (one sample above the other),
    headed with its MS-SSIM, at the text width with the images' aspect."""
    n = max(len(pairs), 1)
    aspect = np.mean([a.shape[0] / a.shape[1] for a, _, _ in pairs]) if pairs else 1.0
    col_w = (TEXT_WIDTH_IN - 0.05 * (n + 1)) / n
    fig = fig or new_figure(TEXT_WIDTH_IN, min(2 * col_w * aspect + 0.35, 8.0))
    axes = fig.subplots(2, n, squeeze=False)
    for j in range(n):
        for i in range(2):
            axes[i, j].axis("off")
        if j < len(pairs):
            a, b, title = pairs[j]
            axes[0, j].imshow(a, interpolation="nearest")
            axes[1, j].imshow(b, interpolation="nearest")
            axes[0, j].set_title(title, fontsize=8)
    return fig


def image_mosaic(images: dict[str, list[np.ndarray | None]], n_rows: int, gap: int = 4
                 ) -> tuple[np.ndarray, list[float], list[float]]:
    """Rows x methods cells of uint8 RGB images on a white canvas (missing cells blank).

    Each cell is as large as the largest image, images are centred in it and cells are
    ``gap`` pixels apart. Returns the canvas and the x and y centres of the columns and rows.
    """
    methods = list(images)
    shown = [im for m in methods for im in images[m] if im is not None]
    ch = max((im.shape[0] for im in shown), default=1)
    cw = max((im.shape[1] for im in shown), default=1)
    rows, cols = max(n_rows, 1), max(len(methods), 1)
    canvas = np.full((rows * (ch + gap) - gap, cols * (cw + gap) - gap, 3), 255, np.uint8)
    for j, m in enumerate(methods):
        for i, im in enumerate(images[m][:rows]):
            if im is None:
                continue
            y = i * (ch + gap) + (ch - im.shape[0]) // 2
            x = j * (cw + gap) + (cw - im.shape[1]) // 2
            canvas[y:y + im.shape[0], x:x + im.shape[1]] = im[..., :3]
    xs = [j * (cw + gap) + (cw - 1) / 2 for j in range(cols)]
    ys = [i * (ch + gap) + (ch - 1) / 2 for i in range(rows)]
    return canvas, xs, ys


@styled
def plot_image_grid(images: dict[str, list[np.ndarray]], image_ids: Sequence[str],
                    fig: Figure | None = None) -> Figure:
    """Table 3 form: rows are images, columns methods (missing images left blank), at the
    text width: the cells shrink with more methods and the names above them wrap, and are
    slanted when the columns are narrow.

    Drawn as one mosaic image in one axes (:func:`image_mosaic`): a grid of separate axes
    took seconds to lay out and save.

    Args:
        images: method -> list aligned with ``image_ids`` of uint8 RGB arrays or None.
        image_ids: row labels.
    """
    methods = list(images)
    canvas, xs, ys = image_mosaic(images, len(image_ids))
    label_w = 0.8  # inches for the image ids on the left
    cell = min(1.2, (TEXT_WIDTH_IN - label_w) / max(len(methods), 1))
    slant = cell < 0.75
    head = 0.7 if slant else 0.4
    width = cell * max(len(methods), 1)  # of the mosaic, inches
    fig = fig or new_figure(label_w + width, head + width * canvas.shape[0] / canvas.shape[1])
    ax = fig.add_subplot()
    ax.imshow(canvas, interpolation="antialiased")
    ax.set_xticks(xs[:len(methods)], [display_name(m, 20 if slant else 10) for m in methods],
                  fontsize=6.5,
                  rotation=40 if slant else 0, ha="left" if slant else "center",
                  rotation_mode="anchor")
    ax.xaxis.tick_top()
    ax.set_yticks(ys[:len(image_ids)], [display_name(i, 14) for i in image_ids], fontsize=6.5)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return fig
