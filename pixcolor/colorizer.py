"""PixColor: conditioning network + gated PixelCNN + refinement network (paper Sec. 3, Fig. 4).

Public API (the benchmark harness, the tools and users call these)::

    model = PixColor.from_preset("paper")        # random init
    model = PixColor.load(path=None)             # a checkpoint; None = the shipped demo one
    out = model.colorize(images, num_samples=3, seed=1, sampler="cached", temperature=1.0)
    draws = [Draw(image=0, seed=1, index=0), ...]    # ys: (H, W) Y planes in [0, 1]
    drawn = model.sample(ys, draws)                  # low-resolution chroma per draw
    rgb = model.render([ys[d.image] for d in draws], drawn.chroma)   # RGB per draw
    best = model.best_of(ys, seed=1, n=10)           # per image, the most likely of 10
    rgb = model.render(ys, best.chroma)              # best.index: which sample, 0 .. 9
    bins, logp = model.sample_lowres(y, num_samples=3, seed=1, sampler="cached")
    logits = model.pixelcnn_logits(y, bins)

``colorize`` is ``sample`` + ``render``; ``sample_lowres`` is ``sample`` for one
(N, 1, H, W) batch; ``best_of`` is ``sample`` of n draws per image, ranked by their
log-likelihood. Every sample is drawn by ``sample``: it depends only on (seed, sample
index, image content), so callers that mix images, seeds and sizes (the harness) get
exactly what ``colorize`` gives.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from pixcolor import checkpoint, color
from pixcolor.batching import batches_by_shape
from pixcolor.checkpoint import CheckpointError
from pixcolor.config import ModelConfig, config_from_dict, get_preset
from pixcolor.io import file_sha256
from pixcolor.models.conditioning import ConditioningNetwork
from pixcolor.models.pixelcnn import PixelCNN
from pixcolor.models.refine import RefinementNetwork
from pixcolor.sampling import image_key, sample, sample_uniforms

log = logging.getLogger(__name__)

SHIPPED_CHECKPOINT = Path(__file__).parent / "checkpoints" / "pixcolor_small.pt"

MERGE_PIXELS = 1 << 24  # pixels merged into RGB at once (~0.4 GB per float64 RGB buffer)
STAGES = ("pixelcnn", "refine")  # the two independently trained parts (paper Table 2)


class Draw(NamedTuple):
    """One low-resolution chroma sample for :meth:`PixColor.sample` to draw."""

    image: int  # index into the call's Y planes
    seed: int
    index: int = 0  # sample index: colorize(num_samples=S, seed=k) draws indices 0 .. S-1


@dataclass
class ChromaSamples:
    """What :meth:`PixColor.sample` drew: one entry per :class:`Draw`, in the draws' order."""

    bins: list[torch.Tensor]  # (2, h, w) int64 in [0, cfg.bins), (Cb, Cr)
    chroma: list[torch.Tensor]  # (2, h, w) float32: the bins' centred values, render's input
    logp: torch.Tensor  # (D,) float64: the PixelCNN log-likelihood of each sample, in nats


@dataclass
class BestSamples:
    """What :meth:`PixColor.best_of` chose: per image, the most likely of its n samples."""

    index: list[int]  # the chosen sample's index (its Draw.index, 0 .. n-1) per image
    chroma: list[torch.Tensor]  # (2, h, w) float32: the chosen samples' chroma, render's input
    logp: torch.Tensor  # (I, n) float64: every sample's log-likelihood, in nats


def most_likely(logp: Sequence[float] | torch.Tensor) -> int:
    """The position of the highest log-likelihood in ``logp`` (the first one on ties)."""
    values = [float(v) for v in logp]
    return values.index(max(values))


