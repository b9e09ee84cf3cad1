"""LPIPS v0.1 (Zhang, Isola, Efros, Shechtman and Wang, CVPR 2018, "The Unreasonable
Effectiveness of Deep Features as a Perceptual Metric", Sec. 3 and Eq. 1) in plain torch.

The same numbers as the ``lpips`` package (0.1.4, ``lpips.LPIPS(net=...)`` in eval mode,
checked by ``tests/analysis/test_lpips.py``), without torchvision, whose PyPI wheels need a
CUDA torch:

1. RGB in [-1, 1] (uint8 ``u`` -> ``u / 127.5 - 1``, as ``lpips.im2tensor``), then the
   ScalingLayer ``(x - shift) / scale``, shift (-0.030, -0.088, -0.188), scale (0.458,
   0.448, 0.450);
2. five feature taps of the ImageNet backbone: AlexNet relu1..relu5 (after torchvision's
   ``features[1], [4], [7], [9], [11]``) or VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
   (``features[3], [8], [15], [22], [29]``);
3. each tap scaled to unit length over channels, ``f / (||f||_2 + 1e-10)``;
4. the squared difference of the two images' taps through a 1x1 linear head (no bias;
   non-negative weights learned on BAPPS; dropout is off in eval), averaged over space;
5. the sum over the five layers.

Weights are read, never downloaded. The backbone is torchvision's own file, read by its keys
(``features.N.weight``, ``features.N.bias``): ``alexnet-owt-7be5be79.pth`` or
``vgg16-397923af.pth``, from the argument, ``$PIXCOLOR_LPIPS_BACKBONE_WEIGHTS`` or torch hub's
cache (``~/.cache/torch/hub/checkpoints/``, or under ``$TORCH_HOME``). The heads are the
``lpips`` wheel's ``lpips/weights/v0.1/{alex,vgg}.pth``: from the argument,
``$PIXCOLOR_LPIPS_HEADS`` or the installed package's folder (found without importing it: it
imports torchvision). A variable or argument may name the file or a folder holding it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from analysis.inception_weights import (  # noqa: F401  (WeightsNotFound re-exported)
    WeightsNotFound,
    hub_checkpoints_dir,
)

if TYPE_CHECKING:
    import torch

__all__ = ["BACKBONES", "ENV_BACKBONE", "ENV_HEADS", "Backbone", "LPIPSModel",
           "WeightsError", "WeightsNotFound", "find_backbone_weights", "find_heads",
           "load_lpips", "lpips_per_image"]

ENV_BACKBONE = "PIXCOLOR_LPIPS_BACKBONE_WEIGHTS"
ENV_HEADS = "PIXCOLOR_LPIPS_HEADS"
SHIFT = (-0.030, -0.088, -0.188)  # lpips.ScalingLayer
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # lpips.normalize_tensor
HEADS_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/"


class WeightsError(ValueError):
    """A weights file is there but unreadable or not the expected network."""


@dataclass(frozen=True)
class Backbone:
    """A torchvision ``features`` stack as LPIPS taps it."""

    name: str  # lpips's name ("alex", "vgg"), also the stem of its heads file
    file: str  # torchvision's weights file (its name in torch hub's cache)
    url: str  # where torchvision downloads that file from
    # ("conv", index in features, stride, padding): a convolution and its ReLU;
    # ("pool", kernel, stride): max pooling; ("tap",): one of the five LPIPS features
    layers: tuple[tuple, ...]
    channels: tuple[int, ...]  # channels at the five taps
    min_size: int  # smallest image side the stack accepts


def _vgg16_layers() -> tuple[tuple, ...]:
    """torchvision's VGG16 configuration "D": 2, 2, 3, 3, 3 convolutions between poolings."""
    layers, index = [], 0
    for block, n_convs in enumerate((2, 2, 3, 3, 3)):
        if block:
            layers.append(("pool", 2, 2))
            index += 1
        for _ in range(n_convs):
            layers.append(("conv", index, 1, 1))
            index += 2  # the convolution and its ReLU
        layers.append(("tap",))
    return tuple(layers)


BACKBONES = {
    "alex": Backbone(
        name="alex", file="alexnet-owt-7be5be79.pth",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        layers=(("conv", 0, 4, 2), ("tap",), ("pool", 3, 2), ("conv", 3, 1, 2), ("tap",),
                ("pool", 3, 2), ("conv", 6, 1, 1), ("tap",), ("conv", 8, 1, 1), ("tap",),
                ("conv", 10, 1, 1), ("tap",)),
        channels=(64, 192, 384, 256, 256), min_size=31),
    "vgg": Backbone(
        name="vgg", file="vgg16-397923af.pth",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        layers=_vgg16_layers(), channels=(64, 128, 256, 512, 512), min_size=16),
}


def _backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unknown LPIPS backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]


