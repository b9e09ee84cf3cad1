"""Methods that need no model: ``gt``, ``grayscale``, ``gt28_unrefined``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.methods.registry import Item, Method, MethodOptions, Result, register_method
from pixcolor import color


class GroundTruth(Method):
    description = "ground truth: the preprocessed split image"

    def generate(self, items: Sequence[Item]) -> list[Result]:
        return [it.rgb for it in items]


class Grayscale(Method):
    description = "the Y plane replicated to RGB (no colour)"

    def generate(self, items: Sequence[Item]) -> list[Result]:
        return [np.repeat(color.to_uint8(color.rgb_luma(it.rgb))[..., None], 3, -1)
                for it in items]


class GT28Unrefined(Method):
    description = ("ground-truth chroma downsampled to a 28-pixel short side, bilinearly "
                   "upsampled, with the original Y (paper Fig. 3)")

    def __init__(self, options: MethodOptions | None = None,
                 short_side: int = color.LOWRES_SHORT_SIDE) -> None:
        super().__init__(options)
        self.short_side = short_side

    def meta(self) -> dict:
        return {**super().meta(), "lowres_short_side": self.short_side}

    def generate(self, items: Sequence[Item]) -> list[Result]:
        out: list[Result] = []
        for it in items:
            low = color.lowres_chroma(color.chroma(it.rgb), self.short_side)
            up = color.upsample_chroma(low, it.rgb.shape[:2])
            out.append(color.merge_luma_chroma(color.rgb_luma(it.rgb), up))
        return out


def register() -> None:
    register_method("gt")(GroundTruth)
    register_method("grayscale")(Grayscale)
    register_method("gt28_unrefined")(GT28Unrefined)
