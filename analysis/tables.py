"""Tables for the report: CSV plus Markdown, and the Fig. 6 VTT layout (paper Fig. 6).

Markdown is written here (no ``tabulate`` dependency) so the output is stable across
environments.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd


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
    head = [str(c) for c in t.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for row in t.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v, floatfmt) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, out_dir: str | Path, name: str, floatfmt: str = ".4f",
                index: bool = False) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.csv`` (full precision) and ``<name>.md``.

    Returns:
        The two paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / f"{name}.csv", out / f"{name}.md"
    df.to_csv(csv, index=index, lineterminator="\n")
    md.write_text(to_markdown(df, floatfmt, index))
    return csv, md


def vtt_table(scores: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Paper Fig. 6 form: method, VTT (%), 95% interval (%), number of answers.

    Args:
        scores: output of :func:`analysis.vtt.vtt_scores` (fractions).
        digits: decimals of the percentages.
    """
    def pct(x: float) -> str:
        return "" if np.isnan(x) else f"{100 * x:.{digits}f}"

    return pd.DataFrame({
        "method": scores["method"],
        "VTT (%)": [pct(s) for s in scores["score"]],
        "95% interval (%)": [f"[{pct(lo)}, {pct(hi)}]" if not np.isnan(lo) else ""
                             for lo, hi in zip(scores["low"], scores["high"], strict=True)],
        "answers": scores["n"].astype(int),
        "images": scores["n_images"].astype(int),
        "raters": scores["n_raters"].astype(int),
    })
