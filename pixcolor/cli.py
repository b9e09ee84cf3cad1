"""Command line: ``pixcolor train``, ``pixcolor combine``, ``pixcolor colorize``.

Training flags are generated from the :class:`~pixcolor.config.TrainConfig` and
:class:`~pixcolor.config.ModelConfig` dataclasses (``--lr``, ``--batch-size``, ``--steps``,
``--cond-width``, ``--cond-blocks 1,2,2`` ...); unset flags keep the preset's values.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pixcolor.config import (
    PRESETS,
    ModelConfig,
    RunOptions,
    TrainConfig,
    add_dataclass_flags,
    config_with_overrides,
    dataclass_overrides,
    get_preset,
)


def add_run_flags(parser: argparse.ArgumentParser, presets: list[str], init_from: str) -> None:
    """The flags of a training run that both training CLIs take (``train_command`` reads
    them); ``init_from`` is the help of ``--init-from`` (which weights it takes)."""
    p = parser
    p.add_argument("--data", required=True, help="image folder (ImageNet train layout or flat)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, log.csv)")
    p.add_argument("--preset", default="small", choices=presets)
    p.add_argument("--device", default="cpu")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--init-from", help=init_from)
    p.add_argument("--warm-start", metavar="CKPT",
                   help="start from this checkpoint's weights (and architecture) with a fresh "
                        "optimizer and step count, e.g. a shipped checkpoint")
    p.add_argument("--index", help="cached index file of the data folder")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--freeze-bn", action="store_true", help="BatchNorm uses running statistics")
    p.add_argument("--max-minutes", type=float, help="stop with a checkpoint after this long")


def train_command(args, stage_name: str, mcfg, tcfg, *, model_overrides: dict,
                  stage_options: dict | None = None, **dataset_kw) -> int:
    """What ``pixcolor train`` and ``python -m baselines train`` run once they have the
    configs: the training images, the run, its summary as JSON; the exit status (2: the run
    cannot start as asked, 3: the loss diverged).

    Args:
        args: the parsed flags of :func:`add_run_flags`.
        stage_name: the registered training stage.
        mcfg, tcfg: the model config and the training settings, flags applied.
        model_overrides: the model fields set by flags (a resume must not change them).
        stage_options: the stage's own options (``prepare_config``).
        **dataset_kw: more arguments of :class:`~pixcolor.data.ImageFolderDataset`.
    """
    from pixcolor.data import ImageFolderDataset
    from pixcolor.train import RunSetupError, TrainingDiverged, train

    ds = ImageFolderDataset(args.data, size=tcfg.image_size, train=True,
                            colorness_threshold=tcfg.colorness_threshold, seed=tcfg.seed,
                            scale=(tcfg.crop_scale_min, 1.0), index_path=args.index,
                            **dataset_kw)
    print(f"{args.data}: {training_images_found(ds, tcfg.colorness_threshold)}",
          file=sys.stderr)
    opts = RunOptions(preset=args.preset, device=args.device, resume=args.resume,
                      init_from=args.init_from, warm_start=args.warm_start,
                      deterministic=args.deterministic, freeze_bn=args.freeze_bn,
                      max_minutes=args.max_minutes, model_overrides=model_overrides,
                      stage_options=stage_options or {})
    try:
        res = train(stage_name, ds, args.out, mcfg, tcfg, opts)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except RunSetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in res.items()
                      if k != "model"}))
    return 0


def training_images_found(ds, colorness_threshold: float) -> str:
    """What a training folder held, in a user's words: the images kept and whether they
    came from class subfolders (ImageNet's ``<wnid>/`` layout) or a flat folder, then what
    was dropped, e.g. ``"39 training images (a flat folder: no class subfolders; 2 below
    colorness 0.05, 0 unreadable)"`` or ``"8 training images in 2 class folders (...)"``.

    Args:
        ds: a :class:`~pixcolor.data.ImageFolderDataset` (its ``classes`` are the
            first-level folder names: empty for a flat folder).
        colorness_threshold: the threshold the dataset dropped images under.
    """
    n_images, n_classes = ds.num_kept, len(ds.classes)
    dropped = (f"{ds.num_below_threshold} below colorness {colorness_threshold}, "
               f"{ds.num_unreadable} unreadable")
    images = f"{n_images} training image{'' if n_images == 1 else 's'}"
    if n_classes == 0:
        return f"{images} (a flat folder: no class subfolders; {dropped})"
    folders = f"{n_classes} class folder{'' if n_classes == 1 else 's'}"
    return f"{images} in {folders} ({dropped})"


def _train(args) -> int:
    preset = get_preset(args.preset)
    tcfg = config_with_overrides(preset.train, dataclass_overrides(args, TrainConfig))
    model_flags = dataclass_overrides(args, ModelConfig)
    for k, v in model_flags.items():
        want = getattr(preset.model, k)
        if isinstance(want, tuple) and len(v) != len(want):
            print(f"error: --{k.replace('_', '-')} takes {len(want)} integers "
                  f"(one per stage), got {len(v)}", file=sys.stderr)
            return 2
    mcfg = config_with_overrides(preset.model, model_flags)
    return train_command(args, args.stage, mcfg, tcfg, model_overrides=model_flags,
                         lowres_short_side=mcfg.lowres_short_side)


def _combine(args) -> int:
    from pixcolor.assembly import combine

    path = combine(args.pixelcnn, args.refine, args.out)
    print(f"wrote {path}")
    return 0


def _colorize(args) -> int:
    import torch

    from pixcolor.checkpoint import CheckpointError
    from pixcolor.colorize_files import colorize_files
    from pixcolor.colorizer import PixColor

    try:
        model = PixColor.load(args.checkpoint).to(args.device)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.set_grad_enabled(False)
    if args.rank is not None:
        return colorize_files(args.inputs, args.out, lambda batch: _best_of(model, args, batch),
                              batch_size=args.batch_size, seed=args.seed,
                              what=f"the most likely of {args.rank} samples each")
    samples = 3 if args.samples is None else args.samples
    return colorize_files(
        args.inputs, args.out,
        lambda batch: model.colorize(batch, num_samples=samples, seed=args.seed,
                                     temperature=args.temperature, batch_size=args.batch_size),
        batch_size=args.batch_size, seed=args.seed, what=f"{samples} samples each")


def _best_of(model, args, batch: list) -> list:
    """``--rank N``: per image, the sample of ``colorize(num_samples=N)`` with the highest
    PixelCNN log-likelihood (:meth:`PixColor.best_of`), as a :class:`Chosen`."""
    from pixcolor import color
    from pixcolor.colorize_files import Chosen

    ys = [color.luma(im) for im in batch]
    best = model.best_of(ys, args.seed, args.rank, temperature=args.temperature,
                         batch_size=args.batch_size)
    rgb = model.render(ys, best.chroma, batch_size=args.batch_size)
    return [Chosen(im, k, lp.tolist()) for im, k, lp in zip(rgb, best.index, best.logp,
                                                              strict=True)]


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pixcolor", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the pixelcnn or the refine stage")
    t.add_argument("stage", choices=["pixelcnn", "refine"])
    add_run_flags(t, sorted(PRESETS),
                  init_from="torchvision resnet101 / deeplabv3_resnet101 weights")
    add_dataclass_flags(t, TrainConfig, "training settings (default: the preset's)")
    add_dataclass_flags(t, ModelConfig, "architecture (default: the preset's; a new run only)")
    t.set_defaults(func=_train)

    c = sub.add_parser("combine", help="merge a pixelcnn and a refine (or combined) checkpoint")
    c.add_argument("--pixelcnn", required=True)
    c.add_argument("--refine", required=True,
                   help="a refine training checkpoint, or a combined model (its refinement)")
    c.add_argument("--out", required=True)
    c.set_defaults(func=_combine)

    z = sub.add_parser("colorize", help="colourise images or folders")
    z.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    z.add_argument("--out", required=True)
    how = z.add_mutually_exclusive_group()
    how.add_argument("--samples", type=int, default=None,
                     help="samples per image, <stem>_seed<seed>_sample<k>.png (default 3)")
    how.add_argument("--rank", type=_positive, metavar="N",
                     help="write per image only the sample of N (those of --samples N) that "
                          "the PixelCNN gives the highest log-likelihood, as "
                          "<stem>_seed<seed>_best<N>.png; prints which (chosen.json keeps it)")
    z.add_argument("--seed", type=int, default=1)
    z.add_argument("--temperature", type=float, default=1.0)
    z.add_argument("--checkpoint", help="default: the shipped demo checkpoint")
    z.add_argument("--device", default="cpu")
    z.add_argument("--batch-size", type=int, default=8)
    z.set_defaults(func=_colorize)
    return ap


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)
