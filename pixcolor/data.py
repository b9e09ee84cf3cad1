"""Training data: a recursive image-folder dataset over a cached colorness index
(:mod:`pixcolor.image_index`).

Follows the paper's data setup (Sec. 4 and Table 2): ImageNet training photos, 224 x 224
inputs, 28 x 28 low-resolution chroma for the PixelCNN (Sec. 3.1) and the ground-truth
low-resolution chroma that trains the refinement network (Sec. 3.2), and the
"colorness threshold 0.05" that drops near-grayscale images (:func:`pixcolor.color.colorness`).

Augmentation (the paper does not state one; our choice): training items are a random-resized
crop with area scale in (0.35, 1) and aspect ratio in (3/4, 4/3), resized to ``size``, then a
horizontal flip with probability 1/2. torchvision's classification default (0.08, 1) yields
tiny object parts; colorization needs scene context (sky, grass, skin next to clothes), so a
milder range is used. Evaluation items are the centre square resized to ``size`` (the same as
resize-shorter-side-then-centre-crop). Randomness comes from a generator seeded by
``(seed, epoch, index)`` only; call :meth:`ImageFolderDataset.set_epoch` every epoch.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from pixcolor.color import (
    COLORNESS_THRESHOLD,
    LOWRES_SHORT_SIDE,
    lowres_chroma,
    quantize_chroma,
    rgb_to_ycbcr,
)
from pixcolor.image_index import open_index
from pixcolor.io import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    load_rgb,
)

log = logging.getLogger(__name__)

TRAIN_SCALE = (0.35, 1.0)
TRAIN_RATIO = (3 / 4, 4 / 3)
MAX_FALLBACKS = 64  # unreadable files skipped in a row before __getitem__ gives up

collate = default_collate  # items are dicts of tensors, ints and strings: the default works


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
    """The photos of a folder above the colorness threshold, as model-ready tensors (see
    the module docstring).

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
        """Index (or reuse the index of) ``root`` and keep the readable images above the
        colorness threshold.

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
