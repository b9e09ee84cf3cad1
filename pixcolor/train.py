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
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pixcolor import checkpoint
from pixcolor.config import RunOptions, TrainConfig
from pixcolor.provenance import git_revision
from pixcolor.run_start import RunSetupError, start_run
from pixcolor.stages import Stage, get_stage, optimizer_parameters

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


def set_bn_frozen(module: nn.Module, frozen: bool) -> None:
    """BatchNorm layers use their running statistics (eval mode) when ``frozen``."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train(not frozen)


def train(stage_name: str, dataset, out: str | Path, mcfg, tcfg: TrainConfig,
          opts: RunOptions | None = None) -> dict:
    """Train one stage; returns a summary dict (final step, last loss, checkpoint path, wall
    seconds, the trained model).

    Args:
        stage_name: a registered stage: "pixelcnn", "refine" (or a baseline's, see
            :mod:`pixcolor.stages`).
        dataset: an :class:`~pixcolor.data.ImageFolderDataset` (``__len__``, ``set_epoch``,
            items with tensors ``y`` (1, S, S), ``bins`` (2, h, w), ``lowres`` (2, h, w),
            ``cbcr`` (2, S, S)).
        out: run folder for checkpoints and ``log.csv`` (one row every ``log_every`` steps:
            the mean loss of those steps, the lr, images/s and wall seconds).
        mcfg: the stage's model config (:class:`ModelConfig` for PixColor) for a fresh run;
            a resumed or warm-started run takes its checkpoint's.
        tcfg: the optimisation settings.
        opts: how the run starts and runs (:class:`~pixcolor.config.RunOptions`: preset,
            device, resume, warm start, ...); a warm start is recorded in every checkpoint
            of the run (``warm_start``: file name, sha256, the steps it had been trained for).

    Raises:
        RunSetupError: the run cannot start as asked (see :mod:`pixcolor.run_start`).
        TrainingDiverged: the loss became NaN or infinite.
    """
    opts = opts if opts is not None else RunOptions()
    if not 0 <= tcfg.decay_steps <= tcfg.steps:
        raise ValueError(f"decay_steps={tcfg.decay_steps} must lie in [0, steps={tcfg.steps}] "
                         "(--decay-steps counts the last steps of --steps)")
    stage_cls = get_stage(stage_name)
    procs = _Processes.join(opts.device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    if opts.deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        return _train(stage_cls, dataset, Path(out), mcfg, tcfg, opts, procs)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


@dataclass(frozen=True)
class _Processes:
    """This process's place among the ``world`` processes of a run (torchrun's environment):
    its ``rank`` and its ``device`` (``cuda:LOCAL_RANK`` for many GPUs)."""

    world: int
    rank: int
    device: str

    @classmethod
    def join(cls, device: str) -> _Processes:
        """Read torchrun's environment; with many processes, join their process group."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda") and world > 1:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(device)
        return cls(world, rank, device)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


def _train(stage_cls: type[Stage], dataset, out: Path, mcfg, tcfg: TrainConfig,
           opts: RunOptions, procs: _Processes) -> dict:
    """Start the run (:func:`~pixcolor.run_start.start_run`), put its stage on the device
    with Adam over its trainable parameters (a resumed run's optimizer and random state
    restored), and train."""
    if procs.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(tcfg.seed)
    rev = git_revision()  # once: the code this process runs, whatever the checkout does later
    start = start_run(stage_cls, dataset, out, mcfg, opts)
    stage = start.stage
    stage.to(procs.device)
    if procs.cuda:
        stage.to(memory_format=torch.channels_last)
    params = _train_only(stage)
    net = _distributed(stage, procs)
    opt = torch.optim.Adam(params, lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2),
                           weight_decay=tcfg.weight_decay)
    if start.resumed is not None:  # the optimizer and the random streams continue
        opt.load_state_dict(start.resumed["optimizer"])
        checkpoint.set_rng_state(start.resumed["rng"])
    record = {"stage": stage.name, "preset": stage.preset,
              "model_config": dataclasses.asdict(stage.model_config),
              "train_config": dataclasses.asdict(tcfg), "git_rev": rev,
              "world_size": procs.world, "stages": [stage.name], "warm_start": start.warm_start}
    run = _Run(stage, net, opt, tcfg, out, procs, record)
    return run.loop(dataset, start.step, opts)


def _train_only(stage: Stage) -> list[nn.Parameter]:
    """Let gradients reach the parameters of the stage's ``trainable()`` modules alone;
    returns them in the optimizer's order (its saved state is indexed by it)."""
    for p in stage.model.parameters():
        p.requires_grad_(False)
    params = optimizer_parameters(stage)
    for p in params:
        p.requires_grad_(True)
    return params


def _distributed(stage: Stage, procs: _Processes) -> nn.Module:
    """The module a batch goes through: the stage, or on many processes its DDP wrapper
    (which averages the gradients over the processes)."""
    if procs.world == 1:
        return stage
    return nn.parallel.DistributedDataParallel(
        stage, device_ids=[torch.device(procs.device).index] if procs.cuda else None,
        find_unused_parameters=stage.find_unused_parameters)


