"""Training: loss falls, exact resume, NaN stop, 2-process DDP equals 1 process, CLI."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixcolor.assembly import combine
from pixcolor.config import config_with_overrides, get_preset
from pixcolor.data import ImageFolderDataset
from pixcolor.train import RunOptions, RunSetupError, TrainingDiverged, lr_at, train

TINY = get_preset("tiny")
QUIET = RunOptions(preset="tiny", progress=False)


def _blobs(rng, size=24):
    """A colourful image: a few random coloured gradients."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size, 3))
    for _ in range(3):
        c = rng.random(3)
        cy, cx = rng.random(2)
        img += c * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) * 8)[..., None]
    return (np.clip(img / img.max(), 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_imgs")
    rng = np.random.default_rng(0)
    for cls in ("n001", "n002"):
        (root / cls).mkdir()
        for i in range(4):
            Image.fromarray(_blobs(rng)).save(root / cls / f"{i}.png")
    Image.fromarray(np.full((24, 24, 3), 128, np.uint8)).save(root / "n001" / "gray.png")
    return root


def _ds(folder, tmp_path, **kw):
    return ImageFolderDataset(folder, size=TINY.train.image_size, index_path=tmp_path / "idx.csv",
                              lowres_short_side=TINY.model.lowres_short_side, **kw)


def _tcfg(**kw):
    return config_with_overrides(TINY.train, {"num_workers": 0, **kw})


def _run(stage, ds, out, **kw):
    tk = {k: kw.pop(k) for k in list(kw) if k in TINY.train.__dataclass_fields__}
    return train(stage, ds, out, TINY.model, _tcfg(**tk), dataclasses.replace(QUIET, **kw))


def _losses(out):
    rows = (Path(out) / "log.csv").read_text().splitlines()[1:]
    return [float(r.split(",")[1]) for r in rows]


@pytest.mark.parametrize("stage", ["pixelcnn", "refine"])
def test_loss_falls_when_overfitting(folder, tmp_path, stage):
    ds = _ds(folder, tmp_path)
    assert len(ds) == 8  # the gray image is filtered out by colorness
    _run(stage, ds, tmp_path / "run", steps=40, lr=3e-3, log_every=1, ckpt_every=40)
    losses = _losses(tmp_path / "run")
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5]), losses


def _weights(res):
    return {k: v.clone() for k, v in res["model"].state_dict().items()}


def test_resume_is_exact(folder, tmp_path):
    ds = _ds(folder, tmp_path)
    full = _run("pixelcnn", ds, tmp_path / "a", steps=6, ckpt_every=3, deterministic=True)
    first = _run("pixelcnn", ds, tmp_path / "b", steps=3, ckpt_every=3, deterministic=True)
    assert first["step"] == 3 and (tmp_path / "b" / "ckpt_00000003.pt").exists()
    resumed = _run("pixelcnn", ds, tmp_path / "b", steps=6, ckpt_every=3, deterministic=True,
                   resume=True)
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(a["pixelcnn.head2.weight"], _weights(first)["pixelcnn.head2.weight"])
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


def test_lr_schedule_warms_up_holds_then_decays_linearly_to_the_last_step():
    cfg = _tcfg(lr=1.0, steps=10, warmup_steps=2, decay_steps=4)
    assert [lr_at(s, cfg) for s in range(10)] == [0.5, 1, 1, 1, 1, 1, 1.0, 0.75, 0.5, 0.25]
    assert [lr_at(s, _tcfg(lr=1.0, steps=10, warmup_steps=0)) for s in (0, 9)] == [1, 1]
    with pytest.raises(ValueError, match="decay_steps"):
        train("pixelcnn", None, "unused", TINY.model, _tcfg(steps=4, decay_steps=5))


def test_decay_added_on_resume_equals_a_run_planned_with_it(folder, tmp_path):
    """Constant lr for 3 steps, then resumed with --steps 6 --decay-steps 3 (the demo recipe)."""
    ds = _ds(folder, tmp_path)
    full = _run("pixelcnn", ds, tmp_path / "a", steps=6, decay_steps=3, ckpt_every=3,
                log_every=1, deterministic=True)
    _run("pixelcnn", ds, tmp_path / "b", steps=3, ckpt_every=3, log_every=1, deterministic=True)
    resumed = _run("pixelcnn", ds, tmp_path / "b", steps=6, decay_steps=3, ckpt_every=3,
                   log_every=1, deterministic=True, resume=True)
    a, b = _weights(full), _weights(resumed)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    lrs = [float(r.split(",")[2]) for r in (tmp_path / "b" / "log.csv").read_text().split()[1:]]
    base = TINY.train.lr
    np.testing.assert_allclose(lrs[2:], [base, base, 2 * base / 3, base / 3], rtol=1e-3)


