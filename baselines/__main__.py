"""Command line: ``python -m baselines train|export|colorize|info``.

* ``train cic|lrac|ltbc --data DIR --out DIR [--preset small|paper|tiny]``: the shared
  trainer (:func:`pixcolor.train.train`: CPU, GPU, ``torchrun`` DDP, atomic checkpoints,
  ``--resume``); flags are generated from :class:`~pixcolor.config.TrainConfig` and from the
  baseline's model config (unset flags keep the preset's values). For CIC the empirical ab
  prior is first counted over ``--prior-images`` images (``OUT/cic_prior.npy``).
* ``export CKPT --out FILE``: an inference checkpoint (weights, configs, step; no optimizer).
* ``colorize NAME IMAGE_OR_DIR... --out DIR [--checkpoint PATH]``.
* ``info``: parameter counts of every preset.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

import baselines
from pixcolor.cli import add_run_flags, train_command
from pixcolor.config import (
    TrainConfig,
    add_dataclass_flags,
    config_with_overrides,
    dataclass_overrides,
)


def _model_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field name of the baselines' model configs (several share ``width`` or
    ``max_side``), none for tuple fields (CIC's ``widths``)."""
    group = parser.add_argument_group("model config (default: the preset's; a new run only)")
    taken: set[str] = set()
    for model_cls in baselines.REGISTRY.values():
        fields = dataclasses.fields(model_cls.config_cls)
        tuples = {f.name for f in fields if isinstance(f.default, tuple)}
        add_dataclass_flags(group, model_cls.config_cls, skip=taken | tuples)
        taken |= {f.name for f in fields}


def _train(args) -> int:
    preset = baselines.presets(args.name)[args.preset]
    tcfg = config_with_overrides(preset.train, dataclass_overrides(args, TrainConfig))
    model_flags = dataclass_overrides(args, type(preset.model))
    mcfg = config_with_overrides(preset.model, model_flags)
    return train_command(args, args.name, mcfg, tcfg, model_overrides=model_flags,
                         stage_options={"prior_images": args.prior_images, "index": args.index})


def _export(args) -> int:
    from baselines.base import read_checkpoint, save_inference_checkpoint

    ckpt = read_checkpoint(args.checkpoint)
    name = ckpt.get("stage")
    if name not in baselines.REGISTRY:
        print(f"error: {args.checkpoint} is a {name!r} checkpoint, not a baseline's",
              file=sys.stderr)
        return 2
    model = baselines.load(name, args.checkpoint)
    info = {"step": ckpt.get("step"), "train_config": ckpt.get("train_config"),
            "git_rev": ckpt.get("git_rev"), "world_size": ckpt.get("world_size")}
    path = save_inference_checkpoint(model, args.out, extra={"training": info})
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def _colorize(args) -> int:
    from pixcolor.colorize_files import colorize_files

    model = baselines.load(args.name, args.checkpoint, device=args.device)
    return colorize_files(args.inputs, args.out, lambda batch: [[rgb] for rgb in
                                                                model.colorize(batch)],
                          batch_size=1, numbered=False, what=f"with {args.name}")


def _info(args) -> int:
    for name in baselines.REGISTRY:
        for preset in baselines.presets(name):
            n = baselines.create(name, preset).num_parameters()
            print(f"{name:5s} {preset:6s} {n:>12,d} parameters ({n * 4 / 2**20:.1f} MiB fp32)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m baselines", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a baseline with the shared trainer")
    t.add_argument("name", choices=sorted(baselines.REGISTRY))
    add_run_flags(t, ["paper", "small", "tiny"],
                  init_from="LRAC paper preset: torchvision vgg16 ImageNet weights")
    t.add_argument("--prior-images", type=int, default=1000,
                   help="CIC: images counted for the ab prior (0 = count while training)")
    add_dataclass_flags(t, TrainConfig)
    _model_flags(t)
    t.set_defaults(func=_train)
    e = sub.add_parser("export", help="training checkpoint -> inference checkpoint")
    e.add_argument("checkpoint")
    e.add_argument("--out", required=True)
    e.set_defaults(func=_export)
    c = sub.add_parser("colorize", help="colourise images or folders with a baseline")
    c.add_argument("name", choices=sorted(baselines.REGISTRY))
    c.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    c.add_argument("--out", required=True)
    c.add_argument("--checkpoint", help="default: the shipped demo checkpoint")
    c.add_argument("--device", default="cpu")
    c.set_defaults(func=_colorize)
    sub.add_parser("info", help="parameter counts of the presets").set_defaults(func=_info)
    return ap


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except baselines.BaselineCheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
