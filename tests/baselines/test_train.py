"""Training the baselines with the shared trainer, their checkpoints, CLI and the harness."""

from __future__ import annotations

import csv
import dataclasses
import shutil

import numpy as np
import pytest
from PIL import Image

import baselines
from baselines.__main__ import main
from pixcolor.data import ImageFolderDataset
from pixcolor.train import RunOptions, train

NAMES = ("cic", "lrac", "ltbc")

pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def trained(photo_dir, tmp_path_factory) -> dict[str, dict]:
    """Each baseline's ``tiny`` preset overfitted for 40 steps on the four photos."""
    ds = ImageFolderDataset(photo_dir, size=32, train=False, colorness_threshold=0.0,
                            index_path=tmp_path_factory.mktemp("index") / "index.csv")
    runs = {}
    for name in NAMES:
        preset = baselines.presets(name)["tiny"]
        mcfg = preset.model
        if name == "ltbc":
            mcfg = dataclasses.replace(mcfg, num_classes=len(ds.classes))
        out = tmp_path_factory.mktemp(f"run_{name}")
        res = train(name, ds, out, mcfg, preset.train, RunOptions(preset="tiny", progress=False))
        with open(out / "log.csv", newline="") as f:
            res["losses"] = [float(r["loss"]) for r in csv.DictReader(f)]
        runs[name] = res
    return runs


@pytest.mark.parametrize("name", NAMES)
def test_a_resumed_baseline_run_equals_an_uninterrupted_one(photo_dir, tmp_path, name):
    """LRAC draws its training pixels from torch's random stream: a resume continues it
    exactly (the data loader's iterator has its own generator and draws nothing from it)."""
    import torch

    ds = ImageFolderDataset(photo_dir, size=32, train=False, colorness_threshold=0.0,
                            index_path=tmp_path / "index.csv")
    preset = baselines.presets(name)["tiny"]
    mcfg = preset.model
    if name == "ltbc":
        mcfg = dataclasses.replace(mcfg, num_classes=len(ds.classes))

    def run(out, steps, resume=False):
        tcfg = dataclasses.replace(preset.train, steps=steps, ckpt_every=3)
        opts = RunOptions(preset="tiny", progress=False, resume=resume, deterministic=True)
        return train(name, ds, tmp_path / out, mcfg, tcfg, opts)["model"].state_dict()

    full = run("a", 6)
    run("b", 3)
    resumed = run("b", 6, resume=True)
    assert all(torch.equal(full[k], resumed[k]) for k in full), name


@pytest.mark.parametrize("name", NAMES)
def test_loss_falls_when_overfitting(trained, name):
    losses = trained[name]["losses"]
    assert len(losses) == 40 and np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5]), losses


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_loads_and_colorizes_the_same(trained, name, rng):
    res = trained[name]
    model = baselines.load(name, res["checkpoint"])
    assert model.checkpoint_sha256 and model.preset == "tiny"
    image = rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)
    assert np.array_equal(model.colorize([image])[0], res["model"].colorize([image])[0])
    field = "temperature" if name == "cic" else "max_side"
    assert getattr(baselines.load(name, res["checkpoint"], **{field: 48}).cfg, field) == 48
    with pytest.raises(ValueError, match="test-time"):
        baselines.load(name, res["checkpoint"], widths=(1, 2, 3, 4))
    other = next(n for n in NAMES if n != name)
    with pytest.raises(baselines.BaselineCheckpointError, match=f"a '{name}' checkpoint"):
        baselines.load(other, res["checkpoint"])


def test_cic_counts_its_prior_while_training(trained):
    counts = trained["cic"]["model"].ab_counts
    assert counts.sum() == 40 * 4 * 8 * 8  # steps x batch x (32 / 4)^2 pixels


def test_harness_generates_every_baseline(trained, photo_dir, tmp_path):
    from bench.generate import generate
    from bench.methods import MethodOptions
    from bench.pipeline import build

    flat = tmp_path / "flat"
    flat.mkdir()
    for k, p in enumerate(sorted(photo_dir.rglob("*.png"))):
        rgb = np.asarray(Image.open(p))
        Image.fromarray(rgb[: 30 + k]).save(flat / f"img{k}.png")  # non-square sources too
    split = tmp_path / "split"
    assert build("photos", split, images=flat, size=32, keep_aspect=True).usable == 4
    ckpts = {n: str(trained[n]["checkpoint"]) for n in NAMES}
    reports = generate(split, tmp_path / "runs", list(NAMES),
                       options=MethodOptions(baseline_checkpoints=ckpts), echo=lambda s: None)
    assert {r.name: (r.status, r.generated) for r in reports} == {n: ("done", 4) for n in NAMES}
    for n in NAMES:
        pngs = sorted((tmp_path / "runs" / n).glob("*.png"))
        assert len(pngs) == 4
        for png in pngs:
            src = np.asarray(Image.open(split / "images" / png.name))
            assert np.asarray(Image.open(png)).shape == src.shape


def test_cli_train_export_colorize(photo_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "cic", "--data", str(photo_dir), "--out", str(out), "--preset", "tiny",
            "--steps", "2", "--image-size", "32", "--prior-images", "3",
            "--colorness-threshold", "0", "--index", str(tmp_path / "index.csv"),
            "--temperature", "0.5", "--resume"]
    assert main(args) == 0  # --resume on a fresh folder is a fresh run: the prior is counted
    assert np.load(out / "cic_prior.npy").sum() == 3 * 64 * 64  # three 64 px centre crops
    ckpt = sorted(out.glob("ckpt_*.pt"))[-1]
    assert main(["export", str(ckpt), "--out", str(tmp_path / "cic.pt")]) == 0
    model = baselines.load("cic", tmp_path / "cic.pt")
    assert model.cfg.temperature == 0.5 and model.ab_counts.sum() > 0
    assert main(["colorize", "cic", str(photo_dir), "--out", str(tmp_path / "col"),
                 "--checkpoint", str(tmp_path / "cic.pt")]) == 0
    photos = sorted(p for p in photo_dir.rglob("*") if p.is_file())
    assert sorted(p.name for p in (tmp_path / "col").glob("*.png")) == sorted(
        p.stem + ".png" for p in photos)
    bad = tmp_path / "bad"  # a corrupt file is skipped and reported, the others are done
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"not an image")
    shutil.copy(photos[0], bad)
    assert main(["colorize", "cic", str(bad), "--out", str(tmp_path / "col2"),
                 "--checkpoint", str(tmp_path / "cic.pt")]) == 0
    assert len(list((tmp_path / "col2").glob("*.png"))) == 1
    assert "broken.jpg" in (tmp_path / "col2" / "failed.json").read_text()
    assert main(["colorize", "lrac", str(photo_dir), "--out", str(tmp_path / "x"),
                 "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_ltbc_classification_branch_follows_the_class_folders_unless_set():
    """LTBC's training-stage hook: one class output per class folder of a fresh run's data."""
    from types import SimpleNamespace

    from baselines.ltbc import LTBCConfig, LTBCStage

    data = SimpleNamespace(classes=["cat", "dog", "sky"])
    cfg = LTBCStage.prepare_config(LTBCConfig(), data, out=None, overrides={}, options={})
    assert cfg.num_classes == 3
    set_by_flag = dataclasses.replace(LTBCConfig(), num_classes=7)
    assert LTBCStage.prepare_config(set_by_flag, data, out=None, overrides={"num_classes": 7},
                                   options={}).num_classes == 7
