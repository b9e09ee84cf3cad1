"""Conditioning network: ResNet-101 bottleneck stages plus adaptation network (Table 2).

Parameter names follow torchvision's ``ResNet`` (``conv1``, ``bn1``, ``layer1.0.conv1`` ...)
so that a user's local torchvision ``resnet101`` ImageNet checkpoint or the ``backbone.*``
part of a ``deeplabv3_resnet101`` COCO checkpoint (the paper pre-trains on COCO
segmentation) loads with :func:`load_backbone_weights`.

Table 2 lists the stem (7x7/2), 3 blocks 64/256 with strides 2,1,1, 4 blocks 128/512 with
strides 2,1,1,1 and 23 blocks 256/1024 at stride 1: a 224x224 input gives 28x28 features.
We put the first stage's stride in its first block, as the table does, instead of
torchvision's max-pool (same parameters, so the weights load either way), and run layer3
with dilation 2 as DeepLab does at output stride 8.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from pixcolor.checkpoint import read_weights
from pixcolor.config import ModelConfig

log = logging.getLogger(__name__)


class Bottleneck(nn.Module):
    """torchvision-compatible bottleneck block (expansion 4, stride on the 3x3 conv)."""

    expansion = 4  # output planes per ``planes`` (the 1x1 conv3 widens 4x)

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        out_planes = planes * self.expansion
        self.conv3 = nn.Conv2d(width, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out_planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out_planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class GradMultiplier(torch.autograd.Function):
    """Identity forward, gradient scaled by ``scale`` backward (Table 2 "Gradient Multiplier")."""

    @staticmethod
    def forward(ctx, x, scale: float):  # noqa: D102
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        return grad * ctx.scale, None


class ConditioningNetwork(nn.Module):
    """ResNet stages (torchvision names) then the adaptation network.

    Input (N, 1, H, W) Y in [0, 1] (replicated to 3 channels and normalised with the
    ImageNet statistics torchvision weights expect); output (N, adapt_channels,
    H / cond_stride, W / cond_stride).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.cond_width
        self.conv1 = nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = w
        dil = (1, 1, cfg.cond_layer3_dilation)
        for i, (n, s) in enumerate(zip(cfg.cond_blocks, cfg.cond_strides, strict=True)):
            setattr(self, f"layer{i + 1}", self._make_layer(w * 2**i, n, s, dil[i]))
        a = cfg.adapt_channels
        # Zero-initialised by PixColor (after its weight init), so adding it to a trained
        # model changes nothing until it trains.
        self.global_fc = nn.Linear(self.inplanes, self.inplanes) if cfg.cond_global else None
        self.adapt = nn.Sequential(
            nn.Conv2d(self.inplanes, a, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(a, a, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(a, a, 3, padding=1),
        )
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
                             persistent=False)
        self.grad_scale = 1.0  # set by the trainer from the schedule

    def _make_layer(self, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
        layers = [Bottleneck(self.inplanes, planes, stride, dilation if stride == 1 else 1)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes, 1, dilation) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def backbone(self, y: torch.Tensor) -> torch.Tensor:
        x = (y.expand(-1, 3, -1, -1) - self.mean) / self.std
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(y)
        if self.training and self.grad_scale != 1.0:
            if self.grad_scale == 0.0:
                feats = feats.detach()
            else:
                feats = GradMultiplier.apply(feats, self.grad_scale)
        if self.global_fc is not None:
            feats = feats + self.global_fc(feats.mean(dim=(2, 3)))[:, :, None, None]
        return self.adapt(feats)


class WeightLoadError(ValueError):
    """A pretrained weights file does not fit the conditioning network."""


def load_backbone_weights(net: ConditioningNetwork, path: str | Path) -> dict[str, list[str]]:
    """Load torchvision ResNet or DeepLabV3 (``backbone.*``) weights into ``net``.

    Keys of parts PixColor does not use (``layer4``, ``fc``, ``classifier``,
    ``aux_classifier``) are ignored and reported. A shape mismatch, or a file without a
    single matching key, raises :class:`WeightLoadError` naming the file and the keys.

    Returns:
        ``{"loaded": [...], "missing": [...], "ignored": [...]}`` key lists.
    """
    path = Path(path)
    sd = read_weights(path, error=WeightLoadError)
    if "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if any(k.startswith("backbone.") for k in sd):
        sd = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    # the adaptation network and the global branch are PixColor's own: never in the file
    own = {k: v for k, v in net.state_dict().items()
           if not k.startswith(("adapt.", "global_fc."))}
    loaded, ignored, bad = [], [], []
    for k, v in sd.items():
        if k not in own:
            ignored.append(k)
        elif tuple(own[k].shape) != tuple(v.shape):
            bad.append(f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}")
        else:
            loaded.append(k)
    if bad:
        raise WeightLoadError(
            f"{path}: {len(bad)} tensors have the wrong shape for this preset's "
            f"conditioning network (use --preset paper for ResNet-101 weights): "
            + "; ".join(bad[:5]))
    if not loaded:
        raise WeightLoadError(
            f"{path}: no key matches a torchvision ResNet (expected e.g. 'conv1.weight' or "
            f"'backbone.conv1.weight'; found e.g. {list(sd)[:3]})")
    missing = sorted(set(own) - set(loaded))
    net.load_state_dict({k: sd[k] for k in loaded}, strict=False)
    if missing:
        log.warning("%s: %d conditioning-network tensors not in the file: %s", path,
                    len(missing), missing[:5])
    if ignored:
        log.info("%s: ignored %d keys PixColor does not use (e.g. %s)", path, len(ignored),
                 ignored[:3])
    return {"loaded": loaded, "missing": missing, "ignored": ignored}
