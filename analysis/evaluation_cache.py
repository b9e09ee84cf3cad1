"""The report's pass over a runs folder through the metrics cache: only what is new is computed.

:func:`cached_evaluation` returns what :func:`analysis.evaluate.evaluate_runs` returns for
the report (per-image metrics, Lab a/b histogram counts, each output's mean a/b and the
sample diversity pairs, with the skipped images and values in its order and words), the
same numbers bit for bit, taking from the runs folder's cache (:mod:`analysis.metrics_cache`,
``<runs>/.metrics_cache/``) every value held and computing the others photo by photo
(:func:`analysis.image_scores.score_images`), then adding them to the cache. So a report
after one more method computes only that method's images (and, for a sample, its pairs), a
changed PNG only its own values, and a report with nothing changed decodes no image.

Beside the metrics' values (:mod:`analysis.value_store`: key the output's sha256 and its
truth's, column ``name@vN``) the cache holds, under the same keys:

* in the same store, each output's size and mean a/b (:data:`STAT_COLUMNS`);
* in ``vectors/`` (:class:`analysis.value_store.VectorStore`), its a/b histogram counts,
  int64 (2, n_bins), in a column named after the bin edges' sha256 (:func:`counts_column`);
* in the same store, under the key of two samples' files (sample a's sha256, then sample
  b's), their MS-SSIM (:data:`PAIR_COLUMN`; with images under 161 px, whose value depends on
  the fallback, :func:`pair_column` of it).

An output whose truth file is missing has no key: its values are computed in every pass, as
are those of an output or truth that does not load.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.diversity import PAIR_COLUMNS, sample_methods
from analysis.evaluate import MEAN_AB_COLUMNS, RunsEvaluation
from analysis.image_scores import Scores, Todo, naming_truth, score_images
from analysis.lab_stats import AB_EDGES, ab_edges
from analysis.metrics import DEFAULT_METRICS, get_metric
from analysis.metrics_cache import (
    CACHE_DIR,
    LOGGED_SKIPS,
    VALUES_DIR,
    log_skips,
    unavailable_metrics,
)
from analysis.metrics_plan import Plan, build_plan
from analysis.runs import RunsFolder, Skip, order_methods
from analysis.ssim import MIN_SIDE, MinSize
from analysis.value_store import KEY_DTYPE, Block, ValueStore, VectorStore, column_name, pair_key

log = logging.getLogger(__name__)

VECTORS_DIR = "vectors"
STATS_VERSION = 1  # raised when an output's size, mean a/b or a/b counts change
STAT_COLUMNS = [column_name(f"stat:{k}", STATS_VERSION)
                for k in ("height", "width", "mean_a", "mean_b")]
PAIR_COLUMN = column_name("pair:ms_ssim", 1)


def pair_column(min_size: MinSize) -> str:
    """The cache column of the MS-SSIM of two samples under 161 px with this fallback."""
    return f"{PAIR_COLUMN}:{min_size}"


def counts_column(edges: np.ndarray) -> str:
    """The cache column of a/b histogram counts with these bin edges."""
    digest = hashlib.sha256(np.asarray(edges, np.float64).tobytes()).hexdigest()[:16]
    return f"{column_name('stat:ab_counts', STATS_VERSION)}:{digest}"


@dataclass
class CachedEvaluation(RunsEvaluation):
    """A :class:`~analysis.evaluate.RunsEvaluation`, and what this pass computed:
    ``computed`` outputs decoded and scored (the rest came from the cache) and
    ``computed_pairs`` sample pairs."""

    computed: int = 0
    computed_pairs: int = 0


@dataclass
class _Held:
    """Per plan row: the stats (height, width, mean a, mean b), the a/b counts and whether
    both are known; the metrics' cells; and the sample pairs' values by key and column."""

    stats: np.ndarray
    counts: np.ndarray | None
    known: np.ndarray
    metrics: Block
    pairs: Block


@dataclass
class _Setup:
    """The fixed inputs of one pass."""

    runs: RunsFolder
    methods: list[str]
    ids: list[str]
    samples: list[str]
    edges: np.ndarray | None
    min_size: MinSize
    writable: bool


def cached_evaluation(runs_dir: str | os.PathLike, methods: Sequence[str] | None = None,
                      metrics: Sequence[str] = DEFAULT_METRICS, *,
                      gt_method: str | None = None,
                      ab_bins: int | np.ndarray | None = AB_EDGES,
                      sample_prefix: str | None = None, ms_ssim_min_size: MinSize = "raise",
                      workers: int = 1, progress: bool = False,
                      reuse: bool = True) -> CachedEvaluation:
    """:func:`analysis.evaluate.evaluate_runs` through the cache (module docstring).

    Args:
        runs_dir: ``runs/<split>``.
        methods: the methods (default: every method folder, ``gt`` included).
        metrics: registered metrics; one that cannot run here and is not all cached is
            listed in ``not_computed`` (as :func:`analysis.metrics_cache.metrics_pass`).
        gt_method: the truth folder (None: :meth:`~analysis.runs.RunsFolder.reference`).
        ab_bins: a/b histogram bin edges or count (None: no histograms).
        sample_prefix: also the sample diversity of the ``<sample_prefix>*`` methods.
        ms_ssim_min_size: the MS-SSIM fallback of samples under 161 px.
        workers: processes for the values to compute.
        progress: a progress bar over the photos computed.
        reuse: take cached values (False: compute every value and file hash anew; the new
            values still go to the cache).

    Returns:
        A :class:`CachedEvaluation`.
    """
    runs = RunsFolder(runs_dir)
    gt_method = gt_method or runs.reference()
    methods = list(methods) if methods is not None else runs.methods()
    samples = [] if sample_prefix is None else sample_methods(runs.methods(), sample_prefix)
    ids = runs.image_ids(methods)
    setup = _Setup(runs, methods, ids, samples, None if ab_bins is None else ab_edges(ab_bins),
                   ms_ssim_min_size, _writable(runs.root / CACHE_DIR))
    everyone = [*methods, *[s for s in samples if s not in methods]]
    plan = build_plan(runs, everyone, ids, gt_method, metrics,
                      runs.root / CACHE_DIR if reuse and setup.writable else None, workers)
    store = ValueStore(runs.root / CACHE_DIR / VALUES_DIR, read=reuse)
    vectors = VectorStore(runs.root / CACHE_DIR / VECTORS_DIR, read=reuse)
    held = _lookup(setup, plan, store, vectors)
    not_computed = unavailable_metrics(plan, held.metrics.present, True)
    kept = [k for k in metrics if k not in not_computed]
    todos = _todos(setup, plan, held, kept)
    scores = Scores()
    if todos:
        scores = score_images(runs.root, todos, gt_method=gt_method, workers=workers,
                              progress=progress, edges=setup.edges, min_size=ms_ssim_min_size)
        _store(setup, plan, scores, store, vectors)
        held = _lookup(setup, plan, store, vectors)
    _overlay(plan, held, scores)
    out = _assemble(setup, plan, held, scores, kept)
    out.image_ids, out.not_computed = ids, not_computed
    out.computed, out.computed_pairs = len(scores.rows) + len(scores.skips), len(scores.pairs)
    log.info("report values: %d outputs and %d sample pairs computed, %d outputs from the "
             "cache", out.computed, out.computed_pairs, len(plan.rows) - out.computed)
    return out


def _writable(folder: Path) -> bool:
    """Whether the cache folder can be written (a read-only runs folder is only read)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        log.warning("%s cannot be written: the report's values are not cached", folder)
    return writable


