"""Training stages: what the shared trainer (``pixcolor.train``) optimises.

A stage owns a ``model`` (the module saved in checkpoints) and turns a batch into a loss.
PixColor registers its two independently trained stages (paper Table 2: "The PixelCNN and
Refinement networks were trained independently"); the baselines register theirs
(``baselines``) and reuse the same trainer, data pipeline, checkpoints, resume and DDP.

Batches are dicts of tensors from :class:`pixcolor.data.ImageFolderDataset`: ``y``
(B, 1, S, S) in [0, 1], ``cbcr`` (B, 2, S, S) centred, ``lowres`` (B, 2, h, w), ``bins``
(B, 2, h, w) int64, ``label`` (B,) int64 (-1 without class folders).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from pixcolor import color
from pixcolor.colorizer import PixColor
from pixcolor.config import ModelConfig, TrainConfig
from pixcolor.registry import Registry

STAGES: Registry[type[Stage]] = Registry(
    "training stage", hint=" (the baselines register theirs when `baselines` is imported)")


def register_stage(name: str):
    """Class decorator adding a :class:`Stage` to :data:`STAGES` under ``name`` (its
    ``name`` attribute)."""
    return STAGES.register_named(name)


def get_stage(name: str) -> type[Stage]:
    """The stage class registered as ``name`` (:class:`~pixcolor.registry.UnknownNameError`,
    a ValueError, names the registered ones otherwise)."""
    return STAGES[name]


class Stage(nn.Module):
    """Base class: subclasses set ``config_cls`` and ``model_cls`` (``self.model`` is
    ``model_cls(model_config, preset=preset)``) or build ``self.model`` themselves."""

    name: ClassVar[str] = "stage"
    config_cls: ClassVar[type] = ModelConfig
    model_cls: ClassVar[type[nn.Module] | None] = None
    find_unused_parameters: ClassVar[bool] = False

    def __init__(self, model_config, preset: str = "custom"):
        super().__init__()
        self.model_config, self.preset = model_config, preset
        if self.model_cls is not None:
            self.model = self.model_cls(model_config, preset=preset)

    @classmethod
    def prepare_config(cls, model_config, dataset, *, out: Path, overrides: dict,
                       options: dict):
        """The model config of a fresh run, completed from its data before the model is built
        (a resumed or warm-started run takes its checkpoint's config instead).

        Args:
            model_config: the preset's config with the caller's ``overrides`` applied.
            dataset: the training images.
            out: the run folder (for files the config refers to).
            overrides: the model fields the caller set explicitly.
            options: the stage's own command-line options (e.g. CIC's ``prior_images``).
        """
        return model_config

    def trainable(self) -> list[nn.Module]:
        """Sub-modules whose parameters the optimiser updates."""
        return [self.model]

    def before_step(self, step: int, tcfg: TrainConfig) -> None:
        """Hook called before each optimisation step (schedules)."""

    def set_modes(self) -> None:
        """Train/eval modes of the sub-modules for training."""
        self.train()

    def init_from(self, path: str) -> dict:
        raise ValueError(f"stage {self.name!r} does not support --init-from")

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class _PixColorStage(Stage):
    config_cls = ModelConfig
    model_cls = PixColor


@register_stage("pixelcnn")
class PixelCNNStage(_PixColorStage):
    """Conditioning network + PixelCNN, teacher-forced cross-entropy (Sec. 3.1)."""

    find_unused_parameters = True  # the backbone gets no gradient while the multiplier is 0

    def trainable(self):
        return [self.model.cond, self.model.pixelcnn]

    def before_step(self, step, tcfg):
        s = tcfg.cond_grad_after if step >= tcfg.cond_grad_start else tcfg.cond_grad_before
        self.model.cond.grad_scale = s

    def set_modes(self):
        self.train()
        self.model.refine.eval()

    def init_from(self, path):
        from pixcolor.models.conditioning import load_backbone_weights

        return load_backbone_weights(self.model.cond, path)

    def forward(self, batch):
        m, bins = self.model, batch["bins"]
        feats = m.cond(m.cond_input(batch["y"], tuple(bins.shape[-2:])))
        return m.pixelcnn.loss(bins, feats)


@register_stage("refine")
class RefineStage(_PixColorStage):
    """Refinement network on ground-truth low-resolution chroma, L1 loss (Sec. 3.2)."""

    def trainable(self):
        return [self.model.refine]

    def set_modes(self):
        self.train()
        self.model.cond.eval()
        self.model.pixelcnn.eval()

    def forward(self, batch):
        y = batch["y"]
        up = color.upsample_chroma(batch["lowres"], tuple(y.shape[-2:]))
        return self.model.refine.loss(y, up, batch["cbcr"])


def optimizer_parameters(stage: Stage) -> list[nn.Parameter]:
    """The parameters a stage's optimizer holds, in its order (its state is indexed by it)."""
    return [p for mod in stage.trainable() for p in mod.parameters()]
