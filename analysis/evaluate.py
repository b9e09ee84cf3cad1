"""One pass over a runs folder: per-image metrics and Lab a/b histograms (paper Fig. 7).

:func:`evaluate_runs` loads every ``<method>/<image_id>.png`` once, computes the registered
metrics against ``gt`` and accumulates the marginal a/b histograms of every method, so the
report reads each image a single time; with ``sample_prefix`` the same pass also scores the
sample diversity (MS-SSIM of every pair of samples, :mod:`analysis.diversity`). Quantities
of the ground truth (its Lab a/b, SSIM moments) are computed once per image, not once per
method. Work is split over image chunks, optionally in several processes; results do not
depend on the number of workers. The report takes the same values through the runs
folder's cache instead (:func:`analysis.evaluation_cache.cached_evaluation`, which computes
only what the cache lacks); this is the reference pass that reads no cache.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.diversity import PAIR_COLUMNS, image_pairs, sample_methods
from analysis.image_scores import Truth, mean_ab, metric_value, retained_memory
from analysis.lab_stats import AB_EDGES, ab_counts, ab_edges, histogram_intersection, image_ab
from analysis.metrics import DEFAULT_METRICS, Metric, get_metric, grey_ratio, worse_than_grey
from analysis.runs import (
    GREY_METHOD,
    GT_METHOD,
    CachedImages,
    RunsFolder,
    Skip,
    map_chunks,
    order_methods,
)
from analysis.ssim import MinSize, _Moments
from pixcolor.io import ImageLoadError

log = logging.getLogger(__name__)
MEAN_AB_COLUMNS = ["method", "image_id", "mean_a", "mean_b"]


@dataclass
class RunsEvaluation:
    """What :func:`evaluate_runs` found.

    Attributes:
        per_image: one row per (method, image) that loaded: ``method``, ``image_id`` and a
            float column per metric (NaN where it could not be computed).
        skipped: every unusable image or metric value, with the reason.
        ab_counts: method -> int64 (2, n_bins) a and b pixel counts (empty if not asked).
        ab_edges: float64 (n_bins + 1,) bin edges of ``ab_counts``.
        methods, metrics, image_ids: what was evaluated.
        pairs: the diversity pairs (columns as :func:`analysis.diversity.pairwise_ms_ssim`;
            empty without ``sample_prefix``).
        pair_skips: sample images (and pairs) the diversity could not use.
        mean_ab: one row per (method, image) whose Lab a/b was computed (any ab metric,
            such as ``global_ab``, or histograms): ``method``, ``image_id``, ``mean_a``,
            ``mean_b`` (the output's overall colour, :mod:`analysis.global_colour`).
        not_computed: metric -> why it could not run here (a missing weights file, from
            :attr:`analysis.metrics.Metric.requires`); such metrics are not in ``metrics``
            nor in the frames.
    """

    per_image: pd.DataFrame
    skipped: list[Skip]
    ab_counts: dict[str, np.ndarray]
    ab_edges: np.ndarray
    methods: list[str]
    metrics: list[str]
    image_ids: list[str] = field(default_factory=list)
    pairs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PAIR_COLUMNS))
    pair_skips: list[Skip] = field(default_factory=list)
    mean_ab: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MEAN_AB_COLUMNS))
    not_computed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """Per method: ``method``, ``n``, ``n_skipped`` and the mean of each metric.

        A metric's mean is taken over the images where it is finite: PSNR is infinite for an
        output identical to the ground truth (e.g. ``gt28_unrefined`` of a grayscale photo),
        and one such image would make the mean infinite. Those images are counted in
        ``psnr_n_identical``; a method identical on every image keeps ``inf``.
        """
        rows = []
        nskip = pd.Series([s.method for s in self.skipped if not s.metric],
                          dtype=object).value_counts()
        for m in self.methods:
            sub = self.per_image[self.per_image["method"] == m]
            row = {"method": m, "n": len(sub), "n_skipped": int(nskip.get(m, 0))}
            for k in self.metrics:
                vals = sub[k].to_numpy(dtype=np.float64) if len(sub) else np.array([np.nan])
                vals = vals[~np.isnan(vals)]
                finite = vals[np.isfinite(vals)]
                if len(finite):
                    row[k] = float(finite.mean())
                else:
                    row[k] = float(vals[0]) if len(vals) else float("nan")
                if k == "psnr":
                    row["psnr_n_identical"] = int(np.isinf(vals).sum())
            rows.append(row)
        extra = ["psnr_n_identical"] if "psnr" in self.metrics else []
        if "global_ab" in self.metrics and GREY_METHOD in self.methods:
            self._grey_relative(rows)
            extra += ["global_ab_vs_grey", "worse_than_grey"]
        return pd.DataFrame(rows, columns=["method", "n", "n_skipped", *self.metrics, *extra])

    def _grey_relative(self, rows: list[dict]) -> None:
        """Add each method's global colour error relative to a grey output's (how far
        global casts go beyond what no colour at all would cost): ``global_ab_vs_grey``,
        the mean of the method's
        ``global_ab`` over the ratio of grey's mean on the same images, and
        ``worse_than_grey``, the share of those images where the method's output is further
        from the truth's mean colour than grey (ties count as not worse)."""
        df = self.per_image[["method", "image_id", "global_ab"]].dropna()
        grey = df[df["method"] == GREY_METHOD].set_index("image_id")["global_ab"]
        for row in rows:
            sub = df[df["method"] == row["method"]].set_index("image_id")["global_ab"]
            sub = sub[sub.index.isin(grey.index)]
            g = grey.loc[sub.index].to_numpy()
            row["global_ab_vs_grey"] = grey_ratio(sub.to_numpy(), g)
            row["worse_than_grey"] = worse_than_grey(sub.to_numpy(), g)

    def ab_histograms(self) -> dict[str, np.ndarray]:
        """method -> float64 (2, n_bins) normalised a and b histograms."""
        return {m: c / np.maximum(c.sum(axis=-1, keepdims=True), 1)
                for m, c in self.ab_counts.items()}

    def intersections(self, gt_method: str = GT_METHOD) -> pd.DataFrame:
        """Histogram intersection of each method's a and b histograms with ``gt_method``'s.

        Returns:
            Columns ``method``, ``a``, ``b``, ``mean`` (of a and b), in [0, 1].
        """
        if gt_method not in self.ab_counts:
            raise KeyError(f"no histograms for the ground truth {gt_method!r}")
        ref = self.ab_counts[gt_method]
        rows = []
        for m, c in self.ab_counts.items():
            if c.sum(axis=-1).min() == 0:
                continue
            a, b = histogram_intersection(c, ref)
            rows.append({"method": m, "a": a, "b": b, "mean": (a + b) / 2})
        return pd.DataFrame(rows, columns=["method", "a", "b", "mean"])


@dataclass(frozen=True)
class _Pass:
    """What every chunk of one :func:`evaluate_runs` call computes (sent to the workers):
    its arguments, with ``edges`` the a/b histogram bin edges (None: no histograms),
    ``samples`` the sample methods whose pairs are scored for diversity (may be empty) and
    ``min_size`` the MS-SSIM fallback of those pairs."""

    root: str
    methods: list[str]
    metric_names: list[str]
    gt_method: str
    edges: np.ndarray | None
    samples: list[str]
    min_size: MinSize


@dataclass
class _Found:
    """What one or more chunks found (see :class:`RunsEvaluation` for the fields)."""

    rows: list[dict] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    ab_counts: dict[str, np.ndarray] = field(default_factory=dict)
    pairs: list[dict] = field(default_factory=list)
    pair_skips: list[Skip] = field(default_factory=list)

    def add_counts(self, method: str, counts: np.ndarray) -> None:
        """Add (2, n_bins) a/b pixel counts to ``method``'s."""
        old = self.ab_counts.get(method)
        self.ab_counts[method] = counts if old is None else old + counts

    def merge(self, other: _Found) -> _Found:
        """Append ``other`` (a later chunk) to this; returns self."""
        self.rows += other.rows
        self.skips += other.skips
        self.pairs += other.pairs
        self.pair_skips += other.pair_skips
        for m, c in other.ab_counts.items():
            self.add_counts(m, c)
        return self


def _evaluate_chunk(job: _Pass, ids: list[str]) -> _Found:
    """Score the images ``ids`` (one chunk of :func:`map_chunks`)."""
    runs = RunsFolder(job.root)
    specs = [get_metric(k) for k in job.metric_names]
    need_ab = job.edges is not None or any(s.input == "ab" for s in specs)
    found = _Found()
    with retained_memory():
        for image_id in ids:
            images = CachedImages(runs, image_id)
            first = _score_outputs(job, specs, need_ab, images, found)
            if job.samples:
                _score_pairs(job, images, first, found)
    return found


def _score_outputs(job: _Pass, specs: list[Metric], need_ab: bool, images: CachedImages,
                   found: _Found) -> dict[str, _Moments]:
    """Every method's row (and a/b counts) for one image into ``found``; returns the sample
    methods' prepared states of a metric with ``ms_ssim_first_scale`` (their finest-scale
    SSIM moments, which the diversity pass reuses)."""
    image_id, truth = images.image_id, None
    try:
        gt = images.get(job.gt_method)
        truth = Truth(gt, image_ab(gt) if need_ab else None)
    except ImageLoadError as err:
        if job.gt_method not in job.methods:
            found.skips.append(Skip(job.gt_method, image_id, str(err)))
    first: dict[str, _Moments] = {}
    for method in job.methods:
        try:
            img = images.get(method)
        except ImageLoadError as err:
            found.skips.append(Skip(method, image_id, str(err)))
            continue
        is_gt = truth is not None and img is truth.img
        ab = truth.ab if is_gt else (image_ab(img) if need_ab else None)
        if job.edges is not None:
            found.add_counts(method, ab_counts(ab, job.edges))
        row: dict[str, object] = {"method": method, "image_id": image_id}
        if ab is not None:
            row["mean_a"], row["mean_b"] = mean_ab(ab)
        for spec in specs:
            row[spec.name] = float("nan")
            if spec.needs_reference and (truth is None or img.shape != truth.img.shape):
                if truth is not None:
                    found.skips.append(Skip(method, image_id, f"shape {img.shape} differs "
                                            f"from {job.gt_method} {truth.img.shape}",
                                            spec.name))
                continue
            try:
                row[spec.name], own = metric_value(spec, img, ab, truth)
            except ValueError as err:
                found.skips.append(Skip(method, image_id, str(err), spec.name))
                continue
            if own is not None and spec.ms_ssim_first_scale and method in job.samples:
                first[method] = own
        found.rows.append(row)
    return first


def _score_pairs(job: _Pass, images: CachedImages, first: dict[str, _Moments],
                 found: _Found) -> None:
    """The diversity pairs of one image's sample methods into ``found``."""
    loaded = {}
    for m in job.samples:
        try:
            loaded[m] = images.get(m)
        except ImageLoadError as err:
            found.pair_skips.append(Skip(m, images.image_id, str(err)))
    rows, skips = image_pairs(images.image_id, loaded, job.min_size, first)
    found.pairs += rows
    found.pair_skips += skips


def evaluate_runs(runs_dir: str | Path, methods: Sequence[str] | None = None,
                  metrics: Sequence[str] = DEFAULT_METRICS, *, gt_method: str = GT_METHOD,
                  image_ids: Sequence[str] | None = None,
                  ab_bins: int | np.ndarray | None = None, progress: bool = False,
                  workers: int = 1, sample_prefix: str | None = None,
                  ms_ssim_min_size: MinSize = "raise") -> RunsEvaluation:
    """Per-image metrics (and optionally a/b histograms) for every method of a runs folder.

    Args:
        runs_dir: ``runs/<split>``.
        methods: methods to evaluate (default all method folders, ``gt`` included).
        metrics: registered metric names (:data:`analysis.metrics.METRICS`); one whose
            ``requires`` check fails is left out and listed in ``not_computed``.
        gt_method: the ground-truth folder.
        image_ids: ids to evaluate (default: manifest.csv, else the ``gt`` PNGs).
        ab_bins: also accumulate a/b histograms with these edges (or this many bins over
            [-128, 128]); None: no histograms.
        progress: tqdm bar over images.
        workers: processes (fork) over image chunks; 1 runs here.
        sample_prefix: also score the sample diversity in the same pass: MS-SSIM of every
            pair of the ``<sample_prefix>*`` methods of the folder for each image (exactly
            :func:`analysis.diversity.pairwise_ms_ssim`, reusing the decoded images and
            the SSIM metric's finest-scale moments); None: no diversity.
        ms_ssim_min_size: the MS-SSIM fallback for images under 161 px.

    Returns:
        A :class:`RunsEvaluation`.
    """
    runs = RunsFolder(runs_dir)
    not_computed = {k: why for k in metrics if (why := get_metric(k).unavailable())}
    for k, why in not_computed.items():
        log.info("%s not computed: %s", k, why)
    metrics = [k for k in metrics if k not in not_computed]
    methods = list(methods) if methods is not None else runs.methods()
    ids = list(image_ids) if image_ids is not None else runs.image_ids(methods)
    edges = None if ab_bins is None else ab_edges(ab_bins)
    samples = [] if sample_prefix is None else sample_methods(runs.methods(), sample_prefix)
    job = _Pass(str(runs.root), methods, list(metrics), gt_method, edges, samples,
                ms_ssim_min_size)
    found = _Found()
    for part in map_chunks(_evaluate_chunk, ids, job, workers=workers, progress=progress,
                           desc="metrics"):
        found.merge(part)
    for s in found.skips:
        log.warning("skipped %s/%s%s: %s", s.method, s.image_id,
                    f" ({s.metric})" if s.metric else "", s.reason)
    for s in found.pair_skips:
        log.warning("diversity: skipped %s/%s: %s", s.method, s.image_id, s.reason)
    per_image = pd.DataFrame(found.rows, columns=["method", "image_id", *metrics])
    counts = {m: found.ab_counts[m] for m in order_methods(list(found.ab_counts))}
    return RunsEvaluation(per_image=per_image, skipped=found.skips, ab_counts=counts,
                          ab_edges=np.asarray(edges if edges is not None else AB_EDGES),
                          methods=methods, metrics=list(metrics), image_ids=ids,
                          pairs=pd.DataFrame(found.pairs, columns=PAIR_COLUMNS),
                          pair_skips=found.pair_skips,
                          mean_ab=pd.DataFrame([r for r in found.rows if "mean_a" in r],
                                               columns=MEAN_AB_COLUMNS),
                          not_computed=not_computed)


def compute_metrics(runs_dir: str | Path, methods: Sequence[str] | None = None,
                    metrics: Sequence[str] = DEFAULT_METRICS, *, gt_method: str = "gt",
                    image_ids: Sequence[str] | None = None, progress: bool = False,
                    workers: int = 1) -> pd.DataFrame:
    """Mean of each metric per method over the images of a runs folder.

    Missing or unreadable method images (and images whose ground truth is unusable, for
    reference metrics) are skipped and logged; they are listed in
    ``result.attrs["skipped"]`` (dicts with method, image_id, reason). Per-image values:
    :func:`evaluate_runs`.

    Args:
        runs_dir: ``runs/<split>`` with ``<method>/<image_id>.png``.
        methods: methods to score (default: every method folder, ``gt`` included).
        metrics: registered metric names.
        gt_method: the ground-truth folder.
        image_ids: restrict to these ids (default: manifest.csv or the gt PNGs).
        progress: show a tqdm bar.
        workers: processes to use (1: in this process).

    Returns:
        One row per method: ``method``, ``n`` (images scored), ``n_skipped`` and one column
        per metric (mean over the images where it could be computed); metrics that could
        not run at all are in ``result.attrs["not_computed"]`` (metric -> why).
    """
    ev = evaluate_runs(runs_dir, methods, metrics, gt_method=gt_method, image_ids=image_ids,
                       progress=progress, workers=workers)
    summary = ev.summary()
    summary.attrs["skipped"] = [s.__dict__ for s in ev.skipped]
    summary.attrs["not_computed"] = dict(ev.not_computed)
    return summary


def per_image_metrics(runs_dir: str | Path, methods: Sequence[str] | None = None,
                      metrics: Sequence[str] = DEFAULT_METRICS, **kwargs: Any) -> pd.DataFrame:
    """Per-image values behind :func:`compute_metrics` (same arguments).

    Returns:
        One row per (method, image) that loaded: ``method``, ``image_id`` and one float
        column per metric (NaN where it could not be computed); skipped images are listed
        in ``result.attrs["skipped"]``.
    """
    ev = evaluate_runs(runs_dir, methods, metrics, **kwargs)
    out = ev.per_image
    out.attrs["skipped"] = [s.__dict__ for s in ev.skipped]
    return out
