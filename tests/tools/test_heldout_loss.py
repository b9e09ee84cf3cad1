"""tools.heldout_loss: each stage's own training loss on held-out photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import baselines
from baselines.base import save_inference_checkpoint
from pixcolor import PixColor
from tests.fakes import fake_photo
from tools.heldout_loss import heldout_loss, main, stage_for

TRAINING = {"training": {"train_config": {"image_size": 32}}}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("heldout")
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for k in range(5):
        Image.fromarray(fake_photo(rng, 40, 44)).save(photos / f"p{k}.png")
    (photos / "broken.jpg").write_bytes(b"not an image")
    torch.manual_seed(0)
    PixColor.from_preset("tiny").save(root / "pix.pt", extra=TRAINING)
    for name in ("cic", "lrac", "ltbc"):
        save_inference_checkpoint(baselines.create(name, "tiny"), root / f"{name}.pt", TRAINING)
    return root


@pytest.mark.parametrize("name", ["pixelcnn", "refine", "ltbc"])
def test_loss_is_the_per_photo_mean_whatever_the_batch(files, name):
    stage, size = stage_for(name, files / ("pix.pt" if name in ("pixelcnn", "refine")
                                           else f"{name}.pt"))
    assert size == 32 and not stage.training
    one = heldout_loss(stage, files / "photos", size, batch_size=1)
    three = heldout_loss(stage, files / "photos", size, batch_size=3)
    assert one["photos"] == three["photos"] == 5 and one["skipped"] == 1  # the broken file
    # per-pixel mean losses over equal-size crops: batching must not reweight the photos
    assert three["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert heldout_loss(stage, files / "photos", size, limit=2)["photos"] == 2


def test_cic_prior_is_not_fed_the_heldout_photos(files):
    stage, size = stage_for("cic", files / "cic.pt")
    before = stage.model.ab_counts.clone()
    a = heldout_loss(stage, files / "photos", size)["loss"]
    torch.testing.assert_close(stage.model.ab_counts, before, rtol=0, atol=0)
    assert heldout_loss(stage, files / "photos", size)["loss"] == a


def test_lrac_is_seeded(files):
    stage, size = stage_for("lrac", files / "lrac.pt")
    a = heldout_loss(stage, files / "photos", size, seed=1)["loss"]
    assert heldout_loss(stage, files / "photos", size, seed=1)["loss"] == a
    assert heldout_loss(stage, files / "photos", size, seed=2)["loss"] != a


def test_cli_writes_json_and_names_bad_input(files, tmp_path, capsys):
    out = tmp_path / "hl.json"
    assert main(["--images", str(files / "photos"), f"pixelcnn={files / 'pix.pt'}",
                 f"cic={files / 'cic.pt'}", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res) == {"pixelcnn", "cic"} and res["cic"]["size"] == 32
    assert "pixelcnn" in capsys.readouterr().out
    assert main(["--images", str(files / "photos"), f"ltbc={files / 'cic.pt'}"]) == 2
    assert "cic" in capsys.readouterr().err  # a CIC file given as LTBC
    assert main(["--images", str(files / "photos"), f"ltbc={files / 'missing.pt'}"]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert main(["--images", str(files / "photos"), "ltbc"]) == 2
    assert "STAGE=FILE" in capsys.readouterr().err
