"""The fixed held-out slice of the demo training photos (pixcolor.holdout)."""

import math

import numpy as np
import pytest
from PIL import Image

from pixcolor import holdout


def _tree(root, counts):
    for source, n in counts.items():
        d = root / "photos_17k" / source
        d.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((4, 4, 3), i % 250, np.uint8)).save(d / f"{source}_{i}.jpg")
    (root / "photos_17k" / "manifest.csv").write_text("file\n")
    (root / "imagenet_sample_1k").mkdir()
    for i in range(5):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(
            root / "imagenet_sample_1k" / f"{i}.jpg")


def test_rule_holds_out_the_ceiling_share_of_each_source_by_hash_rank():
    names = {"a": [f"{i}.jpg" for i in range(100)], "b": [f"{i}.jpg" for i in range(7)]}
    got = holdout.choose_holdout(names, seed=0, fraction=0.025)
    assert sum(p.startswith("a/") for p in got) == 3 and sum(p.startswith("b/") for p in got) == 1
    ranked = sorted(names["a"], key=lambda n: holdout.holdout_rank_key(0, "a", n))
    assert {p for p in got if p.startswith("a/")} == {f"a/{n}" for n in ranked[:3]}
    # a function of the names only: order and other sources do not matter; the seed does
    assert holdout.choose_holdout({"a": names["a"][::-1]}, 0, 0.025) == [
        p for p in got if p.startswith("a/")]
    assert holdout.choose_holdout(names, seed=1, fraction=0.025) != got
    with pytest.raises(ValueError, match="fraction"):
        holdout.choose_holdout(names, fraction=1.5)


def test_prepare_links_disjoint_train_and_holdout_folders(tmp_path):
    data = tmp_path / "data"
    _tree(data, {"intel": 80, "coco": 3})
    listed = holdout.holdout_paths(data)
    assert len(listed) == math.ceil(0.025 * 80) + 1
    out = tmp_path / "out"
    counts = holdout.prepare(data, out, listed)
    train = {p.relative_to(out / "train").as_posix() for p in (out / "train").rglob("*.jpg")}
    held = {p.name for p in (out / "holdout").iterdir()}  # flat: ids are file stems
    assert held == {p.split("/")[-1] for p in listed}
    assert not {p.resolve() for p in (out / "train").rglob("*.jpg")} & {
        p.resolve() for p in (out / "holdout").iterdir()}
    assert counts == {"train": 83 - len(listed) + 5, "holdout": len(listed)}
    assert "imagenet_sample_1k/0.jpg" in train  # unsliced collection: all trained on
    name = listed[0].split("/")[-1]
    assert (out / "holdout" / name).resolve() == (data / listed[0]).resolve()
    # a second call with another list removes the stale links
    holdout.prepare(data, out, listed[1:])
    assert not (out / "holdout" / name).exists() and (out / "train" / listed[0]).exists()


def test_check_and_prepare_report_a_wrong_data_folder(tmp_path, capsys):
    assert holdout.main(["check", "--data", str(tmp_path)]) == 2
    assert "photos_17k" in capsys.readouterr().err
    data = tmp_path / "data"
    _tree(data, {"intel": 10})
    assert holdout.main(["check", "--data", str(data)]) == 1  # not the shipped slice
    assert "different held-out slice" in capsys.readouterr().err
    assert holdout.main(["prepare", "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    assert "held-out files missing" in capsys.readouterr().err


def test_shipped_list_is_the_rule_applied_to_the_demo_photo_names():
    """Only the shipped list (package data) is read; the photo names are generated here."""
    listed = holdout.read_list()
    assert len(listed) == len(set(listed)) == 443
    by_source = {}
    for p in listed:
        coll, source, name = p.split("/")
        assert coll == "photos_17k" and name.startswith(source + "_")
        by_source.setdefault(source, []).append(name)
    assert {s: len(v) for s, v in by_source.items()} == {
        "intel": 254, "imagenette": 75, "catsdogs": 74, "flowers": 37, "coco": 3}
    # four sources name their files <source>_0.jpg ... <source>_<n-1>.jpg (the data README's
    # counts), so the rule is redone from generated names alone (imagenette's numbers have
    # gaps; `python -m pixcolor.holdout check --data DIR` covers it on a machine with the data)
    counts = {"intel": 10145, "catsdogs": 2923, "flowers": 1461, "coco": 96}
    for source, n in counts.items():
        names = {source: [f"{source}_{i}.jpg" for i in range(n)]}
        want = holdout.choose_holdout(names)
        assert sorted(f"photos_17k/{p}" for p in want) == sorted(
            p for p in listed if p.split("/")[1] == source), source
