"""Colourfulness against the truth, and the variant DDColor's and CT2's code compute.

Colourfulness is Hasler and Suesstrunk's (2003) metric M3 on 0..255 RGB,
M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2), with the paper's
signed opponent values rg = R - G, yb = (R + G) / 2 - B: :func:`analysis.metrics.colorfulness`,
the project's metric, used here as it is.

The evaluation code of DDColor (Kang et al. 2023, ``basicsr/metrics/colorfulness.py``,
``calculate_cf``) and of CT2 (Weng et al. 2022, ``segm/eval_colorfullness.py``) takes the
absolute values |R - G| and |(R + G) / 2 - B| before the means and standard deviations (on
float64 values of the uint8 image, population standard deviations). That changes both terms
(a half-red, half-green image has std(rg) = 255 signed, 0 absolute), so numbers from those
papers are compared with :func:`colorfulness_abs`, not with the signed metric.

Against the truth:

* :func:`delta_colorfulness`: per image, |M(output) - M(truth)|, lower is better;
* :func:`colorfulness_gap`: over a set, |mean M(outputs) - mean M(truths)|, how the papers'
  "delta colourfulness" columns compare a method with the ground truth (a method that is too
  colourful on some photos and too dull on others can score 0 here, not per image).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from analysis.metrics import colorfulness

__all__ = ["colorfulness", "colorfulness_abs", "colorfulness_gap", "delta_colorfulness"]

Variant = Literal["signed", "abs"]


def colorfulness_abs(rgb: np.ndarray) -> float:
    """Colourfulness as DDColor's and CT2's evaluation code computes it (absolute opponents).

    Args:
        rgb: (H, W, 3) uint8 RGB (floats are taken as 0..255 values).

    Returns:
        sqrt(std(|rg|)^2 + std(|yb|)^2) + 0.3 * sqrt(mean(|rg|)^2 + mean(|yb|)^2) >= 0, with
        rg = R - G, yb = (R + G) / 2 - B (0 for any grayscale image).
    """
    x = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    rg = np.abs(x[:, 0] - x[:, 1])
    yb = np.abs(0.5 * (x[:, 0] + x[:, 1]) - x[:, 2])
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


_VARIANTS = {"signed": colorfulness, "abs": colorfulness_abs}


def _metric(variant: Variant):
    if variant not in _VARIANTS:
        raise ValueError(f"unknown colourfulness variant {variant!r}; choose 'signed' (the "
                         f"paper's, analysis.metrics) or 'abs' (DDColor's and CT2's code)")
    return _VARIANTS[variant]


def delta_colorfulness(pred: np.ndarray, gt: np.ndarray, *, variant: Variant = "signed") -> float:
    """|M(pred) - M(gt)|: how far an output's colourfulness is from its truth's.

    Args:
        pred, gt: (H, W, 3) uint8 RGB (sizes may differ: each is measured on its own).
        variant: "signed" (Hasler-Suesstrunk, :func:`analysis.metrics.colorfulness`) or "abs"
            (:func:`colorfulness_abs`).

    Returns:
        A value >= 0, 0 when both are equally colourful (lower is better).
    """
    metric = _metric(variant)
    return abs(metric(pred) - metric(gt))


def colorfulness_gap(outputs: Sequence[np.ndarray], truths: Sequence[np.ndarray], *,
                     variant: Variant = "signed") -> float:
    """|mean M(outputs) - mean M(truths)| over a set of images.

    Args:
        outputs, truths: non-empty sequences of (H, W, 3) uint8 RGB (need not pair up).
        variant: as in :func:`delta_colorfulness`.

    Returns:
        A value >= 0 (lower is better).
    """
    if not len(outputs) or not len(truths):
        raise ValueError("the colourfulness gap needs at least one output and one truth")
    metric = _metric(variant)
    return abs(float(np.mean([metric(x) for x in outputs]))
               - float(np.mean([metric(x) for x in truths])))
