"""YCbCr, chroma quantisation, low-resolution chroma, luma-keeping merge, colorness
(see :mod:`pixcolor.color` for the conventions)."""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

Array = TypeVar("Array", np.ndarray, torch.Tensor)

NUM_BINS = 32  # paper Sec. 3.1: Cb and Cr are discretised separately into 32 bins
LOWRES_SHORT_SIDE = 28  # paper Sec. 3: the PixelCNN colours a 28x28 image
COLORNESS_THRESHOLD = 0.05  # paper Table 2

# JFIF (ITU-R BT.601 full range) matrices; rows give Y, Cb, Cr.
_RGB2YCC = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168735892, -0.331264108, 0.5],
        [0.5, -0.418687589, -0.081312411],
    ]
)
_YCC2RGB = np.linalg.inv(_RGB2YCC)


def _default_axis(x: np.ndarray | torch.Tensor, axis: int | None) -> int:
    if axis is not None:
        return axis
    return -3 if isinstance(x, torch.Tensor) else -1


def _apply_matrix(x: Array, matrix: np.ndarray, axis: int) -> Array:
    if x.shape[axis] != 3:
        raise ValueError(f"expected 3 channels on axis {axis}, got shape {tuple(x.shape)}")
    if isinstance(x, torch.Tensor):
        x = x.float() if not x.is_floating_point() else x
        m = torch.as_tensor(matrix, dtype=x.dtype, device=x.device)
        moved = x.movedim(axis, -1)
        return (moved @ m.T).movedim(-1, axis)
    x = np.asarray(x, dtype=np.float64) if x.dtype != np.float32 else x
    moved = np.moveaxis(x, axis, -1)
    return np.moveaxis(moved @ matrix.T.astype(x.dtype), -1, axis)


def rgb_to_ycbcr(rgb: Array, axis: int | None = None) -> Array:
    """RGB in [0, 1] to JFIF YCbCr floats (Y in [0, 1], Cb/Cr in [-0.5, 0.5]).

    Args:
        rgb: float array or tensor, any batch shape, 3 channels on ``axis``. A uint8
            numpy array is scaled by 1/255 first.
        axis: channel axis; default -1 for numpy, -3 for torch.

    Returns:
        Same shape and type, channels (Y, Cb, Cr).
    """
    if isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8:
        rgb = rgb.astype(np.float32) / 255.0
    return _apply_matrix(rgb, _RGB2YCC, _default_axis(rgb, axis))


def ycbcr_to_rgb(ycc: Array, axis: int | None = None, clip: bool = True) -> Array:
    """Inverse of :func:`rgb_to_ycbcr`; clips to [0, 1] unless ``clip=False``."""
    rgb = _apply_matrix(ycc, _YCC2RGB, _default_axis(ycc, axis))
    if clip:
        rgb = rgb.clamp(0.0, 1.0) if isinstance(rgb, torch.Tensor) else np.clip(rgb, 0.0, 1.0)
    return rgb


