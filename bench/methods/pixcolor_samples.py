"""PixColor methods: seeds 1-3, the most likely of N samples, the unrefined sample, and
ground truth 28x28 + refinement.

Paper Fig. 6 rates PixColor with three seeds; Fig. 5 ablates the refinement network
(``pixcolor_unrefined``: the PixelCNN sample bilinearly upsampled) and the PixelCNN
(``gt28_refined``: the refinement network fed the ground-truth low-resolution chroma).
``pixcolor_best`` keeps, of ``MethodOptions.rank_samples`` samples of seed 1, the one the
PixelCNN gives the highest log-likelihood (:meth:`PixColor.best_of`): the paper's oracle
choice among samples, made by the model instead of a person.

All of them share one :class:`PixColorEngine` (one loaded checkpoint per device). Generated
together, they draw every sample they need in one call of :meth:`PixColor.sample` (the
entry ``colorize`` uses), and ``pixcolor_unrefined`` reuses the seed-1 sample of
``pixcolor_s1``, so the ablation differs from ``pixcolor_s1`` only by the refinement
(``pixcolor_best``'s candidates include it too). Outputs equal
``model.colorize([image], num_samples=1, seed=k, refine=...)`` and, for ``pixcolor_best``,
``model.render(ys, model.best_of(ys, 1, N).chroma)`` (the tests check it):
``Draw(image, seed, index)`` depends only on (seed, index, image), never on the batch.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import NamedTuple, cast

import numpy as np
import torch

from bench.methods.registry import Item, Method, MethodOptions, Result, register_method
from pixcolor import color
from pixcolor.checkpoint import CheckpointError
from pixcolor.colorizer import SHIPPED_CHECKPOINT, Draw, PixColor, most_likely

log = logging.getLogger(__name__)


class Sampled(NamedTuple):
    """One drawn sample, as the engine hands it to :meth:`PixColorMethod.lowres`."""

    chroma: torch.Tensor  # (2, h, w) float32 low-resolution chroma
    logp: float  # its PixelCNN log-likelihood, in nats


class PixColorEngine:
    """One PixColor checkpoint on one device, shared by every PixColor method of a run.

    Reads ``checkpoint``, ``device``, ``sampler``, ``temperature``, ``batch_size`` (rows per
    refinement batch), ``max_side`` and ``sampling_threads`` of the run's
    :class:`MethodOptions`. One sampling thread: the sampler's per-pixel steps are small
    matrix products that gain nothing from threads, and one thread avoids their
    synchronisation cost (5x faster on a busy 2-core machine, measured with the ``small``
    preset).
    """

    _shared: dict[tuple, PixColorEngine] = {}

    def __init__(self, options: MethodOptions) -> None:
        self.options = options
        self.path = Path(options.checkpoint) if options.checkpoint else SHIPPED_CHECKPOINT
        self._model: PixColor | None = None

    @classmethod
    def shared(cls, options: MethodOptions) -> PixColorEngine:
        """The engine for these settings, created once per process."""
        path = str(Path(options.checkpoint).resolve()) if options.checkpoint else None
        key = (path, options.device, options.sampler, float(options.temperature),
               int(options.batch_size), int(options.max_side), int(options.sampling_threads))
        if key not in cls._shared:
            cls._shared[key] = cls(options)
        return cls._shared[key]

    @property
    def model(self) -> PixColor:
        """The loaded model (loaded on first use).

        Raises:
            CheckpointError: missing or unreadable checkpoint.
        """
        if self._model is None:
            self._model = PixColor.load(self.path).to(self.options.device).eval()
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
        if need_refine and "refine" not in model.stages:
            return False, f"{self.path} holds no trained refinement network"
        return True, ""

    def meta(self) -> dict:
        """Checkpoint, model and sampler fields for meta.json."""
        m, o = self.model, self.options
        return {"checkpoint": str(self.path), "checkpoint_sha256": m.checkpoint_sha256,
                "preset": m.preset, "device": o.device, "sampler": o.sampler,
                "temperature": o.temperature,
                "lowres_short_side": m.cfg.lowres_short_side,
                "model_config": dataclasses.asdict(m.cfg)}

    def generate(self, requests: dict[PixColorMethod, list[Item]]
                 ) -> dict[PixColorMethod, list[Result]]:
        """Every method's outputs from one sampling pass over the draws they need.

        A failed sampling pass fails every method of the batch; a failed rendering, only its
        method (e.g. out of memory).
        """
        rows: dict[str, int] = {}  # image id -> index into ys
        ys: list[np.ndarray] = []
        for it in (it for items in requests.values() for it in items):
            if it.image_id not in rows:
                rows[it.image_id] = len(ys)
                ys.append(color.rgb_luma(it.rgb))
        needed = {meth: [rows[it.image_id] for it in items]
                  for meth, items in requests.items()}
        draws = sorted({d for meth, idx in needed.items() for d in meth.draws(idx)})
        model, o = self.model, self.options
        try:
            drawn = model.sample(ys, draws, sampler=o.sampler, temperature=o.temperature,
                                 threads=o.sampling_threads if model.device.type == "cpu" else 0)
        except (RuntimeError, ValueError) as exc:
            log.error("PixColor sampling failed on a batch: %s", exc)
            return {meth: [exc] * len(items) for meth, items in requests.items()}
        samples = {d: Sampled(c, float(lp))
                   for d, c, lp in zip(draws, drawn.chroma, drawn.logp, strict=True)}
        out: dict[PixColorMethod, list[Result]] = {}
        for meth, items in requests.items():
            idx = needed[meth]
            try:
                out[meth] = model.render([ys[i] for i in idx], meth.lowres(items, idx, samples),
                                         refine=meth.refine, max_side=o.max_side,
                                         batch_size=max(1, o.batch_size))
            except (RuntimeError, ValueError) as exc:
                log.error("%s failed on a batch: %s", meth.name, exc)
                out[meth] = [exc] * len(items)
        return out


class PixColorMethod(Method):
    """A method generated by the run's :class:`PixColorEngine`: it names the samples it
    needs (:meth:`draws`) and the low-resolution chroma it renders (:meth:`lowres`)."""

    refine = True  # the refinement network (True) or bilinear upsampling (False)

    def __init__(self, options: MethodOptions | None = None) -> None:
        super().__init__(options)
        self.engine = PixColorEngine.shared(options or MethodOptions())

    def available(self) -> tuple[bool, str]:
        return self.engine.available(self.refine)

    def meta(self) -> dict:
        return {**super().meta(), **self.engine.meta()}

    def batch_key(self) -> object:
        return ("pixcolor", id(self.engine))

    def draws(self, rows: list[int]) -> list[Draw]:
        """The samples this method needs for the images ``rows`` (none by default)."""
        return []

    def lowres(self, items: Sequence[Item], rows: list[int], drawn: dict[Draw, Sampled]
               ) -> list[torch.Tensor]:
        """The (2, h, w) low-resolution chroma to render for each of ``items`` (whose Y
        planes are ``rows``), given the chroma and log-likelihood of the batch's draws."""
        raise NotImplementedError

    def generate(self, items: Sequence[Item]) -> list[Result]:
        return self.engine.generate({self: list(items)})[self]

    @classmethod
    def generate_group(cls, requests: dict[Method, list[Item]]) -> dict[Method, list[Result]]:
        # Methods share a batch key only when they share an engine: PixColor methods.
        jobs = cast("dict[PixColorMethod, list[Item]]", requests)
        return dict(next(iter(jobs)).engine.generate(jobs))


