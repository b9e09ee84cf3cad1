"""Bootstrap of VTT fractions: answers, images, or raters and images (paper Fig. 6).

The paper reports VTT scores "with error ranges produced by bootstrapping the mean"
(Fig. 6) without saying what was resampled. Three schemes, each returning replicates of
the fraction ``sum(y) / n`` of answers that chose the generated image:

* ``"answers"``: resample the answers of a method independently with replacement. For 0/1
  answers the resampled sum is exactly Binomial(n, mean), which we draw directly (same
  distribution as index resampling, O(B) instead of O(B n)).
* ``"images"``: resample images with replacement and keep all answers of each drawn image
  (a cluster bootstrap; the ratio of resampled sums).
* ``"raters_images"``: resample raters and images independently, both with replacement, and
  weight each answer by (times its rater was drawn) x (times its image was drawn): the
  two-way "pigeonhole" bootstrap of Owen (2007) for crossed random effects. It accounts for
  both rater and image variation and is slightly conservative.

Groups (methods) share the image and rater draws of a replicate, so differences between
methods are paired; under ``"answers"`` they are independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import sparse

Resample = Literal["answers", "images", "raters_images"]
RESAMPLE_SCHEMES: tuple[str, ...] = ("answers", "images", "raters_images")
_CHUNK_CELLS = 2_000_000  # replicates x clusters per chunk (memory bound)


@dataclass(frozen=True)
class Group:
    """The answers of one method.

    Attributes:
        y: float64 (n,) answers, 1 if the generated image was chosen else 0.
        image: int64 (n,) image codes in [0, n_images).
        rater: int64 (n,) rater codes in [0, n_raters).
    """

    y: np.ndarray
    image: np.ndarray
    rater: np.ndarray


def _counts(rng: np.random.Generator, b: int, k: int) -> np.ndarray:
    """How often each of k clusters is drawn in b resamples of size k: int64 (b, k)."""
    idx = rng.integers(0, k, size=(b, k)) + (np.arange(b) * k)[:, None]
    return np.bincount(idx.ravel(), minlength=b * k).reshape(b, k)


def bootstrap_means(groups: list[Group], resample: Resample, n_resamples: int,
                    rng: np.random.Generator, n_images: int, n_raters: int) -> np.ndarray:
    """Bootstrap replicates of each group's mean answer.

    Args:
        groups: the answers per method (codes shared across groups).
        resample: ``"answers"``, ``"images"`` or ``"raters_images"`` (see module doc).
        n_resamples: replicates B.
        rng: the random generator (the only source of randomness).
        n_images, n_raters: code ranges.

    Returns:
        float64 (G, B) replicate means; NaN where a replicate drew no answer of a group
        (possible only under ``"raters_images"``).

    Raises:
        ValueError: unknown scheme or an empty group.
    """
    if resample not in RESAMPLE_SCHEMES:
        raise ValueError(f"resample must be one of {RESAMPLE_SCHEMES}, got {resample!r}")
    if any(len(g.y) == 0 for g in groups):
        raise ValueError("cannot bootstrap a method without answers")
    scheme = {"answers": _boot_answers, "images": _boot_images,
              "raters_images": _boot_raters_images}[resample]
    return scheme(groups, n_resamples, rng, n_images, n_raters)


def _boot_answers(groups: list[Group], n_resamples: int, rng: np.random.Generator,
                  n_images: int, n_raters: int) -> np.ndarray:
    """Answers resampled independently: binomial draws for 0/1 answers, else indices."""
    out = np.empty((len(groups), n_resamples), dtype=np.float64)
    for i, g in enumerate(groups):
        n = len(g.y)
        if np.all((g.y == 0) | (g.y == 1)):
            out[i] = rng.binomial(n, g.y.mean(), size=n_resamples) / n
        else:  # general values: index resampling
            for s in range(0, n_resamples, max(1, _CHUNK_CELLS // n)):
                e = min(n_resamples, s + max(1, _CHUNK_CELLS // n))
                out[i, s:e] = g.y[rng.integers(0, n, size=(e - s, n))].mean(axis=1)
    return out


def _boot_images(groups: list[Group], n_resamples: int, rng: np.random.Generator,
                 n_images: int, n_raters: int) -> np.ndarray:
    """Images resampled as clusters (one draw of image weights shared by every group)."""
    out = np.empty((len(groups), n_resamples), dtype=np.float64)
    sums = [np.bincount(g.image, g.y, minlength=n_images) for g in groups]
    cnts = [np.bincount(g.image, minlength=n_images).astype(np.float64) for g in groups]
    step = max(1, _CHUNK_CELLS // max(n_images, 1))
    for s in range(0, n_resamples, step):
        e = min(n_resamples, s + step)
        w = _counts(rng, e - s, n_images).astype(np.float64)
        for i in range(len(groups)):
            with np.errstate(invalid="ignore", divide="ignore"):
                out[i, s:e] = (w @ sums[i]) / (w @ cnts[i])
    return out


def _boot_raters_images(groups: list[Group], n_resamples: int, rng: np.random.Generator,
                        n_images: int, n_raters: int) -> np.ndarray:
    """Raters and images resampled independently (crossed clusters): an answer's weight
    is its rater's count times its image's count."""
    out = np.empty((len(groups), n_resamples), dtype=np.float64)
    mats = []
    for g in groups:
        shape = (n_images, n_raters)
        s_mat = sparse.csr_matrix((g.y, (g.image, g.rater)), shape=shape)
        c_mat = sparse.csr_matrix((np.ones(len(g.y)), (g.image, g.rater)), shape=shape)
        mats.append((s_mat, c_mat))
    step = max(1, _CHUNK_CELLS // max(n_images + n_raters, 1))
    for s in range(0, n_resamples, step):
        e = min(n_resamples, s + step)
        wr = _counts(rng, e - s, n_raters).astype(np.float64).T  # (R, b)
        wi = _counts(rng, e - s, n_images).astype(np.float64).T  # (I, b)
        for i, (s_mat, c_mat) in enumerate(mats):
            num = np.einsum("ib,ib->b", np.asarray(s_mat @ wr), wi)
            den = np.einsum("ib,ib->b", np.asarray(c_mat @ wr), wi)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[i, s:e] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return out


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval along the last axis (NaN replicates ignored).

    Args:
        replicates: float (..., B).
        confidence: coverage in (0, 1), e.g. 0.95 for the 2.5th and 97.5th percentiles.

    Returns:
        (low, high), each float64 of shape replicates.shape[:-1].
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(replicates, [alpha, 100 - alpha], axis=-1)
    return low, high