def init_weights(module: nn.Module, std: float) -> None:
    """Truncated normal (stddev ``std``, cut at 2 std) weights, zero biases (Table 2).

    ``std <= 0`` keeps PyTorch's default initialisation. BatchNorm keeps weight 1, bias 0.
    """
    if std <= 0:
        return
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class PixColor(nn.Module):
    """The full model; see the module docstring for the public methods."""

    def __init__(self, cfg: ModelConfig, preset: str = "custom"):
        super().__init__()
        self.cfg, self.preset = cfg, preset
        self.cond = ConditioningNetwork(cfg)
        self.pixelcnn = PixelCNN(cfg, cond_channels=cfg.adapt_channels)
        self.refine = RefinementNetwork(cfg)
        init_weights(self, cfg.init_std)
        if self.cond.global_fc is not None:
            nn.init.zeros_(self.cond.global_fc.weight)
            nn.init.zeros_(self.cond.global_fc.bias)
        # What a loaded checkpoint says (see load); a fresh model has both stages.
        self.stages: list[str] = list(STAGES)  # the stages whose weights were trained
        self.checkpoint_path: str | None = None
        self.checkpoint_sha256: str | None = None
        self.missing_keys: list[str] = []  # tensors the checkpoint lacked (initial values)
        self.eval()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, name: str) -> PixColor:
        return cls(get_preset(name).model, preset=name)

    @classmethod
    def load(cls, path: str | Path | None = None, map_location: str = "cpu") -> PixColor:
        """Load a checkpoint written by :meth:`save` or by ``pixcolor train``.

        A training checkpoint holds one stage; the other keeps its random initialisation,
        ``stages`` lists the trained ones and a warning names the untrained one.
        ``path=None`` loads the shipped demo model.

        Raises:
            CheckpointError: missing, unreadable or not a PixColor checkpoint.
        """
        path = Path(path) if path is not None else SHIPPED_CHECKPOINT
        ckpt = checkpoint.read(path, map_location=map_location)
        if "model_config" not in ckpt:
            raise CheckpointError(f"{path}: not a PixColor checkpoint (no 'model_config')")
        cfg = config_from_dict(ModelConfig, ckpt["model_config"])
        model = cls(cfg, preset=ckpt.get("preset", "custom"))
        missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
        if unexpected:
            raise CheckpointError(f"{path}: unexpected tensors {unexpected[:5]}")
        model.stages = list(ckpt.get("stages", STAGES))
        model.checkpoint_sha256 = file_sha256(path)
        model.checkpoint_path = str(path)
        model.missing_keys = list(missing)
        untrained = [s for s in STAGES if s not in model.stages]
        if untrained:
            log.warning("%s holds no trained %s stage: it keeps its random initialisation",
                        path, " or ".join(untrained))
        return model

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        """Write an inference checkpoint (config, weights, ``extra``) atomically."""
        checkpoint.write({"model_config": dataclasses.asdict(self.cfg), "preset": self.preset,
                          "model": self.state_dict(), "stages": list(STAGES),
                          **(extra or {})}, path)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    # ------------------------------------------------------------------ low resolution
    def lowres_size(self, height: int, width: int) -> tuple[int, int]:
        return color.lowres_size(height, width, self.cfg.lowres_short_side)

    def cond_input(self, y: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Resize Y (N, 1, H, W) to cond_stride x the low-resolution size (antialiased)."""
        h, w = size if size is not None else self.lowres_size(*y.shape[-2:])
        s = self.cfg.cond_stride
        return color.resize(y.to(self.dtype), (h * s, w * s), antialias=True)

    def conditioning(self, y: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """(N, 1, H, W) Y -> (N, adapt_channels, h, w) features at the chroma resolution."""
        return self.cond(self.cond_input(y, size))

    def pixelcnn_logits(self, y: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: y (N, 1, H, W), bins (N, 2, h, w) -> (N, 2, bins, h, w) logits."""
        return self.pixelcnn(bins, self.conditioning(y, tuple(bins.shape[-2:])))

    @torch.no_grad()
    def sample(self, ys: Sequence[np.ndarray | torch.Tensor], draws: Sequence[Draw], *,
               sampler: str = "cached", temperature: float = 1.0,
               batch_size: int | None = None, threads: int = 0) -> ChromaSamples:
        """Draw low-resolution chroma samples: the one sampling entry of the model.

        The draws of one image size go through the networks together: the conditioning
        network once per image, the PixelCNN once per draw. A draw's noise depends only on
        (seed, sample index, the image's 8-bit Y), so its sample does not depend on the other
        draws of the call (up to float32 reductions that differ with the batch, which flip a
        draw only within ~1e-6 of a CDF boundary).

        Args:
            ys: (H, W) Y planes in [0, 1], float32 arrays (:func:`pixcolor.color.luma`) or
                tensors, any sizes (the chroma is at a 28-pixel short side).
            draws: what to draw, each naming an index into ``ys``.
            sampler: "cached" (fast) or "naive" (reference); both give the same samples.
            temperature: softmax temperature; <= 0 takes the most likely bin.
            batch_size: at most this many images per pass (None: every image of a size).
            threads: torch CPU threads while sampling (0: unchanged; the sampler's many
                small operations often run faster on one).

        Returns:
            The bins, their chroma and log-likelihoods, in the order of ``draws``.
        """
        bins: list = [None] * len(draws)
        chroma: list = [None] * len(draws)
        logp = torch.zeros(len(draws), dtype=torch.float64, device=self.device)
        for (hh, ww), ks in batches_by_shape([tuple(ys[d.image].shape) for d in draws]):
            size = self.lowres_size(hh, ww)
            images = sorted({draws[k].image for k in ks})
            step = batch_size or len(images)
            for start in range(0, len(images), step):
                row = {i: r for r, i in enumerate(images[start:start + step])}
                mine = [k for k in ks if draws[k].image in row]
                y = torch.stack([torch.as_tensor(ys[i]) for i in row])[:, None].to(self.device)
                keys = [image_key(y[r]) for r in range(len(row))]
                feats = self.conditioning(y, size)[[row[draws[k].image] for k in mine]]
                noise = torch.stack([sample_uniforms(keys[row[draws[k].image]], draws[k].seed,
                                                     draws[k].index, size) for k in mine])
                with _torch_threads(threads):
                    got, lp = sample(self.pixelcnn, feats,
                                     noise.to(device=self.device, dtype=self.dtype),
                                     sampler, temperature)
                low = color.dequantize_chroma(got, self.cfg.bins)
                logp[mine] = lp
                for r, k in enumerate(mine):
                    bins[k], chroma[k] = got[r], low[r]
        return ChromaSamples(bins, chroma, logp)

    @torch.no_grad()
    def sample_lowres(self, y: torch.Tensor, num_samples: int = 3, seed: int = 0,
                      sampler: str = "cached", temperature: float = 1.0,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample low-resolution chroma bins of one batch: :meth:`sample` as tensors.

        Args:
            y: (N, 1, H, W) float in [0, 1], any size (the chroma is at a 28-pixel short side).
            num_samples: samples per image.
            seed: samples depend only on (seed, sample index, image content).
            sampler, temperature: as :meth:`sample`.

        Returns:
            bins (N, S, 2, h, w) int64 in [0, 32) in (Cb, Cr) order; logp (N, S) float64,
            the PixelCNN log-likelihood of each sample in nats.
        """
        n = y.shape[0]
        draws = [Draw(i, seed, s) for i in range(n) for s in range(num_samples)]
        drawn = self.sample(list(y[:, 0]), draws, sampler=sampler, temperature=temperature)
        size = self.lowres_size(*y.shape[-2:])
        return (torch.stack(drawn.bins).view(n, num_samples, 2, *size),
                drawn.logp.view(n, num_samples))

    @torch.no_grad()
    def best_of(self, ys: Sequence[np.ndarray | torch.Tensor], seed: int, n: int, *,
                sampler: str = "cached", temperature: float = 1.0,
                batch_size: int | None = None, threads: int = 0) -> BestSamples:
        """Per image, the most likely of ``n`` samples: the one the PixelCNN gives the
        highest log-likelihood (the paper's oracle choice among samples, made by the model).

        Image i's candidates are ``Draw(i, seed, k)`` for k in 0 .. n-1, the samples
        ``colorize(num_samples=n, seed=seed)`` gives (n = 1: sample 0); ties go to the lowest
        index. Like every sample, the choice depends only on (seed, n, the image), not on the
        other images of the call. ``ys`` and the keywords are :meth:`sample`'s;
        ``render(ys, best.chroma)`` gives the RGB outputs. Raises ValueError when n < 1.
        """
        if n < 1:
            raise ValueError(f"best_of ranks n >= 1 samples per image, got n={n}")
        draws = [Draw(i, seed, k) for i in range(len(ys)) for k in range(n)]
        drawn = self.sample(ys, draws, sampler=sampler, temperature=temperature,
                            batch_size=batch_size, threads=threads)
        logp = drawn.logp.view(len(ys), n)
        index = [most_likely(row) for row in logp]
        return BestSamples(index, [drawn.chroma[i * n + k] for i, k in enumerate(index)], logp)

    # ------------------------------------------------------------------ refinement
    @torch.no_grad()
    def refine_chroma(self, y: torch.Tensor, lowres: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) Y + (N, 2, h, w) low-res chroma -> (N, 2, H, W) refined chroma."""
        up = color.upsample_chroma(lowres.to(self.dtype), tuple(y.shape[-2:]))
        return self.refine(y.to(self.dtype), up).clamp(-0.5, 0.5)

    @torch.no_grad()
    def render(self, ys: list[np.ndarray], lowres: list[torch.Tensor], refine: bool = True,
               max_side: int = 1024, batch_size: int = 16,
               refine_at: str = "train") -> list[np.ndarray]:
        """Full-resolution colour images from Y planes and low-resolution chroma.

        Args:
            ys: (H, W) float32 Y planes in [0, 1].
            lowres: one (2, h, w) centred chroma tensor per Y plane (a dequantised PixelCNN
                sample, or ground-truth chroma for the ``gt28`` ablations).
            refine: the refinement network (True) or plain bilinear upsampling (False).
            max_side: with ``refine_at="full"``, the refinement runs at most at this size
                (longer side).
            batch_size: Y planes per refinement batch (equal sizes are batched together).
            refine_at: ``"train"`` (default) runs the refinement network at the scale it was
                trained at: ``cond_stride`` x the low-resolution chroma size (224x224 for a
                square image with the paper preset, 112x112 with ``small``); ``"full"`` runs
                it at the input's resolution. Either way the refined chroma is upsampled
                bilinearly to the input size and the original Y is restored. On the demo
                split "train" scored higher (gt28_refined PSNR, see NOTES.md).

        Returns:
            (H, W, 3) uint8 images whose luma is the input's (``merge_luma_chroma``).
        """
        out: list = [None] * len(ys)
        shapes = [(yy.shape, tuple(low.shape)) for yy, low in zip(ys, lowres, strict=True)]
        for ((hh, ww), _), chunk in batches_by_shape(shapes, batch_size):
            yfull = torch.from_numpy(np.stack([ys[k] for k in chunk])).to(self.device)
            yw = yfull[:, None]
            low = torch.stack([lowres[k] for k in chunk]).to(self.device, self.dtype)
            if refine and refine_at == "train":
                s = self.cfg.cond_stride
                work = (low.shape[-2] * s, low.shape[-1] * s)
            elif refine_at in ("train", "full"):
                scale = min(1.0, max_side / max(hh, ww))
                work = (max(1, round(hh * scale)), max(1, round(ww * scale)))
            else:
                raise ValueError(f"refine_at must be 'train' or 'full', got {refine_at!r}")
            if work != (hh, ww):
                yw = color.resize(yw, work, antialias=work[0] < hh)
            if refine:
                chroma = self.refine_chroma(yw, low)
            else:
                chroma = color.upsample_chroma(low, tuple(yw.shape[-2:]))
            chroma = color.upsample_chroma(chroma, (hh, ww))
            # Batched on the device, in pieces of about MERGE_PIXELS pixels: the merge
            # holds a few float64 (N, H, W, 3) arrays.
            step = max(1, MERGE_PIXELS // (hh * ww))
            for r0 in range(0, len(chunk), step):
                rgb = color.merge_luma_chroma(
                    yfull[r0:r0 + step], chroma[r0:r0 + step].permute(0, 2, 3, 1).float())
                for r, k in enumerate(chunk[r0:r0 + step]):
                    out[k] = rgb[r]
        return out

    # ------------------------------------------------------------------ user entry point
    @torch.no_grad()
    def colorize(self, images: list[np.ndarray], num_samples: int = 3, seed: int = 1,
                 sampler: str = "cached", temperature: float = 1.0, refine: bool = True,
                 max_side: int = 1024, batch_size: int = 16, return_logp: bool = False,
                 refine_at: str = "train"):
        """Colourise grayscale (or colour, whose chroma is discarded) images.

        Sample s of image i is :meth:`sample`'s ``Draw(i, seed, s)``, made RGB by
        :meth:`render`.

        Args:
            images: list of (H, W) or (H, W, 3) uint8 arrays, any sizes.
            num_samples: samples per image (S).
            seed: base seed; sample s of an image depends only on (seed, s, image).
            sampler, temperature: as :meth:`sample`.
            refine: False gives the bilinearly upsampled PixelCNN sample (the ablation).
            max_side, refine_at: the refinement's working size (see :meth:`render`); the
                chroma is upsampled bilinearly to the input size and its Y restored.
            batch_size: images per batch (images of equal size are batched together).

        Returns:
            list of (S, H, W, 3) uint8 arrays (and, with ``return_logp``, a list of (S,)
            log-likelihoods). The output's Y equals the input's (up to uint8 rounding).
        """
        ys = [color.luma(im) for im in images]
        draws = [Draw(i, seed, s) for i in range(len(ys)) for s in range(num_samples)]
        drawn = self.sample(ys, draws, sampler=sampler, temperature=temperature,
                            batch_size=batch_size)
        rgb = self.render([ys[d.image] for d in draws], drawn.chroma, refine=refine,
                          max_side=max_side, batch_size=batch_size * num_samples,
                          refine_at=refine_at)
        first = [i * num_samples for i in range(len(ys))]  # each image's draws follow
        out = [np.stack(rgb[k:k + num_samples]) for k in first]
        if return_logp:
            return out, [drawn.logp[k:k + num_samples].cpu().numpy() for k in first]
        return out


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch CPU threads (``n <= 0``: unchanged)."""
    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)

