"""FID of every method of a runs folder against its ground truth, with a bootstrap interval.

FID is a metric of a set: per method, the method's outputs against the truth of the same
photos (the images both have), from Inception-v3 pool features cached per image
(:func:`analysis.fid_features.image_features`: adding a method computes only its images).
The network is named with the value: ``fid`` (column ``fid``) is the TF-ported Inception of
pytorch-fid and torch-fidelity, the common protocol; ``torchvision`` (column
``fid_torchvision``) is the network DDColor's and CT2's evaluation code uses, for numbers
held against theirs. The two do not compare with each other.

The interval (:mod:`analysis.fid_interval`) is over images, paired (row i of the method and
of the truth is the same photo, drawn together), on the same draws for every method of equal
image count (one ``np.random.default_rng(seed)`` per method): by default the percentile
interval of FID's linearised bootstrap (one eigendecomposition per method: about 2 s at
5,000 images; it matched the spread of FID across independent datasets where recomputing
FID on resamples overstated it), or with ``interval="resample"`` FID recomputed on every
resample (about 1.2 s each at 5,000 images). The point estimate takes a factored route
without a 2048 x 2048 ``sqrtm`` and equals :func:`analysis.fid.fid` up to rounding
(tested).

Below 2,048 images the covariance is rank-deficient and FID biased upward
(:data:`analysis.fid.MIN_IMAGES`): :meth:`FIDTable.notes` says so once.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.fid import MIN_IMAGES, Interval, default_cache_dir
from analysis.fid_features import FeatureExtractor, image_features
from analysis.fid_interval import INTERVALS, TruthFactor, linear_fid, paired_fid
from analysis.inception_weights import WeightsNotFound, get_variant, hub_checkpoints_dir
from analysis.reference_libs import BACKENDS, unavailable
from analysis.runs import GT_METHOD, RunsFolder
from pixcolor.io import ImageLoadError

log = logging.getLogger(__name__)

FID_ROW_COLUMNS = ["method", "n", "fid", "fid_low", "fid_high", "key"]
NETWORKS = {"fid": "TF-ported Inception-v3 of pytorch-fid / torch-fidelity",
            "torchvision": "torchvision Inception-v3, as DDColor's and CT2's code"}


def fid_column(variant: str) -> str:
    """The table column of a variant's FID: ``fid`` or ``fid_<variant>``."""
    get_variant(variant)
    return "fid" if variant == "fid" else f"fid_{variant}"


@dataclass(frozen=True)
class FIDOptions:
    """How FID is computed for a runs folder.

    Attributes:
        variant: ``"fid"`` or ``"torchvision"`` (:data:`analysis.inception_weights.VARIANTS`).
        weights: the weights file (None: its environment variable, then torch hub's cache).
        cache_dir: the feature cache (None: :func:`analysis.fid.default_cache_dir`).
        device, batch_size: of the Inception forward passes (cache misses only).
        n_resamples: bootstrap resamples of the interval (0: none).
        interval: ``"linear"`` (FID's linearised bootstrap) or ``"resample"`` (FID
            recomputed per resample); :mod:`analysis.fid_interval`.
        backend: ``"ours"`` or ``"reference"`` (the features from torch-fidelity's or
            torchvision's own network: :mod:`analysis.reference_libs`).
        seed: the bootstrap's seed (the same draws for every method of equal image count).
        level: the interval's central coverage.
    """

    variant: str = "fid"
    weights: str | None = None
    cache_dir: str | None = None
    device: str = "cpu"
    batch_size: int = 50
    n_resamples: int = 100
    seed: int = 0
    level: float = 0.95
    interval: str = "linear"
    backend: str = "ours"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"FID backend must be one of {', '.join(BACKENDS)}, got "
                             f"{self.backend!r}")
        if self.interval not in INTERVALS:
            raise ValueError(f"FID interval must be one of {', '.join(INTERVALS)}, got "
                             f"{self.interval!r}")

    @property
    def column(self) -> str:
        return fid_column(self.variant)

    def describe(self) -> str:
        """One line: the column, its network, the interval."""
        return (f"{self.column}: FID against the truth, {NETWORKS[self.variant]}; "
                f"{self.level:.0%} paired percentile bootstrap over images "
                f"({'linearised' if self.interval == 'linear' else 'FID per resample'}), "
                f"{self.n_resamples} resamples, seed {self.seed}"
                + ("; features from the reference library's network"
                   if self.backend == "reference" else ""))