def _lookup(setup: _Setup, plan: Plan, store: ValueStore, vectors: VectorStore) -> _Held:
    """What the cache holds of the plan's rows and of its samples' pairs."""
    ok, n = plan.cacheable(), len(plan.columns)
    both = store.lookup(plan.keys, [*plan.columns, *STAT_COLUMNS])  # one search of the keys
    metrics = Block(both.keys, both.columns[:n], both.values[:, :n], both.present[:, :n],
                    {cell: why for cell, why in both.reasons.items() if cell[1] < n})
    known = both.present[:, n:].all(axis=1) & ok
    counts = None
    if setup.edges is not None:
        counts, have = vectors.lookup(plan.keys, counts_column(setup.edges),
                                      (2, len(setup.edges) - 1), np.int64)
        known &= have
    pair_keys = [pair_key(plan.files[(a, i)], plan.files[(b, i)])
                 for i, a, b in _pairs(setup, plan, plan.files)]
    return _Held(both.values[:, n:], counts, known, metrics,
                 store.lookup(np.asarray(pair_keys, KEY_DTYPE),
                              [PAIR_COLUMN, pair_column(setup.min_size)]))


def _pairs(setup: _Setup, plan: Plan, have: dict | set) -> list[tuple[str, str, str]]:
    """(image_id, sample a, sample b) of every two samples of a photo that are both in
    ``have``, photo by photo in plan order."""
    return [(i, a, b) for i in setup.ids
            for a, b in itertools.combinations([s for s in setup.samples if (s, i) in have], 2)]


