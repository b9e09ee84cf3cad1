"""All baselines: colorize conventions, Lab helpers, LRAC decoding, LTBC fusion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import baselines
from baselines.lrac import decode_chroma, decode_hue, hue_chroma
from pixcolor import color

NAMES = ("cic", "lrac", "ltbc")

pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def models() -> dict[str, baselines.BaselineModel]:
    torch.manual_seed(0)
    return {name: baselines.create(name, "tiny") for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(32, 32, 3), (37, 52, 3), (50, 21), (8, 9, 3)])
def test_colorize_shapes_and_luminance(models, name, shape, rng):
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    out = models[name].colorize([image])
    assert len(out) == 1 and out[0].shape == shape[:2] + (3,) and out[0].dtype == np.uint8
    y_in = color.rgb_luma(image) if image.ndim == 3 else image / 255.0
    assert np.abs(color.rgb_luma(out[0]) - y_in).max() <= 1.5 / 255  # input's Y is kept


@pytest.mark.parametrize("name", NAMES)
def test_colorize_batches_and_is_deterministic(models, name, rng):
    images = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(32, 40, 3), (24, 24, 3),
                                                                  (32, 40, 3)]]
    together = models[name].colorize(images, batch_size=2)
    alone = [models[name].colorize([im])[0] for im in images]
    for a, b in zip(together, alone, strict=True):  # float summation order may differ
        assert np.abs(a.astype(int) - b).max() <= 2
    again = models[name].colorize(images, batch_size=2)
    assert all(np.array_equal(a, b) for a, b in zip(again, together, strict=True))


def test_create_rejects_unknown_names():
    with pytest.raises(KeyError, match="choose one of"):
        baselines.create("nope")
    with pytest.raises(KeyError, match="preset"):
        baselines.create("cic", "huge")
    assert baselines.create("cic", "tiny", temperature=1.0).cfg.temperature == 1.0


def test_torch_lab_matches_scikit_image(rng):
    rgb = rng.random((6, 9, 3))
    rgb[0, :3] = [[0, 0, 0], [1, 1, 1], [0.01, 0.002, 0.03]]
    got = color.rgb_to_lab_torch(torch.from_numpy(rgb).permute(2, 0, 1)[None])
    ref = color.rgb_to_lab(rgb)
    assert np.abs(got[0].permute(1, 2, 0).numpy() - ref).max() < 1e-3


def test_lrac_decoding():
    k = 32
    # hue: two equal peaks at 350 and 10 degrees decode to 0 (circular mean), not 180
    theta = (torch.arange(k) + 0.5) * 360 / k
    logits = torch.full((1, k), -30.0)
    logits[0, [int(350 / 360 * k), int(10 / 360 * k)]] = 0.0
    hue = decode_hue(logits)
    assert abs(math.remainder(float(hue), 2 * math.pi)) < 0.2
    assert abs(float(decode_hue(torch.where(theta < 90, 0.0, -30.0)[None])) - math.pi / 4) < 0.05
    # chroma: the median of a histogram with mass 0.3 / 0.4 / 0.3 in bins 2, 5, 9
    p = torch.zeros(1, k)
    p[0, [2, 5, 9]] = torch.tensor([0.3, 0.4, 0.3])
    med = decode_chroma(torch.log(p + 1e-12), chroma_max=32.0)  # 1 unit per bin
    assert 5.0 <= float(med) <= 6.0
    ab = torch.tensor([[[3.0], [4.0]]])  # (1, 2, 1)
    hue, chroma = hue_chroma(ab)
    assert float(chroma) == pytest.approx(5.0) and float(hue) == pytest.approx(math.atan2(4, 3))


def test_lrac_sparse_equals_dense_hypercolumn():
    """Sampling the projected taps at pixel centres equals the dense hypercolumn there."""
    torch.manual_seed(0)
    model = baselines.create("lrac", "tiny").eval()
    lightness = torch.rand(1, 1, 32, 32) * 100
    ys, xs = torch.tensor([3, 17, 30]), torch.tensor([5, 0, 31])
    points = torch.stack([(xs + 0.5) / 16 - 1, (ys + 0.5) / 16 - 1], -1)[None]
    with torch.no_grad():
        hue_d, chroma_d = model.dense_logits(lightness)
        hue_s, chroma_s = model.sparse_logits(lightness, points)
    assert torch.allclose(hue_s[0, :, :, 0], hue_d[0][:, ys, xs], atol=1e-5)
    assert torch.allclose(chroma_s[0, :, :, 0], chroma_d[0][:, ys, xs], atol=1e-5)


def test_ltbc_global_path_sees_the_whole_image():
    """A far corner of the input reaches every output pixel (the global features are fused),
    while the local path alone could not reach it."""
    torch.manual_seed(0)
    model = baselines.create("ltbc", "tiny").eval()
    lightness = (torch.rand(1, 1, 64, 64) * 100).requires_grad_(True)
    out, logits = model(lightness)
    out[..., 31, 31].sum().backward()
    assert lightness.grad[..., :8, :8].abs().sum() > 0
    assert logits.shape == (1, 3)  # the classification branch of the tiny preset


def test_lrac_init_from_torchvision_vgg16(tmp_path):
    """conv1_1 on L equals torchvision's conv1_1 on the normalised grey RGB image."""
    from baselines.lrac import LRACStage

    cfg = baselines.presets("lrac")["tiny"].model
    w = cfg.width
    chans = [w, w, 2 * w, 2 * w, 4 * w, 4 * w, 4 * w, 8 * w, 8 * w, 8 * w, 8 * w, 8 * w, 8 * w]
    sd, cin = {}, 3
    for t, c in zip([0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28], chans, strict=True):
        sd[f"features.{t}.weight"], sd[f"features.{t}.bias"] = torch.randn(c, cin, 3, 3), \
            torch.randn(c)
        cin = c
    k = cfg.fc6_kernel
    sd["classifier.0.weight"] = torch.randn(cfg.fc_width, 8 * w * k * k)
    sd["classifier.0.bias"] = torch.randn(cfg.fc_width)
    sd["classifier.3.weight"] = torch.randn(cfg.fc_width, cfg.fc_width)
    sd["classifier.3.bias"] = torch.randn(cfg.fc_width)
    torch.save(sd, tmp_path / "vgg16.pth")
    task = LRACStage(cfg)
    assert len(task.init_from(str(tmp_path / "vgg16.pth"))["loaded"]) == 30
    assert torch.equal(task.model.fc7.weight[:, :, 0, 0], sd["classifier.3.weight"])
    grey = torch.rand(1, 1, 12, 12)
    rgb = (grey.expand(1, 3, 12, 12) - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) \
        / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    ref = torch.nn.functional.conv2d(rgb, sd["features.0.weight"], sd["features.0.bias"])
    ours = torch.nn.functional.conv2d(grey - 0.5, task.model.block1[0].weight,
                                      task.model.block1[0].bias)
    assert torch.allclose(ours, ref, atol=1e-4)
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="vgg16"):
        task.init_from(str(tmp_path / "bad.pth"))
