"""The report's pass through the metrics cache: the one-pass evaluation's numbers bit for
bit (metrics, a/b histogram counts, mean a/b, sample pairs, skips in its order and words),
and only what is new computed: a report after one more method scores only that method's
images (and a sample's pairs), a changed PNG only itself, an unchanged folder nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis import evaluation_cache, report
from analysis.evaluate import evaluate_runs
from analysis.evaluation_cache import VECTORS_DIR, cached_evaluation
from analysis.lab_stats import AB_EDGES
from analysis.metrics_cache import CACHE_DIR
from analysis.synthetic import make_runs
from analysis.value_store import KEY_DTYPE, VectorStore

METRICS = ["psnr", "ssim", "colorfulness", "auc", "global_ab"]
SAMPLES = ("pixcolor_s1", "pixcolor_s2", "pixcolor_s3")
OPTIONS = {"ab_bins": AB_EDGES, "sample_prefix": "pixcolor_s",
           "ms_ssim_min_size": "upsample", "gt_method": "gt"}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """Four photos of 164 x 170 px (MS-SSIM without fallback), a non-sample and three
    samples, with the faults a report must report: a missing output, an unreadable one, a
    sample of another (small) size and a photo without its truth."""
    root = tmp_path_factory.mktemp("evaluation_cache") / "runs"
    make_runs(root, n_images=4, size=(164, 170), methods=("cic", *SAMPLES), seed=3)
    (root / "cic" / "img0003.png").unlink()
    (root / "pixcolor_s2" / "img0001.png").write_bytes(b"not a png")
    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(root / "pixcolor_s3" / "img0002.png")
    (root / "gt" / "img0000.png").unlink()
    return root


@pytest.fixture
def runs(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "runs", symlinks=True))


@pytest.fixture
def scored(monkeypatch) -> list[dict]:
    """Every scoring call's work: the outputs (method, image) it was asked to score and the
    sample pairs it computed (a pair with an unreadable sample is asked in every pass)."""
    calls: list[dict] = []
    real = evaluation_cache.score_images

    def spy(root, todos, **kw):
        found = real(root, todos, **kw)
        calls.append({"outputs": {(m, t.image_id) for t in todos for m, _ in t.methods},
                      "pairs": {(p.image_id, p.method_a, p.method_b) for p in found.pairs}})
        return found

    monkeypatch.setattr(evaluation_cache, "score_images", spy)
    return calls


def assert_same(got, want) -> None:
    """Every field the report reads, exactly."""
    pd.testing.assert_frame_equal(got.per_image, want.per_image, check_exact=True)
    pd.testing.assert_frame_equal(got.mean_ab, want.mean_ab, check_exact=True)
    pd.testing.assert_frame_equal(got.pairs, want.pairs, check_exact=True)
    assert got.skipped == want.skipped and got.pair_skips == want.pair_skips
    assert list(got.ab_counts) == list(want.ab_counts)
    for m, c in want.ab_counts.items():
        assert got.ab_counts[m].dtype == np.int64 and np.array_equal(got.ab_counts[m], c)
    assert np.array_equal(got.ab_edges, want.ab_edges)
    assert (got.methods, got.metrics, got.image_ids, got.not_computed) == (
        want.methods, want.metrics, want.image_ids, want.not_computed)


# outputs scored in every pass: those of the photo without truth (no cache key) and the
# unreadable one
ALWAYS = {(m, "img0000") for m in ("cic", *SAMPLES)} | {("pixcolor_s2", "img0001")}


def test_cached_values_are_the_one_pass_evaluations(runs, scored):
    want = evaluate_runs(runs, None, METRICS, **OPTIONS)
    assert len(want.pairs) and (want.pairs["fallback"] == "upsample").any()
    assert {s.metric for s in want.skipped} >= {"", "psnr"} and len(want.pair_skips) >= 3
    first = cached_evaluation(runs, None, METRICS, **OPTIONS, workers=2)
    assert_same(first, want)
    again = cached_evaluation(runs, None, METRICS, **OPTIONS)
    assert_same(again, want)
    assert scored[-1]["outputs"] == ALWAYS and not scored[-1]["pairs"]
    assert again.computed == len(ALWAYS) and again.computed_pairs == 0
    fresh = cached_evaluation(runs, None, METRICS, **OPTIONS, reuse=False)
    assert_same(fresh, want)
    assert fresh.computed == first.computed and fresh.computed_pairs == first.computed_pairs


def test_a_new_sample_computes_only_its_images_and_pairs(runs, scored, tmp_path):
    shutil.move(runs / "pixcolor_s3", tmp_path / "pixcolor_s3")
    cached_evaluation(runs, None, METRICS, **OPTIONS)
    shutil.move(tmp_path / "pixcolor_s3", runs / "pixcolor_s3")
    more = cached_evaluation(runs, None, METRICS, **OPTIONS)
    ids = [f"img{k:04d}" for k in range(4)]
    assert scored[-1]["outputs"] == ALWAYS | {("pixcolor_s3", i) for i in ids}
    # the new sample's pairs (none where its size differs or its partner does not load)
    assert scored[-1]["pairs"] == {(i, a, "pixcolor_s3") for i in ids if i != "img0002"
                                   for a in ("pixcolor_s1", "pixcolor_s2")} - {
        ("img0001", "pixcolor_s2", "pixcolor_s3")}
    assert_same(more, evaluate_runs(runs, None, METRICS, **OPTIONS))


def test_a_changed_png_is_computed_again_and_only_it(runs, scored):
    cached_evaluation(runs, None, METRICS, **OPTIONS)
    path = runs / "pixcolor_s1" / "img0003.png"
    Image.fromarray(255 - np.asarray(Image.open(path))).save(path)
    changed = cached_evaluation(runs, None, METRICS, **OPTIONS)
    assert scored[-1]["outputs"] == ALWAYS | {("pixcolor_s1", "img0003")}
    assert scored[-1]["pairs"] == {("img0003", "pixcolor_s1", s) for s in SAMPLES[1:]}
    assert_same(changed, evaluate_runs(runs, None, METRICS, **OPTIONS))


def test_a_report_after_one_more_method_scores_only_its_images(tmp_path, scored):
    root = tmp_path / "runs"
    ids = make_runs(root, n_images=3, size=(40, 48), methods=("cic", "pixcolor_s1",
                                                               "pixcolor_s2"), seed=1)
    shutil.move(root / "cic", tmp_path / "cic")

    def run(out: str, *extra: str) -> Path:
        assert report.main(["--runs", str(root), "--out", str(tmp_path / out),
                            "--n-resamples", "50", "--grid-images", "2", "--workers", "1",
                            "--no-progress", *extra]) == 0
        return tmp_path / out

    run("first")
    shutil.move(tmp_path / "cic", root / "cic")
    added = run("added")
    assert scored[-1] == {"outputs": {("cic", i) for i in ids}, "pairs": set()}
    unchanged = run("unchanged")
    assert len(scored) == 2  # nothing to compute: no scoring call
    again = run("recomputed", "--recompute")
    assert scored[-1]["outputs"] == {(m, i) for m in ("gt", "cic", "pixcolor_s1",
                                                      "pixcolor_s2") for i in ids}
    for name in ("metrics.csv", "metrics_per_image.csv", "skipped.csv", "lab_histograms.csv",
                 "diversity_pairs.csv", "global_colour_bands.csv"):
        text = (added / "tables" / name).read_text()
        assert (unchanged / "tables" / name).read_text() == text
        assert (again / "tables" / name).read_text() == text


def test_the_vector_store_keeps_the_latest_and_skips_a_damaged_file(tmp_path, caplog):
    keys = np.asarray([bytes([k]) * 64 for k in (3, 1, 2)], KEY_DTYPE)
    store = VectorStore(tmp_path)
    store.add("c", keys, np.arange(6, dtype=np.int64).reshape(3, 2))
    store.write("a")
    later = VectorStore(tmp_path)
    later.add("c", keys[:1], np.asarray([[7, 7]], np.int64))
    later.write("b")
    (tmp_path / "z-damaged.npz").write_bytes(b"not a zip")
    values, present = VectorStore(tmp_path).lookup(keys[::-1], "c", (2,), np.int64)
    assert present.all() and values.tolist() == [[4, 5], [2, 3], [7, 7]]
    assert "damaged" in caplog.text
    shape, _ = VectorStore(tmp_path).lookup(keys, "c", (3,), np.int64)
    assert not shape.any()  # another shape: nothing held
    compact = VectorStore(tmp_path)
    compact.add("d", keys[:1], np.ones((1, 2)))
    compact.write("c", compact=True)
    assert len([p for p in tmp_path.glob("*.npz") if "damaged" not in p.name]) == 1
    values, present = VectorStore(tmp_path).lookup(keys, "c", (2,), np.int64)
    assert present.all() and values[0].tolist() == [7, 7]


def test_the_cache_lives_in_the_runs_folder(runs):
    cached_evaluation(runs, None, METRICS, **OPTIONS)
    assert list((runs / CACHE_DIR / VECTORS_DIR).glob("*.npz"))
