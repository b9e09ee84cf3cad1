"""SSIM and multiscale SSIM in numpy/scipy (paper Sec. 4 and Sec. 5.1, Fig. 8).

The paper rules out SSIM [37] as a measure of colorization quality (Sec. 4) but uses the
multiscale SSIM of Wang, Simoncelli and Bovik (2003) to measure how different two PixColor
samples of the same input are (Sec. 5.1, Fig. 8). Both live here, written from the papers:

* SSIM (Wang et al. 2004): Gaussian window 11x11 with sigma 1.5, K1 = 0.01, K2 = 0.03,
  population (not sample) covariances, statistics taken only where the whole window fits
  inside the image ("valid" filtering, equivalent to scikit-image's ``structural_similarity``
  with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``, which crops the
  5-pixel border). Colour images are scored per RGB channel and the channel scores averaged.
* MS-SSIM (Wang et al. 2003): five scales with weights (0.0448, 0.2856, 0.3001, 0.2363,
  0.1333); contrast-structure terms at every scale, the full SSIM at the coarsest; 2x2
  average pooling between scales, an odd side first padded by repeating its last row or
  column (as TensorFlow's ``tf.image.ssim_multiscale``). Each term is clamped at 0 before
  the weighted product (TensorFlow and pytorch-msssim do the same). Colour images: the
  product is taken per RGB channel and the channel values averaged, as in
  ``tf.image.ssim_multiscale`` and pytorch-msssim; we do not convert to luma (Y).

Five scales with an 11-pixel valid window need at least (11 - 1) * 2**4 + 1 = 161 pixels on
the shorter side. Smaller images raise ``ValueError`` unless ``min_size`` selects a fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

WINDOW_SIZE = 11  # Gaussian window side (Wang et al.)
WINDOW_SIGMA = 1.5  # Gaussian window sigma (Wang et al.)
K1 = 0.01  # luminance stabiliser: C1 = (K1 * data_range) ** 2
K2 = 0.03  # contrast stabiliser: C2 = (K2 * data_range) ** 2
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MIN_SIDE = (WINDOW_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1  # 161 px for 5 scales

MinSize = Literal["raise", "upsample", "fewer_scales"]


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian taps, float64 (size,), summing to 1."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


_DTYPE = np.float32  # working precision; see _to_chw
_WINDOW = gaussian_window().astype(_DTYPE)
_HALF = WINDOW_SIZE // 2


_TAPS = [_DTYPE(v) for v in _WINDOW]  # symmetric: tap k equals tap 10 - k


def _shift_sum(x: np.ndarray, step: int, n: int, out: np.ndarray, tmp: np.ndarray) -> None:
    """``out[j] = sum_k tap_k * x[j + k * step]`` for j < n, over 1-D float32 arrays.

    Sums of mirrored shifted copies (the window is symmetric): 6 multiplies and 10 adds,
    each one numpy operation over a contiguous run of ``n`` values.
    """
    np.multiply(x[_HALF * step:_HALF * step + n], _TAPS[_HALF], out=out[:n])
    t = tmp[:n]
    for k in range(_HALF):
        far = (2 * _HALF - k) * step
        np.add(x[k * step:k * step + n], x[far:far + n], out=t)
        t *= _TAPS[k]
        out[:n] += t


def _blur_padded(x: np.ndarray) -> np.ndarray:
    """Valid separable Gaussian blur of float32 (C, H, W), kept (C, H - 10, W) wide.

    Each channel is blurred as one flat array: the horizontal pass shifts by columns, the
    vertical one by rows (``W`` values), so every numpy operation runs over one contiguous
    block (the horizontal pass twice as fast as row by row). Column ``j >= W - 10`` of a
    row mixes the next row's first pixels and is not part of the result (the valid region
    is ``[..., :W - 10]``; the final 10 values are 0); the valid values equal a row-by-row
    blur's exactly (the same operations in the same order).
    """
    x = np.ascontiguousarray(x, dtype=_DTYPE)
    c, h, w = x.shape
    size, rows = h * w, (h - 2 * _HALF) * w
    out = np.empty((c, rows), dtype=_DTYPE)
    mid = np.empty(size - 2 * _HALF, dtype=_DTYPE)
    tmp = np.empty_like(mid)
    for i, flat in enumerate(x.reshape(c, size)):
        _shift_sum(flat, 1, size - 2 * _HALF, mid, tmp)
        _shift_sum(mid, w, rows - 2 * _HALF, out[i], tmp)
        out[i, rows - 2 * _HALF:] = 0
    return out.reshape(c, h - 2 * _HALF, w)


def _blur_valid(x: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter over the last two axes, valid region only.

    Equals ``scipy.ndimage.correlate1d`` with the 11-tap window along each axis, cropped to
    where the window fits, up to float32 rounding (the taps are summed in another order).

    Args:
        x: float32 (C, H, W) with H, W >= 11.

    Returns:
        float32 (C, H - 10, W - 10).
    """
    return np.ascontiguousarray(_blur_padded(x)[..., :np.shape(x)[-1] - 2 * _HALF])


