"""The fixed held-out slice of the demo training photos, and training/held-out folders.

The demo checkpoints train on ``shared/data/photos_17k`` (five source folders) and
``shared/data/imagenet_sample_1k``. A fixed slice of ``photos_17k`` is held out so every run
and every model card reports on the same unseen photos:

* per source folder (``intel``, ``imagenette``, ``catsdogs``, ``flowers``, ``coco``), the
  files are ranked by ``sha256(f"{seed}:{source}/{name}")`` and the first
  ``ceil(fraction * n)`` are held out (seed 0, fraction 0.025: 443 of 17,625 photos);
* ``imagenet_sample_1k`` is not sliced: the releases before 2026-12 trained on all of it, so
  a slice of it would not be unseen by the models that later runs warm-start from.

The rule depends only on the file names, so it gives the same slice on every machine; the
resulting list ships as ``pixcolor/photos_holdout.txt`` (paths relative to the data
folder) and ``check`` verifies that a data folder still gives it.

``prepare`` builds two folders of symbolic links (nothing is copied), which the trainer and
the calibration tools read like any image folder::

    python -m pixcolor.holdout prepare --data ../shared/data --out data/photos
    # -> data/photos/train/{photos_17k/<source>,imagenet_sample_1k}/...  (training)
    #    data/photos/holdout/<source>_<i>.jpg                              (held out, flat:
    #       the benchmark's `bench build --images` takes a flat folder, ids = file stems)
    python -m pixcolor.holdout check --data ../shared/data
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
from pathlib import Path

from pixcolor.io import atomic_open, is_image_file

HOLDOUT_LIST = Path(__file__).with_name("photos_holdout.txt")
SLICED = "photos_17k"  # sliced per source folder
UNSLICED = ("imagenet_sample_1k",)  # trained on whole (see the module docstring)
SEED = 0
FRACTION = 0.025


def _image_names(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if not n.startswith(".") and is_image_file(n))


def holdout_rank_key(seed: int, source: str, name: str) -> str:
    """The ranking key of one file: hex sha256 of ``"{seed}:{source}/{name}"``."""
    return hashlib.sha256(f"{seed}:{source}/{name}".encode()).hexdigest()


def choose_holdout(names_by_source: dict[str, list[str]], seed: int = SEED,
                   fraction: float = FRACTION) -> list[str]:
    """Held-out ``source/name`` paths: per source, the ``ceil(fraction * n)`` files with the
    smallest :func:`holdout_rank_key`; sorted."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    out = []
    for source, names in names_by_source.items():
        k = math.ceil(fraction * len(names))
        ranked = sorted(names, key=lambda n, s=source: holdout_rank_key(seed, s, n))
        out += [f"{source}/{n}" for n in ranked[:k]]
    return sorted(out)


def sliced_sources(data: Path) -> dict[str, list[str]]:
    """``{source folder: image names}`` for the sliced collection under ``data``."""
    root = data / SLICED
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist: --data must be the folder holding "
                                f"{SLICED}/ (the project's shared/data)")
    sources = sorted(d for d in os.listdir(root) if (root / d).is_dir() and not d.startswith("."))
    if not sources:
        raise FileNotFoundError(f"{root} holds no source folders")
    return {s: _image_names(root / s) for s in sources}


def holdout_paths(data: Path, seed: int = SEED, fraction: float = FRACTION) -> list[str]:
    """Held-out paths relative to ``data`` (``photos_17k/<source>/<name>``)."""
    return [f"{SLICED}/{p}" for p in choose_holdout(sliced_sources(data), seed, fraction)]


def read_list(path: Path = HOLDOUT_LIST) -> list[str]:
    """The shipped list (comment lines start with ``#``)."""
    return [ln.strip() for ln in Path(path).read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]


def write_list(paths: list[str], path: Path = HOLDOUT_LIST, seed: int = SEED,
               fraction: float = FRACTION) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(f"# pixcolor held-out demo photos: rule pixcolor.holdout (seed {seed}, fraction "
                f"{fraction} per {SLICED} source folder); {len(paths)} paths relative to the "
                "data folder\n")
        f.writelines(p + "\n" for p in paths)


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        if dst.is_symlink() and os.readlink(dst) == str(src):
            return
        dst.unlink()
    dst.symlink_to(src)


def prepare(data: Path, out: Path, listed: list[str]) -> dict[str, int]:
    """Fill ``out/train`` and ``out/holdout`` with links to the files under ``data``.

    Held-out files are the ``listed`` paths, linked flat under their file names (unique:
    ``<source>_<i>.jpg``); every other image of the sliced collection and of the unsliced
    ones goes to ``train`` under its relative path. Stale links left by an earlier call are
    removed.
    Returns the number of links per folder.
    """
    data = data.resolve()
    held = set(listed)
    missing = [p for p in listed if not (data / p).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} held-out files missing under {data}, e.g. "
                                f"{missing[0]}: is --data the project's shared/data?")
    flat = {Path(p).name: p for p in listed}
    if len(flat) != len(listed):
        raise ValueError("held-out file names are not unique; they are linked into one folder")
    want = {"train": {}, "holdout": flat}  # link path -> path under data
    for source, names in sliced_sources(data).items():
        want["train"].update({r: r for n in names
                              if (r := f"{SLICED}/{source}/{n}") not in held})
    for coll in UNSLICED:
        if (data / coll).is_dir():
            want["train"].update({f"{coll}/{n}": f"{coll}/{n}" for n in _image_names(data / coll)})
    for part, rels in want.items():
        base = out / part
        for rel in sorted(rels):
            _link(data / rels[rel], base / rel)
        if base.is_dir():
            for dirpath, _, files in os.walk(base):
                for f in files:
                    rel = os.path.relpath(os.path.join(dirpath, f), base).replace(os.sep, "/")
                    if rel not in rels:
                        os.unlink(os.path.join(dirpath, f))
    return {k: len(v) for k, v in want.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pixcolor.holdout",
                                description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare", help="link train/ and holdout/ folders")
    pp.add_argument("--data", required=True, type=Path, help="folder holding photos_17k/")
    pp.add_argument("--out", required=True, type=Path)
    pc = sub.add_parser("check", help="does --data give the shipped list?")
    pc.add_argument("--data", required=True, type=Path)
    pw = sub.add_parser("write", help="rewrite the shipped list from --data (maintainers)")
    pw.add_argument("--data", required=True, type=Path)
    args = p.parse_args(argv)
    try:
        if args.cmd == "write":
            paths = holdout_paths(args.data)
            write_list(paths)
            print(f"wrote {len(paths)} paths to {HOLDOUT_LIST}")
        elif args.cmd == "check":
            got, shipped = holdout_paths(args.data), read_list()
            if got != shipped:
                extra, lost = sorted(set(got) - set(shipped)), sorted(set(shipped) - set(got))
                print(f"error: {args.data} gives a different held-out slice than {HOLDOUT_LIST} "
                      f"({len(extra)} new, {len(lost)} missing, e.g. {(extra + lost)[:3]}): the "
                      "data folder changed; evaluate on the shipped list", file=sys.stderr)
                return 1
            print(f"ok: {len(got)} held-out photos, as shipped")
        else:
            counts = prepare(args.data, args.out, read_list())
            print(f"{args.out}: {counts['train']} training and {counts['holdout']} held-out links")
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
