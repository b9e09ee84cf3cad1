"""CIC: "Colorful Image Colorization" (Zhang, Isola and Efros, ECCV 2016).

A VGG-style network on L predicts, at a quarter of the input resolution, a distribution over
313 quantised ab bins (Sec. 2.1); training uses soft-encoded targets (the 5 nearest bins,
Gaussian sigma 5) and class rebalancing (Sec. 2.2, lambda 0.5, empirical prior smoothed with
sigma 5); decoding is the annealed mean with T = 0.38 (Sec. 2.3).

Module and parameter names are those of the ``eccv16`` generator of richzhang/colorization
(``model1`` ... ``model8`` ``Sequential`` blocks, ``model_out``), so the released
``colorization_release_v2-9b330a0b.pth`` loads with ``baselines.load("cic", path)``. Its
``model_out`` is a fixed 1x1 convolution whose weights are the bin centres / 110; the centres
are read from it, so our bins and the released model's agree in order by construction.

The 313 in-gamut bins (:func:`ab_bins`). A bin is a point of the ab grid with step 10. The
set of ab values some in-gamut sRGB colour has at *some* L is the projection of the sRGB
gamut on the ab plane; its boundary is the image of the RGB cube's surface (every vertical
line through the gamut crosses that surface), so we sample the surface densely, convert it
to Lab with scikit-image and keep the bin centres within 13.5 ab units of it. Strictly in
the gamut are 233 centres; the authors' set is more generous (its a = -90 bins reach
b = 50). The 313th and 314th closest centres lie at 13.25 and 13.73, so the dilation
radius 13.5 reproduces exactly 313 bins with a margin on both sides (tested).

Test time follows the authors' demo: the lightness is resized to ``infer_size`` squared
(256), the ab prediction is upsampled back to the image size and joined with the original L
(:mod:`baselines.base`). The demo resizes the RGB image bicubically before taking L; we
resize L itself (antialiased bilinear), as every baseline here does.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import BaselineCheckpointError, BaselineModel, register_baseline
from baselines.lab import AB_NORM, L_CENT, L_NORM, lab_from_batch
from pixcolor import color
from pixcolor.config import Preset, TrainConfig
from pixcolor.stages import Stage, register_stage

log = logging.getLogger(__name__)

GRID = 10  # ab grid step (Sec. 2.1)
GAMUT_MARGIN = 13.5  # dilation of the sRGB ab gamut that gives the authors' 313 bins
NUM_BINS = 313


@functools.lru_cache(maxsize=1)
def ab_bins() -> np.ndarray:
    """The 313 in-gamut ab bin centres, (313, 2) float32, sorted by (a, b).

    See the module docstring for the rule.
    """
    from scipy.spatial import cKDTree

    v = np.append(np.arange(0, 255, 3), 255) / 255.0
    s, t = np.meshgrid(v, v, indexing="ij")
    faces = []
    for c in range(3):
        others = [k for k in range(3) if k != c]
        for val in (0.0, 1.0):
            f = np.zeros(s.shape + (3,))
            f[..., c], f[..., others[0]], f[..., others[1]] = val, s, t
            faces.append(f.reshape(-1, 3))
    ab = color.rgb_to_lab(np.concatenate(faces)[:, None])[:, 0, 1:]
    g = np.arange(-150, 151, GRID, dtype=np.float64)
    centres = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    dist, _ = cKDTree(ab).query(centres)
    return centres[dist <= GAMUT_MARGIN].astype(np.float32)


def soft_encode(ab: torch.Tensor, bins: torch.Tensor, k: int = 5, sigma: float = 5.0
                ) -> torch.Tensor:
    """Soft-encoded targets (Sec. 2.1): Gaussian weights on the ``k`` nearest bins.

    Args:
        ab: (N, 2, H, W) float ab values.
        bins: (Q, 2) bin centres.
        k: nearest bins that get weight.
        sigma: Gaussian kernel width in ab units.

    Returns:
        (N, Q, H, W) float, non-negative, summing to 1 over Q.
    """
    n, _, h, w = ab.shape
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2).float()
    d2 = torch.cdist(flat, bins.float().to(flat.device)) ** 2
    near, idx = d2.topk(k, dim=1, largest=False)
    wts = torch.softmax(-near / (2 * sigma**2), dim=1)
    z = torch.zeros(flat.shape[0], bins.shape[0], device=ab.device)
    z.scatter_(1, idx, wts)
    return z.view(n, h, w, -1).permute(0, 3, 1, 2)


def rebalance_weights(counts: torch.Tensor, bins: torch.Tensor, lam: float = 0.5,
                      sigma: float = 5.0) -> torch.Tensor:
    """Class-rebalancing weights (Sec. 2.2, Eq. 4).

    ``w ~ ((1 - lam) p~ + lam / Q)^-1`` with ``p~`` the empirical bin distribution smoothed
    by a Gaussian of ``sigma`` in ab space, normalised so that ``sum_q p~_q w_q = 1``.

    Args:
        counts: (Q,) non-negative bin counts (all zero = uniform prior).
        bins: (Q, 2) bin centres.

    Returns:
        (Q,) float32 positive weights.
    """
    q = counts.numel()
    p = counts.double()
    p = p / p.sum() if p.sum() > 0 else torch.full_like(p, 1.0 / q)
    b = bins.double().to(p.device)
    kern = torch.exp(-torch.cdist(b, b) ** 2 / (2 * sigma**2))
    p = (kern @ p) / kern.sum(1)  # Gaussian-weighted local average (uniform stays so)
    p = p / p.sum()
    w = 1.0 / ((1 - lam) * p + lam / q)
    return (w / (p * w).sum()).float()


def annealed_mean(logits: torch.Tensor, bins: torch.Tensor, temperature: float = 0.38
                  ) -> torch.Tensor:
    """Annealed-mean decoding (Sec. 2.3): the mean of ``softmax(log z / T)``.

    Args:
        logits: (N, Q, H, W) unnormalised log-probabilities.
        bins: (Q, 2) bin centres.
        temperature: T; 1 gives the mean, T -> 0 the mode.

    Returns:
        (N, 2, H, W) ab.
    """
    p = torch.softmax(logits.float() / max(temperature, 1e-6), dim=1)
    return torch.einsum("nqhw,qc->nchw", p, bins.float().to(p.device))


@dataclass(frozen=True)
class CICConfig:
    """Architecture and loss of CIC (paper Fig. 2 / the eccv16 generator)."""

    widths: tuple[int, int, int, int] = (64, 128, 256, 512)  # conv1-2, conv2, conv3, conv4-7
    infer_size: int = 256  # L is resized to infer_size^2 at test time (authors' demo)
    temperature: float = 0.38  # annealed mean (Sec. 2.3)
    decode: str = "annealed"  # "annealed" (paper) or "mean" (the PyTorch port's model_out)
    soft_k: int = 5  # soft-encoding: nearest bins (Sec. 2.1)
    soft_sigma: float = 5.0  # soft-encoding Gaussian sigma
    rebalance_lambda: float = 0.5  # Eq. 4
    prior_sigma: float = 5.0  # smoothing of the empirical prior
    # .npy of (313,) bin counts (``python -m baselines train cic`` writes one); "" = count the
    # training batches as they come (under DDP the counts of rank 0, whose buffers DDP
    # broadcasts)
    prior_file: str = ""


PRESETS: dict[str, Preset[CICConfig]] = {
    # Zhang et al.: 176x176 crops, batch 40, Adam lr 3e-5 (betas .9/.99, weight decay 1e-3),
    # 450k iterations (Sec. 3.1 / the released solver).
    "paper": Preset(CICConfig(), TrainConfig(
        steps=450_000, batch_size=40, lr=3e-5, beta2=0.99, weight_decay=1e-3, image_size=176,
        cond_grad_start=0, ckpt_every=5000)),
    # CPU demo: the same 8 blocks at a quarter of the widths; PixColor's small budget.
    "small": Preset(CICConfig(widths=(16, 32, 64, 128), infer_size=112), TrainConfig(
        steps=20_000, batch_size=16, lr=1e-3, warmup_steps=200, grad_clip=1.0,
        image_size=112, cond_grad_start=0, ckpt_every=250, log_every=25, num_workers=1)),
    # Tests: seconds on a CPU.
    "tiny": Preset(CICConfig(widths=(4, 8, 8, 16), infer_size=32), TrainConfig(
        steps=40, batch_size=4, lr=1e-2, image_size=32, cond_grad_start=0, ckpt_every=10,
        log_every=1, num_workers=0)),
}


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation),
            nn.ReLU(True)]


@register_baseline("cic")
class CIC(BaselineModel):
    """The eccv16 network; ``widths`` (64, 128, 256, 512) is the released model."""

    config_cls = CICConfig
    presets = PRESETS

    def __init__(self, cfg: CICConfig, preset: str = "custom") -> None:
        super().__init__(cfg, preset)
        if cfg.decode not in ("annealed", "mean"):
            raise ValueError(f"decode must be 'annealed' or 'mean', not {cfg.decode!r}")
        w1, w2, w3, w4 = cfg.widths
        self.model1 = nn.Sequential(*_conv(1, w1), *_conv(w1, w1, 2), nn.BatchNorm2d(w1))
        self.model2 = nn.Sequential(*_conv(w1, w2), *_conv(w2, w2, 2), nn.BatchNorm2d(w2))
        self.model3 = nn.Sequential(*_conv(w2, w3), *_conv(w3, w3), *_conv(w3, w3, 2),
                                    nn.BatchNorm2d(w3))
        self.model4 = nn.Sequential(*_conv(w3, w4), *_conv(w4, w4), *_conv(w4, w4),
                                    nn.BatchNorm2d(w4))
        for i in (5, 6):  # a trous (dilation 2) blocks
            setattr(self, f"model{i}", nn.Sequential(
                *_conv(w4, w4, 1, 2), *_conv(w4, w4, 1, 2), *_conv(w4, w4, 1, 2),
                nn.BatchNorm2d(w4)))
        self.model7 = nn.Sequential(*_conv(w4, w4), *_conv(w4, w4), *_conv(w4, w4),
                                    nn.BatchNorm2d(w4))
        self.model8 = nn.Sequential(nn.ConvTranspose2d(w4, w3, 4, 2, 1), nn.ReLU(True),
                                    *_conv(w3, w3), *_conv(w3, w3), nn.Conv2d(w3, NUM_BINS, 1))
        self.model_out = nn.Conv2d(NUM_BINS, 2, 1, bias=False)  # fixed: bin centres / 110
        self.model_out.requires_grad_(False)
        with torch.no_grad():
            self.model_out.weight.copy_(torch.from_numpy(ab_bins().T / AB_NORM)[..., None, None])
        self.register_buffer("ab_counts", torch.zeros(NUM_BINS, dtype=torch.float64))

    def bins(self) -> torch.Tensor:
        """(313, 2) bin centres in ab units, read from ``model_out``."""
        return self.model_out.weight[:, :, 0, 0].T * AB_NORM

    def logits(self, lightness: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) L in [0, 100] -> (N, 313, H/4, W/4) logits (H, W multiples of 8)."""
        x = (lightness - L_CENT) / L_NORM
        for i in range(1, 9):
            x = getattr(self, f"model{i}")(x)
        return x

    def work_size(self, height: int, width: int) -> tuple[int, int]:
        return self.cfg.infer_size, self.cfg.infer_size

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        """ab at the input size: the annealed mean (paper) or the port's ``model_out`` mean."""
        logits = self.logits(lightness)
        if self.cfg.decode == "mean":
            ab = self.model_out(torch.softmax(logits, 1)) * AB_NORM
        else:
            ab = annealed_mean(logits, self.bins(), self.cfg.temperature)
        return F.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False)

    def load_official(self, state: dict[str, torch.Tensor], source: str = "state dict") -> CIC:
        """Load richzhang/colorization's eccv16 weights (released file or same-named dict).

        Raises:
            BaselineCheckpointError: missing, unexpected or mis-shaped tensors.
        """
        want = {k: v.shape for k, v in self.state_dict().items()
                if k != "ab_counts" and not k.endswith("num_batches_tracked")}
        got = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        bad = [f"{k} {tuple(got[k].shape)} (expected {tuple(want[k])})"
               for k in sorted(set(want) & set(got)) if tuple(got[k].shape) != tuple(want[k])]
        if missing or extra or bad:
            raise BaselineCheckpointError(
                f"{source}: not the eccv16 CIC weights of richzhang/colorization for widths "
                f"{self.cfg.widths}: missing {missing[:4]}, unexpected {extra[:4]}, "
                f"wrong shapes {bad[:4]}; use colorization_release_v2-9b330a0b.pth")
        self.load_state_dict(got, strict=False)
        return self


