"""The look of the analysis figures: page size, fonts, one colour per method, method labels
that wrap instead of clipping, and byte-stable PNG + PDF files.

Sizes are inches at the paper's text width, :data:`TEXT_WIDTH_IN` = 6.5 in (a one-column
article on US Letter with 1-inch margins; no figure is wider than that, so each also fits a
7-in column). Text is 8 pt (tick labels 7 pt) at that size, so a figure placed at 100 % in
the paper shows the paper's small-print size. PNGs (for the HTML report) are written at
:data:`PNG_DPI` = 160: a full-width figure is 1040 px, inside the report's column at a
1280-px window (the CSS scales it down on narrower screens), and every figure shows its
text at the same size (8 pt = 18 px). PDFs are vector (text as TrueType, ``pdf.fonttype``
42, which paper checkers accept where they reject Type 3).

Colours are Okabe & Ito's colour-blind-safe palette, fixed by method name (never by
position), so a method has the same colour in every figure and every report: a colour names
a family (the PixColor samples share blue, the refinement ablation purple, the truth is
black) and the axis label names the member. Unknown methods get a palette colour chosen by
a hash of their name.

Everything is drawn through matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import matplotlib as mpl
from cycler import cycler
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

TEXT_WIDTH_IN = 6.5  # widest figure, inches (one-column paper, US Letter, 1-in margins)
PNG_DPI = 160  # PNG pixels per inch: full width = 1040 px

# Okabe & Ito (2008), "Color universal design": distinguishable with any colour vision.
ORANGE, SKY_BLUE, GREEN, YELLOW = "#E69F00", "#56B4E9", "#009E73", "#F0E442"
BLUE, VERMILLION, PURPLE, BLACK = "#0072B2", "#D55E00", "#CC79A7", "#000000"
GREY = "#999999"
OKABE_ITO = (ORANGE, SKY_BLUE, GREEN, YELLOW, BLUE, VERMILLION, PURPLE, BLACK)
LIGHT = "#E6E6E6"  # grid lines
INK = "#444444"  # reference lines, error bars, annotations

METHOD_COLORS = {
    "gt": BLACK, "gt_protocol": BLACK,  # the truth (black in the paper's Fig. 7)
    "ltbc": ORANGE, "cic": SKY_BLUE, "lrac": GREEN,  # the published baselines
    "pixcolor_best": BLUE,  # best of N PixColor draws: a PixColor sample
    "pixcolor_oracle": VERMILLION,  # raters' best sample (beside Fig. 6)
    "pixcolor_unrefined": PURPLE, "gt28_unrefined": PURPLE, "gt28_refined": PURPLE,
    "grayscale": GREY,
}
_SAMPLE = re.compile(r"pixcolor_s(\d+|\*.*)$")  # pixcolor_s1, s2, ... and the pooled label
# Hashed colours for other names: no yellow (too faint for lines on white), no black
_FALLBACK = (ORANGE, SKY_BLUE, GREEN, BLUE, VERMILLION, PURPLE)

RC = {
    "svg.hashsalt": "pixcolor", "pdf.fonttype": 42, "ps.fonttype": 42,
    "font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 8,
    "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7,
    "figure.titlesize": 8, "axes.spines.top": False, "axes.spines.right": False,
    "axes.linewidth": 0.6, "axes.edgecolor": INK, "axes.labelcolor": "black",
    "xtick.major.width": 0.6, "ytick.major.width": 0.6, "xtick.major.size": 2.5,
    "ytick.major.size": 2.5, "xtick.color": INK, "ytick.color": INK,
    "xtick.labelcolor": "black", "ytick.labelcolor": "black",
    "axes.grid": False, "grid.color": LIGHT, "grid.linewidth": 0.6, "lines.linewidth": 1.0,
    "legend.frameon": False, "hatch.linewidth": 0.6, "axes.prop_cycle": cycler(
        color=list(_FALLBACK)), "figure.dpi": PNG_DPI, "savefig.dpi": PNG_DPI,
    "figure.constrained_layout.h_pad": 0.03, "figure.constrained_layout.w_pad": 0.03,
}
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None}

F = TypeVar("F", bound=Callable)


def method_color(method: str) -> str:
    """The fixed colour of a method (hex): its family's, else one chosen by its name."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    if _SAMPLE.match(method):
        return BLUE
    return _FALLBACK[zlib.crc32(method.encode()) % len(_FALLBACK)]


def display_name(method: str, width: int = 14) -> str:
    """``method`` broken into lines of at most ``width`` characters for a label.

    Lines break after ``_``, ``-`` or a space (``pixcolor_unrefined`` -> ``pixcolor_`` /
    ``unrefined``); a part longer than ``width`` is cut into pieces. Nothing is dropped.
    """
    lines: list[str] = []
    line = ""
    for token in re.findall(r"[^_\s-]*[_\s-]+|[^_\s-]+$", method):
        while len(token) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(token[:width])
            token = token[width:]
        if line and len(line + token.rstrip()) > width:
            lines.append(line)
            line = ""
        line += token
    lines.append(line)
    return "\n".join(t.strip() for t in lines if t.strip())


def styled(fn: F) -> F:
    """Run ``fn`` (a plotting function) under :data:`RC`, so figures look alike."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(RC):
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def new_figure(width: float = TEXT_WIDTH_IN, height: float = 2.6) -> Figure:
    """A constrained-layout figure on an Agg canvas, ``width`` x ``height`` inches."""
    with mpl.rc_context(RC):
        fig = Figure(figsize=(min(width, TEXT_WIDTH_IN), height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def draw(fig: Figure) -> None:
    """Lay out and draw ``fig`` without writing a file (text extents are then final)."""
    with mpl.rc_context(RC):
        fig.draw_without_rendering()


def save_figure(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``<name>.png`` (:data:`PNG_DPI`) and ``<name>.pdf`` (vector) with fixed
    metadata, so reruns give identical bytes, then clear the figure.

    Returns:
        The two paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    with mpl.rc_context(RC):
        fig.savefig(paths[0], format="png", dpi=PNG_DPI, metadata=PNG_METADATA)
        fig.savefig(paths[1], format="pdf", metadata=PDF_METADATA)
    fig.clear()
    return paths
