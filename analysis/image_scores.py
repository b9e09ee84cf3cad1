"""Per-image metric values of chosen (photo, method, metrics): the work of a metrics pass.

:func:`score_images` takes a plan, one :class:`Todo` per photo (the methods to score and,
for each, the metrics still missing), and computes them photo by photo: the truth is decoded
once, its Lab a/b and every metric's prepared state (SSIM moments, LPIPS features,
colourfulness) computed once and shared by all the photo's methods; each output is decoded
once and its a/b computed once for all of its metrics. The report also asks for outputs'
:class:`ImageStats` (size, mean a/b, a/b histogram counts, from the same a/b) and the
MS-SSIM of pairs of samples (:class:`PairScore`, reusing the SSIM metric's finest-scale
moments where it ran on the same photo). Work is split over photos, in
``workers`` forked processes (:func:`analysis.runs.map_chunks`); results do not depend on
the number of workers.

The numbers are those of the registry's functions (:mod:`analysis.metrics`), as
:func:`analysis.evaluate.evaluate_runs` computes them. While a chunk runs, freed large
buffers stay in the process's heap (:func:`retained_memory`): the metrics allocate and
free arrays of an image's size many times per image, and returning them to the system each
time made page faults about a fifth of the pass's CPU time.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.lab_stats import ab_counts, image_ab
from analysis.metrics import Metric, get_metric
from analysis.runs import CachedImages, RunsFolder, Skip, map_chunks
from analysis.ssim import (
    MIN_SIDE,
    MS_SSIM_WEIGHTS,
    MinSize,
    ms_ssim,
    ms_ssim_prepared,
    prepare_ms_ssim,
)
from pixcolor.io import ImageLoadError

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_DEFAULT_THRESHOLD = 128 * 1024  # glibc's initial values of both
_KEEP_BELOW = 32 << 20  # buffers up to this size come from the heap (glibc's maximum)
_TRIM_ABOVE = 512 << 20  # free heap kept before memory is given back


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "mallopt") else None
    except OSError:
        return None


_LIBC = _libc()


@contextlib.contextmanager
def retained_memory() -> Iterator[None]:
    """Keep freed buffers under 32 MiB in the heap while the block runs (glibc only;
    elsewhere nothing changes); afterwards glibc's initial thresholds are set again and
    the free heap is returned to the system."""
    if _LIBC is None:
        yield
        return
    _LIBC.mallopt(_M_MMAP_THRESHOLD, _KEEP_BELOW)
    _LIBC.mallopt(_M_TRIM_THRESHOLD, _TRIM_ABOVE)
    try:
        yield
    finally:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_THRESHOLD)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_THRESHOLD)
        if hasattr(_LIBC, "malloc_trim"):
            _LIBC.malloc_trim(0)


def mean_ab(ab: np.ndarray) -> tuple[float, float]:
    """The mean a and b of (..., 2) a/b values, accumulated in float64 (each channel on
    its own: a reduction over the pixel axis of an (N, 2) array is several times slower)."""
    v = ab.reshape(-1, 2)
    return float(v[:, 0].mean(dtype=np.float64)), float(v[:, 1].mean(dtype=np.float64))


class Truth:
    """The ground truth of one photo: its pixels, Lab a/b and each metric's prepared state
    (computed on first use, once per photo)."""

    def __init__(self, img: np.ndarray, ab: np.ndarray | None):
        self.img, self.ab = img, ab
        self._prepared: dict[str, object] = {}

    def prepared(self, spec: Metric) -> object:
        """``spec.prepare`` of the ground truth."""
        if spec.name not in self._prepared:
            self._prepared[spec.name] = spec.prepare(self.img)
        return self._prepared[spec.name]


def metric_value(spec: Metric, img: np.ndarray, ab: np.ndarray | None,
                 truth: Truth | None) -> tuple[float, object]:
    """One metric of one output: (value, the output's prepared state, or None where the
    metric prepares nothing)."""
    if not spec.needs_reference:
        return spec.fn(ab if spec.input == "ab" else img), None
    if spec.input == "ab":
        return spec.fn(ab, truth.ab), None
    if spec.prepare is None:
        return spec.fn(img, truth.img), None
    ref = truth.prepared(spec)
    own = ref if img is truth.img else spec.prepare(img)
    return spec.fn_prepared(own, ref), own


@dataclass(frozen=True)
class Todo:
    """One photo's work: ``(method, metric names)`` pairs; ``stats``: methods (each also in
    ``methods``) whose :class:`ImageStats` to compute; ``pairs``: (sample, sample) whose
    MS-SSIM to compute (the sample diversity, :mod:`analysis.diversity`)."""

    image_id: str
    methods: tuple[tuple[str, tuple[str, ...]], ...]
    stats: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()


@dataclass
class Scored:
    """The values of one (method, photo): metric -> value (NaN where it could not be
    computed) and metric -> why not (a metric-level skip)."""

    method: str
    image_id: str
    values: dict[str, float]
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass
class ImageStats:
    """What the report needs of one output beyond its metrics: its size, its mean Lab a and
    b (:func:`mean_ab`) and its a/b histogram counts
    (:func:`analysis.lab_stats.ab_counts`: int64 (2, n_bins); None without bin edges)."""

    method: str
    image_id: str
    height: int
    width: int
    mean_a: float
    mean_b: float
    counts: np.ndarray | None


@dataclass
class PairScore:
    """The MS-SSIM of two samples of one photo (as :func:`analysis.diversity.image_pairs`
    computes it); ``small``: their shorter side is under 161 px (the value then depends on
    the ``min_size`` fallback)."""

    image_id: str
    method_a: str
    method_b: str
    ms_ssim: float
    small: bool


@dataclass
class Scores:
    """What :func:`score_images` found: the rows that loaded, the outputs that did not
    (``skips``, whole images), the photos whose truth did not load (image id -> why;
    their reference metrics are NaN), the image statistics and the sample pairs asked."""

    rows: list[Scored] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    truth_failed: dict[str, str] = field(default_factory=dict)
    stats: list[ImageStats] = field(default_factory=list)
    pairs: list[PairScore] = field(default_factory=list)

    def merge(self, other: Scores) -> Scores:
        """Append ``other`` (a later chunk); returns self."""
        self.rows += other.rows
        self.skips += other.skips
        self.truth_failed.update(other.truth_failed)
        self.stats += other.stats
        self.pairs += other.pairs
        return self


@dataclass(frozen=True)
class _Job:
    """What every chunk of one :func:`score_images` call needs (sent to the workers)."""

    root: str
    gt_method: str
    edges: np.ndarray | None
    min_size: MinSize


TRUTH_WORDS = "the truth's"  # how a cached shape reason names the truth (any folder)


def shape_reason(shape: tuple, truth_shape: tuple, truth: str = TRUTH_WORDS) -> str:
    """Why a reference metric of an output was not computed: its size differs."""
    return f"shape {shape} differs from {truth} {truth_shape}"


def naming_truth(reason: str, truth: str) -> str:
    """A :func:`shape_reason` of the cache with the truth's folder named (the wording of
    :func:`analysis.evaluate.evaluate_runs`); any other reason as it is."""
    if reason.startswith("shape ") and f" differs from {TRUTH_WORDS} (" in reason:
        return reason.replace(f" differs from {TRUTH_WORDS} ", f" differs from {truth} ", 1)
    return reason


def _truth(images: CachedImages, gt_method: str, specs: dict[str, Metric],
           found: Scores) -> Truth | None:
    """The photo's truth when a metric needs it (None, and noted in ``found``, when it does
    not load)."""
    if not any(s.needs_reference for s in specs.values()):
        return None
    try:
        gt = images.get(gt_method)
    except ImageLoadError as err:
        found.truth_failed[images.image_id] = str(err)
        return None
    ab_ref = any(s.input == "ab" and s.needs_reference for s in specs.values())
    return Truth(gt, image_ab(gt) if ab_ref else None)


def _score_output(row: Scored, metrics: Sequence[str], specs: dict[str, Metric],
                  img: np.ndarray, ab: np.ndarray | None, truth: Truth | None) -> object:
    """``metrics`` of one output into ``row``; returns its finest-scale SSIM moments when a
    metric with ``ms_ssim_first_scale`` computed them (else None)."""
    first = None
    for k in metrics:
        spec, row.values[k] = specs[k], float("nan")
        if spec.needs_reference and (truth is None or img.shape != truth.img.shape):
            if truth is not None:
                row.reasons[k] = shape_reason(img.shape, truth.img.shape)
            continue
        try:
            value, own = metric_value(spec, img, ab, truth)
        except ValueError as err:
            row.reasons[k] = str(err)
            continue
        row.values[k] = float(value)
        if own is not None and spec.ms_ssim_first_scale:
            first = own
    return first


def _score_pairs(images: CachedImages, todo: Todo, first: dict[str, object],
                 min_size: MinSize, found: Scores) -> None:
    """The MS-SSIM of ``todo.pairs`` (those whose images load and agree in size), each as
    :func:`analysis.diversity.image_pairs` computes it."""
    imgs = {}
    for m in dict.fromkeys(m for pair in todo.pairs for m in pair):
        with contextlib.suppress(ImageLoadError):  # reported by the photo's own rows
            imgs[m] = images.get(m)
    prepared: dict[str, list] = {}
    for a, b in todo.pairs:
        if a not in imgs or b not in imgs or imgs[a].shape != imgs[b].shape:
            continue
        small = min(imgs[a].shape[:2]) < MIN_SIDE
        if small:
            value = ms_ssim(imgs[a], imgs[b], min_size=min_size)
        else:
            for m in (a, b):
                if m not in prepared:
                    prepared[m] = prepare_ms_ssim(imgs[m], first=first.get(m))
            value = ms_ssim_prepared(prepared[a], prepared[b], MS_SSIM_WEIGHTS)
        found.pairs.append(PairScore(todo.image_id, a, b, value, small))


def _score_photo(runs: RunsFolder, job: _Job, todo: Todo, found: Scores) -> None:
    images = CachedImages(runs, todo.image_id)
    names = dict.fromkeys(k for _, ks in todo.methods for k in ks)
    specs = {k: get_metric(k) for k in names}
    truth = _truth(images, job.gt_method, specs, found)
    paired = {m for pair in todo.pairs for m in pair}
    first: dict[str, object] = {}
    for method, metrics in todo.methods:
        try:
            img = images.get(method)
        except ImageLoadError as err:
            found.skips.append(Skip(method, todo.image_id, str(err)))
            continue
        ab = None
        if method in todo.stats or any(specs[k].input == "ab" for k in metrics):
            is_gt = truth is not None and img is truth.img and truth.ab is not None
            ab = truth.ab if is_gt else image_ab(img)
        if method in todo.stats:
            found.stats.append(ImageStats(
                method, todo.image_id, img.shape[0], img.shape[1], *mean_ab(ab),
                None if job.edges is None else ab_counts(ab, job.edges)))
        row = Scored(method, todo.image_id, {})
        own = _score_output(row, metrics, specs, img, ab, truth)
        if own is not None and method in paired:
            first[method] = own
        found.rows.append(row)
    if todo.pairs:
        _score_pairs(images, todo, first, job.min_size, found)


def _score_chunk(job: _Job, todos: list[Todo]) -> Scores:
    """Score the photos ``todos`` (one chunk of :func:`analysis.runs.map_chunks`)."""
    runs = RunsFolder(job.root)
    found = Scores()
    with retained_memory():
        for todo in todos:
            _score_photo(runs, job, todo, found)
    return found


def score_images(runs_dir: str | Path, todos: Sequence[Todo], *, gt_method: str,
                 workers: int = 1, progress: bool = False, edges: np.ndarray | None = None,
                 min_size: MinSize = "raise") -> Scores:
    """The metric values of a plan (module docstring).

    Args:
        runs_dir: ``runs/<split>``.
        todos: one :class:`Todo` per photo (registered metric names that can run here).
        gt_method: the truth folder.
        workers: processes (forked) over chunks of photos; 1 runs here.
        progress: a tqdm bar over photos.
        edges: a/b histogram bin edges of the :class:`ImageStats` (None: no counts).
        min_size: the MS-SSIM fallback of pairs under 161 px
            (:func:`analysis.ssim.ms_ssim`; ``"raise"`` raises ``ValueError``).

    Returns:
        :class:`Scores`: rows in plan order (photo by photo, methods in the todo's order).
    """
    found = Scores()
    if not todos:
        return found
    job = _Job(str(runs_dir), gt_method, edges, min_size)
    for part in map_chunks(_score_chunk, list(todos), job, workers=workers,
                           progress=progress, desc="metrics"):
        found.merge(part)
    return found
