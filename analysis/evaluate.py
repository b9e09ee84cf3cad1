"""One pass over a runs folder: per-image metrics and Lab a/b histograms (paper Fig. 7).

:func:`evaluate_runs` loads every ``<method>/<image_id>.png`` once, computes the registered
metrics against ``gt`` and accumulates the marginal a/b histograms of every method, so the
report reads each image a single time. Work is split over image chunks, optionally in
several processes; results do not depend on the number of workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.lab_stats import (
    AB_EDGES,
    ABLookup,
    ab_counts,
    ab_edges,
    histogram_intersection,
    image_ab,
)
from analysis.metrics import DEFAULT_METRICS, get_metric
from analysis.runs import (
    GT_METHOD,
    ImageLoadError,
    RunsFolder,
    Skip,
    map_chunks,
    order_methods,
)

log = logging.getLogger(__name__)

LOOKUP_MIN_PIXELS = 2 * 2**24  # above this many pixels to convert, tabulate Lab once


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
    """

    per_image: pd.DataFrame
    skipped: list[Skip]
    ab_counts: dict[str, np.ndarray]
    ab_edges: np.ndarray
    methods: list[str]
    metrics: list[str]
    image_ids: list[str] = field(default_factory=list)

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
        return pd.DataFrame(rows, columns=["method", "n", "n_skipped", *self.metrics, *extra])

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


def _evaluate_chunk(root: str, methods: list[str], metric_names: list[str], gt_method: str,
                    edges: np.ndarray | None, use_lookup: bool,
                    ids: list[str]) -> tuple[list[dict], list[Skip], dict[str, np.ndarray]]:
    runs = RunsFolder(root)
    specs = [get_metric(k) for k in metric_names]
    to_ab: Callable[[np.ndarray], np.ndarray] = ABLookup() if use_lookup else image_ab
    need_ab = edges is not None or any(s.input == "ab" for s in specs)
    rows: list[dict] = []
    skips: list[Skip] = []
    counts: dict[str, np.ndarray] = {}
    for image_id in ids:
        gt = gt_ab = None
        gt_state: dict[str, object] = {}
        try:
            gt = runs.load(gt_method, image_id)
            gt_ab = to_ab(gt) if need_ab else None
        except ImageLoadError as err:
            if gt_method not in methods:
                skips.append(Skip(gt_method, image_id, str(err)))
        for method in methods:
            try:
                img = gt if (method == gt_method and gt is not None) else runs.load(method,
                                                                                   image_id)
            except ImageLoadError as err:
                skips.append(Skip(method, image_id, str(err)))
                continue
            ab = gt_ab if img is gt else (to_ab(img) if need_ab else None)
            if edges is not None:
                c = ab_counts(ab, edges)
                counts[method] = counts[method] + c if method in counts else c
            row: dict[str, object] = {"method": method, "image_id": image_id}
            for spec in specs:
                row[spec.name] = float("nan")
                if spec.needs_reference and (gt is None or img.shape != gt.shape):
                    if gt is not None:
                        skips.append(Skip(method, image_id, f"shape {img.shape} differs from "
                                          f"{gt_method} {gt.shape}", spec.name))
                    continue
                try:
                    if not spec.needs_reference:
                        row[spec.name] = spec.fn(ab if spec.input == "ab" else img)
                    elif spec.input == "ab":
                        row[spec.name] = spec.fn(ab, gt_ab)
                    elif spec.prepare is not None:
                        if spec.name not in gt_state:
                            gt_state[spec.name] = spec.prepare(gt)
                        own = gt_state[spec.name] if img is gt else spec.prepare(img)
                        row[spec.name] = spec.fn_prepared(own, gt_state[spec.name])
                    else:
                        row[spec.name] = spec.fn(img, gt)
                except ValueError as err:
                    skips.append(Skip(method, image_id, str(err), spec.name))
            rows.append(row)
    return rows, skips, counts


def evaluate_runs(runs_dir: str | Path, methods: Sequence[str] | None = None,
                  metrics: Sequence[str] = DEFAULT_METRICS, *, gt_method: str = GT_METHOD,
                  image_ids: Sequence[str] | None = None,
                  ab_bins: int | np.ndarray | None = None, progress: bool = False,
                  workers: int = 1, lab_lookup: bool | None = None) -> RunsEvaluation:
    """Per-image metrics (and optionally a/b histograms) for every method of a runs folder.

    Args:
        runs_dir: ``runs/<split>``.
        methods: methods to evaluate (default all method folders, ``gt`` included).
        metrics: registered metric names (:data:`analysis.metrics.METRICS`).
        gt_method: the ground-truth folder.
        image_ids: ids to evaluate (default: manifest.csv, else the ``gt`` PNGs).
        ab_bins: also accumulate a/b histograms with these edges (or this many bins over
            [-128, 128]); None: no histograms.
        progress: tqdm bar over images.
        workers: processes (fork) over image chunks; 1 runs here.
        lab_lookup: tabulate Lab for all uint8 colours (:class:`ABLookup`); None decides by
            the number of pixels (more than 2 * 2**24).

    Returns:
        A :class:`RunsEvaluation`.
    """
    runs = RunsFolder(runs_dir)
    for k in metrics:
        get_metric(k)
    methods = list(methods) if methods is not None else runs.methods()
    ids = list(image_ids) if image_ids is not None else runs.image_ids(methods)
    edges = None if ab_bins is None else ab_edges(ab_bins)
    need_ab = edges is not None or any(get_metric(k).input == "ab" for k in metrics)
    if not need_ab:
        lab_lookup = False
    if lab_lookup is None and ids:
        try:
            h, w = runs.load(gt_method, ids[0]).shape[:2]
        except ImageLoadError:
            h = w = 256
        lab_lookup = h * w * len(ids) * (len(methods) + 1) > LOOKUP_MIN_PIXELS
    if lab_lookup:
        ABLookup.table()  # build once here so forked workers share it
    results = map_chunks(_evaluate_chunk, ids, str(runs.root), methods, list(metrics),
                         gt_method, edges, bool(lab_lookup), workers=workers,
                         progress=progress, desc="metrics")
    rows = [r for res in results for r in res[0]]
    skips = [s for res in results for s in res[1]]
    counts: dict[str, np.ndarray] = {}
    for res in results:
        for m, c in res[2].items():
            counts[m] = counts[m] + c if m in counts else c
    for s in skips:
        log.warning("skipped %s/%s%s: %s", s.method, s.image_id,
                    f" ({s.metric})" if s.metric else "", s.reason)
    per_image = pd.DataFrame(rows, columns=["method", "image_id", *metrics])
    counts = {m: counts[m] for m in order_methods(list(counts))}
    return RunsEvaluation(per_image=per_image, skipped=skips, ab_counts=counts,
                          ab_edges=np.asarray(edges if edges is not None else AB_EDGES),
                          methods=methods, metrics=list(metrics), image_ids=ids)
