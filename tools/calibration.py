"""Colour calibration of a PixColor checkpoint: does it sample the colours it predicts?

For held-out photos this script compares three marginal distributions of the 32 chroma bins
per channel (Cb, Cr), pooled over all low-resolution pixels:

* **gt**: the photos' own 28-px chroma, quantised;
* **teacher**: the PixelCNN's predicted distribution at each pixel with the ground truth as
  its past (teacher forcing, as in training), averaged;
* **sample**: the bins of ``--samples`` drawn samples (the cached sampler, ``--seed``,
  ``--temperature``).

A model that fits well has teacher ~ gt. If teacher ~ gt but the samples drift (for example
towards red Cr), the error compounds along the raster order: an under-trained model, not a
sampler bug (the samplers' log-likelihoods equal teacher forcing,
``tests/pixcolor/test_pixelcnn.py``).
It also prints the held-out cross-entropy (nats per chroma value) and, per channel, the mean
chroma and the histogram intersection with gt (1 = identical marginals).

How much does the PixelCNN use its conditioning? The script also scores each photo's true
chroma with **another photo's** conditioning features (the previous photo's, bilinearly
resized to this photo's grid; the first photo takes the last one's). The gap between that
cross-entropy and the real one is what the grayscale image tells the PixelCNN beyond what
the colours already drawn tell it; a small gap means the samples are driven by their own
past, which is when a sample can settle on a colour the scene does not support.

Usage::

    python -m tools.calibration [--checkpoint PATH] --images DIR_OR_FILE... [--samples 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from analysis.metrics import grey_ratio, worse_than_grey
from pixcolor import color
from pixcolor.colorizer import PixColor
from pixcolor.io import ImageLoadError, expand_inputs, load_rgb

CHANNELS = ("Cb", "Cr")
CAST = 0.05  # a sample's mean chroma this far from the photo's is a visible global cast
PROBE_FOLDS = 5


def feature_probe(features: np.ndarray, targets: np.ndarray, folds: int = PROBE_FOLDS,
                  ridge: float = 1e-2, seed: int = 0) -> np.ndarray | None:
    """Out-of-fold ridge-regression predictions of ``targets`` from ``features``.

    With each photo's spatially averaged conditioning features and its true mean chroma,
    this measures how much of a photo's overall colour the features carry, whatever the
    PixelCNN makes of them: a linear read-out, fitted on the other folds' photos (photos
    split into ``folds`` by a seeded permutation), with an intercept column and ``ridge``
    times the identity added to the normal equations.

    Args:
        features: (N, F) float.
        targets: (N, T) float.

    Returns:
        (N, T) predictions, or None when there are fewer than ``2 * folds`` photos.
    """
    n = len(features)
    if n < 2 * folds:
        return None
    x = np.c_[np.asarray(features, np.float64), np.ones(n)]
    y = np.asarray(targets, np.float64)
    order = np.random.default_rng(seed).permutation(n)
    pred = np.empty_like(y)
    for held in np.array_split(order, folds):
        train = np.setdiff1d(order, held)
        a = x[train].T @ x[train] + ridge * np.eye(x.shape[1])
        pred[held] = x[held] @ np.linalg.solve(a, x[train].T @ y[train])
    return pred


def _intersection(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.minimum(p / p.sum(), q / q.sum()).sum())


@torch.no_grad()
def calibrate(model: PixColor, images: Iterable[np.ndarray], num_samples: int = 3,
              seed: int = 1, temperature: float = 1.0) -> dict:
    """Pooled chroma-bin marginals (gt, teacher, sample) and cross-entropy over ``images``.

    Args:
        images: (H, W, 3) uint8 RGB photos, any sizes.

    Returns:
        ``{"n_images", "nll", "hist": {kind: (2, bins) array in (Cb, Cr) order},
        "mean": {kind: (2,) mean chroma in [-0.5, 0.5]}, "intersection": {kind: (2,)}}``;
        ``nll`` is the teacher-forced cross-entropy in nats per chroma value, averaged over
        all values of all images; ``nll_other_cond`` the same with each image's conditioning
        features replaced by another image's (None for a single image); ``cast`` the
        global colour error of single samples: per sample, the distance between its mean
        (Cb, Cr) and the gt's (dequantised bins, Euclidean, in chroma units where one bin is
        1 / bins), as ``{"per_sample": (n_images, num_samples), "grey": (n_images,),
        "sample_mean": (n_images,), "probe": (n_images,) or None}`` (``grey``: the same
        distance for a colourless output, a reference scale; ``sample_mean``: for the
        average of a photo's samples' mean chroma, the sampler's own estimate of its
        posterior mean; ``probe``: for :func:`feature_probe`'s read-out of the photo's
        averaged conditioning features, None under ``2 * PROBE_FOLDS`` photos).
    """
    nb = model.cfg.bins
    hist = {k: np.zeros((2, nb)) for k in ("gt", "teacher", "sample")}
    nll_sum, n_values, n_images = 0.0, 0, 0
    other_sum, first, prev_feats = 0.0, None, None
    centres = torch.from_numpy(color.dequantize_chroma(np.arange(nb), nb)).double()
    cast = _GlobalColour(centres)

    for rgb in images:
        y, gt = _truth(model, rgb)
        feats = model.conditioning(y, tuple(gt.shape[-2:]))
        logits = model.pixelcnn(gt, feats).double()  # (1, 2, nb, h, w)
        if prev_feats is None:
            first = (gt, feats)
        else:
            other_sum += _nll_with(model, prev_feats, gt)
        prev_feats = feats
        nll_sum += float(F.cross_entropy(logits.transpose(1, 2), gt, reduction="sum"))
        n_values += gt.numel()
        hist["teacher"] += logits.softmax(2)[0].sum((-1, -2)).cpu().numpy()
        bins, _ = model.sample_lowres(y, num_samples=num_samples, seed=seed,
                                      temperature=temperature)
        cast.add(gt, bins, feats)
        for c in range(2):
            hist["gt"][c] += np.bincount(gt[0, c].flatten().cpu().numpy(), minlength=nb)
            hist["sample"][c] += np.bincount(bins[0, :, c].flatten().cpu().numpy(),
                                             minlength=nb) / num_samples
        n_images += 1
    if n_images == 0:
        raise ValueError("no readable images to calibrate on")
    nll_other = None
    if n_images > 1:
        nll_other = (other_sum + _nll_with(model, prev_feats, first[0])) / n_values
    hist = {k: v / v.sum(1, keepdims=True) for k, v in hist.items()}
    return {"n_images": n_images, "nll": nll_sum / n_values, "nll_other_cond": nll_other,
            "hist": hist, "cast": cast.result(),
            "mean": {k: v @ centres.numpy() for k, v in hist.items()},
            "intersection": {k: np.array([_intersection(v[c], hist["gt"][c]) for c in range(2)])
                             for k, v in hist.items()}}


class _GlobalColour:
    """Collects :func:`calibrate`'s ``cast`` entry photo by photo."""

    def __init__(self, centres: torch.Tensor):
        self.centres = centres  # (bins,) float64 chroma of each bin
        self.per_sample, self.of_mean, self.grey, self.truth, self.pooled = [], [], [], [], []

    def add(self, gt: torch.Tensor, bins: torch.Tensor, feats: torch.Tensor) -> None:
        """gt (1, 2, h, w) and sampled bins (1, S, 2, h, w); feats (1, C, h, w)."""
        gt_mean = self.centres[gt[0].cpu()].mean((-1, -2))  # (2,)
        s_mean = self.centres[bins[0].cpu()].mean((-1, -2))  # (S, 2)
        self.per_sample.append((s_mean - gt_mean).norm(dim=-1).numpy())
        self.of_mean.append(float((s_mean.mean(0) - gt_mean).norm()))
        self.grey.append(float(gt_mean.norm()))
        self.truth.append(gt_mean.numpy())
        self.pooled.append(feats[0].double().mean((-1, -2)).cpu().numpy())

    def result(self) -> dict:
        truth = np.stack(self.truth)
        probe = feature_probe(np.stack(self.pooled), truth)
        return {"per_sample": np.stack(self.per_sample), "grey": np.array(self.grey),
                "sample_mean": np.array(self.of_mean),
                "probe": None if probe is None else np.linalg.norm(probe - truth, axis=1)}


