"""The per-image metrics of later colorization papers, in the registry of :mod:`analysis.metrics`.

* ``lpips`` / ``lpips_vgg``: LPIPS v0.1 (:mod:`analysis.lpips`) with the AlexNet backbone
  (the ``lpips`` package's default, what most colorization papers report) or VGG16; lower is
  better. The weights are loaded on first use, never at import: a metrics pass first asks
  :meth:`LazyLPIPS.requires`, which loads them (worker processes forked afterwards inherit
  them) or returns one line naming the missing file and where it comes from; the pass then
  reports LPIPS as not computed and runs every other metric. The ground truth's features are
  computed once per image (``prepare``), not once per method.
* ``colorfulness_abs``: colourfulness as DDColor's and CT2's evaluation code computes it
  (absolute opponent values, :func:`analysis.colourfulness.colorfulness_abs`): the metric to
  hold against their "CF" columns. ``colorfulness`` (signed, Hasler and Suesstrunk's paper)
  stays the project's own.
* ``delta_colorfulness`` / ``delta_colorfulness_abs``: per image ``|M(output) - M(truth)|``
  with the signed or the absolute-opponent colourfulness; lower is better. The papers'
  "delta CF" columns are the gap of the set means instead (``|mean M(outputs) - mean
  M(truths)|``, :func:`analysis.colourfulness.colorfulness_gap`): the leaderboard derives
  that from the per-image ``colorfulness`` / ``colorfulness_abs`` values
  (``colorfulness_gap``, ``colorfulness_gap_abs``).

The colourfulness values come from :func:`analysis.metrics.colorfulness_pair` (both variants
from one set of opponent planes, remembered per image: a pass computes them once per decoded
image, not once per metric); they equal :func:`analysis.metrics.colorfulness` and
:func:`analysis.colourfulness.colorfulness_abs`. This module is imported at the end of
:mod:`analysis.metrics`, so the registry is complete whenever it is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from analysis.inception_weights import hub_checkpoints_dir
from analysis.lpips import (
    BACKBONES,
    ENV_BACKBONE,
    ENV_HEADS,
    EPS,
    HEADS_URL,
    SCALE,
    SHIFT,
    LPIPSModel,
    WeightsError,
    WeightsNotFound,
    find_backbone_weights,
    find_heads,
    load_lpips,
)
from analysis.metrics import Display, colorfulness_pair, register_metric

__all__ = ["LazyLPIPS", "lpips_missing_reason"]


def lpips_missing_reason(backbone: str) -> str | None:
    """One line naming the LPIPS weights file that is missing and where it comes from, or
    None when both files (backbone and heads) are found."""
    spec = BACKBONES[backbone]
    try:
        find_backbone_weights(backbone)
    except WeightsNotFound:
        given = os.environ.get(ENV_BACKBONE)
        if given:
            return f"needs {spec.file} ({spec.url}); ${ENV_BACKBONE}={given} does not hold it"
        return (f"needs {spec.file} ({spec.url}): set ${ENV_BACKBONE} to it or put it in "
                f"{hub_checkpoints_dir()}")
    try:
        find_heads(backbone)
    except WeightsNotFound:
        return (f"needs the LPIPS v0.1 heads {spec.name}.pth ({HEADS_URL}{spec.name}.pth, in "
                f"the lpips wheel): pip install --no-deps lpips==0.1.4, or set ${ENV_HEADS}")
    return None


class LazyLPIPS:
    """LPIPS with one backbone as a registry metric: weights loaded on first use (once per
    process), features of an image computed once (``prepare``) and compared by the heads
    (``compare``): the numbers of :func:`analysis.lpips.lpips_per_image`."""

    def __init__(self, backbone: str) -> None:
        self.backbone = backbone
        self._model: LPIPSModel | None = None

    def model(self) -> LPIPSModel:
        """The loaded :class:`~analysis.lpips.LPIPSModel` (WeightsNotFound, WeightsError)."""
        if self._model is None:
            self._model = load_lpips(self.backbone)
        return self._model

    def reset(self) -> None:
        """Forget the loaded weights (the next use loads them again, e.g. from other files)."""
        self._model = None

    def requires(self) -> str | None:
        """Load the weights now; None when they loaded, else why not (one line)."""
        try:
            self.model()
        except WeightsNotFound:
            return lpips_missing_reason(self.backbone) or f"LPIPS {self.backbone}: no weights"
        except WeightsError as e:
            return f"unusable weights: {e}"
        return None

    def prepare(self, img: np.ndarray) -> list[Any]:
        """The five unit-normalised feature taps of one (H, W, 3) uint8 RGB image.

        Raises:
            ValueError: not (H, W, 3) uint8, or smaller than the backbone accepts.
        """
        import torch

        model = self.model()
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
            raise ValueError(f"LPIPS needs (H, W, 3) uint8 RGB, got {img.dtype} {img.shape}")
        if min(img.shape[:2]) < model.backbone.min_size:
            raise ValueError(f"LPIPS {self.backbone} needs images of at least "
                             f"{model.backbone.min_size} px a side, got {img.shape[:2]}")
        with torch.inference_mode():
            # as lpips.im2tensor: [-1, 1] in float64, then float32
            x = (torch.from_numpy(img).permute(2, 0, 1)[None].double() / 127.5 - 1.0).float()
            shift = torch.tensor(SHIFT)[None, :, None, None]
            scale = torch.tensor(SCALE)[None, :, None, None]
            taps = model.features(((x - shift) / scale).to(model.device))
            return [f / (torch.sqrt(torch.sum(f * f, dim=1, keepdim=True)) + EPS) for f in taps]

    def compare(self, own: list[Any], ref: list[Any]) -> float:
        """LPIPS from two images' :meth:`prepare` taps."""
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            layers = [F.conv2d((a - b) ** 2, head).mean()
                      for a, b, head in zip(own, ref, self.model().heads, strict=True)]
            return float(torch.stack(layers).sum())

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """LPIPS of one pair (the registry's ``fn(pred, gt)``)."""
        if np.shape(pred) != np.shape(gt):
            raise ValueError(f"prediction {np.shape(pred)} and ground truth {np.shape(gt)} "
                             "differ in shape")
        return self.compare(self.prepare(pred), self.prepare(gt))


