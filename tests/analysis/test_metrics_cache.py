"""The metrics pass's per-image cache: keyed by the files' content and the metric's version,
so a new method, a changed PNG or a raised version computes only those values; shards and
their merge; unreadable images; the same numbers as the one-pass evaluation."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis import metrics_cache
from analysis.evaluate import evaluate_runs
from analysis.metrics import METRICS
from analysis.metrics_cache import CACHE_DIR, VALUES_DIR, metrics_pass
from analysis.synthetic import make_runs
from analysis.value_store import Block, ValueStore
from tests.analysis.test_leaderboard import weights, with_weights  # noqa: F401 (fixtures)

METRICS_USED = ("psnr", "ssim", "colorfulness", "auc", "global_ab", "delta_colorfulness")
FIRST = ["gt", "cic", "pixcolor_s1"]


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "demo"
    make_runs(root, n_images=5, size=(32, 36), methods=("cic", "pixcolor_s1", "grayscale"),
              seed=2)
    return root


@pytest.fixture
def planned(monkeypatch) -> list[set]:
    """Every pass's planned values, as {(method, image_id, metric)} per scoring call."""
    calls: list[set] = []
    real = metrics_cache.score_images

    def spy(root, todos, **kw):
        calls.append({(m, t.image_id, k) for t in todos for m, ks in t.methods for k in ks})
        return real(root, todos, **kw)

    monkeypatch.setattr(metrics_cache, "score_images", spy)
    return calls


def _ids(runs: Path) -> list[str]:
    return pd.read_csv(runs / "manifest.csv", dtype=str)["image_id"].tolist()


def _all(methods, ids, metrics=METRICS_USED) -> set:
    return {(m, i, k) for m in methods for i in ids for k in metrics}


def test_the_values_are_the_one_pass_evaluations(runs):
    mp = metrics_pass(runs, FIRST, METRICS_USED)
    ev = evaluate_runs(runs, FIRST, METRICS_USED)
    pd.testing.assert_frame_equal(mp.per_image, ev.per_image)  # same rows, order, numbers
    pd.testing.assert_frame_equal(mp.summary(), ev.summary(), check_like=True)
    again = metrics_pass(runs, FIRST, METRICS_USED)
    assert again.computed == 0 and sorted(again.reused) == sorted(FIRST)
    pd.testing.assert_frame_equal(again.per_image, mp.per_image)


def test_a_new_method_computes_only_its_images(runs, planned):
    first = metrics_pass(runs, FIRST, METRICS_USED)
    assert planned[-1] == _all(FIRST, _ids(runs))
    more = metrics_pass(runs, [*FIRST, "grayscale"], METRICS_USED)
    assert planned[-1] == _all(["grayscale"], _ids(runs))
    assert sorted(more.reused) == sorted(FIRST)
    fresh = metrics_pass(runs, [*FIRST, "grayscale"], METRICS_USED, reuse=False)
    pd.testing.assert_frame_equal(more.per_image, fresh.per_image)
    old = more.per_image[more.per_image["method"].isin(FIRST)].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, first.per_image)


def test_a_changed_png_recomputes_only_itself_and_a_changed_truth_its_photo(runs, planned):
    metrics_pass(runs, FIRST, METRICS_USED)
    path = runs / "cic" / "img0001.png"
    Image.fromarray(255 - np.asarray(Image.open(path))).save(path)
    metrics_pass(runs, FIRST, METRICS_USED)
    assert planned[-1] == _all(["cic"], ["img0001"])
    truth = runs / "gt" / "img0003.png"
    Image.fromarray(np.asarray(Image.open(truth))[::-1].copy()).save(truth)
    metrics_pass(runs, FIRST, METRICS_USED)
    assert planned[-1] == _all(FIRST, ["img0003"])
    assert len(planned) == 3


def test_a_raised_metric_version_recomputes_only_that_metric(runs, planned, monkeypatch):
    first = metrics_pass(runs, FIRST, METRICS_USED)
    monkeypatch.setitem(METRICS, "ssim", dataclasses.replace(METRICS["ssim"], version=2))
    again = metrics_pass(runs, FIRST, METRICS_USED)
    assert planned[-1] == _all(FIRST, _ids(runs), ["ssim"])
    pd.testing.assert_frame_equal(again.per_image, first.per_image)  # the same code here


def test_two_shards_and_a_merge_equal_one_pass(runs, tmp_path):
    whole = tmp_path / "whole"
    shutil.copytree(runs, whole)
    one = metrics_pass(whole, None, METRICS_USED)
    a = metrics_pass(runs, None, METRICS_USED, shard=(0, 2), workers=2)
    assert sorted(a.evaluation.image_ids) == _ids(runs)[0::2]
    early = metrics_pass(runs, None, METRICS_USED, compute=False)
    assert set(early.missing["image_id"]) == set(_ids(runs)[1::2])
    assert set(early.per_image["image_id"]) == set(_ids(runs)[0::2])
    b = metrics_pass(runs, None, METRICS_USED, shard=(1, 2))
    assert a.computed + b.computed == len(one.per_image) and a.fid is None
    parts = list((runs / CACHE_DIR / VALUES_DIR).glob("*.npz"))
    assert sorted(p.name.split("-")[1] for p in parts) == ["0", "1"]  # one file per shard
    merged = metrics_pass(runs, None, METRICS_USED, compute=False)
    assert merged.missing.empty and merged.computed == 0
    pd.testing.assert_frame_equal(merged.per_image, one.per_image)
    pd.testing.assert_frame_equal(merged.summary(), one.summary())
    assert (runs / metrics_cache.PER_IMAGE_FILE).read_text() == \
        (whole / metrics_cache.PER_IMAGE_FILE).read_text()


