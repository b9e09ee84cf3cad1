"""CIE Lab (D65): the reference conversion through scikit-image (numpy) and a differentiable
torch version of it for training losses (torch is imported by that function alone, so the
numpy conversions load without it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pixcolor.color.lab_uint8 import D65, RGB2XYZ

if TYPE_CHECKING:
    import torch


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

    For the training losses of the Lab-based baselines (``baselines``); the numpy path
    through scikit-image stays the reference (the tests compare the two).

    Args:
        rgb: (..., 3, H, W) float in [0, 1] (channel-first, as every torch path here).

    Returns:
        (..., 3, H, W) float: L in [0, 100], a and b roughly in [-128, 127].
    """
    import torch

    from pixcolor.color.ycbcr import _apply_matrix

    rgb = rgb.float().clamp(0.0, 1.0)
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _apply_matrix(lin, RGB2XYZ, -3)
    white = torch.tensor(D65, dtype=xyz.dtype, device=xyz.device).view(3, 1, 1)
    t = xyz / white
    eps = (6.0 / 29.0) ** 3
    f = torch.where(t > eps, t.clamp_min(eps) ** (1.0 / 3.0), t / (3 * (6.0 / 29.0) ** 2) + 4 / 29)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], -3)
