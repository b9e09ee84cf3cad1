"""scripts/pack_photos.py: the carry-able WebP copy of a training folder."""

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def test_pack_resizes_keeps_layout_and_records_sources(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 200, 3), np.uint8)).save(src / "a" / "big.jpg")
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), np.uint8)).save(src / "small.png")
    (src / "a" / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "pack.tar.gz"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "pack_photos.py"), str(src),
                          str(out), "--side", "64"], capture_output=True, text=True, check=True)
    assert "2 photos" in res.stdout and "1 skipped" in res.stdout
    with tarfile.open(out) as tar:
        names = sorted(tar.getnames())
        assert names == ["PACK.json", "a/big.webp", "small.webp"]
        meta = json.loads(tar.extractfile("PACK.json").read())
        tar.extractall(tmp_path / "x", filter="data")
    assert meta["side"] == 64 and meta["n_files"] == 2
    assert meta["skipped"][0]["path"] == "a/broken.jpg"
    assert len(meta["source_sha256"]["a/big.webp"]) == 64
    with Image.open(tmp_path / "x" / "a" / "big.webp") as im:
        assert im.format == "WEBP" and im.size == (64, 96)  # short side 64, aspect kept
    with Image.open(tmp_path / "x" / "small.webp") as im:
        assert im.size == (50, 40)  # short side already under 64: not resized
