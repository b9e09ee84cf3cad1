"""LRAC: "Learning Representations for Automatic Colorization" (Larsson, Maire and
Shakhnarovich, ECCV 2016).

A VGG-16 network over the lightness (fully convolutional, ``fc6``/``fc7`` as convolutions)
feeds a hypercolumn (Sec. 3.1: ``conv1_1``, ``conv2_2``, ``conv3_3``, ``conv4_3``,
``conv5_3``, ``fc6``, ``fc7``), read at each pixel by bilinear interpolation, into one hidden
layer (1024 units) that predicts per-pixel histograms of hue and chroma of Lab's LCh (32
bins each, the paper's histogram variant). Loss (Sec. 3.2):
``KL(chroma) + lambda_H * chroma * KL(hue)`` with one-hot ground-truth histograms (so KL is
the cross-entropy), the hue term weighted by the pixel's chroma (hue is ill-defined for
grey) and lambda_H = 5. Decoding (Sec. 3.3): the median of the chroma histogram and the
circular expectation of the hue histogram.

Sparse training (Sec. 3.4): each training image contributes ``train_pixels`` randomly
placed pixels (128), so the hypercolumn is only formed there. Because the hidden layer is
linear in the hypercolumn and bilinear interpolation is linear, ``W [up(f1); up(f2); ...] =
sum_l up(W_l f_l)``: the first layer is stored per tap (``hyper.<tap>``) and each tap is
projected at its own resolution before it is sampled (training) or upsampled (inference),
which gives the same values as the concatenated hypercolumn at a fraction of the memory.
The pixel positions come from torch's global generator, which the trainer seeds and stores
in checkpoints (exact resume).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import BaselineModel, register_baseline
from baselines.lab import L_CENT, L_NORM, lab_from_batch
from pixcolor.checkpoint import read_weights
from pixcolor.config import Preset, TrainConfig
from pixcolor.stages import Stage, register_stage

TAPS = ("conv1_1", "conv2_2", "conv3_3", "conv4_3", "conv5_3", "fc6", "fc7")


@dataclass(frozen=True)
class LRACConfig:
    """Architecture of LRAC (VGG-16 with ``width`` 64 and ``fc_width`` 4096 is the paper's)."""

    width: int = 64  # conv blocks have width x (1, 2, 4, 8, 8) maps, (2, 2, 3, 3, 3) convs
    fc_width: int = 4096  # fc6 and fc7 maps
    fc6_kernel: int = 7  # fc6 as a 7x7 convolution on pool5 (VGG-16)
    hidden: int = 1024  # hidden layer on the hypercolumn
    bins: int = 32  # hue and chroma histogram bins
    chroma_max: float = 130.0  # chroma range [0, chroma_max) of the histogram (LCh units)
    hue_weight: float = 5.0  # lambda_H
    train_pixels: int = 128  # sampled pixels per training image
    max_side: int = 256  # inference resolution (longer side), rounded to multiples of 32


PRESETS: dict[str, Preset[LRACConfig]] = {
    # Larsson et al.: VGG-16 (ImageNet-initialised in the paper; here from scratch, see the
    # model card), 128 sampled pixels per image, 224x224 crops. Optimiser: Adam.
    "paper": Preset(LRACConfig(), TrainConfig(
        steps=200_000, batch_size=32, lr=3e-5, image_size=224, cond_grad_start=0,
        ckpt_every=5000)),
    # CPU demo: a quarter of every width, fc 256 (3x3 fc6), hidden 128; PixColor's budget.
    "small": Preset(LRACConfig(width=16, fc_width=256, fc6_kernel=3, hidden=128,
                                       max_side=256), TrainConfig(
        steps=20_000, batch_size=16, lr=1e-3, warmup_steps=200, grad_clip=1.0,
        image_size=112, cond_grad_start=0, ckpt_every=250, log_every=25, num_workers=1)),
    "tiny": Preset(LRACConfig(width=4, fc_width=16, fc6_kernel=3, hidden=32,
                                      train_pixels=256, max_side=64), TrainConfig(
        steps=40, batch_size=4, lr=1e-2, image_size=32, cond_grad_start=0, ckpt_every=10,
        log_every=1, num_workers=0)),
}


@register_baseline("lrac")
class LRAC(BaselineModel):
    """VGG-16 on L, hypercolumn, hidden layer, hue and chroma histograms."""

    config_cls = LRACConfig
    presets = PRESETS

    def __init__(self, cfg: LRACConfig, preset: str = "custom") -> None:
        super().__init__(cfg, preset)
        w = cfg.width
        widths, convs = (w, 2 * w, 4 * w, 8 * w, 8 * w), (2, 2, 3, 3, 3)
        cin, chans = 1, {}
        for b, (c, n) in enumerate(zip(widths, convs, strict=True), start=1):
            layers: list[nn.Module] = []
            for _ in range(n):
                layers += [nn.Conv2d(cin, c, 3, 1, 1), nn.ReLU(True)]
                cin = c
            setattr(self, f"block{b}", nn.Sequential(*layers))
            chans[f"conv{b}_{n}"] = c
        chans["conv1_1"] = w
        self.fc6 = nn.Conv2d(8 * w, cfg.fc_width, cfg.fc6_kernel, 1, cfg.fc6_kernel // 2)
        self.fc7 = nn.Conv2d(cfg.fc_width, cfg.fc_width, 1)
        chans["fc6"] = chans["fc7"] = cfg.fc_width
        self.hyper = nn.ModuleDict({t: nn.Conv2d(chans[t], cfg.hidden, 1, bias=False)
                                    for t in TAPS})
        self.hyper_bias = nn.Parameter(torch.zeros(cfg.hidden))
        self.head = nn.Conv2d(cfg.hidden, 2 * cfg.bins, 1)  # hue logits, then chroma logits

    def projected_taps(self, lightness: torch.Tensor) -> list[torch.Tensor]:
        """(N, 1, H, W) L (H, W multiples of 32) -> per tap ``W_l f_l`` (N, hidden, h_l, w_l)."""
        x = (lightness - L_CENT) / L_NORM
        feats = {}
        for b in range(1, 6):
            block = getattr(self, f"block{b}")
            if b > 1:
                x = F.max_pool2d(x, 2)
            for i, layer in enumerate(block):
                x = layer(x)
                if b == 1 and i == 1:
                    feats["conv1_1"] = x
            feats[f"conv{b}_{len(block) // 2}"] = x
        x = F.relu(self.fc6(F.max_pool2d(x, 2)))
        feats["fc6"] = x
        feats["fc7"] = F.relu(self.fc7(x))
        return [self.hyper[t](feats[t]) for t in TAPS]

    def head_logits(self, hidden_pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-activation hidden (N, hidden, ...) -> hue, chroma logits (N, bins, ...)."""
        out = self.head(F.relu(hidden_pre + self.hyper_bias.view(1, -1, 1, 1)))
        return out[:, :self.cfg.bins], out[:, self.cfg.bins:]

    def dense_logits(self, lightness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hue and chroma logits at every pixel, (N, bins, H, W) each."""
        size = tuple(lightness.shape[-2:])
        pre = sum(F.interpolate(p, size=size, mode="bilinear", align_corners=False)
                  for p in self.projected_taps(lightness))
        return self.head_logits(pre)

    def sparse_logits(self, lightness: torch.Tensor, points: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits at ``points`` (N, P, 2) (x, y) in [-1, 1] -> (N, bins, P, 1) each."""
        grid = points[:, :, None, :]
        pre = sum(F.grid_sample(p, grid.to(p.dtype), mode="bilinear", padding_mode="border",
                                align_corners=False)  # = F.interpolate's edge clamping
                  for p in self.projected_taps(lightness))
        return self.head_logits(pre)

    def work_size(self, height: int, width: int) -> tuple[int, int]:
        s = min(1.0, self.cfg.max_side / max(height, width))
        return (max(32, round(height * s / 32) * 32), max(32, round(width * s / 32) * 32))

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        out = []
        for one in lightness.split(1):  # one image at a time: (hidden, H, W) maps are large
            hue_logits, chroma_logits = self.dense_logits(one)
            hue = decode_hue(hue_logits)
            chroma = decode_chroma(chroma_logits, self.cfg.chroma_max)
            out.append(torch.stack([chroma * torch.cos(hue), chroma * torch.sin(hue)], 1))
        return torch.cat(out)


def hue_chroma(ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 2, ...) ab -> hue in [0, 2 pi) and chroma >= 0, each (N, ...)."""
    a, b = ab[:, 0], ab[:, 1]
    return torch.remainder(torch.atan2(b, a), 2 * math.pi), torch.hypot(a, b)


def decode_hue(logits: torch.Tensor) -> torch.Tensor:
    """Circular expectation: the angle of ``sum_k p_k exp(i theta_k)`` (bin centres)."""
    k = logits.shape[1]
    theta = (torch.arange(k, device=logits.device) + 0.5) * (2 * math.pi / k)
    p = torch.softmax(logits.float(), 1)
    shape = (1, k) + (1,) * (p.dim() - 2)
    return torch.atan2((p * theta.sin().view(shape)).sum(1), (p * theta.cos().view(shape)).sum(1))


def decode_chroma(logits: torch.Tensor, chroma_max: float) -> torch.Tensor:
    """Median of the chroma histogram, linearly interpolated inside the median bin.

    Args:
        logits: (N, K, ...) chroma logits over K equal bins of [0, chroma_max).

    Returns:
        (N, ...) chroma in [0, chroma_max].
    """
    k = logits.shape[1]
    p = torch.softmax(logits.float(), 1)
    cdf = p.cumsum(1)
    j = (cdf < 0.5).sum(1, keepdim=True).clamp(max=k - 1)
    below = torch.where(j > 0, cdf.gather(1, (j - 1).clamp(min=0)), 0.0)
    frac = ((0.5 - below) / p.gather(1, j).clamp_min(1e-12)).clamp(0, 1)
    return ((j.float() + frac) * (chroma_max / k)).squeeze(1)


@register_stage("lrac")
class LRACStage(Stage):
    """Sparse hue/chroma histogram loss (Sec. 3.2, 3.4)."""

    config_cls = LRACConfig
    model_cls = LRAC

    def init_from(self, path: str) -> dict:
        """Initialise the VGG-16 part from torchvision's ImageNet ``vgg16`` weights (Sec. 4).

        conv1_1 is folded to one input channel: ``x = (L - 50) / 100`` stands for a grey
        RGB value ``x + 0.5``, so the filters are summed over RGB divided by torchvision's
        std, and the bias absorbs the mean. fc6/fc7 become 7x7 and 1x1 convolutions.

        Raises:
            ValueError: the file's shapes do not fit this model (the paper preset takes
                ``vgg16-397923af.pth``).
        """
        cfg = self.model_config
        sd = read_weights(path, error=ValueError)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        tv = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
        ours = [(b, i) for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(0, 2 * n, 2)]
        k, fc, new = cfg.fc6_kernel, cfg.fc_width, {}
        try:
            for t, (b, i) in zip(tv, ours, strict=True):
                w, bias = sd[f"features.{t}.weight"], sd[f"features.{t}.bias"]
                if t == 0:
                    bias = bias + (w * (0.5 - mean) / std).sum((1, 2, 3))
                    w = (w / std).sum(1, keepdim=True)
                new[f"block{b}.{i}.weight"], new[f"block{b}.{i}.bias"] = w, bias
            new["fc6.weight"] = sd["classifier.0.weight"].reshape(fc, 8 * cfg.width, k, k)
            new["fc7.weight"] = sd["classifier.3.weight"].reshape(fc, fc, 1, 1)
            new["fc6.bias"], new["fc7.bias"] = sd["classifier.0.bias"], sd["classifier.3.bias"]
            self.model.load_state_dict(new, strict=False)
        except (RuntimeError, KeyError) as e:
            raise ValueError(f"{path}: not torchvision vgg16 weights for this LRAC "
                             f"(width {cfg.width}, fc {fc}, fc6 {k}x{k}): {e}") from e
        return {"loaded": sorted(new)}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.model_config
        lightness, ab = lab_from_batch(batch)
        n, _, h, w = ab.shape
        points = torch.rand(n, cfg.train_pixels, 2).to(ab.device) * 2 - 1  # (x, y) in [-1, 1)
        hue_logits, chroma_logits = self.model.sparse_logits(lightness, points)
        ab_pts = F.grid_sample(ab, points[:, :, None, :], mode="bilinear",
                               padding_mode="border", align_corners=False)
        hue, chroma = hue_chroma(ab_pts)  # (N, P, 1)
        hue_bin = (hue / (2 * math.pi) * cfg.bins).long().clamp(0, cfg.bins - 1)
        chroma_bin = (chroma / cfg.chroma_max * cfg.bins).long().clamp(0, cfg.bins - 1)
        ce_chroma = F.cross_entropy(chroma_logits.float(), chroma_bin)
        ce_hue = F.cross_entropy(hue_logits.float(), hue_bin, reduction="none")
        weight = (chroma / cfg.chroma_max).clamp(0, 1)
        return ce_chroma + cfg.hue_weight * (weight * ce_hue).mean()


__all__ = ["LRAC", "LRACConfig", "LRACStage", "PRESETS", "decode_chroma", "decode_hue",
           "hue_chroma"]
