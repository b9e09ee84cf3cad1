"""LPIPS (analysis.lpips) equal to the lpips package's own ``LPIPS`` class, plus properties.

The reference is the installed ``lpips`` wheel (0.1.4) run from its files with torchvision
replaced in ``sys.modules`` by a stand-in whose ``alexnet`` / ``vgg16`` build torchvision's
``features`` stacks (transcribed below from torchvision, independently of analysis.lpips)
and fill them with generated He-scaled weights: no download, no torchvision. The heads are
the wheel's real v0.1 heads. Without the wheel the equality tests skip; the properties run
on generated heads.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from analysis.lpips import (
    BACKBONES,
    ENV_BACKBONE,
    ENV_HEADS,
    WeightsError,
    WeightsNotFound,
    find_heads,
    load_lpips,
    lpips_per_image,
)
from analysis.synthetic import make_image, recolor

ROOT = Path(__file__).resolve().parents[2]
HAVE_LPIPS = importlib.util.find_spec("lpips") is not None
needs_lpips = pytest.mark.skipif(not HAVE_LPIPS, reason="the lpips wheel is not installed "
                                 "(pip install --no-deps lpips==0.1.4)")

# torchvision's features stacks: ("C", in, out, kernel, stride, padding) is a Conv2d and its
# in-place ReLU, ("M", kernel, stride) a MaxPool2d.
TORCHVISION_FEATURES = {
    "alex": [("C", 3, 64, 11, 4, 2), ("M", 3, 2), ("C", 64, 192, 5, 1, 2), ("M", 3, 2),
             ("C", 192, 384, 3, 1, 1), ("C", 384, 256, 3, 1, 1), ("C", 256, 256, 3, 1, 1),
             ("M", 3, 2)],
    "vgg": [layer for block in [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3]
            for layer in [*[("C", None, c, 3, 1, 1) for c in block], ("M", 2, 2)]],
}


def torchvision_features(name: str):
    """An nn.Sequential laid out as torchvision's ``alexnet().features`` / ``vgg16().features``."""
    import torch.nn as nn

    layers, in_ch = [], 3
    for kind, *args in TORCHVISION_FEATURES[name]:
        if kind == "M":
            layers.append(nn.MaxPool2d(kernel_size=args[0], stride=args[1]))
            continue
        _, out, k, s, p = args
        layers += [nn.Conv2d(in_ch, out, k, stride=s, padding=p), nn.ReLU(inplace=True)]
        in_ch = out
    return nn.Sequential(*layers)


def generated_backbone(name: str, path: Path, seed: int) -> Path:
    """He-scaled random weights (so features vary through all layers), saved under
    torchvision's keys, with a classifier entry the loader must ignore."""
    import torch

    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, p in torchvision_features(name).state_dict().items():
        if key.endswith("weight"):
            fan_in = p[0].numel()
            state[f"features.{key}"] = torch.randn(p.shape, generator=g) * (2 / fan_in) ** 0.5
        else:
            state[f"features.{key}"] = torch.randn(p.shape, generator=g) * 0.1
    state["classifier.1.weight"] = torch.zeros(4, 4)
    torch.save(state, path)
    return path


def generated_heads(name: str, path: Path, seed: int) -> Path:
    """Non-negative random heads (as LPIPS's trained ones are), under lpips's keys."""
    import torch

    g = torch.Generator().manual_seed(seed)
    state = {f"lin{k}.model.1.weight": torch.rand((1, c, 1, 1), generator=g) / c
             for k, c in enumerate(BACKBONES[name].channels)}
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """(backbone file, generated heads file) per backbone."""
    root = tmp_path_factory.mktemp("lpips_weights")
    return {name: (generated_backbone(name, root / BACKBONES[name].file, seed),
                   generated_heads(name, root / f"{name}.pth", seed))
            for seed, name in enumerate(sorted(BACKBONES))}


@pytest.fixture(autouse=True)
def no_weight_variables(monkeypatch):
    monkeypatch.delenv(ENV_BACKBONE, raising=False)
    monkeypatch.delenv(ENV_HEADS, raising=False)


@pytest.fixture(scope="module")
def reference_lpips(weights):
    """The lpips package imported with a stand-in torchvision (removed again afterwards)."""
    if not HAVE_LPIPS:
        pytest.skip("the lpips wheel is not installed")
    import torch

    calls, backbone_files = [], {name: files[0] for name, files in weights.items()}

    def constructor(name):
        def build(pretrained=False, weights=None, **_):
            calls.append((name, pretrained, weights))
            features = torchvision_features(name)
            state = torch.load(backbone_files[name], weights_only=True)
            features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()
                                      if k.startswith("features.")})
            return types.SimpleNamespace(features=features)
        return build

    models = types.ModuleType("torchvision.models")
    models.alexnet, models.vgg16 = constructor("alex"), constructor("vgg")
    models.AlexNet_Weights = types.SimpleNamespace(IMAGENET1K_V1="IMAGENET1K_V1")
    models.VGG16_Weights = types.SimpleNamespace(IMAGENET1K_V1="IMAGENET1K_V1")
    fake = types.ModuleType("torchvision")
    fake.models, fake.__version__ = models, "0.13.0"
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in ("lpips", "torchvision")}
    sys.modules.update({"torchvision": fake, "torchvision.models": models})
    try:
        import lpips

        yield lpips, calls
    finally:
        for k in [k for k in sys.modules if k.split(".")[0] in ("lpips", "torchvision")]:
            del sys.modules[k]
        sys.modules.update(saved)


