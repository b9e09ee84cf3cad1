"""Leaderboard speed on a synthetic runs folder: N images x M methods, features cached.

Builds ``--images`` small photos and ``--methods`` recoloured versions
(:func:`analysis.synthetic.make_runs`), runs the metrics pass once (the per-image values
that ``make bench`` caches beside metrics.csv; not timed as part of the leaderboard), and
puts a random 2048-d feature for every image into a FID feature cache keyed by a stand-in
weights file (no Inception runs: the leaderboard's cost after the features exist is the
question; the arithmetic does not depend on the values). Then it times
:func:`analysis.leaderboard.build_leaderboard` twice:

* ``fid_from_features``: per-image values cached, FID computed from the cached features
  (``--fid-resamples`` bootstrap resamples per method, the linearised interval of
  :mod:`analysis.fid_interval`);
* ``warm``: everything cached (what a second call, or a call after ``make bench``, costs).

Usage::

    python -m tools.leaderboard_speed --images 5000 --methods 10   # the goal: < 30 s
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from analysis.fid_features import FEATURE_DIM
from analysis.fid_runs import FIDOptions
from analysis.leaderboard import LeaderboardOptions, build_leaderboard
from analysis.metrics_cache import metrics_pass
from analysis.synthetic import make_runs


def _fake_features(runs: Path, cache: Path, weights: Path, seed: int) -> int:
    """A random feature per PNG under the cache key of ``weights``, and the per-folder
    hash index a real feature pass leaves behind; returns the count."""
    from analysis.fid_features import file_hashes
    from analysis.inception_weights import weights_sha256

    key = f"fid-{weights_sha256(weights)[:16]}"
    rng = np.random.default_rng(seed)
    pngs = sorted(runs.rglob("*.png"))
    for sha in file_hashes(pngs, cache):
        path = cache / key / sha[:2] / f"{sha}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, rng.normal(size=FEATURE_DIM).astype(np.float32))
    return len(pngs)


def measure(images: int, methods: int, fid_resamples: int, size: int, tmp: Path) -> dict:
    names = tuple(f"m{k:02d}" for k in range(methods))
    runs = tmp / "synthetic"
    t0 = time.perf_counter()
    make_runs(runs, n_images=images, size=(size, size), methods=names, seed=0)
    out: dict = {"images": images, "methods": methods, "image_side": size,
                 "fid_resamples": fid_resamples, "cores": os.cpu_count(),
                 "make_runs_s": round(time.perf_counter() - t0, 1)}
    t0 = time.perf_counter()
    metrics_pass(runs)  # the per-image values make bench leaves behind
    out["metrics_pass_s"] = round(time.perf_counter() - t0, 1)
    weights = tmp / "stand_in_weights.pth"
    weights.write_bytes(b"stand-in: features are cached, the network never runs")
    cache = tmp / "fid_cache"
    t0 = time.perf_counter()
    out["features_written"] = _fake_features(runs, cache, weights, 0)
    out["features_s"] = round(time.perf_counter() - t0, 1)
    fid = FIDOptions(weights=str(weights), cache_dir=str(cache), n_resamples=fid_resamples)
    options = LeaderboardOptions(fid=fid)
    for label in ("fid_from_features", "warm"):
        t0 = time.perf_counter()
        board = build_leaderboard(runs, options)
        out[f"{label}_s"] = round(time.perf_counter() - t0, 2)
    out["columns"] = [c.name for c in board.columns]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--methods", type=int, default=10)
    p.add_argument("--fid-resamples", type=int, default=100)
    p.add_argument("--size", type=int, default=32, help="image side (px)")
    p.add_argument("--tmp", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)
    if args.tmp:
        Path(args.tmp).mkdir(parents=True, exist_ok=True)
        result = measure(args.images, args.methods, args.fid_resamples, args.size,
                         Path(args.tmp))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = measure(args.images, args.methods, args.fid_resamples, args.size,
                             Path(tmp))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
