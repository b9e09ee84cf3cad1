"""Model assembly from training checkpoints: the two stages trained apart (paper Sec. 3.2)
merged into one PixColor model (``combine``), and a PixelCNN-stage run given the global
conditioning branch (``add_global_branch``, not in the paper).

It sits above the model (:mod:`pixcolor.colorizer`, :mod:`pixcolor.stages`) and the file
format (:mod:`pixcolor.checkpoint`), so the file format need not know the model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pixcolor.checkpoint import read, write
from pixcolor.colorizer import PixColor
from pixcolor.config import ModelConfig, config_from_dict
from pixcolor.stages import PixelCNNStage, optimizer_parameters

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

    Args:
        pixelcnn_ckpt: the PixelCNN stage's training checkpoint (conditioning + PixelCNN).
        refine_ckpt: the refinement stage's training checkpoint, or a combined model.
        out: the file to write.
        extra: more keys for the written checkpoint.

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: the checkpoints are not of those stages, in that order, or the
            refinement network was trained for other :data:`REFINE_FIELDS`.
    """
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
    continues the run with the branch.

    Returns:
        The new parameter names, sorted.

    Raises:
        ValueError: not a PixelCNN-stage training checkpoint, already with the branch, or
            with weights or an optimizer layout other than the stage's.
    """
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
