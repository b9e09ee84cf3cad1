"""Inception-v3 (Szegedy et al. 2016) as the feature network of FID and KID, in plain torch.

Two variants, one architecture with two sets of pooling rules (``InceptionV3(variant)``):

* ``"fid"``: the TensorFlow graph of Heusel et al. (2017), ``inception-2015-12-05``, as
  ported to PyTorch by pytorch-fid (``pt_inception-2015-12-05-6726825d.pth``) and loaded
  by torch-fidelity (``weights-inception-2015-12-05-6726825d.pth``, same tensors, same
  keys). It differs from torchvision's Inception-v3 in the graph, not only in the weights:
  the 3x3 average pools of Mixed_5b..Mixed_7b leave the zero padding out of the average,
  Mixed_7c pools with a 3x3 *max* pool, and the classifier has 1008 classes. Input: uint8
  RGB, resized to 299x299 with TensorFlow 1.x's bilinear resize (half-pixel offsets *not*
  applied: source coordinate ``x * in / out``, clamped at the last pixel, as in
  torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``), then ``(x - 128) / 128``.
* ``"torchvision"``: ``torchvision.models.inception_v3(weights=IMAGENET1K_V1)``
  (``inception_v3_google-0cc3c7bd.pth``, 1000 classes, auxiliary classifier weights in
  the file), the network DDColor's and CT2's evaluation code uses. Input: uint8 RGB / 255,
  resized with ``F.interpolate(mode="bilinear", align_corners=False)``, ImageNet mean/std
  normalised, then torchvision's ``transform_input`` (on by default for these weights),
  which maps the normalised values back to ``2 x - 1`` per channel.

Both give the 2048-d output of the final average pool ("pool3"), float32.

Weights (never downloaded) are found by :func:`analysis.inception_weights.find_weights`,
re-exported here with :class:`WeightsNotFound`. This module needs torch on import;
:mod:`analysis.fid_features` imports it only when an image's features must be computed.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from analysis.inception_weights import (  # noqa: F401 - re-exported
    VARIANTS,
    Variant,
    WeightsNotFound,
    find_weights,
    get_variant,
    weights_sha256,
)

INPUT_SIZE = 299


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU."""

    def __init__(self, cin: int, cout: int, **conv) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **conv)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _chain(x: torch.Tensor, *layers: nn.Module) -> torch.Tensor:
    """``x`` through ``layers`` in turn."""
    for layer in layers:
        x = layer(x)
    return x