def generated_pairs(n: int, size=(64, 64), seed: int = 0):
    """Photo-like truths and outputs from slightly to strongly recoloured, plus an unrelated
    image, so the distances differ clearly between pairs."""
    rng = np.random.default_rng(seed)
    truths = [make_image(rng, size) for _ in range(n)]
    outputs = [recolor(t, rng, 40 + 60 * i) for i, t in enumerate(truths[:-1])]
    return outputs + [make_image(rng, size)], truths


@needs_lpips
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_equals_the_lpips_package(name, weights, reference_lpips, one_torch_thread):
    import torch

    lpips, calls = reference_lpips
    heads = find_heads(name)  # the wheel's own v0.1 heads, found without importing lpips
    assert heads.parent.parts[-3:] == ("lpips", "weights", "v0.1")
    ref_model = lpips.LPIPS(net=name, version="0.1", model_path=str(heads), verbose=False)
    assert calls[-1][0] == name and (calls[-1][1] or calls[-1][2] is not None)
    # lpips loads the heads with strict=False, which would pass over wrong keys silently
    shipped = torch.load(heads, map_location="cpu", weights_only=True)
    for k in range(5):
        assert torch.equal(ref_model.lins[k].model[-1].weight, shipped[f"lin{k}.model.1.weight"])
    outputs, truths = generated_pairs(4)
    with torch.no_grad():
        ref = ref_model(torch.cat([lpips.im2tensor(o) for o in outputs]),
                        torch.cat([lpips.im2tensor(t) for t in truths])).flatten().double()
    ours = lpips_per_image(outputs, truths, load_lpips(name, backbone_weights=weights[name][0]))
    rel = np.abs(ours - ref.numpy()) / ref.numpy()
    print(f"{name}: ours {np.round(ours, 6)}, max relative difference {rel.max():.2e}")
    assert rel.max() < 1e-5
    assert ref.min() > 0.005 and ref.max() > 3 * ref.min()  # clearly nonzero, varying


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_batch_size_independent_symmetric_and_zero_on_identity(name, weights, one_torch_thread):
    model = load_lpips(name, backbone_weights=weights[name][0], heads=weights[name][1])
    outputs, truths = generated_pairs(3)
    small_out, small_gt = generated_pairs(2, size=(40, 48), seed=1)
    outputs, truths = outputs + small_out, truths + small_gt  # two sizes, interleaved batches
    one = lpips_per_image(outputs, truths, model, batch_size=1)
    many = lpips_per_image(outputs, truths, model, batch_size=3)
    np.testing.assert_allclose(many, one, rtol=1e-6)
    np.testing.assert_allclose(lpips_per_image(truths, outputs, model), one, rtol=1e-6)
    assert one.min() > 0
    assert np.all(lpips_per_image(truths, truths, model) == 0)
    assert model(outputs[0], truths[0]) == pytest.approx(one[0], rel=1e-6)


def test_missing_weights_name_the_file_and_its_source(tmp_path, monkeypatch, weights):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    with pytest.raises(WeightsNotFound) as e:
        load_lpips("alex")
    msg = str(e.value)
    assert "alexnet-owt-7be5be79.pth" in msg and BACKBONES["alex"].url in msg
    assert str(tmp_path / "hub" / "checkpoints") in msg and ENV_BACKBONE in msg
    monkeypatch.setenv(ENV_BACKBONE, str(tmp_path))  # a folder without the file
    with pytest.raises(WeightsNotFound, match=f"vgg16-397923af.pth.*{ENV_BACKBONE}"):
        load_lpips("vgg")
    monkeypatch.setenv(ENV_BACKBONE, str(weights["alex"][0].parent))  # the folder with it
    with pytest.raises(WeightsNotFound, match=r"missing\.pth does not exist.*alex\.pth.*"
                       r"PerceptualSimilarity"):
        load_lpips("alex", heads=tmp_path / "missing.pth")
    monkeypatch.setattr("analysis.lpips._lpips_package_dir", lambda: None)
    with pytest.raises(WeightsNotFound, match="lpips package is not installed.*--no-deps"):
        find_heads("vgg")
    monkeypatch.setenv(ENV_HEADS, str(weights["alex"][1]))
    assert load_lpips("alex").backbone.name == "alex"  # both from the variables


def test_wrong_files_and_sizes_are_refused(weights, tmp_path):
    (tmp_path / "alex.pth").write_bytes(b"not a state dict")
    with pytest.raises(WeightsError, match="alex.pth: cannot read"):
        load_lpips("alex", backbone_weights=weights["alex"][0], heads=tmp_path)
    with pytest.raises(WeightsError, match="alex backbone"):
        load_lpips("alex", backbone_weights=weights["vgg"][0], heads=weights["alex"][1])
    with pytest.raises(WeightsError, match="not LPIPS vgg heads"):
        load_lpips("vgg", backbone_weights=weights["vgg"][0], heads=weights["alex"][1])
    model = load_lpips("alex", backbone_weights=weights["alex"][0], heads=weights["alex"][1])
    tiny = np.zeros((30, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 31 px"):
        lpips_per_image([tiny], [tiny], model)
    with pytest.raises(ValueError, match="uint8"):
        lpips_per_image([tiny.astype(np.float32)], [tiny], model)


def test_import_and_lookup_load_neither_torch_nor_lpips():
    code = ("import sys, analysis.lpips as m\n"
            "if m._lpips_package_dir(): m.find_heads('alex')\n"
            "bad = {'torch', 'lpips', 'torchvision'} & set(sys.modules)\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
