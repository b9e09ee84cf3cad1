"""PixColor methods: seeds 1-3, the unrefined sample, and ground truth 28x28 + refinement.

Paper Fig. 6 rates PixColor with three seeds; Fig. 5 ablates the refinement network
(``pixcolor_unrefined``: the PixelCNN sample bilinearly upsampled) and the PixelCNN
(``gt28_refined``: the refinement network fed the ground-truth low-resolution chroma).

All of them share one :class:`PixColorEngine` (one loaded checkpoint per device). Generated
together, they draw every (image, seed) sample in a single batched sampling pass, and
``pixcolor_unrefined`` reuses the seed-1 sample of ``pixcolor_s1``, so the ablation differs
from ``pixcolor_s1`` only by the refinement. Outputs equal
``model.colorize([image], num_samples=1, seed=k, refine=...)`` (the tests check it): the
noise of sample 0 depends only on (seed, image), as in :func:`pixcolor.sampling.sample_noise`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.methods.registry import Item, Method, Result, register_method
from pixcolor import color
from pixcolor.checkpoint import CheckpointError
from pixcolor.colorizer import SHIPPED_CHECKPOINT, PixColor

log = logging.getLogger(__name__)


class PixColorEngine:
    """One PixColor checkpoint on one device, shared by every PixColor method of a run.

    Args:
        checkpoint: checkpoint file; None = the shipped demo checkpoint.
        device: torch device string.
        sampler: "cached" or "naive" (identical samples, different speed).
        temperature: softmax temperature of the PixelCNN.
        batch_size: rows per refinement batch.
        max_side: longest side the refinement network runs at (as ``colorize``).
        sampling_threads: torch CPU threads while sampling (0: leave torch's setting). The
            sampler's per-pixel steps are small matrix products that gain nothing from
            threads; one thread avoids their synchronisation cost (5x faster on a busy
            2-core machine, measured with the ``small`` preset).
    """

    _shared: dict[tuple, PixColorEngine] = {}

    def __init__(self, checkpoint: str | Path | None = None, device: str = "cpu",
                 sampler: str = "cached", temperature: float = 1.0, batch_size: int = 16,
                 max_side: int = 1024, sampling_threads: int = 1) -> None:
        self.path = Path(checkpoint) if checkpoint is not None else SHIPPED_CHECKPOINT
        self.device, self.sampler, self.temperature = device, sampler, temperature
        self.batch_size, self.max_side = max(1, batch_size), max_side
        self.sampling_threads = sampling_threads
        self._model: PixColor | None = None
        self._error: str | None = None

    @classmethod
    def shared(cls, checkpoint: str | Path | None = None, device: str = "cpu",
               sampler: str = "cached", temperature: float = 1.0, batch_size: int = 16,
               sampling_threads: int = 1, **_: Any) -> PixColorEngine:
        """The engine for these settings, created once per process."""
        key = (str(Path(checkpoint).resolve()) if checkpoint else None, device, sampler,
               float(temperature), int(batch_size), int(sampling_threads))
        if key not in cls._shared:
            cls._shared[key] = cls(checkpoint, device, sampler, temperature, batch_size,
                                   sampling_threads=sampling_threads)
        return cls._shared[key]

    @property
    def model(self) -> PixColor:
        """The loaded model (loaded on first use).

        Raises:
            CheckpointError: missing or unreadable checkpoint.
        """
        if self._model is None:
            self._model = PixColor.load(self.path).to(self.device).eval()
        return self._model

    def available(self, need_refine: bool = True) -> tuple[bool, str]:
        """Whether the checkpoint exists and loads (and holds the refinement network)."""
        if not self.path.is_file():
            if self.path == SHIPPED_CHECKPOINT:
                return False, (f"the shipped PixColor checkpoint {self.path} is not in this "
                               "checkout yet; pass --checkpoint PATH to use another one")
            return False, f"no PixColor checkpoint at {self.path}"
        try:
            model = self.model
        except CheckpointError as exc:
            return False, str(exc)
        if need_refine and "refine" not in getattr(model, "stages", ["refine"]):
            return False, f"{self.path} holds no trained refinement network"
        return True, ""

    def meta(self) -> dict:
        """Checkpoint, model and sampler fields for meta.json."""
        m = self.model
        return {"checkpoint": str(self.path), "checkpoint_sha256": m.checkpoint_sha256,
                "preset": m.preset, "device": self.device, "sampler": self.sampler,
                "temperature": self.temperature,
                "lowres_short_side": m.cfg.lowres_short_side,
                "model_config": dataclasses.asdict(m.cfg)}

    # ------------------------------------------------------------------ computation
    def sample_chroma(self, ys: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]]
                      ) -> list[torch.Tensor]:
        """One PixelCNN sample per (image index, seed): :meth:`PixColor.sample_chroma` with
        this engine's sampler, temperature and sampling threads."""
        m = self.model
        return m.sample_chroma(ys, pairs, sampler=self.sampler, temperature=self.temperature,
                               threads=self.sampling_threads if m.device.type == "cpu" else 0)

    @torch.no_grad()
    def finish(self, ys: Sequence[np.ndarray], lowres: Sequence[torch.Tensor], refine: bool
               ) -> list[np.ndarray]:
        """Full-resolution RGB from Y planes and low-resolution chroma (as ``colorize``).

        Args:
            ys: (H, W) float32 Y planes.
            lowres: matching (2, h, w) chroma tensors.
            refine: refinement network (True) or bilinear upsampling (False).

        Returns:
            (H, W, 3) uint8 images whose Y is the input's.
        """
        return self.model.render(list(ys), list(lowres), refine=refine,
                                 max_side=self.max_side, batch_size=self.batch_size)


class _PixColorBase(Method):
    """Shared plumbing: the engine, availability, meta and joint generation."""

    needs_refine = True

    def __init__(self, **kw: Any) -> None:
        super().__init__()
        self.engine = PixColorEngine.shared(**kw)

    def available(self) -> tuple[bool, str]:
        return self.engine.available(self.needs_refine)

    def meta(self) -> dict:
        return {**super().meta(), **self.engine.meta()}

    def batch_key(self) -> object:
        return ("pixcolor", id(self.engine))

    def generate(self, items: Sequence[Item]) -> list[Result]:
        return self.generate_group({self: list(items)})[self]

    @classmethod
    def generate_group(cls, requests: dict[Method, list[Item]]) -> dict[Method, list[Result]]:
        engine = next(iter(requests)).engine  # type: ignore[attr-defined]
        index: dict[str, int] = {}
        ys: list[np.ndarray] = []
        for items in requests.values():
            for it in items:
                if it.image_id not in index:
                    index[it.image_id] = len(ys)
                    ys.append(color.luminance(it.rgb))
        pairs = sorted({(index[it.image_id], m.seed) for m, items in requests.items()
                        if isinstance(m, PixColorSample) for it in items})
        results: dict[Method, list[Result]] = {}
        try:
            lows = dict(zip(pairs, engine.sample_chroma(ys, pairs), strict=True))
            for m, items in requests.items():
                idx = [index[it.image_id] for it in items]
                if isinstance(m, PixColorSample):
                    low = [lows[(i, m.seed)] for i in idx]
                else:
                    low = [m.gt_lowres(it) for it in items]  # type: ignore[attr-defined]
                results[m] = engine.finish([ys[i] for i in idx], low, m.refine)  # type: ignore
        except (RuntimeError, ValueError) as exc:  # e.g. out of memory: fail this batch only
            log.error("PixColor batch failed: %s", exc)
            for m, items in requests.items():
                results.setdefault(m, [exc] * len(items))
        return results


class PixColorSample(_PixColorBase):
    """Sample 0 of ``seed``, refined (``pixcolor_sK``) or bilinearly upsampled."""

    def __init__(self, seed: int, refine: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        self.seed, self.refine = seed, refine
        self.needs_refine = refine
        self.description = (f"PixColor sample with seed {seed}, " +
                            ("refinement network" if refine else "bilinear upsampling "
                             "of the PixelCNN sample (paper Fig. 5 ablation)"))

    def meta(self) -> dict:
        return {**super().meta(), "seed": self.seed, "refine": self.refine}


class GT28Refined(_PixColorBase):
    """The refinement network on ground-truth low-resolution chroma (paper Fig. 5)."""

    refine = True
    description = ("refinement network fed the ground-truth chroma downsampled to the "
                   "model's low resolution (28-pixel short side), paper Fig. 5")

    def gt_lowres(self, item: Item) -> torch.Tensor:
        cbcr = torch.from_numpy(color.rgb_to_ycbcr(item.rgb)[..., 1:].transpose(2, 0, 1).copy())
        return color.lowres_chroma(cbcr.float(), self.engine.model.cfg.lowres_short_side)

    def meta(self) -> dict:
        return {**super().meta(), "seed": None, "refine": True}


def register() -> None:
    for seed in (1, 2, 3):
        register_method(f"pixcolor_s{seed}")(
            lambda _s=seed, **kw: PixColorSample(seed=_s, refine=True, **kw))
    register_method("pixcolor_unrefined")(
        lambda **kw: PixColorSample(seed=1, refine=False, **kw))
    register_method("gt28_refined")(GT28Refined)
