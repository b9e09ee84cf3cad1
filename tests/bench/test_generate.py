"""Generation: every method, resume after interruption, sharding, external methods, CLI."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.__main__ import main
from bench.generate import generate, parse_shard, shard_ids
from bench.methods import (
    METHODS,
    Item,
    Method,
    MethodOptions,
    create_method,
    register_method,
)
from bench.pipeline import build
from pixcolor import PixColor
from pixcolor.color import rgb_luma, to_uint8
from tests.fakes import fake_photo as _photo

N_IMAGES = 6
SIZE = 24


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory) -> Path:
    """A built split of generated photos (one of them not square before the crop)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for k in range(N_IMAGES):
        Image.fromarray(_photo(rng, 30 + 4 * k, 40)).save(root / f"photo{k}.png")
    out = root.parent / "split"
    result = build("photos", out, images=root, size=SIZE)
    assert result.usable == N_IMAGES
    return out


class Counting(Method):
    """Test method: records the ids it is asked for; can be interrupted after some calls."""

    calls: list[str] = []
    interrupt_after: int | None = None

    def generate(self, items: Sequence[Item]) -> list:
        if Counting.interrupt_after is not None and len(Counting.calls) >= Counting.interrupt_after:
            raise KeyboardInterrupt
        Counting.calls += [it.image_id for it in items]
        return [it.rgb[::-1].copy() for it in items]


@pytest.fixture
def counting():
    register_method("counting", default=False, overwrite=True)(Counting)
    Counting.calls, Counting.interrupt_after = [], None
    yield Counting
    METHODS.pop("counting", None)


def _ids(split_dir: Path) -> list[str]:
    with open(split_dir / "manifest.csv", newline="") as f:
        return [r["image_id"] for r in csv.DictReader(f)]


def test_the_papers_methods_are_registered_and_bad_names_refused():
    for name in ("gt", "grayscale", "gt28_unrefined", "gt28_refined", "pixcolor_s1",
                 "pixcolor_s2", "pixcolor_s3", "pixcolor_unrefined", "cic", "lrac", "ltbc"):
        assert name in METHODS
    with pytest.raises(KeyError, match="choose one of"):
        create_method("nope")
    with pytest.raises(ValueError):
        create_method("external:bad name")


def test_pixcolor_without_its_checkpoint_is_unavailable_and_names_the_path():
    ok, why = create_method("pixcolor_s1", MethodOptions(checkpoint="/nonexistent.pt")
                            ).available()
    assert not ok and "/nonexistent.pt" in why


def test_method_options_refuse_unknown_fields_and_reach_the_pixcolor_engine(tiny_ckpt):
    with pytest.raises(TypeError, match="max_sid"):
        MethodOptions(max_sid=512)  # type: ignore[call-arg]
    opts = MethodOptions(checkpoint=str(tiny_ckpt), max_side=300, temperature=0.5)
    engine = create_method("pixcolor_unrefined", opts).engine
    assert (engine.options.max_side, engine.options.temperature) == (300, 0.5)
    assert create_method("pixcolor_s1", opts).engine is engine  # one model per settings
    assert create_method("pixcolor_s1", MethodOptions(checkpoint=str(tiny_ckpt))
                         ).engine is not engine


GENERATED = ["gt", "grayscale", "gt28_unrefined", "pixcolor_s1", "pixcolor_s2",
             "pixcolor_unrefined", "gt28_refined"]


@pytest.fixture(scope="module")
def generated(split_dir, tiny_ckpt, tmp_path_factory):
    """Every method generated together in batches of 4 (``cic`` without its checkpoint):
    (runs folder, reports by name)."""
    runs = tmp_path_factory.mktemp("all") / "runs" / "photos"
    missing = runs.parent / "no_cic.pt"
    reports = generate(split_dir, runs, [*GENERATED, "cic"], batch_size=4, options=MethodOptions(
        checkpoint=str(tiny_ckpt), baseline_checkpoints={"cic": str(missing)}))
    return runs, {r.name: r for r in reports}


def _png(runs: Path, method: str, image_id: str) -> np.ndarray:
    return np.asarray(Image.open(runs / method / f"{image_id}.png"))


def test_every_available_method_writes_one_png_per_image(generated, split_dir):
    runs, reports = generated
    for name in GENERATED:
        assert reports[name].status == "done" and reports[name].generated == N_IMAGES
        assert sorted(p.stem for p in (runs / name).glob("*.png")) == sorted(_ids(split_dir))


def test_a_baseline_without_its_checkpoint_is_skipped_with_how_to_train_it(generated):
    _, reports = generated
    assert reports["cic"].status == "skipped" and "no_cic.pt" in reports["cic"].reason
    assert "python -m baselines train cic" in reports["cic"].reason


