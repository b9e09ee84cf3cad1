"""Published protocols: list rules, each image operation against the library call its source
uses, the ground truth round trips, manifests with hashes, and the errors for wrong folders."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import protocol_ops as ops
from bench.__main__ import main
from bench.pipeline import SplitSource, run
from bench.protocols import PROTOCOLS, build_protocol, format_table
from bench.split_lists import SplitError
from pixcolor.io import file_sha256
from tests.fakes import fake_photo

SIZE = 32


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _small(name: str, count: int):
    """A protocol of ``count`` images at SIZE x SIZE, so the folders stay tiny."""
    return dataclasses.replace(PROTOCOLS[name], count=count, size=SIZE)


def _jpeg(path: Path, seed: int, h: int = 36, w: int = 52, exif=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(fake_photo(np.random.default_rng(seed), h, w))
    img.save(path, format="JPEG", quality=95, **({"exif": exif} if exif else {}))


def _imagenet(root: Path, numbers, layout: str) -> None:
    for k in numbers:
        sub = f"n{k % 2:08d}/" if layout == "sorted" else ""
        _jpeg(root / f"{sub}ILSVRC2012_val_{k:08d}.JPEG", k, 30 + k, 52 - k)


# --------------------------------------------------------------------------- list rules


@pytest.mark.parametrize("layout", ["flat", "sorted"])
def test_imagenet_first_n_in_sorted_order(tmp_path, layout):
    val = tmp_path / "val"
    _imagenet(val, [6, 2, 1, 5, 3], layout)  # 4 is missing, 5 and 6 lie past the first 4
    out = tmp_path / "split"
    result = build_protocol(_small("imagenet-val5k", 4), val, out)
    ids = [f"ILSVRC2012_val_{k:08d}" for k in (1, 2, 3, 4)]
    assert (out / "list.txt").read_text().split() == ids
    assert [r["image_id"] for r in result.rows] == ids[:3]
    assert [(p["image_id"], p["status"]) for p in _csv(out / "report.csv")] == \
        [(ids[3], "missing")]
    rows = _csv(out / "manifest.csv")
    assert all((r["wnid"] != "") == (layout == "sorted") for r in rows)
    meta = json.loads((out / "split.json").read_text())
    assert meta["source_layout"] == ("flat" if layout == "flat" else "class folders")
    assert meta["list_sha256"] == hashlib.sha256((out / "list.txt").read_bytes()).hexdigest()
    assert meta["protocol"]["name"] == "imagenet-val5k"
    assert meta["counts"]["expected"] == 4 and meta["counts"]["missing"] == 1


def test_coco_all_files_sorted_and_count_checked(tmp_path):
    val = tmp_path / "coco" / "val2017"
    for k in (785, 139, 632):
        _jpeg(val / f"{k:012d}.jpg", k)
    (val / "notes.txt").write_text("not an image")
    result = build_protocol(_small("cocostuff-val", 3), tmp_path / "coco", tmp_path / "s")
    assert [r["image_id"] for r in result.rows] == ["000000000139", "000000000632",
                                                    "000000000785"]
    with pytest.raises(SplitError, match=r"holds 3 COCO 2017 validation .* has 4.*val2017\.zip"):
        build_protocol(_small("cocostuff-val", 4), val, tmp_path / "s2")


def test_ade20k_found_below_the_dataset_root(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    for k in (1, 2, 3):
        _jpeg(root / "images" / "validation" / f"ADE_val_{k:08d}.jpg", k)
    _jpeg(root / "images" / "training" / "ADE_train_00000001.jpg", 9)
    result = build_protocol(_small("ade20k-val", 2), tmp_path, tmp_path / "s")
    assert [r["image_id"] for r in result.rows] == ["ADE_val_00000001", "ADE_val_00000002"]
    meta = json.loads((tmp_path / "s" / "split.json").read_text())
    assert meta["source_root"] == str((root / "images" / "validation").resolve())


# --------------------------------------------------------------------------- operations


def _ct2_reference(path: Path, size: int) -> np.ndarray:
    """CT2's segm/data/coco.py get_img with the PIL calls torchvision's CenterCrop(min side)
    and Resize(size) make."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    side = min(w, h)
    top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))
    img = img.crop((left, top, left + side, top + side))
    return np.array(img.resize((size, size), Image.BILINEAR))


