"""Split builder: fake ImageNet validation trees (both layouts), manifest, report, subset."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.__main__ import main
from bench.split_lists import load_list, select_subset
from bench.splits import MANIFEST_COLUMNS, preprocess
from pixcolor.io import file_sha256
from tests.fakes import fake_photo as _photo

SIZE = 32


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("split", ["ctest10k", "cval1k"])
@pytest.mark.parametrize("layout", ["flat", "sorted"])
def test_build_split_from_fake_val(tmp_path, fake_val, split, layout, capsys):
    val, list_file, lines = fake_val(split, 8, layout)
    out = tmp_path / "split"
    rc = main(["build-split", "--split", split, "--imagenet-val", str(val), "--list",
               str(list_file), "--out", str(out), "--size", str(SIZE)])
    assert rc == 3  # some sources unusable: partial exit status
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == (f"{split}: 5 of 8 expected images usable "
                    "(2 missing, 1 unreadable; 1 grayscale sources kept)")

    ids = [Path(ln.split()[0]).stem for ln in lines]
    rows = _csv(out / "manifest.csv")
    assert list(rows[0]) == list(MANIFEST_COLUMNS)
    assert [r["image_id"] for r in rows] == [ids[k] for k in (0, 3, 5, 6, 7)]
    for r in rows:
        line = lines[ids.index(r["image_id"])]
        wnid, label = line.split()[0].split("/")[1], line.split()[1]
        assert (r["wnid"], r["label"]) == (wnid, label)
        src = Path(r["source_path"])
        assert src.is_file() and (src.parent.name == wnid) == (layout == "sorted")
        assert r["source_sha256"] == file_sha256(src)
        png = out / "images" / f"{r['image_id']}.png"
        assert r["output_sha256"] == file_sha256(png)
        assert (int(r["width"]), int(r["height"])) == (SIZE, SIZE)
        assert np.asarray(Image.open(png)).shape == (SIZE, SIZE, 3)
    gray_row = next(r for r in rows if r["image_id"] == ids[5])
    assert float(gray_row["colorness"]) < 0.05 < float(rows[0]["colorness"])
    assert sorted(p.stem for p in (out / "images").glob("*.png")) == sorted(r["image_id"]
                                                                           for r in rows)

    report = {r["image_id"]: r["status"] for r in _csv(out / "report.csv")}
    assert report == {ids[1]: "missing", ids[4]: "missing", ids[2]: "unreadable",
                      ids[5]: "grayscale"}
    meta = json.loads((out / "split.json").read_text())
    assert meta["counts"] == {"expected": 8, "usable": 5, "missing": 2, "unreadable": 1,
                              "grayscale": 1, "grayscale_dropped": 0}
    assert meta["protocol"]["size"] == SIZE and meta["list_sha256"]


def test_rebuild_is_incremental_and_picks_up_new_files(tmp_path, fake_val):
    val, list_file, lines = fake_val("ctest10k", 6, "sorted", corrupt=None, gray=None)
    out = tmp_path / "split"
    args = ["build-split", "--split", "ctest10k", "--imagenet-val", str(val), "--list",
            str(list_file), "--out", str(out), "--size", str(SIZE)]
    assert main(args) == 3
    first = {p.name: p.stat().st_mtime_ns for p in (out / "images").glob("*.png")}
    rel = lines[1].split()[0].strip("/")  # a missing one appears
    (val / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_photo(np.random.default_rng(9), 50, 50)).save(val / rel, format="JPEG")
    assert main(args) == 3  # index 4 is still missing
    second = {p.name: p.stat().st_mtime_ns for p in (out / "images").glob("*.png")}
    assert {k: second[k] for k in first} == first  # nothing rebuilt
    assert len(second) == len(first) + 1


def test_drop_grayscale_and_keep_aspect(tmp_path, fake_val):
    val, list_file, lines = fake_val("cval1k", 6, "flat", missing=(), corrupt=None)
    out = tmp_path / "split"
    rc = main(["build-split", "--split", "cval1k", "--imagenet-val", str(val), "--list",
               str(list_file), "--out", str(out), "--size", str(SIZE), "--keep-aspect",
               "--drop-grayscale"])
    assert rc == 3  # the grayscale source is reported and left out: 5 of 6 usable
    rows = _csv(out / "manifest.csv")
    assert len(rows) == 5 and all(min(int(r["width"]), int(r["height"])) == SIZE for r in rows)
    assert any(max(int(r["width"]), int(r["height"])) > SIZE for r in rows)
    assert [r["status"] for r in _csv(out / "report.csv")] == ["grayscale_dropped"]


def test_preprocess_is_shorter_side_resize_then_centre_crop():
    third = np.zeros((30, 90, 3), np.uint8)
    third[:, :30, 0] = third[:, 30:60, 1] = third[:, 60:, 2] = 255
    out = preprocess(third, 20)
    assert out.shape == (20, 20, 3)
    mid = out[:, 2:-2]  # the middle third (its edges are blended by the antialiasing)
    assert (mid[..., 1] == 255).all() and (mid[..., [0, 2]] == 0).all()
    tall = preprocess(np.zeros((90, 30, 3), np.uint8), 20, keep_aspect=True)
    assert tall.shape == (60, 20, 3)


def test_subset_is_deterministic_and_nested(tmp_path):
    entries, _ = load_list("ctest10k")
    a, b = select_subset(entries, 500, seed=0), select_subset(entries, 500, seed=0)
    assert a == b and len(a) == 500 and len({e.image_id for e in a}) == 500
    assert select_subset(entries, 500, seed=1) != a
    assert {e.image_id for e in select_subset(entries, 100, 0)} <= {e.image_id for e in a}
    pos = {e.image_id: k for k, e in enumerate(entries)}
    assert [pos[e.image_id] for e in a] == sorted(pos[e.image_id] for e in a)  # list order

    # Building the subset reads only its own files.
    cval, _ = load_list("cval1k")
    chosen = select_subset(cval, 5, seed=3)
    val = tmp_path / "val"
    rng = np.random.default_rng(0)
    for e in chosen:
        (val / e.wnid).mkdir(parents=True, exist_ok=True)
        Image.fromarray(_photo(rng, 40, 40)).save(val / e.relpath, format="JPEG")
    rc = main(["build-split", "--split", "cval1k", "--imagenet-val", str(val), "--subset", "5",
               "--seed", "3", "--data", str(tmp_path / "data"), "--size", str(SIZE)])
    assert rc == 0
    out = tmp_path / "data" / "splits" / "cval1k_sub5_seed3"
    assert [r["image_id"] for r in _csv(out / "manifest.csv")] == [e.image_id for e in chosen]
    meta = json.loads((out / "split.json").read_text())
    assert meta["subset"]["n"] == 5 and meta["subset"]["seed"] == 3
    # A later run without --imagenet-val reuses the built split.
    rc = main(["run", "--split", "cval1k", "--subset", "5", "--seed", "3", "--data",
               str(tmp_path / "data"), "--runs", str(tmp_path / "runs"), "--methods", "gt"])
    assert rc == 0 and len(list((tmp_path / "runs" / out.name / "gt").glob("*.png"))) == 5


def test_unknown_split_and_missing_folder_are_errors(tmp_path, capsys):
    assert main(["build-split", "--split", "nope", "--imagenet-val", str(tmp_path)]) == 1
    assert main(["build-split", "--split", "ctest10k", "--data", str(tmp_path)]) == 1
    assert "--imagenet-val" in capsys.readouterr().err
