"""The colorness index of an image folder: what the training data filters on.

The filter pass (:func:`build_index`) reads every file once, on a thumbnail, and writes a CSV
index holding, for *every* file, its relative path, size, colorness, byte size, mtime and the
load error if any. The dataset (:class:`pixcolor.data.ImageFolderDataset`) reuses a valid
index instead of rescanning the folder. The colorness of every file is kept, so changing the
threshold only re-filters; a different root, pixel limit or index format version triggers a
rebuild, and ``rebuild=True`` rereads only files whose size or mtime changed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pixcolor.color import COLORNESS_THRESHOLD, colorness
from pixcolor.io import DEFAULT_MAX_PIXELS, ImageLoadError, atomic_open, iter_images, load_thumbnail

log = logging.getLogger(__name__)

INDEX_VERSION = 1
INDEX_MAGIC = "# pixcolor-index "
INDEX_FIELDS = ("path", "height", "width", "colorness", "bytes", "mtime_ns", "error")
THUMB_SIDE = 256  # colorness is measured on a copy with the longer side at most this


@dataclass
class ImageIndex:
    """Column-wise contents of an index file (one row per image file found).

    Attributes:
        root: absolute folder the relative paths start from.
        header: format version, root, pixel limit, thumbnail side, threshold at build time.
        paths: relative POSIX paths.
        height, width: (N,) int64 full image size (0 when unreadable).
        colorness: (N,) float64, NaN when unreadable.
        bytes, mtime_ns: (N,) int64 file size and modification time when scanned.
        errors: load error text, ``""`` for readable files.
    """

    root: Path
    header: dict
    paths: list[str]
    height: np.ndarray
    width: np.ndarray
    colorness: np.ndarray
    bytes: np.ndarray
    mtime_ns: np.ndarray
    errors: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def readable(self) -> np.ndarray:
        """(N,) bool, True where the file loaded."""
        return np.array([e == "" for e in self.errors], dtype=bool)

    def keep(self, threshold: float) -> np.ndarray:
        """(N,) bool, True for readable files with colorness >= ``threshold``."""
        with np.errstate(invalid="ignore"):
            return self.readable() & (self.colorness >= threshold)


def default_index_path(root: str | os.PathLike) -> Path:
    """Where the index of ``root`` is cached when none is given.

    ``$PIXCOLOR_CACHE`` (default ``$XDG_CACHE_HOME/pixcolor`` or ``~/.cache/pixcolor``)
    ``/index-<sha1 of the absolute root>.csv``: data folders are often read-only.
    """
    base = os.environ.get("PIXCOLOR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pixcolor")
    digest = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return Path(base) / f"index-{digest}.csv"


def _scan_one(args: tuple[str, str, int | None]) -> tuple[int, int, float, str]:
    """(root, rel, max_pixels) -> (height, width, colorness, error). Runs in worker processes."""
    root, rel, max_pixels = args
    try:
        thumb, (h, w) = load_thumbnail(os.path.join(root, rel), THUMB_SIDE, max_pixels)
    except ImageLoadError as exc:
        return 0, 0, math.nan, exc.reason
    return h, w, colorness(thumb), ""


def load_index(index_path: str | os.PathLike) -> ImageIndex:
    """Read an index file written by :func:`build_index`.

    Raises:
        ValueError: not an index file, or a malformed one (the message names the file).
    """
    index_path = Path(index_path)
    with open(index_path, newline="", encoding="utf-8") as f:
        first = f.readline()
        if not first.startswith(INDEX_MAGIC):
            raise ValueError(f"{index_path} is not a pixcolor index (bad first line); delete it")
        try:
            header = json.loads(first[len(INDEX_MAGIC):])
            df = pd.read_csv(f, dtype={"path": str, "error": str}, keep_default_na=False,
                             na_values={"colorness": [""]})
            if tuple(df.columns) != INDEX_FIELDS:
                raise ValueError(f"columns {tuple(df.columns)} != {INDEX_FIELDS}")
            return ImageIndex(
                root=Path(header["root"]), header=header, paths=df["path"].tolist(),
                height=df["height"].to_numpy(np.int64), width=df["width"].to_numpy(np.int64),
                colorness=df["colorness"].to_numpy(np.float64),
                bytes=df["bytes"].to_numpy(np.int64), mtime_ns=df["mtime_ns"].to_numpy(np.int64),
                errors=df["error"].tolist())
        except (KeyError, ValueError, TypeError, pd.errors.ParserError) as exc:
            raise ValueError(f"malformed pixcolor index {index_path} ({exc}); delete it") from exc


def _write_index(index: ImageIndex, index_path: Path) -> None:
    with atomic_open(index_path, "w", newline="", encoding="utf-8") as f:
        f.write(INDEX_MAGIC + json.dumps(index.header, sort_keys=True) + "\n")
        w = csv.writer(f)
        w.writerow(INDEX_FIELDS)
        for i, rel in enumerate(index.paths):
            c = index.colorness[i]
            w.writerow([rel, index.height[i], index.width[i], "" if math.isnan(c) else f"{c:.6f}",
                        index.bytes[i], index.mtime_ns[i], index.errors[i]])


def _header(root: Path, max_pixels: int | None, threshold: float) -> dict:
    return {"version": INDEX_VERSION, "root": str(root), "max_pixels": max_pixels,
            "thumb_side": THUMB_SIDE, "colorness_threshold": threshold}


def _compatible(header: dict, want: dict) -> str | None:
    """Why an existing index cannot be reused, or None when it can."""
    for key in ("version", "root", "max_pixels", "thumb_side"):
        if header.get(key) != want[key]:
            return f"{key} differs ({header.get(key)!r} != {want[key]!r})"
    return None


def build_index(root: str | os.PathLike, index_path: str | os.PathLike | None = None,
                colorness_threshold: float = COLORNESS_THRESHOLD, *, workers: int | None = None,
                max_pixels: int | None = DEFAULT_MAX_PIXELS, reuse: bool = True) -> ImageIndex:
    """Scan an image folder once: size, colorness and load errors of every image file.

    Args:
        root: image folder (ImageNet train layout ``root/<wnid>/*.JPEG`` or flat).
        index_path: CSV to write; default :func:`default_index_path`.
        colorness_threshold: recorded in the header and used for the logged counts (the
            colorness of every file is stored, so any threshold can be applied later).
        workers: processes decoding in parallel; ``None`` = min(8, CPUs); 0 or 1 = serial.
        max_pixels: pixel limit passed to the loader; over-limit files count as unreadable.
        reuse: keep rows of an existing compatible index whose file size and mtime match.

    Returns:
        The index (also written atomically to ``index_path``).
    """
    root = Path(root).resolve()
    index_path = Path(index_path) if index_path is not None else default_index_path(root)
    header = _header(root, max_pixels, colorness_threshold)
    old = _reusable_rows(index_path, header) if reuse else {}
    paths, stats, todo, rows = [], [], [], {}
    for p in iter_images(root):
        rel = p.relative_to(root).as_posix()
        st = p.stat()
        paths.append(rel)
        stats.append((st.st_size, st.st_mtime_ns))
        prev_row = old.get(rel)
        if prev_row is not None and prev_row[:2] == (st.st_size, st.st_mtime_ns):
            rows[rel] = prev_row[2:]
        else:
            todo.append(rel)
    log.info("indexing %s: %d image files, %d to read, %d reused", root, len(paths), len(todo),
             len(paths) - len(todo))
    rows.update(_scan(root, todo, max_pixels, workers))
    index = ImageIndex(
        root=root, header=header, paths=paths,
        height=np.array([rows[p][0] for p in paths], dtype=np.int64),
        width=np.array([rows[p][1] for p in paths], dtype=np.int64),
        colorness=np.array([rows[p][2] for p in paths], dtype=np.float64),
        bytes=np.array([s[0] for s in stats], dtype=np.int64),
        mtime_ns=np.array([s[1] for s in stats], dtype=np.int64),
        errors=[rows[p][3] for p in paths])
    _write_index(index, index_path)
    keep = index.keep(colorness_threshold)
    log.info("wrote %s: %d files, %d unreadable, %d below colorness %.3f, %d kept", index_path,
             len(index), int((~index.readable()).sum()), int(index.readable().sum() - keep.sum()),
             colorness_threshold, int(keep.sum()))
    return index


def _reusable_rows(index_path: Path, header: dict) -> dict[str, tuple]:
    """Rows of an existing index compatible with ``header``: ``{relative path: (bytes,
    mtime_ns, height, width, colorness, error)}``; empty when there is none."""
    if not index_path.exists():
        return {}
    try:
        prev = load_index(index_path)
    except ValueError as exc:
        log.warning("ignoring unusable index: %s", exc)
        return {}
    if _compatible(prev.header, header) is not None:
        return {}
    return {p: (prev.bytes[i], prev.mtime_ns[i], prev.height[i], prev.width[i],
                prev.colorness[i], prev.errors[i]) for i, p in enumerate(prev.paths)}


def _scan(root: Path, todo: list[str], max_pixels: int | None, workers: int | None
          ) -> dict[str, tuple]:
    """``{relative path: (height, width, colorness, error)}`` of the files ``todo``, decoded
    by ``workers`` processes (``None`` = min(8, CPUs); 0 or 1 = serial)."""
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    jobs = [(str(root), rel, max_pixels) for rel in todo]
    rows = {}
    pool = multiprocessing.get_context().Pool(workers) if workers > 1 and len(jobs) > 1 else None
    try:
        results = pool.imap(_scan_one, jobs, chunksize=32) if pool else map(_scan_one, jobs)
        for done, (rel, result) in enumerate(zip(todo, results, strict=True), 1):
            rows[rel] = result
            if done % 10_000 == 0:
                log.info("indexed %d / %d files", done, len(todo))
    finally:
        if pool is not None:
            pool.terminate()
    return rows


def open_index(root: str | os.PathLike, index_path: str | os.PathLike | None = None,
               colorness_threshold: float = COLORNESS_THRESHOLD, *, workers: int | None = None,
               max_pixels: int | None = DEFAULT_MAX_PIXELS, rebuild: bool = False) -> ImageIndex:
    """Reuse the cached index of ``root`` when present and compatible, else build it."""
    root = Path(root).resolve()
    index_path = Path(index_path) if index_path is not None else default_index_path(root)
    if not rebuild and index_path.exists():
        try:
            index = load_index(index_path)
            why = _compatible(index.header, _header(root, max_pixels, colorness_threshold))
            if why is None:
                log.info("using cached index %s (%d files)", index_path, len(index))
                return index
            log.info("rebuilding index %s: %s", index_path, why)
        except ValueError as exc:
            log.warning("rebuilding index: %s", exc)
    return build_index(root, index_path, colorness_threshold, workers=workers,
                       max_pixels=max_pixels)