def _todos(setup: _Setup, plan: Plan, held: _Held, kept: list[str]) -> list[Todo]:
    """Per photo, what the cache lacks: the outputs' metrics (of ``kept``) and stats, and
    the pairs of samples whose value is missing or whose sizes are not known yet."""
    ok = plan.cacheable()
    want = [j for j, k in enumerate(plan.metrics) if k in kept]
    need = ~(held.metrics.present[:, want] & ok[:, None])
    extra = np.asarray([m not in setup.methods for m, _ in plan.rows], bool)
    need[extra] = False  # samples outside ``methods``: only their stats and pairs
    work: dict[str, tuple[list, list, list]] = {i: ([], [], []) for i in setup.ids}
    for r in np.flatnonzero(need.any(axis=1) | ~held.known):
        method, image_id = plan.rows[r]
        todo = tuple(plan.metrics[want[j]] for j in np.flatnonzero(need[r]))
        if todo or not held.known[r]:
            work[image_id][0].append((method, todo))
        if not held.known[r]:
            work[image_id][1].append(method)
    row = {r: n for n, r in enumerate(plan.rows)}
    for p, (i, a, b) in enumerate(_pairs(setup, plan, plan.files)):
        ra, rb = row[(a, i)], row[(b, i)]
        if held.known[ra] and held.known[rb]:
            sa, sb = held.stats[ra, :2], held.stats[rb, :2]
            if (sa != sb).any() or held.pairs.present[p, int(sa.min() < MIN_SIDE)]:
                continue
        elif held.pairs.present[p].any():  # their sizes come with their stats
            continue
        work[i][2].append((a, b))
    return [Todo(i, tuple(m), tuple(s), tuple(p)) for i, (m, s, p) in work.items()
            if m or p]


def _store(setup: _Setup, plan: Plan, scores: Scores, store: ValueStore,
           vectors: VectorStore) -> None:
    """Add what ``scores`` holds that can be cached to the stores and write them."""
    ok = plan.cacheable()
    new = plan.new_values(scores)
    keep = new.present.any(axis=1)  # an output asked only for its stats has no metric
    at = np.cumsum(keep) - 1
    store.add(Block(new.keys[keep], new.columns, new.values[keep], new.present[keep],
                    {(int(at[r]), c): why for (r, c), why in new.reasons.items() if keep[r]}))
    row = {r: n for n, r in enumerate(plan.rows)}
    stats = [(row[(s.method, s.image_id)], s) for s in scores.stats]
    stats = [(r, s) for r, s in stats if ok[r]]
    keys = plan.keys[[r for r, _ in stats]]
    values = np.asarray([[s.height, s.width, s.mean_a, s.mean_b] for _, s in stats],
                        np.float64).reshape(-1, len(STAT_COLUMNS))
    store.add(Block(keys, list(STAT_COLUMNS), values, np.ones(values.shape, bool)))
    if setup.edges is not None and stats:
        vectors.add(counts_column(setup.edges), keys, np.stack([s.counts for _, s in stats]))
    pairs = scores.pairs
    if pairs:
        pkeys = np.asarray([pair_key(plan.files[(p.method_a, p.image_id)],
                                     plan.files[(p.method_b, p.image_id)]) for p in pairs],
                           KEY_DTYPE)
        small = np.asarray([p.small for p in pairs])
        values = np.full((len(pairs), 2), np.nan)
        values[np.arange(len(pairs)), small.astype(int)] = [p.ms_ssim for p in pairs]
        store.add(Block(pkeys, [PAIR_COLUMN, pair_column(setup.min_size)], values,
                        np.stack([~small, small], axis=1)))
    if setup.writable:
        store.write("report", compact=True)
        vectors.write("report", compact=True)


def _overlay(plan: Plan, held: _Held, scores: Scores) -> None:
    """The stats just computed into ``held`` (those of outputs without a key included)."""
    row = {r: n for n, r in enumerate(plan.rows)}
    for s in scores.stats:
        r = row[(s.method, s.image_id)]
        held.stats[r] = [s.height, s.width, s.mean_a, s.mean_b]
        if held.counts is not None:
            held.counts[r] = s.counts
        held.known[r] = True