def cic_prior(data: str, out: Path, images: int, index: str | None) -> Path:
    """Count the nearest-bin histogram of up to ``images`` centre crops (64 px) of ``data``."""
    from pixcolor.data import ImageFolderDataset

    ds = ImageFolderDataset(data, size=64, train=False, index_path=index)
    abs_ = []
    for i in np.linspace(0, len(ds) - 1, min(images, len(ds))).round().astype(int):
        it = ds[int(i)]
        _, ab = lab_from_batch({"y": it["y"][None], "cbcr": it["cbcr"][None]})
        abs_.append(ab[0].permute(1, 2, 0).numpy())
    path = out / "cic_prior.npy"
    out.mkdir(parents=True, exist_ok=True)
    np.save(path, bin_counts(abs_))
    return path.resolve()


@register_stage("cic")
class CICStage(Stage):
    """Multinomial cross-entropy on soft-encoded ab, class-rebalanced (Sec. 2.1-2.2, Eq. 2)."""

    config_cls = CICConfig
    model_cls = CIC

    def __init__(self, model_config: CICConfig, preset: str = "custom") -> None:
        super().__init__(model_config, preset)
        if model_config.prior_file and not Path(model_config.prior_file).is_file():
            log.warning("%s is missing; the prior comes from the checkpoint being resumed",
                        model_config.prior_file)
        elif model_config.prior_file:
            counts = np.load(model_config.prior_file)
            if counts.shape != (NUM_BINS,):
                raise ValueError(f"{model_config.prior_file}: expected ({NUM_BINS},) bin "
                                 f"counts, got {counts.shape}")
            self.model.ab_counts.copy_(torch.from_numpy(counts))

    @classmethod
    def prepare_config(cls, model_config: CICConfig, dataset, *, out, overrides, options
                       ) -> CICConfig:
        """Without a ``prior_file``, count the ab prior of ``options["prior_images"]`` photos
        of the data into the run folder (0: the prior is counted while training)."""
        images = options.get("prior_images", 0)
        if model_config.prior_file or images <= 0:
            return model_config
        path = cic_prior(str(dataset.root), Path(out), images, options.get("index"))
        return dataclasses.replace(model_config, prior_file=str(path))

    def trainable(self) -> list[nn.Module]:
        return [getattr(self.model, f"model{i}") for i in range(1, 9)]

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        m, cfg = self.model, self.model_config
        lightness, ab = lab_from_batch(batch)
        logits = m.logits(lightness)
        ab = color.resize(ab, tuple(logits.shape[-2:]), antialias=True)
        bins = m.bins().detach()
        z = soft_encode(ab, bins, cfg.soft_k, cfg.soft_sigma)
        nearest = z.argmax(1)
        if not cfg.prior_file:  # empirical prior of the training data seen so far
            m.ab_counts += torch.bincount(nearest.flatten(), minlength=NUM_BINS).double()
        w = rebalance_weights(m.ab_counts, bins, cfg.rebalance_lambda, cfg.prior_sigma)
        ce = -(z * torch.log_softmax(logits.float(), 1)).sum(1)
        return (w.to(ce.device)[nearest] * ce).mean()


def bin_counts(ab_images: list[np.ndarray]) -> np.ndarray:
    """(313,) counts of the nearest bin of every pixel of (H, W, 2) ab arrays (the prior)."""
    bins = torch.from_numpy(ab_bins())
    counts = torch.zeros(NUM_BINS, dtype=torch.float64)
    for ab in ab_images:
        flat = torch.from_numpy(np.asarray(ab, np.float32).reshape(-1, 2))
        counts += torch.bincount(torch.cdist(flat, bins).argmin(1), minlength=NUM_BINS)
    return counts.numpy()


__all__ = ["CIC", "CICConfig", "CICStage", "PRESETS", "ab_bins", "annealed_mean", "bin_counts",
           "rebalance_weights", "soft_encode"]
