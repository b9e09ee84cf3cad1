"""tools.calibration: pooled chroma marginals and teacher-forced cross-entropy."""

import copy

import numpy as np
import pytest
import torch

from pixcolor import PixColor, color
from tools.calibration import (
    calibrate,
    feature_probe,
    format_report,
    grey_ratio,
    main,
    worse_than_grey,
)


def _gt_bins(model, rgb):
    ycc = color.rgb_to_ycbcr(rgb.astype(np.float32) / 255)
    cbcr = torch.from_numpy(np.ascontiguousarray(ycc[..., 1:])).permute(2, 0, 1)[None]
    low = color.resize(cbcr, model.lowres_size(*rgb.shape[:2]), antialias=True)
    return color.quantize_chroma(low, model.cfg.bins), ycc


def test_marginals_and_cross_entropy(tiny, photo, one_torch_thread):
    images = [photo[:96, :128], photo[200:280, 100:150]]  # landscape and portrait crops
    tiny = copy.deepcopy(tiny)
    torch.manual_seed(1)
    with torch.no_grad():  # make the conditioning matter (a fresh model's logits barely move)
        for w in [*tiny.pixelcnn.parameters(), *tiny.cond.adapt.parameters()]:
            w.normal_(0, 0.3)
    res = calibrate(tiny, images, num_samples=2, seed=3)
    assert res["n_images"] == 2
    for k in ("gt", "teacher", "sample"):
        assert res["hist"][k].shape == (2, tiny.cfg.bins)
        np.testing.assert_allclose(res["hist"][k].sum(1), 1.0)
    np.testing.assert_allclose(res["intersection"]["gt"], 1.0)
    # gt marginal and cross-entropy recomputed independently, image by image
    counts, nll, n = np.zeros((2, tiny.cfg.bins)), 0.0, 0
    for im in images:
        gt, ycc = _gt_bins(tiny, im)
        for c in range(2):
            counts[c] += np.bincount(gt[0, c].flatten().numpy(), minlength=tiny.cfg.bins)
        y = torch.from_numpy(np.ascontiguousarray(ycc[..., :1])).permute(2, 0, 1)[None]
        with torch.no_grad():
            logits = tiny.pixelcnn_logits(y, gt)
        logp = torch.log_softmax(logits.double(), 2).gather(2, gt[:, :, None])
        nll -= float(logp.sum())
        n += gt.numel()
    np.testing.assert_allclose(res["hist"]["gt"], counts / counts.sum(1, keepdims=True))
    assert res["nll"] == pytest.approx(nll / n, rel=1e-5)
    assert "warm cast" in format_report(res)

    # each image scored with the other image's conditioning features, resized to its grid
    feats, gts = [], []
    for im in images:
        gt, ycc = _gt_bins(tiny, im)
        y = torch.from_numpy(np.ascontiguousarray(ycc[..., :1])).permute(2, 0, 1)[None]
        with torch.no_grad():
            feats.append(tiny.conditioning(y, tuple(gt.shape[-2:])))
        gts.append(gt)
    other = 0.0
    for gt, f in ((gts[0], feats[1]), (gts[1], feats[0])):
        f = torch.nn.functional.interpolate(f, size=tuple(gt.shape[-2:]), mode="bilinear")
        with torch.no_grad():
            logp = torch.log_softmax(tiny.pixelcnn(gt, f).double(), 2).gather(2, gt[:, :, None])
        other -= float(logp.sum())
    assert res["nll_other_cond"] == pytest.approx(other / n, rel=1e-5)
    # own and other features differ by far more than the tolerance above
    assert abs(res["nll_other_cond"] - res["nll"]) > 1e-4
    assert "another image's conditioning" in format_report(res)
    assert calibrate(tiny, images[:1], num_samples=1)["nll_other_cond"] is None

    # single samples' global colour error, recomputed from the samples themselves
    centres = color.dequantize_chroma(np.arange(tiny.cfg.bins), tiny.cfg.bins)
    want, grey, of_mean = [], [], []
    for im in images:
        gt, ycc = _gt_bins(tiny, im)
        y = torch.from_numpy(np.ascontiguousarray(ycc[..., :1])).permute(2, 0, 1)[None]
        bins, _ = tiny.sample_lowres(y, num_samples=2, seed=3)
        g = centres[gt[0].numpy()].reshape(2, -1).mean(1)
        means = [centres[b.numpy()].reshape(2, -1).mean(1) for b in bins[0]]
        want.append([np.hypot(*(m - g)) for m in means])
        of_mean.append(np.hypot(*(np.mean(means, 0) - g)))
        grey.append(np.hypot(*g))
    np.testing.assert_allclose(res["cast"]["per_sample"], want, rtol=1e-6)
    np.testing.assert_allclose(res["cast"]["grey"], grey, rtol=1e-6)
    np.testing.assert_allclose(res["cast"]["sample_mean"], of_mean, rtol=1e-6, atol=1e-12)
    assert "posterior mean" in format_report(res)
    assert res["cast"]["per_sample"].max() > 0 and "global colour error" in format_report(res)
    want, grey = np.array(want), np.array(grey)
    assert grey_ratio(want, grey) == pytest.approx(want.mean() / grey.mean())
    share = np.mean([w > g for ws, g in zip(want, grey, strict=True) for w in ws])
    assert worse_than_grey(want, grey) == pytest.approx(share)
    assert f"{share:.0%} of samples further from the truth's mean colour than grey" in (
        format_report(res))


