"""Colour maths for PixColor: YCbCr, chroma quantisation, low-resolution chroma, Lab
(:mod:`pixcolor.color.ycbcr`, :mod:`pixcolor.color.lab`; everything is importable from here).

The paper (Sec. 3.1) works in YCbCr "because it is linear, simple and widely used (e.g. by
JPEG)" and discretises Cb and Cr into 32 bins each. This module is the only place in the
project where colour conversions, quantisation and chroma resampling happen.

Conventions (shared by every caller):

* RGB floats are in [0, 1]; uint8 RGB is accepted by the helpers that say so.
* YCbCr is JPEG/JFIF full range, the convention of PIL's ``"YCbCr"`` mode, expressed as
  floats: Y in [0, 1], Cb and Cr centred in [-0.5, 0.5] (PIL's byte value / 255 - 0.5).
* Channel axis: numpy arrays are channel-last (``(..., 3)``), torch tensors channel-first
  (``(..., 3, H, W)``), unless ``axis`` says otherwise.
* Chroma arrays hold (Cb, Cr) in that order. The PixelCNN predicts Cr before Cb inside a
  pixel (paper Sec. 3.1); it reorders internally, callers never do.
"""

import importlib

# Where each public name lives. Loaded on first use (PEP 562), so that numpy-only users (the
# analysis of output images: ``rgb_to_ab``; the web app: ``rgb_to_lab``, ``lab_to_rgb``) do
# not import torch with ``ycbcr``.
_HOMES = {
    **dict.fromkeys(("lab_to_rgb", "rgb_to_lab", "rgb_to_lab_torch"), "lab"),
    **dict.fromkeys(("rgb_to_ab",), "lab_uint8"),
    **dict.fromkeys(("COLORNESS_THRESHOLD", "LOWRES_SHORT_SIDE", "NUM_BINS", "Array", "chroma",
                     "colorness", "dequantize_chroma", "lowres_chroma", "lowres_size", "luma",
                     "rgb_luma", "merge_luma_chroma", "quantize_chroma", "resize",
                     "rgb_to_ycbcr", "to_uint8", "upsample_chroma", "ycbcr_to_rgb"), "ycbcr"),
}
_SUBMODULES = ("lab", "lab_uint8", "ycbcr")
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES, *_SUBMODULES])
