"""LTBC: "Let there be Color!" (Iizuka, Simo-Serra and Ishikawa, SIGGRAPH 2016).

Four networks (paper Fig. 2, Table 1): a shared low-level feature network, a mid-level
network on the full-resolution path, a global network on a fixed-size (224x224) rescaled
copy whose 256-d vector is fused into every mid-level location (fusion layer,
``sigma(b + W [global; mid])``), and a colorization network with two 2x upsamplings that
outputs ab at half the input resolution through a sigmoid. All convolutions are 3x3 with
batch normalisation and ReLU. The loss is the MSE on ab normalised to [0, 1]
(``(ab / 110 + 1) / 2``; the paper normalises Lab chroma to [0, 1]) plus, for images with
a class label (``label >= 0``), ``alpha`` times the cross-entropy of a classification
network on the global features (Eq. 4, alpha = 1/300).

Channel widths are multiples of ``width`` (64 gives Table 1 exactly); the local path runs at
the image's own size (rounded to multiples of 8, longer side capped at ``max_side``) and
the global path always at ``global_size``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import BaselineModel, register_baseline
from baselines.lab import AB_NORM, lab_from_batch
from pixcolor import color
from pixcolor.config import Preset, TrainConfig
from pixcolor.stages import Stage, register_stage


@dataclass(frozen=True)
class LTBCConfig:
    """Architecture of LTBC (Table 1 with width 64) and its loss weight."""

    width: int = 64  # base width w: low 1,2,2,4,4,8 w; mid 8,4 w; global 8 w, FC 16,8,4 w
    global_size: int = 224  # side of the global path's input (multiple of 32)
    max_side: int = 512  # the local path runs at most at this longer side
    num_classes: int = 0  # classification branch outputs (0 = none; ImageNet folders: 1000)
    alpha: float = 1.0 / 300.0  # weight of the classification loss (Sec. 3.5)


PRESETS: dict[str, Preset[LTBCConfig]] = {
    # Iizuka et al.: 224x224 inputs, batch 128, ADADELTA, ~200k iterations; we keep Adam
    # (the shared trainer's optimiser) at a typical learning rate.
    "paper": Preset(LTBCConfig(num_classes=1000), TrainConfig(
        steps=200_000, batch_size=128, lr=1e-4, image_size=224, cond_grad_start=0,
        ckpt_every=5000)),
    # CPU demo: width 16 (a quarter of every layer); PixColor's small budget.
    "small": Preset(LTBCConfig(width=16, global_size=128, max_side=256,
                                       num_classes=1000), TrainConfig(
        steps=20_000, batch_size=16, lr=1e-3, warmup_steps=200, grad_clip=1.0,
        image_size=112, cond_grad_start=0, ckpt_every=250, log_every=25, num_workers=1)),
    "tiny": Preset(LTBCConfig(width=8, global_size=32, max_side=64, num_classes=3),
                           TrainConfig(steps=40, batch_size=4, lr=1e-2, image_size=32,
                                       cond_grad_start=0, ckpt_every=10, log_every=1,
                                       num_workers=0)),
}


def _conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU(True)]


@register_baseline("ltbc")
class LTBC(BaselineModel):
    """Low-level, mid-level, global, fusion, colorization and classification networks."""

    config_cls = LTBCConfig
    presets = PRESETS

    def __init__(self, cfg: LTBCConfig, preset: str = "custom") -> None:
        super().__init__(cfg, preset)
        if cfg.global_size % 32:
            raise ValueError(f"global_size must be a multiple of 32, got {cfg.global_size}")
        w = cfg.width
        self.low = nn.Sequential(*_conv(1, w, 2), *_conv(w, 2 * w), *_conv(2 * w, 2 * w, 2),
                                 *_conv(2 * w, 4 * w), *_conv(4 * w, 4 * w, 2),
                                 *_conv(4 * w, 8 * w))
        self.mid = nn.Sequential(*_conv(8 * w, 8 * w), *_conv(8 * w, 4 * w))
        self.glob_conv = nn.Sequential(*_conv(8 * w, 8 * w, 2), *_conv(8 * w, 8 * w),
                                       *_conv(8 * w, 8 * w, 2), *_conv(8 * w, 8 * w))
        side = cfg.global_size // 32
        self.glob_fc = nn.Sequential(
            nn.Flatten(), nn.Linear(8 * w * side * side, 16 * w), nn.BatchNorm1d(16 * w),
            nn.ReLU(True), nn.Linear(16 * w, 8 * w), nn.BatchNorm1d(8 * w), nn.ReLU(True))
        self.glob_out = nn.Sequential(nn.Linear(8 * w, 4 * w), nn.BatchNorm1d(4 * w),
                                      nn.ReLU(True))
        self.fusion = nn.Conv2d(8 * w, 4 * w, 1)
        self.colorize_net = nn.Sequential(
            *_conv(4 * w, 2 * w), nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(2 * w, w), *_conv(w, w), nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(w, w // 2), nn.Conv2d(w // 2, 2, 3, 1, 1), nn.Sigmoid())
        self.classify = (nn.Sequential(nn.Linear(8 * w, 4 * w), nn.BatchNorm1d(4 * w),
                                       nn.ReLU(True), nn.Linear(4 * w, cfg.num_classes))
                         if cfg.num_classes > 0 else None)

    def forward(self, lightness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, 1, H, W) L in [0, 100], H and W multiples of 8.

        Returns:
            ab in [0, 1] (normalised), (N, 2, H/2, W/2); class logits (N, num_classes) or
            None.
        """
        x = lightness / 100.0
        g_in = x
        if tuple(x.shape[-2:]) != (self.cfg.global_size,) * 2:
            g_in = color.resize(x, (self.cfg.global_size,) * 2, antialias=True)
        g512 = self.glob_fc(self.glob_conv(self.low(g_in)))
        mid = self.mid(self.low(x))
        g = self.glob_out(g512)[..., None, None].expand(-1, -1, *mid.shape[-2:])
        fused = torch.sigmoid(self.fusion(torch.cat([g, mid], 1)))
        logits = self.classify(g512) if self.classify is not None else None
        return self.colorize_net(fused), logits

    def work_size(self, height: int, width: int) -> tuple[int, int]:
        s = min(1.0, self.cfg.max_side / max(height, width))
        return (max(8, round(height * s / 8) * 8), max(8, round(width * s / 8) * 8))

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        out, _ = self(lightness)
        ab = (out * 2 - 1) * AB_NORM
        return F.interpolate(ab, scale_factor=2, mode="bilinear", align_corners=False)