def test_ct2_split_images_are_the_pil_calls(tmp_path):
    val = tmp_path / "val"
    _imagenet(val, [1, 2, 3], "flat")
    _jpeg(val / "ILSVRC2012_val_00000004.JPEG", 4, 80, 45)  # portrait, odd margin
    out = tmp_path / "split"
    build_protocol(_small("imagenet-val5k", 4), val, out)
    for r in _csv(out / "manifest.csv"):
        got = np.array(Image.open(out / "images" / f"{r['image_id']}.png"))
        np.testing.assert_array_equal(got, _ct2_reference(Path(r["source_path"]), SIZE))
        assert r["source_sha256"] == file_sha256(r["source_path"])
        assert r["output_sha256"] == file_sha256(out / "images" / f"{r['image_id']}.png")


@pytest.mark.parametrize("hw", [(375, 500), (500, 333), (256, 256), (200, 301)])
def test_ct2_preprocess_at_256(hw):
    rgb = fake_photo(np.random.default_rng(1), *hw)
    img = Image.fromarray(rgb)
    side = min(hw)
    box = ops.torchvision_centre_crop_box(hw[1], hw[0], side)
    want = np.array(img.crop(box).resize((256, 256), Image.BILINEAR))
    np.testing.assert_array_equal(ops.ct2_preprocess(rgb), want)
    assert box[0] == int(round((hw[1] - side) / 2.0)) and box[1] == int(round((hw[0] - side) / 2))


def test_ct2_matches_torchvision_when_installed():
    transforms = pytest.importorskip("torchvision.transforms")
    rgb = fake_photo(np.random.default_rng(2), 333, 500)
    img = Image.fromarray(rgb)
    t = transforms.Compose([transforms.CenterCrop(min(img.size)), transforms.Resize(256)])
    np.testing.assert_array_equal(ops.ct2_preprocess(rgb), np.array(t(img)))


def test_ct2_decode_ignores_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = tmp_path / "rot.jpg"
    _jpeg(path, 3, 30, 50, exif=exif.tobytes())
    assert ops.load_pil_convert_rgb(path).shape == (30, 50, 3)  # as stored (CT2)
    assert PROTOCOLS["ade20k-val"].preprocessing().load(path).shape == (50, 30, 3)  # OpenCV


