"""Training data: a recursive image-folder dataset with a cached colorness index.

Follows the paper's data setup (Sec. 4 and Table 2): ImageNet training photos, 224 x 224
inputs, 28 x 28 low-resolution chroma for the PixelCNN (Sec. 3.1) and the ground-truth
low-resolution chroma that trains the refinement network (Sec. 3.2), and the
"colorness threshold 0.05" that drops near-grayscale images (:func:`pixcolor.color.colorness`).

The filter pass (:func:`build_index`) reads every file once, on a thumbnail, and writes a CSV
index holding, for *every* file, its relative path, size, colorness, byte size, mtime and the
load error if any. The dataset reuses a valid index instead of rescanning the folder. The
colorness of every file is kept, so changing the threshold only re-filters; a different root,
pixel limit or index format version triggers a rebuild, and ``rebuild=True`` rereads only
files whose size or mtime changed.

Augmentation (the paper does not state one; our choice): training items are a random-resized
crop with area scale in (0.35, 1) and aspect ratio in (3/4, 4/3), resized to ``size``, then a
horizontal flip with probability 1/2. torchvision's classification default (0.08, 1) yields
tiny object parts; colorization needs scene context (sky, grass, skin next to clothes), so a
milder range is used. Evaluation items are the centre square resized to ``size`` (the same as
resize-shorter-side-then-centre-crop). Randomness comes from a generator seeded by
``(seed, epoch, index)`` only; call :meth:`ImageFolderDataset.set_epoch` every epoch.
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
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from pixcolor.color import (
    COLORNESS_THRESHOLD,
    LOWRES_SHORT_SIDE,
    colorness,
    lowres_chroma,
    quantize_chroma,
    rgb_to_ycbcr,
)
from pixcolor.io import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    atomic_open,
    iter_images,
    load_rgb,
    load_thumbnail,
)

log = logging.getLogger(__name__)

INDEX_VERSION = 1
INDEX_MAGIC = "# pixcolor-index "
INDEX_FIELDS = ("path", "height", "width", "colorness", "bytes", "mtime_ns", "error")
THUMB_SIDE = 256  # colorness is measured on a copy with the longer side at most this
TRAIN_SCALE = (0.35, 1.0)
TRAIN_RATIO = (3 / 4, 4 / 3)
MAX_FALLBACKS = 64  # unreadable files skipped in a row before __getitem__ gives up

collate = default_collate  # items are dicts of tensors, ints and strings: the default works


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
    old: dict[str, tuple] = {}
    if reuse and index_path.exists():
        try:
            prev = load_index(index_path)
            if _compatible(prev.header, header) is None:
                old = {p: (prev.bytes[i], prev.mtime_ns[i], prev.height[i], prev.width[i],
                           prev.colorness[i], prev.errors[i]) for i, p in enumerate(prev.paths)}
        except ValueError as exc:
            log.warning("ignoring unusable index: %s", exc)
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
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    log.info("indexing %s: %d image files, %d to read, %d reused", root, len(paths), len(todo),
             len(paths) - len(todo))
    jobs = [(str(root), rel, max_pixels) for rel in todo]
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


def random_resized_crop_box(height: int, width: int, rng: np.random.Generator,
                            scale: tuple[float, float] = TRAIN_SCALE,
                            ratio: tuple[float, float] = TRAIN_RATIO) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop sampling, with an explicit generator.

    Returns:
        ``(left, top, right, bottom)`` pixel box inside the image.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    in_ratio = width / height  # fallback: the central crop with the aspect ratio clamped
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    h, w = max(1, min(h, height)), max(1, min(w, width))
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


def center_crop_box(height: int, width: int) -> tuple[int, int, int, int]:
    """The centred square ``(left, top, right, bottom)`` with side min(height, width)."""
    side = min(height, width)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def make_example(rgb: np.ndarray, lowres_short_side: int = LOWRES_SHORT_SIDE) -> dict:
    """Model tensors of one (S, S, 3) uint8 RGB crop.

    Returns:
        ``y`` (1, S, S) float32 in [0, 1]; ``cbcr`` (2, S, S) float32 centred chroma in
        [-0.5, 0.5] (Cb, Cr); ``lowres`` (2, h, w) float32, the antialiased low-resolution
        chroma with (h, w) = ``color.lowres_size(S, S, lowres_short_side)`` (28 x 28 for the
        paper); ``bins`` (2, h, w) int64 in [0, 32), its quantisation.
    """
    ycc = torch.from_numpy(rgb_to_ycbcr(rgb).astype(np.float32)).permute(2, 0, 1).contiguous()
    lowres = lowres_chroma(ycc[1:], lowres_short_side)
    return {"y": ycc[:1].clone(), "cbcr": ycc[1:].clone(), "lowres": lowres,
            "bins": quantize_chroma(lowres)}


class ImageFolderDataset(Dataset):
    """Colourful photos under a folder, as model-ready tensors (see the module docstring).

    Attributes:
        classes: sorted first-level folder names (ImageNet wnids); labels index into it.
        num_files, num_kept, num_below_threshold, num_unreadable: filter-pass counts.
        unreadable: relative paths of the files that failed to load during indexing.
    """

    def __init__(self, root: str | os.PathLike, *, size: int = 224, train: bool = True,
                 colorness_threshold: float = COLORNESS_THRESHOLD,
                 index_path: str | os.PathLike | None = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, seed: int = 0,
                 scale: tuple[float, float] = TRAIN_SCALE, ratio: tuple[float, float] = TRAIN_RATIO,
                 lowres_short_side: int = LOWRES_SHORT_SIDE, workers: int | None = None,
                 rebuild_index: bool = False) -> None:
        """Index (or reuse the index of) ``root`` and keep the colourful, readable images.

        Args:
            root: image folder. ``root/<class>/...`` files get the class's label, files
                directly in ``root`` get -1.
            size: side S of the square items (224 in the paper).
            train: random-resized crop + flip when True; centre crop when False.
            colorness_threshold: drop images with colorness below this (paper: 0.05).
            index_path: cached index CSV (default :func:`default_index_path`).
            max_pixels: loader pixel limit.
            seed: base seed of the per-item generators.
            scale, ratio: random-resized-crop area and aspect ranges.
            lowres_short_side: shorter side of ``lowres``/``bins`` (28 in the paper).
            workers: processes for a (re)build of the index.
            rebuild_index: rescan the folder (rereading only changed files).

        Raises:
            ValueError: no usable image under ``root``.
        """
        self.root = Path(root).resolve()
        self.size, self.train, self.seed, self.epoch = int(size), train, int(seed), 0
        self.scale, self.ratio, self.max_pixels = scale, ratio, max_pixels
        self.lowres_short_side = lowres_short_side
        self.colorness_threshold = colorness_threshold
        index = open_index(self.root, index_path, colorness_threshold, workers=workers,
                           max_pixels=max_pixels, rebuild=rebuild_index)
        readable, keep = index.readable(), index.keep(colorness_threshold)
        firsts = [p.split("/", 1)[0] if "/" in p else None for p in index.paths]
        self.classes = sorted({f for f in firsts if f is not None})
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        labels = np.array([-1 if f is None else self.class_to_idx[f] for f in firsts], np.int64)
        kept = np.flatnonzero(keep)
        self._paths = np.array([index.paths[i].encode("utf-8") for i in kept], dtype=np.bytes_)
        self._labels = labels[kept]
        self.num_files = len(index)
        self.num_kept = len(kept)
        self.num_unreadable = int((~readable).sum())
        self.num_below_threshold = int(readable.sum()) - self.num_kept
        self.unreadable = [index.paths[i] for i in np.flatnonzero(~readable)]
        self._bad: set[int] = set()
        log.info("%s: %d image files, %d kept, %d below colorness %.3f, %d unreadable",
                 self.root, self.num_files, self.num_kept, self.num_below_threshold,
                 colorness_threshold, self.num_unreadable)
        if self.num_kept == 0:
            raise ValueError(
                f"no usable images under {str(self.root)!r}: {self.num_files} image files, "
                f"{self.num_below_threshold} below colorness {colorness_threshold}, "
                f"{self.num_unreadable} unreadable; check the folder or lower the threshold")

    def __len__(self) -> int:
        return self.num_kept

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops and flips items use (call before each epoch's loader;
        with ``persistent_workers=True`` workers keep the epoch they started with)."""
        self.epoch = int(epoch)

    def path(self, index: int) -> Path:
        """Absolute path of item ``index``."""
        return self.root / self._paths[index].decode("utf-8")

    def __getitem__(self, index: int) -> dict:
        """Item ``index`` (see :func:`make_example`) plus ``label`` int, ``path`` str and
        ``index`` int (the item actually returned).

        A file that no longer loads is logged once and replaced by the next item (index + 1,
        + 2, ... modulo the length), so training goes on and the result stays deterministic.
        """
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        index %= n
        rng = np.random.default_rng([self.seed, self.epoch, index])
        for attempt in range(min(n, MAX_FALLBACKS)):
            j = (index + attempt) % n
            try:
                rgb = load_rgb(self.path(j), self.max_pixels)
            except ImageLoadError as exc:
                if j not in self._bad:
                    self._bad.add(j)
                    log.warning("skipping item %d: %s", j, exc)
                continue
            item = make_example(self._transform(rgb, rng), self.lowres_short_side)
            item.update(label=int(self._labels[j]), path=str(self.path(j)), index=j)
            return item
        raise RuntimeError(f"{MAX_FALLBACKS} unreadable files in a row from item {index} in "
                           f"{self.root}; rebuild the index (rebuild_index=True)")

    def _transform(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(H, W, 3) uint8 -> (S, S, 3) uint8: crop the box, then antialiased bilinear resize
        (cropping first keeps pixels outside the box out of the filter support)."""
        h, w = rgb.shape[:2]
        if self.train:
            left, top, right, bottom = random_resized_crop_box(h, w, rng, self.scale, self.ratio)
        else:
            left, top, right, bottom = center_crop_box(h, w)
        crop = Image.fromarray(np.ascontiguousarray(rgb[top:bottom, left:right]))
        out = np.asarray(crop.resize((self.size, self.size), Image.Resampling.BILINEAR))
        if self.train and rng.random() < 0.5:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)
