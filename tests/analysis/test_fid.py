"""FID and KID (analysis.fid, analysis.fid_features, analysis.inception) against torch-fidelity.

No download and no GPU: the weights are random but meaningful (He-initialised, batch-norm
statistics taken from generated images, :func:`analysis.inception.random_state_dict`), so
pool features vary between images and FID between two generated sets is far from 0; they
are saved under torch-fidelity's key names and loaded by its own module. torch-fidelity
0.4.0 imports torchvision in its package ``__init__`` (and in ``utils``), which the CPU
torch here cannot load: its ``feature_extractor_inceptionv3``, ``metric_fid`` and
``metric_kid`` modules are imported from their files under a stub package (see
``tf_ref``). Install it without dependencies: ``pip install --no-deps torch-fidelity==0.4.0``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from analysis import fid as fidlib
from analysis.fid_features import FeatureExtractor, file_hashes, image_features
from analysis.inception import (
    InceptionV3,
    WeightsNotFound,
    find_weights,
    random_state_dict,
    resize_bilinear_tf1,
)
from tests.fakes import fake_photo

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _smooth(seed: int, n: int, size: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([fake_photo(rng, *size) for _ in range(n)])


def _mosaic(seed: int, n: int, size: tuple[int, int]) -> np.ndarray:
    """Blocky colour mosaics with pixel noise: statistics unlike :func:`_smooth`'s."""
    rng = np.random.default_rng(seed)
    h, w = size
    blocks = rng.integers(0, 256, (n, h // 8 + 1, w // 8 + 1, 3))
    big = blocks.repeat(8, 1).repeat(8, 2)[:, :h, :w]
    return np.clip(big + rng.normal(0, 20, big.shape), 0, 255).astype(np.uint8)


def _nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


SIZE = (72, 96)  # not square, not 299: both resizes are exercised


@pytest.fixture(scope="module")
def sets() -> dict[str, np.ndarray]:
    """(8, 72, 96, 3) uint8 smooth photos and mosaics, and a calibration set of both."""
    return {"a": _smooth(1, 8, SIZE), "b": _mosaic(2, 8, SIZE),
            "calib": np.concatenate([_smooth(3, 4, SIZE), _mosaic(4, 4, SIZE)])}


def _save_weights(tmp_path_factory, variant: str, calib: np.ndarray):
    path = tmp_path_factory.mktemp(f"w_{variant}") / f"{variant}.pth"
    torch.save(random_state_dict(variant, _nchw(calib), seed=0), path)
    return path


@pytest.fixture(scope="module")
def fid_weights(tmp_path_factory, sets):
    return _save_weights(tmp_path_factory, "fid", sets["calib"])


@pytest.fixture(scope="module")
def tv_weights(tmp_path_factory, sets):
    return _save_weights(tmp_path_factory, "torchvision", sets["calib"])


@pytest.fixture(scope="module")
def tf_ref():
    """torch-fidelity's Inception, FID and KID modules, imported without its ``__init__``.

    A stub ``torch_fidelity`` package points at the installed files (so sibling imports
    such as ``helpers`` load from them) and a stub ``torch_fidelity.utils`` stands in for
    the torchvision-importing caching helpers the statistics functions never call.
    ``sys.modules`` is restored afterwards.
    """
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torch-fidelity not installed (pip install --no-deps torch-fidelity==0.4.0)")
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "torch_fidelity"}
    pkg = types.ModuleType("torch_fidelity")
    pkg.__path__ = list(spec.submodule_search_locations)
    utils = types.ModuleType("torch_fidelity.utils")
    for name in ("get_cacheable_input_name", "cache_lookup_one_recompute_on_miss",
                 "extract_featuresdict_from_input_id_cached", "create_feature_extractor",
                 "resolve_feature_extractor", "resolve_feature_layer_for_metric"):
        setattr(utils, name, None)
    sys.modules.update({"torch_fidelity": pkg, "torch_fidelity.utils": utils})
    try:
        yield types.SimpleNamespace(**{
            n: importlib.import_module(f"torch_fidelity.{m}") for n, m in
            (("inception", "feature_extractor_inceptionv3"), ("fid", "metric_fid"),
             ("kid", "metric_kid"), ("resize", "interpolate_compat_tensorflow"))})
    finally:
        for k in [k for k in sys.modules if k.split(".")[0] == "torch_fidelity"]:
            del sys.modules[k]
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def our_features(sets, fid_weights) -> torch.Tensor:
    """(16, 2048) pool features of both sets (a, then b) from our network, one batch."""
    ours = InceptionV3("fid")
    ours.load_state_dict(torch.load(fid_weights, weights_only=True), strict=True)
    with torch.no_grad():
        return ours.eval()(_nchw(np.concatenate([sets["a"], sets["b"]])))


@pytest.fixture(scope="module")
def features(sets, fid_weights, tf_ref, our_features):
    """Pool features of both sets from our network and from torch-fidelity's."""
    ref = tf_ref.inception.FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(fid_weights))
    with torch.no_grad():
        ref_features = ref(_nchw(np.concatenate([sets["a"], sets["b"]])))[0]
    return {"ours": our_features, "ref": ref_features, "ref_keys": set(ref.state_dict()),
            "our_keys": set(InceptionV3("fid").state_dict())}


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_tf1_resize_is_bit_identical_to_torch_fidelity(tf_ref):
    x = torch.rand(2, 3, 37, 130, generator=torch.Generator().manual_seed(0)) * 255
    for size in [(299, 299), (20, 311)]:
        ref = tf_ref.resize.interpolate_bilinear_2d_like_tensorflow1x(x, size=size,
                                                                    align_corners=False)
        assert torch.equal(resize_bilinear_tf1(x, size), ref)


