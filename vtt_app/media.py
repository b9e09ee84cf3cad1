"""The image bytes raters receive: one normalised copy per distinct picture.

Nothing about a served image may tell a rater which of a trial's two images is the real
photo: not its URL, headers, caching behaviour, size or timing, nor metadata in the file.
The benchmark's files differ in all of these (a ground-truth PNG was written earlier, by
another encoder, with other chunks, and compresses differently from a colourisation), so
``create-study`` re-encodes every image it will serve into the study's media folder:

* decoded to 8-bit RGB and written as a PNG holding only IHDR, IDAT and IEND, with zlib
  level 0 (stored blocks): the byte size then depends on the width and height alone, so the
  two images of a trial (same photo, same size) have the same ``Content-Length`` and take
  the same time to read and send;
* named by the SHA-256 of those bytes (identical pictures share one file), which the server
  checks again before sending.

The served copies take about 3 bytes per pixel (200 KB for a 256 x 256 image). The
benchmark's own files are still hashed at ``create-study`` and recorded for provenance.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from pixcolor.io import atomic_open

SERVED_DIR = "served"


class MediaError(ValueError):
    """A file to serve cannot be read; the message names it."""


def normalised_png(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes with no metadata and a size set by H and W alone."""
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(
        buf, format="PNG", compress_level=0, optimize=False)
    return buf.getvalue()


def store(rgb: np.ndarray, media_dir: Path) -> tuple[Path, str]:
    """Write the normalised copy of ``rgb`` under ``media_dir/served``; (path, sha256)."""
    data = normalised_png(rgb)
    sha = hashlib.sha256(data).hexdigest()
    out = media_dir / SERVED_DIR / f"{sha}.png"
    if not out.is_file():
        with atomic_open(out) as f:
            f.write(data)
    return out.resolve(), sha


def read_served(path: str | os.PathLike) -> bytes:
    """The bytes of a served copy, checked against the SHA-256 in its name.

    Raises:
        MediaError: missing, or changed since ``create-study``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MediaError(f"served image {path.name} is missing ({exc.strerror})") from exc
    if hashlib.sha256(data).hexdigest() != path.stem:
        raise MediaError(f"served image {path.name} changed after create-study")
    return data