def _locate(given: str | Path | None, env: str, file: str, default: Path | None,
            no_default: str = "") -> Path:
    """The file from the argument, else the environment variable, else ``default``; a
    folder stands for ``folder / file``. Raises WeightsNotFound naming what was tried
    (``no_default`` says why there is no default location)."""
    for source, value in ((None, given), (env, os.environ.get(env) or None)):
        if value is None:
            continue
        path = Path(value).expanduser()
        path = path / file if path.is_dir() else path
        if path.is_file():
            return path
        raise WeightsNotFound(f"{path} does not exist"
                              + (f" (from ${source})" if source else ""))
    if default is not None and default.is_file():
        return default
    raise WeightsNotFound(f"not found in {default}" if default else no_default)


def find_backbone_weights(backbone: str = "alex", path: str | Path | None = None) -> Path:
    """torchvision's ImageNet weights file of ``backbone`` ("alex" or "vgg").

    Looks at ``path``, then ``$PIXCOLOR_LPIPS_BACKBONE_WEIGHTS``, then torch hub's cache;
    a folder stands for the file of that name inside it.

    Raises:
        WeightsNotFound: with the file's name, its download URL and where it was looked for.
    """
    spec = _backbone(backbone)
    try:
        return _locate(path, ENV_BACKBONE, spec.file, hub_checkpoints_dir() / spec.file)
    except WeightsNotFound as e:
        raise WeightsNotFound(
            f"LPIPS {backbone} backbone weights: {e}. Expected torchvision's ImageNet file "
            f"{spec.file} ({spec.url}); nothing is downloaded: fetch it on a machine with "
            f"internet access into {hub_checkpoints_dir()}, or pass its path (or set "
            f"{ENV_BACKBONE})") from None


def _lpips_package_dir() -> Path | None:
    """The installed ``lpips`` package's folder, found without importing it."""
    spec = importlib.util.find_spec("lpips")  # a top-level name: nothing is executed
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_heads(backbone: str = "alex", path: str | Path | None = None) -> Path:
    """The LPIPS v0.1 linear heads of ``backbone`` (``alex.pth`` or ``vgg.pth``).

    Looks at ``path``, then ``$PIXCOLOR_LPIPS_HEADS``, then the installed ``lpips`` wheel's
    ``weights/v0.1/`` (the package is not imported); a folder stands for the file inside it.

    Raises:
        WeightsNotFound: with the file's name, its URL and where it was looked for.
    """
    file = f"{_backbone(backbone).name}.pth"
    package = _lpips_package_dir()
    default = package / "weights" / "v0.1" / file if package else None
    try:
        return _locate(path, ENV_HEADS, file, default, "the lpips package is not installed")
    except WeightsNotFound as e:
        raise WeightsNotFound(
            f"LPIPS v0.1 {backbone} heads: {e}. Expected {file} ({HEADS_URL}{file}; it "
            f"ships in the lpips wheel as lpips/weights/v0.1/{file}); nothing is downloaded: "
            f"`pip install --no-deps lpips==0.1.4` (its torchvision requirement would replace "
            f"the CPU torch), or pass its path (or set {ENV_HEADS})") from None


def _read(path: Path) -> dict:
    """The state dict in ``path`` (the project's reader of third-party weight files, loaded
    here so that importing this module does not load torch)."""
    from pixcolor.checkpoint import read_weights

    return read_weights(path, error=WeightsError)


def _convs(spec: Backbone, path: Path) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """The backbone's convolutions by torchvision index, checked to chain into the taps."""
    state, convs, in_ch, taps = _read(path), {}, 3, []
    for layer in spec.layers:
        if layer[0] == "tap":
            taps.append(in_ch)
        if layer[0] != "conv":
            continue
        w, b = (state.get(f"features.{layer[1]}.{k}") for k in ("weight", "bias"))
        if w is None or b is None or w.ndim != 4 or w.shape[1] != in_ch or b.shape != w.shape[:1]:
            raise WeightsError(f"{path}: no torchvision {spec.file} convolution "
                               f"features.{layer[1]} taking {in_ch} channels: not the "
                               f"{spec.name} backbone's weights")
        convs[layer[1]] = (w.float(), b.float())
        in_ch = w.shape[0]
    if tuple(taps) != spec.channels:
        raise WeightsError(f"{path}: taps of {taps} channels, expected {list(spec.channels)}")
    return convs


def _heads(spec: Backbone, path: Path) -> list[torch.Tensor]:
    state = _read(path)
    heads = [state.get(f"lin{k}.model.1.weight") for k in range(len(spec.channels))]
    for k, (w, ch) in enumerate(zip(heads, spec.channels, strict=True)):
        if w is None or tuple(w.shape) != (1, ch, 1, 1):
            raise WeightsError(f"{path}: lin{k}.model.1.weight should be (1, {ch}, 1, 1): "
                               f"not LPIPS {spec.name} heads")
    return [w.float() for w in heads]