def test_grayscale_is_the_ground_truths_y_plane(generated, split_dir):
    runs, _ = generated
    for i in _ids(split_dir):
        gray = _png(runs, "grayscale", i)
        want = to_uint8(rgb_luma(_png(runs, "gt", i)))
        assert all((gray[..., c] == want).all() for c in range(3))


@pytest.mark.parametrize("method, kw", [("pixcolor_s2", {"seed": 2}),
                                        ("pixcolor_unrefined", {"seed": 1, "refine": False})])
def test_pixcolor_methods_equal_colorize_of_each_image_alone(generated, split_dir, tiny_ckpt,
                                                             method, kw):
    """Drawn jointly for a batch of images and methods, a PixColor output is exactly what
    colorize gives for that image alone: a sample depends only on (seed, sample index,
    image). Exact in float32 here; NOTES.md: a batch's float32 reductions could flip a draw
    only within ~1e-6 of a CDF boundary, which these images do not meet."""
    runs, _ = generated
    model = PixColor.load(tiny_ckpt)
    for i in _ids(split_dir):
        gt = _png(runs, "gt", i)
        want = model.colorize([gt], num_samples=1, **kw)[0][0]
        np.testing.assert_array_equal(_png(runs, method, i), want)


def test_pixcolor_outputs_keep_the_inputs_luminance(generated, split_dir):
    runs, _ = generated
    for i in _ids(split_dir):
        got, gt = _png(runs, "pixcolor_s2", i), _png(runs, "gt", i)
        assert np.abs(rgb_luma(got) - rgb_luma(gt)).max() < 0.02  # uint8 rounding


def test_meta_records_the_checkpoint_seed_preset_and_provenance(generated, tiny_ckpt):
    runs, _ = generated
    meta = json.loads((runs / "pixcolor_s2" / "meta.json").read_text())
    for key in ("method", "checkpoint_sha256", "seed", "preset", "device", "wall_time_s",
                "software", "images_expected", "images_present", "sessions"):
        assert key in meta
    assert meta["seed"] == 2 and meta["preset"] == "tiny" and meta["images_present"] == N_IMAGES
    assert meta["checkpoint_sha256"] == PixColor.load(tiny_ckpt).checkpoint_sha256
    assert json.loads((runs / "gt" / "meta.json").read_text())["checkpoint_sha256"] is None


def test_the_runs_folder_holds_the_splits_manifest(generated, split_dir):
    runs, _ = generated
    assert (runs / "manifest.csv").read_text() == (split_dir / "manifest.csv").read_text()


def test_resume_after_interruption(split_dir, counting, tmp_path):
    runs = tmp_path / "runs"
    counting.interrupt_after = 2  # the second batch of two is interrupted
    with pytest.raises(KeyboardInterrupt):
        generate(split_dir, runs, ["counting"], batch_size=2)
    done = sorted(p.stem for p in (runs / "counting").glob("*.png"))
    assert done == sorted(counting.calls) and len(done) == 2
    mtimes = {p.name: p.stat().st_mtime_ns for p in (runs / "counting").glob("*.png")}
    counting.calls, counting.interrupt_after = [], None
    [rep] = generate(split_dir, runs, ["counting"], batch_size=2)
    assert sorted(counting.calls) == sorted(set(_ids(split_dir)) - set(done))  # no redo
    assert (rep.generated, rep.existing) == (N_IMAGES - 2, 2)
    assert {n: (runs / "counting" / n).stat().st_mtime_ns for n in mtimes} == mtimes
    meta = json.loads((runs / "counting" / "meta.json").read_text())
    assert meta["images_present"] == N_IMAGES and len(meta["sessions"]) == 2


def test_resume_pixcolor_skips_finished_images(split_dir, tiny_ckpt, tmp_path):
    runs, opts = tmp_path / "runs", MethodOptions(checkpoint=str(tiny_ckpt))
    generate(split_dir, runs, ["pixcolor_s1"], batch_size=8, options=opts)
    pngs = sorted((runs / "pixcolor_s1").glob("*.png"))
    for p in pngs[:2]:
        p.unlink()
    mtimes = {p.name: p.stat().st_mtime_ns for p in pngs[2:]}
    [rep] = generate(split_dir, runs, ["pixcolor_s1"], batch_size=8, options=opts)
    assert (rep.generated, rep.existing) == (2, N_IMAGES - 2)
    assert {p.name: p.stat().st_mtime_ns for p in pngs[2:]} == mtimes
    # Another checkpoint must not be mixed into the same folder.
    other = tmp_path / "other.pt"
    PixColor.from_preset("tiny").save(other, extra={"note": "different file"})
    [rep] = generate(split_dir, runs, ["pixcolor_s1"],
                     options=MethodOptions(checkpoint=str(other)))
    assert rep.status == "skipped" and "--overwrite" in rep.reason


