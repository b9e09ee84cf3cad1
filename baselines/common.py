"""What the three baselines share: Lab tensors from training batches, the ``colorize`` entry
point, presets and checkpoint loading.

CIC (Zhang et al. 2016), LRAC (Larsson et al. 2016) and LTBC (Iizuka et al. 2016) all
predict the chrominance of CIE Lab from its lightness L. PixColor's conventions
(:meth:`pixcolor.colorizer.PixColor.colorize`) hold for every baseline:

* input: (H, W) or (H, W, 3) uint8 images of any size (the chroma of a colour input is
  discarded);
* output: one (H, W, 3) uint8 image per input, deterministic;
* luminance: the predicted ab is put together with the input's own L and converted to RGB
  as the authors' code does (``lab2rgb(cat(L_orig, ab_upsampled))``); the chroma of that
  RGB is then merged with the input's Y through :func:`pixcolor.color.merge_luma_chroma`,
  so that, as for PixColor, the output's Y equals the input's (up to uint8 rounding). The
  second step only changes pixels the Lab to RGB conversion had to clip, and it makes the
  benchmark compare chroma alone.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from pixcolor import checkpoint, color
from pixcolor.batching import batches_by_shape
from pixcolor.checkpoint import CheckpointError
from pixcolor.config import TrainConfig, config_from_dict
from pixcolor.io import file_sha256

L_CENT, L_NORM, AB_NORM = 50.0, 100.0, 110.0  # richzhang/colorization's Lab normalisation


class BaselineCheckpointError(CheckpointError):
    """A baseline checkpoint is missing, unreadable or belongs to another model."""


@dataclass(frozen=True)
class BaselinePreset:
    """A model config and the training settings that go with it."""

    model: object
    train: TrainConfig = field(default_factory=TrainConfig)


def lab_from_batch(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Lab of a training batch of :class:`pixcolor.data.ImageFolderDataset` items.

    Args:
        batch: ``y`` (B, 1, S, S) in [0, 1] and ``cbcr`` (B, 2, S, S) centred chroma.

    Returns:
        L (B, 1, S, S) float in [0, 100] and ab (B, 2, S, S) float, roughly in [-110, 110].
    """
    ycc = torch.cat([batch["y"], batch["cbcr"]], 1).float()
    with torch.autocast(ycc.device.type, enabled=False):  # targets in float32 under bf16
        lab = color.rgb_to_lab_torch(color.ycbcr_to_rgb(ycc))
    return lab[:, :1], lab[:, 1:]


def to_lightness(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) or (H, W, 3) uint8 -> (Y, L): (H, W) float32 Y in [0, 1], L in [0, 100]."""
    im = np.asarray(image)
    if im.dtype != np.uint8:
        raise TypeError(f"expected uint8 images, got {im.dtype}")
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, -1)
    if im.ndim != 3 or im.shape[2] != 3:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {im.shape}")
    gray = np.repeat(color.to_uint8(color.luminance(im))[..., None], 3, -1)
    return color.luminance(im), color.rgb_to_lab(gray)[..., 0].astype(np.float32)


def recombine(y: np.ndarray, lightness: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """The input's L + predicted ab -> RGB, then its chroma with the input's exact Y.

    Args:
        y: (H, W) float Y in [0, 1] of the input.
        lightness: (H, W) float L in [0, 100] of the input.
        ab: (H, W, 2) float predicted ab at the input's size.

    Returns:
        (H, W, 3) uint8 RGB whose Y equals ``y`` up to rounding.
    """
    with warnings.catch_warnings():  # predicted ab may leave the gamut (negative Z): clipped
        warnings.simplefilter("ignore", UserWarning)
        rgb = color.lab_to_rgb(np.concatenate([lightness[..., None], ab], -1))
    return color.merge_luma_chroma(y, color.rgb_to_ycbcr(rgb)[..., 1:])


class BaselineModel(nn.Module):
    """Base class: subclasses implement :meth:`predict_ab` and may change :meth:`work_size`.

    Attributes:
        cfg: the model config dataclass (``config_cls``).
        preset: name of the preset it came from ("custom" otherwise).
        checkpoint_sha256: SHA-256 of the file it was loaded from (None when built).
    """

    name: ClassVar[str] = "baseline"
    config_cls: ClassVar[type] = object

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


def build(cls: type[BaselineModel], presets: dict[str, BaselinePreset], preset: str = "small",
          **overrides) -> BaselineModel:
    """A model of a preset, with config fields replaced by ``overrides``."""
    try:
        cfg = presets[preset].model
    except KeyError:
        raise KeyError(f"unknown {cls.name} preset {preset!r}; choose one of "
                       f"{sorted(presets)}") from None
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
