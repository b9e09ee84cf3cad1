"""The report's figures (analysis.figures, analysis.figure_style) and grid thumbnails
(analysis.thumbnails): both files, vector PDFs, page width, one colour per method, whole
labels."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from PIL import Image

from analysis import figure_style, figures, thumbnails
from analysis.figure_style import GREY, OKABE_ITO, PNG_DPI, TEXT_WIDTH_IN, method_color

LONG = "external_colorizer_with_a_rather_long_folder_name_v2"
METHODS = ["ltbc", "cic", "pixcolor_s1", "pixcolor_s2", "pixcolor_unrefined", "gt28_refined",
           LONG]
EDGES = np.arange(-128.0, 128.0 + 1e-9, 4.0)


def _hist(rng: np.random.Generator, spread: float) -> np.ndarray:
    c = (EDGES[:-1] + EDGES[1:]) / 2
    h = np.exp(-np.abs(c) / spread)[None] * rng.uniform(0.8, 1.2, (2, len(c)))
    return h / h.sum(axis=1, keepdims=True)


def _vtt() -> Figure:
    rows = [{"method": m, "score": 0.2 + 0.02 * k, "low": 0.1 + 0.02 * k,
             "high": 0.3 + 0.02 * k} for k, m in enumerate(METHODS)]
    rows.insert(3, {"method": "pixcolor_oracle", "score": 0.38, "low": 0.3, "high": 0.46})
    return figures.plot_vtt(pd.DataFrame(rows)).figure


def _ab() -> Figure:
    rng = np.random.default_rng(0)
    hists = {m: _hist(rng, 10 + k) for k, m in enumerate(METHODS)}
    hists["gt"] = _hist(rng, 20)
    return figures.plot_ab_histograms(hists, EDGES, "gt")


def _intersections() -> Figure:
    table = pd.DataFrame({"method": METHODS, "a": np.linspace(0.5, 0.9, len(METHODS)),
                          "b": np.linspace(0.4, 0.95, len(METHODS))})
    return figures.plot_intersections(table).figure


def _msssim() -> Figure:
    return figures.plot_msssim_histogram(np.random.default_rng(1).uniform(0.85, 1, 60)).figure


def _images(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(n)]


def _pairs() -> Figure:
    a, b = _images(3, 2), _images(3, 3)
    return figures.plot_pairs([(a[k], b[k], f"{0.7 + 0.1 * k:.3f}") for k in range(3)])


def _grid() -> Figure:
    ids = ["img0001", "a_photo_with_a_long_identifier"]
    imgs = {m: _images(2, k) for k, m in enumerate(METHODS)}
    imgs["cic"][1] = None
    return figures.plot_image_grid(imgs, ids)


PLOTS = {"fig6_vtt": _vtt, "fig7_ab_histograms": _ab, "fig7_histogram_intersection":
         _intersections, "fig8_ms_ssim_histogram": _msssim, "fig8_example_pairs": _pairs,
         "table3_grid": _grid}
VECTOR = ["fig6_vtt", "fig7_ab_histograms", "fig7_histogram_intersection",
          "fig8_ms_ssim_histogram"]  # plots only: no raster at all


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("figs")
    return {name: figures.save_figure(make(), out, name) for name, make in PLOTS.items()}


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_each_figure_writes_png_and_pdf(saved, name):
    png, pdf = saved[name]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with Image.open(png) as im:
        assert im.width <= TEXT_WIDTH_IN * PNG_DPI + 1
        assert im.info["dpi"] == pytest.approx((PNG_DPI, PNG_DPI), abs=0.5)
    body = pdf.read_bytes()
    assert b"/CreationDate" not in body and b"Matplotlib" not in body  # byte-stable
    if name in VECTOR:  # lines, bars and text as PDF paths and fonts, no embedded bitmap
        assert b"/Subtype /Image" not in body
        assert b"/FontFile2" in body  # TrueType text (pdf.fonttype 42), not Type 3
    else:  # the photos are bitmaps; the labels are still text
        assert b"/Subtype /Image" in body and b"/FontFile2" in body


def test_reruns_give_identical_bytes(saved, tmp_path):
    for name in ["fig6_vtt", "fig7_ab_histograms", "table3_grid"]:
        again = figures.save_figure(PLOTS[name](), tmp_path, name)
        assert [p.read_bytes() for p in again] == [p.read_bytes() for p in saved[name]]


def _texts(fig: Figure) -> list[Text]:
    """The texts drawn: not the ticks of axes switched off nor ticks outside the view."""
    hidden = set()
    for ax in fig.findobj(Axes):
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            tol = 1e-9 * max(abs(lo), abs(hi), 1)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not ax.axison or not lo - tol <= tick.get_loc() <= hi + tol:
                    hidden |= {id(t) for t in tick.findobj(Text)}
            if not ax.axison:
                hidden |= {id(t) for t in axis.findobj(Text)}
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
            and id(t) not in hidden]


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_fits_the_page_and_no_label_is_clipped(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. constrained layout giving up
        fig = PLOTS[name]()
        figure_style.draw(fig)
    w, h = fig.get_size_inches()
    assert w <= TEXT_WIDTH_IN <= 7 and h <= 9
    box = fig.bbox
    for ax in fig.findobj(Axes):  # every panel on the page
        pos = ax.get_window_extent()
        assert pos.x0 >= box.x0 and pos.x1 <= box.x1 and pos.y0 >= box.y0 and pos.y1 <= box.y1
    texts = _texts(fig)
    assert texts
    for t in texts:
        ext = t.get_window_extent()
        assert (ext.x0 >= box.x0 - 1 and ext.x1 <= box.x1 + 1 and ext.y0 >= box.y0 - 1
                and ext.y1 <= box.y1 + 1), (name, t.get_text(), ext, box)
    shown = {t.get_text().replace("\n", "") for t in texts}
    if name not in ("fig8_ms_ssim_histogram", "fig8_example_pairs"):
        assert LONG in shown  # whole, wrapped onto lines
        assert all(m in shown for m in METHODS)


def test_long_names_wrap_at_separators_without_losing_characters():
    assert figure_style.display_name("pixcolor_unrefined") == "pixcolor_\nunrefined"
    assert figure_style.display_name("cic") == "cic"
    for name in [LONG, "x" * 40, "pixcolor_s* (pooled)", "a-b c_d"]:
        for width in (6, 10, 14):
            text = figure_style.display_name(name, width)
            assert all(len(line) <= width for line in text.split("\n"))
            assert re.sub(r"\s", "", text) == re.sub(r"\s", "", name)


def _bar_colors(ax, n: int) -> list[str]:
    bars = [p for p in ax.patches if isinstance(p, Rectangle)][:n]
    return [to_hex(b.get_facecolor()) for b in bars]


def test_a_method_keeps_its_colour_across_figures():
    vtt = _vtt().axes[0]
    labels = [t.get_text().replace("\n", "") for t in vtt.get_xticklabels()]
    assert labels[-1] == "pixcolor_oracle"  # the oracle stands apart, last
    vtt_colors = dict(zip(labels, _bar_colors(vtt, len(labels)), strict=True))
    inter = _intersections().axes[0]
    inter_colors = dict(zip(METHODS, _bar_colors(inter, len(METHODS)), strict=True))
    ab = _ab()
    line_colors = {}
    for cell in ab.subfigs:
        if cell.get_visible():
            title = cell._suptitle.get_text().replace("\n", "")
            line_colors[title] = to_hex(cell.axes[0].lines[1].get_color())
    for m in METHODS:
        assert vtt_colors[m] == inter_colors[m] == line_colors[m] == method_color(m).lower()
    assert vtt_colors["pixcolor_oracle"] == method_color("pixcolor_oracle").lower()
    # fixed by name, not by position or by which other methods are present
    shuffled = pd.DataFrame({"method": METHODS[::-1], "a": 0.5, "b": 0.5})
    ax = figures.plot_intersections(shuffled)
    assert _bar_colors(ax, len(METHODS)) == [inter_colors[m] for m in METHODS[::-1]]
    assert figure_style.method_color(LONG) == method_color(LONG)


def test_palette_is_colour_blind_safe():
    safe = {c.lower() for c in [*OKABE_ITO, GREY]}
    for m in [*METHODS, "pixcolor_oracle", "pixcolor_best", "pixcolor_s* (pooled)", "gt",
              "grayscale", "lrac", "gt28_unrefined", "anything", "z" * 30]:
        assert method_color(m).lower() in safe
    assert method_color("pixcolor_s7") == method_color("pixcolor_s* (pooled)")
    assert method_color("gt") == "#000000"  # the truth stays black, as in the paper
    assert len({method_color(m) for m in ["ltbc", "cic", "lrac", "pixcolor_s1",
                                          "pixcolor_oracle", "gt28_refined"]}) == 6


def test_thumbnails_path_bytes_and_data_uri(tmp_path):
    img = np.random.default_rng(4).integers(0, 256, (300, 420, 3), dtype=np.uint8)
    arr = thumbnails.write_thumbnail(img, tmp_path, "pixcolor_s1", "img0001")
    path = thumbnails.thumb_path(tmp_path, "pixcolor_s1", "img0001")
    assert path == tmp_path / "pixcolor_s1" / f"img0001.{thumbnails.THUMB_EXT}"
    assert max(arr.shape[:2]) == thumbnails.THUMB_SIDE <= 256 and arr.shape[2] == 3
    assert path.read_bytes() == thumbnails.thumbnail_bytes(img)  # same bytes every time
    with Image.open(path) as im:
        assert im.size == (arr.shape[1], arr.shape[0])
    uri = thumbnails.data_uri(path)
    assert uri.startswith("data:image/") and ";base64," in uri
    small = np.zeros((20, 30, 3), np.uint8)
    assert thumbnails.thumbnail(small).size == (30, 20)  # never enlarged