@pytest.mark.slow
def test_fid_features_equal_torch_fidelity(features):
    assert features["our_keys"] == features["ref_keys"]
    ours, ref = features["ours"], features["ref"]
    assert ours.shape == ref.shape == (16, 2048)
    assert _rel(ours, ref) <= 1e-5
    assert ref.std(0).mean() > 0.1  # the weights are meaningful: features differ by image


# Both FIDs factor a d x d nonsymmetric matrix: with 2048 features of 8 images (a singular
# product) that takes 20-70 s per implementation on two cores. The features are shown equal
# at 2048 dimensions above; the FID computation is compared on their first 512.
FID_DIMS = 512


def test_fid_equals_torch_fidelity_and_is_far_from_zero(features, tf_ref):
    fa, fb = (f[:, :FID_DIMS].numpy() for f in (features["ours"][:8], features["ours"][8:]))
    with pytest.warns(fidlib.FewImagesWarning):
        ours = fidlib.fid(fa, fb)
    stats = [tf_ref.fid.fid_features_to_statistics(f[:, :FID_DIMS].contiguous())
             for f in (features["ref"][:8], features["ref"][8:])]
    ref = tf_ref.fid.fid_statistics_to_metric(*stats, verbose=False)[
        tf_ref.fid.KEY_METRIC_FID]
    assert ref > 1
    assert abs(ours - ref) / ref <= 1e-5


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kid_equals_torch_fidelity(features, tf_ref, dtype):
    fa, fb = (f.numpy().astype(dtype) for f in (features["ours"][:8], features["ours"][8:]))
    kw = dict(kid_subsets=20, kid_subset_size=6, rng_seed=7, verbose=False)
    ref = tf_ref.kid.kid_features_to_metric(torch.from_numpy(fa), torch.from_numpy(fb), **kw)
    ours = fidlib.kid(fa, fb, subsets=20, subset_size=6, seed=7)
    # We sum the kernels in float64; torch-fidelity in the features' dtype.
    tol = 1e-9 if dtype == np.float64 else 1e-5
    assert ref[tf_ref.kid.KEY_METRIC_KID_MEAN] > 0.01
    assert ours.mean == pytest.approx(ref[tf_ref.kid.KEY_METRIC_KID_MEAN], rel=tol)
    assert ours.std == pytest.approx(ref[tf_ref.kid.KEY_METRIC_KID_STD], rel=tol)
    with pytest.raises(ValueError, match="subset size 9"):
        fidlib.kid(fa, fb, subset_size=9)


# torchvision/models/inception.py (0.29): the BasicConv2d blocks of Inception3 by module.
_TV_BLOCKS = {
    "A": ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3", "branch_pool"],
    "B": ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
    "C": ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1",
          "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"],
    "D": ["branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3",
          "branch7x7x3_4"],
    "E": ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1",
          "branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"],
    "Aux": ["conv0", "conv1"],
}
_TV_MODULES = [("Mixed_5b", "A"), ("Mixed_5c", "A"), ("Mixed_5d", "A"), ("Mixed_6a", "B"),
               ("Mixed_6b", "C"), ("Mixed_6c", "C"), ("Mixed_6d", "C"), ("Mixed_6e", "C"),
               ("AuxLogits", "Aux"), ("Mixed_7a", "D"), ("Mixed_7b", "E"), ("Mixed_7c", "E")]


def _torchvision_keys() -> set[str]:
    convs = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
    convs += [f"{m}.{b}" for m, kind in _TV_MODULES for b in _TV_BLOCKS[kind]]
    keys = {f"{c}.{p}" for c in convs for p in ("conv.weight", "bn.weight", "bn.bias",
            "bn.running_mean", "bn.running_var", "bn.num_batches_tracked")}
    return keys | {"AuxLogits.fc.weight", "AuxLogits.fc.bias", "fc.weight", "fc.bias"}