def test_log_rows_hold_the_mean_loss_since_the_previous_row(folder, tmp_path):
    ds = _ds(folder, tmp_path)
    _run("refine", ds, tmp_path / "every", steps=4, ckpt_every=4, log_every=1, deterministic=True)
    _run("refine", ds, tmp_path / "pairs", steps=4, ckpt_every=4, log_every=2, deterministic=True)
    each, pairs = _losses(tmp_path / "every"), _losses(tmp_path / "pairs")
    assert len(each) == 4 and len(pairs) == 2
    # log.csv writes losses with 6 decimals: each logged value is within 5e-7 of the true one,
    # so a logged pair mean and the mean of two logged steps differ by at most 1e-6 (the bound
    # is exact; a relative tolerance is not, as small losses keep few significant digits).
    np.testing.assert_allclose(pairs, [np.mean(each[:2]), np.mean(each[2:])],
                               rtol=0, atol=1e-6 + 1e-12)
    assert pairs[0] != each[1]  # not just the last step of the interval


def test_checkpoints_keep_last_k_and_combine(folder, tmp_path):
    ds = _ds(folder, tmp_path)
    _run("pixelcnn", ds, tmp_path / "p", steps=4, ckpt_every=1, keep_last=2)
    assert sorted(p.name for p in (tmp_path / "p").glob("ckpt_*.pt")) == [
        "ckpt_00000003.pt", "ckpt_00000004.pt"]
    assert not list((tmp_path / "p").glob("*.tmp"))
    _run("refine", ds, tmp_path / "r", steps=2, ckpt_every=2)
    from pixcolor import PixColor

    out = combine(tmp_path / "p" / "ckpt_00000004.pt", tmp_path / "r" / "ckpt_00000002.pt",
                  tmp_path / "model.pt")
    model = PixColor.load(out)
    assert model.colorize([np.zeros((20, 30), np.uint8)], num_samples=1)[0].shape == (1, 20, 30, 3)
    with pytest.raises(ValueError, match="pixelcnn checkpoint and a refine"):
        combine(tmp_path / "r" / "ckpt_00000002.pt", tmp_path / "p" / "ckpt_00000004.pt", out)
    # a newer PixelCNN into the combined model: the refinement network and its step carry over
    swapped = combine(tmp_path / "p" / "ckpt_00000003.pt", out, tmp_path / "swapped.pt")
    new, old = torch.load(swapped, weights_only=False), torch.load(out, weights_only=False)
    assert new["training"]["pixelcnn_step"] == 3 and new["training"]["refine_step"] == 2
    p3 = torch.load(tmp_path / "p" / "ckpt_00000003.pt", weights_only=False)["model"]
    for k, v in new["model"].items():
        want = old["model"][k] if k.startswith("refine.") else p3[k]
        assert torch.equal(v, want), k


def test_combine_takes_the_pixelcnn_stage_architecture_and_checks_the_refinement_fields(
        folder, tmp_path):
    ds = _ds(folder, tmp_path)
    _run("refine", ds, tmp_path / "r", steps=1)
    refine = tmp_path / "r" / "ckpt_00000001.pt"
    glob = dataclasses.replace(TINY.model, cond_global=True, pcnn_blocks=1)
    train("pixelcnn", ds, tmp_path / "g", glob, _tcfg(steps=1), QUIET)
    from pixcolor import PixColor

    out = combine(tmp_path / "g" / "ckpt_00000001.pt", refine, tmp_path / "m.pt")
    assert PixColor.load(out).cfg == glob  # the refinement run did not use these fields
    wide = dataclasses.replace(TINY.model, refine_width=TINY.model.refine_width * 2)
    train("pixelcnn", ds, tmp_path / "w", wide, _tcfg(steps=1), QUIET)
    with pytest.raises(ValueError, match="refine_width: 8 vs 4"):
        combine(tmp_path / "w" / "ckpt_00000001.pt", refine, tmp_path / "bad.pt")


