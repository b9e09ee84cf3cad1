"""The metrics pass of a runs folder, cached per image so later passes compute only what
changed.

:func:`metrics_pass` computes the per-image metrics of a ``runs/<split>`` folder
(:func:`analysis.image_scores.score_images`) and FID (:func:`analysis.fid_runs.runs_fid`).
Each value is cached under the sha256 of the output file and of its truth's file and the
metric's name and version (:mod:`analysis.value_store`, :mod:`analysis.metrics_plan`), in
``<runs>/.metrics_cache/values/*.npz``, with the files' hashes indexed by size and
modification time in ``<runs>/.metrics_cache/hashes/`` (an unchanged file is not read
again). So a new method computes only its images, a changed PNG only itself, a metric whose
``version`` was raised only that metric, and a pass whose values are all cached decodes no
image. Beside ``metrics.csv`` the pass also writes:

* ``metrics_per_image.csv``: ``method``, ``image_id`` and one column per metric (the
  values of the last pass over the whole folder, for reading);
* ``metrics_cache.json``: the metrics that could not run and why, and FID rows per variant.

Sharding (``shard=(i, n)``, ``python -m bench metrics --shard i/n``, torchrun's ranks or a
SLURM array): shard i scores the photos at positions i, i + n, ... of the image list (the
rule of ``bench generate``) and writes its own values file; shards never write a file
another writes. With FID asked and its weights here, a shard also fills FID's feature cache
for its images. ``compute=False`` (``--merge``) computes no per-image value: it builds the
tables from every shard's values and lists what is still missing. The truth is the folder's
:meth:`~analysis.runs.RunsFolder.reference` unless one is named (``gt``; a protocol split's
``gt_protocol``). The leaderboard (:mod:`analysis.leaderboard`) reads through here; the
report (:mod:`analysis.evaluation_cache`) reads and fills the same cache, adding each
output's size, mean a/b and a/b histogram counts and the samples' MS-SSIM pairs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.evaluate import RunsEvaluation
from analysis.fid import default_cache_dir
from analysis.fid_features import FeatureExtractor, image_features
from analysis.fid_runs import FID_ROW_COLUMNS, FIDOptions, FIDTable, fid_missing_reason, runs_fid
from analysis.image_scores import Scores, score_images
from analysis.inception_weights import WeightsNotFound
from analysis.lab_stats import AB_EDGES
from analysis.metrics import DEFAULT_METRICS, get_metric
from analysis.metrics_plan import MISSING_COLUMNS, Plan, build_plan, shard_ids
from analysis.reference_libs import unavailable
from analysis.runs import GT_METHOD, RunsFolder, Skip
from analysis.value_store import ValueStore
from pixcolor.io import ImageLoadError, atomic_open

log = logging.getLogger(__name__)

CACHE_DIR = ".metrics_cache"
VALUES_DIR = "values"
PER_IMAGE_FILE = "metrics_per_image.csv"
STATE_FILE = "metrics_cache.json"
VERSION = 2
LOGGED_SKIPS = 20  # skipped images or values logged one by one
NOT_CACHED = "no value cached: run python -m bench metrics (or its shards) with it"


@dataclass
class MetricsPass:
    """The values of one :func:`metrics_pass`.

    Attributes:
        per_image: ``method``, ``image_id`` and a column per computed metric (NaN where an
            image could not be scored).
        metrics: the computed metrics, in the order asked.
        not_computed: metric (or FID column) -> why it could not run here (one line).
        fid: the FID table (None when not asked, and in a shard).
        evaluation: the skipped images and values of the pass (cached ones too) and
            :meth:`RunsEvaluation.summary`.
        methods: the methods, in display order.
        reused: methods none of whose values had to be computed.
        reference: the truth folder the values compare against.
        reference_line: the note naming it and FID's network ("" for plain ``gt``,
            :meth:`~analysis.runs.RunsFolder.reference_line`).
        computed: (method, image) outputs scored by this pass (the rest came from the cache).
        missing: values neither cached nor computed (``compute=False``): ``method``,
            ``image_id`` and the comma-separated ``metrics``; an output without any value
            is not in ``per_image``.
        shard: (index, count) of the photos this pass covered ((0, 1): all).
    """

    per_image: pd.DataFrame
    metrics: list[str]
    not_computed: dict[str, str]
    fid: FIDTable | None = None
    evaluation: RunsEvaluation | None = None
    methods: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    reference: str = GT_METHOD
    reference_line: str = ""
    computed: int = 0
    missing: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MISSING_COLUMNS))
    shard: tuple[int, int] = (0, 1)

    def summary(self) -> pd.DataFrame:
        """Per method: ``n``, ``n_skipped``, each metric's mean (as
        :meth:`RunsEvaluation.summary`, also from cached values) and FID when computed."""
        ev = self.evaluation or RunsEvaluation(
            per_image=self.per_image, skipped=[], ab_counts={}, ab_edges=AB_EDGES,
            methods=self.methods, metrics=self.metrics)
        df = ev.summary()
        df.attrs["skipped"] = [s.__dict__ for s in ev.skipped]
        if self.fid is not None and not self.fid.not_computed:
            values = self.fid.rows.set_index("method")["fid"]
            df.insert(3 + len(self.metrics), self.fid.options.column,
                      df["method"].map(values).astype(float))
        df.attrs["not_computed"] = dict(self.not_computed)
        df.attrs["notes"] = ([self.reference_line] if self.reference_line else []) + (
            self.fid.notes() if self.fid is not None else [])
        return df


def _read_state(runs_dir: Path) -> dict:
    """The state file ({} when absent or unreadable)."""
    try:
        state = json.loads((runs_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write(runs_dir: Path, state: dict, frame: pd.DataFrame) -> None:
    with atomic_open(runs_dir / PER_IMAGE_FILE, "w", newline="") as f:
        frame.to_csv(f, index=False, lineterminator="\n")
    with atomic_open(runs_dir / STATE_FILE, "w") as f:
        f.write(json.dumps(state, indent=1, sort_keys=True) + "\n")


def metrics_pass(runs_dir: str | os.PathLike, methods: Sequence[str] | None = None,
                 metrics: Sequence[str] = DEFAULT_METRICS, *, fid: FIDOptions | None = None,
                 gt_method: str | None = None, workers: int = 1, reuse: bool = True,
                 progress: bool = False, shard: tuple[int, int] | None = None,
                 compute: bool = True) -> MetricsPass:
    """Per-image metrics and FID of a runs folder, reusing and filling its cache.

    Args:
        runs_dir: ``runs/<split>``.
        methods: the methods (default: every method folder, ``gt`` included).
        metrics: registered per-image metrics; one that cannot run here (a missing weights
            file) and is not all cached is listed in ``not_computed``, the others still run.
        fid: compute FID with these options (None: no FID).
        gt_method: the ground-truth folder (None: the folder's
            :meth:`~analysis.runs.RunsFolder.reference`).
        workers: processes for the image pass.
        reuse: take cached values (False: compute every value anew, and FID).
        progress: a progress bar over photos.
        shard: (i, n): only the photos of shard i of n (module docstring); no FID table
            and no ``metrics_per_image.csv`` then.
        compute: False: compute no per-image value, list what the cache lacks (a merge).

    Returns:
        A :class:`MetricsPass`.
    """
    runs = RunsFolder(runs_dir)
    gt_method = gt_method or runs.reference()
    methods = list(methods) if methods is not None else runs.methods()
    index, count = shard or (0, 1)
    mine = shard_ids(runs.image_ids(methods), index, count)
    plan = build_plan(runs, methods, mine, gt_method, metrics, runs.root / CACHE_DIR, workers)
    store = ValueStore(runs.root / CACHE_DIR / VALUES_DIR, read=reuse)
    cached = store.lookup(plan.keys, plan.columns)
    not_computed = unavailable_metrics(plan, cached.present, compute)
    kept = [k for k in metrics if k not in not_computed]
    todos = plan.todos(cached.present, kept, uncacheable_only=not compute)
    scores = Scores()
    if todos:
        scores = score_images(runs.root, todos, gt_method=gt_method, workers=workers,
                              progress=progress)
        store.add(plan.new_values(scores))
        cached = store.lookup(plan.keys, plan.columns)
    store.write(f"shard-{index}-of-{count}" if count > 1 else "pass", compact=count == 1)
    frame, skips, missing = plan.table(cached, scores, kept)
    skips = _reported(skips, plan, scores, gt_method not in methods)
    scored = {s.method for s in scores.rows} | {s.method for s in scores.skips}
    result = MetricsPass(frame, kept, not_computed, methods=methods,
                         reused=[m for m in methods if m not in scored], reference=gt_method,
                         reference_line=runs.reference_line(gt_method,
                                                            fid.variant if fid else None),
                         computed=len(scores.rows) + len(scores.skips), missing=missing,
                         shard=(index, count))
    result.evaluation = RunsEvaluation(frame, skips, {}, AB_EDGES, methods, kept,
                                       image_ids=mine, not_computed=dict(not_computed))
    if count > 1:
        if fid is not None and compute:
            _fill_fid_features(runs, plan, fid, skips)
    else:
        _finish(runs, result, fid, reuse, bool(todos) or not compute)
    return result


def log_skips(skips: list[Skip]) -> None:
    """The first :data:`LOGGED_SKIPS` skipped images or values as warnings, then a count."""
    for s in skips[:LOGGED_SKIPS]:
        log.warning("skipped %s/%s%s: %s", s.method, s.image_id,
                    f" ({s.metric})" if s.metric else "", s.reason)
    if len(skips) > LOGGED_SKIPS:
        log.warning("... and %d more skipped images or values", len(skips) - LOGGED_SKIPS)


def _reported(skips: list[Skip], plan: Plan, scores: Scores, truth_apart: bool
              ) -> list[Skip]:
    """``skips`` and, when the truth is not one of the methods (``truth_apart``), the
    truths that exist but did not load; the first few are logged."""
    if truth_apart:
        known = {s.image_id for s in plan.skips if s.method == plan.truth}
        skips = skips + [Skip(plan.truth, i, why) for i, why in scores.truth_failed.items()
                         if i not in known]
    log_skips(skips)
    return skips


def unavailable_metrics(plan: Plan, present: np.ndarray, compute: bool) -> dict[str, str]:
    """Metrics that cannot be had: in a computing pass, those whose ``requires`` fails
    and whose values are not all cached; in a merge, those with no cached value (why:
    their ``requires``'s line where it fails here too)."""
    out = {}
    ok = plan.cacheable()
    for j, k in enumerate(plan.metrics):
        held = present[:, j] & ok
        if not compute:
            if len(plan.rows) and not held.any():
                out[k] = get_metric(k).unavailable() or NOT_CACHED
        elif not held.all() and (why := get_metric(k).unavailable()):
            out[k] = why
    for k, why in out.items():
        log.info("%s not computed: %s", k, why)
    return out


def _finish(runs: RunsFolder, result: MetricsPass, fid: FIDOptions | None, reuse: bool,
            changed: bool) -> None:
    """FID, and the state and per-image files, of a pass over every photo."""
    state = _read_state(runs.root) if reuse else {}
    changed |= not (runs.root / PER_IMAGE_FILE).exists()
    if fid is not None:
        changed |= _fid_step(runs, result.methods, fid, result.reference,
                             result.evaluation.image_ids, state, result)
    if changed or state.get("not_computed") != result.not_computed:
        state.update(version=VERSION, not_computed=result.not_computed)
        _write(runs.root, state, result.per_image)


def _fill_fid_features(runs: RunsFolder, plan: Plan, options: FIDOptions,
                       skips: list[Skip]) -> None:
    """A shard's part of FID's feature cache: the features of its outputs and truths
    (nothing when the weights are not here); the merge's FID then computes none."""
    why = fid_missing_reason(options.variant, options.weights)
    if not why and options.backend == "reference":
        why = unavailable(options.variant)
    if why:
        log.info("%s features not computed in this shard: %s", options.column, why)
        return
    bad = {(s.method, s.image_id) for s in skips if not s.metric}
    paths = [runs.path(m, i) for m, i in plan.rows if (m, i) not in bad]
    truths = [runs.path(plan.truth, i) for (_, i), k in zip(plan.rows, plan.keys, strict=True)
              if k != b"" and (plan.truth, i) not in bad]
    ext = FeatureExtractor.open(options.variant, options.weights, device=options.device,
                                batch_size=options.batch_size, backend=options.backend)
    try:
        image_features(list(dict.fromkeys(paths + truths)), ext,
                       options.cache_dir or default_cache_dir())
    except (ImageLoadError, WeightsNotFound) as err:
        log.warning("%s features of this shard stopped: %s", options.column, err)


def _fid_step(runs: RunsFolder, methods: list[str], options: FIDOptions, gt_method: str,
              ids: list[str], state: dict, result: MetricsPass) -> bool:
    """FID into ``result`` (rows reused from ``state`` where their key still holds);
    returns whether anything was computed."""
    saved = state.setdefault("fid", {}).get(options.column, {}).get("rows", [])
    previous = pd.DataFrame(saved, columns=FID_ROW_COLUMNS)
    table = runs_fid(runs.root, methods, options, gt_method=gt_method, image_ids=ids,
                     previous=previous)
    result.fid = table
    result.not_computed.pop(options.column, None)
    if table.not_computed:
        result.not_computed[options.column] = table.not_computed
        return False
    keep = previous[~previous["method"].isin(table.rows["method"])]
    rows = pd.concat([keep, table.rows], ignore_index=True) if len(keep) else table.rows
    state["fid"][options.column] = {"weights_sha256": table.weights_sha256,
                                    "rows": rows.to_dict("records")}
    return table.computed > 0
