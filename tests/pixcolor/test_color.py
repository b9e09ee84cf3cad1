"""Colour maths (pixcolor.color): YCbCr vs PIL, quantisation, low-res chroma, Lab, colorness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.color import rgb2lab

from pixcolor import color

# The standard sepia-tone matrix (rows give R', G', B').
SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])


def _sepia(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb.astype(np.float64) @ SEPIA.T, 0, 255).astype(np.uint8)


def test_round_trip_numpy_batched(rng):
    rgb = rng.random((3, 5, 7, 3))
    ycc = color.rgb_to_ycbcr(rgb)
    assert ycc.shape == rgb.shape
    assert ycc[..., 0].min() >= 0 and ycc[..., 0].max() <= 1
    assert np.abs(ycc[..., 1:]).max() <= 0.5 + 1e-9
    np.testing.assert_allclose(color.ycbcr_to_rgb(ycc), rgb, atol=1e-9)


def test_round_trip_torch_batched(rng):
    rgb = torch.from_numpy(rng.random((2, 3, 6, 5)).astype(np.float32))
    ycc = color.rgb_to_ycbcr(rgb)
    assert ycc.shape == rgb.shape and ycc.dtype == torch.float32
    torch.testing.assert_close(color.ycbcr_to_rgb(ycc), rgb, atol=1e-5, rtol=0)
    # numpy and torch agree (channel-last vs channel-first).
    ref = color.rgb_to_ycbcr(rgb.permute(0, 2, 3, 1).double().numpy())
    np.testing.assert_allclose(ycc.permute(0, 2, 3, 1).numpy(), ref, atol=1e-5)


def test_gray_has_zero_chroma():
    gray = np.linspace(0, 1, 11)[:, None].repeat(3, -1)
    ycc = color.rgb_to_ycbcr(gray)
    np.testing.assert_allclose(ycc[..., 0], gray[:, 0], atol=1e-9)
    np.testing.assert_allclose(ycc[..., 1:], 0, atol=1e-9)


def test_agrees_with_pil_ycbcr(photo, rng):
    rgb = np.concatenate([photo[::4, ::4], rng.integers(0, 256, (128, 128, 3), np.uint8)], 0)
    pil = np.asarray(Image.fromarray(rgb).convert("YCbCr")).astype(int)
    ours = color.rgb_to_ycbcr(rgb).astype(np.float64)
    ours_bytes = np.floor(np.concatenate([ours[..., :1], ours[..., 1:] + 0.5], -1) * 255 + 0.5)
    assert np.abs(ours_bytes - pil).max() <= 1
    # And back. PIL's YCbCr -> RGB is fixed-point with truncation, off from the exact inverse
    # by up to about -1.9 levels (its own round trip is off by up to 3), so our exact inverse
    # agrees with it within 2 levels, and within 0.5 of the exact value.
    pil_rgb = np.asarray(Image.fromarray(pil.astype(np.uint8), "YCbCr").convert("RGB")).astype(int)
    ycc = np.concatenate([pil[..., :1] / 255.0, pil[..., 1:] / 255.0 - 0.5], -1)
    ours_rgb = color.to_uint8(color.ycbcr_to_rgb(ycc)).astype(int)
    assert np.abs(ours_rgb - pil_rgb).max() <= 2
    assert np.abs(ours_rgb - pil_rgb).mean() < 1


def test_uint8_round_trip_within_one_level(photo):
    back = color.to_uint8(color.ycbcr_to_rgb(color.rgb_to_ycbcr(photo)))
    assert np.abs(back.astype(int) - photo).max() <= 1


def test_quantisation_error_at_most_half_a_bin(rng):
    cbcr = rng.uniform(-0.5, 0.5, (10_000, 2))
    cbcr[:4] = [[-0.5, 0.5], [0.5, -0.5], [0.0, 1 / 64], [-1 / 32, 0.49999]]
    idx = color.quantize_chroma(cbcr)
    assert idx.dtype == np.int64 and idx.min() >= 0 and idx.max() < color.NUM_BINS
    err = np.abs(color.dequantize_chroma(idx) - cbcr)
    assert err.max() <= 0.5 / color.NUM_BINS + 1e-6
    t = torch.from_numpy(cbcr.astype(np.float32))
    assert torch.equal(color.quantize_chroma(t), torch.from_numpy(idx))
    assert (color.dequantize_chroma(color.quantize_chroma(t)) - t).abs().max() <= 1 / 64 + 1e-6
    # out-of-range values land in the end bins
    np.testing.assert_array_equal(color.quantize_chroma(np.array([-0.7, 0.7])), [0, 31])


@pytest.mark.parametrize("shape,expected", [((224, 224), (28, 28)), ((300, 451), (28, 42)),
                                            ((451, 300), (42, 28)), ((20, 50), (28, 70))])
def test_lowres_chroma_shape(shape, expected, rng):
    h, w = shape
    cbcr = rng.uniform(-0.3, 0.3, (h, w, 2)).astype(np.float32)
    assert color.lowres_size(h, w) == expected
    assert color.lowres_chroma(cbcr).shape == (*expected, 2)
    assert color.lowres_chroma(cbcr[None].repeat(2, 0)).shape == (2, *expected, 2)
    t = torch.from_numpy(cbcr).permute(2, 0, 1)
    assert tuple(color.lowres_chroma(t).shape) == (2, *expected)
    assert tuple(color.lowres_chroma(t[None]).shape) == (1, 2, *expected)
    up = color.upsample_chroma(color.lowres_chroma(t), (h, w))
    assert tuple(up.shape) == (2, h, w)


def test_lowres_chroma_is_an_area_average():
    # A constant image stays constant; a fine checkerboard averages to its mean (no aliasing).
    flat = np.full((224, 224, 2), 0.2, np.float32)
    np.testing.assert_allclose(color.lowres_chroma(flat), 0.2, atol=1e-6)
    checker = ((np.indices((224, 224)).sum(0) % 2) * 0.4 - 0.2).astype(np.float32)
    low = color.lowres_chroma(np.stack([checker, -checker], -1))
    assert np.abs(low).max() < 0.02


def test_lab_agrees_with_scikit_image(photo):
    # Reference values for sRGB primaries (D65): white, red, green, blue.
    rgb = np.array([[[255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    ref = np.array([[100, 0, 0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18],
                    [32.30, 79.19, -107.86]])
    np.testing.assert_allclose(color.rgb_to_lab(rgb)[0], ref, atol=0.05)
    np.testing.assert_allclose(color.rgb_to_lab(photo), rgb2lab(photo / 255.0), atol=1e-8)
    back = color.lab_to_rgb(color.rgb_to_lab(photo))
    assert np.abs(back * 255 - photo).max() < 0.5


def test_colorness_grayscale_is_zero(photo):
    gray = np.repeat(color.to_uint8(color.rgb_luma(photo))[..., None], 3, -1)
    assert color.colorness(gray) == pytest.approx(0.0, abs=1e-6)
    assert color.colorness(np.zeros((4, 4, 3), np.uint8)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_colorness_photo_vs_sepia(name):
    rgb = getattr(data, name)()
    assert color.colorness(rgb) > 0.15  # real photos: well above the 0.05 threshold
    assert color.colorness(_sepia(rgb)) < color.COLORNESS_THRESHOLD  # toned monochrome: below


def test_colorness_sepia_is_visibly_tinted_yet_low(photo):
    # Guard against a trivial pass: the sepia image is strongly coloured in the plain sense.
    sep = _sepia(photo)
    assert np.abs(color.rgb_to_ycbcr(sep)[..., 1:]).mean() > 0.03
    assert color.colorness(sep) < 0.05


def _merge_reference(y: np.ndarray, cbcr: np.ndarray) -> np.ndarray:
    """merge_luma_chroma as first written: numpy, a 3x3 matrix product per pixel."""
    y = np.clip(y.astype(np.float64), 0, 1)[..., None]
    full = np.concatenate([np.zeros_like(y), cbcr.astype(np.float64)], -1)
    d = full @ np.linalg.inv(color.ycbcr._RGB2YCC).T
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(d > 0, (1 - y) / d, np.where(d < 0, y / -d, np.inf))
    return color.to_uint8(y + np.clip(room.min(-1, keepdims=True), 0, 1) * d)


def test_merge_luma_chroma_keeps_luminance_and_in_gamut_colours(rng):
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    ycc = color.rgb_to_ycbcr(rgb)
    # In-gamut chroma (a real photo's) comes back as the photo itself.
    np.testing.assert_array_equal(color.merge_luma_chroma(ycc[..., 0], ycc[..., 1:]), rgb)
    # Saturated chroma is pulled towards grey, but Y stays the input's up to uint8 rounding.
    y = rng.random((40, 50))
    wild = rng.uniform(-0.5, 0.5, (40, 50, 2))
    out = color.merge_luma_chroma(y, wild)
    assert np.abs(color.rgb_to_ycbcr(out)[..., 0] - y).max() <= 0.5 / 255 + 1e-9
    # The hue is kept: the colour offset from grey has the sign pattern of the requested one.
    req = color.ycbcr_to_rgb(np.concatenate([y[..., None], wild], -1)) - y[..., None]
    got = out / 255.0 - y[..., None]
    big = np.abs(req) > 0.05
    assert (np.sign(got[big]) == np.sign(req[big])).mean() > 0.99


def test_merge_luma_chroma_batched_tensor_matches_numpy_reference(rng):
    y = rng.random((4, 30, 20)).astype(np.float32)
    cbcr = rng.uniform(-0.45, 0.45, (4, 30, 20, 2)).astype(np.float32)
    ref = np.stack([_merge_reference(y[i], cbcr[i]) for i in range(4)])
    np.testing.assert_array_equal(color.merge_luma_chroma(y[2], cbcr[2]), ref[2])
    batched = color.merge_luma_chroma(torch.from_numpy(y), torch.from_numpy(cbcr))
    assert isinstance(batched, np.ndarray) and batched.dtype == np.uint8
    np.testing.assert_array_equal(batched, ref)
    mixed = color.merge_luma_chroma(torch.from_numpy(y), cbcr)  # a tensor and an array
    np.testing.assert_array_equal(mixed, ref)
    with pytest.raises(ValueError, match=r"chroma of shape \(4, 30, 20, 2\)"):
        color.merge_luma_chroma(y, cbcr[..., :1])


def test_luma_takes_gray_or_rgb_uint8_and_nothing_else():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(color.luma(rgb), color.rgb_luma(rgb))
    gray = rgb[..., 0]
    np.testing.assert_array_equal(color.luma(gray), gray.astype(np.float32) / 255)
    assert color.chroma(rgb).shape == (5, 7, 2) and color.chroma(rgb).dtype == np.float32
    with pytest.raises(TypeError, match="uint8"):
        color.luma(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        color.luma(rgb[..., :2])


def test_light_users_of_colour_and_the_web_app_do_not_import_torch():
    """pixcolor.color loads its parts on first use: the analysis of output images
    (``rgb_to_ab``), the numpy Lab (``rgb_to_lab``, ``lab_to_rgb``) and the VTT app with its
    attention checks run without importing torch; everything else is there."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import numpy as np\n"
        "import analysis.metrics, analysis.lab_stats, vtt_app\n"
        "from pixcolor.color import lab_to_rgb, rgb_to_ab, rgb_to_lab\n"
        "import vtt_app.attention\n"
        "vtt_app.create_app({'SECRET_KEY': 'x', 'DATABASE_URL': 'sqlite://', 'ADMIN_TOKEN': 'x'})\n"
        "rgb_to_ab(np.zeros((2, 2, 3), np.uint8))\n"
        "lab_to_rgb(rgb_to_lab(np.zeros((2, 2, 3), np.uint8)))\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "from pixcolor import color\n"
        "assert color.rgb_luma is color.ycbcr.rgb_luma and 'torch' in sys.modules\n"
        "assert set(color.__all__) <= set(dir(color))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert res.returncode == 0, res.stderr
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        color.nope  # noqa: B018
