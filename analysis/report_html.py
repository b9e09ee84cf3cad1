"""``report.html`` and its image grid (paper Table 3: random test images x methods).

The grid rows are drawn with ``np.random.default_rng(seed)`` from the image ids that have a
ground truth, so the same seed shows the same images; thumbnails are written as PNG next to
the report (PIL writes no timestamps) and the page links figures by relative paths.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from analysis import figures
from analysis.runs import GT_METHOD, RunsFolder
from pixcolor.io import ImageLoadError

THUMB_SIDE = 160  # longest side of a grid thumbnail, px


@dataclass
class Section:
    """One block of the report: a title, paragraphs, tables and figure names."""

    title: str
    tables: list[pd.DataFrame] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)


def pick_grid_ids(image_ids: Sequence[str], k: int, seed: int) -> list[str]:
    """``k`` ids drawn without replacement with ``default_rng(seed)``, in drawn order."""
    ids = list(image_ids)
    if not ids or k <= 0:
        return []
    idx = np.random.default_rng(seed).choice(len(ids), size=min(k, len(ids)), replace=False)
    return [ids[i] for i in idx]


def write_grid(runs: RunsFolder, methods: Sequence[str], image_ids: Sequence[str],
               out_dir: Path, k: int, seed: int, fig_dir: Path) -> list[str]:
    """Write thumbnails ``out_dir/<method>/<id>.png`` and the Table 3 figure.

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
            thumb = Image.fromarray(img)
            thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
            thumb.save(out_dir / m / f"{i}.png")
            grid[m].append(np.asarray(thumb))
    if chosen and methods:
        figures.save_figure(figures.plot_image_grid(grid, chosen), fig_dir, "table3_grid")
    return chosen


_CSS = """body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;
font-size:13px}img.fig{max-width:100%}.grid img{width:110px}pre{background:#f4f4f4;
padding:.5em;overflow:auto}"""


def _table_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="", border=0,
                      escape=True)


def render_html(out: Path, sections: list[Section], settings: dict, rules: list[str],
                methods: Sequence[str], grid_ids: Sequence[str]) -> Path:
    """Write ``out/report.html`` and return its path."""
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             "<title>PixColor analysis report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>PixColor analysis report</h1>",
             f"<p>Runs: <code>{e(str(settings.get('runs')))}</code>; responses: "
             f"<code>{e(str(settings.get('responses')))}</code>.</p>"]
    if rules:
        parts.append("<h2>Exclusion rules</h2><ul>" +
                     "".join(f"<li>{e(r)}</li>" for r in rules) + "</ul>")
    for s in sections:
        parts.append(f"<h2>{e(s.title)}</h2>")
        parts += [f"<p>{e(t)}</p>" for t in s.text]
        parts += [_table_html(t) for t in s.tables]
        for f in s.figures:
            parts.append(f"<p><img class='fig' src='figures/{e(f)}.png' alt='{e(f)}'><br>"
                         f"<a href='figures/{e(f)}.pdf'>{e(f)}.pdf</a></p>")
    if grid_ids:
        parts.append("<h2>Random test images (Table 3)</h2><table class='grid'><tr><th>id</th>"
                     + "".join(f"<th>{e(m)}</th>" for m in methods) + "</tr>")
        for i in grid_ids:
            cells = "".join(
                f"<td><img src='grid/{e(m)}/{e(i)}.png' alt='{e(m)} {e(i)}'></td>"
                if (out / "grid" / m / f"{i}.png").exists() else "<td>missing</td>"
                for m in methods)
            parts.append(f"<tr><td>{e(i)}</td>{cells}</tr>")
        parts.append("</table>")
    parts.append("<h2>Settings</h2><pre>" +
                 e(json.dumps(settings, indent=2, default=str)) + "</pre></body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts) + "\n")
    return path