def test_a_corrupt_png_is_skipped_and_every_other_value_kept(runs, planned, caplog):
    (runs / "cic" / "img0002.png").write_bytes(b"not a png")
    first = metrics_pass(runs, FIRST, METRICS_USED)
    bad = [s for s in first.evaluation.skipped if not s.metric]
    assert [(s.method, s.image_id) for s in bad] == [("cic", "img0002")]
    assert "not an image file" in bad[0].reason and "cic/img0002" in caplog.text
    assert len(first.per_image) == 3 * 5 - 1
    assert first.summary().set_index("method").loc["cic", "n_skipped"] == 1
    again = metrics_pass(runs, FIRST, METRICS_USED)
    assert planned[-1] == _all(["cic"], ["img0002"])  # tried again; the rest is cached
    pd.testing.assert_frame_equal(again.per_image, first.per_image)
    shutil.copy(runs / "pixcolor_s1" / "img0002.png", runs / "cic" / "img0002.png")
    fixed = metrics_pass(runs, FIRST, METRICS_USED)
    assert planned[-1] == _all(["cic"], ["img0002"]) and len(fixed.per_image) == 15
    row = fixed.per_image.set_index(["method", "image_id"])
    assert row.loc[("cic", "img0002"), "psnr"] == row.loc[("pixcolor_s1", "img0002"), "psnr"]


def test_a_missing_truth_is_reported_and_never_cached(runs, planned):
    (runs / "gt" / "img0004.png").unlink()
    mp = metrics_pass(runs, ["cic"], ("psnr", "colorfulness"))
    row = mp.per_image.set_index("image_id").loc["img0004"]
    assert np.isnan(row["psnr"]) and row["colorfulness"] > 0
    assert [(s.method, s.image_id) for s in mp.evaluation.skipped] == [("gt", "img0004")]
    metrics_pass(runs, ["cic"], ("psnr", "colorfulness"))
    assert planned[-1] == _all(["cic"], ["img0004"], ("psnr", "colorfulness"))
    merged = metrics_pass(runs, ["cic"], ("psnr", "colorfulness"), compute=False)
    assert planned[-1] == _all(["cic"], ["img0004"], ("psnr", "colorfulness"))  # only it
    assert merged.missing.empty
    pd.testing.assert_frame_equal(merged.per_image, mp.per_image)


def test_the_store_keeps_cells_and_reasons_and_skips_a_damaged_file(tmp_path, caplog):
    keys = np.array([b"a" * 64, b"b" * 64], dtype="S64")
    store = ValueStore(tmp_path)
    store.add(Block(keys, ["m@v1"], np.array([[1.0], [np.nan]]), np.array([[True], [True]]),
                    {(1, 0): "too small"}))
    store.write("pass")
    store = ValueStore(tmp_path)
    store.add(Block(keys[:1], ["m@v2"], np.array([[2.0]]), np.array([[True]])))
    store.write("shard-0-of-2")
    (tmp_path / "broken.npz").write_bytes(b"no zip")
    got = ValueStore(tmp_path).lookup(np.array([b"b" * 64, b"c" * 64, b"a" * 64], "S64"),
                                      ["m@v1", "m@v2"])
    assert got.present.tolist() == [[True, False], [False, False], [True, True]]
    assert got.values[2].tolist() == [1.0, 2.0] and got.reasons == {(0, 0): "too small"}
    assert "broken.npz" in caplog.text
    compacted = ValueStore(tmp_path)
    compacted.write("pass", compact=True)
    assert len(list(tmp_path.glob("*.npz"))) == 2  # the damaged file is left alone
    again = ValueStore(tmp_path).lookup(keys, ["m@v1", "m@v2"])
    assert again.present.tolist() == [[True, True], [True, False]]
    assert again.reasons == {(1, 0): "too small"}


def test_lab_ab_of_every_colour_is_rgb_to_ab_bit_for_bit():
    from analysis.lab_stats import image_ab
    from pixcolor.color import rgb_to_ab

    v = np.arange(1 << 24, dtype=np.uint32)
    every = np.stack([v >> 16, (v >> 8) & 255, v & 255], -1).astype(np.uint8)
    for part in every.reshape(16, 1024, 1024, 3):  # 1M pixels each: the fast path
        assert np.array_equal(image_ab(part).view(np.uint32), rgb_to_ab(part).view(np.uint32))


def test_an_image_against_itself_scores_exactly_what_the_computation_gives(runs):
    from analysis.ssim import _ssim_cs, prepare_ssim, ssim_prepared

    img = np.asarray(Image.open(runs / "cic" / "img0000.png").convert("RGB"))
    m = prepare_ssim(img)
    assert ssim_prepared(m, m) == 1.0 == float(_ssim_cs(m, prepare_ssim(img))[0].mean())


@pytest.mark.usefixtures("with_weights", "one_torch_thread")
def test_shards_fill_fids_feature_cache_and_the_merge_computes_none(runs, monkeypatch):
    from analysis.fid_features import FeatureExtractor
    from analysis.fid_runs import FIDOptions

    fid = FIDOptions(n_resamples=5)
    for index in (0, 1):
        shard = metrics_pass(runs, None, ("psnr",), fid=fid, shard=(index, 2))
        assert shard.fid is None
    monkeypatch.setattr(FeatureExtractor, "__call__", lambda *a: pytest.fail("computed"))
    merged = metrics_pass(runs, None, ("psnr",), fid=fid, compute=False)
    assert merged.fid.computed == 3 and not merged.not_computed  # every method but gt
    assert merged.summary().set_index("method").loc["cic", "fid"] > 0