def test_add_global_branch_keeps_the_model_and_adam_state_and_the_run_resumes(
        folder, tmp_path):
    from pixcolor.assembly import add_global_branch

    ds = _ds(folder, tmp_path)
    _run("pixelcnn", ds, tmp_path / "p", steps=2)
    src, dst = tmp_path / "p" / "ckpt_00000002.pt", tmp_path / "g" / "ckpt_00000002.pt"
    assert add_global_branch(src, dst) == ["cond.global_fc.bias", "cond.global_fc.weight"]
    a, b = torch.load(src, weights_only=False), torch.load(dst, weights_only=False)
    assert b["model_config"]["cond_global"] and not b["model"]["cond.global_fc.weight"].any()
    # Adam's state follows each parameter to its new index (trainer order: cond, pixelcnn)
    from pixcolor import PixColor

    def order(cfg):
        m = PixColor(cfg)
        return [f"{k}.{n}" for k in ("cond", "pixelcnn") for n, _ in
                getattr(m, k).named_parameters()]

    old_names = order(TINY.model)
    new_names = order(dataclasses.replace(TINY.model, cond_global=True))
    assert a["optimizer"]["state"]
    for i, st in a["optimizer"]["state"].items():
        j = new_names.index(old_names[i])
        torch.testing.assert_close(b["optimizer"]["state"][j]["exp_avg"], st["exp_avg"],
                                   msg=old_names[i])
    assert len(b["optimizer"]["state"]) == len(a["optimizer"]["state"])
    with pytest.raises(ValueError, match="already"):
        add_global_branch(dst, tmp_path / "again.pt")
    out = train("pixelcnn", ds, tmp_path / "g", TINY.model, _tcfg(steps=3),
                dataclasses.replace(QUIET, resume=True))
    assert out["step"] == 3 and out["model"].cond.global_fc.weight.abs().sum() > 0


def test_checkpoints_record_the_revision_the_run_started_from(folder, tmp_path, monkeypatch):
    import pixcolor.train as train_mod

    revs = iter(["a" * 40, "b" * 40, "c" * 40, "d" * 40])
    monkeypatch.setattr(train_mod, "git_revision", lambda: next(revs))
    _run("pixelcnn", _ds(folder, tmp_path), tmp_path / "p", steps=3, ckpt_every=1)
    got = {torch.load(p, weights_only=False)["git_rev"] for p in (tmp_path / "p").glob("ckpt_*")}
    assert got == {"a" * 40}  # not the checkout's HEAD at each save
    monkeypatch.undo()
    rev = train_mod.git_revision()
    assert rev == "unknown" or len(rev.removesuffix("-dirty")) == 40


class _PoisonAfter(torch.utils.data.Dataset):
    """Wraps a dataset; items of epochs >= ``epoch`` carry NaN luma."""

    def __init__(self, ds, epoch):
        self.ds, self.bad_epoch, self.epoch = ds, epoch, 0

    def __len__(self):
        return len(self.ds)

    def set_epoch(self, e):
        self.epoch = e
        self.ds.set_epoch(e)

    def __getitem__(self, i):
        item = dict(self.ds[i])
        if self.epoch >= self.bad_epoch:
            item["y"] = torch.full_like(item["y"], float("nan"))
        return item


def test_nan_loss_stops_and_keeps_last_good_checkpoint(folder, tmp_path):
    ds = _PoisonAfter(_ds(folder, tmp_path), epoch=1)  # 8 items, batch 4: step 2 is bad
    with pytest.raises(TrainingDiverged, match="step 2"):
        _run("refine", ds, tmp_path / "n", steps=10, ckpt_every=1)
    names = sorted(p.name for p in (tmp_path / "n").glob("ckpt_*.pt"))
    assert names[-1] == "ckpt_00000002.pt"
    state = torch.load(tmp_path / "n" / names[-1], weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.slow
def test_torchrun_two_processes_match_one(folder, tmp_path):
    """gloo on CPU: 2 ranks x batch 2 give the weights of 1 process x batch 4."""
    _ds(folder, tmp_path)  # build the index once, before the ranks read it
    args = ["--data", str(folder), "--preset", "tiny", "--steps", "3", "--num-workers", "0",
            "--deterministic", "--freeze-bn", "--index", str(tmp_path / "idx.csv")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for stage in ("pixelcnn",):
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc-per-node", "2", "-m", "pixcolor", "train", stage,
                        "--out", str(tmp_path / "ddp"), *args], check=True, env=env,
                       capture_output=True, timeout=300)
        subprocess.run([sys.executable, "-m", "pixcolor", "train", stage,
                        "--out", str(tmp_path / "one"), *args], check=True, env=env,
                       capture_output=True, timeout=300)
        a = torch.load(tmp_path / "ddp" / "ckpt_00000003.pt", weights_only=False)
        b = torch.load(tmp_path / "one" / "ckpt_00000003.pt", weights_only=False)
        assert a["world_size"] == 2 and b["world_size"] == 1
        for k, v in b["model"].items():
            torch.testing.assert_close(a["model"][k], v, rtol=1e-4, atol=1e-5, msg=k)


