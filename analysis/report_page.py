"""The report's sections as HTML and Markdown, and its images inlined for a one-file page.

A :class:`~analysis.report_html.Section` holds display tables (strings under human headers,
:func:`analysis.display.display_frame`; a raw frame is formatted here by the same rules) or
:class:`Block` objects (a table rendered already, such as the leaderboard). With
``self_contained`` every image is a ``data:`` URI (figures as PNG, or JPEG where that is
under half the size; grid thumbnails as written, :mod:`analysis.thumbnails`) and nothing
links to a local file, so ``report.html`` opens anywhere on its own.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from analysis.display import display_frame
from analysis.tables import to_markdown

JPEG_QUALITY = 88

# The leaderboard: values with their interval under them in smaller type, so that a dozen
# columns fit 1280 px without the page scrolling sideways; the best of a column shaded.
# Narrower than 1100 px, a wide table scrolls sideways inside its own box (the page does not).
LEADERBOARD_CSS = """table.leaderboard{font-size:12px;margin:.5em 0 1em}
table.leaderboard th,table.leaderboard td{padding:3px 4px;vertical-align:top}
table.leaderboard td{text-align:right}table.leaderboard thead th{background:#f4f4f4;
font-weight:600;text-align:center}table.leaderboard tbody th{text-align:left;font-weight:normal}
table.leaderboard .v{white-space:nowrap}table.leaderboard .ci{color:#555;font-size:11px}
table.leaderboard thead th{font-size:11px}table.leaderboard td.best{background:#e6f2e6}
table.leaderboard .paper{background:#fff8e6}table.leaderboard tr.ref{color:#666}
.summary li,.notes li{margin:.15em 0}.caption{font-size:13px;color:#333}
@media (max-width:1100px){table.leaderboard,table.data{display:block;overflow-x:auto;
max-width:100%}}
details{margin:.5em 0}table.data td{text-align:right}table.data td:first-child{text-align:left}"""


@dataclass(frozen=True)
class Block:
    """A table rendered already: its HTML (a ``<table>``) and its Markdown."""

    html: str
    markdown: str


def _b64(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buf.getvalue()


def figure_uri(path: Path) -> str:
    """A figure's PNG as a ``data:`` URI: PNG, or JPEG where that is under half the size
    (figures of photographs)."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        background = Image.new("RGB", im.size, "white")
        rgba = im.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        jpeg = _jpeg(background)
    return _b64(jpeg, "image/jpeg") if len(jpeg) < len(data) / 2 else _b64(data, "image/png")


def table_html(table: pd.DataFrame | Block) -> str:
    """A table of a section as HTML (a frame by its display rules, class ``data``)."""
    if isinstance(table, Block):
        return table.html
    return display_frame(table).to_html(index=False, na_rep="–", border=0, escape=True,
                                        classes="data")


def table_markdown(table: pd.DataFrame | Block) -> str:
    """A table of a section as Markdown (a frame by its display rules)."""
    if isinstance(table, Block):
        return table.markdown
    return to_markdown(display_frame(table))


def section_html(section, out: Path, self_contained: bool = False) -> str:
    """One :class:`~analysis.report_html.Section` as HTML: title, paragraphs, bullets,
    tables, figures (inlined when ``self_contained``; else linked, with their PDF) and the
    collapsed details."""
    e = html.escape
    parts = [f"<h2 id='{e(_anchor(section.title))}'>{e(section.title)}</h2>"]
    parts += [f"<p>{e(t)}</p>" for t in section.text]
    if section.bullets:
        parts.append(f"<ul class='{e(_anchor(section.title))}'>"
                     + "".join(f"<li>{e(b)}</li>" for b in section.bullets) + "</ul>")
    parts += [table_html(t) for t in section.tables]
    parts += [f"<p class='caption'>{e(c)}</p>" for c in section.captions]
    for f in section.figures:
        png = out / "figures" / f"{f}.png"
        if self_contained:
            src = figure_uri(png) if png.exists() else ""
            parts.append(f"<p><img class='fig' src='{src}' alt='{e(f)}'></p>")
        else:
            parts.append(f"<p><img class='fig' src='figures/{e(f)}.png' alt='{e(f)}'><br>"
                         f"<a href='figures/{e(f)}.pdf'>{e(f)}.pdf</a></p>")
    if section.details:
        parts.append("<details><summary>Details</summary><ul class='notes'>"
                     + "".join(f"<li>{e(d)}</li>" for d in section.details)
                     + "</ul></details>")
    return "\n".join(parts)


def section_markdown(section) -> str:
    """One section as Markdown (figures linked by relative path)."""
    lines = [f"## {section.title}", ""]
    lines += [*(t for para in section.text for t in (para, ""))]
    lines += [f"- {b}" for b in section.bullets] + ([""] if section.bullets else [])
    for t in section.tables:
        lines += [table_markdown(t).rstrip("\n"), ""]
    lines += [*(t for c in section.captions for t in (c, ""))]
    lines += [f"![{f}](figures/{f}.png)" for f in section.figures]
    lines += [""] if section.figures else []
    lines += [f"- {d}" for d in section.details] + ([""] if section.details else [])
    return "\n".join(lines)


def render_markdown(out: Path, sections: list, grid_ids: list[str]) -> Path:
    """Write ``out/report.md``: the sections in the HTML page's order."""
    parts = ["# PixColor analysis report", "", *(section_markdown(s) for s in sections)]
    if grid_ids:
        parts += ["## Random test images (Table 3)", "",
                  f"Photos {', '.join(grid_ids)}: ![Table 3](figures/table3_grid.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(parts).rstrip("\n") + "\n")
    return path


def _anchor(title: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")
