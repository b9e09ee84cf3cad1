"""Model and training configurations, the named presets (paper Table 2), the options of a
training run, and the command-line flags generated from the dataclasses.

Every checkpoint stores both dataclasses as plain dicts, so a checkpoint alone rebuilds its
model (``ModelConfig(**ckpt["model_config"])``).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Generic, TypeVar


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of both PixColor networks."""

    # --- conditioning network (ResNet bottleneck stages, torchvision names) ---
    cond_blocks: tuple[int, int, int] = (3, 4, 23)  # blocks in layer1, layer2, layer3 (ResNet-101)
    cond_width: int = 64  # planes of layer1 (layer2: 2x, layer3: 4x); bottleneck expansion 4
    cond_strides: tuple[int, int, int] = (2, 2, 1)  # first-block stride of each stage (Table 2)
    cond_layer3_dilation: int = 2  # layer3 runs at stride 1; DeepLab uses dilation 2 there
    adapt_channels: int = 64  # adaptation network: 3 conv 3x3 with this many maps (Table 2)
    # Not in the paper: add a linear map of the globally averaged backbone features to every
    # position before the adaptation network (zero-initialised), for conditioning networks
    # too small to see the whole image (the paper's ResNet-101 sees all of it).
    cond_global: bool = False
    # --- gated conditional PixelCNN (Table 2) ---
    pcnn_channels: int = 64  # feature maps of the masked 7x7 conv and the gated blocks
    pcnn_first_kernel: int = 7  # masked Conv2D 7x7
    pcnn_blocks: int = 10  # 10 gated Conv2D blocks
    pcnn_kernel: int = 5  # 5x5 in each gated block
    pcnn_head_channels: int = 1024  # masked 1x1 conv to 1024
    bins: int = 32  # Cb and Cr are each discretised into 32 bins (Sec. 3.1)
    lowres_short_side: int = 28  # PixelCNN resolution: shorter side of the chroma image
    # --- refinement network (Table 2), widths scaled by refine_width / 64 ---
    refine_width: int = 64  # 64 = the paper's widths (64, 128, 256, 512, 1024 maps)
    init_std: float = 0.1  # truncated normal stddev for weights (Table 2); biases 0

    @property
    def cond_stride(self) -> int:
        """Total downsampling of the conditioning network (stem 2 x stage strides)."""
        s = 2
        for st in self.cond_strides:
            s *= st
        return s


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (paper Table 2 for the ``paper`` preset)."""

    steps: int = 360_000  # iterations
    batch_size: int = 64  # global batch (8 GPUs x 8)
    lr: float = 3e-4  # Adam learning rate
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    warmup_steps: int = 0  # linear warm-up (0 = constant lr, as in the paper)
    decay_steps: int = 0  # linear decay to 0 over the last N of `steps` (0 = none, as in the paper)
    grad_clip: float = 0.0  # 0 = no clipping (the paper does not mention any)
    image_size: int = 224  # training crop; conditioning input = 8 x lowres for ResNet-101
    crop_scale_min: float = 0.35  # random-resized crop scale range lower bound
    colorness_threshold: float = 0.05  # Table 2
    cond_grad_start: int = 100_000  # gradient multiplier engaged at this step (Table 2)
    cond_grad_before: float = 0.0  # multiplier before that step
    cond_grad_after: float = 1.0  # multiplier from that step on
    ckpt_every: int = 1000
    keep_last: int = 3
    log_every: int = 50
    seed: int = 0
    num_workers: int = 2


ModelConfigT = TypeVar("ModelConfigT")


@dataclass(frozen=True)
class Preset(Generic[ModelConfigT]):
    """A model config and the training settings that go with it: the presets of PixColor
    (:data:`PRESETS`, of :class:`ModelConfig`) and of each baseline (their configs)."""

    model: ModelConfigT
    train: TrainConfig = field(default_factory=TrainConfig)


PRESETS: dict[str, Preset[ModelConfig]] = {
    # The paper's exact settings (Table 2).
    "paper": Preset(ModelConfig()),
    # CPU-sized: the same structure (ResNet bottleneck stages, adaptation net, gated
    # PixelCNN with vertical/horizontal stacks, refinement net), fewer and narrower layers.
    # Conditioning stride 4 (no stride in layer2), so a 112x112 crop gives 28x28 chroma.
    "small": Preset(
        model=ModelConfig(
            cond_blocks=(1, 2, 2), cond_width=16, cond_strides=(2, 1, 1),
            cond_layer3_dilation=2, adapt_channels=32, pcnn_channels=32, pcnn_blocks=5,
            pcnn_head_channels=256, refine_width=16,
            init_std=0.0,  # PyTorch default init: faster at batch 16 on a CPU
        ),
        train=TrainConfig(
            steps=20_000, batch_size=16, lr=1e-3, warmup_steps=200, grad_clip=1.0,
            image_size=112, cond_grad_start=0, ckpt_every=250, log_every=25, num_workers=1,
        ),
    ),
    # For tests: seconds on a CPU.
    "tiny": Preset(
        model=ModelConfig(
            cond_blocks=(1, 1, 1), cond_width=4, cond_strides=(1, 1, 1),
            cond_layer3_dilation=1, adapt_channels=8, pcnn_channels=8, pcnn_first_kernel=5,
            pcnn_blocks=2, pcnn_kernel=3, pcnn_head_channels=16, lowres_short_side=8,
            refine_width=4,
        ),
        train=TrainConfig(
            steps=20, batch_size=4, lr=1e-3, image_size=16, cond_grad_start=0,
            ckpt_every=5, log_every=1, num_workers=0,
        ),
    ),
}


def get_preset(name: str) -> Preset[ModelConfig]:
    """Look up a preset by name; raises ``KeyError`` naming the choices."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


