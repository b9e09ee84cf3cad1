"""How a training run starts: fresh (the stage's config completed from its data), resumed
from the newest checkpoint of its folder, or warm-started from another run's weights; and
the checks that refuse a start that would not be what the caller asked for."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pixcolor import checkpoint
from pixcolor.config import RunOptions, config_from_dict
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


def read_warm_start(path: str | Path, stage_name: str, config_cls) -> tuple[dict, dict, dict]:
    """(model config dict, model state dict, provenance) of a warm-start checkpoint.

    Raises:
        RunSetupError: unreadable, or not a checkpoint of ``stage_name``'s model (the
            message names it).
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
    if model_of.get(kind, kind) != model_of.get(stage_name, stage_name):
        raise RunSetupError(
            f"--warm-start {path}: a {kind!r} checkpoint cannot start a {stage_name!r} run")
    tr = st.get("training") or {}
    steps = {k: v for k, v in tr.items() if k.endswith("step")} or {"step": st.get("step")}
    return cfg, weights, {"file": path.name, "sha256": file_sha256(path), "steps": steps}


@dataclass
class RunStart:
    """A run ready to train: its stage, built from the run's model config and preset (a
    resumed run's or a warm start's own) and holding the starting weights, and what the run
    carries over from an earlier one."""

    stage: Stage
    resumed: dict | None  # a resumed run's newest checkpoint (optimizer, RNG state, step)
    warm_start: dict | None  # the run's warm-start record (file, sha256, steps), if any

    @property
    def step(self) -> int:
        """The step the run continues from (0 unless resumed)."""
        return int(self.resumed["step"]) if self.resumed is not None else 0


def start_run(stage_cls: type[Stage], dataset, out: Path, mcfg, opts: RunOptions) -> RunStart:
    """The run's stage with its starting weights. A resumed run takes its newest checkpoint's
    config and preset, a warm start its file's config, a fresh run the caller's ``mcfg``
    completed by the stage's ``prepare_config``.

    Raises:
        RunSetupError: the resumed folder or the warm-start file holds another model, or the
            caller's ``opts.model_overrides`` differ from its architecture.
    """
    ckpts = checkpoint.numbered(out) if opts.resume else []
    preset, resumed, warm, warm_weights = opts.preset, None, None, None
    if ckpts:
        resumed = _read_resumed(ckpts[-1], stage_cls.name, opts.model_overrides)
        mcfg = config_from_dict(stage_cls.config_cls, resumed["model_config"])
        preset = resumed.get("preset", preset)
        warm = resumed.get("warm_start")
    elif opts.warm_start:
        cfg, warm_weights, warm = read_warm_start(opts.warm_start, stage_cls.name,
                                                  stage_cls.config_cls)
        _check_overrides(Path(opts.warm_start), cfg, opts.model_overrides, resuming=False)
        mcfg = config_from_dict(stage_cls.config_cls, cfg)
    else:
        mcfg = stage_cls.prepare_config(mcfg, dataset, out=out, overrides=opts.model_overrides,
                                        options=opts.stage_options)
    stage = stage_cls(mcfg, preset=preset)
    if resumed is not None:
        stage.model.load_state_dict(resumed["model"])
        log.info("resuming %s from %s (step %d)", stage.name, ckpts[-1], int(resumed["step"]))
    elif warm_weights is not None:
        stage.model.load_state_dict(warm_weights)
        log.info("warm start from %s (%s)", opts.warm_start, warm["steps"])
    elif opts.init_from:
        report = stage.init_from(opts.init_from)
        log.info("initialised from %s: %d tensors", opts.init_from, len(report["loaded"]))
    return RunStart(stage, resumed, warm)


def _read_resumed(path: Path, stage_name: str, overrides: dict) -> dict:
    """The checkpoint a resumed run continues from, refused when another stage wrote it or
    the caller's model fields differ from its own."""
    state = checkpoint.read(path)
    if state.get("stage") != stage_name:
        raise RunSetupError(f"--resume {path}: a {state.get('stage')!r} checkpoint, "
                            f"not {stage_name!r}; use another --out folder")
    _check_overrides(path, state["model_config"], overrides, resuming=True)
    return state
