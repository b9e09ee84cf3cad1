"""PixColor model: shapes, colorize contract, checkpoints, torchvision-named weight loading."""

import dataclasses

import numpy as np
import pytest
import torch

import pixcolor.colorizer
from pixcolor import PixColor, color
from pixcolor.checkpoint import CheckpointError
from pixcolor.config import get_preset
from pixcolor.models.conditioning import (
    ConditioningNetwork,
    WeightLoadError,
    load_backbone_weights,
)


@pytest.mark.parametrize("hw,low", [((16, 16), (8, 8)), ((16, 40), (8, 20)), ((30, 17), (14, 8))])
def test_sample_lowres_shapes(tiny, hw, low):
    y = torch.rand(2, 1, *hw)
    bins, logp = tiny.sample_lowres(y, num_samples=3, seed=1)
    assert bins.shape == (2, 3, 2, *low) and bins.dtype == torch.int64
    assert 0 <= bins.min() and bins.max() < 32
    assert logp.shape == (2, 3) and (logp < 0).all()
    logits = tiny.pixelcnn_logits(y, bins[:, 0])
    assert logits.shape == (2, 2, 32, *low)


def test_paper_preset_gives_28x28_from_224():
    with torch.device("meta"):  # shapes only: no memory, no compute
        m = PixColor.from_preset("paper")
        f = m.cond(torch.rand(1, 1, 224, 224))
    assert m.cfg.cond_stride == 8 and m.lowres_size(224, 224) == (28, 28)
    assert f.shape == (1, 64, 28, 28)
    n_blocks = [len(getattr(m.cond, f"layer{i}")) for i in (1, 2, 3)]
    assert n_blocks == [3, 4, 23]
    assert len(m.pixelcnn.blocks) == 10 and m.pixelcnn.head1.out_channels == 1024


def test_colorize_any_size_keeps_luminance(tiny, photo):
    gray = (color.rgb_luma(photo[:45, :70]) * 255).round().astype(np.uint8)
    rgb = photo[100:133, 50:111]
    out = tiny.colorize([gray, rgb], num_samples=2, seed=3)
    assert out[0].shape == (2, 45, 70, 3) and out[1].shape == (2, 33, 61, 3)
    assert out[0].dtype == np.uint8
    y_back = color.rgb_luma(out[0][0]) * 255
    assert np.abs(y_back - gray).mean() < 1.0  # the input's luma is restored
    again = tiny.colorize([gray], num_samples=2, seed=3)
    assert np.array_equal(again[0], out[0])  # seeded
    unref = tiny.colorize([gray], num_samples=1, seed=3, refine=False)
    assert unref[0].shape == (1, 45, 70, 3)


def test_colorize_merges_in_pieces_without_changing_outputs(tiny, photo, monkeypatch):
    grays = [(color.rgb_luma(photo[i:i + 40, :50]) * 255).round().astype(np.uint8)
             for i in (0, 60, 120)]
    whole = tiny.colorize(grays, num_samples=2, seed=4)  # one merge of 6 outputs
    monkeypatch.setattr(pixcolor.colorizer, "MERGE_PIXELS", 2 * 40 * 50 + 1)  # pieces of 2
    pieces = tiny.colorize(grays, num_samples=2, seed=4)
    for a, b in zip(whole, pieces, strict=True):
        np.testing.assert_array_equal(a, b)
    # Each output is that image's own: the same as colourising the image alone.
    np.testing.assert_array_equal(tiny.colorize(grays[1:2], num_samples=2, seed=4)[0], whole[1])


def test_colorize_large_image_uses_working_size(tiny):
    big = np.random.default_rng(0).integers(0, 255, (300, 500), dtype=np.uint8)
    out = tiny.colorize([big], num_samples=1, max_side=128, refine_at="full")
    assert out[0].shape == (1, 300, 500, 3)
    default = tiny.colorize([big], num_samples=1)  # refined at 2 x the 8x13 chroma
    assert default[0].shape == (1, 300, 500, 3)
    with pytest.raises(ValueError, match="refine_at"):
        tiny.colorize([big], num_samples=1, refine_at="half")


