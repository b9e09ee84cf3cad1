"""Training of PixColor's two stages on CPU, one GPU or many GPUs (paper Table 2).

``python -m pixcolor train pixelcnn|refine --data DIR --out DIR [--preset small]`` and, for
many GPUs, ``torchrun --nproc-per-node N -m pixcolor train ...`` (DistributedDataParallel,
synchronous updates; the global batch is split evenly over the ranks, as the paper's 8 x 8).

* ``pixelcnn`` trains the conditioning network (ResNet + adaptation, with the gradient
  multiplier schedule) and the PixelCNN with teacher-forced cross-entropy.
* ``refine`` trains the refinement network on the *ground-truth* low-resolution chroma
  (Sec. 3.2) with an L1 loss, independently of the PixelCNN.

The data order is a function of (seed, step) alone: step ``t`` uses the global sample
positions ``t*B .. t*B+B-1`` of an endless sequence of seeded permutations, and each item's
augmentation is drawn from (seed, epoch, index). Checkpoints hold the model, optimizer, RNG
states and step, so ``--resume`` continues exactly where a run stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pixcolor.colorizer import PixColor
from pixcolor.config import ModelConfig, TrainConfig, config_from_dict
from pixcolor.io import file_sha256
from pixcolor.provenance import git_revision
from pixcolor.tasks import PixelCNNStage, Task, get_task

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class StepIndexer:
    """Batches of (index, epoch) for one rank, from step ``start`` on (endless)."""

    def __init__(self, n: int, batch: int, rank: int, world: int, seed: int, start: int):
        if batch % world:
            raise ValueError(f"batch size {batch} is not divisible by {world} processes")
        self.n, self.batch, self.rank, self.world = n, batch, rank, world
        self.seed, self.start = seed, start
        self._perm: tuple[int, torch.Tensor] | None = None

    def _perm_for(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return self._perm[1]

    def __iter__(self):
        per = self.batch // self.world
        step = self.start
        while True:
            out = []
            for k in range(self.rank * per, (self.rank + 1) * per):
                p = step * self.batch + k
                epoch = p // self.n
                out.append((int(self._perm_for(epoch)[p % self.n]), epoch))
            yield out
            step += 1


class _EpochItems(Dataset):
    """Adapter: item ``(index, epoch)`` of a dataset with ``set_epoch`` and indexing.

    Each DataLoader worker holds its own copy of the dataset, so setting the epoch per item
    is safe and makes every item a function of (seed, epoch, index) alone.
    """

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, key):
        idx, epoch = key
        self.ds.set_epoch(epoch)
        return self.ds[idx]


def _collate(items: list[dict]) -> dict[str, torch.Tensor]:
    keys = ("y", "bins", "lowres", "cbcr", "label")
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in keys}


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of the update that takes the model from ``step`` to ``step + 1``.

    Linear warm-up over the first ``warmup_steps``, constant, then (``decay_steps`` > 0) a
    linear decay that reaches ``lr / decay_steps`` at the last step of ``steps``. The decay
    is a function of the step alone, so a run resumed with a longer ``--steps`` and a
    ``--decay-steps`` anneals from where the constant phase stopped.
    """
    lr = cfg.lr
    if cfg.warmup_steps and step < cfg.warmup_steps:
        lr *= (step + 1) / cfg.warmup_steps
    if cfg.decay_steps and step >= cfg.steps - cfg.decay_steps:
        lr *= max(cfg.steps - step, 0) / cfg.decay_steps
    return lr


def list_checkpoints(out: Path) -> list[Path]:
    return sorted(out.glob("ckpt_*.pt"))


def save_checkpoint(out: Path, state: dict, step: int, keep_last: int) -> Path:
    """Atomic write (temp file, then rename); keeps the newest ``keep_last`` files."""
    path = out / f"ckpt_{step:08d}.pt"
    tmp = out / f".ckpt_{step:08d}.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    for old in list_checkpoints(out)[:-keep_last] if keep_last > 0 else []:
        old.unlink(missing_ok=True)
    return path


def _rng_state() -> dict:
    import random

    import numpy as np

    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate()}


def _set_rng_state(st: dict) -> None:
    import random

    import numpy as np

    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])


