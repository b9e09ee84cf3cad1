"""GPU checks (skipped without CUDA): samplers agree, bf16 training steps, colorize on the GPU.

Run on a device machine with ``scripts/device_check.sh``.
"""

import numpy as np
import pytest
import torch

from pixcolor import PixColor
from pixcolor.config import get_preset
from pixcolor.sampling import sample_cached, sample_naive, sample_noise

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_samplers_agree_on_cuda():
    torch.manual_seed(0)
    model = PixColor.from_preset("tiny").double().cuda()
    cond = torch.randn(4, model.cfg.adapt_channels, 6, 7, dtype=torch.float64, device="cuda")
    noise = sample_noise([1, 2, 3, 4], 1, seed=3, size=(6, 7), device="cuda",
                         dtype=torch.float64)
    b1, l1 = sample_naive(model.pixelcnn, cond, noise)
    b2, l2 = sample_cached(model.pixelcnn, cond, noise)
    assert torch.equal(b1, b2)
    torch.testing.assert_close(l1, l2)


def test_cuda_and_cpu_samples_agree_in_float64():
    torch.manual_seed(0)
    model = PixColor.from_preset("tiny").double()
    y = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    cpu, _ = model.sample_lowres(y, num_samples=2, seed=5)
    gpu, _ = model.cuda().sample_lowres(y.cuda(), num_samples=2, seed=5)
    assert torch.equal(cpu, gpu.cpu())


@pytest.mark.parametrize("stage", ["pixelcnn", "refine"])
def test_bf16_channels_last_training_steps(tmp_path, stage):
    from PIL import Image

    from pixcolor.config import config_with_overrides
    from pixcolor.data import ImageFolderDataset
    from pixcolor.train import RunOptions, train

    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png")
    tiny = get_preset("tiny")
    ds = ImageFolderDataset(tmp_path, size=tiny.train.image_size, index_path=tmp_path / "i.csv",
                            lowres_short_side=tiny.model.lowres_short_side)
    res = train(stage, ds, tmp_path / "run", tiny.model,
                config_with_overrides(tiny.train, {"steps": 3, "num_workers": 0}),
                RunOptions(device="cuda", progress=False))
    assert res["step"] == 3 and np.isfinite(res["loss"])


def test_colorize_on_cuda():
    model = PixColor.from_preset("small").cuda()
    out = model.colorize([np.zeros((100, 150), np.uint8)], num_samples=3, seed=1)
    assert out[0].shape == (3, 100, 150, 3)


def test_merge_luma_chroma_on_cuda_matches_cpu():
    from pixcolor import color

    g = torch.Generator().manual_seed(0)
    y = torch.rand(3, 40, 30, generator=g)
    cbcr = torch.rand(3, 40, 30, 2, generator=g) - 0.5
    ref = color.merge_luma_chroma(y.numpy(), cbcr.numpy())
    np.testing.assert_array_equal(color.merge_luma_chroma(y.cuda(), cbcr.cuda()), ref)
    np.testing.assert_array_equal(color.merge_luma_chroma(y.cuda(), cbcr.numpy()), ref)