def test_torchvision_variant_has_torchvisions_keys_and_size():
    net = InceptionV3("torchvision")
    assert set(net.state_dict()) == _torchvision_keys()
    assert sum(p.numel() for p in net.parameters()) == 27_161_264  # torchvision's num_params
    fid_keys = set(InceptionV3("fid").state_dict())
    assert fid_keys == {k for k in _torchvision_keys() if not k.startswith("AuxLogits.")}


def test_torchvision_preprocessing_is_imagenet_normalisation_then_transform_input():
    x = torch.randint(0, 256, (2, 3, 50, 61), dtype=torch.uint8)
    resized = torch.nn.functional.interpolate(x.float() / 255, size=(299, 299),
                                              mode="bilinear", align_corners=False)
    # transform_input undoes the ImageNet normalisation: the net sees 2 x - 1.
    assert torch.allclose(InceptionV3("torchvision").preprocess(x), resized * 2 - 1, atol=1e-6)


@pytest.mark.slow
def test_torchvision_features_deterministic_and_batch_independent(sets, tv_weights):
    images = list(np.concatenate([sets["a"][:3], sets["b"][:3]]))
    ext = FeatureExtractor.open("torchvision", tv_weights, batch_size=6)
    full = ext(images)
    assert np.array_equal(full, ext(images))
    ext.batch_size = 4
    assert np.allclose(ext(images), full, rtol=1e-5, atol=1e-6 * np.abs(full).max())
    assert full.shape == (6, 2048) and full.std(0).mean() > 0.1


def _folder(root, images: np.ndarray, start: int = 0):
    root.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(root / f"img{start + i:03d}.png")
    return root


@pytest.mark.slow
def test_cache_computes_each_image_once(tmp_path, sets, fid_weights, our_features,
                                        monkeypatch):
    calls = []
    forward = InceptionV3.pool_features
    monkeypatch.setattr(InceptionV3, "pool_features",
                        lambda self, x: calls.append(len(x)) or forward(self, x))
    folder, cache = _folder(tmp_path / "a", sets["a"]), tmp_path / "cache"
    ext = FeatureExtractor.open("fid", fid_weights, batch_size=3)
    first = image_features(folder, ext, cache)
    assert calls == [3, 3, 2]
    # files -> the same features as the in-memory batch (batch 3 here, 16 there: convolution
    # rounding differs by batch size, about 1e-5 of the largest feature)
    assert _rel(first, our_features[:8]) <= 1e-4
    ext = FeatureExtractor.open("fid", fid_weights)
    assert np.array_equal(image_features(folder, ext, cache), first)
    assert calls == [3, 3, 2] and ext.computed == 0 and ext._net is None  # read, not run
    _folder(folder, sets["b"][:2], start=100)  # a new method's images join
    both = image_features(folder, ext, cache)
    assert ext.computed == 2 and np.array_equal(both[:8], first)


def test_reference_backend_runs_torch_fidelitys_network_and_caches_apart(tmp_path, sets,
                                                                         fid_weights):
    """``--fid-backend reference``: the features come from torch-fidelity's own module (it
    imports here without torchvision) and equal ours; they are cached under their own key."""
    folder, cache = _folder(tmp_path / "a", sets["a"]), tmp_path / "cache"
    ours = image_features(folder, FeatureExtractor.open("fid", fid_weights), cache)
    ext = FeatureExtractor.open("fid", fid_weights, backend="reference")
    ref = image_features(folder, ext, cache)
    assert ext.computed == len(sets["a"]) and type(ext.net()).__name__ == "ReferenceNetwork"
    assert _rel(ref, ours) <= 1e-5
    assert sorted(p.name for p in cache.iterdir() if p.name != "hashes") == [
        f"fid-{ext.weights_sha256[:16]}", f"fid-{ext.weights_sha256[:16]}-reference"]


def test_reference_backend_of_the_torchvision_variant_says_why_it_cannot_run():
    from analysis.reference_libs import unavailable

    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - the CPU torch build: torchvision fails to import
        why = unavailable("torchvision")
        assert why and "torchvision" in why and "--fid-backend ours" in why
    else:
        assert unavailable("torchvision") is None


