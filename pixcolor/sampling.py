"""Sampling the PixelCNN: a naive sampler and a cached one (Ramachandran et al. 2017).

Both draw chroma values in raster order, Cr before Cb inside each pixel, by inverting the
cumulative distribution of the (tempered) softmax at a uniform number that depends only on
the seed, the sample index, the image and the (pixel, channel) position. The two samplers
therefore see the same noise and produce the same samples; only their cost differs:

* ``naive``: one full forward pass of the network per drawn value (2 x h x w passes).
* ``cached``: the conditioning terms are computed once; the vertical stack is computed one
  row at a time once that row is complete; the horizontal stack, the link from the
  vertical stack and the output head are evaluated at the new pixel only, from per-layer
  row buffers of past activations. The work per drawn value is that of one pixel, not of
  the whole image (about 2,000x less compute for the paper's 28x28 PixelCNN).
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
import torch.nn.functional as F

from pixcolor.models.pixelcnn import PixelCNN, bins_to_input, gate


def image_key(y: torch.Tensor) -> int:
    """A stable 32-bit key of one Y plane (its content at 8-bit precision)."""
    q = (y.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return zlib.crc32(q.tobytes()) ^ (q.shape[-2] << 16) ^ q.shape[-1]


def sample_noise(keys: list[int], num_samples: int, seed: int, size: tuple[int, int],
                 device=None, dtype=torch.float32) -> torch.Tensor:
    """Uniform noise (N * S, 2, h, w) in internal (Cr, Cb) order.

    Row ``n * S + s`` depends only on (seed, s, keys[n]), so a sample does not change with
    the batch it is drawn in.
    """
    out = [sample_uniforms(key, seed, s, size) for key in keys for s in range(num_samples)]
    return torch.stack(out).to(device=device, dtype=dtype)


def sample_uniforms(key: int, seed: int, index: int, size: tuple[int, int]) -> torch.Tensor:
    """The uniforms (2, h, w) float64 in [0, 1), internal (Cr, Cb) order, of sample ``index``
    of ``seed`` for the image whose :func:`image_key` is ``key``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, index, key]).generate_state(2)
    g = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
    return torch.rand((2, *size), generator=g, dtype=torch.float64)


