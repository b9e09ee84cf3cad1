"""``report.html`` and its image grid (paper Table 3: random test images x methods).

The page opens on the summary and the leaderboard (its first table), then the sections in
order, the image grid and the settings (:mod:`analysis.report_page` renders a section, and
``report.md``, the same report as Markdown). The grid rows are drawn with
``np.random.default_rng(seed)`` from the image ids that have a ground truth, so the same seed
shows the same images; thumbnails are written next to the report (PIL writes no timestamps)
and the page links figures by relative paths, or, ``self_contained``, inlines every image.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures, thumbnails
from analysis.report_page import LEADERBOARD_CSS, Block, section_html
from analysis.runs import GT_METHOD, RunsFolder
from pixcolor.io import ImageLoadError


@dataclass
class Section:
    """One block of the report: a title, paragraphs, bullet points, tables (display frames
    or rendered :class:`~analysis.report_page.Block` objects), captions under the tables,
    figure names and collapsed details."""

    title: str
    tables: list[pd.DataFrame | Block] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


def pick_grid_ids(image_ids: Sequence[str], k: int, seed: int) -> list[str]:
    """``k`` ids drawn without replacement with ``default_rng(seed)``, in drawn order."""
    ids = list(image_ids)
    if not ids or k <= 0:
        return []
    idx = np.random.default_rng(seed).choice(len(ids), size=min(k, len(ids)), replace=False)
    return [ids[i] for i in idx]


def write_grid(runs: RunsFolder, methods: Sequence[str], image_ids: Sequence[str],
               out_dir: Path, k: int, seed: int, fig_dir: Path) -> list[str]:
    """Write thumbnails ``out_dir/<method>/<id>.<ext>`` (:mod:`analysis.thumbnails`) and the
    Table 3 figure.

    Returns:
        The chosen image ids (rows of the grid).
    """
    with_gt = [i for i in image_ids if runs.path(GT_METHOD, i).exists()] or list(image_ids)
    chosen = pick_grid_ids(with_gt, k, seed)
    grid: dict[str, list[np.ndarray | None]] = {}
    for m in methods:
        (out_dir / m).mkdir(parents=True, exist_ok=True)
        grid[m] = []
        for i in chosen:
            try:
                img = runs.load(m, i)
            except ImageLoadError:
                grid[m].append(None)
                continue
            grid[m].append(thumbnails.write_thumbnail(img, out_dir, m, i))
    if chosen and methods:
        figures.save_figure(figures.plot_image_grid(grid, chosen), fig_dir, "table3_grid")
    return chosen


# Figures and the Table 3 grid: no page scrolls sideways. A figure shows at its own size
# (PNGs are 160 dpi, at most 6.5 in = 1040 px) or shrinks to the column. The grid's columns
# share the column's width (thumbnails scale down, names wrap); under 720 px, where 13
# columns would be too small to see, the grid scrolls sideways inside its own box (the page
# does not) with the image ids kept in view.
_FIGURE_CSS = """img.fig{display:block;max-width:100%;height:auto}
table.grid{table-layout:fixed;width:100%}
table.grid td,table.grid th{padding:2px;font-size:11px;vertical-align:top;
overflow-wrap:anywhere}
table.grid tr>:first-child{width:7em}
table.grid img{display:block;width:100%;max-width:192px;height:auto;margin:auto}
@media (max-width:720px){table.grid{display:block;overflow-x:auto;width:auto;
max-width:100%;table-layout:auto}table.grid img{width:88px}
table.grid tr>:first-child{position:sticky;left:0;background:#fff;z-index:1;
min-width:6em}}"""
_CSS = """body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}
p,li{overflow-wrap:anywhere}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;
font-size:13px}pre{background:#f4f4f4;
padding:.5em;overflow:auto}""" + _FIGURE_CSS + LEADERBOARD_CSS


def _grid_src(out: Path, method: str, image_id: str, self_contained: bool) -> str:
    path = thumbnails.thumb_path(out / "grid", method, image_id)
    return thumbnails.data_uri(path) if self_contained else html.escape(
        path.relative_to(out).as_posix())


def render_html(out: Path, sections: list[Section], settings: dict, methods: Sequence[str],
                grid_ids: Sequence[str], self_contained: bool = False) -> Path:
    """Write ``out/report.html`` and return its path.

    Args:
        out: the report folder (figures and grid thumbnails are read from it).
        sections: in page order: the summary and the leaderboard first.
        settings: shown at the end (``settings.json``).
        methods, grid_ids: the image grid's columns and rows.
        self_contained: inline every image (``data:`` URIs) and link no local file.
    """
    e = html.escape
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             "<title>PixColor analysis report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>PixColor analysis report</h1>"]
    parts += [section_html(s, out, self_contained) for s in sections]
    if grid_ids:
        parts.append("<h2>Random test images (Table 3)</h2><table class='grid'><tr><th>id</th>"
                     + "".join(f"<th>{e(m).replace('_', '_<wbr>')}</th>" for m in methods)
                     + "</tr>")
        for i in grid_ids:
            cells = "".join(
                f"<td><img src='{_grid_src(out, m, i, self_contained)}' alt='{e(m)} {e(i)}'>"
                "</td>" if thumbnails.thumb_path(out / "grid", m, i).exists()
                else "<td>missing</td>" for m in methods)
            parts.append(f"<tr><td>{e(i)}</td>{cells}</tr>")
        parts.append("</table>")
    parts.append("<h2>Settings</h2><details><summary>settings.json: everything the numbers "
                 "depend on</summary><pre>" + e(json.dumps(settings, indent=2, default=str))
                 + "</pre></details></body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts) + "\n")
    return path
