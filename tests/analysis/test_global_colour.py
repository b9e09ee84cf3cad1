"""analysis.global_colour: bands of a truth's distance from grey, simulated calibrated draws."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.evaluate import compute_metrics, evaluate_runs
from analysis.global_colour import (
    ab_arrays,
    calibrated_draws,
    grey_bands,
    main,
    mean_ab,
    report,
    sample_spread,
)
from analysis.lab_stats import image_ab
from analysis.synthetic import make_runs
from pixcolor.io import load_rgb


def test_calibrated_draws_of_gaussian_residuals_land_sqrt2_as_far_as_the_centre():
    # Truths spread isotropically around the centres: single draws of a calibrated sampler
    # lie sqrt(2) times as far from the truth as the centre (E|X - Y| / E|X| for two
    # independent 2-D Gaussians), and spread 0 is the centre itself.
    rng = np.random.default_rng(1)
    centre = rng.normal(0, 10, (6000, 2))
    truth = centre + rng.normal(0, 3, (6000, 2))
    grey = np.linalg.norm(truth, axis=1)
    cal = calibrated_draws(truth, centre, grey, spread=1.0, draws=20)
    assert cal["ratio"] / cal["centre_ratio"] == pytest.approx(np.sqrt(2), rel=0.02)
    half = calibrated_draws(truth, centre, grey, spread=0.5, draws=20)
    # |X - Y/2| for independent X, Y ~ N(0, s^2 I): Rayleigh with scale s*sqrt(1.25).
    assert half["ratio"] / half["centre_ratio"] == pytest.approx(np.sqrt(1.25), rel=0.02)
    none = calibrated_draws(truth, centre, grey, spread=0.0, draws=3)
    assert none["ratio"] == pytest.approx(none["centre_ratio"], rel=1e-12)
    assert none["worse_than_grey"] == none["centre_worse_than_grey"]


def test_calibrated_draws_never_give_a_photo_its_own_residual():
    truth = np.array([[1.0, 0.0], [0.0, 0.0]])
    centre = np.zeros((2, 2))
    grey = np.array([1.0, 0.5])
    # Photo 0 must take photo 1's residual (0, 0) and photo 1 photo 0's (1, 0): both land
    # 1 from their truth; with its own residual photo 0 would land on its truth.
    res = calibrated_draws(truth, centre, grey, draws=5)
    assert res["ratio"] == pytest.approx(1.0 / 0.75)
    assert res["worse_than_grey"] == 0.5
    with pytest.raises(ValueError, match="at least 2"):
        calibrated_draws(truth[:1], centre[:1], grey[:1])


def test_grey_bands_count_and_score_each_band():
    truth = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 8.0], [30.0, 0.0]])
    out = np.array([[4.0, 0.0], [2.0, 0.5], [0.0, 4.0], [0.0, 0.0]])
    grey = np.linalg.norm(truth, axis=1)
    rows = grey_bands(truth, out, grey, edges=(0, 3, 10, np.inf))
    assert [r["n"] for r in rows] == [2, 1, 1]
    assert rows[0]["worse_than_grey"] == 0.5  # 3 > 1 is worse, 0.5 < 2 is not
    assert rows[0]["error"] == pytest.approx(1.75)
    assert rows[0]["chroma"] == pytest.approx((4 + np.hypot(2, 0.5)) / 2)
    assert rows[1]["worse_than_grey"] == 0.0 and rows[1]["error"] == pytest.approx(4.0)
    assert rows[2]["worse_than_grey"] == 0.0  # ties with grey are not worse
    empty = grey_bands(truth, out, grey, edges=(100, 200))
    assert empty[0]["n"] == 0 and np.isnan(empty[0]["worse_than_grey"])


def test_report_on_a_runs_folder_agrees_with_the_benchmark_table(tmp_path):
    ids = make_runs(tmp_path, n_images=5, size=(24, 28), methods=("cic", "ltbc", "grayscale"))
    (tmp_path / "ltbc" / f"{ids[3]}.png").write_bytes(b"not a png")
    got_ids, ab, skipped = mean_ab(tmp_path, ["cic", "ltbc"])
    assert got_ids == [i for i in ids if i != ids[3]]
    assert [(s.method, s.image_id) for s in skipped] == [("ltbc", ids[3])]
    want = image_ab(load_rgb(tmp_path / "cic" / f"{ids[1]}.png")).reshape(-1, 2).mean(0, np.float64)
    np.testing.assert_allclose(ab["cic"][1], want, rtol=1e-12)
    res = report(tmp_path, ["cic", "ltbc"], spreads=(1.0, 0.0), draws=4)
    table = compute_metrics(tmp_path, ["cic", "grayscale"], metrics=("global_ab",),
                            image_ids=got_ids).set_index("method")
    d0 = res["methods"]["cic"]["draws"]["0.0"]
    assert d0["centre_ratio"] == pytest.approx(table.loc["cic", "global_ab_vs_grey"], rel=1e-5)
    assert d0["centre_worse_than_grey"] == pytest.approx(table.loc["cic", "worse_than_grey"])
    assert sum(b["n"] for b in res["methods"]["ltbc"]["bands"]) == len(got_ids)


def test_cli_prints_and_writes_json_and_names_a_missing_method(tmp_path, capsys):
    make_runs(tmp_path / "r", n_images=4, size=(16, 16), methods=("lrac", "grayscale"))
    out = tmp_path / "gc.json"
    assert main([str(tmp_path / "r"), "--methods", "lrac", "--draws", "3",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lrac:" in text and "spread x0.25" in text
    assert json.loads(out.read_text())["n"] == 4
    assert main([str(tmp_path / "r"), "--methods", "lrac,pixcolor_s1"]) == 2
    assert "pixcolor_s1" in capsys.readouterr().err


def test_sample_spread_is_one_for_a_calibrated_sampler_and_says_which_way_it_is_off():
    rng = np.random.default_rng(2)
    centre = rng.normal(0, 10, (20000, 2))
    truth = centre + rng.normal(0, 3, centre.shape)
    calibrated = [centre + rng.normal(0, 3, centre.shape) for _ in range(3)]
    res = sample_spread(truth, calibrated)
    assert res["ratio"] == pytest.approx(1.0, abs=0.02)
    # Rayleigh mean of the difference of two N(0, 9 I) draws: 3 * sqrt(2) * sqrt(pi / 2).
    assert res["between_samples"] == pytest.approx(3 * np.sqrt(np.pi), rel=0.02)
    narrow = [centre + rng.normal(0, 1, centre.shape) for _ in range(3)]
    assert sample_spread(truth, narrow)["ratio"] > 2
    wide = [centre + rng.normal(0, 9, centre.shape) for _ in range(3)]
    assert sample_spread(truth, wide)["ratio"] < 0.9
    with pytest.raises(ValueError, match="at least 2 samples"):
        sample_spread(truth, calibrated[:1])


def test_a_pooled_method_is_the_mean_of_its_parts_and_reports_their_spread(tmp_path, capsys):
    make_runs(tmp_path, n_images=4, size=(16, 20), methods=("cic", "lrac", "grayscale"))
    ids, ab, _ = mean_ab(tmp_path, ["cic+lrac"])
    np.testing.assert_allclose(ab["cic+lrac"], (ab["cic"] + ab["lrac"]) / 2, rtol=1e-12)
    res = report(tmp_path, ["cic+lrac", "cic"], spreads=(0.0,), draws=2)
    sp = res["methods"]["cic+lrac"]["spread"]
    assert sp == sample_spread(ab["gt"], [ab["cic"], ab["lrac"]])
    assert "spread" not in res["methods"]["cic"]
    assert main([str(tmp_path), "--methods", "cic+lrac", "--draws", "2"]) == 0
    assert "ratio" in capsys.readouterr().out


def test_the_metrics_pass_records_the_same_overall_colours_as_the_files_give(tmp_path):
    ids = make_runs(tmp_path, n_images=4, size=(16, 20), methods=("cic", "lrac", "grayscale"))
    (tmp_path / "lrac" / f"{ids[2]}.png").unlink()
    ev = evaluate_runs(tmp_path, ["gt", "cic", "lrac", "grayscale"], ["global_ab"])
    assert len(ev.mean_ab) == 15  # 4 photos x 4 methods, one missing
    got_ids, got = ab_arrays(ev.mean_ab, ["cic", "cic+lrac"])
    want_ids, want, _ = mean_ab(tmp_path, ["cic", "cic+lrac"])
    assert got_ids == want_ids == [i for i in ids if i != ids[2]]  # order kept, gap dropped
    for m in ("gt", "cic", "lrac", "grayscale", "cic+lrac"):
        np.testing.assert_allclose(got[m], want[m], rtol=1e-12)
    # no ab metric and no histograms: nothing recorded
    assert evaluate_runs(tmp_path, ["gt", "cic"], ["psnr"]).mean_ab.empty
