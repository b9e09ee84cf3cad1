"""Throughput of ``PixColor.colorize`` on many images (the GPU target).

The target: 3 samples of each of 10,000 images at 224x224 in at most 3 minutes on one
H100/H200. This script colourises ``--images`` synthetic 224x224 grayscale images (smooth
random fields: the cost does not depend on the content) with random weights of a preset,
``--batch-size`` images per batch, and prints images/s and the projected time for 10,000
images. ``--limit-batches`` times only that many batches and extrapolates (said so in the
output).

Usage::

    python -m tools.throughput --preset paper --device cuda --images 10000 --batch-size 1024
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pixcolor import PixColor


def synthetic_grays(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` smooth random (size, size) uint8 grayscale images."""
    rng = np.random.default_rng(seed)
    base = rng.random((n, 8, 8)).astype(np.float32)
    t = torch.nn.functional.interpolate(torch.from_numpy(base)[:, None], size=(size, size),
                                        mode="bicubic", align_corners=False)[:, 0]
    return list((t.clamp(0, 1) * 255).round().to(torch.uint8).numpy())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--checkpoint", help="time a real checkpoint instead of random weights")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--limit-batches", type=int, default=0, help="time only this many batches")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    model = (PixColor.load(args.checkpoint) if args.checkpoint
             else PixColor.from_preset(args.preset)).to(args.device).eval()
    n_batches = -(-args.images // args.batch_size)
    timed = min(n_batches, args.limit_batches) if args.limit_batches else n_batches
    images = synthetic_grays(min(args.images, timed * args.batch_size), args.size)
    model.colorize(images[:2], num_samples=1, batch_size=2)  # warm-up (kernels, caches)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in range(timed):
        chunk = images[b * args.batch_size:(b + 1) * args.batch_size]
        model.colorize(chunk, num_samples=args.samples, seed=1, batch_size=args.batch_size)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    done = len(images)
    rate = done / dt
    note = "" if timed == n_batches else f" (timed {timed} of {n_batches} batches, extrapolated)"
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"device {args.device} ({name}), "
          f"preset {model.preset}, {args.size}x{args.size}, {args.samples} samples, "
          f"batch {args.batch_size}")
    print(f"{done} images in {dt:.2f} s: {rate:.2f} images/s, {rate * args.samples:.2f} samples/s")
    print(f"projected for {args.images} images: {args.images / rate:.1f} s{note}; "
          f"10,000 images: {10_000 / rate:.1f} s (target 180 s on one H100/H200)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
