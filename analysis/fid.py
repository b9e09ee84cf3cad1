"""FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) of image sets, as the reference code
computes them, over cached Inception-v3 features.

* Features: :func:`image_features` runs :mod:`analysis.inception` (``"fid"``: the TF
  Inception of pytorch-fid / torch-fidelity; ``"torchvision"``: DDColor's and CT2's) over a
  folder or a list of files, in batches, and keeps each image's 2048 features on disk under
  (image sha256, weights sha256, variant): adding a method computes only its images.
* :func:`statistics`: mean and covariance as pytorch-fid and torch-fidelity take them
  (``np.mean`` of the float32 features, ``np.cov`` in float64). Fewer than 2,048 images
  (the feature size) give a rank-deficient covariance and an upward-biased FID:
  :class:`FewImagesWarning`; compare FIDs only at equal image counts.
* :func:`frechet_distance`: pytorch-fid's ``calculate_frechet_distance`` (after TTUR):
  ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2))`` with ``scipy.linalg.sqrtm``; a
  non-finite root is retried with ``eps`` added to both diagonals, and an imaginary part
  is dropped when the diagonal's is below 1e-3 (else ValueError). torch-fidelity takes
  ``tr sqrtm`` as the sum of square roots of the eigenvalues of S1 S2: the same number up to
  rounding (tested to 1e-5 relative).
* :func:`kid`: torch-fidelity's KID: unbiased MMD^2 with the kernel
  ``(x . y / d + 1)^3`` over ``subsets`` random subsets of ``subset_size`` images per set
  (drawn without replacement with ``np.random.RandomState(seed)`` in torch-fidelity's
  order); mean and (population) standard deviation over the subsets. Kernels are summed in
  float64; torch-fidelity sums in the features' dtype (float32 in its pipeline).
* :func:`fid_bootstrap`: a percentile interval by resampling images (see there).

Command line: ``python -m analysis.fid DIR_A DIR_B [--variant fid|torchvision]
[--weights FILE] [--cache-dir DIR] [--kid] [--bootstrap B]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import linalg

log = logging.getLogger(__name__)

MIN_IMAGES = 2048  # below this many images the 2048 x 2048 covariance is singular


class FewImagesWarning(UserWarning):
    """Statistics from fewer than :data:`MIN_IMAGES` images: FID is biased upward."""


@dataclass(frozen=True)
class Statistics:
    """Mean (d,) (the features' dtype) and covariance (d, d) float64 of n feature vectors."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int


def statistics(features: np.ndarray) -> Statistics:
    """Mean and covariance of (N, d) features, as the reference implementations take them.

    Warns:
        FewImagesWarning: N < 2048.
    """
    features = np.asarray(features)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (N, d) features with N >= 2, got shape {features.shape}")
    if len(features) < MIN_IMAGES:
        warnings.warn(f"FID statistics from {len(features)} images (< {MIN_IMAGES}): the "
                      "covariance is rank-deficient and FID is biased upward; compare FIDs "
                      "only at equal image counts", FewImagesWarning, stacklevel=2)
    return Statistics(np.mean(features, axis=0), np.cov(features, rowvar=False), len(features))


def frechet_distance(a: Statistics, b: Statistics, eps: float = 1e-6) -> float:
    """The Frechet distance of two Gaussians, pytorch-fid's computation (module docstring).

    Raises:
        ValueError: different dimensions, or ``sqrtm`` leaves a large imaginary part.
    """
    if a.mu.shape != b.mu.shape or a.sigma.shape != b.sigma.shape:
        raise ValueError(f"statistics of different sizes: {a.mu.shape} and {b.mu.shape}")
    diff = a.mu - b.mu
    covmean = linalg.sqrtm(a.sigma.dot(b.sigma))
    if not np.isfinite(covmean).all():
        log.warning("FID: singular product of covariances; adding %g to their diagonals", eps)
        offset = np.eye(a.sigma.shape[0]) * eps
        covmean = linalg.sqrtm((a.sigma + offset).dot(b.sigma + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: sqrtm has an imaginary component of "
                             f"{np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(a.sigma) + np.trace(b.sigma) - 2 * np.trace(covmean))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID of two (N, d) feature sets (warns below 2048 images, see :func:`statistics`)."""
    return frechet_distance(statistics(features_a), statistics(features_b))


@dataclass(frozen=True)
class KID:
    """KID over subsets: mean and population standard deviation of the MMD^2 estimates."""

    mean: float
    std: float


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int, gamma: float,
                   coef0: float) -> float:
    """Unbiased MMD^2 of two (m, d) samples under ``(gamma x.y + coef0)^degree``."""
    m = len(x)
    kxx = (x @ x.T * gamma + coef0) ** degree
    kyy = (y @ y.T * gamma + coef0) ** degree
    kxy = (x @ y.T * gamma + coef0) ** degree
    off_diag = kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)
    return float(off_diag / (m * (m - 1)) - 2 * kxy.sum() / (m * m))


def kid(features_a: np.ndarray, features_b: np.ndarray, *, subsets: int = 100,
        subset_size: int = 1000, degree: int = 3, gamma: float | None = None,
        coef0: float = 1.0, seed: int = 2020) -> KID:
    """Kernel Inception Distance as torch-fidelity 0.4 defines it (module docstring).

    Args:
        features_a, features_b: (N, d) features of the two sets.
        subsets, subset_size: torch-fidelity's ``kid_subsets`` and ``kid_subset_size``.
        degree, gamma, coef0: the polynomial kernel; ``gamma`` None means ``1 / d``.
        seed: torch-fidelity's ``rng_seed`` (the subsets are the ones it draws).

    Raises:
        ValueError: a set smaller than ``subset_size`` (pass a smaller one).
    """
    xa, xb = (np.asarray(f, dtype=np.float64) for f in (features_a, features_b))
    if min(len(xa), len(xb)) < subset_size:
        raise ValueError(f"KID subset size {subset_size} is larger than a set ({len(xa)} and "
                         f"{len(xb)} images); pass subset_size <= {min(len(xa), len(xb))}")
    gamma = 1.0 / xa.shape[1] if gamma is None else gamma
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        ia = rng.choice(len(xa), subset_size, replace=False)
        ib = rng.choice(len(xb), subset_size, replace=False)
        mmds[i] = _mmd2_unbiased(xa[ia], xb[ib], degree, gamma, coef0)
    return KID(float(np.mean(mmds)), float(np.std(mmds)))


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    level: float
    n_resamples: int


def _draw(rng: np.random.Generator, n: int) -> np.ndarray:
    """How often each of n rows is drawn in one resample of size n: int64 (n,)."""
    return np.bincount(rng.integers(0, n, n), minlength=n)


def _weighted_stats(x: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (ddof 1) of the rows of x repeated ``counts`` times."""
    n = counts.sum()
    mu = counts @ x / n
    xc = x - mu
    return mu, (xc.T * counts) @ xc / (n - 1)


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _fid_symmetric(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, root2: np.ndarray) -> float:
    """FID with ``tr sqrtm(S1 S2) = tr sqrtm(S2^1/2 S1 S2^1/2)`` (a symmetric PSD matrix)."""
    w = np.linalg.eigvalsh(root2 @ s1 @ root2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(root2 @ root2)
                 - 2 * np.sqrt(np.clip(w, 0, None)).sum())


def fid_bootstrap(features: np.ndarray, reference: np.ndarray | Statistics,
                  rng: np.random.Generator, *, n_resamples: int = 100, level: float = 0.95,
                  paired: bool = True) -> Interval:
    """FID with a percentile bootstrap interval, resampling images.

    What is resampled: the rows of ``features`` (images drawn with replacement); the rows of
    ``reference`` too when it is a feature array, with the same draws when ``paired`` (row
    i of both is the same photo: a colourised image and its ground truth) and independent
    draws otherwise; a :class:`Statistics` reference stays fixed. Each replicate's FID uses
    the symmetric form of the trace term (equal to :func:`frechet_distance`'s up to
    rounding, without its nonsymmetric ``sqrtm``). A resample holds about 63% distinct
    images, so replicates lie above the full-sample FID: read the interval's width, and
    compare methods on the same draws (same seed, same image count).

    Args:
        features: (N, d) features of the method's images.
        reference: (M, d) reference features (M = N when paired), or fixed statistics.
        rng: the only source of randomness.
        n_resamples: replicates B (each costs two d x d eigendecompositions when the
            reference is resampled, one otherwise).
        level: central coverage of the interval.
        paired: resample the two arrays' rows together.

    Returns:
        The full-sample FID (:func:`fid`) and the interval.
    """
    features = np.asarray(features)
    fixed = isinstance(reference, Statistics)
    if not fixed and paired and len(reference) != len(features):
        raise ValueError(f"paired bootstrap needs equal counts, got {len(features)} and "
                         f"{len(reference)} images")
    ref_stats = reference if fixed else statistics(reference)
    estimate = frechet_distance(statistics(features), ref_stats)
    x = features.astype(np.float64)
    ref = None if fixed else np.asarray(reference, dtype=np.float64)
    mu_fixed = ref_stats.mu.astype(np.float64)
    root_fixed = _sqrt_psd(ref_stats.sigma) if fixed else None
    reps = np.empty(n_resamples)
    for i in range(n_resamples):
        counts = _draw(rng, len(x))
        mu1, s1 = _weighted_stats(x, counts)
        if fixed:
            reps[i] = _fid_symmetric(mu1, s1, mu_fixed, root_fixed)
            continue
        mu2, s2 = _weighted_stats(ref, counts if paired else _draw(rng, len(ref)))
        reps[i] = _fid_symmetric(mu1, s1, mu2, _sqrt_psd(s2))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(reps, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high), level, n_resamples)


def default_cache_dir() -> Path:
    """``$PIXCOLOR_FID_CACHE``, else ``$XDG_CACHE_HOME/pixcolor/fid`` (``~/.cache/...``)."""
    if os.environ.get("PIXCOLOR_FID_CACHE"):
        return Path(os.environ["PIXCOLOR_FID_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pixcolor" / "fid"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.fid",
                                description="FID (and KID) between two image folders.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("a", help="folder of images (e.g. a method's outputs)")
    p.add_argument("b", help="folder of reference images (e.g. the ground truth)")
    p.add_argument("--variant", default="fid", choices=["fid", "torchvision"],
                   help="fid: the TF Inception of pytorch-fid / torch-fidelity; torchvision: "
                        "DDColor's and CT2's")
    p.add_argument("--weights", default=None, help="weights file (default: $PIXCOLOR_FID_"
                   "WEIGHTS / $PIXCOLOR_FID_TV_WEIGHTS, then torch hub's checkpoints folder)")
    p.add_argument("--cache-dir", default=str(default_cache_dir()), help="feature cache")
    p.add_argument("--no-cache", action="store_true", help="compute every image")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--kid", action="store_true", help="also KID (subset size: 1000 or the "
                   "smaller set)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="B",
                   help="percentile interval from B resamples of the images")
    p.add_argument("--paired", action="store_true",
                   help="bootstrap: row i of both folders is the same photo")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return p


def main(argv: list[str] | None = None) -> int:
    """Print FID (KID, interval) of two folders as JSON; exit 2 on missing weights."""
    from analysis.fid_features import FeatureExtractor, image_features
    from analysis.inception import WeightsNotFound

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        ext = FeatureExtractor.open(args.variant, args.weights, device=args.device,
                                    batch_size=args.batch_size)
    except WeightsNotFound as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cache = None if args.no_cache else args.cache_dir
    fa, fb = (image_features(folder, ext, cache) for folder in (args.a, args.b))
    out: dict = {"variant": args.variant, "weights_sha256": ext.weights_sha256,
                 "n_a": len(fa), "n_b": len(fb)}
    if args.bootstrap:
        iv = fid_bootstrap(fa, fb, np.random.default_rng(args.seed),
                           n_resamples=args.bootstrap, paired=args.paired)
        out.update(fid=iv.estimate, fid_interval=asdict(iv))
    else:
        out["fid"] = fid(fa, fb)
    if args.kid:
        out["kid"] = asdict(kid(fa, fb, subset_size=min(1000, len(fa), len(fb))))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