def draw(logits: torch.Tensor, u: torch.Tensor,
         temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert the CDF of softmax(logits / T) at ``u``; returns (index, log p(index) at T=1).

    logits: (B, bins); u: (B,) in [0, 1). ``temperature <= 0`` takes the mode.
    """
    logp_all = F.log_softmax(logits, dim=-1)
    if temperature <= 0:
        idx = logits.argmax(-1)
    else:
        cdf = torch.softmax(logits / temperature, dim=-1).cumsum(-1)
        idx = (cdf < u[:, None]).sum(-1).clamp_(max=logits.shape[-1] - 1)
    return idx, logp_all.gather(1, idx[:, None])[:, 0]


@torch.no_grad()
def sample_naive(net: PixelCNN, cond: torch.Tensor, noise: torch.Tensor,
                 temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference sampler: a full forward pass per drawn value.

    Args:
        cond: (B, Dc, h, w) conditioning features, one row per sample.
        noise: (B, 2, h, w) uniforms in internal order (see :func:`sample_noise`).

    Returns:
        bins (B, 2, h, w) int64 in (Cb, Cr) order and their log-likelihood (B,) in nats.
    """
    b, _, hh, ww = cond.shape
    x = torch.zeros(b, 2, hh, ww, dtype=cond.dtype, device=cond.device)
    bins = torch.zeros(b, 2, hh, ww, dtype=torch.long, device=cond.device)
    logp = torch.zeros(b, dtype=torch.float64, device=cond.device)
    nb = net.bins
    for i in range(hh):
        for j in range(ww):
            for c in range(2):
                logits = net.forward_internal(x, cond)[:, c * nb:(c + 1) * nb, i, j]
                idx, lp = draw(logits, noise[:, c, i, j], temperature)
                bins[:, c, i, j] = idx
                x[:, c, i, j] = bins_to_input(idx, nb).to(x.dtype)
                logp += lp.double()
    return bins.flip(1), logp


class _PixelMats:
    """A PixelCNN's masked weights as matrices for evaluating one pixel at a time: the first
    horizontal layer over its window of drawn values (``h0``), each block's horizontal conv
    over its window of activations (``h``), the links from the vertical stack, the blocks'
    output 1x1s and the two head layers, the last split per channel group."""

    def __init__(self, net: PixelCNN):
        c, nb, k0 = net.v0.out_channels, net.bins, net.k0
        blocks = list(net.blocks)
        self.k = k = blocks[0].k if blocks else 1
        m = net.masked()
        kw0, kw = k0 // 2 + 1, k // 2 + 1
        self.h0 = m["h0"][:, :, 0].permute(2, 1, 0).reshape(kw0 * 2, c)  # (kw0*2, C)
        self.link0 = net.link0.weight[:, :, 0, 0].t()
        self.h = [(blk.hconv.weight * blk.hmask)[:, :, 0].permute(2, 1, 0).reshape(kw * c, 2 * c)
                  for blk in blocks]
        self.link = [blk.link.weight[:, :, 0, 0].t() for blk in blocks]
        self.out = [(blk.hout.weight * blk.omask)[:, :, 0, 0].t() for blk in blocks]
        self.head1 = m["head1"][:, :, 0, 0].t()
        w_2, b_2 = m["head2"][:, :, 0, 0].t(), net.head2.bias
        self.head2 = [w_2[:, g * nb:(g + 1) * nb].contiguous() for g in range(2)]
        self.head2_bias = [b_2[g * nb:(g + 1) * nb] for g in range(2)]


def _advance_vertical(net: PixelCNN, xv: torch.Tensor, vpad: list[torch.Tensor],
                      cv: list[torch.Tensor], i: int, k: int, ww: int
                      ) -> tuple[torch.Tensor, list]:
    """Row ``i`` is drawn: run the vertical stack over it. Returns the first layer's output
    and each block's pre-gate vertical output for that row, channel-last (b, w, C), the
    links the horizontal stack of row ``i + 1`` reads."""
    k0 = net.k0
    v0 = F.conv2d(xv[:, :, i:i + k0 // 2 + 1], net.v0.weight, net.v0.bias)  # (b, C, 1, w)
    prev_vc = []
    v = v0
    for n, blk in enumerate(net.blocks):
        vp = vpad[n]
        vp[:, :, i + k // 2, k // 2:k // 2 + ww] = v[:, :, 0]
        vc = F.conv2d(vp[:, :, i:i + k // 2 + 1], blk.vconv.weight, blk.vconv.bias)
        prev_vc.append(vc[:, :, 0].transpose(1, 2).contiguous())
        v = gate(vc + cv[n][:, :, i:i + 1])
    return v0[:, :, 0].transpose(1, 2).contiguous(), prev_vc


@torch.no_grad()
def sample_cached(net: PixelCNN, cond: torch.Tensor, noise: torch.Tensor,
                  temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Incremental sampler with per-layer activation caches; same contract as naive."""
    b, _, hh, ww = cond.shape
    dev, dt, nb, k0 = cond.device, cond.dtype, net.bins, net.k0
    c = net.v0.out_channels
    blocks = list(net.blocks)
    w = _PixelMats(net)
    k = w.k
    kw0, kw = k0 // 2 + 1, k // 2 + 1
    # Conditioning terms, once per image: channel-last for the horizontal stack.
    cv = [blk.vcond(cond) for blk in blocks]
    ch = [blk.hcond(cond).permute(0, 2, 3, 1).contiguous() for blk in blocks]

    # Buffers: input with padding (channel-first for vertical convs, channel-last row
    # windows for the horizontal stack), vertical activations with top/side padding.
    xv = torch.zeros(b, 2, hh + k0 // 2, ww + 2 * (k0 // 2), dtype=dt, device=dev)
    xh = torch.zeros(b, hh, ww + kw0 - 1, 2, dtype=dt, device=dev)
    vpad = [torch.zeros(b, c, hh + k // 2, ww + 2 * (k // 2), dtype=dt, device=dev)
            for _ in range(len(blocks))]
    hrow = [torch.zeros(b, ww + kw - 1, c, dtype=dt, device=dev)
            for _ in range(len(blocks) + 1)]
    prev_v0 = torch.zeros(b, ww, c, dtype=dt, device=dev)  # v0 of the row above
    prev_vc = [torch.zeros(b, ww, 2 * c, dtype=dt, device=dev) for _ in blocks]
    bins = torch.zeros(b, 2, hh, ww, dtype=torch.long, device=dev)
    logp = torch.zeros(b, dtype=torch.float64, device=dev)

    for i in range(hh):
        # Row terms of the horizontal stack: link from the row above plus conditioning.
        rb0 = torch.addmm(net.h0.bias, prev_v0.reshape(-1, c), w.link0).view(b, ww, c)
        rb = [ch[n][:, i] + torch.addmm(blk.hconv.bias, prev_vc[n].reshape(-1, 2 * c),
                                        w.link[n]).view(b, ww, 2 * c)
              for n, blk in enumerate(blocks)]
        for j in range(ww):
            for g in range(2):
                win = xh[:, i, j:j + kw0].reshape(b, kw0 * 2)
                h = torch.addmm(rb0[:, j], win, w.h0)
                hrow[0][:, j + kw - 1] = h
                for n, blk in enumerate(blocks):
                    pre = torch.addmm(rb[n][:, j], hrow[n][:, j:j + kw].reshape(b, kw * c), w.h[n])
                    h = h + torch.addmm(blk.hout.bias, gate(pre), w.out[n])
                    hrow[n + 1][:, j + kw - 1] = h
                z = F.relu(torch.addmm(net.head1.bias, F.relu(h), w.head1))
                logits = torch.addmm(w.head2_bias[g], z, w.head2[g])
                idx, lp = draw(logits, noise[:, g, i, j], temperature)
                bins[:, g, i, j] = idx
                val = bins_to_input(idx, nb).to(dt)
                xh[:, i, j + kw0 - 1, g] = val
                xv[:, g, i + k0 // 2, j + k0 // 2] = val
                logp += lp.double()
        prev_v0, prev_vc = _advance_vertical(net, xv, vpad, cv, i, k, ww)
    return bins.flip(1), logp


SAMPLERS = {"naive": sample_naive, "cached": sample_cached}


def sample(net: PixelCNN, cond: torch.Tensor, noise: torch.Tensor, sampler: str = "cached",
           temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatch to a sampler by name (``"cached"`` or ``"naive"``)."""
    try:
        fn = SAMPLERS[sampler]
    except KeyError:
        raise ValueError(f"unknown sampler {sampler!r}; choose 'cached' or 'naive'") from None
    return fn(net, cond, noise, temperature)
