"""Attention-check images: an obviously wrong colorization made from the ground truth.

The Visual Turing Test (paper Sec. 4) only measures something if raters look. About 10% of
trials pair the ground truth with its own colours rotated by 180 degrees of hue in CIELab
(``a, b -> -a, -b``, lightness kept): grass turns magenta, sky turns orange. A rater who picks
the rotated image as the one with "true colours" fails the check.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from pixcolor.color import lab_to_rgb, rgb_to_lab


def rotate_hue_lab(rgb: np.ndarray) -> np.ndarray:
    """Rotate hue by 180 degrees in CIELab, keeping lightness.

    Args:
        rgb: (H, W, 3) uint8 RGB image.

    Returns:
        (H, W, 3) uint8 RGB image with ``a, b`` negated.
    """
    lab = rgb_to_lab(rgb)
    lab[..., 1:] *= -1.0
    with warnings.catch_warnings():  # out-of-gamut colours are clipped, as intended
        warnings.simplefilter("ignore", UserWarning)
        out = lab_to_rgb(lab)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def mean_chroma(rgb: np.ndarray) -> float:
    """Mean CIELab chroma ``sqrt(a^2 + b^2)`` of a thumbnail (higher: hue rotation shows more).

    Args:
        rgb: (H, W, 3) uint8 RGB image.

    Returns:
        Mean chroma, >= 0 (about 0 for grayscale).
    """
    step = max(1, min(rgb.shape[:2]) // 64)
    lab = rgb_to_lab(rgb[::step, ::step])
    return float(np.mean(np.hypot(lab[..., 1], lab[..., 2])))


def flag_probability(planned: int, max_fail_rate: float, min_failures: int,
                     p_fail: float) -> float:
    """Probability that a rater who fails each of ``planned`` checks independently with
    probability ``p_fail`` is flagged by the rule "more than ``max_fail_rate`` of the planned
    checks failed, and at least ``min_failures`` of them" (:func:`vtt_app.responses.
    update_flag`)."""
    return sum(math.comb(planned, k) * p_fail**k * (1 - p_fail) ** (planned - k)
               for k in range(planned + 1)
               if k >= min_failures and k / planned > max_fail_rate)


def smallest_flagging_rate(scored: int, min_failures: int) -> float:
    """The smallest attention rate (two decimals) whose ``round(rate * scored)`` checks give
    the flag rule ``min_failures`` checks to fail."""
    rate = math.ceil(100 * (min_failures - 0.5) / max(scored, 1)) / 100
    while round(rate * scored) < min_failures:
        rate += 0.01
    return round(rate, 2)
