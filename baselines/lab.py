"""The Lab plumbing the three baselines share: richzhang/colorization's normalisation of L
and ab, the Lab of a training batch, and the test-time split of an input into lightness and
the join of predicted ab with it (the conventions of :mod:`baselines.base`). The colour
conversions themselves are :mod:`pixcolor.color`'s."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from pixcolor import color

L_CENT, L_NORM, AB_NORM = 50.0, 100.0, 110.0  # richzhang/colorization's Lab normalisation


def lab_from_batch(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Lab of a training batch of :class:`pixcolor.data.ImageFolderDataset` items.

    Args:
        batch: ``y`` (B, 1, S, S) in [0, 1] and ``cbcr`` (B, 2, S, S) centred chroma.

    Returns:
        L (B, 1, S, S) float in [0, 100] and ab (B, 2, S, S) float, roughly in [-110, 110].
    """
    ycc = torch.cat([batch["y"], batch["cbcr"]], 1).float()
    with torch.autocast(ycc.device.type, enabled=False):  # targets in float32 under bf16
        lab = color.rgb_to_lab_torch(color.ycbcr_to_rgb(ycc))
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
    gray = np.repeat(color.to_uint8(color.rgb_luma(im))[..., None], 3, -1)
    return color.rgb_luma(im), color.rgb_to_lab(gray)[..., 0].astype(np.float32)


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
        rgb = color.lab_to_rgb(np.concatenate([lightness[..., None], ab], -1))
    return color.merge_luma_chroma(y, color.rgb_to_ycbcr(rgb)[..., 1:])