def _avg3(x: torch.Tensor, tf: bool) -> torch.Tensor:
    """3x3 stride-1 average pool; TensorFlow's leaves the padding out of the average."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=not tf)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int, tf: bool) -> None:
        super().__init__()
        self.tf = tf
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            _chain(x, self.branch5x5_1, self.branch5x5_2),
            _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
            self.branch_pool(_avg3(x, self.tf))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
            F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, channels_7x7: int, tf: bool) -> None:
        super().__init__()
        c7 = channels_7x7
        row = dict(kernel_size=(1, 7), padding=(0, 3))
        col = dict(kernel_size=(7, 1), padding=(3, 0))
        self.tf = tf
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, **row)
        self.branch7x7_3 = BasicConv2d(c7, 192, **col)
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, **row)
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, **row)
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            _chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
            _chain(x, self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                   self.branch7x7dbl_4, self.branch7x7dbl_5),
            self.branch_pool(_avg3(x, self.tf))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            _chain(x, self.branch3x3_1, self.branch3x3_2),
            _chain(x, self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3,
                   self.branch7x7x3_4),
            F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """``pool``: "avg" (torchvision), "avg_tf" (TF's Mixed_7b) or "max" (TF's Mixed_7c)."""

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        bd = _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2)
        pooled = (F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.pool == "max"
                  else _avg3(x, self.pool == "avg_tf"))
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(b3), self.branch3x3_2b(b3),
            self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd),
            self.branch_pool(pooled)], 1)


class InceptionAux(nn.Module):
    """torchvision's auxiliary classifier: held only so its weight files load strictly
    (features never pass through it)."""

    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = BasicConv2d(cin, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)
        self.fc = nn.Linear(768, num_classes)


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1.x ``resize_bilinear(align_corners=False)`` of a float (N, C, H, W) batch.

    Output pixel ``i`` reads source coordinate ``i * in / out`` (no half-pixel offset),
    floor and floor + 1 (clamped to the last pixel), linearly weighted. The grid is built
    in float32 and each output value blended in the same order as by torch-fidelity's
    "slow" method (across columns, then across rows), so the result is bit-identical to
    it; each source row is blended across columns once, before the rows are picked.
    """
    (h, w), (oh, ow) = x.shape[-2:], size

    def axis(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = torch.arange(n_out, dtype=x.dtype, device=x.device) * torch.tensor(
            n_in / n_out, dtype=torch.float32)
        lo = pos.long()
        return lo, (lo + 1).clamp_max(n_in - 1), pos - lo.float()

    (ylo, yhi, dy), (xlo, xhi, dx) = axis(h, oh), axis(w, ow)
    left, right = x[..., xlo], x[..., xhi]
    rows = left + (right - left) * dx  # (N, C, H, ow)
    top, bottom = rows[:, :, ylo], rows[:, :, yhi]
    return top + (bottom - top) * dy.view(oh, 1)


_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class InceptionV3(nn.Module):
    """Inception-v3 up to the 2048-d average pool, in one of the :data:`VARIANTS`.

    Parameter names are those of torch-fidelity / pytorch-fid (``"fid"``) and torchvision
    (``"torchvision"``), so their files load with ``strict=True``.
    """

    def __init__(self, variant: str = "fid") -> None:
        super().__init__()
        self.variant = get_variant(variant)
        tf = self.variant.tf_pooling
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, 32, tf)
        self.Mixed_5c = InceptionA(256, 64, tf)
        self.Mixed_5d = InceptionA(288, 64, tf)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128, tf)
        self.Mixed_6c = InceptionC(768, 160, tf)
        self.Mixed_6d = InceptionC(768, 160, tf)
        self.Mixed_6e = InceptionC(768, 192, tf)
        if self.variant.aux_logits:
            self.AuxLogits = InceptionAux(768, self.variant.num_classes)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, "avg_tf" if tf else "avg")
        self.Mixed_7c = InceptionE(2048, "max" if tf else "avg")
        self.fc = nn.Linear(2048, self.variant.num_classes)
        self.weights_sha256: str | None = None  # set by load_inception

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 RGB -> (N, 3, 299, 299) float32, the network's input range."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) uint8 RGB, got {tuple(images.shape)} "
                             f"{images.dtype}")
        x = images.to(torch.float32)
        if self.variant.tf_pooling:
            x = resize_bilinear_tf1(x, (INPUT_SIZE, INPUT_SIZE))
            return (x - 128) / 128
        x = F.interpolate(x / 255, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                          align_corners=False)
        mean = x.new_tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        x = (x - mean) / std
        pairs = enumerate(zip(_IMAGENET_MEAN, _IMAGENET_STD, strict=True))
        return torch.cat([x[:, c:c + 1] * (s / 0.5) + (m - 0.5) / 0.5  # transform_input
                          for c, (m, s) in pairs], 1)

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) preprocessed float32 -> (N, 2048) float32 pool features."""
        x = _chain(x, self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = _chain(x, self.Conv2d_3b_1x1, self.Conv2d_4a_3x3)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = _chain(x, self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                   self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                   self.Mixed_7c)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 RGB -> (N, 2048) float32 pool features."""
        return self.pool_features(self.preprocess(images))


def load_inception(variant: str = "fid", weights: str | os.PathLike | None = None,
                   device: str | torch.device = "cpu") -> InceptionV3:
    """The network of ``variant`` with its weights (see :func:`find_weights`), in eval mode.

    Raises:
        WeightsNotFound: no weights file (nothing is downloaded).
        RuntimeError: the file does not hold this variant's tensors (``strict=True``).
    """
    path = find_weights(variant, weights)
    net = InceptionV3(variant)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    net.weights_sha256 = weights_sha256(path)
    return net.requires_grad_(False).eval().to(device)


@torch.no_grad()
def random_state_dict(variant: str, images: torch.Tensor, seed: int = 0) -> dict:
    """Random weights whose pool features vary between images, for tests and speed runs.

    With default initialisation the batch norms' running statistics (0 and 1) do not fit
    the activations and all 2048 features come out nearly constant. Here convolutions are
    He-initialised and each batch norm's running mean and variance are set to those of
    ``images`` (one forward pass in training mode with a cumulative average).

    Args:
        variant: a :data:`VARIANTS` name.
        images: (N, 3, H, W) uint8 RGB, N >= 2 (a few varied images suffice).
        seed: seeds the initialisation.

    Returns:
        A state dict with the reference file's keys.
    """
    gen = torch.Generator().manual_seed(seed)
    net = InceptionV3(variant)
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average: one batch gives its own statistics
    net.train()(images)
    return net.state_dict()
