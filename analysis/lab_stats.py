"""Lab colour statistics: marginal a/b histograms and their intersection (paper Fig. 7).

Fig. 7 compares each method's marginal histograms of the CIELab a and b channels with those
of the ground-truth test images and summarises each comparison by the histogram
intersection. The paper gives no bin edges; ours (:data:`AB_EDGES`) are 64 bins of width 4
covering [-128, 128] for both a and b (sRGB colours span about a in [-86, 98] and
b in [-108, 95]); values outside are counted in the end bins. Lab of uint8 images comes from
:func:`pixcolor.color.rgb_to_ab`: scikit-image's ``rgb2lab`` formulas and constants (D65,
the reference of :func:`pixcolor.color.rgb_to_lab`) evaluated in float32 from 256-entry
tables; it agrees with scikit-image to within 1e-3 in a and b
(tests/analysis/test_metrics.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from pixcolor.color import rgb_to_ab
from pixcolor.color.lab_uint8 import _LAB_EPS, _XYZ_TABLES, _cbrt32

AB_EDGES = np.arange(-128.0, 128.0 + 1e-9, 4.0)  # 65 edges -> 64 bins of width 4


def ab_edges(bins: int | np.ndarray) -> np.ndarray:
    """Bin edges: ``bins`` itself (1-D increasing) or ``bins`` equal bins over [-128, 128]."""
    if np.isscalar(bins):
        return np.linspace(-128.0, 128.0, int(bins) + 1)
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bins must be an int or increasing 1-D bin edges")
    return edges


_RG_TABLES: list[np.ndarray] = []  # built on first use: (3, 65536) float32
_FAST_MAX = 3 << 20  # values up to which _uint8_ab is the faster (its index arrays stay small)


def _uint8_ab(arr: np.ndarray) -> np.ndarray:
    """:func:`pixcolor.color.rgb_to_ab` of uint8 (..., 3), bit for bit, faster: the float32
    sums of the R and G tables it adds first are tabulated once for every (R, G) (65,536
    entries per output), so each pixel takes 6 table lookups instead of 9."""
    if not _RG_TABLES:
        _RG_TABLES.append(np.ascontiguousarray(
            (_XYZ_TABLES[:, 0, :, None] + _XYZ_TABLES[:, 1, None, :]).reshape(3, -1)))
    flat = arr.reshape(-1, 3)
    rg = flat[:, 0].astype(np.intp)
    rg <<= 8
    rg |= flat[:, 1]
    blue = flat[:, 2].astype(np.intp)
    t = np.empty((3, len(flat)), dtype=np.float32)
    tmp = np.empty(len(flat), dtype=np.float32)
    for o in range(3):
        np.take(_RG_TABLES[0][o], rg, out=t[o])
        np.take(_XYZ_TABLES[o, 2], blue, out=tmp)
        t[o] += tmp
    small = t <= np.float32(_LAB_EPS)
    f = _cbrt32(t)
    if small.any():
        f[small] = t[small] * np.float32(7.787) + np.float32(16.0 / 116.0)
    out = np.empty((len(flat), 2), dtype=np.float32)
    np.subtract(f[0], f[1], out=out[:, 0])
    out[:, 0] *= np.float32(500.0)
    np.subtract(f[1], f[2], out=out[:, 1])
    out[:, 1] *= np.float32(200.0)
    return out.reshape(*arr.shape[:-1], 2)


def image_ab(rgb: np.ndarray) -> np.ndarray:
    """The a and b channels of an RGB image, (H, W, 2).

    uint8 input (every image of a runs folder): :func:`pixcolor.color.rgb_to_ab`'s float32
    values (bit for bit, from fewer table lookups); float input in [0, 1] through
    :func:`pixcolor.color.rgb_to_lab` (float64).
    """
    arr = np.asarray(rgb)
    if arr.dtype == np.uint8 and arr.shape[-1:] == (3,) and arr.size <= _FAST_MAX:
        return _uint8_ab(arr)
    if arr.dtype == np.uint8:
        return rgb_to_ab(arr)
    from pixcolor.color import rgb_to_lab  # scikit-image: loaded only for float input

    return rgb_to_lab(arr)[..., 1:]


def _grid_bins(v: np.ndarray, first: int, n: int, inv_width: float) -> np.ndarray:
    """Bin indices of ``v`` for ``n`` bins of width 2**k whose first edge is ``first`` widths.

    ``floor(v * inv_width)`` is exact in floating point for a power-of-two ``inv_width``,
    except where the product underflows to -0.0 (a negative ``v`` under about 1e-38 in
    float32), which is corrected; values beyond the edges go to the end bins.
    """
    itype = np.int32 if v.dtype == np.float32 else np.int64
    q = np.multiply(v, v.dtype.type(inv_width))
    np.floor(q, out=q)
    underflow = q.view(itype) == np.iinfo(itype).min  # -0.0
    underflow &= v < 0
    q -= underflow
    np.clip(q, first, first + n - 1, out=q)
    idx = q.astype(np.int64)
    idx -= first
    return idx


def ab_counts(ab: np.ndarray, bins: int | np.ndarray = AB_EDGES) -> np.ndarray:
    """Unnormalised marginal histograms of a and b.

    Args:
        ab: (..., 2) float a and b values (e.g. from :func:`image_ab`).
        bins: bin edges (1-D increasing) or a number of equal bins over [-128, 128].

    Returns:
        int64 (2, n_bins) pixel counts; values beyond the edges go to the end bins. A value
        on an edge belongs to the bin above it (the last bin includes its upper edge).
    """
    edges = ab_edges(bins)
    n = len(edges) - 1
    v = np.asarray(ab).reshape(-1, 2)
    width = np.diff(edges)
    uniform = np.allclose(width, width[0], rtol=1e-12, atol=0)
    w0 = float(width[0])
    first = edges[0] / w0
    if (v.dtype in (np.float32, np.float64) and np.log2(w0) == np.round(np.log2(w0))
            and first == np.round(first)
            and np.array_equal(edges, edges[0] + w0 * np.arange(n + 1))):
        # edges at integer multiples of a power of two (the default: width 4 from -128):
        # floor(v / width) is exact, no correction pass needed
        idx = _grid_bins(v, int(first), n, 1.0 / w0)
    elif uniform:
        # arithmetic binning, then fix floating-point rounding at the edges exactly
        idx = np.clip(np.floor((v - edges[0]) * (1.0 / width[0])), 0, n - 1).astype(np.int64)
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