@dataclass(frozen=True)
class RunOptions:
    """How a training run starts and runs, beside its two configs: the run flags both
    training CLIs share (:func:`pixcolor.cli.add_run_flags`)."""

    preset: str = "custom"  # the preset's name, recorded in the checkpoints
    device: str = "cpu"  # torch device (under torchrun with cuda: each rank's own GPU)
    resume: bool = False  # continue from the newest checkpoint of the run folder
    init_from: str | None = None  # pretrained weights for the stage's ``init_from`` hook
    # A checkpoint of the same model whose weights (and architecture) start a new run with
    # a fresh optimizer, step count and lr schedule.
    warm_start: str | None = None
    deterministic: bool = False  # deterministic algorithms (CPU runs exactly repeatable)
    freeze_bn: bool = False  # BatchNorm uses running statistics (equal across process counts)
    max_minutes: float | None = None  # stop, with a checkpoint, after this much wall time
    progress: bool = True  # a progress bar on rank 0
    # The model fields the caller set explicitly (command-line flags): a resumed or
    # warm-started run is refused when its checkpoint's differ.
    model_overrides: dict = field(default_factory=dict)
    # The stage's own options for its ``prepare_config`` hook (CIC's ``prior_images``).
    stage_options: dict = field(default_factory=dict)


def config_from_dict(cls, d: dict):
    """Rebuild a config dataclass from a checkpoint dict (lists back to tuples, unknown keys
    dropped)."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in d.items():
        if k in names:
            kwargs[k] = tuple(v) if isinstance(v, list) else v
    return cls(**kwargs)


def config_with_overrides(cfg, overrides: dict):
    """``dataclasses.replace`` that ignores ``None`` values (unset command-line flags)."""
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


# Command-line flags for config dataclasses (both training CLIs use them).
def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers separated by commas, "
                                         "such as 1,2,2") from None


def _bool(s: str) -> bool:
    v = s.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{s!r} is not a boolean (use true or false)")


def add_dataclass_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls,
                        group: str | None = None, skip: Collection[str] = ()) -> None:
    """One ``--field-name`` flag per dataclass field, default None (= keep the preset).

    Tuple fields take comma-separated integers (``--cond-blocks 1,2,2``); ``group`` puts the
    flags under their own heading in ``--help``; the fields named in ``skip`` get no flag.
    """
    target = parser.add_argument_group(group) if group else parser
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        typ = type(f.default) if f.default is not dataclasses.MISSING else str
        if typ is bool:
            target.add_argument(flag, type=_bool, default=None, metavar="BOOL")
        elif typ is tuple:
            target.add_argument(flag, type=_int_tuple, default=None, metavar="INT,...")
        else:
            target.add_argument(flag, type=typ, default=None, metavar=typ.__name__.upper())


def dataclass_overrides(args, cls) -> dict:
    """The fields of ``cls`` given on the command line (flags left unset are None)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f.name, None) is not None}
