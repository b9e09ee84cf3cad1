"""The base of every baseline: the model class with the shared ``colorize`` entry point, the
registry of the baselines, and their checkpoint files (read, load, save for inference).

CIC (Zhang et al. 2016), LRAC (Larsson et al. 2016) and LTBC (Iizuka et al. 2016) all
predict the chrominance of CIE Lab from its lightness L. PixColor's conventions
(:meth:`pixcolor.colorizer.PixColor.colorize`) hold for every baseline:

* input: (H, W) or (H, W, 3) uint8 images of any size (the chroma of a colour input is
  discarded);
* output: one (H, W, 3) uint8 image per input, deterministic;
* lightness: the predicted ab is put together with the input's own L and converted to RGB
  as the authors' code does (``lab2rgb(cat(L_orig, ab_upsampled))``); the chroma of that
  RGB is then merged with the input's Y through :func:`pixcolor.color.merge_luma_chroma`,
  so that, as for PixColor, the output's Y equals the input's (up to uint8 rounding). The
  second step only changes pixels the Lab to RGB conversion had to clip, and it makes the
  benchmark compare chroma alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from baselines.lab import recombine, to_lightness
from pixcolor import checkpoint, color
from pixcolor.batching import batches_by_shape
from pixcolor.checkpoint import CheckpointError
from pixcolor.config import Preset, config_from_dict
from pixcolor.io import file_sha256
from pixcolor.registry import Registry


class BaselineCheckpointError(CheckpointError):
    """A baseline checkpoint is missing, unreadable or belongs to another model."""


class BaselineModel(nn.Module):
    """Base class: subclasses implement :meth:`predict_ab` and may change :meth:`work_size`,
    and are registered with :func:`register_baseline`.

    Attributes:
        cfg: the model config dataclass (``config_cls``).
        preset: name of the preset it came from ("custom" otherwise).
        checkpoint_sha256: SHA-256 of the file it was loaded from (None when built).
    """

    name: ClassVar[str] = "baseline"
    config_cls: ClassVar[type] = object
    presets: ClassVar[dict[str, Preset]] = {}  # ``paper``, ``small``, ``tiny``

    def __init__(self, cfg, preset: str = "custom") -> None:
        super().__init__()
        self.cfg, self.preset = cfg, preset
        self.checkpoint_sha256: str | None = None
        self.checkpoint_path: str | None = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def work_size(self, height: int, width: int) -> tuple[int, int]:
        """Size (h, w) the network sees for an (height, width) input."""
        return height, width

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """(N, 1, h, w) L in [0, 100] at :meth:`work_size` -> (N, 2, h', w') ab."""
        raise NotImplementedError

    @torch.no_grad()
    def colorize(self, images: list[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
        """Colourise images; see the module docstring for the conventions.

        Args:
            images: list of (H, W) or (H, W, 3) uint8 arrays, any sizes.
            batch_size: images per forward pass (images of one size are batched together).

        Returns:
            list of (H, W, 3) uint8 arrays, one per input, deterministic.
        """
        was_training = self.training
        self.eval()
        pairs = [to_lightness(im) for im in images]
        out: list[np.ndarray | None] = [None] * len(pairs)
        for (h, w), chunk in batches_by_shape([y.shape for y, _ in pairs], batch_size):
            lt = torch.from_numpy(np.stack([pairs[i][1] for i in chunk]))[:, None]
            lt = color.resize(lt.to(self.device), self.work_size(h, w), antialias=True)
            ab = self.predict_ab(lt).float()
            ab = color.resize(ab, (h, w), antialias=True).permute(0, 2, 3, 1).cpu().numpy()
            for k, i in enumerate(chunk):
                out[i] = recombine(pairs[i][0], pairs[i][1], ab[k])
        self.train(was_training)
        return out  # type: ignore[return-value]


REGISTRY: Registry[type[BaselineModel]] = Registry("baseline")  # name -> model class


def register_baseline(name: str):
    """Class decorator adding a :class:`BaselineModel` to :data:`REGISTRY` under ``name`` (its
    ``name`` attribute)."""
    return REGISTRY.register_named(name)


def build(cls: type[BaselineModel], preset: str = "small", **overrides) -> BaselineModel:
    """A model of one of ``cls.presets``, with config fields replaced by ``overrides``."""
    try:
        cfg = cls.presets[preset].model
    except KeyError:
        raise KeyError(f"unknown {cls.name} preset {preset!r}; choose one of "
                       f"{sorted(cls.presets)}") from None
    cfg = dataclasses.replace(cfg, **overrides)
    return cls(cfg, preset=preset if not overrides else f"{preset}+custom").eval()


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's dict (:func:`pixcolor.checkpoint.read` with this package's error)."""
    return checkpoint.read(path, error=BaselineCheckpointError)


def load_our_checkpoint(cls: type[BaselineModel], path: str | Path, ckpt: dict | None = None
                        ) -> BaselineModel:
    """A model from a ``python -m baselines train`` checkpoint (``model`` + ``model_config``).

    Raises:
        BaselineCheckpointError: missing file, another model's checkpoint, wrong tensors.
    """
    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    if "model_config" not in ckpt or "model" not in ckpt:
        raise BaselineCheckpointError(
            f"{path}: not a training checkpoint (needs 'model' and 'model_config' keys)")
    stage = ckpt.get("stage", cls.name)
    if stage != cls.name:
        raise BaselineCheckpointError(f"{path}: a {stage!r} checkpoint, not {cls.name!r}; "
                                      f"load it with baselines.load({stage!r}, path)")
    model = cls(config_from_dict(cls.config_cls, ckpt["model_config"]),
                preset=ckpt.get("preset", "custom"))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise BaselineCheckpointError(f"{path}: tensors do not match the stored config "
                                      f"({str(e).splitlines()[0]})") from e
    model.checkpoint_sha256 = file_sha256(path)
    model.checkpoint_path = str(path)
    return model.eval()


def save_inference_checkpoint(model: BaselineModel, path: str | Path, extra: dict | None = None
                              ) -> Path:
    """Write model + config (no optimizer state) atomically, in the training format."""
    return checkpoint.write({"stage": model.name, "model_config": dataclasses.asdict(model.cfg),
                             "preset": model.preset, "model": model.state_dict(),
                             **(extra or {})}, path)
