"""FID feature speed: our Inception-v3 (analysis.inception) against torch-fidelity's.

The goal: computing FID features of 5,000 images at 256x256 takes at most 1.2x as long as
with torch-fidelity 0.4.0's ``FeatureExtractorInceptionV3``. Both networks get the same
uint8 batches of ``--images`` synthetic images (:func:`analysis.synthetic.make_image`:
the cost does not depend on the content) and the same weights: the real file where
:func:`analysis.inception_weights.find_weights` finds one, else random weights
(:func:`analysis.inception.random_state_dict`; speed does not depend on their values).
Ours runs as :func:`analysis.fid_features.image_features` runs it (per-image resize, then
the batch through the network, under ``torch.inference_mode``); torch-fidelity's as its
pipeline does (the uint8 batch into ``forward``, under ``torch.no_grad``). Each batch runs
through both, alternating which goes first, so that a change of machine load hits both;
``ratio`` is of the total times, ``median_batch_ratio`` the median over batches (steadier
on a shared machine); the features are compared as a check. torch-fidelity is imported
from its module file (its package ``__init__`` needs torchvision); install it with
``pip install --no-deps torch-fidelity``.

Usage::

    python -m tools.fid_speed                    # 200 images: a quick run
    python -m tools.fid_speed --images 5000      # the goal's size
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from analysis.fid_features import FeatureExtractor
from analysis.inception import WeightsNotFound, find_weights, random_state_dict
from analysis.reference_libs import torch_fidelity_inception
from analysis.synthetic import make_image


def _weights(images: np.ndarray, tmp: Path) -> tuple[Path, str]:
    try:
        return find_weights("fid"), "pt_inception-2015-12-05"
    except WeightsNotFound:
        calib = torch.from_numpy(images[:8]).permute(0, 3, 1, 2).contiguous()
        path = tmp / "random_fid_inception.pth"
        torch.save(random_state_dict("fid", calib, seed=0), path)
        return path, "random (no weights file found)"


def measure(n: int, size: int, batch_size: int) -> dict:
    """Seconds for both networks over the same ``n`` (size, size) images, and the features'
    largest relative difference."""
    rng = np.random.default_rng(0)
    images = np.stack([make_image(rng, (size, size)) for _ in range(n)])
    with tempfile.TemporaryDirectory() as tmp:
        weights, kind = _weights(images, Path(tmp))
        ours = FeatureExtractor.open("fid", weights, batch_size=batch_size)
        ours.net()  # loaded now, while a temporary weights file still exists
        ref = torch_fidelity_inception()("inception-v3-compat", ["2048"],
                                         feature_extractor_weights_path=str(weights))
    batches = [images[i:i + batch_size] for i in range(0, n, batch_size)]
    # Warm-up on a full batch each: oneDNN builds its kernels per input shape, once for
    # both networks (its cache is shared), so neither pays that inside the timing.
    ours(list(batches[0]))
    with torch.no_grad():
        ref(torch.from_numpy(batches[0]).permute(0, 3, 1, 2).contiguous())
    times = {"ours": [], "ref": []}
    worst = 0.0
    for i, batch in enumerate(batches):
        for name in ("ours", "ref") if i % 2 == 0 else ("ref", "ours"):  # alternate first
            t0 = time.perf_counter()
            if name == "ours":
                f_ours = ours(list(batch))
            else:
                with torch.no_grad():
                    nchw = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
                    f_ref = ref(nchw)[0].numpy()
            times[name].append(time.perf_counter() - t0)
        worst = max(worst, float(np.abs(f_ours - f_ref).max() / np.abs(f_ref).max()))
    t_ours, t_ref = sum(times["ours"]), sum(times["ref"])
    per_batch = np.array(times["ours"]) / np.array(times["ref"])
    return {"images": n, "size": size, "batch_size": batch_size, "weights": kind,
            "threads": torch.get_num_threads(), "ours_s": round(t_ours, 2),
            "torch_fidelity_s": round(t_ref, 2), "ratio": round(t_ours / t_ref, 3),
            "median_batch_ratio": round(float(np.median(per_batch)), 3),
            "max_rel_feature_diff": worst}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200, help="5000 is the goal's size")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    row = measure(args.images, args.size, args.batch_size)
    print(json.dumps(row, indent=2))
    print(f"ours / torch-fidelity = {row['ratio']:.3f} (median over batches "
          f"{row['median_batch_ratio']:.3f}; goal: <= 1.2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
