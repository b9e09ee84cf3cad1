"""Small generated runs folders and VTT exports, for tests and timing (no real data).

:func:`make_runs` writes a folder in the benchmark layout (paper Sec. 4 protocol: ground
truth plus colorized versions of the same images) and :func:`make_responses` a
``responses.csv``-shaped table with known per-method VTT rates and rater/image effects.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

DEFAULT_METHODS = ("ltbc", "cic", "lrac", "pixcolor_s1", "pixcolor_s2", "pixcolor_s3",
                   "pixcolor_unrefined", "gt28_unrefined", "gt28_refined", "grayscale")
DEFAULT_RATES = {"ltbc": 0.26, "cic": 0.29, "lrac": 0.31, "pixcolor_s1": 0.33,
                 "pixcolor_s2": 0.35, "pixcolor_s3": 0.33, "pixcolor_unrefined": 0.20,
                 "gt28_unrefined": 0.30, "gt28_refined": 0.44}


def _smooth_field(rng: np.random.Generator, size: tuple[int, int], cells: int = 6) -> np.ndarray:
    """Smooth random (H, W, 3) float field in [0, 1]."""
    low = rng.random((cells, cells, 3))
    zoom = (size[0] / cells, size[1] / cells, 1)
    field = ndimage.zoom(low, zoom, order=1, mode="nearest")[: size[0], : size[1]]
    return field


def make_image(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A photo-like uint8 (H, W, 3) image: smooth colours plus fine texture."""
    base = _smooth_field(rng, size) * 200 + 20
    texture = rng.normal(0, 12, size)[..., None]
    return np.clip(base + texture, 0, 255).astype(np.uint8)


def recolor(gt: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Keep the luma structure of ``gt`` and shift its colours smoothly."""
    shift = (_smooth_field(rng, gt.shape[:2]) - 0.5) * 2 * strength
    shift -= shift.mean(axis=-1, keepdims=True)  # roughly luma-neutral
    return np.clip(gt.astype(np.float64) + shift, 0, 255).astype(np.uint8)


def make_runs(root: str | Path, n_images: int = 6, size: tuple[int, int] = (168, 176),
              methods: Sequence[str] = DEFAULT_METHODS, seed: int = 0,
              manifest: bool = True) -> list[str]:
    """Write ``root/<method>/<image_id>.png`` for ``gt`` and ``methods``.

    Args:
        root: output folder (created).
        n_images: images per method.
        size: (H, W) of every image.
        methods: method folders besides ``gt``; ``grayscale`` gets the gray version.
        seed: everything is determined by it.
        manifest: also write ``manifest.csv`` and a ``meta.json`` per method.

    Returns:
        The image ids.
    """
    from pixcolor.color import rgb_luma, to_uint8

    root = Path(root)
    rng = np.random.default_rng(seed)
    ids = [f"img{i:04d}" for i in range(n_images)]
    for m in ("gt", *methods):
        (root / m).mkdir(parents=True, exist_ok=True)
        if manifest:
            (root / m / "meta.json").write_text(json.dumps({"method": m, "synthetic": True}))
    for image_id in ids:
        gt = make_image(rng, size)
        Image.fromarray(gt).save(root / "gt" / f"{image_id}.png", compress_level=1)
        for k, m in enumerate(methods):
            if m == "grayscale":
                img = np.repeat(to_uint8(rgb_luma(gt))[..., None], 3, axis=-1)
            else:
                img = recolor(gt, rng, strength=20 + 8 * (k % 4))
            Image.fromarray(img).save(root / m / f"{image_id}.png", compress_level=1)
    if manifest:
        pd.DataFrame({"image_id": ids}).to_csv(root / "manifest.csv", index=False)
    return ids


def make_responses(image_ids: Sequence[str], rates: dict[str, float] | None = None,
                   raters_per_image: int = 5, n_raters: int = 40, seed: int = 0,
                   image_sd: float = 0.1, rater_sd: float = 0.05,
                   oracle_rate: float | None = 0.38) -> pd.DataFrame:
    """A synthetic ``responses.csv``: each image rated by ``raters_per_image`` raters.

    Each answer chooses the generated image with probability
    ``rate[method] + u_image + v_rater`` (uniform effects with the given standard
    deviations, clipped to [0, 1]). Adds practice and attention trials, invalid answers
    (about 2%), one flagged rater, and an oracle stage answered by other raters.

    Returns:
        DataFrame with every column of the VTT export.
    """
    rates = DEFAULT_RATES if rates is None else rates
    rng = np.random.default_rng(seed)
    half = np.sqrt(3.0)  # uniform on [-sqrt(3) sd, sqrt(3) sd] has standard deviation sd
    u = dict(zip(image_ids, rng.uniform(-half, half, len(image_ids)) * image_sd, strict=True))
    raters = [f"r{k:03d}" for k in range(n_raters)]
    v = dict(zip(raters, rng.uniform(-half, half, n_raters) * rater_sd, strict=True))
    rows = []

    def add(stage: str, rater: str, image_id: str, method: str, p: float, kind: str) -> None:
        valid = int(rng.random() > 0.02)
        rows.append({"study": "synthetic", "stage": stage, "rater_id": rater,
                     "image_id": image_id, "method": method,
                     "generated_first": int(rng.integers(0, 2)),
                     "chose_generated": int(rng.random() < np.clip(p, 0, 1)), "kind": kind,
                     "valid": valid, "invalid_reason": "" if valid else "tab_hidden",
                     "response_ms": int(rng.integers(400, 3000)),
                     "rater_flagged": int(rater == raters[-1])})

    for r in raters:
        add("main", r, image_ids[0], "grayscale", 0.5, "practice")
        add("main", r, image_ids[-1], "grayscale", 0.02, "attention")
    for method, rate in rates.items():
        for image_id in image_ids:
            for r in rng.choice(raters, raters_per_image, replace=False):
                add("main", r, image_id, method, rate + u[image_id] + v[r], "test")
    if oracle_rate is not None:
        others = [f"o{k:03d}" for k in range(max(5, n_raters // 4))]
        v.update(zip(others, rng.uniform(-half, half, len(others)) * rater_sd, strict=True))
        for image_id in image_ids:
            for r in rng.choice(others, raters_per_image, replace=False):
                add("oracle", r, image_id, f"pixcolor_s{rng.integers(1, 4)}",
                    oracle_rate + u[image_id] + v[r], "oracle")
    return pd.DataFrame(rows)
