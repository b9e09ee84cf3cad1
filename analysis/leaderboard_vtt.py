"""The VTT fool rate as the leaderboard's first column, with the paper's numbers beside it.

:func:`vtt_frame` scores every rated method, the pooled samples (``pixcolor_s* (pooled)``)
and the oracle stage (:mod:`analysis.vtt`) with a percentile bootstrap interval and adds
``sd``: one bootstrap standard deviation over answers, the kind of error the paper's Fig. 6
prints (``33.3 ± 1.04``). For 0/1 answers the bootstrap over answers draws a binomial
fraction, whose standard deviation is exactly ``sqrt(p (1 - p) / n)``; that is the value
used (no simulation noise). :func:`with_vtt` puts the scores into a
:class:`~analysis.leaderboard.Leaderboard` (rows for the pooled samples and the oracle are
added) and the paper's numbers (:data:`PAPER_REFERENCE`, ``analysis/paper_reference.csv``:
method, metric, value, ``pm``, its kind, the figure or section it comes from) beside them,
labelled as the paper's.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import vtt
from analysis.bootstrap import Resample

PAPER_REFERENCE = Path(__file__).with_name("paper_reference.csv")
VTT_COLUMN = "vtt"
POOLED = " (pooled)"  # suffix of the pooled samples' label: "pixcolor_s* (pooled)"
VTT_DESCRIPTION = ("share of valid answers in which the rater picked the colorization over "
                   "the true colours (50% = indistinguishable); ± one bootstrap standard "
                   "deviation over answers, as the paper's Fig. 6 prints")


@dataclass(frozen=True)
class VTTOptions:
    """How :func:`vtt_frame` scores the answers (the report's ``--resample`` etc.)."""

    resample: Resample = "raters_images"
    n_resamples: int = 10000
    seed: int = 0
    confidence: float = 0.95
    rules: vtt.ExclusionRules | None = None
    sample_prefix: str = "pixcolor_s"


def answers_sd(score: pd.Series, n: pd.Series) -> np.ndarray:
    """One bootstrap standard deviation over answers of a fraction: ``sqrt(p(1-p)/n)``."""
    p, k = score.to_numpy(dtype=np.float64), n.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, np.sqrt(p * (1 - p) / k), np.nan)


def vtt_frame(responses: pd.DataFrame, options: VTTOptions | None = None) -> pd.DataFrame:
    """Scores of every rated method, the pooled samples and the oracle.

    Returns:
        The columns of :func:`analysis.vtt.vtt_scores` (fractions) and ``sd``.
    """
    o = options or VTTOptions()
    kw = {"n_resamples": o.n_resamples, "seed": o.seed, "confidence": o.confidence,
          "rules": o.rules}
    scores = vtt.vtt_scores(responses, o.resample, **kw)
    label = f"{o.sample_prefix}*{POOLED}"
    pooled = vtt.vtt_scores(vtt.relabel(responses, {f"{o.sample_prefix}*": label}),
                            o.resample, methods=[label], **kw)
    oracle = vtt.oracle_score(responses, o.resample, **kw)
    frame = pd.concat([scores, pooled[pooled["n"] > 0], oracle], ignore_index=True)
    return frame.assign(sd=answers_sd(frame["score"], frame["n"]))


def paper_reference(path: str | os.PathLike = PAPER_REFERENCE) -> pd.DataFrame:
    """The paper's own numbers: ``method``, ``metric``, ``value``, ``pm`` (NaN where none
    is printed), ``pm_kind``, ``source``, ``note``."""
    return pd.read_csv(path, dtype={"method": str, "metric": str, "source": str},
                       keep_default_na=False, na_values={"pm": [""]})


def _ordered(methods: list[str], extra: list[str]) -> list[str]:
    """``methods`` with the VTT-only rows: a pooled label after the last of its samples,
    the oracle after the samples (the rest at the end)."""
    out = list(methods)
    for m in extra:
        if m in out:
            continue
        pattern = m[: -len(POOLED)] if m.endswith(POOLED) else m.rsplit("_", 1)[0] + "_s*"
        hits = [i for i, x in enumerate(out) if fnmatch.fnmatchcase(x, pattern)]
        out.insert(hits[-1] + 1 if hits else len(out), m)
    return out


def with_vtt(board, scores: pd.DataFrame, paper: pd.DataFrame | None = None):
    """``board`` (a :class:`~analysis.leaderboard.Leaderboard`) with the VTT fool rate as
    its first column and the paper's numbers of its columns beside ours.

    Args:
        board: the leaderboard of the automatic metrics.
        scores: :func:`vtt_frame` (``method``, ``score``, ``low``, ``high``, ``n``, ``sd``).
        paper: the paper's numbers (default :func:`paper_reference`; an empty frame: none).
    """
    from analysis.leaderboard import CELL_COLUMNS, REFERENCES, Column, mark_best

    rated = scores[scores["n"] > 0]
    methods = _ordered(board.methods, list(rated["method"]))
    refs = set(board.cells.loc[board.cells["reference"].astype(bool), "method"]) | (
        set(REFERENCES) & set(methods))
    cells = [{"method": r.method, "metric": VTT_COLUMN, "mean": float(r.score),
              "low": float(r.low), "high": float(r.high), "n": int(r.n), "best": False,
              "reference": r.method in refs, "sd": float(r.sd)} for r in rated.itertuples()]
    columns = [Column(VTT_COLUMN, True, VTT_DESCRIPTION),
               *[c for c in board.columns if c.name != VTT_COLUMN]]
    old = board.cells[board.cells["metric"] != VTT_COLUMN]
    frame = pd.concat([pd.DataFrame(cells, columns=CELL_COLUMNS), old.reindex(
        columns=CELL_COLUMNS)], ignore_index=True)
    paper = paper_reference() if paper is None else paper
    shown = paper[paper["metric"].isin([c.name for c in columns])
                  & paper["method"].isin(methods)] if len(paper) else paper
    notes = [n for n in board.notes if not n.startswith("VTT fool rate")]
    notes.insert(0, _vtt_note(rated, shown))
    return replace(board, methods=methods, columns=columns, cells=mark_best(frame, columns),
                   notes=notes, paper=shown.reset_index(drop=True))


def _vtt_note(rated: pd.DataFrame, paper: pd.DataFrame) -> str:
    sources = ", ".join(dict.fromkeys(paper["source"])) if len(paper) else ""
    own = rated[~rated["method"].str.endswith(POOLED)]  # each answer once
    text = (f"VTT fool rate: ours ± one bootstrap standard deviation over answers "
            f"(sqrt(p(1-p)/n); {int(own['n'].sum()):,} answers), the same kind of "
            "error as the paper's Fig. 6, not a 95% interval (the CSV and the Fig. 6 table "
            "give the 95% bootstrap interval)")
    if sources:
        text += (f"; the paper's numbers beside ours, labelled 'paper' ({sources}: ImageNet "
                 "ctest10k, 500 photos, 5 raters per photo)")
    return text
