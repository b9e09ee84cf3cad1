"""The image-folder dataset: colorness filter, cached index, items, randomness, bad files."""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from pixcolor import color, data, image_index
from pixcolor.data import ImageFolderDataset, random_resized_crop_box
from pixcolor.image_index import build_index, load_index
from pixcolor.io import save_png


@pytest.fixture
def folder(tmp_path, photo):
    """ImageNet-like folder: 2 classes, colourful and gray photos, a broken file, a flat file."""
    root = tmp_path / "imgs"
    gray = np.repeat(color.to_uint8(color.rgb_luma(photo))[..., None], 3, -1)
    (root / "n01").mkdir(parents=True)
    Image.fromarray(photo[:200, :300]).save(root / "n01" / "a.JPEG", quality=90)
    save_png(root / "n01" / "b.png", photo[100:, 50:250])
    save_png(root / "n01" / "gray.png", gray[:120, :160])
    (root / "n01" / "broken.jpg").write_text("not an image")
    save_png(root / "n02" / "c.png", photo[::2, ::2])
    save_png(root / "n02" / "gray2.png", gray[::3, ::3])
    save_png(root / "top.png", photo[300:, 300:])
    return root


@pytest.fixture
def count_loads(monkeypatch):
    calls = []
    real = image_index.load_thumbnail

    def counting(path, *a, **kw):
        calls.append(os.fspath(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(image_index, "load_thumbnail", counting)
    return calls


def _ds(root, index, **kw):
    kw.setdefault("workers", 0)
    return ImageFolderDataset(root, index_path=index, **kw)


def test_filter_drops_gray_and_unreadable(folder, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="pixcolor.data"):
        ds = _ds(folder, tmp_path / "idx.csv", size=32)
    names = sorted(os.path.basename(ds.path(i)) for i in range(len(ds)))
    assert names == ["a.JPEG", "b.png", "c.png", "top.png"]
    assert (ds.num_files, ds.num_kept, ds.num_below_threshold, ds.num_unreadable) == (7, 4, 2, 1)
    assert ds.unreadable == ["n01/broken.jpg"]
    assert "2 below colorness" in caplog.text and "1 unreadable" in caplog.text
    assert ds.classes == ["n01", "n02"]
    labels = {os.path.basename(ds.path(i)): ds[i]["label"] for i in range(len(ds))}
    assert labels == {"a.JPEG": 0, "b.png": 0, "c.png": 1, "top.png": -1}


def test_index_contents_and_header(folder, tmp_path):
    index = build_index(folder, tmp_path / "idx.csv", 0.05, workers=0)
    back = load_index(tmp_path / "idx.csv")
    assert back.paths == index.paths == ["top.png", "n01/a.JPEG", "n01/b.png", "n01/broken.jpg",
                                         "n01/gray.png", "n02/c.png", "n02/gray2.png"]
    assert back.header["root"] == str(folder.resolve())
    assert back.header["colorness_threshold"] == 0.05
    i = back.paths.index("n01/a.JPEG")
    assert (back.height[i], back.width[i]) == (200, 300)
    assert back.bytes[i] == (folder / "n01/a.JPEG").stat().st_size
    assert back.colorness[i] > 0.1 and back.colorness[back.paths.index("n01/gray.png")] < 0.01
    assert np.isnan(back.colorness[3]) and "not an image" in back.errors[3]
    np.testing.assert_allclose(back.colorness, index.colorness, atol=1e-6)


def test_index_is_reused_not_rescanned(folder, tmp_path, count_loads):
    idx = tmp_path / "idx.csv"
    first = _ds(folder, idx)
    assert len(count_loads) == 7
    stamp = idx.stat().st_mtime_ns
    second = _ds(folder, idx)
    assert len(count_loads) == 7 and idx.stat().st_mtime_ns == stamp  # nothing reloaded
    assert [second.path(i) for i in range(len(second))] == [first.path(i) for i in range(4)]
    # A different threshold re-filters the stored colorness without reading any image.
    strict = _ds(folder, idx, colorness_threshold=0.3)
    assert len(count_loads) == 7 and 0 < len(strict) < len(first)


def test_index_rebuilt_for_other_root_and_incremental(folder, tmp_path, count_loads):
    idx = tmp_path / "idx.csv"
    _ds(folder, idx)
    moved = tmp_path / "copy"
    shutil.copytree(folder, moved)
    _ds(moved, idx)  # same index file, other root: rebuilt
    assert len(count_loads) == 14 and load_index(idx).header["root"] == str(moved.resolve())
    save_png(moved / "n02" / "new.png", np.zeros((8, 8, 3), np.uint8))
    os.utime(moved / "top.png", ns=(1, 1))
    ds = _ds(moved, idx, rebuild_index=True)  # only the new and the changed file are read
    assert sorted(os.path.basename(p) for p in count_loads[14:]) == ["new.png", "top.png"]
    assert ds.num_files == 8


def test_parallel_index_matches_serial(folder, tmp_path):
    serial = build_index(folder, tmp_path / "a.csv", workers=0)
    parallel = build_index(folder, tmp_path / "b.csv", workers=2)
    assert serial.paths == parallel.paths and serial.errors == parallel.errors
    np.testing.assert_array_equal(serial.colorness, parallel.colorness)


@pytest.mark.parametrize("size,low", [(224, 28), (64, 28)])
def test_item_shapes_dtypes_ranges(folder, tmp_path, size, low):
    ds = _ds(folder, tmp_path / "idx.csv", size=size)
    item = ds[0]
    assert item["y"].shape == (1, size, size) and item["y"].dtype == torch.float32
    assert item["cbcr"].shape == (2, size, size) and item["cbcr"].dtype == torch.float32
    assert item["lowres"].shape == (2, low, low) and item["lowres"].dtype == torch.float32
    assert item["bins"].shape == (2, low, low) and item["bins"].dtype == torch.int64
    assert 0 <= item["y"].min() and item["y"].max() <= 1 and item["y"].std() > 0.05
    assert item["cbcr"].abs().max() <= 0.5 and item["cbcr"].std() > 0.01
    assert 0 <= item["bins"].min() and item["bins"].max() < 32
    assert torch.equal(item["bins"], color.quantize_chroma(item["lowres"]))
    torch.testing.assert_close(item["lowres"], color.lowres_chroma(item["cbcr"]))
    assert isinstance(item["label"], int) and isinstance(item["path"], str)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=data.collate)))
    assert batch["y"].shape == (2, 1, size, size) and batch["bins"].shape == (2, 2, low, low)
    assert len(batch["path"]) == 2 and batch["label"].dtype == torch.int64


