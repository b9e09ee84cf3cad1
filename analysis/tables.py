"""Tables for the report: CSV (raw values), Markdown and LaTeX (as shown), and the Fig. 6 VTT
layout (paper Fig. 6).

:func:`write_table` writes a table three ways: ``<name>.csv`` with the raw values at full
precision, and ``<name>.md`` and ``<name>.tex`` (a booktabs ``tabular``,
:mod:`analysis.latex`) as the report shows it: every column under its human name and each
value by its display rule (:func:`analysis.display.display_frame`). Markdown is written
here (no ``tabulate`` dependency) so the output is stable across environments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.display import Display, display_frame, format_bounds, format_value
from analysis.latex import tabular


def _fmt(v: object, floatfmt: str) -> str:
    if isinstance(v, float | np.floating):
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return format(float(v), floatfmt)
    return str(v).replace("|", "\\|")


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4f", index: bool = False) -> str:
    """A GitHub-flavoured Markdown table (floats with ``floatfmt``; NaN empty)."""
    t = df.reset_index() if index else df
    head = [str(c).replace("|", "\\|") for c in t.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for row in t.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v, floatfmt) for v in row) + " |")
    return "\n".join(lines) + "\n"


def to_latex(shown: pd.DataFrame, caption: str = "") -> str:
    """A table of display strings (:func:`analysis.display.display_frame`) as a booktabs
    ``tabular``: text columns left-aligned, the others right-aligned."""
    align = "".join("l" if k == 0 or not _numeric(shown[c]) else "r"
                    for k, c in enumerate(shown.columns))
    rows = [[str(v) for v in row] for row in shown.itertuples(index=False)]
    return tabular([str(c) for c in shown.columns], rows, align or "l", comment=caption)


def _numeric(col: pd.Series) -> bool:
    """Whether a column of display strings holds numbers (``23.36``, ``61.2% [55.0, 67.1]``)."""
    def number(v: str) -> bool:
        head = v.split(" ")[0].rstrip("%").lstrip("-")
        return v in ("–", "∞") or head.replace(".", "", 1).isdigit()

    return bool(len(col)) and all(number(str(v)) for v in col)


def write_table(df: pd.DataFrame, out_dir: str | Path, name: str,
                rules: Mapping[str, Display | str] | None = None, index: bool = False
                ) -> tuple[Path, Path, Path]:
    """Write ``<out_dir>/<name>.csv`` (full precision), ``<name>.md`` and ``<name>.tex``
    (as shown: :func:`analysis.display.display_frame` with ``rules``).

    Returns:
        The three paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, md, tex = out / f"{name}.csv", out / f"{name}.md", out / f"{name}.tex"
    df.to_csv(csv, index=index, lineterminator="\n")
    shown = display_frame(df.reset_index() if index else df, rules)
    md.write_text(to_markdown(shown))
    tex.write_text(to_latex(shown, caption=name))
    return csv, md, tex


def vtt_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Paper Fig. 6 form, as display strings: method, fool rate with its 95% interval, one
    bootstrap standard deviation over answers (the paper's kind of ±), answers, photos,
    raters.

    Args:
        scores: :func:`analysis.leaderboard_vtt.vtt_frame` or
            :func:`analysis.vtt.vtt_scores` (fractions; ``sd`` optional).
    """
    rate = Display("VTT fool rate", 1, percent=True)
    sd = scores["sd"] if "sd" in scores else pd.Series(np.nan, index=scores.index)
    return pd.DataFrame({
        "Method": scores["method"].astype(str),
        "VTT fool rate": [format_value(rate, s) for s in scores["score"]],
        "95% interval (%)": [format_bounds(rate, lo, hi) or "–"
                             for lo, hi in zip(scores["low"], scores["high"], strict=True)],
        "± 1 bootstrap SD (points)": [format_value(Display("", 2), 100 * v) for v in sd],
        "Answers": [format_value("answers", v) for v in scores["n"]],
        "Photos": [format_value("images", v) for v in scores["n_images"]],
        "Raters": [format_value("raters", v) for v in scores["n_raters"]],
    })
