"""SSIM and MS-SSIM (analysis.ssim) against reference implementations, plus properties."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data
from skimage.metrics import structural_similarity

from analysis.metrics import ms_ssim, ssim
from analysis.ssim import MIN_SIDE, MS_SSIM_WEIGHTS


def synthetic_pair() -> tuple[np.ndarray, np.ndarray]:
    """Seeded noise on smooth gradients, 192x224 (even at all five scales)."""
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:192, 0:224].astype(np.float64)
    base = np.stack([xx / 223 * 255, yy / 191 * 255, (xx + yy) / 414 * 255], axis=-1)
    a = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    b = np.clip(0.7 * base[..., ::-1] + 40 + rng.normal(0, 20, base.shape), 0, 255)
    return a, b.astype(np.uint8)


def photo_pair() -> tuple[np.ndarray, np.ndarray]:
    """skimage.data.astronaut() (512x512 RGB) and the same photo with R and G swapped."""
    a = data.astronaut()
    return a, np.ascontiguousarray(a[..., [1, 0, 2]])


# Reference values from pytorch-msssim 1.0.0 (torch 2.13.0+cpu, numpy 2.4.6), computed in a
# throwaway venv on float64 NCHW tensors of the images above:
#   pytorch_msssim.ms_ssim(X, Y, data_range=255, size_average=True)   (defaults: win 11,
#   sigma 1.5, K=(0.01, 0.03), weights 0.0448..0.1333)  and  pytorch_msssim.ssim(...).
# Tolerance 2e-5 absolute: pytorch-msssim builds its Gaussian taps in float32, which moves
# the low-similarity synthetic pair by about 5e-6; the photo pair agrees to 1e-7.
REFERENCE = {
    "synthetic": (synthetic_pair, 0.4855896467837031, 0.07021214430527688),
    "astronaut": (photo_pair, 0.9218502586889041, 0.8881745892838108),
}
REF_TOL = 2e-5


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_ms_ssim_and_ssim_match_pytorch_msssim(name):
    make, ref_ms, ref_ssim = REFERENCE[name]
    a, b = make()
    assert ms_ssim(a, b, data_range=255) == pytest.approx(ref_ms, abs=REF_TOL)
    assert ssim(a, b, data_range=255) == pytest.approx(ref_ssim, abs=REF_TOL)


@pytest.mark.parametrize("shape", [(40, 52, 3), (37, 45), (64, 64, 3)])
def test_ssim_matches_scikit_image(shape):
    rng = np.random.default_rng(len(shape) + shape[0])
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    noise = rng.integers(-50, 50, shape)
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    flat = np.full(shape, 120, np.uint8)
    for x, y in [(a, b), (a, flat), (flat, b)]:
        ref = structural_similarity(x, y, data_range=255, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False,
                                    channel_axis=-1 if len(shape) == 3 else None)
        assert ssim(x, y, data_range=255) == pytest.approx(ref, abs=1e-6)


def test_ms_ssim_properties():
    a, b = synthetic_pair()
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert ssim(b, b) == pytest.approx(1.0, abs=1e-6)
    assert ms_ssim(a, b) == ms_ssim(b, a)
    assert ssim(a, b) == ssim(b, a)
    rng = np.random.default_rng(7)
    for _ in range(3):
        x = rng.integers(0, 256, (170, 180, 3), dtype=np.uint8)
        y = rng.integers(0, 256, (170, 180, 3), dtype=np.uint8)
        assert 0.0 <= ms_ssim(x, y) <= 1.0
        assert -1.0 <= ssim(x, y) <= 1.0
    assert ms_ssim(a, 255 - a) == pytest.approx(0.0, abs=1e-6)  # anti-correlated: clamped
    c = np.clip(a.astype(int) + 30, 0, 255).astype(np.uint8)
    assert ms_ssim(a, b) < ms_ssim(a, c) < 1.0


def test_odd_sizes_and_grayscale_work():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (163, 171), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 20, a.shape), 0, 255).astype(np.uint8)
    v = ms_ssim(a, b)
    assert 0.0 < v < 1.0
    assert ms_ssim(a, b) == ms_ssim(b, a)


def test_small_images_raise_or_fall_back():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 30, a.shape), 0, 255).astype(np.uint8)
    assert MIN_SIDE == 161
    with pytest.raises(ValueError, match="161"):
        ms_ssim(a, b)
    up = ms_ssim(a, b, min_size="upsample")
    assert 0.0 < up < 1.0
    assert ms_ssim(a, a, min_size="upsample") == pytest.approx(1.0, abs=1e-6)
    few = ms_ssim(a, b, min_size="fewer_scales")  # 100 px: 4 scales (needs 81 px)
    w = np.asarray(MS_SSIM_WEIGHTS[:4])
    assert few == pytest.approx(ms_ssim(a, b, weights=tuple(w / w.sum())), abs=1e-12)
    with pytest.raises(ValueError, match="11"):
        ms_ssim(a[:8, :8], b[:8, :8], min_size="fewer_scales")
    with pytest.raises(ValueError, match="min_size"):
        ms_ssim(a, b, min_size="crop")
    with pytest.raises(ValueError, match="shape"):
        ms_ssim(a, b[:, :-1])


def test_blur_equals_scipy_correlate():
    """The shifted-sum Gaussian blur equals scipy's correlate1d (valid part) in float64."""
    from scipy import ndimage

    from analysis.ssim import _WINDOW, _blur_valid, gaussian_window

    w = gaussian_window()
    np.testing.assert_allclose(_WINDOW, w, rtol=1e-7)
    rng = np.random.default_rng(5)
    for shape in [(9, 64, 70), (3, 11, 11), (2, 300, 257), (1, 12, 40)]:
        x = rng.random(shape, dtype=np.float32) - 0.5
        ref = ndimage.correlate1d(x.astype(np.float64), w, axis=-1, mode="constant")
        ref = ndimage.correlate1d(ref, w, axis=-2, mode="constant")[..., 5:-5, 5:-5]
        got = _blur_valid(x)
        assert got.dtype == np.float32 and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=3e-7)


def test_prepare_ms_ssim_reuses_first_scale():
    from analysis.ssim import ms_ssim_prepared, prepare_ms_ssim, prepare_ssim

    a, b = synthetic_pair()
    first = prepare_ssim(a)
    reused = prepare_ms_ssim(a, first=first)
    assert reused[0] is first
    assert ms_ssim_prepared(reused, prepare_ms_ssim(b)) == ms_ssim(a, b)
    with pytest.raises(ValueError, match="prepared for"):
        prepare_ms_ssim(a[:180], first=first)