def set_bn_frozen(module: nn.Module, frozen: bool) -> None:
    """BatchNorm layers use their running statistics (eval mode) when ``frozen``."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train(not frozen)


def train(stage: str, dataset, out: str | Path, mcfg, tcfg: TrainConfig, *,
          preset: str = "custom", device: str = "cpu", resume: bool = False,
          init_from: str | None = None, warm_start: str | None = None,
          deterministic: bool = False, freeze_bn: bool = False,
          max_minutes: float | None = None, progress: bool = True) -> dict:
    """Train one stage; returns a summary dict (final step, last loss, checkpoint path).

    Args:
        stage: a registered task: "pixelcnn", "refine" (or a baseline's, see
            :mod:`pixcolor.tasks`).
        mcfg: the task's model config (:class:`ModelConfig` for PixColor).
        dataset: an :class:`~pixcolor.data.ImageFolderDataset` (``__len__``, ``set_epoch``,
            items with tensors ``y``
            (1, S, S), ``bins`` (2, h, w), ``lowres`` (2, h, w), ``cbcr`` (2, S, S).
        out: run folder for checkpoints and ``log.csv`` (one row every ``log_every`` steps:
            the mean loss of those steps, the lr, images/s and wall seconds).
        init_from: torchvision ResNet / DeepLabV3 weights for the conditioning network.
        warm_start: a checkpoint of this model (a training checkpoint of any stage, a combined
            PixColor model, a baseline's inference checkpoint) whose weights start a new run;
            the architecture is taken from it, the optimizer, step count and lr schedule start
            afresh. Recorded in every checkpoint of the run (``warm_start``: file name, sha256,
            the steps it had been trained for).
        deterministic: deterministic algorithms (CPU runs are then exactly repeatable).
        freeze_bn: BatchNorm uses running statistics (and matches across process counts).
        max_minutes: stop (with a checkpoint) after this much wall time.
    """
    if not 0 <= tcfg.decay_steps <= tcfg.steps:
        raise ValueError(f"decay_steps={tcfg.decay_steps} must lie in [0, steps={tcfg.steps}] "
                         "(--decay-steps counts the last steps of --steps)")
    task_cls = get_task(stage)
    out = Path(out)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend)
    if device.startswith("cuda") and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    if deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        return _train(task_cls, dataset, out, mcfg, tcfg, preset=preset, device=device,
                      resume=resume, init_from=init_from, warm_start=warm_start,
                      freeze_bn=freeze_bn,
                      max_minutes=max_minutes, progress=progress, world=world, rank=rank)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


def read_warm_start(path: str | Path, stage: str, config_cls) -> tuple[dict, dict, dict]:
    """(model config dict, model state dict, provenance) of a warm-start checkpoint.

    Raises:
        ValueError: unreadable, or not a checkpoint of ``stage``'s model (the message names it).
    """
    path = Path(path)
    try:
        st = torch.load(path, map_location="cpu", weights_only=False)
        cfg, weights = st["model_config"], st["model"]
        config_from_dict(config_cls, cfg)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise ValueError(f"--warm-start {path}: not a readable model checkpoint ({exc})") from exc
    kind = st.get("stage") or ("pixcolor" if "stages" in st else None)
    pixcolor = ("pixelcnn", "refine", "pixcolor")  # every PixColor file holds the whole model
    model_of = {k: "pixcolor" for k in pixcolor}
    if model_of.get(kind, kind) != model_of.get(stage, stage):
        raise ValueError(f"--warm-start {path}: a {kind!r} checkpoint cannot start a {stage!r} run")
    tr = st.get("training") or {}
    steps = {k: v for k, v in tr.items() if k.endswith("step")} or {"step": st.get("step")}
    return cfg, weights, {"file": path.name, "sha256": file_sha256(path), "steps": steps}


def _train(task_cls: type[Task], dataset, out, mcfg, tcfg, *, preset, device, resume, init_from,
           warm_start, freeze_bn, max_minutes, progress, world, rank) -> dict:
    stage = task_cls.name
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(tcfg.seed)
    rev = git_revision()  # once: the code this process runs, whatever the checkout does later
    step = 0
    ckpts = list_checkpoints(out) if resume else []
    state, warm = None, None
    if warm_start and not ckpts:
        cfg, warm_weights, warm = read_warm_start(warm_start, stage, task_cls.config_cls)
        mcfg = config_from_dict(task_cls.config_cls, cfg)
    if ckpts:
        state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
        if state.get("stage") != stage:
            raise ValueError(f"{ckpts[-1]}: a {state.get('stage')!r} checkpoint, not {stage!r}")
        mcfg = config_from_dict(task_cls.config_cls, state["model_config"])
        preset = state.get("preset", preset)
    wrapper = task_cls(mcfg, preset=preset)
    model = wrapper.model
    if state is not None:
        model.load_state_dict(state["model"])
        step = int(state["step"])
        warm = state.get("warm_start")
        log.info("resuming %s from %s (step %d)", stage, ckpts[-1], step)
    elif warm is not None:
        model.load_state_dict(warm_weights)
        log.info("warm start from %s (%s)", warm_start, warm["steps"])
    elif init_from:
        report = wrapper.init_from(init_from)
        log.info("initialised from %s: %d tensors", init_from, len(report["loaded"]))
    wrapper.to(device)
    cuda = device.startswith("cuda")
    if cuda:
        wrapper = wrapper.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    params = optimizer_parameters(wrapper)
    for p in params:
        p.requires_grad_(True)
    net: nn.Module = wrapper
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            wrapper, device_ids=[torch.device(device).index] if cuda else None,
            find_unused_parameters=task_cls.find_unused_parameters)
    opt = torch.optim.Adam(params, lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2),
                           weight_decay=tcfg.weight_decay)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])

    indexer = StepIndexer(len(dataset), tcfg.batch_size, rank, world, tcfg.seed, step)
    loader = DataLoader(_EpochItems(dataset), batch_sampler=indexer, collate_fn=_collate,
                        num_workers=tcfg.num_workers, pin_memory=cuda)
    logf = None
    if rank == 0:
        new = not (out / "log.csv").exists()
        logf = open(out / "log.csv", "a", newline="")  # noqa: SIM115
        writer = csv.writer(logf)
        if new:
            writer.writerow(["step", "loss", "lr", "images_per_s", "wall_s"])
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=tcfg.steps, initial=step, desc=f"train {stage}", unit="step")

    def checkpoint(at: int) -> Path | None:
        if rank != 0:
            return None
        st = {"stage": stage, "step": at, "preset": preset,
              "model_config": dataclasses.asdict(mcfg), "train_config": dataclasses.asdict(tcfg),
              "model": model.state_dict(), "optimizer": opt.state_dict(), "rng": _rng_state(),
              "git_rev": rev, "world_size": world, "stages": [stage], "warm_start": warm}
        return save_checkpoint(out, st, at, tcfg.keep_last)

    t0 = time.time()
    t_last, n_last = t0, 0
    last_loss, last_path = float("nan"), None
    loss_sum, loss_n = 0.0, 0  # since the last log row: the row holds their mean
    wrapper.set_modes()
    if freeze_bn:
        set_bn_frozen(model, True)
    it = iter(loader)
    try:
        while step < tcfg.steps:
            batch = {k: v.to(device, non_blocking=True) for k, v in next(it).items()}
            wrapper.before_step(step, tcfg)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, tcfg)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = net(batch)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"{stage}: loss is {loss.item()} at step {step}; stopping. The last good "
                    f"checkpoint is kept in {out} (lower --lr or enable --grad-clip).")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, tcfg.grad_clip)
            opt.step()
            step += 1
            n_last += tcfg.batch_size
            last_loss = float(loss.detach())
            loss_sum, loss_n = loss_sum + last_loss, loss_n + 1
            if bar is not None:
                bar.update(1)
            if rank == 0 and (step % tcfg.log_every == 0 or step == tcfg.steps):
                now = time.time()
                ips = n_last / max(now - t_last, 1e-9)
                mean_loss = loss_sum / max(loss_n, 1)
                writer.writerow([step, f"{mean_loss:.6f}", f"{lr_at(step - 1, tcfg):.3g}",
                                 f"{ips:.2f}", f"{now - t0:.1f}"])
                logf.flush()
                if bar is not None:
                    bar.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{ips:.1f}")
                t_last, n_last, loss_sum, loss_n = now, 0, 0.0, 0
            timed_out = max_minutes is not None and (time.time() - t0) / 60 > max_minutes
            if step % tcfg.ckpt_every == 0 or step == tcfg.steps or timed_out:
                last_path = checkpoint(step)
            if timed_out:
                log.info("stopping after %.1f minutes at step %d", max_minutes, step)
                break
    finally:
        if bar is not None:
            bar.close()
        if logf is not None:
            logf.close()
    if world > 1:
        dist.barrier()
    return {"stage": stage, "step": step, "loss": last_loss, "checkpoint": last_path,
            "wall_s": time.time() - t0, "model": model}


def optimizer_parameters(task: Task) -> list[nn.Parameter]:
    """The parameters a task's optimizer holds, in its order (its state is indexed by it)."""
    return [p for mod in task.trainable() for p in mod.parameters()]


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
    a = torch.load(pixelcnn_ckpt, map_location="cpu", weights_only=False)
    b = torch.load(refine_ckpt, map_location="cpu", weights_only=False)
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
    st = torch.load(src, map_location="cpu", weights_only=False)
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

    def order(task) -> list[str]:
        names = {id(p): n for n, p in task.model.named_parameters()}
        return [names[id(p)] for p in optimizer_parameters(task)]

    old_names, new_names = order(old), order(new)
    opt = st["optimizer"]
    if [g["params"] for g in opt["param_groups"]] != [list(range(len(old_names)))]:
        raise ValueError(f"{src}: unexpected optimizer layout")
    pos = {n: i for i, n in enumerate(new_names)}
    opt["state"] = {pos[old_names[i]]: v for i, v in opt["state"].items()}
    opt["param_groups"][0]["params"] = list(range(len(new_names)))
    st["model_config"] = dataclasses.asdict(new_cfg)
    st["model"] = new.model.state_dict()
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save(st, dst)
    return sorted(missing)


def config_with_overrides(cfg, overrides: dict):
    """``dataclasses.replace`` that ignores ``None`` values (unset command-line flags)."""
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


__all__ = ["train", "combine", "add_global_branch", "TrainingDiverged", "StepIndexer"]
