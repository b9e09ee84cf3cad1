"""Gated conditional PixelCNN over low-resolution chroma bins (paper Sec. 3.1, Table 2).

Layers (Table 2): a masked 7x7 convolution with 64 maps, 10 gated blocks of 5x5 with 64
maps, a masked 1x1 convolution to 1024 maps and a masked 1x1 convolution to 2 x 32 logits.
Each layer has a vertical stack (rows strictly above, through a one-row shift) and a
horizontal stack (the current row up to the current pixel), so there is no blind spot
(van den Oord et al. 2016). The conditioning features enter every gated block through
1x1 convolutions, in both stacks.

Within a pixel Cr is predicted before Cb, p(y|x) = prod_i p(Cr_i | y_<i, x) p(Cb_i | Cr_i,
y_<i, x): every feature map of the horizontal stack is split into two channel groups
(group 0 for Cr, group 1 for Cb); at the current pixel a type-A mask lets group g see the
input channels of groups < g, and type-B masks let group g see groups <= g.

Internally the chroma channels run in prediction order (Cr, Cb); the public methods take
and return the project's (Cb, Cr) order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixcolor.config import ModelConfig


def channel_groups(n: int, groups: int = 2, pregate: bool = False) -> torch.Tensor:
    """Group of each of ``n`` channels; for pre-gate tensors both halves share the grouping."""
    if pregate:
        half = torch.arange(n // 2) * groups // (n // 2)
        return torch.cat([half, half])
    return torch.arange(n) * groups // n


def group_mask(out_groups: torch.Tensor, in_groups: torch.Tensor, kind: str) -> torch.Tensor:
    """(out, in) float mask: type 'A' sees strictly earlier groups, 'B' also its own."""
    o, i = out_groups[:, None], in_groups[None, :]
    return ((i < o) if kind == "A" else (i <= o)).float()


def gate(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Gated activation tanh(a) * sigmoid(b) over the two halves of ``dim``."""
    a, b = x.chunk(2, dim=dim)
    return torch.tanh(a) * torch.sigmoid(b)


def bins_to_input(bins: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Bin indices to the network's input values: bin centres scaled to [-1, 1]."""
    return (bins.float() + 0.5) * (2.0 / num_bins) - 1.0


class GatedBlock(nn.Module):
    """One gated block: vertical (k//2+1) x k conv, horizontal 1 x (k//2+1) masked conv."""

    def __init__(self, c: int, cond: int, k: int):
        super().__init__()
        self.k = k
        self.vconv = nn.Conv2d(c, 2 * c, (k // 2 + 1, k))
        self.vcond = nn.Conv2d(cond, 2 * c, 1, bias=False)
        self.hconv = nn.Conv2d(c, 2 * c, (1, k // 2 + 1))
        self.link = nn.Conv2d(2 * c, 2 * c, 1, bias=False)
        self.hcond = nn.Conv2d(cond, 2 * c, 1, bias=False)
        self.hout = nn.Conv2d(c, c, 1)
        pre, hid = channel_groups(2 * c, pregate=True), channel_groups(c)
        hmask = torch.ones_like(self.hconv.weight)
        hmask[:, :, 0, -1] = group_mask(pre, hid, "B")  # centre pixel only
        self.register_buffer("hmask", hmask, persistent=False)
        self.register_buffer("omask", group_mask(hid, hid, "B")[:, :, None, None],
                             persistent=False)

    def forward(self, v, h, cond):
        k = self.k
        vc = self.vconv(F.pad(v, (k // 2, k // 2, k // 2, 0)))
        v_new = gate(vc + self.vcond(cond))
        shifted = F.pad(vc, (0, 0, 1, 0))[:, :, :-1]
        hpre = F.conv2d(F.pad(h, (k // 2, 0, 0, 0)), self.hconv.weight * self.hmask,
                        self.hconv.bias)
        hpre = hpre + self.link(shifted) + self.hcond(cond)
        h_new = h + F.conv2d(gate(hpre), self.hout.weight * self.omask, self.hout.bias)
        return v_new, h_new


class PixelCNN(nn.Module):
    """Gated conditional PixelCNN producing (N, 2, bins, h, w) logits from chroma bins."""

    def __init__(self, cfg: ModelConfig, cond_channels: int):
        super().__init__()
        c, k0, nb = cfg.pcnn_channels, cfg.pcnn_first_kernel, cfg.bins
        if c % 2 or cfg.pcnn_head_channels % 2:
            raise ValueError("PixelCNN channel counts must be even (two colour groups)")
        self.bins, self.k0 = nb, k0
        self.v0 = nn.Conv2d(2, c, (k0 // 2 + 1, k0))
        self.h0 = nn.Conv2d(2, c, (1, k0 // 2 + 1))
        self.link0 = nn.Conv2d(c, c, 1, bias=False)
        self.blocks = nn.ModuleList(
            GatedBlock(c, cond_channels, cfg.pcnn_kernel) for _ in range(cfg.pcnn_blocks))
        self.head1 = nn.Conv2d(c, cfg.pcnn_head_channels, 1)
        self.head2 = nn.Conv2d(cfg.pcnn_head_channels, 2 * nb, 1)
        hid, inp = channel_groups(c), torch.arange(2)
        head, out = channel_groups(cfg.pcnn_head_channels), torch.arange(2 * nb) // nb
        h0mask = torch.ones_like(self.h0.weight)
        h0mask[:, :, 0, -1] = group_mask(hid, inp, "A")
        self.register_buffer("h0mask", h0mask, persistent=False)
        self.register_buffer("head1mask", group_mask(head, hid, "B")[:, :, None, None],
                             persistent=False)
        self.register_buffer("head2mask", group_mask(out, head, "B")[:, :, None, None],
                             persistent=False)

    # -- weights with masks applied (shared by the forward pass and the cached sampler) --
    def masked(self) -> dict[str, torch.Tensor]:
        return {
            "h0": self.h0.weight * self.h0mask,
            "head1": self.head1.weight * self.head1mask,
            "head2": self.head2.weight * self.head2mask,
        }

    def forward_internal(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x: (N, 2, h, w) input values in internal (Cr, Cb) order -> (N, 2*bins, h, w)."""
        k0, m = self.k0, self.masked()
        v = self.v0(F.pad(x, (k0 // 2, k0 // 2, k0 // 2, 0)))
        h = F.conv2d(F.pad(x, (k0 // 2, 0, 0, 0)), m["h0"], self.h0.bias)
        h = h + self.link0(F.pad(v, (0, 0, 1, 0))[:, :, :-1])
        for block in self.blocks:
            v, h = block(v, h, cond)
        z = F.relu(F.conv2d(F.relu(h), m["head1"], self.head1.bias))
        return F.conv2d(z, m["head2"], self.head2.bias)

    def forward(self, bins: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits.

        Args:
            bins: (N, 2, h, w) int64 in [0, bins), channels (Cb, Cr).
            cond: (N, cond_channels, h, w) conditioning features.

        Returns:
            (N, 2, bins, h, w) logits, channels (Cb, Cr); the Cr logits of a pixel depend
            only on earlier pixels, the Cb logits also on that pixel's Cr.
        """
        x = bins_to_input(bins.flip(1), self.bins).to(self.v0.weight.dtype)
        n, _, hh, ww = x.shape
        out = self.forward_internal(x, cond).view(n, 2, self.bins, hh, ww)
        return out.flip(1)

    def loss(self, bins: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats per chroma value) under teacher forcing."""
        logits = self(bins, cond)
        return F.cross_entropy(logits.transpose(1, 2), bins)
