"""Lab colour statistics: marginal a/b histograms and their intersection (paper Fig. 7).

Fig. 7 compares each method's marginal histograms of the CIELab a and b channels with those
of the ground-truth test images and summarises each comparison by the histogram
intersection. The paper gives no bin edges; ours (:data:`AB_EDGES`) are 64 bins of width 4
covering [-128, 128] for both a and b (sRGB colours span about a in [-86, 98] and
b in [-108, 95]); values outside are counted in the end bins. Lab comes from
:func:`pixcolor.color.rgb_to_lab` (scikit-image, D65), the project's only colour conversion.

For large runs, :class:`ABLookup` tabulates a and b of all 2**24 uint8 colours once (through
the same ``rgb_to_lab``, in float32, 128 MiB) so that each image costs a table look-up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

AB_EDGES = np.arange(-128.0, 128.0 + 1e-9, 4.0)  # 65 edges -> 64 bins of width 4


def ab_edges(bins: int | np.ndarray) -> np.ndarray:
    """Bin edges: ``bins`` itself (1-D increasing) or ``bins`` equal bins over [-128, 128]."""
    if np.isscalar(bins):
        return np.linspace(-128.0, 128.0, int(bins) + 1)
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bins must be an int or increasing 1-D bin edges")
    return edges


def image_ab(rgb: np.ndarray) -> np.ndarray:
    """The a and b channels of a uint8 RGB image, float (H, W, 2)."""
    from pixcolor.color import rgb_to_lab

    return rgb_to_lab(np.asarray(rgb))[..., 1:]


class ABLookup:
    """a and b of every uint8 RGB colour, computed once with ``pixcolor.color.rgb_to_lab``.

    Values agree with :func:`image_ab` to float32 precision (about 1e-5). The table is
    built lazily on the first call, 256 red planes at a time (about 3 s, 128 MiB).
    """

    _table: np.ndarray | None = None
    _lock = threading.Lock()

    @classmethod
    def table(cls) -> np.ndarray:
        """float32 (2**24, 2) table indexed by ``(R << 16) | (G << 8) | B``."""
        with cls._lock:
            if cls._table is None:
                from pixcolor.color import rgb_to_lab

                gb = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1)
                gb = gb.reshape(1, -1, 2).astype(np.float32) / 255.0
                table = np.empty((256, 65536, 2), dtype=np.float32)
                for r0 in range(0, 256, 16):
                    r = (np.arange(r0, r0 + 16, dtype=np.float32) / 255.0)[:, None, None]
                    rgb = np.concatenate([np.broadcast_to(r, (16, 65536, 1)),
                                          np.broadcast_to(gb, (16, 65536, 2))], -1)
                    table[r0:r0 + 16] = rgb_to_lab(rgb)[..., 1:]
                cls._table = table.reshape(-1, 2)
        return cls._table

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """a and b of a uint8 (H, W, 3) image, float32 (H, W, 2)."""
        arr = np.asarray(rgb)
        if arr.dtype != np.uint8 or arr.shape[-1] != 3:
            raise ValueError(f"ABLookup needs uint8 (..., 3) RGB, got {arr.dtype} {arr.shape}")
        idx = (arr[..., 0].astype(np.int32) << 16) | (arr[..., 1].astype(np.int32) << 8)
        idx |= arr[..., 2]
        return self.table()[idx]


def ab_counts(ab: np.ndarray, bins: int | np.ndarray = AB_EDGES) -> np.ndarray:
    """Unnormalised marginal histograms of a and b.

    Args:
        ab: (..., 2) float a and b values (e.g. from :func:`image_ab`).
        bins: bin edges (1-D increasing) or a number of equal bins over [-128, 128].

    Returns:
        int64 (2, n_bins) pixel counts; values beyond the edges go to the end bins.
    """
    edges = ab_edges(bins)
    n = len(edges) - 1
    v = np.asarray(ab).reshape(-1, 2)
    width = np.diff(edges)
    if np.allclose(width, width[0], rtol=1e-12, atol=0):
        # arithmetic binning, then fix floating-point rounding at the edges exactly
        idx = np.floor((v - edges[0]) * (1.0 / width[0])).astype(np.int64)
        np.clip(idx, 0, n - 1, out=idx)
        idx -= (v < edges[idx]) & (idx > 0)
        idx += (v >= edges[idx + 1]) & (idx < n - 1)
    else:
        idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, n - 1)
    idx[:, 1] += n  # b counts go after the a counts
    return np.bincount(idx.ravel(), minlength=2 * n).reshape(2, n).astype(np.int64)


def ab_histograms(images: Iterable[np.ndarray], bins: int | np.ndarray = AB_EDGES) -> np.ndarray:
    """Normalised marginal a and b histograms pooled over a set of images (paper Fig. 7).

    Args:
        images: iterable of (H, W, 3) uint8 RGB arrays (any sizes).
        bins: bin edges (default :data:`AB_EDGES`: 64 bins of width 4 over [-128, 128]) or
            a number of equal bins over [-128, 128].

    Returns:
        float64 (2, n_bins): row 0 the a histogram, row 1 the b histogram, each summing
        to 1 (each pixel of each image weighs the same).

    Raises:
        ValueError: no pixels at all.
    """
    total = None
    for img in images:
        counts = ab_counts(image_ab(img), bins)
        total = counts if total is None else total + counts
    if total is None or total.sum() == 0:
        raise ValueError("ab_histograms needs at least one non-empty image")
    return total / total.sum(axis=-1, keepdims=True)


def histogram_intersection(h1: np.ndarray, h2: np.ndarray) -> float | np.ndarray:
    """Histogram intersection: the sum over bins of min(h1, h2) after normalising each.

    Args:
        h1, h2: non-negative histograms of the same shape; the last axis holds the bins,
            e.g. (n_bins,) or (2, n_bins) for the a and b rows of :func:`ab_histograms`.

    Returns:
        In [0, 1]: 1 for identical (or proportional) histograms, 0 for disjoint ones; a
        float for 1-D inputs, else an array over the leading axes.

    Raises:
        ValueError: shapes differ, a negative count, or a histogram that sums to 0.
    """
    a = np.asarray(h1, dtype=np.float64)
    b = np.asarray(h2, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"histograms differ in shape: {a.shape} vs {b.shape}")
    if np.any(a < 0) or np.any(b < 0):
        raise ValueError("histograms must be non-negative")
    sa, sb = a.sum(axis=-1, keepdims=True), b.sum(axis=-1, keepdims=True)
    if np.any(sa == 0) or np.any(sb == 0):
        raise ValueError("cannot normalise a histogram that sums to 0")
    out = np.minimum(a / sa, b / sb).sum(axis=-1)
    return float(out) if out.ndim == 0 else out
