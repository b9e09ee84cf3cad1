"""Sample sheet for a model card: grayscale input, S samples, ground truth, one row per image.

``python -m pixcolor.sample_sheet --checkpoint PATH --images a.jpg b.png ... --out samples.png``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from pixcolor import color
from pixcolor.colorizer import PixColor
from pixcolor.io import load_rgb, save_png


def _square(rgb: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(rgb[top:top + s, left:left + s])
    return np.asarray(crop.resize((side, side), Image.Resampling.BICUBIC))


def sample_sheet(model: PixColor, images: list[np.ndarray], num_samples: int = 3, seed: int = 1,
                 side: int = 160, gap: int = 4) -> np.ndarray:
    """(rows * (side + gap), (num_samples + 2) * (side + gap), 3) uint8 sheet."""
    grays = [color.merge_luma_chroma(color.rgb_luma(im), np.zeros(im.shape[:2] + (2,)))
             for im in images]
    outs = model.colorize([g[..., 0] for g in grays], num_samples=num_samples, seed=seed)
    cols = num_samples + 2
    sheet = np.full((len(images) * (side + gap), cols * (side + gap), 3), 255, np.uint8)
    for r, (im, g, samples) in enumerate(zip(images, grays, outs, strict=True)):
        tiles = [g, *samples, im]
        for c, t in enumerate(tiles):
            y0, x0 = r * (side + gap), c * (side + gap)
            sheet[y0:y0 + side, x0:x0 + side] = _square(t, side)
    return sheet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint")
    ap.add_argument("--images", nargs="+", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--side", type=int, default=160)
    args = ap.parse_args(argv)
    model = PixColor.load(args.checkpoint)
    sheet = sample_sheet(model, [load_rgb(p) for p in args.images], args.samples, args.seed,
                         args.side)
    save_png(Path(args.out), sheet)
    print(f"wrote {args.out}: columns = grayscale input, {args.samples} samples, ground truth")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
