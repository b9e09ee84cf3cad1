"""A protocol split's ground truth downstream: ``gt_protocol`` generated from its
``ground_truth/`` folder, split.json copied into the runs folder, and the metrics, the
leaderboard and the run comparing against it with the protocol's FID network; a split
without one keeps ``gt``."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analysis.leaderboard import LeaderboardOptions, build_leaderboard
from analysis.metrics_cache import metrics_pass
from analysis.report import build_parser, run_report
from analysis.runs import RunsFolder
from bench.__main__ import main
from bench.generate import generate
from bench.methods import DEFAULT_METHODS
from bench.methods.simple import NO_PROTOCOL_GT
from bench.metrics import fid_options
from bench.pipeline import SplitSource, build, default_methods, run
from bench.protocols import PROTOCOLS, build_protocol
from tests.fakes import fake_photo

NAME = "imagenet-val5k"
METRICS = ("psnr", "colorfulness")


def _imagenet(root: Path, n: int) -> None:
    root.mkdir(parents=True)
    for k in range(1, n + 1):
        img = fake_photo(np.random.default_rng(k), 30 + k, 44 - k)
        Image.fromarray(img).save(root / f"ILSVRC2012_val_{k:08d}.JPEG", quality=95)


@pytest.fixture(scope="module")
def protocol_run(tmp_path_factory):
    """A 3-image imagenet-val5k split at 32 px, run with gt, gt_protocol and grayscale;
    returns (data folder, runs folder of the split, the run's echoed lines)."""
    root = tmp_path_factory.mktemp("protocol")
    _imagenet(root / "val", 3)
    source = SplitSource(split=NAME, data=str(root / "data"))
    small = dataclasses.replace(PROTOCOLS[NAME], count=3, size=32)
    build_protocol(small, root / "val", source.folder)
    lines: list[str] = []
    summary = run(source, runs=str(root / "runs"), methods=["gt", "gt_protocol", "grayscale"],
                  echo=lines.append)
    assert summary.ok and [r.status for r in summary.reports] == ["done"] * 3
    return source.folder, root / "runs" / NAME, lines


@pytest.fixture(scope="module")
def plain_split(tmp_path_factory) -> Path:
    """A split of a photo folder, like the demo's: no protocol ground truth."""
    root = tmp_path_factory.mktemp("plain")
    (root / "photos").mkdir()
    for k in range(3):
        Image.fromarray(fake_photo(np.random.default_rng(k), 30, 36)).save(
            root / "photos" / f"p{k}.png")
    build("photos", root / "split", images=root / "photos", size=24)
    return root / "split"


def test_run_generates_the_protocol_truth_and_copies_split_json(protocol_run):
    split, runs_dir, lines = protocol_run
    assert (runs_dir / "split.json").read_bytes() == (split / "split.json").read_bytes()
    ids = [p.stem for p in sorted((split / "ground_truth").glob("*.png"))]
    assert len(ids) == 3
    for i in ids:
        np.testing.assert_array_equal(np.array(Image.open(runs_dir / "gt_protocol" / f"{i}.png")),
                                      np.array(Image.open(split / "ground_truth" / f"{i}.png")))
    meta = json.loads((runs_dir / "gt_protocol" / "meta.json").read_text())
    assert meta["round_trip"] == PROTOCOLS[NAME].gt_short
    runs = RunsFolder(runs_dir)
    assert runs.reference() == "gt_protocol" and runs.fid_variant() == "torchvision"
    assert runs.protocol()["name"] == NAME
    note = (f"reference: gt_protocol (the {NAME} protocol's ground truth: "
            f"{PROTOCOLS[NAME].gt_short}); FID network: torchvision")
    assert note in "\n".join(lines).splitlines()  # under the run's metrics table
    assert "--methods grayscale &&" in lines[-1]  # the VTT study leaves both truths out
    assert default_methods(split)[DEFAULT_METHODS.index("gt") + 1] == "gt_protocol"


def test_metrics_and_leaderboard_compare_against_the_protocol_truth(protocol_run, capsys):
    _, runs_dir, _ = protocol_run
    mp = metrics_pass(runs_dir, metrics=METRICS, fid=fid_options(None, runs_dir=runs_dir))
    assert mp.reference == "gt_protocol" and mp.fid.options.variant == "torchvision"
    psnr = mp.per_image.groupby("method")["psnr"].mean()
    assert np.isinf(psnr["gt_protocol"]) and np.isfinite(psnr["gt"])
    assert "FID network: torchvision" in mp.reference_line
    explicit = metrics_pass(runs_dir, metrics=METRICS, gt_method="gt")
    psnr = explicit.per_image.groupby("method")["psnr"].mean()
    assert np.isinf(psnr["gt"]) and np.isfinite(psnr["gt_protocol"])
    assert explicit.reference_line == ""
    board = build_leaderboard(runs_dir, LeaderboardOptions(metrics=METRICS, fid=None,
                                                           n_resamples=20))
    assert mp.reference_line.replace("torchvision", "none (no FID)") in board.notes
    assert board.cell("gt_protocol", "psnr")["reference"] and board.cell("gt", "psnr")["reference"]
    assert main(["leaderboard", "--runs", str(runs_dir), "--metrics", ",".join(METRICS),
                 "--n-resamples", "20", "--out", str(runs_dir.parent / "lb")]) == 0
    out = capsys.readouterr().out
    assert mp.reference_line in out


def test_a_split_without_protocol_truth_keeps_gt(plain_split, tmp_path):
    assert default_methods(plain_split) == DEFAULT_METHODS
    runs_dir = tmp_path / "runs" / "plain"
    reports = generate(plain_split, runs_dir, ["gt", "gt_protocol", "grayscale"],
                       echo=lambda line: None)
    status = {r.name: (r.status, r.reason) for r in reports}
    assert status["gt"][0] == "done" and status["grayscale"][0] == "done"
    assert status["gt_protocol"][0] == "skipped" and NO_PROTOCOL_GT in status["gt_protocol"][1]
    runs = RunsFolder(runs_dir)
    assert runs.reference() == "gt" and runs.fid_variant() == "fid"
    assert runs.protocol() is None
    mp = metrics_pass(runs_dir, metrics=METRICS)
    assert mp.reference == "gt" and mp.reference_line == ""
    assert np.isinf(mp.per_image.groupby("method")["psnr"].mean()["gt"])


def test_a_changed_or_missing_truth_fails_that_image(protocol_run, tmp_path):
    split = tmp_path / "split"
    shutil.copytree(protocol_run[0], split)
    pngs = sorted((split / "ground_truth").glob("*.png"))
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(pngs[0])
    pngs[1].unlink()
    lines: list[str] = []
    (rep,) = generate(split, tmp_path / "runs", ["gt_protocol"], echo=lines.append)
    assert rep.status == "incomplete" and rep.generated == 1
    why = {f["image_id"]: f["reason"] for f in rep.failed}
    assert str(pngs[0]) in why[pngs[0].stem] and "sha256" in why[pngs[0].stem]
    assert "missing" in why[pngs[1].stem]
    assert any(pngs[0].stem in line for line in lines)


def test_report_defaults_to_the_protocol_truth(protocol_run, tmp_path):
    _, runs_dir, _ = protocol_run
    out = tmp_path / "report"
    run_report(build_parser().parse_args(["--runs", str(runs_dir), "--out", str(out),
                                          "--metrics", ",".join(METRICS), "--no-progress",
                                          "--workers", "1", "--n-resamples", "20"]))
    assert json.loads((out / "settings.json").read_text())["gt_method"] == "gt_protocol"
    note = (f"reference: gt_protocol (the {NAME} protocol's ground truth: "
            f"{PROTOCOLS[NAME].gt_short}); FID network: torchvision")
    assert note in (out / "leaderboard" / "leaderboard.md").read_text()