def test_cached_features_read_fast_and_damaged_ones_are_recomputed(tmp_path):
    from analysis.fid_features import FEATURE_DIM, _read_cached

    good = tmp_path / "good.npy"
    vec = np.arange(FEATURE_DIM, dtype=np.float32)
    np.save(good, vec)
    assert np.array_equal(_read_cached(good), vec)
    short = tmp_path / "short.npy"
    short.write_bytes(good.read_bytes()[:-4])  # an interrupted copy
    wide = tmp_path / "wide.npy"
    np.save(wide, vec.astype(np.float64))  # another writer's dtype
    assert _read_cached(short) is None and _read_cached(wide) is None
    assert _read_cached(tmp_path / "missing.npy") is None


def test_file_hashes_are_kept_per_folder_and_redone_when_a_file_changes(tmp_path,
                                                                         monkeypatch):
    from analysis import fid_features
    from pixcolor.io import file_sha256

    folder = tmp_path / "m"
    folder.mkdir()
    paths = []
    for k in range(3):
        paths.append(folder / f"{k}.png")
        paths[-1].write_bytes(bytes([k]) * 100)
    cache = tmp_path / "cache"
    assert file_hashes(paths, cache) == [file_sha256(p) for p in paths]
    hashed = []
    monkeypatch.setattr(fid_features, "file_sha256",
                        lambda p: hashed.append(p.name) or file_sha256(p))
    assert file_hashes(paths, cache) == [file_sha256(p) for p in paths] and hashed == []
    paths[1].write_bytes(bytes([9]) * 100)  # same size, new content and time
    os.utime(paths[1], ns=(1, 1))
    got = file_hashes(paths, cache)
    assert hashed == ["1.png"] and got[1] == file_sha256(paths[1]) != got[0]
    assert file_hashes(paths, None) == got  # no cache: everything hashed


def test_weights_not_found_names_file_url_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("PIXCOLOR_FID_WEIGHTS", "PIXCOLOR_FID_TV_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(WeightsNotFound) as e:
        find_weights("fid")
    msg = str(e.value)
    for part in ("weights-inception-2015-12-05-6726825d.pth", "PIXCOLOR_FID_WEIGHTS",
                 "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/",
                 str(tmp_path / "torch" / "hub" / "checkpoints")):
        assert part in msg
    with pytest.raises(WeightsNotFound, match=r"inception_v3_google-0cc3c7bd\.pth.*"
                       r"https://download\.pytorch\.org/models/.*PIXCOLOR_FID_TV_WEIGHTS"):
        find_weights("torchvision")
    monkeypatch.setenv("PIXCOLOR_FID_TV_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(WeightsNotFound, match=r"nope\.pth.*\$PIXCOLOR_FID_TV_WEIGHTS"):
        find_weights("torchvision")
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"x")  # pytorch-fid's name
    assert find_weights("fid") == hub / "pt_inception-2015-12-05-6726825d.pth"
    assert fidlib.main(["a", "b", "--variant", "torchvision"]) == 2


def test_few_images_warning():
    rng = np.random.default_rng(0)
    with pytest.warns(fidlib.FewImagesWarning, match="100 images"):
        fidlib.statistics(rng.normal(size=(100, 2048)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fidlib.statistics(rng.normal(size=(2048, 16)))


def test_frechet_distance_properties_and_symmetric_form():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(0.3, 1.5, size=(250, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fidlib.FewImagesWarning)
        sa, sb = fidlib.statistics(a), fidlib.statistics(b)
    assert fidlib.frechet_distance(sa, sa) == pytest.approx(0, abs=1e-9)
    d = fidlib.frechet_distance(sa, sb)
    assert d == pytest.approx(fidlib.frechet_distance(sb, sa), rel=1e-9) and d > 1
    sym = fidlib._fid_symmetric(sa.mu, sa.sigma, sb.mu, fidlib._sqrt_psd(sb.sigma))
    assert sym == pytest.approx(d, rel=1e-9)


def test_bootstrap_is_seeded_and_resamples_images():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(120, 5))
    out = ref + rng.normal(0.4, 0.5, size=(120, 5))  # paired: row i is the same photo
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fidlib.FewImagesWarning)
        iv = fidlib.fid_bootstrap(out, ref, np.random.default_rng(0), n_resamples=200)
        again = fidlib.fid_bootstrap(out, ref, np.random.default_rng(0), n_resamples=200)
        fixed = fidlib.fid_bootstrap(out, fidlib.statistics(ref), np.random.default_rng(0),
                                     n_resamples=200)
        assert iv == again and iv.estimate == pytest.approx(fidlib.fid(out, ref))
        with pytest.raises(ValueError, match="equal counts"):
            fidlib.fid_bootstrap(out[:50], ref, np.random.default_rng(0))
    assert iv.low < iv.estimate < iv.high and fixed.low < fixed.high
    assert json.loads(json.dumps(iv.__dict__))["n_resamples"] == 200