def test_cli_skips_unreadable_files(tmp_path, photo, capsys, one_torch_thread):
    from pixcolor.io import save_png

    save_png(tmp_path / "a.png", photo[::8, ::8])
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    ckpt = tmp_path / "tiny.pt"
    torch.manual_seed(0)
    PixColor.from_preset("tiny").save(ckpt)
    assert main(["--checkpoint", str(ckpt), "--images", str(tmp_path), "--samples", "1",
                 "--json", str(tmp_path / "cal.json")]) == 0
    out, err = capsys.readouterr()
    assert "1 images" in out and "broken.jpg" in err
    assert (tmp_path / "cal.json").is_file()


def test_feature_probe_is_out_of_fold():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    w, b = rng.normal(size=(6, 2)), np.array([0.3, -0.1])
    np.testing.assert_allclose(feature_probe(x, x @ w + b, ridge=1e-12), x @ w + b, atol=1e-8)
    # 30 noise features for 32 training photos per fold: an in-sample fit would be nearly
    # exact; predictions for photos left out of the fit are not
    noise, y = rng.normal(size=(40, 30)), rng.normal(size=(40, 2))
    x1 = np.c_[noise, np.ones(40)]
    in_sample = x1 @ np.linalg.lstsq(x1, y, rcond=None)[0]
    assert np.abs(in_sample - y).mean() < 0.5 * np.abs(y).mean()
    assert np.abs(feature_probe(noise, y) - y).mean() > np.abs(y).mean()
    assert feature_probe(x[:9], y[:9]) is None


def test_probe_reads_the_pooled_conditioning_features(tiny, photo, one_torch_thread):
    images = [photo[16 * i:16 * i + 48, 20 * i:20 * i + 64] for i in range(10)]
    res = calibrate(tiny, images, num_samples=1, seed=0)
    centres = color.dequantize_chroma(np.arange(tiny.cfg.bins), tiny.cfg.bins)
    pooled, means = [], []
    for im in images:
        gt, ycc = _gt_bins(tiny, im)
        y = torch.from_numpy(np.ascontiguousarray(ycc[..., :1])).permute(2, 0, 1)[None]
        with torch.no_grad():
            pooled.append(tiny.conditioning(y, tuple(gt.shape[-2:]))[0].double().mean((1, 2)))
        means.append(centres[gt[0].numpy()].reshape(2, -1).mean(1))
    want = np.linalg.norm(feature_probe(np.stack(pooled), np.stack(means)) - means, axis=1)
    np.testing.assert_allclose(res["cast"]["probe"], want, rtol=1e-6)
    assert "read-out of the averaged conditioning features" in format_report(res)
    assert calibrate(tiny, images[:3], num_samples=1)["cast"]["probe"] is None
