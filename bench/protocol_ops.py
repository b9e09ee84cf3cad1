"""The image operations of the published evaluation protocols (:mod:`bench.protocols`), each
written to give what the protocol's own code gives.

Two pipelines:

- **CT2** (``segm/data/coco.py`` ``get_img``): PIL decode with ``.convert("RGB")`` (no EXIF
  orientation), torchvision ``CenterCrop(min(w, h))`` then ``Resize(256)``, which on a PIL
  image are ``Image.crop`` with torchvision's offsets and ``Image.resize(..., BILINEAR)``
  (:func:`ct2_preprocess`). The ground truth its metrics also use is the RGB -> Lab -> RGB
  round trip ``(255 * clip(lab2rgb(rgb2lab(gt).astype(float32)), 0, 1)).astype(uint8)``
  (scikit-image, truncating: :func:`ct2_ground_truth`).
- **DDColor** (``basicsr/data/lab_dataset.py``): OpenCV decode (EXIF applied, as
  :func:`pixcolor.io.load_rgb`), ``float32 / 255``, ``cv2.resize(img, (256, 256))`` with its
  default ``INTER_LINEAR`` (half-pixel centres, no antialiasing: :func:`cv2_resize_linear`
  is its formula in numpy, so OpenCV is not needed), scikit-image ``rgb2lab``, then its own
  torch ``tensor_lab2rgb`` (:func:`ddcolor_lab2rgb`, the same arithmetic in numpy) and
  ``tensor2img`` (clamp, ``* 255``, round): :func:`ddcolor_ground_truth`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from pixcolor.io import ImageLoadError

# --------------------------------------------------------------------------- CT2


def load_pil_convert_rgb(path: str | os.PathLike) -> np.ndarray:
    """``np.array(Image.open(path).convert("RGB"))``: CT2's decode, no EXIF orientation.

    Raises:
        ImageLoadError: a file PIL cannot open or decode.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError as exc:
        raise ImageLoadError(path, "file not found", "check the path") from exc
    except Exception as exc:  # PIL raises many types on bad data
        raise ImageLoadError(path, f"cannot decode ({type(exc).__name__}: {exc})",
                             "re-download or delete the file") from exc


def torchvision_centre_crop_box(width: int, height: int, side: int) -> tuple[int, int, int, int]:
    """The ``(left, top, right, bottom)`` box of torchvision's ``CenterCrop(side)`` on a PIL
    image: offsets ``int(round((size - side) / 2.0))`` (Python rounds half to even)."""
    top = int(round((height - side) / 2.0))
    left = int(round((width - side) / 2.0))
    return left, top, left + side, top + side


def ct2_preprocess(rgb: np.ndarray, size: int = 256) -> np.ndarray:
    """``CenterCrop(min(w, h))`` then ``Resize(size)`` on the PIL image, as CT2's test set.

    ``Resize`` leaves an image whose side already is ``size`` as it is and otherwise calls
    ``Image.resize((size, size), Image.BILINEAR)`` (PIL's bilinear widens its support when
    shrinking, so it is antialiased).

    Args:
        rgb: (H, W, 3) uint8.
        size: output side.

    Returns:
        (size, size, 3) uint8.
    """
    img = Image.fromarray(np.ascontiguousarray(rgb))
    side = min(img.size)
    img = img.crop(torchvision_centre_crop_box(img.width, img.height, side))
    if side != size:
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8).copy()


def ct2_ground_truth(rgb: np.ndarray) -> np.ndarray:
    """CT2's converted ground truth: scikit-image ``rgb2lab`` of the uint8 image, cast to
    float32, ``lab2rgb``, clipped to [0, 1], times 255 and truncated to uint8."""
    from skimage import color

    lab = color.rgb2lab(np.asarray(rgb, dtype=np.uint8)).astype(np.float32)
    return (255 * np.clip(color.lab2rgb(lab), 0, 1)).astype(np.uint8)