@dataclass
class LPIPSModel:
    """LPIPS with loaded weights (build it with :func:`load_lpips`)."""

    backbone: Backbone
    convs: dict  # torchvision index -> (weight, bias) float32 tensors
    heads: list  # five (1, C, 1, 1) float32 tensors
    device: str = "cpu"

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five taps of scaled (N, 3, H, W) float32 input, as lpips's ``net`` gives."""
        import torch.nn.functional as F

        taps = []
        for layer in self.backbone.layers:
            if layer[0] == "conv":
                w, b = self.convs[layer[1]]
                x = F.relu(F.conv2d(x, w, b, stride=layer[2], padding=layer[3]))
            elif layer[0] == "pool":
                x = F.max_pool2d(x, layer[1], layer[2])
            else:
                taps.append(x)
        return taps

    def distance(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """LPIPS of (N, 3, H, W) float32 images in [-1, 1]: an (N,) float32 tensor >= 0."""
        import torch
        import torch.nn.functional as F

        side = min(x0.shape[-2:])
        if side < self.backbone.min_size:
            raise ValueError(f"LPIPS {self.backbone.name} needs images of at least "
                             f"{self.backbone.min_size} px a side, got {tuple(x0.shape[-2:])}")
        shift = torch.tensor(SHIFT, device=x0.device)[None, :, None, None]
        scale = torch.tensor(SCALE, device=x0.device)[None, :, None, None]
        taps = self.features((torch.cat([x0, x1]) - shift) / scale)
        total = 0
        for f, head in zip(taps, self.heads, strict=True):
            f = f / (torch.sqrt(torch.sum(f**2, dim=1, keepdim=True)) + EPS)
            f0, f1 = f.chunk(2)
            total = total + F.conv2d((f0 - f1) ** 2, head).mean([2, 3], keepdim=True)
        return total.flatten()

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """LPIPS of one (H, W, 3) uint8 RGB pair (the metric functions' signature)."""
        return float(lpips_per_image([pred], [gt], self)[0])


def load_lpips(backbone: str = "alex", *, backbone_weights: str | Path | None = None,
               heads: str | Path | None = None, device: str = "cpu") -> LPIPSModel:
    """LPIPS v0.1 with ``backbone`` "alex" (the default, as lpips's) or "vgg".

    Args:
        backbone: "alex" or "vgg".
        backbone_weights, heads: files (or folders holding them); None looks them up (see
            :func:`find_backbone_weights`, :func:`find_heads`).
        device: torch device of the weights and the computation.

    Raises:
        WeightsNotFound: a file is missing (the message says which file and its URL).
        WeightsError: a file is unreadable or holds another network.
    """
    spec = _backbone(backbone)
    convs = _convs(spec, find_backbone_weights(backbone, backbone_weights))
    head_list = _heads(spec, find_heads(backbone, heads))
    convs = {i: (w.to(device), b.to(device)) for i, (w, b) in convs.items()}
    return LPIPSModel(spec, convs, [w.to(device) for w in head_list], device)


def _to_tensor(images: list[np.ndarray], device: str) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1], rounded as lpips.im2tensor
    (in float64, then to float32)."""
    import torch

    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).double() / 127.5 - 1.0
    return x.float().to(device)


def lpips_per_image(outputs: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                    model: LPIPSModel | None = None, *, backbone: str = "alex",
                    batch_size: int = 16) -> np.ndarray:
    """LPIPS of each (output, truth) pair, batched by image size.

    Args:
        outputs, truths: equally long sequences of (H, W, 3) uint8 RGB arrays; the two of a
            pair have the same shape, pairs may differ.
        model: loaded weights; None loads ``backbone`` with :func:`load_lpips`'s defaults.
        backbone: "alex" or "vgg" when ``model`` is None.
        batch_size: pairs per forward pass (the result does not depend on it).

    Returns:
        (N,) float64, LPIPS >= 0 per pair (0 for identical images; lower is closer).
    """
    if len(outputs) != len(truths):
        raise ValueError(f"{len(outputs)} outputs but {len(truths)} truths")
    model = model or load_lpips(backbone)
    by_shape: dict[tuple, list[int]] = {}
    for i, (a, b) in enumerate(zip(outputs, truths, strict=True)):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != np.uint8 or b.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != 3:
            raise ValueError(f"pair {i}: expected (H, W, 3) uint8 RGB, got {a.dtype} "
                             f"{a.shape} and {b.dtype} {b.shape}")
        if a.shape != b.shape:
            raise ValueError(f"pair {i}: output {a.shape} and truth {b.shape} differ in shape")
        by_shape.setdefault(a.shape, []).append(i)
    import torch

    result = np.zeros(len(outputs), np.float64)
    with torch.inference_mode():
        for indices in by_shape.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                x0 = _to_tensor([np.asarray(outputs[i]) for i in chunk], model.device)
                x1 = _to_tensor([np.asarray(truths[i]) for i in chunk], model.device)
                result[chunk] = model.distance(x0, x1).cpu().double().numpy()
    return result