@dataclass
class FIDTable:
    """What :func:`runs_fid` found: one row per method (``FID_ROW_COLUMNS``: the image
    count, the estimate, the interval and the cache key it was computed under), or why FID
    was not computed at all (``not_computed``), plus per-method failures (``failed``)."""

    options: FIDOptions
    rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FID_ROW_COLUMNS))
    not_computed: str | None = None
    weights_sha256: str = ""
    failed: dict[str, str] = field(default_factory=dict)
    computed: int = 0  # methods computed now (the rest came from ``previous``)

    def notes(self) -> list[str]:
        """The lines a table prints under its rows: the few-images warning, once."""
        if self.not_computed or self.rows.empty:
            return []
        n = int(self.rows["n"].max())
        if n >= MIN_IMAGES:
            return []
        return [f"{self.options.column}: {n} images per method (< {MIN_IMAGES:,}): the "
                "covariance is rank-deficient and FID is biased upward; compare FIDs only "
                "at equal image counts"]


def fid_missing_reason(variant: str = "fid", weights: str | os.PathLike | None = None
                       ) -> str | None:
    """One line naming the missing Inception weights file and where it comes from, or None
    when it is found (:func:`analysis.inception_weights.find_weights`'s order)."""
    v = get_variant(variant)
    url = v.url.split(" ")[0]
    given = weights or os.environ.get(v.env)
    if given:
        if Path(given).is_file():
            return None
        how = "--fid-weights" if weights else f"${v.env}"
        return f"needs {v.files[0]} ({url}); {how}={given} does not exist"
    hub = hub_checkpoints_dir()
    if any((hub / name).is_file() for name in v.files):
        return None
    return f"needs {v.files[0]} ({url}): set ${v.env} to it or put it in {hub}"