# --------------------------------------------------------------------------- DDColor


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of OpenCV's ``INTER_LINEAR`` along one axis.

    OpenCV (``resize``, ``imgproc/src/resize.cpp``): ``scale = 1 / (n_out / n_in)``,
    ``fx = (d + 0.5) * scale - 0.5``, ``sx = floor(fx)``, ``fx -= sx`` (in double: the
    weights OpenCV 4.7 and 5.1 use are the float32 of the exact fraction); a tap left of
    the image is clamped to ``sx = 0, fx = 0``, one at or past the last pixel to
    ``sx = n_in - 1, fx = 0``; weights ``1 - fx`` and ``fx`` in float32.

    Returns:
        ``(i0, i1, w1)``: left and right source index and the right weight per output.
    """
    scale = 1.0 / (n_out / n_in)
    fx = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
    sx = np.floor(fx).astype(np.int64)
    fx = (fx - sx).astype(np.float32)
    low, high = sx < 0, sx >= n_in - 1
    fx[low | high] = 0.0
    sx[low] = 0
    sx[high] = n_in - 1
    return sx, np.minimum(sx + 1, n_in - 1), fx


def cv2_resize_linear(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.resize(img, (w, h))`` (default ``INTER_LINEAR``) of a float32 image, in numpy.

    A horizontal then a vertical pass of two-tap float32 weights (:func:`_linear_taps`); no
    antialiasing when shrinking. Each pass is ``a + (b - a) * w`` with one rounding (a fused
    multiply-add, :func:`_lerp`), which is what OpenCV's vectorised float path computes: the
    result equals ``cv2.resize`` bit for bit (measured with opencv-python-headless 4.7.0.72,
    DDColor's pin, and 5.1.0 on x86-64; see ``bench/PROTOCOLS.md``).

    Args:
        img: (H, W) or (H, W, C) float32.
        size: ``(height, width)`` of the result (note: OpenCV's own argument is ``(w, h)``).

    Returns:
        float32 array of the new size.
    """
    img = np.asarray(img, dtype=np.float32)
    (h, w), (oh, ow) = img.shape[:2], size
    if (h, w) == (oh, ow):
        return img.copy()
    x0, x1, fx = _linear_taps(w, ow)
    y0, y1, fy = _linear_taps(h, oh)
    rows = _lerp(img[:, x0], img[:, x1], fx.reshape((1, ow) + (1,) * (img.ndim - 2)))
    return _lerp(rows[y0], rows[y1], fy.reshape((oh, 1) + (1,) * (img.ndim - 2)))


def _lerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``fma(b - a, w, a)`` in float32: ``b - a`` rounded to float32, then the product and
    the sum with one rounding (the float32 product is exact in float64)."""
    d = (b - a).astype(np.float64)
    return (d * w.astype(np.float64) + a.astype(np.float64)).astype(np.float32)


def ddcolor_resize(rgb: np.ndarray, size: int = 256) -> np.ndarray:
    """DDColor's ground-truth image before the Lab round trip: ``rgb / 255`` in float32,
    then ``cv2.resize(img, (size, size))``; (size, size, 3) float32 in [0, 1]."""
    return cv2_resize_linear(np.asarray(rgb, dtype=np.float32) / 255.0, (size, size))


def to_uint8_round(rgb: np.ndarray) -> np.ndarray:
    """``tensor2img``: clamp to [0, 1], times 255, round half to even, uint8."""
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def ddcolor_preprocess(rgb: np.ndarray, size: int = 256) -> np.ndarray:
    """The split image of a DDColor protocol: :func:`ddcolor_resize` as uint8."""
    return to_uint8_round(ddcolor_resize(rgb, size))


# DDColor's constants (basicsr/utils/img_util.py, tensor_lab2rgb)
_DD_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
_DD_RGB_FROM_XYZ = np.array([[3.240481340, -0.96925495, 0.055646640],
                             [-1.53715152, 1.875990000, -0.20404134],
                             [-0.49853633, 0.041555930, 1.057311070]], dtype=np.float32)


def ddcolor_lab2rgb(lab: np.ndarray) -> np.ndarray:
    """DDColor's ``tensor_lab2rgb`` on an (H, W, 3) float Lab array, in float32 numpy.

    ``y = (L + 16) / 116``, ``x = a / 500 + y``, ``z = max(y - b / 200, 0)``; cube above
    0.2068966, else ``(t - 16/116) / 7.787``; times the D65 white; times its
    ``rgb_from_xyz``; sRGB gamma above 0.0031308, else ``* 12.92``; clipped to [0, 1]. The
    same conversion as scikit-image's ``lab2rgb`` with its own rounded matrix.
    """
    lab = np.asarray(lab, dtype=np.float32)
    y = (lab[..., 0] + np.float32(16.0)) / np.float32(116.0)
    x = lab[..., 1] / np.float32(500.0) + y
    z = np.maximum(y - lab[..., 2] / np.float32(200.0), np.float32(0.0))
    xyz = np.stack([x, y, z], axis=-1)
    xyz = np.where(xyz > np.float32(0.2068966), xyz ** 3,
                   (xyz - np.float32(16.0 / 116.0)) / np.float32(7.787)) * _DD_WHITE
    rgb = (xyz.reshape(-1, 3) @ _DD_RGB_FROM_XYZ).reshape(xyz.shape)
    pos = np.maximum(rgb, np.float32(0.0031308))  # keeps the power off negative values
    rgb = np.where(rgb > np.float32(0.0031308),
                   np.float32(1.055) * pos ** np.float32(1 / 2.4) - np.float32(0.055),
                   rgb * np.float32(12.92))
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def ddcolor_ground_truth(rgb: np.ndarray) -> np.ndarray:
    """DDColor's ground truth: scikit-image ``rgb2lab`` of the float32 image in [0, 1] (uint8
    input is divided by 255 first), :func:`ddcolor_lab2rgb`, :func:`to_uint8_round`."""
    from skimage import color

    rgb = np.asarray(rgb)
    f = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    return to_uint8_round(ddcolor_lab2rgb(color.rgb2lab(f)))
