"""Per-image metric values of chosen (photo, method, metrics): the work of a metrics pass.

:func:`score_images` takes a plan, one :class:`Todo` per photo (the methods to score and,
for each, the metrics still missing), and computes them photo by photo: the truth is decoded
once, its Lab a/b and every metric's prepared state (SSIM moments, LPIPS features,
colourfulness) computed once and shared by all the photo's methods; each output is decoded
once and its a/b computed once for all of its metrics. Work is split over photos, in
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

from analysis.lab_stats import image_ab
from analysis.metrics import Metric, get_metric
from analysis.runs import CachedImages, RunsFolder, Skip, map_chunks
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
    """One photo's work: ``(method, metric names)`` pairs."""

    image_id: str
    methods: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass
class Scored:
    """The values of one (method, photo): metric -> value (NaN where it could not be
    computed) and metric -> why not (a metric-level skip)."""

    method: str
    image_id: str
    values: dict[str, float]
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass
class Scores:
    """What :func:`score_images` found: the rows that loaded, the outputs that did not
    (``skips``, whole images) and the photos whose truth did not load (image id -> why;
    their reference metrics are NaN)."""

    rows: list[Scored] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    truth_failed: dict[str, str] = field(default_factory=dict)

    def merge(self, other: Scores) -> Scores:
        """Append ``other`` (a later chunk); returns self."""
        self.rows += other.rows
        self.skips += other.skips
        self.truth_failed.update(other.truth_failed)
        return self


def shape_reason(shape: tuple, truth_shape: tuple) -> str:
    """Why a reference metric of an output was not computed: its size differs."""
    return f"shape {shape} differs from the truth's {truth_shape}"


def _score_photo(runs: RunsFolder, gt_method: str, todo: Todo, found: Scores) -> None:
    images = CachedImages(runs, todo.image_id)
    names = dict.fromkeys(k for _, ks in todo.methods for k in ks)
    specs = {k: get_metric(k) for k in names}
    truth = None
    if any(s.needs_reference for s in specs.values()):
        try:
            gt = images.get(gt_method)
            ab_ref = any(s.input == "ab" and s.needs_reference for s in specs.values())
            truth = Truth(gt, image_ab(gt) if ab_ref else None)
        except ImageLoadError as err:
            found.truth_failed[todo.image_id] = str(err)
    for method, metrics in todo.methods:
        try:
            img = images.get(method)
        except ImageLoadError as err:
            found.skips.append(Skip(method, todo.image_id, str(err)))
            continue
        ab = None
        if any(specs[k].input == "ab" for k in metrics):
            is_gt = truth is not None and img is truth.img and truth.ab is not None
            ab = truth.ab if is_gt else image_ab(img)
        row = Scored(method, todo.image_id, {})
        for k in metrics:
            spec, row.values[k] = specs[k], float("nan")
            if spec.needs_reference and (truth is None or img.shape != truth.img.shape):
                if truth is not None:
                    row.reasons[k] = shape_reason(img.shape, truth.img.shape)
                continue
            try:
                row.values[k] = float(metric_value(spec, img, ab, truth)[0])
            except ValueError as err:
                row.reasons[k] = str(err)
        found.rows.append(row)


def _score_chunk(root: str, gt_method: str, todos: list[Todo]) -> Scores:
    """Score the photos ``todos`` (one chunk of :func:`analysis.runs.map_chunks`)."""
    runs = RunsFolder(root)
    found = Scores()
    with retained_memory():
        for todo in todos:
            _score_photo(runs, gt_method, todo, found)
    return found


def score_images(runs_dir: str | Path, todos: Sequence[Todo], *, gt_method: str,
                 workers: int = 1, progress: bool = False) -> Scores:
    """The metric values of a plan (module docstring).

    Args:
        runs_dir: ``runs/<split>``.
        todos: one :class:`Todo` per photo (registered metric names that can run here).
        gt_method: the truth folder.
        workers: processes (forked) over chunks of photos; 1 runs here.
        progress: a tqdm bar over photos.

    Returns:
        :class:`Scores`: rows in plan order (photo by photo, methods in the todo's order).
    """
    found = Scores()
    if not todos:
        return found
    for part in map_chunks(_score_chunk, list(todos), str(runs_dir), gt_method,
                           workers=workers, progress=progress, desc="metrics"):
        found.merge(part)
    return found