def to_uint8(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Float image in [0, 1] to uint8 (round half up), as a numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.clip(np.floor(np.asarray(x) * 255.0 + 0.5), 0, 255).astype(np.uint8)


def rgb_luma(rgb: np.ndarray) -> np.ndarray:
    """The Y plane of an (H, W, 3) uint8 or float RGB image as float32 (H, W) in [0, 1]."""
    return rgb_to_ycbcr(rgb)[..., 0].astype(np.float32)


def chroma(rgb: np.ndarray) -> np.ndarray:
    """The (Cb, Cr) planes of an (H, W, 3) RGB image as float32 (H, W, 2)."""
    return rgb_to_ycbcr(rgb)[..., 1:].astype(np.float32)


def luma(im: np.ndarray) -> np.ndarray:
    """The model's input from a uint8 image, grayscale (H, W) or RGB (H, W, 3): the float32
    Y plane (H, W) in [0, 1].

    Raises:
        TypeError: not uint8. ValueError: another shape.
    """
    im = np.asarray(im)
    if im.dtype != np.uint8:
        raise TypeError(f"expected uint8 images, got {im.dtype}")
    if im.ndim == 2:
        return im.astype(np.float32) / 255.0
    if im.ndim == 3 and im.shape[2] == 3:
        return rgb_luma(im)
    raise ValueError(f"expected (H, W) or (H, W, 3) image, got shape {im.shape}")


def quantize_chroma(cbcr: Array, bins: int = NUM_BINS) -> Array:
    """Map centred chroma in [-0.5, 0.5] to uniform bin indices in [0, bins).

    Values outside the range are clipped into the end bins. Returns int64.
    """
    if isinstance(cbcr, torch.Tensor):
        return torch.floor((cbcr.float() + 0.5) * bins).clamp(0, bins - 1).long()
    idx = np.floor((np.asarray(cbcr, dtype=np.float64) + 0.5) * bins)
    return np.clip(idx, 0, bins - 1).astype(np.int64)


def dequantize_chroma(idx: Array, bins: int = NUM_BINS) -> Array:
    """Bin indices to the centred chroma value at each bin's centre (float32)."""
    if isinstance(idx, torch.Tensor):
        return (idx.float() + 0.5) / bins - 0.5
    return ((np.asarray(idx, dtype=np.float32) + 0.5) / bins - 0.5).astype(np.float32)


def lowres_size(height: int, width: int, short_side: int = LOWRES_SHORT_SIDE) -> tuple[int, int]:
    """Size (h, w) with the shorter side ``short_side`` and the aspect ratio kept.

    The longer side is rounded to the nearest integer (at least ``short_side``).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if height <= width:
        return short_side, max(short_side, int(math.floor(width * short_side / height + 0.5)))
    return max(short_side, int(math.floor(height * short_side / width + 0.5))), short_side


def _as_nchw(x: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, callable]:
    """Numpy channel-last (H, W, C) / (N, H, W, C) or torch (N, C, H, W) / (C, H, W)."""
    if isinstance(x, torch.Tensor):
        if x.dim() == 3:
            return x.unsqueeze(0).float(), lambda t: t.squeeze(0)
        if x.dim() != 4:
            raise ValueError(f"expected (C, H, W) or (N, C, H, W), got {tuple(x.shape)}")
        return x.float(), lambda t: t
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 3:
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).unsqueeze(0)
        return t, lambda t: t.squeeze(0).permute(1, 2, 0).numpy()
    if arr.ndim != 4:
        raise ValueError(f"expected (H, W, C) or (N, H, W, C), got {arr.shape}")
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))
    return t, lambda t: t.permute(0, 2, 3, 1).numpy()


def resize(x: Array, size: tuple[int, int], antialias: bool = True) -> Array:
    """Bilinear resize of a float image (numpy channel-last or torch channel-first).

    With ``antialias=True`` downsampling averages over the footprint of each output pixel
    (no aliasing); upsampling is plain bilinear interpolation (align_corners=False).
    """
    t, back = _as_nchw(x)
    if tuple(t.shape[-2:]) == tuple(size):
        return back(t.clone())
    out = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False,
                        antialias=antialias)
    return back(out)


def lowres_chroma(cbcr: Array, short_side: int = LOWRES_SHORT_SIDE) -> Array:
    """Antialiased downsampling of chroma so the shorter side is ``short_side`` pixels.

    Args:
        cbcr: (H, W, 2) / (N, H, W, 2) numpy or (2, H, W) / (N, 2, H, W) torch, centred.

    Returns:
        The same layout at :func:`lowres_size` of the input.
    """
    h, w = (cbcr.shape[-2:] if isinstance(cbcr, torch.Tensor) else cbcr.shape[-3:-1])
    return resize(cbcr, lowres_size(int(h), int(w), short_side), antialias=True)


def upsample_chroma(cbcr: Array, size: tuple[int, int]) -> Array:
    """Bilinear upsampling of (low-resolution) chroma to ``size`` = (H, W)."""
    return resize(cbcr, size, antialias=False)


def merge_luma_chroma(y: Array, cbcr: Array) -> np.ndarray:
    """Combine a Y plane with chroma into uint8 RGB, keeping the luma exactly.

    Where Y and the chroma give an RGB colour outside [0, 1]^3, the chroma of that pixel is
    scaled towards grey just enough to bring the colour into the RGB cube (hue kept,
    saturation reduced). Clipping RGB instead would change the luma of the pixel, and
    the output's luma must be the input's.

    Computed in float64 with torch, on the device of the tensor inputs if any, so that a
    batch of model outputs is merged on the GPU in one go (per image in numpy this was most
    of ``colorize``'s time on a GPU); numpy and tensor inputs give identical results.

    Args:
        y: (..., H, W) float in [0, 1] (numpy array or tensor).
        cbcr: (..., H, W, 2) centred chroma (channel-last, like the output).

    Returns:
        (..., H, W, 3) uint8 numpy RGB whose Y equals ``y`` up to uint8 rounding.
    """
    dev = next((a.device for a in (cbcr, y) if isinstance(a, torch.Tensor)), None)
    y = torch.as_tensor(y, device=dev).to(torch.float64).clamp(0.0, 1.0)[..., None]
    cbcr = torch.as_tensor(cbcr, device=dev).to(torch.float64)
    if cbcr.shape[-1] != 2 or cbcr.shape[:-1] != y.shape[:-1]:
        raise ValueError(f"expected chroma of shape {tuple(y.shape[:-1]) + (2,)}, "
                         f"got {tuple(cbcr.shape)}")
    m = _YCC2RGB  # the Y column does not enter: d is the colour offset from grey
    cb, cr = cbcr[..., 0:1], cbcr[..., 1:2]
    d = torch.cat([cb * float(m[k, 1]) + cr * float(m[k, 2]) for k in range(3)], -1)
    inf = torch.full_like(d, float("inf"))
    room = torch.where(d > 0, (1.0 - y) / d, torch.where(d < 0, y / -d, inf))
    t = room.amin(-1, keepdim=True).clamp(0.0, 1.0)
    rgb = torch.floor((y + t * d) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8)
    return rgb.cpu().numpy()


def colorness(rgb: np.ndarray, luma_bins: int = 64) -> float:
    """The training filter's colorness: chroma variation not explained by luma, >= 0.

    The paper's Table 2 drops training images under a "colorness threshold 0.05" without
    defining colorness. Our definition: split the pixels into ``luma_bins`` equal bins of
    Y; within each bin take the variance of Cb and of Cr around that bin's mean; average
    over all pixels, sum the two channels, take the square root and divide by 0.2::

        colorness = sqrt(E_pixels[(Cb - E[Cb | Y])^2 + (Cr - E[Cr | Y])^2]) / 0.2

    (chroma in the centred float units of :func:`rgb_to_ycbcr`).

    * A grayscale image has Cb = Cr = 0 and scores exactly 0.
    * A toned monochrome image (sepia, cyanotype, duotone) has a chroma that is a function
      of its luma, so it scores low however strong its tint (a sepia-toned photo
      measures about 0.04; see ``tests/pixcolor/test_color.py``).
    * Natural photos show several colours at the same brightness. On the 1,000-photo
      ImageNet sample the median is about 0.2 and the 5th percentile about 0.05; the
      images under the threshold are the grayscale and nearly grayscale ones
      (see NOTES.md).

    Args:
        rgb: (H, W, 3) uint8 or float in [0, 1].
        luma_bins: number of luma bins for the conditional mean.
    """
    ycc = rgb_to_ycbcr(np.asarray(rgb)).reshape(-1, 3).astype(np.float64)
    if len(ycc) == 0:
        raise ValueError("colorness of an empty image is undefined")
    b = np.clip((ycc[:, 0] * luma_bins).astype(np.int64), 0, luma_bins - 1)
    count = np.bincount(b, minlength=luma_bins)
    within = 0.0
    for c in (1, 2):
        s1 = np.bincount(b, ycc[:, c], luma_bins)
        s2 = np.bincount(b, ycc[:, c] ** 2, luma_bins)
        within += float((s2 - s1**2 / np.maximum(count, 1)).sum())
    return float(np.sqrt(max(within, 0.0) / len(ycc)) / 0.2)
