"""Robust image loading and saving (the data side of paper Sec. 4: ImageNet photos in, PNGs out).

Everything that reads a photo goes through :func:`load_rgb`, which turns whatever PIL can
open into one layout, ``(H, W, 3) uint8`` RGB, upright (EXIF orientation applied):

* grayscale (``1``, ``L``, ``I;16*``, ``I``, ``F``) is replicated to three channels;
* palette images (``P``, with or without a transparent index) are expanded;
* CMYK, YCbCr, LAB and HSV go through PIL's own conversion to RGB;
* 16-bit data is *scaled* to 8 bit (``round(v / 257)``, so 65535 -> 255, never clipped).
  ``I`` mode (PIL's 32-bit integer mode, which older Pillow uses for 16-bit PNG and TIFF)
  is read as 16-bit data, values clipped to [0, 65535]. ``F`` (float) data is scaled from
  the smallest of the ranges [0, 1], [0, 255] or [0, 65535] that holds its maximum.
  16-bit RGB(A) PNGs are reduced to 8 bit by PIL's decoder (high byte);
* an alpha channel (``RGBA``, ``LA``, ``PA``, ``P`` with transparency) is composited on
  white: ``out = (rgb * a + 255 * (255 - a)) / 255``;
* multi-frame files (GIF, TIFF) give their first frame.

Files that cannot give such an array raise :class:`ImageLoadError`, a ``ValueError`` that
names the file, the reason and what to do: missing, empty, truncated, not an image,
undecodable, or larger than ``max_pixels`` (decompression bombs; the size is checked from
the header before any pixel is decoded, and PIL's own ``DecompressionBombError`` and
``DecompressionBombWarning`` are turned into the same error). Truncated files always
raise, as long as nobody sets ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` (this module never
does). Batch jobs catch the error, record the file and go on.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps

log = logging.getLogger(__name__)

#: Default pixel limit: 64 MP, above any ImageNet photo (the largest is about 12 MP) and
#: under PIL's own bomb limit (``Image.MAX_IMAGE_PIXELS``, about 89 MP).
DEFAULT_MAX_PIXELS = 64_000_000

#: File name extensions :func:`iter_images` lists (compared lower-case).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


class ImageLoadError(ValueError):
    """A file that :func:`load_rgb` cannot turn into an RGB array.

    Attributes:
        path: the file, as given.
        reason: short description of what is wrong (``"file is empty (0 bytes)"``).
        hint: what the user can do about it.
    """

    def __init__(self, path: str | os.PathLike, reason: str, hint: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.hint = hint or "check the file, or delete it / leave it out of the data folder"
        super().__init__(f"cannot load image {self.path!r}: {reason}; {self.hint}")

    def __reduce__(self):  # keep the three fields through pickling (worker processes)
        return (type(self), (self.path, self.reason, self.hint))


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 straight-alpha RGBA to (H, W, 3) uint8 RGB over white."""
    rgb = rgba[..., :3].astype(np.uint32)
    a = rgba[..., 3:4].astype(np.uint32)
    out = (rgb * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _gray_to_uint8(img: Image.Image) -> np.ndarray:
    """High-bit-depth grayscale (``I;16*``, ``I``, ``F``) scaled to (H, W) uint8."""
    if img.mode in _SIXTEEN_BIT_MODES:
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0
    elif img.mode == "I":
        arr = np.clip(np.asarray(img).astype(np.float64), 0, 65535)
        top = 65535.0
    else:  # "F"
        arr = np.nan_to_num(np.asarray(img).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(arr.max()) if arr.size else 0.0
        top = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
        arr = np.clip(arr, 0.0, top)
    return np.floor(arr * (255.0 / top) + 0.5).astype(np.uint8)


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert a loaded PIL image of any mode to (H, W, 3) uint8 RGB (see module docs)."""
    mode = img.mode
    if mode in ("P", "L", "RGB") and "transparency" in img.info:  # tRNS / GIF transparency
        mode = "PA"
    if mode == "RGB":
        arr = np.asarray(img)
    elif mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        arr = np.repeat(_gray_to_uint8(img)[..., None], 3, axis=-1)
    elif mode in _ALPHA_MODES:
        arr = _composite_on_white(np.asarray(img.convert("RGBA")))
    elif mode in ("L", "1"):
        arr = np.repeat(np.asarray(img.convert("L"))[..., None], 3, axis=-1)
    else:  # P, CMYK, YCbCr, LAB, HSV, ...
        arr = np.asarray(img.convert("RGB"))
    return np.array(arr, dtype=np.uint8, copy=True, order="C")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageLoadError(path, "file not found", "check the path")
    if not path.is_file():
        raise ImageLoadError(path, "not a regular file", "pass an image file, not a folder")
    if path.stat().st_size == 0:
        raise ImageLoadError(path, "file is empty (0 bytes)", "re-download or delete the file")


def _open_checked(path: Path, max_pixels: int | None, draft: int | None) -> tuple[
        np.ndarray, tuple[int, int]]:
    """Open, size-check, decode, orient and convert; returns (rgb, (height, width))."""
    _check_file(path)
    too_big_hint = "raise max_pixels if you trust the file, or downscale it"
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageLoadError(path, f"decompression bomb ({exc})", too_big_hint) from exc
        except PermissionError as exc:
            raise ImageLoadError(path, "permission denied", "check the file's permissions") \
                from exc
        except Image.UnidentifiedImageError as exc:
            raise ImageLoadError(path, "not an image file PIL can identify",
                                 "remove it from the image folder") from exc
        except Exception as exc:  # any header parser failure
            raise ImageLoadError(path, f"unreadable header ({type(exc).__name__}: {exc})") from exc
    with img:
        width, height = img.size
        if width <= 0 or height <= 0:
            raise ImageLoadError(path, f"invalid size {width}x{height}")
        if max_pixels is not None and width * height > max_pixels:
            raise ImageLoadError(
                path, f"{width}x{height} = {width * height} pixels is over the limit of "
                f"{max_pixels} (possible decompression bomb)", too_big_hint)
        try:
            if draft is not None and img.format == "JPEG":
                img.draft("RGB", (draft, draft))  # DCT-domain downscale, still reads all data
            img.load()
        except OSError as exc:
            reason = "truncated file" if "truncated" in str(exc).lower() else "cannot decode"
            raise ImageLoadError(path, f"{reason} ({exc})", "re-download or delete the file") \
                from exc
        except Exception as exc:  # decoders raise many types on bad data
            raise ImageLoadError(path, f"cannot decode ({type(exc).__name__}: {exc})",
                                 "re-download or delete the file") from exc
        try:
            oriented = ImageOps.exif_transpose(img)
        except Exception as exc:  # a broken EXIF block should not lose the photo
            log.warning("%s: ignoring unreadable EXIF orientation (%s)", path, exc)
            oriented = img
        try:
            rgb = to_rgb_array(oriented)
        except Exception as exc:
            raise ImageLoadError(path, f"cannot convert mode {img.mode!r} to RGB ({exc})") from exc
    if oriented.size != img.size:  # orientation swapped the axes
        height, width = width, height
    return rgb, (height, width)


def load_rgb(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load an image file as upright RGB.

    Args:
        path: image file (any format PIL reads).
        max_pixels: refuse images with more pixels than this (checked from the header,
            before decoding); ``None`` leaves only PIL's own ``Image.MAX_IMAGE_PIXELS``.

    Returns:
        (H, W, 3) uint8 array in [0, 255], C-contiguous, writable, EXIF orientation applied.

    Raises:
        ImageLoadError: missing, empty, truncated, non-image, undecodable or oversized file.
    """
    return _open_checked(Path(path), max_pixels, None)[0]


def load_thumbnail(
    path: str | os.PathLike, max_side: int = 256, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, tuple[int, int]]:
    """Load a small upright RGB copy of an image, and its full size.

    Decodes the whole file (so truncation is still detected), but lets libjpeg decode JPEGs
    at a reduced scale, then shrinks with PIL's antialiased resize so the longer side is at
    most ``max_side``. Used by the colorness filter pass over large folders.

    Args:
        path: image file.
        max_side: longest side of the returned copy, in pixels.
        max_pixels: as in :func:`load_rgb`.

    Returns:
        ``(rgb, (height, width))``: (h, w, 3) uint8 thumbnail with ``max(h, w) <= max_side``
        and the full-resolution size of the upright image.

    Raises:
        ImageLoadError: as :func:`load_rgb`.
    """
    rgb, size = _open_checked(Path(path), max_pixels, max_side)
    h, w = rgb.shape[:2]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = np.asarray(Image.fromarray(rgb).resize(new, Image.Resampling.BILINEAR))
    return rgb, size


def _current_umask() -> int:
    """The process umask, read without changing it where /proc allows (thread-safe)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kw) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it onto ``path``.

    Readers never see a half-written file and a failed write leaves nothing behind. The
    file gets the usual permissions (0o666 minus the umask), not ``mkstemp``'s 0o600.
    Missing parent folders are created. ``kw`` goes to :func:`open` (``newline``, ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kw) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w") as f:
        f.write(text)


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an image as PNG atomically (see :func:`atomic_open`).

    Args:
        path: destination; missing parent folders are created.
        rgb: (H, W, 3) RGB or (H, W) grayscale, uint8.

    Returns:
        The destination path.

    Raises:
        ValueError: wrong shape or dtype.
    """
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"save_png expects (H, W, 3) or (H, W) uint8, got {arr.shape} "
                         f"{arr.dtype}; convert with pixcolor.color.to_uint8 first")
    with atomic_open(path, "wb") as f:
        Image.fromarray(np.ascontiguousarray(arr)).save(f, format="PNG")
    return Path(path)


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether a file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def iter_images(root: str | os.PathLike, recursive: bool = True) -> Iterator[Path]:
    """Image files under a folder, in a deterministic order.

    Names starting with ``"."`` (hidden files such as macOS ``._x.jpg`` and hidden folders)
    are skipped; symbolic links to folders are not followed. Within a folder, files come
    first, sorted by name, then each subfolder in sorted order (top-down walk), so the
    order is the same on every machine and file system.

    Args:
        root: folder to search.
        recursive: descend into subfolders.

    Yields:
        Paths of the image files (``root`` joined with the relative path).

    Raises:
        NotADirectoryError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"image folder {str(root)!r} does not exist or is not a folder")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for name in sorted(filenames):
            if not name.startswith(".") and is_image_file(name):
                yield Path(dirpath) / name


def expand_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Command-line inputs to files: a folder gives its images (:func:`iter_images`), a file
    stays itself (unreadable ones are reported later, when loaded)."""
    files: list[Path] = []
    for p in map(Path, paths):
        files += list(iter_images(p)) if p.is_dir() else [p]
    return files


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (streamed in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
