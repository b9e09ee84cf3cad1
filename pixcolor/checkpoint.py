"""Checkpoint files, in one place: reading (one typed error), atomic writing, the numbered
files of a run folder, the random state a resumed run restores, and the two tools that
rewrite checkpoints (``combine``, ``add_global_branch``).

Every checkpoint is a ``torch.save``d dict. Training checkpoints hold ``stage``, ``step``,
``model_config``, ``model``, ``optimizer``, ``rng`` and provenance; inference checkpoints
(PixColor's combined model, a baseline's) hold ``model_config`` and ``model`` plus what the
writer adds. No pickled classes: configs are plain dicts, so files outlive renamed modules.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import torch

from pixcolor.config import ModelConfig, config_from_dict
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


# The model fields the refinement stage depends on: its network, the chroma resolution and
# bins it was trained to upsample, and its working scale (cond_stride x the chroma). The
# other fields belong to the PixelCNN stage, trained independently of it (Sec. 3.2).
REFINE_FIELDS = ("refine_width", "lowres_short_side", "bins", "cond_strides")


def combine(pixelcnn_ckpt: str | Path, refine_ckpt: str | Path, out: str | Path,
            extra: dict | None = None) -> Path:
    """Merge the two stages into one inference checkpoint.

    ``pixelcnn_ckpt`` is a ``pixelcnn`` training checkpoint; ``refine_ckpt`` is a ``refine``
    training checkpoint or a combined inference checkpoint (such as the shipped demo model),
    whose refinement network is taken with the step it records: a newly trained PixelCNN can
    replace an existing model's without its refinement run at hand.
    """
    from pixcolor.colorizer import PixColor  # it imports this module

    a, b = read(pixelcnn_ckpt), read(refine_ckpt)
    b_refine = b.get("stage") == "refine" or "refine" in b.get("stages", ())
    if a.get("stage") != "pixelcnn" or not b_refine:
        raise ValueError(
            "combine needs a pixelcnn checkpoint and a refine (or combined) checkpoint, "
            "in that order")
    cfg_a = config_from_dict(ModelConfig, a["model_config"])
    cfg_b = config_from_dict(ModelConfig, b["model_config"])
    diff = [k for k in REFINE_FIELDS if getattr(cfg_a, k) != getattr(cfg_b, k)]
    if diff:
        raise ValueError(
            "the refinement network was trained for a different model ("
            + ", ".join(f"{k}: {getattr(cfg_a, k)!r} vs {getattr(cfg_b, k)!r}" for k in diff)
            + "); train both stages with the same preset and architecture flags")
    # The PixelCNN stage's fields (conditioning, PixelCNN) come from its checkpoint.
    model = PixColor(cfg_a, preset=a.get("preset", "custom"))
    sd = {k: v for k, v in a["model"].items() if not k.startswith("refine.")}
    sd.update({k: v for k, v in b["model"].items() if k.startswith("refine.")})
    model.load_state_dict(sd)
    refine_step = b["step"] if "stage" in b else b.get("training", {}).get("refine_step")
    info = {"pixelcnn_step": a["step"], "refine_step": refine_step,
            "train_config": a["train_config"], "git_rev": a.get("git_rev")}
    if "stage" not in b:
        info["refine_from"] = Path(refine_ckpt).name
    model.save(out, extra={"training": info, **(extra or {})})
    return Path(out)


def add_global_branch(src: str | Path, dst: str | Path) -> list[str]:
    """Copy a ``pixelcnn`` training checkpoint, adding the zero-initialised global branch.

    The written checkpoint has ``cond_global=True``, the same outputs as ``src`` (the branch
    starts at zero), and Adam's state remapped to the new parameter order (the new
    parameters start without state), so ``pixcolor train pixelcnn --resume`` in its folder
    continues the run with the branch. Returns the new parameter names.
    """
    from pixcolor.stages import PixelCNNStage, optimizer_parameters

    st = read(src)
    if st.get("stage") != "pixelcnn":
        raise ValueError(f"{src}: not a pixelcnn training checkpoint")
    old_cfg = config_from_dict(ModelConfig, st["model_config"])
    if old_cfg.cond_global:
        raise ValueError(f"{src}: already has the global branch")
    new_cfg = dataclasses.replace(old_cfg, cond_global=True)
    old, new = PixelCNNStage(old_cfg), PixelCNNStage(new_cfg)
    old.model.load_state_dict(st["model"])
    missing, unexpected = new.model.load_state_dict(st["model"], strict=False)
    if unexpected or any(not k.startswith("cond.global_fc.") for k in missing):
        raise ValueError(f"{src}: unexpected keys {unexpected}, missing {missing}")

    def order(stage) -> list[str]:
        names = {id(p): n for n, p in stage.model.named_parameters()}
        return [names[id(p)] for p in optimizer_parameters(stage)]

    old_names, new_names = order(old), order(new)
    opt = st["optimizer"]
    if [g["params"] for g in opt["param_groups"]] != [list(range(len(old_names)))]:
        raise ValueError(f"{src}: unexpected optimizer layout")
    pos = {n: i for i, n in enumerate(new_names)}
    opt["state"] = {pos[old_names[i]]: v for i, v in opt["state"].items()}
    opt["param_groups"][0]["params"] = list(range(len(new_names)))
    st["model_config"] = dataclasses.asdict(new_cfg)
    st["model"] = new.model.state_dict()
    write(st, dst)
    return sorted(missing)
