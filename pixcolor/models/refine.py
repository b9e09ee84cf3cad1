"""Refinement network: low-resolution chroma + full-resolution Y -> chroma (Sec. 3.2, Table 2).

Table 2 lists the layers but not how they connect; it also says the network is "similar to
[LTBC] but with more layers in the decoding part", with bilinear instead of learned
upsampling. Our reading, which keeps every listed layer and width:

* encoder (LTBC's low-level features): conv 64 /2; conv 128, conv 128 /2; conv 256,
  conv 256 /2; 2 x conv 512 (1/8 resolution);
* mid-level: conv 256;
* global branch from the low-level features: 4 x conv 512 with strides 2, 1, 2, 1, a 5x5
  conv 1024 and a 3x3 conv 512 (1/32 resolution), bilinearly resized to the mid-level map
  and concatenated with it (LTBC's fusion; resizing instead of tiling a vector keeps any
  input size and aspect ratio);
* decoder: 2 x conv 128, bilinear x2, 2 x conv 64, bilinear x2, 2 x conv 32, conv 1x1 to
  2 maps at 1/2 resolution, bilinearly resized to the input size (as LTBC does).

Every conv but the last is followed by batch normalisation and ReLU. The output is added to
the upsampled input chroma (the network predicts a correction to its colour "hints"), and
the loss is L1 against the ground-truth chroma. Widths scale with ``refine_width / 64``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixcolor.config import ModelConfig


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class RefinementNetwork(nn.Module):
    """(N, 1, H, W) Y in [0, 1] + (N, 2, H, W) upsampled chroma -> (N, 2, H, W) chroma."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        s = cfg.refine_width / 64.0

        def w(n: int) -> int:
            return max(2, int(round(n * s)))

        self.low = nn.Sequential(
            conv_bn(3, w(64), stride=2), conv_bn(w(64), w(128)), conv_bn(w(128), w(128), stride=2),
            conv_bn(w(128), w(256)), conv_bn(w(256), w(256), stride=2),
            conv_bn(w(256), w(512)), conv_bn(w(512), w(512)))
        self.mid = conv_bn(w(512), w(256))
        self.glob = nn.Sequential(
            conv_bn(w(512), w(512), stride=2), conv_bn(w(512), w(512)),
            conv_bn(w(512), w(512), stride=2), conv_bn(w(512), w(512)),
            conv_bn(w(512), w(1024), k=5), conv_bn(w(1024), w(512)))
        self.dec1 = nn.Sequential(conv_bn(w(256) + w(512), w(128)), conv_bn(w(128), w(128)))
        self.dec2 = nn.Sequential(conv_bn(w(128), w(64)), conv_bn(w(64), w(64)))
        self.dec3 = nn.Sequential(conv_bn(w(64), w(32)), conv_bn(w(32), w(32)))
        self.out = nn.Conv2d(w(32), 2, 1)

    def forward(self, y: torch.Tensor, chroma_up: torch.Tensor) -> torch.Tensor:
        """Args: y (N, 1, H, W) in [0, 1]; chroma_up (N, 2, H, W) centred in [-0.5, 0.5]."""
        size = y.shape[-2:]
        x = torch.cat([y - 0.5, chroma_up * 2.0], dim=1)
        low = self.low(x)
        mid = self.mid(low)
        glob = F.interpolate(self.glob(low), size=mid.shape[-2:], mode="bilinear",
                             align_corners=False)
        z = self.dec1(torch.cat([mid, glob], dim=1))
        z = F.interpolate(z, scale_factor=2.0, mode="bilinear", align_corners=False)
        z = self.dec2(z)
        z = F.interpolate(z, scale_factor=2.0, mode="bilinear", align_corners=False)
        z = self.out(self.dec3(z))
        z = F.interpolate(z, size=size, mode="bilinear", align_corners=False)
        return chroma_up + z * 0.5

    def loss(self, y: torch.Tensor, chroma_up: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """L1 between the refined and the ground-truth full-resolution chroma."""
        return F.l1_loss(self(y, chroma_up), target)