def test_cli_architecture_flags_build_the_model_and_a_resume_cannot_change_them(
        folder, tmp_path, capsys):
    from pixcolor.cli import main

    base = ["train", "pixelcnn", "--data", str(folder), "--preset", "tiny", "--steps", "1",
            "--num-workers", "0", "--index", str(tmp_path / "idx.csv"), "--out",
            str(tmp_path / "wide")]
    assert main([*base, "--cond-width", "8", "--cond-blocks", "1,2,1"]) == 0
    saved = torch.load(tmp_path / "wide" / "ckpt_00000001.pt", weights_only=False)
    assert saved["model_config"]["cond_width"] == 8
    assert tuple(saved["model_config"]["cond_blocks"]) == (1, 2, 1)
    assert saved["model"]["cond.layer2.1.conv1.weight"].shape[1] == 8 * 2 * 4  # expansion 4
    capsys.readouterr()
    # same flags on resume: fine; a different width: refused, naming the saved value
    assert main([*base, "--steps", "2", "--resume", "--cond-blocks", "1,2,1"]) == 0
    assert main([*base, "--steps", "3", "--resume", "--cond-width", "16"]) == 2
    assert "cond_width=8" in capsys.readouterr().err
    assert not (tmp_path / "wide" / "ckpt_00000003.pt").exists()
    assert main([*base[:-1], str(tmp_path / "bad"), "--cond-blocks", "1,2"]) == 2
    assert "--cond-blocks takes 3 integers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--cond-blocks", "one,two,three"])
    # boolean fields: true/false, anything else is an error rather than a silent False
    assert main([*base[:-1], str(tmp_path / "glob"), "--cond-global", "true"]) == 0
    saved = torch.load(tmp_path / "glob" / "ckpt_00000001.pt", weights_only=False)
    assert saved["model_config"]["cond_global"] is True
    assert "cond.global_fc.weight" in saved["model"]
    with pytest.raises(SystemExit):
        main([*base, "--cond-global", "ture"])
    assert "'ture' is not a boolean" in capsys.readouterr().err


def test_warm_start_takes_weights_and_architecture_and_starts_a_fresh_schedule(folder, tmp_path):
    ds = _ds(folder, tmp_path)
    _run("pixelcnn", ds, tmp_path / "first", steps=3, ckpt_every=3)
    src = tmp_path / "first" / "ckpt_00000003.pt"
    # the architecture comes from the checkpoint, whatever model config the caller passes
    other = dataclasses.replace(TINY.model, pcnn_blocks=TINY.model.pcnn_blocks + 1)
    tk = _tcfg(steps=2, ckpt_every=1, lr=0.0, warmup_steps=0)
    train("pixelcnn", ds, tmp_path / "warm", other, tk,
          dataclasses.replace(QUIET, warm_start=str(src)))
    first = torch.load(src, weights_only=False)
    warm = torch.load(tmp_path / "warm" / "ckpt_00000001.pt", weights_only=False)
    assert warm["step"] == 1 and warm["model_config"] == first["model_config"]
    assert warm["warm_start"]["file"] == src.name and warm["warm_start"]["steps"] == {"step": 3}
    for k, v in first["model"].items():  # lr 0: the weights are exactly the warm start's
        assert torch.equal(warm["model"][k], v) or k.endswith(("running_mean", "running_var",
                                                                "num_batches_tracked")), k
    assert not warm["optimizer"]["state"] or all(  # a fresh Adam: one step of moments
        int(s["step"]) == 1 for s in warm["optimizer"]["state"].values())
    # a resume of the warm-started run keeps the record and ignores the warm-start file
    train("pixelcnn", ds, tmp_path / "warm", other, tk,
          dataclasses.replace(QUIET, resume=True, warm_start=str(tmp_path / "missing.pt")))
    again = torch.load(tmp_path / "warm" / "ckpt_00000002.pt", weights_only=False)
    assert again["warm_start"] == warm["warm_start"]


def test_warm_start_refuses_another_models_checkpoint(folder, tmp_path):
    ds = _ds(folder, tmp_path)
    bad = tmp_path / "bad.pt"
    torch.save({"stage": "ltbc", "model_config": {}, "model": {}}, bad)
    with pytest.raises(ValueError, match="--warm-start .*bad.pt.*'ltbc' checkpoint"):
        _run("pixelcnn", ds, tmp_path / "o", steps=1, warm_start=str(bad))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="--warm-start .*junk.pt: not a readable"):
        _run("refine", ds, tmp_path / "o", steps=1, warm_start=str(tmp_path / "junk.pt"))


def test_resume_refuses_another_stages_run_folder(folder, tmp_path):
    ds = _ds(folder, tmp_path)
    _run("pixelcnn", ds, tmp_path / "run", steps=1, ckpt_every=1)
    with pytest.raises(RunSetupError, match="--resume .*ckpt_00000001.pt: a 'pixelcnn' "
                                            "checkpoint, not 'refine'"):
        _run("refine", ds, tmp_path / "run", steps=2, resume=True)