def test_randomness_is_explicit(folder, tmp_path):
    ds = _ds(folder, tmp_path / "idx.csv", size=32, seed=3)
    a = [ds[i]["cbcr"] for i in range(len(ds))]
    np.random.seed(0)
    torch.manual_seed(0)  # global RNG state must not matter
    b = [ds[i]["cbcr"] for i in range(len(ds))]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    ds.set_epoch(1)
    c = [ds[i]["cbcr"] for i in range(len(ds))]
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    other = _ds(folder, tmp_path / "idx.csv", size=32, seed=4)
    assert not all(torch.equal(other[i]["cbcr"], a[i]) for i in range(len(a)))


def test_eval_is_centre_crop(tmp_path):
    img = np.zeros((64, 128, 3), np.uint8)
    img[:] = (200, 20, 20)
    img[:, 32:96] = (20, 200, 20)  # the centre square is green, the sides red
    save_png(tmp_path / "d" / "x.png", img)
    ds = _ds(tmp_path / "d", tmp_path / "idx.csv", size=16, train=False, colorness_threshold=0)
    rgb = color.ycbcr_to_rgb(torch.cat([ds[0]["y"], ds[0]["cbcr"]]))
    assert torch.allclose(rgb, torch.tensor([20, 200, 20.0])[:, None, None] / 255, atol=0.01)
    assert ds[0]["label"] == -1


def test_file_broken_after_indexing_is_skipped(folder, tmp_path, caplog):
    ds = _ds(folder, tmp_path / "idx.csv", size=32)
    victim = ds.path(1)
    victim.write_bytes(victim.read_bytes()[:100])  # truncate it behind the index's back
    with caplog.at_level(logging.WARNING, logger="pixcolor.data"):
        item = ds[1]
    assert item["index"] == 2 and item["path"] == str(ds.path(2))
    assert str(victim) in caplog.text
    again = ds[1]
    assert torch.equal(again["cbcr"], item["cbcr"])  # deterministic replacement


def test_no_usable_images(tmp_path):
    gray = np.full((16, 16, 3), 128, np.uint8)
    save_png(tmp_path / "g" / "a.png", gray)
    with pytest.raises(ValueError, match="no usable images"):
        _ds(tmp_path / "g", tmp_path / "idx.csv")


def test_random_resized_crop_box(rng):
    for _ in range(200):
        left, top, right, bottom = random_resized_crop_box(120, 200, rng)
        assert 0 <= left < right <= 200 and 0 <= top < bottom <= 120
        frac = (right - left) * (bottom - top) / (120 * 200)
        assert 0.33 <= frac <= 1.0
        assert 0.7 <= (right - left) / (bottom - top) <= 1.4
    # A very long strip cannot fit the ratio range: fallback to a clamped central crop.
    box = random_resized_crop_box(10, 1000, np.random.default_rng(0), scale=(0.9, 1.0))
    assert box[1] == 0 and box[3] == 10 and box[2] - box[0] <= 14
