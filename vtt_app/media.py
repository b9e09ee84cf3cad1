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

**Every delivery is unique bytes.** A served copy is never sent as it is: each trial draws a
secret dither seed (``Trial.dither_seed``, kept in the database) and each of its two images
is sent with every 8-bit sample moved by -1, 0 or +1 (:func:`dither`; clipped to 0..255, so
at most one level per channel: invisible). The real photo of two trials is then two
different byte strings, so "the image whose bytes I saw before is the real one" tells a
rater with several accounts nothing. The stored blocks keep the size unchanged, and the
seed reproduces exactly what was sent (``dither(read_served(path), seed, slot)``).
What dithering does not stop: raters who compare *pixels* across accounts (the real photo
of two deliveries differs by at most 2 levels, two colourisations of it by much more).
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from pixcolor.io import atomic_open

SERVED_DIR = "served"


class MediaError(ValueError):
    """A file to serve cannot be read; the message names it."""


_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png(width: int, height: int, raw: bytes) -> bytes:
    """An 8-bit RGB PNG of filtered scanlines ``raw`` (filter byte 0 before each row), in
    one IDAT of zlib stored blocks, between IHDR and IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 0))
            + _chunk(b"IEND", b""))


def normalised_png(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes with no metadata and a size set by H and W alone:
    IHDR, one IDAT of zlib stored blocks (level 0) of unfiltered rows, IEND."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
    h, w, _ = rgb.shape
    rows = np.zeros((h, 1 + 3 * w), dtype=np.uint8)  # filter type 0 (None) on every row
    rows[:, 1:] = rgb.reshape(h, 3 * w)
    return _png(w, h, rows.tobytes())


def _rows(data: bytes) -> tuple[int, int, np.ndarray]:
    """(width, height, filtered rows) of a PNG written by :func:`normalised_png`."""
    if data[:8] != _SIGNATURE or data[12:16] != b"IHDR":
        raise MediaError("not a served PNG")
    w, h = struct.unpack(">II", data[16:24])
    n = struct.unpack(">I", data[33:37])[0]
    if data[37:41] != b"IDAT":
        raise MediaError("not a served PNG (IDAT expected after IHDR)")
    rows = np.frombuffer(zlib.decompress(data[41:41 + n]), dtype=np.uint8)
    if rows.size != h * (1 + 3 * w):
        raise MediaError("not a served PNG (unexpected image data size)")
    return w, h, rows.reshape(h, 1 + 3 * w)


def dither(data: bytes, seed: int, slot: int) -> bytes:
    """The served copy ``data`` with every sample moved by -1, 0 or +1 (clipped to 0..255),
    drawn from ``(seed, slot)``: the bytes one delivery sends. Same length as ``data``.

    Raises:
        MediaError: ``data`` is not a PNG written by :func:`normalised_png`.
    """
    w, h, rows = _rows(data)
    pixels = rows[:, 1:].astype(np.int16)
    step = np.random.default_rng([seed, slot]).integers(-1, 2, size=pixels.shape, dtype=np.int8)
    out = rows.copy()
    out[:, 1:] = np.clip(pixels + step, 0, 255)
    return _png(w, h, out.tobytes())


def decode(data: bytes) -> np.ndarray:
    """The (H, W, 3) uint8 pixels of a served copy or of a dithered delivery."""
    w, h, rows = _rows(data)
    return rows[:, 1:].reshape(h, w, 3).copy()


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