def _nll_with(model: PixColor, feats: torch.Tensor, gt: torch.Tensor) -> float:
    """Summed cross-entropy of ``gt`` under ``feats`` (another photo's, resized to fit)."""
    feats = F.interpolate(feats, size=tuple(gt.shape[-2:]), mode="bilinear",
                          align_corners=False)
    logits = model.pixelcnn(gt, feats).double()
    return float(F.cross_entropy(logits.transpose(1, 2), gt, reduction="sum"))


def _truth(model: PixColor, rgb: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """A photo's Y plane (1, 1, H, W) on the model's device and dtype and its true
    low-resolution chroma bins (1, 2, h, w) at the model's low resolution."""
    ycc = color.rgb_to_ycbcr(rgb.astype(np.float32) / 255)
    y = torch.from_numpy(np.ascontiguousarray(ycc[..., :1])).permute(2, 0, 1)[None]
    cbcr = torch.from_numpy(np.ascontiguousarray(ycc[..., 1:])).permute(2, 0, 1)[None]
    low = color.resize(cbcr, model.lowres_size(*rgb.shape[:2]), antialias=True)
    gt = color.quantize_chroma(low, model.cfg.bins).to(model.device)
    return y.to(model.device, model.dtype), gt


def format_report(res: dict) -> str:
    """The table that :func:`main` prints."""
    lines = [f"{res['n_images']} images; teacher-forced cross-entropy "
             f"{res['nll']:.3f} nats per chroma value",
             f"{'':8s} {'mean Cb':>8s} {'mean Cr':>8s} {'HI Cb':>6s} {'HI Cr':>6s}"]
    for k in ("gt", "teacher", "sample"):
        m, i = res["mean"][k], res["intersection"][k]
        lines.append(f"{k:8s} {m[0]:+8.4f} {m[1]:+8.4f} {i[0]:6.3f} {i[1]:6.3f}")
    if res.get("nll_other_cond") is not None:
        lines.insert(1, f"with another image's conditioning features: "
                        f"{res['nll_other_cond']:.3f} (the gap is what the grayscale input adds)")
    if "cast" in res:
        c, g = res["cast"]["per_sample"], res["cast"]["grey"]
        lines.append(f"single samples' global colour error (|sample - gt| mean CbCr): median "
                     f"{np.median(c):.4f}, 90th percentile {np.percentile(c, 90):.4f}; "
                     f"{(c > CAST).mean():.0%} of samples off by more than {CAST} "
                     f"(a grey output: median {np.median(g):.4f})")
        lines.append(f"against grey on the same photos: mean error {grey_ratio(c, g):.2f}x "
                     f"grey's; {worse_than_grey(c, g):.0%} of samples further from the truth's "
                     "mean colour than grey")
        if c.shape[1] > 1:
            m = res["cast"]["sample_mean"]
            lines.append(f"the mean of each photo's {c.shape[1]} samples (the sampler's estimate "
                         f"of its posterior mean): {grey_ratio(m, g):.2f}x grey's, "
                         f"{worse_than_grey(m, g):.0%} further than grey. Single draws from a "
                         "calibrated sampler land about 1.4x as far from the truth as its "
                         "posterior mean does")
        if res["cast"].get("probe") is not None:
            pr = res["cast"]["probe"]
            lines.append(f"a linear read-out of the averaged conditioning features "
                         f"({PROBE_FOLDS}-fold cross-validated ridge): {grey_ratio(pr, g):.2f}x "
                         f"grey's, {worse_than_grey(pr, g):.0%} further than grey (what the "
                         "features know of the overall colour)")
    d = res["mean"]["sample"] - res["mean"]["gt"]
    lines.append(f"sample - gt mean chroma: Cb {d[0]:+.4f}, Cr {d[1]:+.4f} "
                 "(Cr > 0 and Cb < 0 = a warm cast)")
    return "\n".join(lines)


def _images(paths: list[str]) -> Iterable[np.ndarray]:
    for p in expand_inputs(paths):
        try:
            yield load_rgb(p)
        except ImageLoadError as exc:
            print(f"skipped {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="default: the shipped demo checkpoint")
    ap.add_argument("--images", nargs="+", required=True, metavar="DIR_OR_FILE")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on a CPU")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    model = PixColor.load(args.checkpoint).to(args.device).eval()
    res = calibrate(model, _images(args.images), args.samples, args.seed, args.temperature)
    print(f"checkpoint {args.checkpoint or 'shipped demo'}; {args.samples} samples, seed "
          f"{args.seed}, temperature {args.temperature}")
    print(format_report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {k: ({kk: np.asarray(vv).tolist() for kk, vv in v.items()} if isinstance(v, dict)
                 else v) for k, v in res.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