def _assemble(setup: _Setup, plan: Plan, held: _Held, scores: Scores,
              kept: list[str]) -> CachedEvaluation:
    """The evaluation of ``setup.methods`` from the held and computed values."""
    frame, skips, _ = plan.table(held.metrics, scores, kept)
    if len(frame) and not frame["method"].isin(setup.methods).all():
        frame = frame[frame["method"].isin(setup.methods)].reset_index(drop=True)
    row = {r: n for n, r in enumerate(plan.rows)}
    rows = np.asarray([row[r] for r in zip(frame["method"], frame["image_id"], strict=True)],
                      np.int64)
    if not held.known[rows].all():
        raise RuntimeError("an output's a/b statistics were neither cached nor computed")
    mean_ab = pd.DataFrame({"method": frame["method"], "image_id": frame["image_id"],
                            "mean_a": held.stats[rows, 2], "mean_b": held.stats[rows, 3]},
                           columns=MEAN_AB_COLUMNS)
    if held.counts is None and not any(get_metric(k).input == "ab" for k in kept):
        mean_ab = pd.DataFrame(columns=MEAN_AB_COLUMNS)  # evaluate_runs: a/b only for these
    counts = {}
    if held.counts is not None:
        methods = frame["method"].to_numpy()
        for m in order_methods(list(dict.fromkeys(methods))):
            counts[m] = held.counts[rows[methods == m]].sum(axis=0, dtype=np.int64)
    pairs, pair_skips = _diversity(setup, plan, held, scores)
    return CachedEvaluation(
        per_image=frame, skipped=_ordered_skips(setup, plan, skips, scores, kept),
        ab_counts=counts, ab_edges=np.asarray(AB_EDGES if setup.edges is None else setup.edges),
        methods=list(setup.methods), metrics=list(kept), pairs=pairs, pair_skips=pair_skips,
        mean_ab=mean_ab)


def _ordered_skips(setup: _Setup, plan: Plan, skips: list[Skip], scores: Scores,
                   kept: list[str]) -> list[Skip]:
    """The skips of ``setup.methods`` (and of the truth when it is not one of them) in the
    order and words of :func:`analysis.evaluate.evaluate_runs`: photo by photo, the truth
    first, then method by method, metric by metric; the first few are logged."""
    truth_apart = plan.truth not in setup.methods
    methods = set(setup.methods)
    skips = [s for s in skips if s.method in methods or (truth_apart and s.method == plan.truth)]
    if truth_apart:
        known = {s.image_id for s in skips if s.method == plan.truth}
        skips += [Skip(plan.truth, i, why) for i, why in scores.truth_failed.items()
                  if i not in known]
    photo = {i: n for n, i in enumerate(setup.ids)}
    rank = {m: n for n, m in enumerate(setup.methods)}
    if truth_apart:
        rank[plan.truth] = -1
    metric = {k: n for n, k in enumerate(kept)}
    skips = sorted(skips, key=lambda s: (photo[s.image_id], rank[s.method],
                                         metric.get(s.metric, -1)))
    skips = [Skip(s.method, s.image_id, naming_truth(s.reason, plan.truth), s.metric)
             if s.metric else s for s in skips]
    log_skips(skips)
    return skips


def _diversity(setup: _Setup, plan: Plan, held: _Held, scores: Scores
               ) -> tuple[pd.DataFrame, list[Skip]]:
    """The sample pairs and the sample images they could not use, as
    :func:`analysis.diversity.image_pairs` gives them photo by photo."""
    rows: list[dict] = []
    skips: list[Skip] = []
    if not setup.samples:
        return pd.DataFrame(rows, columns=PAIR_COLUMNS), skips
    whole = {(s.method, s.image_id): s.reason for s in [*plan.skips, *scores.skips]
             if not s.metric}
    index = {r: n for n, r in enumerate(plan.rows)}
    shape = {r: (int(held.stats[n, 0]), int(held.stats[n, 1]), 3) for r, n in index.items()
             if held.known[n] and r not in whole}
    where = {t: p for p, t in enumerate(_pairs(setup, plan, plan.files))}
    for i in setup.ids:
        skips += [Skip(s, i, whole.get((s, i), "not scored")) for s in setup.samples
                  if (s, i) not in shape]
        loaded = [s for s in setup.samples if (s, i) in shape]
        if len(loaded) < 2:
            continue
        small = min(min(shape[(s, i)][:2]) for s in loaded) < MIN_SIDE
        for a, b in itertools.combinations(loaded, 2):
            sa, sb = shape[(a, i)], shape[(b, i)]
            if sa != sb:
                skips.append(Skip(b, i, f"shape {sb} differs from {a} {sa}", "ms_ssim"))
                continue
            p, col = where[(i, a, b)], int(min(sa[:2]) < MIN_SIDE)
            if not held.pairs.present[p, col]:
                log.warning("diversity: no value for %s/%s and %s", i, a, b)
                continue
            rows.append({"image_id": i, "method_a": a, "method_b": b,
                         "ms_ssim": float(held.pairs.values[p, col]),
                         "fallback": setup.min_size if small else ""})
    for s in skips[:LOGGED_SKIPS]:
        log.warning("diversity: skipped %s/%s: %s", s.method, s.image_id, s.reason)
    return pd.DataFrame(rows, columns=PAIR_COLUMNS), skips
