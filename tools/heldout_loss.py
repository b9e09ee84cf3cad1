"""Each training stage's own loss on photos it never trained on (the held-out loss).

Every system is scored on the objective it was trained with, computed by the same code the
trainer runs (its :class:`pixcolor.stages.Stage`), on centre crops of the held-out photos at
the training crop size, with the models in eval mode and no gradient:

* ``pixelcnn``: PixColor's teacher-forced cross-entropy, nats per chroma value (Sec. 3.1);
* ``refine``: the refinement network's L1 loss on ground-truth low-resolution chroma;
* ``cic``: the class-rebalanced cross-entropy over the 313 ab bins, with the prior frozen
  as the checkpoint holds it (the training-time prior keeps counting what it sees; here the
  held-out photos do not enter it);
* ``lrac``: chroma + weighted hue cross-entropy at random pixels (seeded);
* ``ltbc``: MSE on normalised ab (plus the classification term for class folders).

The numbers compare a system with itself (held-out against its training loss, one release
against another), not systems with each other: the objectives differ.

    python -m pixcolor.holdout prepare --data ../shared/data --out data/photos
    python -m tools.heldout_loss --images data/photos/holdout \\
        pixelcnn=pixcolor/checkpoints/pixcolor_small.pt \\
        refine=pixcolor/checkpoints/pixcolor_small.pt \\
        cic=baselines/checkpoints/cic_small.pt lrac=baselines/checkpoints/lrac_small.pt \\
        ltbc=baselines/checkpoints/ltbc_small.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
from torch import nn

from pixcolor import checkpoint
from pixcolor.checkpoint import CheckpointError
from pixcolor.color import LOWRES_SHORT_SIDE
from pixcolor.data import ImageFolderDataset, collate
from pixcolor.stages import Stage, get_stage

PIXCOLOR_STAGES = ("pixelcnn", "refine")
BATCH = 16


def stage_for(name: str, path: str | Path) -> tuple[Stage, int]:
    """The stage ``name`` around the model in checkpoint ``path``, in eval mode, and the
    crop size it was trained at (``training.train_config.image_size``; 112 when absent).

    Raises:
        CheckpointError: an unreadable file or another model's checkpoint.
        ValueError: an unknown stage name (the message lists the known ones).
    """
    if name in PIXCOLOR_STAGES:
        from pixcolor import PixColor

        model: nn.Module = PixColor.load(path)
    else:
        import baselines

        model = baselines.load(name, path)
    stage = get_stage(name)(model.cfg, getattr(model, "preset", "custom"))
    stage.model = model
    if name == "cic":  # freeze the prior: evaluation must not count held-out pixels into it
        stage.model_config = dataclasses.replace(stage.model_config,
                                                 prior_file="(frozen for evaluation)")
    training = checkpoint.read(path).get("training")
    config = training.get("train_config") if isinstance(training, dict) else None
    size = int(config.get("image_size", 112)) if isinstance(config, dict) else 112
    return stage.eval(), size


@torch.no_grad()
def heldout_loss(stage: Stage, images: str | Path, size: int, batch_size: int = BATCH,
                 seed: int = 0, limit: int | None = None) -> dict:
    """Mean of ``stage``'s loss over the usable photos under ``images`` (centre crops of
    side ``size``), each batch weighted by its number of photos.

    Returns:
        {"loss", "photos" (scored), "skipped" (below the colorness threshold or
        unreadable)}.
    """
    data = ImageFolderDataset(images, size=size, train=False, lowres_short_side=getattr(
        stage.model.cfg, "lowres_short_side", LOWRES_SHORT_SIDE))
    n = len(data) if limit is None else min(limit, len(data))
    torch.manual_seed(seed)  # LRAC draws its training pixels at random
    total, count = 0.0, 0
    for start in range(0, n, batch_size):
        items = [data[i] for i in range(start, min(n, start + batch_size))]
        total += float(stage(collate(items))) * len(items)
        count += len(items)
    return {"loss": total / count, "photos": count,
            "skipped": data.num_files - data.num_kept}


def _parse(spec: str) -> tuple[str, str]:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"{spec!r}: give each checkpoint as STAGE=FILE, e.g. "
                         "cic=baselines/checkpoints/cic_small.pt")
    return name, path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="+", metavar="STAGE=FILE",
                    help="stages: pixelcnn, refine (PixColor files), cic, lrac, ltbc")
    ap.add_argument("--images", required=True, help="folder of held-out photos")
    ap.add_argument("--size", type=int, help="crop side (default: each file's training size)")
    ap.add_argument("--batch-size", type=int, default=BATCH)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, help="score only the first N photos")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    out = {}
    try:
        for spec in args.checkpoints:
            name, path = _parse(spec)
            stage, size = stage_for(name, path)
            res = heldout_loss(stage, args.images, args.size or size, args.batch_size,
                               args.seed, args.limit)
            out[name] = {**res, "checkpoint": path, "size": args.size or size}
            print(f"{name:9s} {res['loss']:.4g}  ({res['photos']} photos at "
                  f"{args.size or size} px, {res['skipped']} skipped; {path})", flush=True)
    except (CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
