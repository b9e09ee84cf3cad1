"""A :class:`analysis.leaderboard.Leaderboard` as CSV, Markdown, LaTeX and HTML.

Every form shows the same cells (:func:`grid`): each column under its human name and unit
with its direction (``PSNR (dB) ↑``), each value as its display rule says
(:mod:`analysis.display`: PSNR ``23.36``, SSIM ``0.910``, a rate ``90.1%``) with its interval
(``[21.31, 25.56]``), the VTT fool rate ``34.9% ± 2.16`` (one bootstrap standard deviation,
as the paper's Fig. 6) with the paper's number beside it in a column labelled as the
paper's, the best per column in bold, references marked with a dagger.

* ``leaderboard.csv``: one row per (method, metric): split, mean, interval, image count,
  best, reference, sd, direction (full precision).
* ``leaderboard.md``: the table, its notes and column descriptions, the paper's numbers
  with their sources, then the published numbers of other papers as a separate table.
* ``leaderboard.tex`` and ``published.tex``: booktabs ``tabular`` environments, ready to
  ``\\input`` (the document needs ``\\usepackage{booktabs}``); text is escaped.
* ``published.csv``: the published rows shown; :func:`to_html`: the table for a page.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.display import MISSING, display_of, format_bounds, format_sd, format_value
from analysis.latex import latex_escape
from analysis.leaderboard import Column, Leaderboard

__all__ = ["Cell", "Grid", "display_frame", "grid", "latex_escape", "published_latex",
           "to_html", "to_latex", "to_markdown", "write_leaderboard"]

PAPER_SUFFIX = " (paper)"


@dataclass(frozen=True)
class Cell:
    """One shown value: the number (``23.36``; ``34.9% ± 2.16``), its interval and whether
    it is the best of its column."""

    text: str
    detail: str = ""
    best: bool = False


@dataclass(frozen=True)
class Grid:
    """The table every form renders: ``header`` (``Method`` first), ``keys`` (the column
    names, ``<metric> (paper)`` for the paper's), and per row the method, whether it is a
    reference and its cells."""

    header: list[str]
    keys: list[str]
    rows: list[tuple[str, bool, list[Cell]]]


def _arrow(col: Column) -> str:
    return "↑" if col.higher_is_better else "↓"


def _cell(cell: dict | None, name: str) -> Cell:
    if cell is None:
        return Cell(MISSING)
    rule = display_of(name)
    sd = cell.get("sd")
    if sd is not None and sd == sd:  # the VTT column: ± one bootstrap SD, as the paper's
        return _sd_cell(rule, cell["mean"], sd, bool(cell["best"]))
    mean = cell["mean"]
    detail = "" if mean != mean or abs(mean) == float("inf") else format_bounds(
        rule, cell["low"], cell["high"])
    return Cell(format_value(rule, mean), detail, bool(cell["best"]))


def _sd_cell(rule, mean: float, sd: float, best: bool = False) -> Cell:
    """``34.9%`` with ``± 2.16`` as its detail (one standard deviation, 2 decimals as the
    paper prints them)."""
    text = format_value(rule, mean)
    return Cell(text, format_sd(rule, mean, sd, 2)[len(text):].strip(), best)


def _paper_cell(board: Leaderboard, method: str, name: str) -> Cell:
    hit = board.paper[(board.paper["method"] == method) & (board.paper["metric"] == name)]
    if not len(hit):
        return Cell(MISSING)
    r = hit.iloc[0]
    return _sd_cell(display_of(name), float(r["value"]), float(r["pm"]))


def _paper_columns(board: Leaderboard) -> set[str]:
    return set(board.paper["metric"]) if len(board.paper) else set()


def grid(board: Leaderboard) -> Grid:
    """The cells of ``board`` as every form shows them (module docstring)."""
    with_paper = _paper_columns(board)
    header, keys = ["Method"], ["method"]
    for c in board.columns:
        header.append(f"{display_of(c.name).label} {_arrow(c)}")
        keys.append(c.name)
        if c.name in with_paper:
            header.append(f"{display_of(c.name).label}{PAPER_SUFFIX}")
            keys.append(c.name + PAPER_SUFFIX)
    refs = set(board.cells.loc[board.cells["reference"].astype(bool), "method"])
    rows = []
    for m in board.methods:
        cells = []
        for c in board.columns:
            cells.append(_cell(board.cell(m, c.name), c.name))
            if c.name in with_paper:
                cells.append(_paper_cell(board, m, c.name))
        rows.append((m, m in refs, cells))
    return Grid(header, keys, rows)


def _md_cell(c: Cell) -> str:
    text = f"**{c.text}**" if c.best else c.text
    return f"{text} {c.detail}".strip().replace("|", "\\|")


def to_markdown(board: Leaderboard) -> str:
    """The leaderboard, its notes, the paper's numbers and the published block as Markdown."""
    g = grid(board)
    lines = [f"# Leaderboard: {board.split}", "",
             "| " + " | ".join(h.replace("|", "\\|") for h in g.header) + " |",
             "| --- |" + " ---: |" * (len(g.header) - 1)]
    for m, ref, cells in g.rows:
        lines.append("| " + " | ".join([f"{m} †" if ref else m, *map(_md_cell, cells)]) + " |")
    lines += ["", *[f"- {n}" for n in board.notes],
              "- † reference: sees the truth's colours; not ranked", "", "Columns:", ""]
    lines += [f"- {display_of(c.name).label} (`{c.name}`, "
              f"{'higher' if c.higher_is_better else 'lower'} is better): {c.description}"
              for c in board.columns]
    lines += ["", *_paper_markdown(board), *_published_markdown(board)]
    return "\n".join(lines).rstrip() + "\n"


def _paper_markdown(board: Leaderboard) -> list[str]:
    if board.paper.empty:
        return []
    lines = ["## The paper's numbers (shown beside ours, labelled 'paper')", "",
             "| method | metric | paper | kind of ± | source | note |",
             "| --- | --- | ---: | --- | --- | --- |"]
    for r in board.paper.itertuples(index=False):
        value = format_sd(display_of(r.metric), r.value, r.pm, 2)
        lines.append(f"| {r.method} | {r.metric} | {value} | {r.pm_kind or '–'} | "
                     f"{r.source} | {str(r.note).replace('|', '/')} |")
    return [*lines, ""]


def _published_title(board: Leaderboard) -> str:
    if board.published_match:
        return (f"## Published numbers: protocol {board.split} (from the papers' own runs, "
                "not computed here)")
    return (f"## Published numbers, other protocols (not {board.split}: not comparable with "
            "the rows above)")


def _published_markdown(board: Leaderboard) -> list[str]:
    if board.published.empty:
        return []
    lines = [_published_title(board), "",
             "| method | protocol | metric | value | source | note |",
             "| --- | --- | --- | ---: | --- | --- |"]
    for r in board.published.itertuples(index=False):
        lines.append(f"| {r.method} | {r.protocol} | {r.metric} | {r.value:g} | "
                     f"<{r.source}> | {str(r.note).replace('|', '/')} |")
    return lines


def _tex_cell(c: Cell) -> str:
    text = latex_escape(c.text)
    text = rf"\textbf{{{text}}}" if c.best else text
    return text + (rf" {{\scriptsize {latex_escape(c.detail)}}}" if c.detail else "")


def to_latex(board: Leaderboard) -> str:
    """The leaderboard as a booktabs ``tabular`` (references last, after a rule)."""
    g = grid(board)
    lines = [f"% Leaderboard of {latex_escape(board.split)}: mean [interval]; best per "
             r"column in bold; $^\dagger$ references (see the truth's colours), not ranked.",
             r"% Needs \usepackage{booktabs}.",
             r"\begin{tabular}{l" + "r" * (len(g.header) - 1) + "}", r"\toprule",
             " & ".join(latex_escape(h) for h in g.header) + r" \\", r"\midrule"]
    if board.paper is not None and len(board.paper):
        lines.insert(1, "% VTT fool rate: ours and the paper's (column '(paper)') +- one "
                        "bootstrap standard deviation, as the paper's Fig. 6.")
    ordered = [r for r in g.rows if not r[1]] + [r for r in g.rows if r[1]]
    for k, (m, ref, cells) in enumerate(ordered):
        if k and ref and not ordered[k - 1][1]:
            lines.append(r"\midrule")
        name = latex_escape(m) + (r"$^\dagger$" if ref else "")
        lines.append(" & ".join([name, *map(_tex_cell, cells)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def published_latex(board: Leaderboard) -> str:
    """The published numbers as their own booktabs ``tabular``."""
    lines = [f"% {_published_title(board).lstrip('# ')}", r"% Needs \usepackage{booktabs}.",
             r"\begin{tabular}{lllr}", r"\toprule",
             r"Method & Protocol & Metric & Value \\", r"\midrule"]
    for r in board.published.itertuples(index=False):
        lines.append(" & ".join(latex_escape(x) for x in (r.method, r.protocol, r.metric))
                     + f" & {r.value:g}" + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _html_cell(c: Cell) -> str:
    e = html.escape
    text = (f"<span class='v'><strong>{e(c.text)}</strong> ★</span>" if c.best
            else f"<span class='v'>{e(c.text)}</span>")
    detail = f"<br><span class='ci'>{e(c.detail)}</span>" if c.detail else ""
    return f"<td class='best'>{text}{detail}</td>" if c.best else f"<td>{text}{detail}</td>"


def to_html(board: Leaderboard) -> str:
    """The leaderboard as an HTML ``<table class='leaderboard'>`` (interval under the value,
    the paper's columns classed ``paper``, references ``ref``)."""
    e = html.escape
    g = grid(board)
    head = "".join(f"<th class='paper'>{e(h)}</th>" if k.endswith(PAPER_SUFFIX) else
                   f"<th>{e(h)}</th>" for h, k in zip(g.header, g.keys, strict=True))
    rows = [f"<table class='leaderboard'><thead><tr>{head}</tr></thead><tbody>"]
    for m, ref, cells in g.rows:
        name = f"<th scope='row'>{e(m)}{' †' if ref else ''}</th>"
        rows.append(("<tr class='ref'>" if ref else "<tr>") + name
                    + "".join(map(_html_cell, cells)) + "</tr>")
    return "".join(rows) + "</tbody></table>"


def write_leaderboard(board: Leaderboard, out_dir: str | os.PathLike) -> list[Path]:
    """Write the CSV, Markdown and LaTeX files (module docstring) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    direction = {c.name: c.higher_is_better for c in board.columns}
    cells = board.cells.assign(split=board.split,
                               higher_is_better=board.cells["metric"].map(direction))
    files = {"leaderboard.csv": cells.to_csv(index=False, lineterminator="\n"),
             "leaderboard.md": to_markdown(board), "leaderboard.tex": to_latex(board)}
    if not board.published.empty:
        shown = board.published.assign(this_protocol=board.published_match)
        files["published.csv"] = shown.to_csv(index=False, lineterminator="\n")
        files["published.tex"] = published_latex(board)
    paths = []
    for name, text in files.items():
        (out / name).write_text(text)
        paths.append(out / name)
    return paths


def display_frame(board: Leaderboard) -> pd.DataFrame:
    """The table as text cells (``mean [low, high]``, a star on the best, a dagger on
    references), one row per method, under the human headers."""
    g = grid(board)
    rows = [[f"{m} †" if ref else m,
             *[f"{c.text}{' ★' if c.best else ''} {c.detail}".strip() for c in cells]]
            for m, ref, cells in g.rows]
    return pd.DataFrame(rows, columns=g.header)
