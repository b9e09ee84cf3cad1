"""The `pixcolor` command lines: `colorize` on a folder holding one corrupt file, `--rank`,
the console scripts, and what `train` says it found."""

import json
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from pixcolor import PixColor


def test_colorize_folder_skips_and_reports_corrupt_file(tmp_path, photo):
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    PixColor.from_preset("tiny").save(ckpt)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo[::16, ::16]).save(src / "a.jpg")
    Image.fromarray(photo[:40:2, :64:2].mean(-1).astype(np.uint8)).save(src / "b.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "pixcolor", "colorize", str(src), "--out", str(out),
         "--samples", "2", "--seed", "4", "--checkpoint", str(ckpt)],
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.glob("*.png")) == [
        "a_seed4_sample1.png", "a_seed4_sample2.png", "b_seed4_sample1.png",
        "b_seed4_sample2.png"]
    assert np.asarray(Image.open(out / "b_seed4_sample1.png")).shape == (20, 32, 3)
    assert "broken.jpg" in res.stderr
    failed = json.loads((out / "failed.json").read_text())
    assert [f[0].endswith("broken.jpg") for f in failed] == [True]
    assert "colorized 2 of 3" in res.stdout


def test_colorize_missing_checkpoint_is_a_clear_error(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "pixcolor", "colorize", str(tmp_path), "--out", str(tmp_path / "o"),
         "--checkpoint", str(tmp_path / "nope.pt")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "nope.pt" in res.stderr


def test_every_cli_has_a_console_script():
    """pyproject's console scripts: pixcolor, pixcolor-baselines, pixcolor-bench and
    pixcolor-report each answer --help (installed by make venv)."""
    import subprocess
    import sys
    from pathlib import Path

    bindir = Path(sys.executable).parent
    for name in ("pixcolor", "pixcolor-baselines", "pixcolor-bench", "pixcolor-report"):
        res = subprocess.run([str(bindir / name), "--help"], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0 and "usage" in res.stdout.lower(), (name, res.stderr)


def test_colorize_rank_writes_the_most_likely_of_n_samples(tmp_path, photo, capsys):
    """``--rank 3`` writes <stem>_seed<seed>_best3.png: the sample of ``--samples 3`` with the
    highest log-likelihood, says which, and keeps it in chosen.json."""
    import pytest

    from pixcolor.cli import main

    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    PixColor.from_preset("tiny").save(ckpt)
    src = tmp_path / "in"
    src.mkdir()
    for k in range(3):
        Image.fromarray(photo[40 * k:40 * k + 40:2, :64:2]).save(src / f"p{k}.png")
    common = [str(src), "--seed", "4", "--checkpoint", str(ckpt), "--batch-size", "2"]
    with torch.enable_grad():  # the command turns gradients off: keep that out of other tests
        assert main(["colorize", *common, "--out", str(tmp_path / "all"), "--samples", "3"]) == 0
        assert main(["colorize", *common, "--out", str(tmp_path / "best"), "--rank", "3"]) == 0
    said = capsys.readouterr().out
    best = tmp_path / "best"
    assert sorted(p.name for p in best.glob("*.png")) == [f"p{k}_seed4_best3.png"
                                                          for k in range(3)]
    chosen = json.loads((best / "chosen.json").read_text())
    for k in range(3):
        c = chosen[f"p{k}_seed4_best3.png"]
        assert c["seed"] == 4 and c["samples"] == 3 and c["sample"] == c["index"] + 1
        assert c["logp"] == max(c["logps"]) == c["logps"][c["index"]]
        assert f"p{k}_seed4_best3.png: sample {c['sample']} of 3" in said
        np.testing.assert_array_equal(
            np.asarray(Image.open(best / f"p{k}_seed4_best3.png")),
            np.asarray(Image.open(tmp_path / "all" / f"p{k}_seed4_sample{c['sample']}.png")))
    assert "the most likely of 3 samples each" in said
    for bad in (["--rank", "0"], ["--rank", "2", "--samples", "2"]):
        with pytest.raises(SystemExit) as exc:
            main(["colorize", *common, "--out", str(tmp_path / "x"), *bad])
        assert exc.value.code == 2


def test_training_message_says_flat_folder_or_class_folders(tmp_path):
    from pixcolor.cli import training_images_found
    from pixcolor.data import ImageFolderDataset

    rng = np.random.default_rng(0)

    def photo(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)

    for i in range(3):
        photo(tmp_path / "flat" / f"{i}.png")
    Image.new("RGB", (16, 16), (90, 90, 90)).save(tmp_path / "flat" / "grey.png")
    for cls in ("n001", "n002"):
        for i in range(2):
            photo(tmp_path / "classes" / cls / f"{i}.png")

    def said(folder):
        ds = ImageFolderDataset(tmp_path / folder, size=16, workers=1,
                                index_path=tmp_path / f"{folder}.csv")
        return training_images_found(ds, 0.05)

    assert said("flat") == ("3 training images (a flat folder: no class subfolders; "
                            "1 below colorness 0.05, 0 unreadable)")
    assert said("classes") == ("4 training images in 2 class folders "
                               "(0 below colorness 0.05, 0 unreadable)")
