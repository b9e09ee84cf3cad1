"""The paper's baselines (Fig. 6) as trainable PyTorch reimplementations.

* ``cic``: Zhang et al. 2016, "Colorful Image Colorization" (:mod:`baselines.cic`);
* ``lrac``: Larsson et al. 2016, "Learning Representations for Automatic Colorization"
  (:mod:`baselines.lrac`);
* ``ltbc``: Iizuka et al. 2016, "Let there be Color!" (:mod:`baselines.ltbc`).

A registry in the style of timm's ``create_model``::

    model = baselines.create("cic", preset="small")       # random init, or preset="paper"
    model = baselines.load("cic", "runs/cic/ckpt_00020000.pt")   # our checkpoints
    model = baselines.load("cic", "colorization_release_v2-9b330a0b.pth")  # authors' weights
    rgb = model.colorize([gray_uint8])[0]                  # (H, W, 3) uint8

Importing this package registers the three models in :data:`REGISTRY` (name -> model class,
whose ``presets`` are its ``paper``, ``small`` and ``tiny`` configs) and their training
stages ``cic``, ``lrac`` and ``ltbc`` with :mod:`pixcolor.stages`, so ``python -m baselines
train NAME`` reuses :func:`pixcolor.train.train`.
The benchmark harness (``bench.methods``) reaches them through :func:`available` and
:func:`load`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from baselines import cic, lrac, ltbc  # noqa: F401 - importing them registers the baselines
from baselines.base import (
    REGISTRY,
    BaselineCheckpointError,
    BaselineModel,
    build,
    load_our_checkpoint,
    read_checkpoint,
)
from pixcolor.config import Preset
from pixcolor.io import file_sha256

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
INFERENCE_FIELDS = {"temperature", "decode", "infer_size", "max_side"}  # safe to change on load


def presets(name: str) -> dict[str, Preset]:
    """The named presets (``paper``, ``small``, ``tiny``) of a baseline."""
    return REGISTRY[name].presets


def create(name: str, preset: str = "small", **kw) -> BaselineModel:
    """A randomly initialised baseline in eval mode.

    Args:
        name: ``cic``, ``lrac`` or ``ltbc``.
        preset: ``paper`` (the original architecture), ``small`` (CPU demo) or ``tiny``.
        **kw: model-config fields to override (e.g. ``temperature=1.0`` for CIC).

    Raises:
        KeyError: unknown name or preset.
    """
    return build(REGISTRY[name], preset, **kw)


def shipped_checkpoint(name: str) -> Path:
    """Where the demo checkpoint of a baseline lives (it may not exist yet)."""
    return CHECKPOINT_DIR / f"{REGISTRY[name].name}_small.pt"


def load(name: str, path: str | Path | None = None, device: str = "cpu", **kw) -> BaselineModel:
    """Load a baseline: our training checkpoint, or for ``cic`` the authors' eccv16 weights.

    Args:
        name: ``cic``, ``lrac`` or ``ltbc``.
        path: a ``python -m baselines train`` checkpoint (``model`` + ``model_config``), for
            ``cic`` also richzhang/colorization's ``colorization_release_v2-9b330a0b.pth``
            (or any state dict with its names and shapes); None = the shipped demo one.
        device: torch device.
        **kw: test-time config overrides (``temperature``, ``decode``, ``infer_size``,
            ``max_side``); the official CIC weights default to ``decode="mean"`` (the PyTorch
            port's forward), ``decode="annealed"`` gives the paper's T = 0.38.

    Raises:
        BaselineCheckpointError: missing file, wrong model or mismatching tensors.
        ValueError: an override that is not a test-time setting.
    """
    cls = REGISTRY[name]
    path = Path(path) if path is not None else shipped_checkpoint(name)
    ckpt = read_checkpoint(path)
    allowed = INFERENCE_FIELDS & {f.name for f in dataclasses.fields(cls.config_cls)}
    if set(kw) - allowed:
        raise ValueError(f"{name}: only the test-time settings {sorted(allowed)} can change "
                         f"on load, not {sorted(set(kw) - allowed)}")
    if "model_config" in ckpt:
        model = load_our_checkpoint(cls, path, ckpt)
        model.cfg = dataclasses.replace(model.cfg, **kw)
        return model.to(device)
    if name == "cic" and any(k.startswith("model1.") for k in ckpt):
        model = build(cic.CIC, "paper", **{"decode": "mean", **kw})
        model.load_official(ckpt, source=str(path))
        model.preset = "official"
        model.checkpoint_sha256, model.checkpoint_path = file_sha256(path), str(path)
        return model.eval().to(device)
    raise BaselineCheckpointError(
        f"{path}: neither a baselines training checkpoint (no 'model_config')"
        + (" nor the eccv16 CIC weights (no 'model1.*' tensors)" if name == "cic" else ""))


def available(name: str, path: str | Path | None = None) -> tuple[bool, str]:
    """(True, "") when :func:`load` can find a checkpoint, else (False, what to do)."""
    path = Path(path) if path is not None else shipped_checkpoint(name)
    if path.is_file():
        return True, ""
    return False, (f"no {name} checkpoint at {path}; train one with `python -m baselines "
                   f"train {name} --data DIR --out runs/{name}` and pass it, or ship "
                   f"{shipped_checkpoint(name).name}")


__all__ = ["BaselineCheckpointError", "BaselineModel", "REGISTRY", "available", "create",
           "load", "presets", "shipped_checkpoint"]
