"""Thumbnails of the report's image grid (paper Table 3): one file per method and image.

``<grid>/<method>/<image_id>.<THUMB_EXT>``, the longest side at most :data:`THUMB_SIDE` px
(192: sharp on a 2x screen at the ~96 px a cell takes on a phone and the ~80 px it takes in
13 columns at 1280 px). :func:`thumb_path` is where a thumbnail is, :func:`thumbnail_bytes`
its encoded bytes (the same bytes the file holds: reruns write identical files, PIL adds no
timestamps) and :func:`data_uri` those bytes for a page that inlines its images.

The format is JPEG at quality 90 with no chroma subsampling (4:4:4: a colorization's colours
are what the grid compares, and 4:2:0 would halve their resolution): about 9 KB a thumbnail,
4.5x smaller than PNG, which matters for a page that inlines them. Pages find the files
through :func:`thumb_path` (never by a fixed extension); :data:`THUMB_FORMAT` = ``"PNG"``
makes them lossless.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

THUMB_SIDE = 192  # longest side of a grid thumbnail, px
THUMB_FORMAT = "JPEG"  # PIL format: "JPEG" or "PNG"
_EXT = {"PNG": "png", "JPEG": "jpg"}
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg"}
_SAVE = {"PNG": {"optimize": False}, "JPEG": {"quality": 90, "subsampling": 0}}
THUMB_EXT = _EXT[THUMB_FORMAT]


def thumb_path(grid_dir: str | Path, method: str, image_id: str) -> Path:
    """Where the thumbnail of ``method``'s ``image_id`` is (or goes) under ``grid_dir``."""
    return Path(grid_dir) / method / f"{image_id}.{THUMB_EXT}"


def thumbnail(img: np.ndarray, side: int = THUMB_SIDE) -> Image.Image:
    """``img`` (uint8 RGB) shrunk so its longest side is at most ``side`` (never enlarged),
    with antialiasing (Lanczos)."""
    im = Image.fromarray(np.ascontiguousarray(img[..., :3]))
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    return im


def encode(im: Image.Image) -> bytes:
    """``im`` as a :data:`THUMB_FORMAT` file's bytes."""
    buf = io.BytesIO()
    im.save(buf, THUMB_FORMAT, **_SAVE[THUMB_FORMAT])
    return buf.getvalue()


def thumbnail_bytes(img: np.ndarray, side: int = THUMB_SIDE) -> bytes:
    """The encoded thumbnail (:data:`THUMB_FORMAT`) of ``img``: a thumbnail file's bytes."""
    return encode(thumbnail(img, side))


def write_thumbnail(img: np.ndarray, grid_dir: str | Path, method: str, image_id: str
                    ) -> np.ndarray:
    """Write ``img``'s thumbnail to :func:`thumb_path` (folders made).

    Returns:
        The thumbnail's pixels (uint8 RGB), before encoding.
    """
    im = thumbnail(img)
    path = thumb_path(grid_dir, method, image_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(im))
    return np.asarray(im)


def data_uri(path: str | Path) -> str:
    """``data:<mime>;base64,...`` of a thumbnail file, for a page that inlines images."""
    fmt = {v: k for k, v in _EXT.items()}[Path(path).suffix.lstrip(".").lower()]
    return f"data:{_MIME[fmt]};base64," + base64.b64encode(Path(path).read_bytes()).decode()
