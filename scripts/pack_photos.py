"""Pack an image folder into one small tar of WebP files, for a GPU machine.

The device tool carries at most 64 MiB; the demo training photos (about 18,200 after the
held-out slice) are 165 MB as JPEGs. Each photo is resized so its short side is ``--side``
(128 px: the small preset trains on 112-px crops, so random-resized crops keep most of their
detail), aspect ratio kept, and stored as WebP (quality 65) in a gzip-compressed tar (tar's
512-byte headers and padding would add ~14 MiB for 18,000 files; gzip takes them back).
Measured on 2026-12-02 at quality 75, plain tar: 60.6 MiB of WebP in a 75.7 MiB tar, over
the limit, hence quality 65 and gzip. Photos whose short side is already at most ``--side``
are re-encoded without resizing.
The tar keeps the folder layout (``.webp`` names) and a ``PACK.json`` with the settings,
the counts and each source file's SHA-256, so a run on the unpacked folder names its data
exactly. Unreadable files are listed and skipped.

    python scripts/pack_photos.py data/photos/train runs/photos_train_128.tar.gz
    # on the GPU machine:  mkdir -p data/packed && tar -xzf photos_train_128.tar.gz -C data/packed
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pixcolor.io import ImageLoadError, iter_images, load_rgb  # noqa: E402


def pack_one(path: Path, side: int, quality: int) -> bytes:
    """The WebP bytes of one photo, short side at most ``side``."""
    im = Image.fromarray(load_rgb(path))
    w, h = im.size
    if min(w, h) > side:
        s = side / min(w, h)
        im = im.resize((max(side, round(w * s)), max(side, round(h * s))), Image.BICUBIC,
                       reducing_gap=3.0)
    buf = io.BytesIO()
    im.save(buf, "WEBP", quality=quality, method=4)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", type=Path, help="image folder (followed through symbolic links)")
    ap.add_argument("out", type=Path, help="tar file to write")
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--quality", type=int, default=65)
    args = ap.parse_args(argv)
    t0, files, skipped, total = time.time(), {}, [], 0
    tmp = args.out.with_name(args.out.name + ".tmp")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    mode = "w:gz" if args.out.name.endswith((".tar.gz", ".tgz")) else "w"
    with tarfile.open(tmp, mode, **({"compresslevel": 6} if mode == "w:gz" else {})) as tar:
        for path in iter_images(args.src):
            rel = path.relative_to(args.src).as_posix()
            try:
                data = pack_one(path, args.side, args.quality)
            except ImageLoadError as exc:
                skipped.append({"path": rel, "reason": str(exc)})
                continue
            name = rel.rsplit(".", 1)[0] + ".webp"
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
            files[name] = hashlib.sha256(path.read_bytes()).hexdigest()
            total += len(data)
        meta = json.dumps({"source": str(args.src), "side": args.side, "quality": args.quality,
                           "format": "webp", "n_files": len(files), "skipped": skipped,
                           "source_sha256": files}, indent=0, sort_keys=True).encode()
        info = tarfile.TarInfo("PACK.json")
        info.size, info.mtime = len(meta), 0
        tar.addfile(info, io.BytesIO(meta))
    tmp.replace(args.out)
    print(f"{args.out}: {len(files)} photos, {total / 2**20:.1f} MiB of WebP, "
          f"{args.out.stat().st_size / 2**20:.1f} MiB tar, {len(skipped)} skipped, "
          f"{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