# --------------------------------------------------------------------------- runs folders


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """A short hash of a folder's PNG names, sizes and modification times (cheap: no
    reading), so a cached value of its images is reused only while they are unchanged."""
    h = hashlib.sha1()
    try:
        entries = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns)
                         for e in os.scandir(folder) if e.name.endswith(".png"))
    except FileNotFoundError:
        entries = []
    for name, size, mtime in entries:
        h.update(f"{name}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()[:16]


def _key(runs: RunsFolder, method: str, ids: list[str], extra: str) -> str:
    """The cache key of a method's FID row; ``extra`` holds the settings and the truth
    folder's fingerprint (taken once per call of :func:`runs_fid`)."""
    h = hashlib.sha1("\n".join(ids).encode())
    for part in (folder_fingerprint(runs.root / method), extra):
        h.update(part.encode())
    return h.hexdigest()[:16]


def _stems(folder: Path) -> set[str]:
    """The image ids with a PNG file in ``folder`` (one directory listing, no stat each)."""
    try:
        return {e.name[:-4] for e in os.scandir(folder) if e.name.endswith(".png")
                and e.is_file()}
    except FileNotFoundError:
        return set()


class _Features:
    """The features of one runs folder's images (the truth's read once) and the factor of
    the truth's covariance for the current photo set."""

    def __init__(self, runs: RunsFolder, options: FIDOptions, gt_method: str) -> None:
        self.runs, self.options, self.gt_method = runs, options, gt_method
        self.ext = FeatureExtractor.open(options.variant, options.weights,
                                         device=options.device, batch_size=options.batch_size,
                                         backend=options.backend)
        self.cache = options.cache_dir or default_cache_dir()
        self.truth: dict[str, np.ndarray] = {}
        self.factor: tuple[tuple[str, ...], TruthFactor] | None = None
        self.ref: tuple[tuple[str, ...], np.ndarray] | None = None

    def of(self, method: str, ids: list[str]) -> np.ndarray:
        folder = self.runs.root / method
        return image_features([folder / f"{i}.png" for i in ids], self.ext, self.cache)

    def fid(self, method: str, have: list[str]) -> Interval:
        """FID and interval of ``method`` over the photos ``have`` (ImageLoadError,
        WeightsNotFound)."""
        todo = [i for i in have if i not in self.truth]
        self.truth.update(zip(todo, self.of(self.gt_method, todo), strict=True))
        feats = self.of(method, have)
        if self.ref is None or self.ref[0] != tuple(have):  # the truth of this photo set
            self.ref = (tuple(have), np.stack([self.truth[i] for i in have]).astype(np.float64))
        ref = self.ref[1]
        o = self.options
        rng = np.random.default_rng(o.seed)
        truth = self._factor(have, ref)
        if o.interval == "linear":
            return linear_fid(feats, ref, rng, n_resamples=o.n_resamples, level=o.level,
                              truth=truth)
        return paired_fid(feats, ref, rng, n_resamples=o.n_resamples, level=o.level,
                          reference_factor=truth.root if truth else None)

    def _factor(self, have: list[str], ref: np.ndarray) -> TruthFactor | None:
        """The truth's :class:`TruthFactor` for the photo set ``have``, kept for the next
        methods (None when there are no more photos than dimensions: the n x n route needs
        none)."""
        if len(have) <= ref.shape[1]:
            return None
        if self.factor is None or self.factor[0] != tuple(have):
            self.factor = (tuple(have), TruthFactor.of(ref))
        return self.factor[1]


def runs_fid(runs_dir: str | os.PathLike, methods: list[str], options: FIDOptions, *,
             gt_method: str = GT_METHOD, image_ids: list[str] | None = None,
             previous: pd.DataFrame | None = None) -> FIDTable:
    """FID of each method against ``gt_method`` over the photos both have.

    Args:
        runs_dir: ``runs/<split>``.
        methods: the methods (``gt_method`` among them scores 0, not computed).
        options: variant, weights, cache, bootstrap.
        gt_method: the ground-truth folder.
        image_ids: the photos (default: the folder's manifest, else the truth's PNGs).
        previous: rows of an earlier call (``FID_ROW_COLUMNS``): a method whose images,
            truth, weights and bootstrap settings are unchanged (same ``key``) is reused.

    Returns:
        A :class:`FIDTable` (``not_computed`` set when the weights file is missing).
    """
    table = FIDTable(options)
    table.not_computed = fid_missing_reason(options.variant, options.weights)
    if not table.not_computed and options.backend == "reference":
        table.not_computed = unavailable(options.variant)
    if table.not_computed:
        return table
    runs = RunsFolder(runs_dir)
    features = _Features(runs, options, gt_method)
    table.weights_sha256 = features.ext.weights_sha256
    truth = _stems(runs.root / gt_method)
    ids = [i for i in (image_ids or runs.image_ids()) if i in truth]
    settings = (f"{table.weights_sha256}|{options.variant}|{options.n_resamples}|"
                f"{options.seed}|{options.level}|{options.interval}|{options.backend}|"
                + folder_fingerprint(runs.root / gt_method))
    old = {} if previous is None else {r["method"]: r for r in previous.to_dict("records")}
    rows = []
    for method in methods:
        present = _stems(runs.root / method)
        have = [i for i in ids if i in present]
        row = {"method": method, "n": len(have), "fid": 0.0, "fid_low": 0.0, "fid_high": 0.0,
               "key": _key(runs, method, have, settings)}
        if method in old and old[method].get("key") == row["key"]:
            rows.append(old[method])
        elif len(have) < 2:
            table.failed[method] = f"{len(have)} images with a truth (FID needs 2)"
        elif method == gt_method:  # the truth against itself: 0 by definition, every draw
            rows.append(row)
        else:
            try:
                iv = features.fid(method, have)
            except (ImageLoadError, WeightsNotFound) as err:
                table.failed[method] = str(err)
                continue
            rows.append({**row, "fid": iv.estimate, "fid_low": iv.low, "fid_high": iv.high})
            table.computed += 1
    for method, why in table.failed.items():
        log.warning("%s of %s not computed: %s", options.column, method, why)
    table.rows = pd.DataFrame(rows, columns=FID_ROW_COLUMNS)
    return table