def _colorfulness(rgb: np.ndarray) -> float:
    return colorfulness_pair(rgb)[0]


def _colorfulness_abs(rgb: np.ndarray) -> float:
    return colorfulness_pair(rgb)[1]


def _abs_difference(a: float, b: float) -> float:
    return abs(a - b)


def _delta(measure: Callable[[np.ndarray], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    """``|measure(pred) - measure(gt)|`` as a plain two-image function."""
    def delta(pred: np.ndarray, gt: np.ndarray) -> float:
        return abs(measure(pred) - measure(gt))

    return delta


for _name, _backbone, _net, _label in (
        ("lpips", "alex", "AlexNet, the lpips package's default", "LPIPS (AlexNet)"),
        ("lpips_vgg", "vgg", "VGG16", "LPIPS (VGG16)")):
    _lpips = LazyLPIPS(_backbone)
    register_metric(_name, _lpips, higher_is_better=False, prepare=_lpips.prepare,
                    fn_prepared=_lpips.compare, requires=_lpips.requires,
                    description=f"LPIPS v0.1 ({_net}), perceptual distance to the truth",
                    display=Display(_label, 3))

register_metric("colorfulness_abs", _colorfulness_abs, needs_reference=False,
                description="colourfulness as DDColor's and CT2's code compute it (absolute "
                            "opponents |R-G|, |(R+G)/2-B|): their CF columns",
                display=Display("Colourfulness CF (DDColor/CT2)", 2))
register_metric("delta_colorfulness", _delta(_colorfulness), higher_is_better=False,
                prepare=_colorfulness, fn_prepared=_abs_difference,
                description="per image |M(output) - M(truth)|, signed Hasler-Suesstrunk M3 "
                            "(the colorfulness column)",
                display=Display("Per-photo |M3 - truth's|", 2))
register_metric("delta_colorfulness_abs", _delta(_colorfulness_abs), higher_is_better=False,
                prepare=_colorfulness_abs, fn_prepared=_abs_difference,
                description="per image |CF(output) - CF(truth)|, DDColor/CT2's CF (the "
                            "papers' delta-CF is the set gap: colorfulness_gap_abs)",
                display=Display("Per-photo |CF - truth's|", 2))