@dataclass
class _Run:
    """One process's run once started: the stage, the module its loss goes through (``net``:
    the stage or its DDP wrapper), Adam over its trainable parameters, the settings, and
    ``record``, what every checkpoint of the run holds beside its step and state."""

    stage: Stage
    net: nn.Module
    opt: torch.optim.Optimizer
    tcfg: TrainConfig
    out: Path
    procs: _Processes
    record: dict

    def loop(self, dataset, step: int, opts: RunOptions) -> dict:
        """Train from ``step`` to ``tcfg.steps`` (or ``opts.max_minutes``), saving every
        ``ckpt_every`` steps and at the end; returns the run's summary."""
        tcfg, procs = self.tcfg, self.procs
        indexer = StepIndexer(len(dataset), tcfg.batch_size, procs.rank, procs.world, tcfg.seed,
                              step)
        # The loader's own generator: making its iterator must not draw from torch's global
        # random stream, or a resumed run (whose stream is restored before) would be shifted
        # by one draw and stages that sample during training (LRAC's pixels) would diverge.
        loader = DataLoader(_EpochItems(dataset), batch_sampler=indexer, collate_fn=_collate,
                            num_workers=tcfg.num_workers, pin_memory=procs.cuda,
                            generator=torch.Generator().manual_seed(tcfg.seed))
        t0 = time.time()
        run_log = None
        if procs.rank == 0:
            run_log = _RunLog(self.out, self.stage.name, tcfg, step, t0, bar=opts.progress)
        last_loss, last_path = float("nan"), None
        self.stage.set_modes()
        if opts.freeze_bn:
            set_bn_frozen(self.stage.model, True)
        batches = iter(loader)
        try:
            while step < tcfg.steps:
                batch = {k: v.to(procs.device, non_blocking=True)
                         for k, v in next(batches).items()}
                last_loss = self.step(batch, step)
                step += 1
                if run_log is not None:
                    run_log.update(step, last_loss)
                timed_out = (opts.max_minutes is not None
                             and (time.time() - t0) / 60 > opts.max_minutes)
                if step % tcfg.ckpt_every == 0 or step == tcfg.steps or timed_out:
                    last_path = self.save(step) if procs.rank == 0 else None
                if timed_out:
                    log.info("stopping after %.1f minutes at step %d", opts.max_minutes, step)
                    break
        finally:
            if run_log is not None:
                run_log.close()
        if procs.world > 1:
            dist.barrier()
        return {"stage": self.stage.name, "step": step, "loss": last_loss,
                "checkpoint": last_path, "wall_s": time.time() - t0, "model": self.stage.model}

    def step(self, batch: dict[str, torch.Tensor], step: int) -> float:
        """One optimizer step at ``step``'s learning rate; returns the batch's loss."""
        tcfg = self.tcfg
        self.stage.before_step(step, tcfg)
        for g in self.opt.param_groups:
            g["lr"] = lr_at(step, tcfg)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.procs.cuda):
            loss = self.net(batch)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"{self.stage.name}: loss is {loss.item()} at step {step}; stopping. The last "
                f"good checkpoint is kept in {self.out} (lower --lr or enable --grad-clip).")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if tcfg.grad_clip > 0:
            params = [p for g in self.opt.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, tcfg.grad_clip)
        self.opt.step()
        return float(loss.detach())

    def save(self, step: int) -> Path:
        """Write ``ckpt_<step>.pt``: the model, the optimizer, the random state, ``record``."""
        st = {**self.record, "step": step, "model": self.stage.model.state_dict(),
              "optimizer": self.opt.state_dict(), "rng": checkpoint.rng_state()}
        return checkpoint.save_numbered(self.out, st, step, self.tcfg.keep_last)


class _RunLog:
    """Rank 0's record of a run: ``log.csv`` rows every ``log_every`` steps and at the last
    (the mean loss since the previous row, the lr of the row's last step, images/s, wall
    seconds since ``t0``) and an optional progress bar."""

    def __init__(self, out: Path, stage_name: str, tcfg: TrainConfig, step: int, t0: float,
                 bar: bool):
        self.tcfg, self.t0 = tcfg, t0
        self.t_last, self.n_last = t0, 0
        self.loss_sum, self.loss_n = 0.0, 0
        new = not (out / "log.csv").exists()  # appended to by a resumed run
        self.logf = open(out / "log.csv", "a", newline="")  # noqa: SIM115 - see close()
        self.writer = csv.writer(self.logf)
        if new:
            self.writer.writerow(["step", "loss", "lr", "images_per_s", "wall_s"])
        self.bar = None
        if bar:
            from tqdm import tqdm

            self.bar = tqdm(total=tcfg.steps, initial=step, desc=f"train {stage_name}",
                            unit="step")

    def update(self, step: int, loss: float) -> None:
        """Count the step just taken (``step`` is the number of steps done)."""
        tcfg = self.tcfg
        self.n_last += tcfg.batch_size
        self.loss_sum, self.loss_n = self.loss_sum + loss, self.loss_n + 1
        if self.bar is not None:
            self.bar.update(1)
        if step % tcfg.log_every and step != tcfg.steps:
            return
        now = time.time()
        ips = self.n_last / max(now - self.t_last, 1e-9)
        mean_loss = self.loss_sum / max(self.loss_n, 1)
        self.writer.writerow([step, f"{mean_loss:.6f}", f"{lr_at(step - 1, tcfg):.3g}",
                              f"{ips:.2f}", f"{now - self.t0:.1f}"])
        self.logf.flush()
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{ips:.1f}")
        self.t_last, self.n_last, self.loss_sum, self.loss_n = now, 0, 0.0, 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.logf.close()


__all__ = ["RunOptions", "RunSetupError", "StepIndexer", "TrainingDiverged", "train"]