@register_stage("ltbc")
class LTBCStage(Stage):
    """MSE on normalised ab + alpha * classification cross-entropy (Eq. 4)."""

    config_cls = LTBCConfig
    model_cls = LTBC

    @classmethod
    def prepare_config(cls, model_config: LTBCConfig, dataset, *, out, overrides, options
                       ) -> LTBCConfig:
        """The classification branch gets one output per class folder of the data (none for
        a flat folder) unless ``num_classes`` was set."""
        if "num_classes" in overrides:
            return model_config
        return dataclasses.replace(model_config, num_classes=len(dataset.classes))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        lightness, ab = lab_from_batch(batch)
        out, logits = self.model(lightness)
        target = color.resize((ab / AB_NORM + 1) / 2, tuple(out.shape[-2:]), antialias=True)
        loss = F.mse_loss(out.float(), target)
        labels = batch["label"]
        if logits is not None and bool((labels >= 0).any()):
            keep = labels >= 0
            ce = F.cross_entropy(logits[keep].float(), labels[keep])
            loss = loss + self.model_config.alpha * ce
        elif logits is not None:  # keep every parameter in the graph (DDP)
            loss = loss + 0.0 * logits.sum()
        return loss


__all__ = ["LTBC", "LTBCConfig", "LTBCStage", "PRESETS"]