def test_save_load_roundtrip(tiny, tmp_path):
    p = tmp_path / "m.pt"
    tiny.save(p)
    m2 = PixColor.load(p)
    assert m2.cfg == tiny.cfg and m2.checkpoint_sha256 and len(m2.checkpoint_sha256) == 64
    for (k, a), (_, b) in zip(tiny.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        PixColor.load(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="no such"):
        PixColor.load(tmp_path / "missing.pt")


def test_cond_global_starts_as_a_no_op_and_lets_every_feature_see_the_whole_image():
    cfg = get_preset("tiny").model
    torch.manual_seed(0)
    base = PixColor(cfg)
    glob = PixColor(dataclasses.replace(cfg, cond_global=True))
    missing, unexpected = glob.load_state_dict(base.state_dict(), strict=False)
    assert sorted(missing) == ["cond.global_fc.bias", "cond.global_fc.weight"] and not unexpected
    y = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(base.cond(y), glob.cond(y))  # zero-initialised: adding it is a no-op

    def far_corner_grad(m):  # d(top-left feature) / d(bottom-right 8x8 pixels)
        yy = y.clone().requires_grad_(True)
        m.cond(yy)[0, :, 0, 0].sum().backward()
        return float(yy.grad[0, 0, -8:, -8:].abs().sum())

    assert far_corner_grad(base) == 0.0  # the tiny backbone's receptive field is local
    torch.nn.init.normal_(glob.cond.global_fc.weight, std=0.1)
    assert far_corner_grad(glob) > 0.0


def test_paper_conditioning_has_torchvision_resnet101_names():
    with torch.device("meta"):
        sd = ConditioningNetwork(get_preset("paper").model).state_dict()
    expect = {  # torchvision resnet101 shapes
        "conv1.weight": (64, 3, 7, 7), "bn1.running_mean": (64,),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1), "layer1.2.conv3.weight": (256, 64, 1, 1),
        "layer2.0.conv2.weight": (128, 128, 3, 3), "layer2.3.bn3.weight": (512,),
        "layer3.0.downsample.1.weight": (1024,), "layer3.22.conv3.weight": (1024, 256, 1, 1),
    }
    for k, shape in expect.items():
        assert tuple(sd[k].shape) == shape, k
    backbone = [k for k in sd if not k.startswith("adapt.")]
    # conv1 + bn1 (6 entries) + 30 blocks x 18 + 3 downsamples x 6 = 564, as in torchvision
    assert len(backbone) == 6 + 30 * 18 + 3 * 6
    assert not any(k.startswith("layer4") for k in backbone)


def _torchvision_like(net, prefix=""):
    sd = {prefix + k: v.clone() + 1.0 for k, v in net.state_dict().items()
          if not k.startswith(("adapt.", "global_fc."))}
    sd[prefix + "layer4.0.conv1.weight"] = torch.zeros(3)
    sd[prefix + ("classifier.4.weight" if prefix else "fc.weight")] = torch.zeros(2)
    return sd


@pytest.mark.parametrize("prefix", ["", "backbone."])
def test_load_torchvision_named_state_dict(tmp_path, prefix):
    cfg = dataclasses.replace(get_preset("tiny").model, cond_global=True)
    src, dst = ConditioningNetwork(cfg), ConditioningNetwork(cfg)
    sd = _torchvision_like(src, prefix)
    if prefix:  # DeepLabV3 files also hold the classifier heads
        sd["aux_classifier.0.weight"] = torch.zeros(1)
    path = tmp_path / "weights.pth"
    torch.save(sd, path)
    report = load_backbone_weights(dst, path)
    assert "conv1.weight" in report["loaded"] and not report["missing"]
    assert any("layer4" in k for k in report["ignored"])
    assert torch.equal(dst.layer1[0].conv1.weight, src.layer1[0].conv1.weight + 1.0)


def test_load_rejects_wrong_weights(tmp_path):
    tiny_cfg, paper_cfg = get_preset("tiny").model, get_preset("small").model
    path = tmp_path / "w.pth"
    torch.save(_torchvision_like(ConditioningNetwork(paper_cfg)), path)
    with pytest.raises(WeightLoadError, match="wrong shape"):
        load_backbone_weights(ConditioningNetwork(tiny_cfg), path)
    torch.save({"encoder.foo": torch.zeros(1)}, path)
    with pytest.raises(WeightLoadError, match="no key matches"):
        load_backbone_weights(ConditioningNetwork(tiny_cfg), path)
    path.write_text("garbage")
    with pytest.raises(WeightLoadError, match="w.pth"):
        load_backbone_weights(ConditioningNetwork(tiny_cfg), path)


def test_sample_and_render_match_colorize_for_mixed_images_seeds_and_indices(tiny, photo):
    """The one sampling entry (used by colorize and the harness): any draws, images of two
    sizes, give what colorize(num_samples=S, seed=k) gives for sample s of each image."""
    from pixcolor.colorizer import Draw

    images = [photo[:40, :40], photo[:40, :56], photo[8:48, :40]]
    draws = [Draw(0, 1), Draw(1, 2, 1), Draw(2, 1), Draw(0, 3, 2), Draw(1, 1)]
    ys = [color.luma(im) for im in images]
    drawn = tiny.sample(ys, draws, threads=1)
    assert [tuple(t.shape) for t in drawn.chroma] == [(2, *tiny.lowres_size(*ys[d.image].shape))
                                                     for d in draws]
    rgb = tiny.render([ys[d.image] for d in draws], drawn.chroma)
    for d, out, logp in zip(draws, rgb, drawn.logp, strict=True):
        want, want_logp = tiny.colorize([images[d.image]], num_samples=d.index + 1, seed=d.seed,
                                        return_logp=True)
        np.testing.assert_array_equal(out, want[0][d.index])
        assert logp.item() == want_logp[0][d.index]


def test_batches_by_shape_groups_in_first_seen_order_and_chunks():
    from pixcolor.batching import batches_by_shape

    shapes = [(2, 3), (4, 4), (2, 3), (2, 3), (4, 4), (2, 3)]
    assert list(batches_by_shape(shapes, 3)) == [((2, 3), [0, 2, 3]), ((2, 3), [5]),
                                                 ((4, 4), [1, 4])]
    assert list(batches_by_shape(shapes)) == [((2, 3), [0, 2, 3, 5]), ((4, 4), [1, 4])]
    assert list(batches_by_shape([], 4)) == []
