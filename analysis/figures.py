"""Figures of the analysis (paper Figs. 6, 7, 8 and Table 3), byte-stable PNG and PDF.

Helpers build ``matplotlib.figure.Figure`` objects directly (no pyplot state), take
``ax=None`` (or ``fig=None`` for multi-panel figures) and return what they drew on.
:func:`save_figure` writes PNG and PDF with the timestamp and software metadata removed and
fixed rc settings, so reruns produce identical bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None}
RC = {"svg.hashsalt": "pixcolor", "pdf.fonttype": 3, "font.family": "DejaVu Sans",
      "font.size": 9, "savefig.dpi": 100}
GT_COLOR, METHOD_COLOR = "black", "tab:blue"


def _new_ax(ax: Axes | None, figsize: tuple[float, float] = (5, 3.2)) -> Axes:
    if ax is not None:
        return ax
    with mpl.rc_context(RC):
        return Figure(figsize=figsize, layout="constrained").add_subplot()


def save_figure(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``<name>.png`` and ``<name>.pdf`` with fixed metadata, then clear the figure.

    Returns:
        The two paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    with mpl.rc_context(RC):
        fig.savefig(paths[0], format="png", metadata=PNG_METADATA)
        fig.savefig(paths[1], format="pdf", metadata=PDF_METADATA)
    fig.clear()
    return paths


def plot_ab_histograms(hists: dict[str, np.ndarray], edges: np.ndarray, gt_method: str = "gt",
                       fig: Figure | None = None) -> Figure:
    """Fig. 7 left: each method's a and b histograms (blue) over the ground truth (black).

    Args:
        hists: method -> float (2, n_bins) normalised histograms (a row, b row).
        edges: (n_bins + 1,) bin edges.
        gt_method: key of the reference histograms.
        fig: figure to draw into (default: a new one sized to the methods).
    """
    methods = [m for m in hists if m != gt_method]
    rows = max(len(methods), 1)
    with mpl.rc_context(RC):
        fig = fig or Figure(figsize=(6, 1.1 * rows + 0.7))
        fig.subplots_adjust(left=0.22, right=0.98, top=1 - 0.35 / (1.1 * rows + 0.7),
                            bottom=0.45 / (1.1 * rows + 0.7), hspace=0.15, wspace=0.08)
        axes = fig.subplots(rows, 2, squeeze=False, sharex=True, sharey=True)
        centers = (edges[:-1] + edges[1:]) / 2
        for i, m in enumerate(methods or [gt_method]):
            for c, name in enumerate("ab"):
                ax = axes[i, c]
                ax.plot(centers, np.maximum(hists[gt_method][c], 1e-7), color=GT_COLOR,
                        lw=1.2, label=gt_method)
                ax.plot(centers, np.maximum(hists[m][c], 1e-7), color=METHOD_COLOR, lw=1,
                        label=m)
                if i == 0:
                    ax.set_title(f"{name} channel")
                if c == 0:
                    ax.set_ylabel(m, rotation=0, ha="right", va="center")
        ax0 = axes[0, 0]
        ax0.set_yscale("log")  # shared by all panels
        ax0.set_ylim(1e-6, 1)
        ax0.yaxis.set_major_locator(ticker.FixedLocator([1e-6, 1e-4, 1e-2, 1]))
        ax0.yaxis.set_major_formatter(ticker.FixedFormatter(["1e-6", "1e-4", "0.01", "1"]))
        ax0.yaxis.set_minor_locator(ticker.NullLocator())
        for ax in axes[-1]:
            ax.set_xlabel("value")
    return fig


def plot_intersections(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Fig. 7 right: histogram intersection with the ground truth per method, a and b bars."""
    ax = _new_ax(ax, (5.5, 3))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["a"], 0.4, label="a")
    ax.bar(x + 0.2, table["b"], 0.4, label="b")
    ax.set_xticks(x, table["method"], rotation=45, ha="right")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("histogram intersection")
    ax.legend(loc="upper right", ncols=2)
    return ax


def plot_msssim_histogram(values: np.ndarray, ax: Axes | None = None, bins: int = 40) -> Axes:
    """Fig. 8 top: histogram of MS-SSIM between pairs of samples of the same image."""
    ax = _new_ax(ax)
    v = np.asarray(values, dtype=np.float64)
    lo = min(0.8, float(v.min())) if len(v) else 0.8
    ax.hist(v, bins=np.linspace(lo, 1.0, bins + 1), color=METHOD_COLOR)
    ax.set_xlabel("MS-SSIM between two samples")
    ax.set_ylabel("pairs")
    return ax


def plot_pairs(pairs: Sequence[tuple[np.ndarray, np.ndarray, str]],
               fig: Figure | None = None) -> Figure:
    """Fig. 8 bottom: example pairs, one column per pair, titled with its MS-SSIM."""
    with mpl.rc_context(RC):
        n = max(len(pairs), 1)
        fig = fig or Figure(figsize=(1.8 * n, 3.8), layout="constrained")
        axes = fig.subplots(2, n, squeeze=False)
        for j in range(n):
            for i in range(2):
                axes[i, j].axis("off")
            if j < len(pairs):
                a, b, title = pairs[j]
                axes[0, j].imshow(a, interpolation="nearest")
                axes[1, j].imshow(b, interpolation="nearest")
                axes[0, j].set_title(title)
    return fig


def plot_vtt(scores: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Fig. 6 as a bar chart: VTT score (%) with its bootstrap interval; 50% is chance."""
    ax = _new_ax(ax, (5.5, 3))
    s = scores.dropna(subset=["score"])
    x = np.arange(len(s))
    err = np.vstack([s["score"] - s["low"], s["high"] - s["score"]]) * 100
    ax.bar(x, s["score"] * 100, yerr=err, capsize=3, color=METHOD_COLOR)
    ax.axhline(50, color=GT_COLOR, ls="--", lw=0.8)
    ax.set_xticks(x, s["method"], rotation=45, ha="right")
    ax.set_ylabel("VTT score (%)")
    ax.set_ylim(0, max(60.0, float(np.nanmax(s["high"], initial=0)) * 100 + 5))
    return ax


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


def plot_image_grid(images: dict[str, list[np.ndarray]], image_ids: Sequence[str],
                    fig: Figure | None = None) -> Figure:
    """Table 3 form: rows are images, columns methods (missing images left blank).

    Drawn as one mosaic image in one axes (:func:`image_mosaic`), labelled with the
    methods on top and the image ids on the left: a grid of separate axes took seconds to
    lay out and save.

    Args:
        images: method -> list aligned with ``image_ids`` of uint8 RGB arrays or None.
        image_ids: row labels.
    """
    methods = list(images)
    canvas, xs, ys = image_mosaic(images, len(image_ids))
    with mpl.rc_context(RC):
        fig = fig or Figure(figsize=(1.2 * len(methods) + 0.5, 1.2 * len(image_ids) + 0.4),
                            layout="constrained")
        ax = fig.add_subplot()
        ax.imshow(canvas, interpolation="antialiased")
        ax.set_xticks(xs[:len(methods)], methods, fontsize=7)
        ax.xaxis.tick_top()
        ax.set_yticks(ys[:len(image_ids)], list(image_ids), fontsize=7)
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
    return fig
