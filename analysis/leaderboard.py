"""A leaderboard of one runs folder: every method x metric, mean and 95% interval, best marked.

:func:`build_leaderboard` reads the per-image values of the metrics pass
(:func:`analysis.metrics_cache.metrics_pass`: cached beside ``metrics.csv``, computed only
where missing or stale) and FID per method (:mod:`analysis.fid_runs`), and gives:

* per-image metrics: the mean over the images where the value is finite (as
  :meth:`analysis.evaluate.RunsEvaluation.summary`: PSNR's ``inf`` for an identical image is
  left out) and a seeded percentile bootstrap interval over images. One set of image draws
  serves every method and metric (paired: a photo drawn for one method is drawn for all);
* the papers' colourfulness gaps (``colorfulness_gap``, ``colorfulness_gap_abs``):
  ``|mean M(outputs) - mean M(truths)|`` over the photos both have, from the per-image
  ``colorfulness`` / ``colorfulness_abs`` of the method and of the truth, with the same
  draws (the interval of ``|mean difference|``);
* FID with the interval of :func:`analysis.fid_runs.paired_fid`, its network named;
* with VTT answers (:attr:`LeaderboardOptions.responses`, or
  :func:`analysis.leaderboard_vtt.with_vtt` on a built board): the VTT fool rate as the
  first column, ± one bootstrap standard deviation as the paper's Fig. 6, and the paper's
  numbers beside ours (:attr:`Leaderboard.paper`);
* the best mean per column, by the registry's ``higher_is_better``, among the methods that
  do not see the truth's colours (:data:`REFERENCES`, ``gt_protocol`` and the truth folder
  are shown, marked, never best); ties at the displayed precision (each column's display
  rule, :mod:`analysis.display`) are all best.

The truth is the runs folder's :meth:`~analysis.runs.RunsFolder.reference` (``gt``; a
protocol split's ``gt_protocol``) unless :attr:`LeaderboardOptions.gt_method` names one; the
notes say which when it is not ``gt``.

Published numbers (:data:`PUBLISHED`, ``analysis/published.csv``: method, protocol, metric,
value, source) are a separate block, never rows of the table: those of the folder's protocol
(its name, e.g. ``imagenet-val50k``), else all of them with their protocol named.
Rendering (CSV, Markdown, LaTeX): :mod:`analysis.leaderboard_format`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.display import display_of
from analysis.fid_runs import FIDOptions
from analysis.leaderboard_vtt import VTTOptions, vtt_frame, with_vtt
from analysis.metrics import DEFAULT_METRICS, get_metric
from analysis.metrics_cache import MetricsPass, metrics_pass
from analysis.runs import GT_METHOD, PROTOCOL_GT_METHOD, order_methods
from analysis.vtt_responses import read_responses

PUBLISHED = Path(__file__).with_name("published.csv")
# outputs that use the truth's colours (the truth itself, its 28x28 chroma, the oracle's
# choice among samples): shown for reference, never ranked
REFERENCES = (GT_METHOD, "gt28_unrefined", "gt28_refined", "pixcolor_oracle")
GAPS = {"colorfulness": "colorfulness_gap", "colorfulness_abs": "colorfulness_gap_abs"}
# sd: one bootstrap standard deviation (the VTT column's, as the paper prints; NaN elsewhere)
CELL_COLUMNS = ["method", "metric", "mean", "low", "high", "n", "best", "reference", "sd"]


@dataclass(frozen=True)
class LeaderboardOptions:
    """What :func:`build_leaderboard` computes.

    Attributes:
        metrics: per-image metrics (registry names); gaps follow from the colourfulness ones.
        fid: FID options (None: no FID column).
        n_resamples: bootstrap resamples of the per-image metrics' intervals.
        seed: their seed.
        level: central coverage of every interval.
        gt_method: the ground-truth folder (None: the runs folder's
            :meth:`~analysis.runs.RunsFolder.reference`, resolved by the metrics pass).
        workers: processes for per-image values not in the cache.
        published: ``"match"`` (the folder's protocol, else all, labelled), ``"all"`` or
            ``"none"``.
        responses: a VTT export (``responses.csv``): the VTT fool rate becomes the first
            column, the paper's numbers beside it (:mod:`analysis.leaderboard_vtt`).
    """

    metrics: tuple[str, ...] = DEFAULT_METRICS
    fid: FIDOptions | None = field(default_factory=FIDOptions)
    n_resamples: int = 1000
    seed: int = 0
    level: float = 0.95
    gt_method: str | None = None
    workers: int = 1
    published: str = "match"
    responses: str | None = None


@dataclass(frozen=True)
class Column:
    """One leaderboard column: its name, direction and one-line description."""

    name: str
    higher_is_better: bool
    description: str


@dataclass
class Leaderboard:
    """The table of :func:`build_leaderboard`.

    Attributes:
        split: the runs folder's name (its protocol).
        methods: the rows, in display order.
        columns: the metric columns, in order.
        cells: one row per (method, metric): ``CELL_COLUMNS``.
        notes: lines under the table (what was not computed and why, FID's few-images
            warning, the bootstrap settings).
        published: the published numbers shown (``method``, ``protocol``, ``metric``,
            ``value``, ``source``, ``note``) and whether they are of this protocol.
        published_match: whether ``published`` holds this protocol's numbers.
        paper: the paper's own numbers shown beside ours (``method``, ``metric``,
            ``value``, ``pm``, ``pm_kind``, ``source``, ``note``;
            :func:`analysis.leaderboard_vtt.paper_reference`), labelled as the paper's.
    """

    split: str
    methods: list[str]
    columns: list[Column]
    cells: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    published: pd.DataFrame = field(default_factory=pd.DataFrame)
    published_match: bool = False
    paper: pd.DataFrame = field(default_factory=pd.DataFrame)

    def cell(self, method: str, metric: str) -> dict | None:
        """The cell of (method, metric) as a dict, or None."""
        hit = self.cells[(self.cells["method"] == method) & (self.cells["metric"] == metric)]
        return hit.iloc[0].to_dict() if len(hit) else None


@dataclass(frozen=True)
class Intervals:
    """Per row of a values matrix: the finite mean, the interval and the image count."""

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray


def draw_counts(rng: np.random.Generator, n_resamples: int, n: int) -> np.ndarray:
    """How often each of n images is drawn in each of B resamples: float64 (B, n)."""
    idx = rng.integers(0, n, size=(n_resamples, n)) + (np.arange(n_resamples) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=n_resamples * n).reshape(n_resamples, n) * 1.0


def bootstrap_means(values: np.ndarray, counts: np.ndarray, level: float = 0.95,
                    absolute: bool = False) -> Intervals:
    """Means of each row of ``values`` over its finite entries, with percentile intervals.

    Args:
        values: (R, n) float; NaN (not scored) and +-inf (PSNR of an identical image) are
            left out of a row's mean, as in the metrics summary.
        counts: (B, n) draws of the images (:func:`draw_counts`), shared by every row.
        level: central coverage.
        absolute: take ``|mean|`` (estimate and replicates): the colourfulness gaps.

    Returns:
        :class:`Intervals`; a row with no finite value keeps the mean of its infinite
        ones (``inf``, interval ``[inf, inf]``) or NaN.
    """
    v = np.atleast_2d(np.asarray(values, dtype=np.float64))
    ok = np.isfinite(v)
    n = ok.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, v, 0).sum(1) / n
        reps = (counts @ np.where(ok, v, 0).T) / (counts @ ok.T.astype(np.float64))
    if absolute:
        mean, reps = np.abs(mean), np.abs(reps)
    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():  # a row without a finite value has NaN replicates
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = (np.nanpercentile(reps, [tail, 100 - tail], axis=0) if len(counts)
                     else np.full((2, len(v)), np.nan))
    for r in np.flatnonzero(n == 0):
        infinite = v[r][np.isinf(v[r])]
        mean[r] = low[r] = high[r] = infinite.mean() if len(infinite) else np.nan
    return Intervals(mean, low, high, n)


def shown(metric: str, values: pd.Series) -> pd.Series:
    """``values`` rounded as the tables show them (the column's display rule,
    :func:`analysis.display.display_of`: a rate as a percentage, a count as an integer)."""
    rule = display_of(metric)
    if rule.integer:
        return values.round(0)
    return (100 * values if rule.percent else values).round(rule.decimals)


def mark_best(cells: pd.DataFrame, columns: list[Column]) -> pd.DataFrame:
    """Set ``best`` on the cells whose mean, rounded as displayed, is the best of their
    column among the rows that are not references (a column with no finite mean has none).
    """
    cells = cells.copy()
    cells["best"] = False
    for col in columns:
        rows = cells[(cells["metric"] == col.name) & ~cells["reference"].astype(bool)]
        finite = rows["mean"][np.isfinite(rows["mean"].astype(float))]
        if finite.empty:
            continue
        rounded = shown(col.name, finite.astype(float))
        best = rounded.max() if col.higher_is_better else rounded.min()
        cells.loc[rounded.index[rounded == best], "best"] = True
    return cells


def _matrix(per_image: pd.DataFrame, methods: list[str], metric: str,
            ids: list[str]) -> np.ndarray:
    """(methods, ids) values of one metric, NaN where absent."""
    wide = per_image.pivot_table(index="method", columns="image_id", values=metric,
                                 aggfunc="first", dropna=False)
    return wide.reindex(index=methods, columns=ids).to_numpy(dtype=np.float64)


def _per_image_cells(mp: MetricsPass, methods: list[str], options: LeaderboardOptions,
                     refs: set[str]) -> tuple[list[dict], list[Column]]:
    """The cells and columns of the per-image metrics and of the colourfulness gaps."""
    ids = sorted(set(mp.per_image["image_id"]))
    counts = draw_counts(np.random.default_rng(options.seed), options.n_resamples, len(ids))
    cells, columns = [], []
    for metric in mp.metrics:
        spec = get_metric(metric)
        columns.append(Column(metric, spec.higher_is_better, spec.description))
        mat = _matrix(mp.per_image, methods, metric, ids)
        cells += _cells(methods, metric, bootstrap_means(mat, counts, options.level), refs)
        gap = GAPS.get(metric)
        if gap and options.gt_method in methods:
            truth = mat[methods.index(options.gt_method)]
            iv = bootstrap_means(mat - truth, counts, options.level, absolute=True)
            columns.append(Column(gap, False, f"|mean {metric}(outputs) - mean "
                                  f"{metric}(truths)| over the photos both have (the papers' "
                                  "delta-CF)"))
            cells += _cells(methods, gap, iv, refs)
    return cells, columns


def _cells(methods: list[str], metric: str, iv: Intervals, refs: set[str]) -> list[dict]:
    return [{"method": m, "metric": metric, "mean": float(iv.mean[i]), "low": float(iv.low[i]),
             "high": float(iv.high[i]), "n": int(iv.n[i]), "best": False,
             "reference": m in refs} for i, m in enumerate(methods)]


def published_numbers(split: str, which: str = "match",
                      path: str | os.PathLike = PUBLISHED) -> tuple[pd.DataFrame, bool]:
    """The published rows to show and whether they are this protocol's.

    Args:
        split: the runs folder's name.
        which: ``"match"``: the rows of ``split``'s protocol, else every row (labelled by
            its protocol); ``"all"``: every row; ``"none"``: no row.
        path: the data file.
    """
    if which == "none":
        return pd.DataFrame(), False
    rows = pd.read_csv(path, dtype={"protocol": str, "method": str}, keep_default_na=False)
    mine = rows[rows["protocol"] == split].reset_index(drop=True)
    if which == "match" and len(mine):
        return mine, True
    return rows, False


def build_leaderboard(runs_dir: str | os.PathLike,
                      options: LeaderboardOptions | None = None) -> Leaderboard:
    """The leaderboard of ``runs/<split>`` (module docstring).

    Args:
        runs_dir: the runs folder; its name is the split (protocol) name.
        options: metrics, FID, bootstrap, published numbers, VTT answers.
    """
    options = options or LeaderboardOptions()
    mp = metrics_pass(runs_dir, None, options.metrics, fid=options.fid,
                      gt_method=options.gt_method, workers=options.workers)
    board = leaderboard_from_pass(mp, Path(runs_dir).resolve().name, options)
    if options.responses:
        scores = vtt_frame(read_responses(options.responses), VTTOptions(
            n_resamples=options.n_resamples, seed=options.seed, confidence=options.level))
        board = with_vtt(board, scores)
    return board


def leaderboard_from_pass(mp: MetricsPass, split: str,
                          options: LeaderboardOptions | None = None) -> Leaderboard:
    """The leaderboard of per-image values and FID already computed (a
    :class:`~analysis.metrics_cache.MetricsPass`, e.g. the report's own pass)."""
    options = options or LeaderboardOptions()
    options = replace(options, gt_method=options.gt_method or mp.reference)
    methods = order_methods(mp.methods)
    refs = {m for m in methods
            if m in REFERENCES or m in (options.gt_method, PROTOCOL_GT_METHOD)}
    cells, columns = _per_image_cells(mp, methods, options, refs)
    if mp.fid is not None and not mp.fid.not_computed:
        f = mp.fid.options
        columns.append(Column(f.column, False, f.describe()))
        rows = mp.fid.rows.set_index("method")
        cells += [{"method": m, "metric": f.column, "mean": float(r["fid"]),
                   "low": float(r["fid_low"]), "high": float(r["fid_high"]), "n": int(r["n"]),
                   "best": False, "reference": m in refs}
                  for m, r in rows.iterrows() if m in methods]
    frame = mark_best(pd.DataFrame(cells, columns=CELL_COLUMNS), columns)
    published, match = published_numbers(split, options.published)
    notes = _notes(mp, options, [m for m in methods if m in refs and m not in REFERENCES])
    return Leaderboard(split, methods, columns, frame, notes, published, match)


def _notes(mp: MetricsPass, options: LeaderboardOptions, more_refs: list[str]) -> list[str]:
    """The lines under the table; ``more_refs``: references shown beyond :data:`REFERENCES`
    (the truth folder when it is not ``gt``, ``gt_protocol``)."""
    notes = [f"mean over images [{options.level:.0%} percentile bootstrap interval over "
             f"images, {options.n_resamples} resamples, seed {options.seed}, the same draws "
             f"for every method]; best per column in bold, among methods that do not see "
             f"the truth's colours ({', '.join([*REFERENCES, *more_refs])} are references: "
             "marked, never best)"]
    if mp.reference_line:
        notes.append(mp.reference_line)
    if mp.not_computed:
        notes.append(not_computed_line(mp.not_computed))
    if mp.fid is not None:
        notes += mp.fid.notes()
        notes += [f"{mp.fid.options.column} of {m} not computed: {why}"
                  for m, why in mp.fid.failed.items()]
    return notes


def not_computed_line(reasons: dict[str, str]) -> str:
    """The one line saying which metrics were not computed and why."""
    return ("not computed (no weights file here; nothing is downloaded): "
            + "; ".join(f"{k}: {why}" for k, why in reasons.items()))
