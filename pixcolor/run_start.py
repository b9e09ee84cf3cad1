"""How a training run starts: fresh (the stage's config completed from its data), resumed
from the newest checkpoint of its folder, or warm-started from another run's weights; and
the checks that refuse a start that would not be what the caller asked for."""

from __future__ import annotations

import logging
from pathlib import Path

from pixcolor import checkpoint
from pixcolor.config import config_from_dict
from pixcolor.io import file_sha256
from pixcolor.stages import Stage

log = logging.getLogger(__name__)


class RunSetupError(ValueError):
    """A run cannot start as asked (a warm start from another model's checkpoint, a resume
    with other architecture flags); the message says what to change. The CLIs print it and
    exit with status 2."""


def _check_overrides(ref: Path, saved: dict, overrides: dict, resuming: bool) -> None:
    """Refuse model fields set by the caller that differ from those ``ref`` was trained with:
    a resumed or warm-started run keeps its architecture."""
    def norm(v):
        return tuple(v) if isinstance(v, list | tuple) else v

    changed = [k for k, v in overrides.items() if norm(saved.get(k)) != norm(v)]
    if changed:
        raise RunSetupError(
            f"{ref} was trained with "
            + ", ".join(f"{k}={norm(saved.get(k))!r}" for k in changed)
            + "; a resumed or warm-started run keeps its architecture (drop those flags"
            + (" or use a new --out)" if resuming else ")"))


def read_warm_start(path: str | Path, stage: str, config_cls) -> tuple[dict, dict, dict]:
    """(model config dict, model state dict, provenance) of a warm-start checkpoint.

    Raises:
        RunSetupError: unreadable, or not a checkpoint of ``stage``'s model (the message names
            it).
    """
    path = Path(path)
    try:
        st = checkpoint.read(path)
        cfg, weights = st["model_config"], st["model"]
        config_from_dict(config_cls, cfg)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise RunSetupError(f"--warm-start {path}: not a readable model checkpoint ({exc})"
                            ) from exc
    kind = st.get("stage") or ("pixcolor" if "stages" in st else None)
    pixcolor = ("pixelcnn", "refine", "pixcolor")  # every PixColor file holds the whole model
    model_of = {k: "pixcolor" for k in pixcolor}
    if model_of.get(kind, kind) != model_of.get(stage, stage):
        raise RunSetupError(
            f"--warm-start {path}: a {kind!r} checkpoint cannot start a {stage!r} run")
    tr = st.get("training") or {}
    steps = {k: v for k, v in tr.items() if k.endswith("step")} or {"step": st.get("step")}
    return cfg, weights, {"file": path.name, "sha256": file_sha256(path), "steps": steps}


def start_run(stage_cls: type[Stage], dataset, out: Path, mcfg, *, preset, resume, warm_start,
           init_from, model_overrides, options):
    """The run's stage with its starting weights: (stage, model config, preset, resumed state
    or None, warm-start provenance or None). A resumed run takes its newest checkpoint's
    config; a warm start its file's; a fresh run the caller's, completed by the stage's
    ``prepare_config``."""
    stage = stage_cls.name
    ckpts = checkpoint.numbered(out) if resume else []
    state, warm = None, None
    if warm_start and not ckpts:
        cfg, warm_weights, warm = read_warm_start(warm_start, stage, stage_cls.config_cls)
        _check_overrides(Path(warm_start), cfg, model_overrides or {}, resuming=False)
        mcfg = config_from_dict(stage_cls.config_cls, cfg)
    if ckpts:
        state = checkpoint.read(ckpts[-1])
        if state.get("stage") != stage:
            raise RunSetupError(f"--resume {ckpts[-1]}: a {state.get('stage')!r} checkpoint, "
                                f"not {stage!r}; use another --out folder")
        _check_overrides(ckpts[-1], state["model_config"], model_overrides or {}, resuming=True)
        mcfg = config_from_dict(stage_cls.config_cls, state["model_config"])
        preset = state.get("preset", preset)
    if state is None and warm is None:
        mcfg = stage_cls.prepare_config(mcfg, dataset, out=out, overrides=model_overrides or {},
                                       options=options or {})
    wrapper = stage_cls(mcfg, preset=preset)
    if state is not None:
        wrapper.model.load_state_dict(state["model"])
        warm = state.get("warm_start")
        log.info("resuming %s from %s (step %d)", stage, ckpts[-1], int(state["step"]))
    elif warm is not None:
        wrapper.model.load_state_dict(warm_weights)
        log.info("warm start from %s (%s)", warm_start, warm["steps"])
    elif init_from:
        report = wrapper.init_from(init_from)
        log.info("initialised from %s: %d tensors", init_from, len(report["loaded"]))
    return wrapper, mcfg, preset, state, warm