class PixColorSample(PixColorMethod):
    """Sample 0 of ``seed``, refined (``pixcolor_sK``) or bilinearly upsampled."""

    def __init__(self, seed: int, refine: bool = True,
                 options: MethodOptions | None = None) -> None:
        super().__init__(options)
        self.seed, self.refine = seed, refine
        self.description = (f"PixColor sample with seed {seed}, " +
                            ("refinement network" if refine else "bilinear upsampling "
                             "of the PixelCNN sample (paper Fig. 5 ablation)"))

    def draws(self, rows: list[int]) -> list[Draw]:
        return [Draw(r, self.seed) for r in rows]

    def lowres(self, items: Sequence[Item], rows: list[int], drawn: dict[Draw, Sampled]
               ) -> list[torch.Tensor]:
        return [drawn[d].chroma for d in self.draws(rows)]

    def meta(self) -> dict:
        return {**super().meta(), "seed": self.seed, "refine": self.refine}


class PixColorBest(PixColorMethod):
    """Of ``options.rank_samples`` samples of ``seed``, the one with the highest PixelCNN
    log-likelihood, refined: :meth:`PixColor.best_of` drawn with the other methods."""

    def __init__(self, seed: int, options: MethodOptions | None = None) -> None:
        super().__init__(options)
        self.seed, self.n = seed, (options or MethodOptions()).rank_samples
        self.description = (f"PixColor: of {self.n} samples with seed {seed}, the one the "
                            "PixelCNN gives the highest log-likelihood, refinement network")

    def draws(self, rows: list[int]) -> list[Draw]:
        return [Draw(r, self.seed, k) for r in rows for k in range(self.n)]

    def lowres(self, items: Sequence[Item], rows: list[int], drawn: dict[Draw, Sampled]
               ) -> list[torch.Tensor]:
        out = []
        for r in rows:
            candidates = [drawn[Draw(r, self.seed, k)] for k in range(self.n)]
            out.append(candidates[most_likely([c.logp for c in candidates])].chroma)
        return out

    def meta(self) -> dict:
        return {**super().meta(), "seed": self.seed, "refine": True, "rank_samples": self.n}


class GT28Refined(PixColorMethod):
    """The refinement network on ground-truth low-resolution chroma (paper Fig. 5)."""

    description = ("refinement network fed the ground-truth chroma downsampled to the "
                   "model's low resolution (28-pixel short side), paper Fig. 5")

    def lowres(self, items: Sequence[Item], rows: list[int], drawn: dict[Draw, Sampled]
               ) -> list[torch.Tensor]:
        return [self.gt_lowres(it) for it in items]

    def gt_lowres(self, item: Item) -> torch.Tensor:
        """The ground truth's chroma at the model's low resolution, (2, h, w) float32."""
        cbcr = torch.from_numpy(color.rgb_to_ycbcr(item.rgb)[..., 1:].transpose(2, 0, 1).copy())
        return color.lowres_chroma(cbcr.float(), self.engine.model.cfg.lowres_short_side)

    def meta(self) -> dict:
        return {**super().meta(), "seed": None, "refine": True}


def register() -> None:
    for seed in (1, 2, 3):
        register_method(f"pixcolor_s{seed}")(partial(PixColorSample, seed, True))
    register_method("pixcolor_best")(partial(PixColorBest, 1))
    register_method("pixcolor_unrefined")(partial(PixColorSample, 1, False))
    register_method("gt28_refined")(GT28Refined)