def _to_chw(img: np.ndarray, data_range: float) -> np.ndarray:
    """(H, W) or (H, W, C) image to centred float32 (C, H, W): ``x / data_range - 0.5``.

    Working in [-0.5, 0.5] keeps float32 local variances (E[x^2] - E[x]^2) accurate to
    about 1e-7 of the range; the luminance term adds the 0.5 back.
    """
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {arr.shape}")
    x = arr.astype(_DTYPE) * _DTYPE(1.0 / data_range) - _DTYPE(0.5)
    return np.ascontiguousarray(np.moveaxis(x, -1, 0))


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if np.shape(a) != np.shape(b):
        raise ValueError(f"images differ in shape: {np.shape(a)} vs {np.shape(b)}")


@dataclass
class _Moments:
    """Per-scale local moments of one image (channel-first, centred units); the maps are
    :func:`_blur_padded`'s (C, H-10, W), valid in their first W-10 columns."""

    x: np.ndarray  # (C, H, W) image at this scale
    mu: np.ndarray  # (C, H-10, W) local mean
    var: np.ndarray  # (C, H-10, W) local variance E[x^2] - E[x]^2
    lum: np.ndarray  # (C, H-10, W) local mean in [0, 1] units (mu + 0.5)
    lum_sq: np.ndarray  # lum ** 2


def _moments(x: np.ndarray) -> _Moments:
    stacked = _blur_padded(np.concatenate([x, x * x], axis=0))
    c = x.shape[0]
    mu, var = stacked[:c], stacked[c:]
    var -= mu * mu
    lum = mu + _DTYPE(0.5)
    return _Moments(x=x, mu=mu, var=var, lum=lum, lum_sq=lum * lum)