def test_shards_cover_every_image_once(split_dir, counting, tmp_path, monkeypatch):
    runs, ids = tmp_path / "runs", _ids(split_dir)
    for i in range(3):
        generate(split_dir, runs, ["counting"], shard=(i, 3), batch_size=4)
    assert sorted(counting.calls) == sorted(ids)  # each image exactly once
    assert sorted(sum((shard_ids(ids, i, 3) for i in range(3)), [])) == sorted(ids)
    meta = json.loads((runs / "counting" / "meta.json").read_text())
    assert meta["images_present"] == N_IMAGES
    assert sorted(s["shard"] for s in meta["sessions"]) == ["0/3", "1/3", "2/3"]
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert parse_shard(None) == (1, 4) and parse_shard("2/5") == (2, 5)


def test_external_method_reports_missing_and_resizes(split_dir, tmp_path):
    ids, ext = _ids(split_dir), tmp_path / "mine"
    ext.mkdir()
    rng = np.random.default_rng(1)
    for k, i in enumerate(ids[1:]):  # ids[0] is missing
        size = (SIZE + 8, SIZE + 8) if k == 0 else (SIZE, SIZE)
        Image.fromarray(_photo(rng, *size)).save(ext / f"{i}.{'jpg' if k == 1 else 'png'}")
    runs = tmp_path / "runs"
    [rep] = generate(split_dir, runs, [f"external:mine={ext}"])
    assert rep.status == "incomplete" and [f["image_id"] for f in rep.failed] == [ids[0]]
    meta = json.loads((runs / "mine" / "meta.json").read_text())
    assert meta["missing"] == [ids[0]] and meta["failures"][0]["image_id"] == ids[0]
    assert [w["image_id"] for w in meta["warnings"]] == [ids[1]]
    assert np.asarray(Image.open(runs / "mine" / f"{ids[1]}.png")).shape == (SIZE, SIZE, 3)


def test_cli_run_end_to_end(tmp_path, fake_val, tiny_ckpt, capsys):
    val, list_file, _ = fake_val("ctest10k", 5, "flat", missing=(1,), corrupt=None)
    rc = main(["run", "--data", str(tmp_path / "data"), "--split", "ctest10k", "--list",
               str(list_file), "--imagenet-val", str(val), "--runs", str(tmp_path / "runs"),
               "--size", str(SIZE),
               "--methods", "gt,grayscale,gt28_unrefined,pixcolor_s1,pixcolor_best",
               "--checkpoint", str(tiny_ckpt), "--batch-size", "4", "--rank-samples", "2"])
    out = capsys.readouterr().out
    assert rc == 3  # one source missing
    assert "4 of 5 expected images usable (1 missing" in out
    assert "flask --app vtt_app" in out and "analysis/report.py" in out
    with open(tmp_path / "runs" / "ctest10k" / "metrics.csv", newline="") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"gt", "grayscale", "gt28_unrefined", "pixcolor_s1", "pixcolor_best"}
    assert all(int(r["n"]) == 4 for r in rows.values()) and "psnr" in rows["gt"]
    best = json.loads((tmp_path / "runs" / "ctest10k" / "pixcolor_best" / "meta.json").read_text())
    assert best["rank_samples"] == 2  # --rank-samples reaches the method


def test_baseline_methods_take_their_own_checkpoints(split_dir, tmp_path):
    baselines = pytest.importorskip("baselines")
    from baselines.base import save_inference_checkpoint

    path = tmp_path / "cic_tiny.pt"
    save_inference_checkpoint(baselines.create("cic", preset="tiny"), path)
    runs = tmp_path / "runs"
    [rep] = generate(split_dir, runs, ["cic"], options=MethodOptions(
        checkpoint="/not/for/baselines.pt", baseline_checkpoints={"cic": str(path)}))
    assert rep.status == "done" and rep.generated == N_IMAGES
    meta = json.loads((runs / "cic" / "meta.json").read_text())
    assert meta["preset"] == "tiny" and meta["checkpoint_sha256"]
    [rep] = generate(split_dir, runs, ["lrac"], options=MethodOptions(
        baseline_checkpoints={"lrac": str(tmp_path / "no.pt")}))
    assert rep.status == "skipped" and "no.pt" in rep.reason
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    reports = generate(split_dir, runs, ["ltbc", "pixcolor_s3"], options=MethodOptions(
        checkpoint=str(bad), baseline_checkpoints={"ltbc": str(bad)}))
    assert [r.status for r in reports] == ["skipped", "skipped"]  # reported, never raised
