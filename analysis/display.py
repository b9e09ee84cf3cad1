"""How the report and the leaderboard show numbers: one table of display rules.

The per-image metrics carry their rule in the registry (:attr:`analysis.metrics.Metric.display`,
a :class:`~analysis.metrics.Display`: human label with unit, decimals, percent, integer). The
columns that are not per-image metrics have theirs here, in :data:`COLUMNS`: the set-level
ones (FID, the colourfulness gaps, the VTT fool rate, the Lab histogram intersection) and
the report's counts and rates. :func:`display_of` finds a column's rule (registry first);
:func:`format_value`, :func:`format_interval` and :func:`format_sd` write a value as every
table shows it (PSNR ``23.36``, SSIM ``0.910``, a rate ``61.2% [55.0, 67.1]``, a count
``34``); :func:`display_frame` turns a table of raw values into one of strings under human
headers. CSV files keep the raw values at full precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.metrics import METRICS, Display

__all__ = ["COLUMNS", "Display", "display_frame", "display_of", "format_bounds",
           "format_interval", "format_sd", "format_value", "label"]

MISSING = "–"  # what a table shows for a value that is absent (NaN, None)

#: The display rules of every column that is not a per-image metric of the registry.
COLUMNS: dict[str, Display] = {
    # set-level metrics (leaderboard columns)
    "fid": Display("FID", 2),
    "fid_torchvision": Display("FID (torchvision Inception)", 2),
    "colorfulness_gap": Display("M3 gap to truth (set means)", 2),
    "colorfulness_gap_abs": Display("CF gap to truth (set means)", 2),
    "vtt": Display("VTT fool rate", 1, percent=True),
    "intersection_a": Display("Lab a intersection", 3),
    "intersection_b": Display("Lab b intersection", 3),
    "intersection_mean": Display("Lab a/b intersection (mean)", 3),
    # VTT tables
    "score": Display("VTT fool rate", 1, percent=True),
    "score_a": Display("Fool rate A", 1, percent=True),
    "score_b": Display("Fool rate B", 1, percent=True),
    "diff": Display("A - B (points)", 1, percent=True),
    "p_a_beats_b": Display("Share of resamples A > B", 1, percent=True),
    "image_win_rate": Display("Photos where A beats B", 1, percent=True),
    "method_a": Display("Method A"), "method_b": Display("Method B"),
    # counts
    "n": Display("Photos", integer=True),
    "n_images": Display("Photos", integer=True),
    "n_raters": Display("Raters", integer=True),
    "n_skipped": Display("Skipped photos", integer=True),
    "psnr_n_identical": Display("Identical to truth (PSNR ∞)", integer=True),
    "answers": Display("Answers", integer=True),
    "images": Display("Photos", integer=True),
    "raters": Display("Raters", integer=True),
    "photos": Display("Photos", integer=True),
    "pairs": Display("Pairs", integer=True),
    "excluded": Display("Excluded answers", integer=True),
    "remaining": Display("Remaining answers", integer=True),
    # rates and ratios of the report's other tables
    "global_ab_vs_grey": Display("Global ab error / grey's (×)", 2),
    "worse_than_grey": Display("Worse than grey", 1, percent=True),
    "share_0.95_0.99": Display("Pairs with MS-SSIM 0.95-0.99", 1, percent=True),
    "single vs grey": Display("Single sample's error / grey's (×)", 2),
    "single worse than grey": Display("Single sample worse than grey", 1, percent=True),
    "mean vs grey": Display("Mean of samples' error / grey's (×)", 2),
    "mean worse than grey": Display("Mean of samples worse than grey", 1, percent=True),
    "between samples": Display("Between samples (Lab units)", 2),
    "truth to sample": Display("Truth to sample (Lab units)", 2),
    "spread ratio": Display("Spread ratio", 2),
    "quantile": Display("Quantile", 0, percent=True),
    # text columns of the report's tables
    "truth from grey": Display("Truth's distance from grey (Lab units)"),
    "samples": Display("Samples"), "image_id": Display("Photo"),
    "fallback": Display("Small-image fallback"),
    # text columns
    "method": Display("Method"), "metric": Display("Metric"), "rule": Display("Rule"),
    "stage": Display("Stage"), "invalid_reason": Display("Why invalid"),
}


def display_of(name: str) -> Display:
    """The rule of column ``name``: the registry's, then :data:`COLUMNS`', else the name
    made readable with 3 decimals."""
    if name in METRICS and METRICS[name].display is not None:
        return METRICS[name].display
    if name in COLUMNS:
        return COLUMNS[name]
    return Display(str(name).replace("_", " ").strip().capitalize() or str(name))


def label(name: str) -> str:
    """The human column name of ``name``."""
    return display_of(name).label


def _missing(v: object) -> bool:
    if v is None or v is pd.NA:
        return True
    return isinstance(v, float | np.floating) and math.isnan(v)


def _number(v: float, digits: int) -> str:
    text = f"{v:.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.0"


def _bare(rule: Display, v: float) -> str:
    """The number of ``v`` without its percent sign."""
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if rule.integer:
        return f"{round(v):d}"
    return _number(100 * v if rule.percent else v, rule.decimals)


def format_value(rule: Display | str, v: object) -> str:
    """``v`` as the tables show it under ``rule`` (a :class:`Display` or a column name):
    decimals, ``%`` for a rate, integers for counts, ``–`` for a missing value; text
    passes through."""
    rule = display_of(rule) if isinstance(rule, str) else rule
    if _missing(v):
        return MISSING
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if not isinstance(v, int | float | np.integer | np.floating):
        return str(v)
    v = float(v)
    return _bare(rule, v) + ("%" if rule.percent and math.isfinite(v) else "")


def format_interval(rule: Display | str, mean: float, low: float, high: float) -> str:
    """``mean [low, high]`` (``61.2% [55.0, 67.1]``); the mean alone when the interval is
    missing or the mean infinite."""
    rule = display_of(rule) if isinstance(rule, str) else rule
    text = format_value(rule, mean)
    if _missing(mean) or math.isinf(float(mean)) or not format_bounds(rule, low, high):
        return text
    return f"{text} {format_bounds(rule, low, high)}"


def format_bounds(rule: Display | str, low: float, high: float) -> str:
    """``[low, high]`` in the rule's units without the percent sign (``[55.0, 67.1]``);
    empty when either is missing."""
    rule = display_of(rule) if isinstance(rule, str) else rule
    if _missing(low) or _missing(high):
        return ""
    return f"[{_bare(rule, float(low))}, {_bare(rule, float(high))}]"


def format_sd(rule: Display | str, mean: float, sd: float, sd_decimals: int | None = None
              ) -> str:
    """``mean ± sd`` (``33.3% ± 1.0``): one standard deviation, as the paper's Fig. 6."""
    rule = display_of(rule) if isinstance(rule, str) else rule
    text = format_value(rule, mean)
    if _missing(sd) or _missing(mean):
        return text
    digits = rule.decimals if sd_decimals is None else sd_decimals
    return f"{text} ± {_number(100 * sd if rule.percent else sd, digits)}"


def display_frame(df: pd.DataFrame, rules: Mapping[str, Display | str] | None = None
                  ) -> pd.DataFrame:
    """``df`` as strings under human headers, every column by its rule.

    Args:
        df: raw values (one column per metric or count; text columns pass through).
        rules: per-column overrides: a :class:`Display` or the name of a column whose rule
            applies (e.g. ``{"mean": "intersection_mean"}`` where a name is ambiguous).
    """
    rules = dict(rules or {})
    out = {}
    for col in df.columns:
        rule = rules.get(col, str(col))
        rule = display_of(rule) if isinstance(rule, str) else rule
        values = [format_value(rule, v) for v in df[col].tolist()]
        known = col in rules or str(col) in COLUMNS or str(col) in METRICS
        name = rule.label if known else str(col)
        out[name if name not in out else f"{name} ({col})"] = values
    return pd.DataFrame(out, columns=list(out))
