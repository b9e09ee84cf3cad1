"""Generated test data: smooth colourful photos, and fake ImageNet validation trees (tiny
JPEGs under the real names of the shipped ctest10k/cval1k lists, in the flat or the
``<wnid>/`` layout, with chosen entries missing, truncated or grayscale)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bench.split_lists import load_list


def fake_photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth colourful (h, w, 3) uint8 image (colorness well above 0.05)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + rng.uniform(0, 6)), np.cos(5 * yy + rng.uniform(0, 6)),
                     np.sin(4 * (xx + yy))], -1)
    return ((base * 0.5 + 0.5) * 255).astype(np.uint8)


def make_fake_val(root: str | Path, split: str, n: int, layout: str, seed: int = 0,
                  missing: tuple[int, ...] = (1, 4), corrupt: int | None = 2,
                  gray: int | None = 5) -> tuple[Path, list[str]]:
    """Write tiny JPEGs under the first ``n`` names of a shipped split list.

    Args:
        root: the fake validation folder.
        split: ``ctest10k`` or ``cval1k``.
        n: entries of the list to use.
        layout: ``"flat"`` (all files in ``root``) or ``"sorted"`` (``root/<wnid>/``).
        seed: seed of the image content.
        missing: positions not written; ``corrupt``: a truncated JPEG; ``gray``: an ``L``
            mode JPEG.

    Returns:
        (a list file with those ``n`` lines, written next to ``root``; the lines).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    entries, _ = load_list(split)
    lines = []
    for k, e in enumerate(entries[:n]):
        lines.append(f"/{e.relpath} {e.label}")
        if k in missing:
            continue
        path = root / (e.relpath if layout == "sorted" else Path(e.relpath).name)
        path.parent.mkdir(parents=True, exist_ok=True)
        h, w = (40, 56) if k % 2 else (60, 44)
        img = Image.fromarray(fake_photo(rng, h, w))
        if k == gray:
            img = img.convert("L")
        img.save(path, format="JPEG", quality=90)
        if k == corrupt:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    list_file = root.parent / f"{split}_{layout}.txt"
    list_file.write_text("\n".join(lines) + "\n")
    return list_file, lines
