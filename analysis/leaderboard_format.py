"""A :class:`analysis.leaderboard.Leaderboard` as CSV, Markdown and LaTeX.

* ``leaderboard.csv``: one row per (method, metric): split, mean, interval, image count,
  best, reference, direction (full precision).
* ``leaderboard.md``: the table (``mean [low, high]``, best in bold, references marked with
  a dagger), its notes and column descriptions, then the published numbers as a separate
  table with protocol and source.
* ``leaderboard.tex`` and ``published.tex``: booktabs ``tabular`` environments, ready to
  ``\\input`` (the document needs ``\\usepackage{booktabs}``); text is escaped.
* ``published.csv``: the published rows shown.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from analysis.leaderboard import Column, Leaderboard, column_decimals

LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _number(v: float, digits: int, infinity: str = "inf") -> str:
    if math.isnan(v):
        return ""
    if math.isinf(v):
        return infinity if v > 0 else f"-{infinity}"
    text = f"{v:.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.00"


def _digits(board: Leaderboard) -> dict[str, int]:
    return {c.name: column_decimals(board.cells, c.name) for c in board.columns}


def _cell_text(cell: dict | None, digits: int, latex: bool) -> tuple[str, str]:
    """(mean, interval) texts of a cell ('' when absent)."""
    if cell is None:
        return "", ""
    inf = r"$\infty$" if latex else "inf"
    mean = _number(cell["mean"], digits, inf)
    if math.isnan(cell["low"]) or math.isinf(cell["mean"]):
        return mean, ""
    return mean, f"[{_number(cell['low'], digits, inf)}, {_number(cell['high'], digits, inf)}]"


def _arrow(col: Column, latex: bool) -> str:
    if latex:
        return r"$\uparrow$" if col.higher_is_better else r"$\downarrow$"
    return "↑" if col.higher_is_better else "↓"


def to_markdown(board: Leaderboard) -> str:
    """The leaderboard, its notes and the published block as Markdown."""
    digits = _digits(board)
    head = ["method", *[f"{c.name} {_arrow(c, False)}" for c in board.columns]]
    lines = [f"# Leaderboard: {board.split}", "",
             "| " + " | ".join(head) + " |", "| --- |" + " ---: |" * len(board.columns)]
    for m in board.methods:
        row = [f"{m} †" if m in set(board.cells.loc[board.cells["reference"], "method"])
               else m]
        for c in board.columns:
            cell = board.cell(m, c.name)
            mean, iv = _cell_text(cell, digits[c.name], latex=False)
            if cell is not None and cell["best"]:
                mean = f"**{mean}**"
            row.append(f"{mean} {iv}".strip())
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", *[f"- {n}" for n in board.notes],
              "- † reference: sees the truth's colours; not ranked", "", "Columns:", ""]
    lines += [f"- `{c.name}` ({'higher' if c.higher_is_better else 'lower'} is better): "
              f"{c.description}" for c in board.columns]
    lines += ["", *_published_markdown(board)]
    return "\n".join(lines).rstrip() + "\n"


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


def to_latex(board: Leaderboard) -> str:
    """The leaderboard as a booktabs ``tabular`` (references last, after a rule)."""
    digits = _digits(board)
    refs = set(board.cells.loc[board.cells["reference"], "method"])
    head = ["Method", *[f"{latex_escape(c.name)} {_arrow(c, True)}" for c in board.columns]]
    lines = [f"% Leaderboard of {latex_escape(board.split)}: mean [interval]; best per "
             r"column in bold; $^\dagger$ references (see the truth's colours), not ranked.",
             r"% Needs \usepackage{booktabs}.",
             r"\begin{tabular}{l" + "r" * len(board.columns) + "}", r"\toprule",
             " & ".join(head) + r" \\", r"\midrule"]
    ordered = [m for m in board.methods if m not in refs] + [m for m in board.methods
                                                             if m in refs]
    for k, m in enumerate(ordered):
        if k and m in refs and ordered[k - 1] not in refs:
            lines.append(r"\midrule")
        row = [latex_escape(m) + (r"$^\dagger$" if m in refs else "")]
        for c in board.columns:
            cell = board.cell(m, c.name)
            mean, iv = _cell_text(cell, digits[c.name], latex=True)
            if cell is not None and cell["best"]:
                mean = rf"\textbf{{{mean}}}"
            row.append(mean + (rf" {{\scriptsize {iv}}}" if iv else ""))
        lines.append(" & ".join(row) + r" \\")
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
    references), one row per method: for HTML pages."""
    digits = _digits(board)
    refs = set(board.cells.loc[board.cells["reference"], "method"])
    rows = []
    for m in board.methods:
        row = {"method": f"{m} †" if m in refs else m}
        for c in board.columns:
            cell = board.cell(m, c.name)
            mean, iv = _cell_text(cell, digits[c.name], latex=False)
            star = " ★" if cell is not None and cell["best"] else ""
            row[f"{c.name} {_arrow(c, False)}"] = f"{mean}{star} {iv}".strip()
        rows.append(row)
    return pd.DataFrame(rows)