def _ssim_cs(a: _Moments, b: _Moments, need_ssim: bool = True, need_cs: bool = True
             ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-channel mean SSIM (None unless ``need_ssim``) and mean contrast-structure term
    (None unless ``need_cs``).

    Inputs are in centred units (data_range 1, offset -0.5), so C1 = K1**2, C2 = K2**2.
    Returns float64 (C,) arrays.
    """
    c1 = _DTYPE(K1**2)
    c2 = _DTYPE(K2**2)
    valid = a.x.shape[-1] - 2 * _HALF  # the maps' columns that are the image's
    cs = _blur_padded(a.x * b.x)
    cs -= a.mu * b.mu  # covariance
    cs *= 2
    cs += c2
    den = a.var + b.var
    den += c2
    cs /= den
    cs_mean = cs[..., :valid].mean(axis=(-2, -1), dtype=np.float64) if need_cs else None
    if not need_ssim:
        return None, cs_mean
    lum = a.lum * b.lum
    lum *= 2
    lum += c1
    np.add(a.lum_sq, b.lum_sq, out=den)
    den += c1
    lum /= den
    lum *= cs  # the SSIM map
    return lum[..., :valid].mean(axis=(-2, -1), dtype=np.float64), cs_mean


def _downsample(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling of (C, H, W); an odd side is padded by repeating its last line."""
    if x.shape[-2] % 2:
        x = np.concatenate([x, x[..., -1:, :]], axis=-2)
    if x.shape[-1] % 2:
        x = np.concatenate([x, x[..., -1:]], axis=-1)
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255, *,
         per_channel: bool = False) -> float | np.ndarray:
    """Structural similarity (Wang et al. 2004) of two images.

    Args:
        a, b: (H, W) or (H, W, C) arrays of the same shape (uint8 RGB for this project),
            H and W at least 11.
        data_range: dynamic range of the values (255 for uint8). Always pass it for floats.
        per_channel: return the (C,) per-channel scores instead of their mean.

    Returns:
        Mean SSIM in [-1, 1] (1 for identical images), float or float64 (C,).

    Raises:
        ValueError: shapes differ or a side is under 11 pixels.
    """
    _check_pair(a, b)
    xa, xb = _to_chw(a, data_range), _to_chw(b, data_range)
    if min(xa.shape[-2:]) < WINDOW_SIZE:
        raise ValueError(f"SSIM needs at least {WINDOW_SIZE} px per side, got {np.shape(a)}")
    s, _ = _ssim_cs(_moments(xa), _moments(xb), need_cs=False)
    return s if per_channel else float(s.mean())


def prepare_ms_ssim(img: np.ndarray, data_range: float = 255,
                    n_scales: int = len(MS_SSIM_WEIGHTS), *,
                    first: _Moments | None = None) -> list[_Moments]:
    """Per-scale moments of one image, to score it against several others cheaply.

    Args:
        img: (H, W) or (H, W, C) image whose shorter side is at least
            (11 - 1) * 2**(n_scales - 1) + 1 pixels.
        data_range: dynamic range of the values (255 for uint8).
        n_scales: number of scales.
        first: :func:`prepare_ssim` of the same image with the same ``data_range`` (the
            finest scale), reused instead of recomputed.

    Returns:
        A list of ``n_scales`` opaque moment records for :func:`ms_ssim_prepared`.
    """
    x = _to_chw(img, data_range) if first is None else first.x
    need = (WINDOW_SIZE - 1) * 2 ** (n_scales - 1) + 1
    if min(x.shape[-2:]) < need:
        raise ValueError(f"{n_scales}-scale MS-SSIM needs >= {need} px per side, got {x.shape}")
    if first is not None and x.shape[-2:] != np.shape(img)[:2]:
        raise ValueError(f"first was prepared for {x.shape[-2:]} px, the image is "
                         f"{np.shape(img)[:2]}")
    out = [first if first is not None else _moments(x)]
    for _ in range(1, n_scales):
        x = _downsample(x)
        out.append(_moments(x))
    return out


def ms_ssim_prepared(a: list[_Moments], b: list[_Moments],
                     weights: tuple[float, ...] = MS_SSIM_WEIGHTS) -> float:
    """MS-SSIM from two :func:`prepare_ms_ssim` results with ``len(weights)`` scales."""
    if len(a) != len(weights) or len(b) != len(weights):
        raise ValueError(f"prepared {len(a)}/{len(b)} scales for {len(weights)} weights")
    w = np.asarray(weights, dtype=np.float64)
    per_channel = np.ones(a[0].x.shape[0], dtype=np.float64)
    for level, (ma, mb) in enumerate(zip(a, b, strict=True)):
        if ma.x.shape != mb.x.shape:
            raise ValueError(f"images differ in shape at scale {level}")
        last = level == len(w) - 1
        s, cs = _ssim_cs(ma, mb, need_ssim=last)
        term = s if last else cs
        per_channel *= np.maximum(term, 0.0) ** w[level]
    return float(per_channel.mean())


