"""Automatic metrics, Lab histograms, the registry and compute_metrics on generated runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from analysis.evaluate import compute_metrics, evaluate_runs, per_image_metrics
from analysis.lab_stats import AB_EDGES, ab_counts, image_ab
from analysis.metrics import (
    METRICS,
    ab_histograms,
    auc_ab_error,
    auc_from_ab,
    colorfulness,
    get_metric,
    global_ab_error,
    histogram_intersection,
    psnr,
    register_metric,
)
from analysis.synthetic import make_image, make_runs
from pixcolor.color import rgb_to_ab


def test_psnr_known_values_and_reference():
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 10, np.uint8)
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 100))
    assert psnr(a, a) == float("inf")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    y = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert psnr(x, y) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=255))


def test_colorfulness_grayscale_zero_and_known_value():
    gray = np.repeat(np.random.default_rng(1).integers(0, 256, (16, 16, 1), np.uint8), 3, -1)
    assert colorfulness(gray) == 0.0
    # half pure red, half pure blue: rg = 255 | 0, yb = 127.5 | -255 (signed variant)
    img = np.zeros((4, 4, 3), np.uint8)
    img[:2, :, 0] = 255
    img[2:, :, 2] = 255
    expected = np.hypot(127.5, 191.25) + 0.3 * np.hypot(127.5, -63.75)
    assert colorfulness(img) == pytest.approx(expected)
    assert colorfulness(make_image(np.random.default_rng(2), (32, 32))) > 0


def test_auc_constant_offset_and_identity():
    gt_ab = np.zeros((10, 10, 2))
    pred_ab = gt_ab + np.array([30.0, 40.0])  # error 50 everywhere
    # cdf(t) = 0 for t < 50, 1 from 50 to 150: trapezoid area 100.5 over 150
    assert auc_from_ab(pred_ab, gt_ab) == pytest.approx(100.5 / 150)
    assert auc_from_ab(gt_ab, gt_ab) == 1.0
    img = make_image(np.random.default_rng(3), (24, 24))
    gray = np.repeat(img.mean(-1, keepdims=True).astype(np.uint8), 3, -1)
    assert auc_ab_error(img, img) == 1.0
    assert 0.0 < auc_ab_error(gray, img) < 1.0
    with pytest.raises(ValueError, match="shape"):
        auc_ab_error(img, img[:-1])


def test_histogram_intersection_identical_disjoint_and_errors():
    h = np.array([1.0, 2.0, 3.0, 0.0])
    assert histogram_intersection(h, h) == pytest.approx(1.0)
    assert histogram_intersection(h, 10 * h) == pytest.approx(1.0)  # normalised first
    assert histogram_intersection([1, 1, 0, 0], [0, 0, 2, 5]) == 0.0
    assert histogram_intersection([1, 1], [1, 0]) == pytest.approx(0.5)
    two = histogram_intersection(np.array([[1, 0], [1, 1]]), np.array([[0, 1], [1, 1]]))
    np.testing.assert_allclose(two, [0.0, 1.0])
    with pytest.raises(ValueError):
        histogram_intersection([0, 0], [1, 0])
    with pytest.raises(ValueError):
        histogram_intersection([1, 0], [1, 0, 0])


def test_ab_histograms_normalised_and_gray_at_zero():
    rng = np.random.default_rng(4)
    imgs = [make_image(rng, (20, 24)), make_image(rng, (16, 16))]
    h = ab_histograms(imgs)
    assert h.shape == (2, len(AB_EDGES) - 1)
    np.testing.assert_allclose(h.sum(axis=1), 1.0)
    gray = np.full((8, 8, 3), 90, np.uint8)
    hg = ab_histograms([gray], bins=8)  # 8 bins of width 32: a = b = 0 lies at an edge
    assert hg[:, 3:5].sum(axis=1) == pytest.approx([1.0, 1.0])
    counts = ab_counts(np.array([[-500.0, 500.0]]))  # out of range -> end bins
    assert counts[0, 0] == 1 and counts[1, -1] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ab_counts_equal_searchsorted_binning(dtype):
    """Every binning path (power-of-two grid, other equal bins, uneven) puts each value in
    the bin searchsorted finds, including values on edges, -0.0, values so small that
    v / width underflows, and values far outside the edges."""
    rng = np.random.default_rng(8)
    tiny = np.finfo(dtype).smallest_subnormal
    odd = [[-0.0, 0.0], [-tiny, tiny], [-4.0, np.nextafter(dtype(-4.0), dtype(0))],
           [128.0, -128.0], [1e30, -1e30], [np.nextafter(dtype(-128), dtype(-200)), 127.99]]
    v = np.concatenate([rng.normal(0, 60, (20000, 2)), np.round(rng.normal(0, 60, (2000, 2))),
                        np.array(odd)]).astype(dtype)
    for bins in (AB_EDGES, 8, 64, np.arange(-2.0, 2.0 + 1e-9, 0.25), np.arange(-100.0, 101, 5),
                 np.arange(-260.0, -99, 4.0), np.array([-128.0, -10, 0, 3, 50, 128])):
        e = np.linspace(-128, 128, bins + 1) if np.isscalar(bins) else np.asarray(bins, float)
        ref = [np.bincount(np.clip(np.searchsorted(e, v[:, c], side="right") - 1, 0,
                                   len(e) - 2), minlength=len(e) - 1) for c in range(2)]
        np.testing.assert_array_equal(ab_counts(v, bins), np.stack(ref), err_msg=str(bins))


def test_global_ab_error_measures_the_mean_colour_only():
    rng = np.random.default_rng(0)
    gt = rng.normal(0, 30, (16, 20, 2))
    assert global_ab_error(gt, gt) == 0.0
    # a local change that keeps the mean (swap two halves): no global error, AuC drops
    swapped = np.concatenate([gt[8:], gt[:8]])
    assert global_ab_error(swapped, gt) == pytest.approx(0.0, abs=1e-9)
    assert auc_from_ab(swapped, gt) < 1
    # a uniform cast of (3, -4) a, b units: 5
    assert global_ab_error(gt + np.array([3.0, -4.0]), gt) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        global_ab_error(gt, gt[:8])
    # from RGB through the registry: a grey output scores the truth's mean colour
    img = make_image(rng, (24, 24))
    grey = np.repeat(img.mean(2, keepdims=True).astype(np.uint8), 3, axis=2)
    want = np.hypot(*image_ab(img).reshape(-1, 2).mean(0, dtype=np.float64))
    m = get_metric("global_ab")
    assert m.input == "ab" and not m.higher_is_better
    assert m.fn(image_ab(grey), image_ab(img)) == pytest.approx(want, abs=0.5)


def test_registry():
    assert {"psnr", "ssim", "colorfulness", "auc", "ms_ssim"} <= set(METRICS)
    assert get_metric("colorfulness").needs_reference is False
    with pytest.raises(KeyError, match="choose one of"):
        get_metric("nope")
    with pytest.raises(ValueError, match="already"):
        register_metric("psnr", psnr)
    saved = dict(METRICS)
    try:
        @register_metric("mean_abs", description="mean absolute difference",
                         higher_is_better=False)
        def mean_abs(p, g):
            return float(np.abs(p.astype(int) - g.astype(int)).mean())

        assert get_metric("mean_abs").fn is mean_abs
    finally:
        METRICS.clear()
        METRICS.update(saved)




def test_compute_metrics_skips_and_reports(runs_dir, caplog):
    df = compute_metrics(runs_dir)  # no LPIPS weights here (tests/conftest.py)
    assert list(df.columns) == ["method", "n", "n_skipped", "psnr", "ssim", "colorfulness",
                                "auc", "global_ab", "colorfulness_abs", "delta_colorfulness",
                                "delta_colorfulness_abs", "psnr_n_identical",
                                "global_ab_vs_grey", "worse_than_grey"]
    assert "alexnet-owt-7be5be79.pth" in df.attrs["not_computed"]["lpips"]
    row = df.set_index("method")
    assert row.loc["gt", "psnr_n_identical"] == 3 and row.loc["cic", "psnr_n_identical"] == 0
    assert row.loc["cic", "n"] == 2 and row.loc["cic", "n_skipped"] == 1
    assert row.loc["pixcolor_s1", "n"] == 2 and row.loc["pixcolor_s1", "n_skipped"] == 1
    assert row.loc["gt", "psnr"] == float("inf")
    assert row.loc["gt", "ssim"] == pytest.approx(1.0) and row.loc["gt", "auc"] == 1.0
    assert row.loc["grayscale", "colorfulness"] == pytest.approx(0.0, abs=1e-9)
    assert row.loc["gt", "global_ab"] == 0.0 and row.loc["cic", "global_ab"] > 0
    reasons = {(s["method"], s["image_id"]): s for s in df.attrs["skipped"]}
    assert "missing" in reasons[("cic", "img0001")]["reason"]
    assert "not an image file" in reasons[("pixcolor_s1", "img0002")]["reason"]
    assert reasons[("grayscale", "img0002")]["metric"]  # wrong size: only reference metrics
    assert "skipped" in caplog.text
    per = per_image_metrics(runs_dir, ["cic"], ["psnr"])
    assert list(per["image_id"]) == ["img0000", "img0002"]
    assert per.attrs["skipped"][0]["image_id"] == "img0001"


def test_global_colour_error_relative_to_grey_is_paired_by_image(runs_dir, tmp_path):
    root = tmp_path / "runs"
    make_runs(root, n_images=8, size=(24, 28), methods=("cic", "grayscale"))
    (root / "cic" / "img0001.png").unlink()  # missing: grey's img0001 is left out too
    for i in (2, 5):  # a strong green cast: further from the truth's mean colour than grey
        Image.fromarray(np.full((24, 28, 3), (40, 200, 40), np.uint8)).save(
            root / "cic" / f"img000{i}.png")
    per = per_image_metrics(root, ["cic", "grayscale"], ["global_ab"])
    val = per.pivot(index="image_id", columns="method", values="global_ab").dropna()
    assert len(val) == 7
    worse = (val["cic"] > val["grayscale"]).mean()
    assert worse == 2 / 7
    df = compute_metrics(root, ["gt", "cic", "grayscale"], ["global_ab"]).set_index("method")
    assert df.loc["cic", "global_ab_vs_grey"] == pytest.approx(
        val["cic"].mean() / val["grayscale"].mean())
    assert df.loc["cic", "worse_than_grey"] == pytest.approx(worse)
    assert df.loc["gt", "global_ab_vs_grey"] == 0 and df.loc["gt", "worse_than_grey"] == 0
    assert df.loc["grayscale", "global_ab_vs_grey"] == 1
    assert df.loc["grayscale", "worse_than_grey"] == 0  # a tie is not worse
    assert "global_ab_vs_grey" not in compute_metrics(runs_dir, ["gt", "cic"], ["global_ab"])


def test_evaluate_runs_per_image_and_histograms(runs_dir):
    ev = evaluate_runs(runs_dir, ["gt", "cic"], ["psnr", "auc"], ab_bins=AB_EDGES)
    assert set(ev.per_image["method"]) == {"gt", "cic"} and len(ev.per_image) == 5
    inter = ev.intersections().set_index("method")
    assert inter.loc["gt", "a"] == pytest.approx(1.0)
    assert 0 < inter.loc["cic", "mean"] <= 1
    again = compute_metrics(runs_dir, ["gt", "cic"], ["psnr", "auc"])
    np.testing.assert_allclose(ev.summary()["auc"], again["auc"])


def test_rgb_to_ab_matches_scikit_image():
    """The float32 direct conversion agrees with skimage's rgb2lab (float64) within 1e-3.

    Checked here on a coarse grid of the RGB cube (every 5th level, both ends included), all
    grays and 2**18 random colours; over all 2**24 colours the largest difference is about
    1e-4 (checked once offline, 5 s).
    """
    from skimage.color import rgb2lab

    grid = np.append(np.arange(0, 256, 5), 255).astype(np.uint8)
    cube = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    grays = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    rand = np.random.default_rng(7).integers(0, 256, (2**18, 3), dtype=np.uint8)
    rgb = np.concatenate([cube, grays, rand])
    ours = rgb_to_ab(rgb)
    ref = rgb2lab(rgb.astype(np.float64) / 255.0)[..., 1:]
    assert ours.dtype == np.float32 and ours.shape == (len(rgb), 2)
    assert np.abs(ours - ref).max() < 1e-3
    assert np.abs(ours[len(cube):len(cube) + 256]).max() < 0.01  # grays: near 0 (as skimage)
    # image shapes are kept; uint8 goes through rgb_to_ab, float through skimage
    img = make_image(np.random.default_rng(6), (12, 14))
    assert image_ab(img).shape == (12, 14, 2)
    np.testing.assert_array_equal(image_ab(img), rgb_to_ab(img))
    np.testing.assert_allclose(image_ab(img / 255.0), rgb2lab(img / 255.0)[..., 1:])
    with pytest.raises(ValueError, match="uint8"):
        rgb_to_ab(img.astype(np.float32))


def test_evaluate_runs_diversity_equals_pairwise_ms_ssim(tmp_path):
    """The merged pass scores the same pairs (same values) as the stand-alone diversity."""
    from analysis.diversity import pairwise_ms_ssim

    samples = ("pixcolor_s1", "pixcolor_s2", "pixcolor_s3")
    make_runs(tmp_path / "big", n_images=2, size=(168, 176), methods=("cic", *samples))
    (tmp_path / "big" / "pixcolor_s2" / "img0001.png").unlink()  # one pair left for it
    make_runs(tmp_path / "small", n_images=2, size=(40, 44), methods=samples)
    for name, min_size in (("big", "raise"), ("small", "upsample")):
        root = tmp_path / name
        ev = evaluate_runs(root, metrics=["ssim"], sample_prefix="pixcolor_s",
                           ms_ssim_min_size=min_size)
        pairs, skips = pairwise_ms_ssim(root, "pixcolor_s", min_size=min_size)
        pd.testing.assert_frame_equal(ev.pairs, pairs)
        assert ev.pair_skips == skips
        two = evaluate_runs(root, metrics=["ssim"], sample_prefix="pixcolor_s",
                            ms_ssim_min_size=min_size, workers=2)
        pd.testing.assert_frame_equal(two.pairs, pairs)
    assert len(pairs) == 6 and (pairs["fallback"] == "upsample").all()
    big = evaluate_runs(tmp_path / "big", metrics=["psnr"], sample_prefix="pixcolor_s")
    assert len(big.pairs) == 3 + 1 and len(big.pair_skips) == 1
    assert (big.pairs["ms_ssim"] > 0).all() and (big.pairs["ms_ssim"] < 1).all()
    assert evaluate_runs(tmp_path / "big", metrics=["psnr"]).pairs.empty


def test_workers_do_not_change_results(runs_dir):
    one = evaluate_runs(runs_dir, metrics=["psnr", "ssim"], ab_bins=16, workers=1)
    two = evaluate_runs(runs_dir, metrics=["psnr", "ssim"], ab_bins=16, workers=2)
    pd.testing.assert_frame_equal(one.per_image, two.per_image)
    assert one.ab_counts.keys() == two.ab_counts.keys()
    for m in one.ab_counts:
        np.testing.assert_array_equal(one.ab_counts[m], two.ab_counts[m])
    assert len(one.skipped) == len(two.skipped)


def test_psnr_mean_ignores_identical_images(tmp_path):
    """One output identical to the ground truth must not make the mean PSNR infinite."""
    make_runs(tmp_path, n_images=2, size=(24, 28), methods=("cic",))
    gt0 = np.asarray(Image.open(tmp_path / "gt" / "img0000.png"))
    Image.fromarray(gt0).save(tmp_path / "cic" / "img0000.png")
    row = compute_metrics(tmp_path, metrics=("psnr",)).set_index("method").loc["cic"]
    one = per_image_metrics(tmp_path, ["cic"], ["psnr"])["psnr"].to_numpy()
    assert np.isinf(one).sum() == 1
    assert row["psnr"] == pytest.approx(one[np.isfinite(one)].mean())
    assert row["psnr_n_identical"] == 1