def _torch_bilinear(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """torch's bilinear (align_corners=False, no antialiasing): the same half-pixel formula
    as OpenCV's INTER_LINEAR, with the source coordinate in float32 (OpenCV's weights are
    exact fractions), so values differ by up to about 1e-5 where the ratio is not a short
    binary fraction."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    return y[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("src,dst", [((375, 500), (256, 256)), ((40, 30), (256, 256)),
                                     ((100, 150), (37, 53)), ((256, 256), (256, 256)),
                                     ((7, 9), (3, 2))])
def test_cv2_linear_formula(src, dst):
    img = np.random.default_rng(3).random((*src, 3), dtype=np.float32)
    ours = ops.cv2_resize_linear(img, dst)
    assert ours.shape == (*dst, 3) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, _torch_bilinear(img, dst), atol=1e-5)


def test_cv2_linear_by_hand():
    row = np.array([[0.0, 1.0, 2.0, 3.0]], dtype=np.float32)
    np.testing.assert_array_equal(ops.cv2_resize_linear(row, (1, 2)), [[0.5, 2.5]])
    up = ops.cv2_resize_linear(np.array([[0.0, 4.0]], dtype=np.float32), (1, 4))
    np.testing.assert_array_equal(up, [[0.0, 1.0, 3.0, 4.0]])  # edges clamp, no extrapolation


def test_cv2_linear_matches_opencv_when_installed():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(4)
    for hw in [(375, 500), (480, 640), (333, 500)]:
        img = rng.integers(0, 256, (*hw, 3)).astype(np.float32) / np.float32(255)
        np.testing.assert_array_equal(ops.cv2_resize_linear(img, (256, 256)),
                                      cv2.resize(img, (256, 256)))


def test_ddcolor_split_images(tmp_path):
    val = tmp_path / "val"
    _imagenet(val, [1, 2], "flat")
    out = tmp_path / "split"
    build_protocol(_small("imagenet-val50k", 2), val, out)
    for r in _csv(out / "manifest.csv"):
        src = np.array(Image.open(r["source_path"]).convert("RGB")).astype(np.float32) / 255
        want = np.round(np.clip(_torch_bilinear(src, (SIZE, SIZE)), 0, 1) * 255)
        got = np.array(Image.open(out / "images" / f"{r['image_id']}.png")).astype(float)
        assert np.abs(got - want).max() <= 1 and (got == want).mean() > 0.99


# --------------------------------------------------------------------------- ground truth


def test_ct2_ground_truth_is_the_skimage_expression():
    from skimage import color

    gt = fake_photo(np.random.default_rng(5), 64, 64)
    want = (255 * np.clip(color.lab2rgb(color.rgb2lab(gt).astype(np.float32)), 0, 1)
            ).astype(np.uint8)  # CT2 segm/metrics.py lab_to_rgb(rgb_to_lab(gt))
    np.testing.assert_array_equal(ops.ct2_ground_truth(gt), want)
    assert np.abs(want.astype(int) - gt).max() <= 2  # truncation: a round trip loses a level


def test_ddcolor_lab2rgb_is_skimage_lab2rgb():
    from skimage import color

    rgb = np.random.default_rng(6).random((48, 48, 3)).astype(np.float32)
    lab = color.rgb2lab(rgb)
    np.testing.assert_allclose(ops.ddcolor_lab2rgb(lab), np.clip(color.lab2rgb(lab), 0, 1),
                               atol=1e-5)
    lab[0, 0] = (5.0, 0.0, 120.0)  # z < 0: clamped to 0 by both
    with pytest.warns(UserWarning, match="negative Z"):
        want = np.clip(color.lab2rgb(lab), 0, 1)[0, 0]
    np.testing.assert_allclose(ops.ddcolor_lab2rgb(lab)[0, 0], want, atol=1e-5)


def test_ddcolor_ground_truth_from_uint8_within_one_level():
    rgb = fake_photo(np.random.default_rng(7), 300, 400)
    f = ops.ddcolor_resize(rgb)  # the float image DDColor round-trips
    from_float = ops.ddcolor_ground_truth(f)
    from_png = ops.ddcolor_ground_truth(ops.to_uint8_round(f))
    assert np.abs(from_float.astype(int) - from_png).max() <= 1
    assert (from_float == from_png).mean() > 0.99


def test_ground_truth_folder_hashes_and_incremental_rebuild(tmp_path):
    val = tmp_path / "val"
    _imagenet(val, [1, 2, 3], "flat")
    out = tmp_path / "split"
    p = _small("imagenet-val5k", 3)
    build_protocol(p, val, out)
    rows = _csv(out / "ground_truth.csv")
    assert [r["image_id"] for r in rows] == [f"ILSVRC2012_val_{k:08d}" for k in (1, 2, 3)]
    for r in rows:
        img = np.array(Image.open(out / "images" / f"{r['image_id']}.png"))
        gt = out / "ground_truth" / f"{r['image_id']}.png"
        np.testing.assert_array_equal(np.array(Image.open(gt)), ops.ct2_ground_truth(img))
        assert r["sha256"] == file_sha256(gt)
        assert r["image_sha256"] == file_sha256(out / "images" / f"{r['image_id']}.png")
    assert json.loads((out / "split.json").read_text())["ground_truth"]["count"] == 3
    before = {q.name: q.stat().st_mtime_ns for q in out.rglob("*.png")}
    (val / "ILSVRC2012_val_00000002.JPEG").unlink()
    build_protocol(p, val, out)
    after = {q.name: q.stat().st_mtime_ns for q in out.rglob("*.png")}
    assert "ILSVRC2012_val_00000002.png" not in after
    assert all(after[k] == before[k] for k in after)  # nothing redone


# --------------------------------------------------------------------------- errors, CLI


def test_missing_folder_names_layout_and_source(tmp_path, capsys):
    assert main(["build-split", "--protocol", "imagenet-val5k", "--source",
                 str(tmp_path / "nope"), "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert "not a folder" in err and "ILSVRC2012_val_00000001.JPEG" in err
    assert "ILSVRC2012_img_val.tar" in err


@pytest.mark.parametrize("name,files,says", [
    ("imagenet-val5k", ["n01440764/n01440764_10026.JPEG"], "ILSVRC2012 training images"),
    ("cocostuff-val", ["COCO_val2014_000000000042.jpg"], "COCO 2014 validation"),
    ("ade20k-val", ["ADE_train_00000001.jpg"], "ADE20K training images"),
    ("ade20k-val", ["photo.jpg"], "no file named like ADE_val_00000001.jpg"),
])
def test_wrong_folder_is_a_clear_error(tmp_path, name, files, says):
    for k, f in enumerate(files):
        _jpeg(tmp_path / "data" / f, k)
    with pytest.raises(SplitError) as exc:
        build_protocol(name, tmp_path / "data", tmp_path / "s")
    msg = str(exc.value)
    lay = PROTOCOLS[name].layout
    assert says in msg and lay.layout in msg and lay.data_from in msg


def test_cli_build_and_list(tmp_path, capsys):
    assert main(["protocols"]) == 0
    table = capsys.readouterr().out
    assert table == format_table() + "\n"
    assert all(name in table for name in PROTOCOLS)
    assert main(["protocols", "ade20k-val"]) == 0
    assert "basicsr/data/lab_dataset.py" in capsys.readouterr().out
    root = tmp_path / "ADEChallengeData2016"
    _jpeg(root / "images" / "validation" / "ADE_val_00000001.jpg", 1, 300, 260)
    rc = main(["build-split", "--protocol", "ade20k-val", "--source", str(root),
               "--data", str(tmp_path / "data")])
    assert rc == 3  # 1 of 2,000 present: partial, like ctest10k
    out = tmp_path / "data" / "splits" / "ade20k-val"
    assert np.array(Image.open(out / "images" / "ADE_val_00000001.png")).shape == (256, 256, 3)
    assert "ade20k-val: 1 of 2000 expected images usable" in capsys.readouterr().out
    assert main(["build-split", "--protocol", "ade20k-val", "--source", str(root),
                 "--size", "64"]) == 1
    assert "--size: not with --protocol" in capsys.readouterr().err


def test_run_uses_a_built_protocol_split(tmp_path):
    source = SplitSource(split="ade20k-val", data=str(tmp_path / "data"))
    with pytest.raises(SplitError, match="build-split --protocol ade20k-val --source DIR"):
        run(source, runs=str(tmp_path / "runs"), methods=["gt"])
    _jpeg(tmp_path / "ade" / "ADE_val_00000001.jpg", 1, 280, 300)
    build_protocol("ade20k-val", tmp_path / "ade", source.folder)
    lines: list[str] = []
    summary = run(source, runs=str(tmp_path / "runs"), methods=["gt", "grayscale"],
                  echo=lines.append)
    assert any("using the split built earlier" in ln for ln in lines)
    assert summary.split.usable == 1
    assert (tmp_path / "runs" / "ade20k-val" / "gt" / "ADE_val_00000001.png").is_file()
