"""CIE Lab (D65): the reference conversion through scikit-image, a fast float32 path for
uint8 images (a, b only: what the metrics and histograms need), a differentiable torch
version for training losses, and the Lab plumbing of the Lab-based baselines."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from pixcolor.color.lab_uint8 import D65, RGB2XYZ
from pixcolor.color.ycbcr import (
    _apply_matrix,
    luminance,
    merge_luma_chroma,
    rgb_to_ycbcr,
    to_uint8,
    ycbcr_to_rgb,
)

L_CENT, L_NORM, AB_NORM = 50.0, 100.0, 110.0  # richzhang/colorization's Lab normalisation


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) of an RGB image through scikit-image; uint8 or float in [0, 1].

    Returns float64 (..., 3): L in [0, 100], a and b roughly in [-128, 127].
    """
    from skimage.color import rgb2lab

    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        rgb = rgb.astype(np.float64) / 255.0
    return rgb2lab(rgb)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_lab` (float RGB in [0, 1], clipped)."""
    from skimage.color import lab2rgb

    return np.clip(lab2rgb(np.asarray(lab, dtype=np.float64)), 0.0, 1.0)




def rgb_to_lab_torch(rgb: torch.Tensor) -> torch.Tensor:
    """Differentiable CIE Lab (D65) of RGB tensors, matching :func:`rgb_to_lab`.

    For training losses of the Lab-based baselines (``baselines``); the numpy path through
    scikit-image stays the reference (the tests compare the two).

    Args:
        rgb: (..., 3, H, W) float in [0, 1] (channel-first, as every torch path here).

    Returns:
        (..., 3, H, W) float: L in [0, 100], a and b roughly in [-128, 127].
    """
    rgb = rgb.float().clamp(0.0, 1.0)
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _apply_matrix(lin, RGB2XYZ, -3)
    white = torch.tensor(D65, dtype=xyz.dtype, device=xyz.device).view(3, 1, 1)
    t = xyz / white
    eps = (6.0 / 29.0) ** 3
    f = torch.where(t > eps, t.clamp_min(eps) ** (1.0 / 3.0), t / (3 * (6.0 / 29.0) ** 2) + 4 / 29)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], -3)


def lab_from_batch(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Lab of a training batch of :class:`pixcolor.data.ImageFolderDataset` items.

    Args:
        batch: ``y`` (B, 1, S, S) in [0, 1] and ``cbcr`` (B, 2, S, S) centred chroma.

    Returns:
        L (B, 1, S, S) float in [0, 100] and ab (B, 2, S, S) float, roughly in [-110, 110].
    """
    ycc = torch.cat([batch["y"], batch["cbcr"]], 1).float()
    with torch.autocast(ycc.device.type, enabled=False):  # targets in float32 under bf16
        lab = rgb_to_lab_torch(ycbcr_to_rgb(ycc))
    return lab[:, :1], lab[:, 1:]


def to_lightness(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) or (H, W, 3) uint8 -> (Y, L): (H, W) float32 Y in [0, 1], L in [0, 100]."""
    im = np.asarray(image)
    if im.dtype != np.uint8:
        raise TypeError(f"expected uint8 images, got {im.dtype}")
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, -1)
    if im.ndim != 3 or im.shape[2] != 3:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {im.shape}")
    gray = np.repeat(to_uint8(luminance(im))[..., None], 3, -1)
    return luminance(im), rgb_to_lab(gray)[..., 0].astype(np.float32)


def recombine(y: np.ndarray, lightness: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """The input's L + predicted ab -> RGB, then its chroma with the input's exact Y.

    Args:
        y: (H, W) float Y in [0, 1] of the input.
        lightness: (H, W) float L in [0, 100] of the input.
        ab: (H, W, 2) float predicted ab at the input's size.

    Returns:
        (H, W, 3) uint8 RGB whose Y equals ``y`` up to rounding.
    """
    with warnings.catch_warnings():  # predicted ab may leave the gamut (negative Z): clipped
        warnings.simplefilter("ignore", UserWarning)
        rgb = lab_to_rgb(np.concatenate([lightness[..., None], ab], -1))
    return merge_luma_chroma(y, rgb_to_ycbcr(rgb)[..., 1:])
