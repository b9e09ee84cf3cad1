"""Checkpoint files, in one place: reading (one typed error), atomic writing, the numbered
files of a run folder, and the random state a resumed run restores. Building a model from
checkpoints (``combine``, ``add_global_branch``) is :mod:`pixcolor.assembly`'s: this module
knows the file format, not the model, and imports nothing of the package but
:mod:`pixcolor.io`.

Every checkpoint is a ``torch.save``d dict. Training checkpoints hold ``stage``, ``step``,
``model_config``, ``model``, ``optimizer``, ``rng`` and provenance; inference checkpoints
(PixColor's combined model, a baseline's) hold ``model_config`` and ``model`` plus what the
writer adds. No pickled classes: configs are plain dicts, so files outlive renamed modules.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from pixcolor.io import atomic_open


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not the kind expected; the message names
    the file. The baselines' :class:`~baselines.base.BaselineCheckpointError` is one."""


def read(path: str | Path, error: type[CheckpointError] = CheckpointError,
         map_location: str | torch.device = "cpu") -> dict:
    """The dict saved in ``path``.

    Raises:
        CheckpointError (or ``error``): no such file, not a PyTorch file, not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
        raise error(f"{path}: not a readable PyTorch checkpoint ({e})") from e
    if not isinstance(ckpt, dict):
        raise error(f"{path}: expected a dict, got {type(ckpt).__name__}")
    return ckpt


def read_weights(path: str | Path, error: type[Exception] = CheckpointError) -> dict:
    """A third-party weights file (a torchvision state dict), read without unpickling code.

    Raises:
        CheckpointError (or ``error``): unreadable, or not a dict.
    """
    path = Path(path)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise error(f"{path}: cannot read a PyTorch state dict ({e})") from e
    if not isinstance(sd, dict):
        raise error(f"{path}: expected a state dict, got {type(sd).__name__}")
    return sd


def write(state: dict, path: str | Path) -> Path:
    """Save ``state`` to ``path`` atomically (:func:`pixcolor.io.atomic_open`), creating the
    folder: a crash leaves the old file or the new one, never half of one, and a failed save
    no temporary file."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        torch.save(state, f)
    return path


def numbered(out: str | Path) -> list[Path]:
    """The run folder's ``ckpt_<step>.pt`` files, oldest first."""
    return sorted(Path(out).glob("ckpt_*.pt"))


def latest(out: str | Path) -> Path | None:
    """The run folder's newest numbered checkpoint, or None."""
    files = numbered(out)
    return files[-1] if files else None


def save_numbered(out: str | Path, state: dict, step: int, keep_last: int) -> Path:
    """Write ``ckpt_<step>.pt`` atomically and keep the newest ``keep_last`` (all if <= 0)."""
    path = write(state, Path(out) / f"ckpt_{step:08d}.pt")
    for old in numbered(out)[:-keep_last] if keep_last > 0 else []:
        old.unlink(missing_ok=True)
    return path


def rng_state() -> dict:
    """The process's torch, NumPy and Python random states (saved with each checkpoint)."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate()}


def set_rng_state(st: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