def _upsample_to_min(img: np.ndarray, min_side: int) -> np.ndarray:
    """Bilinear upsampling (aspect kept) so the shorter side is ``min_side``; float64."""
    from pixcolor.color import resize

    arr = np.asarray(img, dtype=np.float32)
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[..., None]
    h, w = arr.shape[:2]
    scale = min_side / min(h, w)
    size = (max(min_side, int(np.ceil(h * scale))), max(min_side, int(np.ceil(w * scale))))
    out = np.asarray(resize(arr, size, antialias=False), dtype=np.float64)
    return out[..., 0] if squeeze else out


def ms_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255, *,
            weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
            min_size: MinSize = "raise") -> float:
    """Multiscale SSIM (Wang, Simoncelli and Bovik 2003), per RGB channel then averaged.

    Args:
        a, b: (H, W) or (H, W, C) arrays of the same shape, e.g. uint8 RGB.
        data_range: dynamic range of the values (255 for uint8).
        weights: per-scale exponents, finest first; their number sets the scales.
        min_size: what to do when the shorter side is under
            (11 - 1) * 2**(len(weights) - 1) + 1 (161 px for 5 scales):
            ``"raise"`` (default) raises ``ValueError``; ``"upsample"`` bilinearly upsamples
            both images (aspect kept) so the shorter side is exactly that minimum;
            ``"fewer_scales"`` uses the most scales that fit (at least one) with the
            leading weights renormalised to sum to 1.

    Returns:
        MS-SSIM in [0, 1] for non-negative data; 1 for identical images. Symmetric.

    Raises:
        ValueError: shapes differ, the image is too small for ``min_size``, or an unknown
            ``min_size``.
    """
    _check_pair(a, b)
    if min_size not in ("raise", "upsample", "fewer_scales"):
        raise ValueError(f"min_size must be 'raise', 'upsample' or 'fewer_scales', "
                         f"got {min_size!r}")
    n = len(weights)
    need = (WINDOW_SIZE - 1) * 2 ** (n - 1) + 1
    side = min(np.shape(a)[:2])
    if side < need:
        if min_size == "raise":
            raise ValueError(
                f"{n}-scale MS-SSIM needs at least {need} px per side, got an image of shape "
                f"{np.shape(a)}; pass min_size='upsample' or 'fewer_scales' to score it anyway")
        if min_size == "upsample":
            a, b = _upsample_to_min(a, need), _upsample_to_min(b, need)
        else:
            if side < WINDOW_SIZE:
                raise ValueError(f"MS-SSIM needs at least {WINDOW_SIZE} px per side, "
                                 f"got {np.shape(a)}")
            n = int(np.floor(np.log2((side - 1) / (WINDOW_SIZE - 1)))) + 1
            w = np.asarray(weights[:n], dtype=np.float64)
            weights = tuple(w / w.sum())
    return ms_ssim_prepared(prepare_ms_ssim(a, data_range, n), prepare_ms_ssim(b, data_range, n),
                            weights)


def prepare_ssim(img: np.ndarray, data_range: float = 255) -> _Moments:
    """Single-scale moments of one image for :func:`ssim_prepared` (cache a reference)."""
    x = _to_chw(img, data_range)
    if min(x.shape[-2:]) < WINDOW_SIZE:
        raise ValueError(f"SSIM needs at least {WINDOW_SIZE} px per side, got {np.shape(img)}")
    return _moments(x)


def ssim_prepared(a: _Moments, b: _Moments) -> float:
    """:func:`ssim` (mean over channels) from two :func:`prepare_ssim` results."""
    if a.x.shape != b.x.shape:
        raise ValueError(f"images differ in shape: {a.x.shape} vs {b.x.shape} (C, H, W)")
    if a is b and np.isfinite(a.x).all():
        # an image against itself: every term is x / x with the same float32 x, exactly 1
        return 1.0
    return float(_ssim_cs(a, b, need_cs=False)[0].mean())
