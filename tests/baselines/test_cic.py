"""CIC (Zhang et al. 2016): bins, soft-encoding, rebalancing, annealed mean, eccv16 weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import baselines
from baselines.cic import (
    CIC,
    NUM_BINS,
    CICConfig,
    ab_bins,
    annealed_mean,
    rebalance_weights,
    soft_encode,
)
from pixcolor import color

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def test_313_in_gamut_bins_on_the_grid():
    bins = ab_bins()
    assert bins.shape == (NUM_BINS, 2) == (313, 2)
    assert np.all(bins % 10 == 0)  # grid 10
    assert len({tuple(b) for b in bins}) == 313
    # every colour of the sRGB cube falls within half a grid diagonal of some bin
    rgb = np.random.default_rng(0).random((4000, 1, 3))
    ab = color.rgb_to_lab(rgb)[:, 0, 1:]
    d = np.sqrt(((ab[:, None] - bins[None]) ** 2).sum(-1)).min(1)
    assert d.max() <= 5 * np.sqrt(2) + 1e-6
    assert {(0, 0), (-90, 50), (80, -60)} <= {tuple(b) for b in bins.astype(int)}


def test_soft_encoding_sums_to_one_on_five_nearest(rng):
    bins = torch.from_numpy(ab_bins())
    ab = torch.from_numpy(rng.uniform(-60, 60, (2, 2, 5, 7)).astype(np.float32))
    z = soft_encode(ab, bins)
    assert z.shape == (2, NUM_BINS, 5, 7)
    assert torch.allclose(z.sum(1), torch.ones(2, 5, 7), atol=1e-6)
    assert ((z > 0).sum(1) == 5).all()
    nearest = torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2), bins).argmin(1)
    assert torch.equal(z.argmax(1).flatten(), nearest)
    on_bin = soft_encode(bins[17].view(1, 2, 1, 1), bins)  # exactly on a bin centre
    assert on_bin[0, 17, 0, 0] == on_bin.max()


def test_annealed_mean_limits(rng):
    bins = torch.from_numpy(ab_bins())
    logits = torch.from_numpy(rng.normal(0, 2, (2, NUM_BINS, 3, 4)).astype(np.float32))
    top = torch.from_numpy(rng.integers(0, NUM_BINS, (2, 1, 3, 4)))
    logits.scatter_add_(1, top, torch.full(top.shape, 8.0))  # a clear mode at every pixel
    mean = torch.einsum("nqhw,qc->nchw", torch.softmax(logits, 1), bins)
    assert torch.allclose(annealed_mean(logits, bins, 1.0), mean, atol=1e-4)
    mode = bins[logits.argmax(1)].permute(0, 3, 1, 2)
    assert torch.allclose(annealed_mean(logits, bins, 1e-3), mode, atol=1e-3)
    # T = 0.38 lies between: closer to the mode than the mean is
    mid = annealed_mean(logits, bins, 0.38)
    assert (mid - mode).abs().mean() < (mean - mode).abs().mean()


def test_rebalancing_weights():
    bins = torch.from_numpy(ab_bins())
    counts = torch.zeros(NUM_BINS, dtype=torch.float64)
    counts[:5] = 1000.0  # a few common (greyish) bins
    counts[100] = 1.0
    w = rebalance_weights(counts, bins, lam=0.5, sigma=5.0)
    assert (w > 0).all()
    assert w[0] < w[100] < w[200]  # rarer colours get larger weights
    assert torch.allclose(rebalance_weights(torch.zeros(NUM_BINS), bins), torch.ones(NUM_BINS))
    # lambda = 1: uniform weights, whatever the prior
    assert torch.allclose(rebalance_weights(counts, bins, lam=1.0), torch.ones(NUM_BINS))


def _official_state_dict(widths=(64, 128, 256, 512), seed=0) -> dict[str, torch.Tensor]:
    """A state dict with the names and shapes of the released eccv16 weights."""
    torch.manual_seed(seed)
    sd = CIC(CICConfig(widths=widths)).state_dict()
    return {k: v.clone() for k, v in sd.items()
            if k != "ab_counts" and not k.endswith("num_batches_tracked")}


@pytest.fixture(scope="module")
def official_sd() -> dict[str, torch.Tensor]:
    return _official_state_dict()


def test_official_weights_load_and_are_used(tmp_path, official_sd):
    sd = dict(official_sd)
    sd["model8.6.bias"] = torch.linspace(-1, 1, NUM_BINS)
    assert sd["model1.0.weight"].shape == (64, 1, 3, 3)
    assert sd["model8.6.weight"].shape == (NUM_BINS, 256, 1, 1)
    assert sd["model_out.weight"].shape == (2, NUM_BINS, 1, 1)
    perm = torch.randperm(NUM_BINS, generator=torch.Generator().manual_seed(3))
    sd["model_out.weight"] = sd["model_out.weight"][:, perm]  # another bin order
    path = tmp_path / "colorization_release_v2-9b330a0b.pth"
    torch.save(sd, path)
    model = baselines.load("cic", path)
    assert model.preset == "official" and model.cfg.decode == "mean"
    assert torch.equal(model.model8[6].bias, sd["model8.6.bias"])
    assert torch.allclose(model.bins(), torch.from_numpy(ab_bins())[perm], atol=1e-4)
    assert model.checkpoint_sha256 is not None
    annealed = baselines.load("cic", path, decode="annealed")
    assert annealed.cfg.decode == "annealed" and annealed.cfg.temperature == 0.38


def test_official_forward_matches_the_port():
    """``decode="mean"`` is the port's ``upsample4(model_out(softmax(conv8_3))) * 110``."""
    cfg = CICConfig(widths=(4, 8, 8, 16), decode="mean")
    model = CIC(cfg).load_official(_official_state_dict((4, 8, 8, 16), seed=1)).eval()
    lightness = torch.rand(2, 1, 32, 40) * 100
    with torch.no_grad():
        x = (lightness - 50) / 100
        for i in range(1, 9):
            x = getattr(model, f"model{i}")(x)
        ref = F.interpolate(model.model_out(torch.softmax(x, 1)), scale_factor=4,
                            mode="bilinear") * 110
        assert torch.allclose(model.predict_ab(lightness), ref, atol=1e-4)


@pytest.mark.parametrize("change, message", [
    (lambda sd: sd.pop("model8.6.weight"), "missing"),
    (lambda sd: sd.update({"model9.0.weight": torch.zeros(1)}), "unexpected"),
    (lambda sd: sd.update({"model1.0.weight": torch.zeros(64, 3, 3, 3)}), "wrong shapes"),
])
def test_wrong_official_weights_are_rejected(tmp_path, official_sd, change, message):
    sd = dict(official_sd)
    change(sd)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(baselines.BaselineCheckpointError, match=message):
        baselines.load("cic", path)


def test_not_a_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"foo.weight": torch.zeros(2)}, path)
    with pytest.raises(baselines.BaselineCheckpointError, match="eccv16"):
        baselines.load("cic", path)
    with pytest.raises(baselines.BaselineCheckpointError, match="no such"):
        baselines.load("cic", tmp_path / "missing.pth")
