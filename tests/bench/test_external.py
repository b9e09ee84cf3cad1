"""``external:NAME=DIR``: matching another program's files to the split under the naming
schemes colorization projects use, the summary before generation, ambiguity, resizing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.generate import generate
from bench.methods import Item, create_method
from bench.methods.external import (
    DEFAULT_RESIZE,
    ExternalMethod,
    ExternalNamingError,
    match_outputs,
)
from bench.pipeline import build
from pixcolor.io import load_rgb
from tests.fakes import fake_photo

SIZE = 24
VAL_IDS = ["ILSVRC2012_val_00000293", "ILSVRC2012_val_00000236", "ILSVRC2012_val_00002338"]


def _write(folder: Path, rel: str, size: tuple[int, int] = (SIZE, SIZE), seed: int = 0) -> Path:
    """An image file ``folder/rel`` of ``size`` (width, height)."""
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = fake_photo(np.random.default_rng(seed), size[1], size[0])
    Image.fromarray(rgb).save(path, format="JPEG" if path.suffix.lower() in
                              (".jpg", ".jpeg") else None)
    return path


def _items(ids: list[str]) -> list[Item]:
    return [Item(i, np.zeros((SIZE, SIZE, 3), np.uint8)) for i in ids]


def _rels(m) -> dict[str, str]:
    return {i: m.rel(p) for i, p in m.files.items()}


def test_plain_stems_match_whatever_the_extension_and_its_case(tmp_path):
    ids = ["a", "b", "c", "d", "e", "f"]
    for i, ext in zip(ids, ["png", "JPG", "jpeg", "JPEG", "webp", "PnG"], strict=True):
        _write(tmp_path, f"{i}.{ext}")
    m = match_outputs(tmp_path, ids)
    assert set(m.files) == set(ids) and not m.missing and not m.extra and not m.ambiguous
    assert set(m.rules.values()) == {"exact"}
    method = ExternalMethod("x", tmp_path)
    out = method.generate(_items(ids))  # without prepare_split: matched batch by batch
    assert all(isinstance(o, np.ndarray) and o.shape == (SIZE, SIZE, 3) for o in out)


def test_the_same_stem_in_two_extension_cases_is_ambiguous(tmp_path):
    _write(tmp_path, "a.png")
    _write(tmp_path, "a.PNG")
    m = match_outputs(tmp_path, ["a"])
    assert sorted(m.rel(p) for p in m.ambiguous["a"]) == ["a.PNG", "a.png"]


def test_imagenet_val_names_in_class_subfolders_and_with_the_input_extension(tmp_path):
    _write(tmp_path, "n01440764/ILSVRC2012_val_00000293.JPEG")
    _write(tmp_path, "n01443537/ILSVRC2012_val_00000236.JPEG.png")
    _write(tmp_path, "ILSVRC2012_val_00002338.png")
    m = match_outputs(tmp_path, VAL_IDS)
    assert _rels(m) == {VAL_IDS[0]: "n01440764/ILSVRC2012_val_00000293.JPEG",
                        VAL_IDS[1]: "n01443537/ILSVRC2012_val_00000236.JPEG.png",
                        VAL_IDS[2]: "ILSVRC2012_val_00002338.png"}
    assert m.rules[VAL_IDS[1]] == "input extension"
    assert m.record()["in_subfolders"] == 2


def test_ct2s_fake_prefix_on_imagenet_names(tmp_path):
    for i in VAL_IDS:  # CT2's engine.save_imgs: "fake_" + the source file's name
        _write(tmp_path, f"fake_{i}.JPEG")
    m = match_outputs(tmp_path, VAL_IDS)
    assert set(m.files) == set(VAL_IDS) and set(m.rules.values()) == {"prefix fake_"}


def test_suffixes_and_index_prefixes_of_inference_scripts(tmp_path):
    ids = ["a", "b", "c", "d", "e", "f", "g", "g_fake", "h", "i", "j"]
    for rel in ["a_colorized.png", "b_fake_B.png", "c-output.jpg", "d_PRED.png", "00004_e.png",
                "5_f_fake.png", "g.png", "g_fake.png", "H.png", "pred-i.png", "Out_j_color.png",
                "a_real_A.png", "b_real_B.png", "notes.txt"]:
        (_write(tmp_path, rel) if rel.endswith(("png", "jpg")) else
         (tmp_path / rel).write_text("not an image"))
    m = match_outputs(tmp_path, ids)
    assert m.rules == {"a": "suffix _colorized", "b": "suffix _fake_B", "c": "suffix -output",
                       "d": "suffix _pred", "e": "index prefix",
                       "f": "index prefix + suffix _fake", "g": "exact", "g_fake": "exact",
                       "h": "exact (case-insensitive)", "i": "prefix pred-",
                       "j": "prefix Out_ + suffix _color"}
    assert sorted(m.rel(p) for p in m.extra) == ["a_real_A.png", "b_real_B.png"]


def test_index_naming_counts_in_split_order(tmp_path):
    ids = ["z", "y", "x"]
    for k in (1, 2, 3, 4):
        _write(tmp_path / "one", f"{k:05d}.png")
    _write(tmp_path / "one", "cover.png")
    m = match_outputs(tmp_path / "one", ids, naming="index")
    assert m.naming == "index from 1"
    assert _rels(m) == {"z": "00001.png", "y": "00002.png", "x": "00003.png"}
    assert sorted(m.rel(p) for p in m.extra) == ["00004.png", "cover.png"]
    for k in (0, 1, 2):
        _write(tmp_path / "zero", f"{k}_output.png")
    assert _rels(match_outputs(tmp_path / "zero", ids, naming="index")) == {
        "z": "0_output.png", "y": "1_output.png", "x": "2_output.png"}
    m = match_outputs(tmp_path / "zero", ids, naming="index1")
    assert _rels(m) == {"z": "1_output.png", "y": "2_output.png"} and m.missing == ["x"]
    with pytest.raises(ExternalNamingError, match="prepare_split"):
        ExternalMethod("x", tmp_path / "zero", naming="index").generate(_items(ids))
    with pytest.raises(ValueError, match="unknown naming"):
        ExternalMethod("x", tmp_path, naming="order")


def test_an_ambiguous_match_is_refused_with_its_files(tmp_path):
    for rel in ["a.png", "a.jpg", "b.png", "sub/b_fake.png", "c.png"]:
        _write(tmp_path, rel)
    method = ExternalMethod("theirs", tmp_path)
    with pytest.raises(ExternalNamingError) as err:
        method.prepare_split(["a", "b", "c"], echo=lambda line: None)
    msg = str(err.value)
    assert "theirs: 2 split images match more than one file" in msg
    assert "a: a.jpg, a.png" in msg and "b: b.png, sub/b_fake.png" in msg
    out = method.generate(_items(["a", "c"]))  # batch by batch: only that image fails
    assert isinstance(out[0], ExternalNamingError) and isinstance(out[1], np.ndarray)


def test_no_match_at_all_is_refused_showing_the_files(tmp_path):
    _write(tmp_path, "IMG_0001.png")
    with pytest.raises(ExternalNamingError, match="IMG_0001.png"):
        ExternalMethod("x", tmp_path).prepare_split(["a"])


def test_missing_and_extra_files_are_listed_first_ten_and_a_count(tmp_path):
    ids = [f"img{k:02d}" for k in range(20)]
    for i in ids[:5]:
        _write(tmp_path, f"{i}.png")
    for k in range(12):
        _write(tmp_path, f"other{k:02d}.png")
    lines: list[str] = []
    m = ExternalMethod("x", tmp_path).prepare_split(ids, echo=lines.append)
    assert m.missing == ids[5:]
    assert lines[0].startswith(f"x: 5 of 20 split images matched in {tmp_path} "
                               "(naming stem: exact 5)")
    assert lines[1] == f"  missing 15: {', '.join(ids[5:15])}, ... and 5 more"
    extras = ", ".join(f"other{k:02d}.png" for k in range(10))
    assert lines[2] == f"  extra 12 files (no split image): {extras}, ... and 2 more"
    assert lines[3].startswith(f"  output sizes: {SIZE}x{SIZE} (5); ")


def test_a_resized_output_equals_pils_bilinear_resize(tmp_path):
    _write(tmp_path, "a.png", size=(40, 30), seed=3)
    _write(tmp_path, "b.png")
    method = ExternalMethod("x", tmp_path)
    lines: list[str] = []
    method.prepare_split(["a", "b"], echo=lines.append)
    assert "40x30 (1)" in lines[-1] and f"{SIZE}x{SIZE} (1)" in lines[-1]
    a, b = method.generate(_items(["a", "b"]))
    raw = load_rgb(tmp_path / "a.png")
    want = np.asarray(Image.fromarray(raw).resize((SIZE, SIZE), Image.BILINEAR))
    assert DEFAULT_RESIZE == Image.BILINEAR and np.array_equal(a, want)
    assert np.array_equal(b, load_rgb(tmp_path / "b.png"))
    assert method.warnings == [{"image_id": "a", "warning": f"resized from 40x30 to "
                                f"{SIZE}x{SIZE} (bilinear; aspect ratio changed)"}]
    assert method.record["resized"] == {"count": 1, "from_to": {f"40x30 -> {SIZE}x{SIZE}": 1}}
    assert lines[-1].startswith("  x: resizing 40x30 outputs")


def test_generate_writes_the_match_and_the_resizes_in_meta_json(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(4):
        _write(photos, f"photo{k}.png", size=(30, 30 + 4 * k), seed=k)
    split = tmp_path / "split"
    assert build("photos", split, images=photos, size=SIZE).usable == 4
    with open(split / "manifest.csv", newline="") as f:
        ids = [r["image_id"] for r in csv.DictReader(f)]
    theirs = tmp_path / "theirs"
    _write(theirs, f"cls/{ids[0]}_colorized.JPG", size=(48, 48))
    _write(theirs, f"1_{ids[1]}.png")
    _write(theirs, f"{ids[2]}.png", size=(32, 32))
    _write(theirs, "stray.png")
    method = create_method(f"external:theirs={theirs}")
    lines: list[str] = []
    [rep] = generate(split, tmp_path / "runs", [method], echo=lines.append)  # matches first
    assert rep.status == "incomplete" and [f["image_id"] for f in rep.failed] == [ids[3]]
    assert lines[0].startswith("theirs: 3 of 4 split images matched")
    assert lines.index(f"  missing 1: {ids[3]}") < next(
        k for k, line in enumerate(lines) if "images to generate" in line)
    meta = json.loads((tmp_path / "runs" / "theirs" / "meta.json").read_text())
    ext = meta["external"]
    assert ext["matched"] == 3 and ext["missing_first"] == [ids[3]]
    assert ext["extra_first"] == ["stray.png"] and ext["in_subfolders"] == 1
    assert ext["rules"] == {"suffix _colorized": 1, "index prefix": 1, "exact": 1}
    assert ext["resize_filter"] == "bilinear"
    assert ext["resized"] == {"count": 2, "from_to": {f"48x48 -> {SIZE}x{SIZE}": 1,
                                                      f"32x32 -> {SIZE}x{SIZE}": 1}}
    assert sorted(w["image_id"] for w in meta["warnings"]) == sorted(ids[0:3:2])
    # an ambiguous folder is refused before anything is generated, naming the files
    _write(theirs, f"{ids[2]}.PNG", size=(32, 32))
    [rep] = generate(split, tmp_path / "runs2", [create_method(f"external:t2={theirs}")],
                     echo=lines.append)
    assert rep.status == "skipped" and f"{ids[2]}.PNG" in rep.reason
    assert not (tmp_path / "runs2" / "t2").exists()

