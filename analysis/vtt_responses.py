"""Reading the VTT app's ``responses.csv`` export (one row per answer) for :mod:`analysis.vtt`.

The export has the columns

    study, stage (main|oracle), rater_id, image_id, method, generated_first (0/1),
    chose_generated (0/1), kind (practice|attention|test|oracle), valid (0/1),
    response_ms, rater_flagged (0/1), rater_suspicious (0/1, used only by the exclusion
    rule that asks for it)

Required: rater_id, image_id, method, chose_generated, kind, valid. Optional, with
defaults: study "" ; stage "oracle" where kind is "oracle", else "main"; generated_first
and response_ms NaN; rater_flagged 0. Extra columns are kept and ignored. 0/1 columns
also accept true/false; an empty chose_generated (no answer) makes the trial invalid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("rater_id", "image_id", "method", "chose_generated", "kind", "valid")


class ResponsesFormatError(ValueError):
    """The responses table lacks required columns or has unusable values."""


def normalize_responses(df: pd.DataFrame, source: str = "responses") -> pd.DataFrame:
    """Check the columns of a responses table and fill the optional ones with defaults.

    Args:
        df: the export as read by pandas.
        source: name used in error messages (e.g. the file path).

    Returns:
        A copy with ids as str, 0/1 columns as int and every optional column present.

    Raises:
        ResponsesFormatError: a required column is missing or a 0/1 column is not 0/1.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ResponsesFormatError(f"{source} lacks required column(s) {missing}; "
                                   f"expected at least {list(REQUIRED_COLUMNS)}")
    out = df.copy()
    for c in ("rater_id", "image_id", "method", "kind"):
        out[c] = out[c].astype(str)
    if "study" not in out:
        out["study"] = ""
    if "stage" not in out:
        out["stage"] = np.where(out["kind"] == "oracle", "oracle", "main")
    out["stage"] = out["stage"].fillna("main").astype(str)
    for c in ("generated_first", "response_ms"):
        if c not in out:
            out[c] = np.nan
    if "rater_flagged" not in out:
        out["rater_flagged"] = 0
    out["response_ms"] = pd.to_numeric(out["response_ms"], errors="coerce")
    flags = {c: _as01(out[c], c, source) for c in ("chose_generated", "valid", "rater_flagged")}
    unanswered = flags["chose_generated"].isna()  # no answer: kept as an invalid trial
    out["chose_generated"] = flags["chose_generated"].fillna(0).astype(int)
    out["valid"] = flags["valid"].fillna(0).astype(int).where(~unanswered, 0)
    out["rater_flagged"] = flags["rater_flagged"].fillna(0).astype(int)
    return out


def _as01(col: pd.Series, name: str, source: str) -> pd.Series:
    """0/1, true/false or empty values to a float Series of 0, 1 or NaN."""
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        num = col.astype(np.float64)
        bad = ~(num.isin([0.0, 1.0]) | num.isna())
        if bad.any():
            raise ResponsesFormatError(f"{source}: column {name!r} must hold 0 or 1, found "
                                       f"{col[bad].iloc[0]!r}")
        return num
    text = col.map(lambda v: "" if pd.isna(v) else str(v)).str.strip().str.lower()
    mapped = text.map({"1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0, "true": 1.0,
                       "false": 0.0, "nan": np.nan, "": np.nan, "none": np.nan})
    bad = mapped.isna() & ~text.isin(["nan", "", "none"])
    if bad.any():
        raise ResponsesFormatError(f"{source}: column {name!r} must hold 0 or 1, found "
                                   f"{col[bad].iloc[0]!r}")
    return mapped


def read_responses(path: str | Path) -> pd.DataFrame:
    """Read and normalise a ``responses.csv`` export (see :func:`normalize_responses`)."""
    df = pd.read_csv(path, dtype={"rater_id": str, "image_id": str, "method": str})
    return normalize_responses(df, source=str(path))
