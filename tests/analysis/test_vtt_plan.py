"""VTT size planning: the planner's intervals are the analysis's, and its inputs are checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import vtt, vtt_plan
from analysis.vtt_plan import Model, predict, resolve_sizes, simulate_study

RATES = {"pixcolor": 0.33, "cic": 0.2, "ltbc": 0.25}


def test_intercept_gives_the_population_rate_and_moments_vanish_without_effects():
    a = vtt_plan.intercept(0.33, 1.2)
    z = np.random.default_rng(0).normal(0, 1.2, 400_000)
    assert (1 / (1 + np.exp(-(a + z)))).mean() == pytest.approx(0.33, abs=0.002)
    assert vtt_plan.moments(0.33, 0.0, 0.0) == pytest.approx((0.0, 0.0), abs=1e-12)
    img, rat = vtt_plan.moments(0.33, 0.5, 1.0)
    assert img > rat > 0  # the larger spread gives the larger covariance


def test_assignment_fills_every_pair_with_k_distinct_raters_as_the_app():
    sizes, _ = resolve_sizes(3, images=40, k=5, trials=20)
    rater, pair = vtt_plan.assign(sizes, np.random.default_rng(1))
    df = pd.DataFrame({"rater": rater, "pair": pair, "image": pair // 3})
    assert (df.groupby("pair")["rater"].nunique() == 5).all() and df["pair"].nunique() == 120
    assert not df.duplicated(["rater", "image"]).any()  # no rater sees a photo twice
    assert df.groupby("rater").size().max() <= 20
    assert df["rater"].nunique() <= sizes.raters + 2  # the last pairs may need a rater more


def test_simulated_export_is_read_by_the_analysis(tmp_path):
    sizes, _ = resolve_sizes(3, images=30, k=5)
    df = simulate_study(Model(RATES), sizes, np.random.default_rng(0))
    df.to_csv(tmp_path / "responses.csv", index=False)
    back = vtt.read_responses(tmp_path / "responses.csv")
    kept, log = vtt.apply_exclusions(back)
    assert len(kept) == len(df) == sizes.answers and log["excluded"].sum() == 0


def test_planned_halfwidth_agrees_with_the_analysis_of_a_simulated_study(tmp_path):
    """The planner's interval for a simulated study agrees with the interval the analysis
    computes on that study's simulated answers (within 10%)."""
    model = Model(RATES)
    sizes, _ = resolve_sizes(3, images=300, k=5)  # 90 raters x 50 trials
    planned = predict(model, sizes, n_studies=5, n_resamples=2000, seed=0).set_index("method")
    study = simulate_study(model, sizes, np.random.default_rng(2024))  # a fresh study
    study.to_csv(tmp_path / "responses.csv", index=False)
    scores = vtt.vtt_scores(vtt.read_responses(tmp_path / "responses.csv"), "raters_images",
                            n_resamples=4000, seed=7).set_index("method")
    observed = 50 * (scores["high"] - scores["low"])
    for m in RATES:
        assert planned.loc[m, "halfwidth"] == pytest.approx(observed[m], rel=0.10), m
        assert 100 * scores.loc[m, "score"] == pytest.approx(100 * RATES[m], abs=5)


def test_halfwidth_shrinks_as_one_over_sqrt_of_the_size():
    model = Model(RATES)
    small, _ = resolve_sizes(3, images=150, k=5)
    big, _ = resolve_sizes(3, images=300, k=5)
    assert big.raters == 2 * small.raters
    h_small = predict(model, small, n_studies=5, n_resamples=1000, seed=3)["halfwidth"]
    h_big = predict(model, big, n_studies=5, n_resamples=1000, seed=3)["halfwidth"]
    ratio = h_big / h_small
    # 1 / sqrt(2) = 0.707; over seeds 0-7 each method's ratio was 0.66-0.77
    assert ratio.between(0.62, 0.80).all() and ratio.mean() == pytest.approx(0.707, abs=0.05)


def test_search_meets_the_target():
    model = Model({"a": 0.3, "b": 0.45})
    sizes, table, trace = vtt_plan.search(model, 6.0, trials=20, images=40, n_studies=3,
                                          n_resamples=500)
    assert table["halfwidth"].max() <= 6.0 and len(trace) >= 2
    assert (sizes.images, sizes.raters) in [(i, r) for i, r, h in trace if h <= 6.0]


def test_pilot_recovers_rates_and_spreads(tmp_path):
    truth = Model(RATES, rater_sd=0.5, image_sd=1.0)
    sizes, _ = resolve_sizes(3, images=300, k=5)
    pilot = simulate_study(truth, sizes, np.random.default_rng(11))
    cheat = pilot[pilot["rater_id"] == "r00000"].assign(rater_id="flagged", chose_generated=1,
                                                         rater_flagged=1)
    noise = pilot.head(200).assign(valid=0, chose_generated=1)  # invalid: not counted
    path = tmp_path / "pilot.csv"
    pd.concat([pilot, cheat, noise]).to_csv(path, index=False)
    model, table = vtt_plan.estimate_from_pilot(vtt.read_responses(path))
    assert list(model.rates) == ["ltbc", "cic", "pixcolor"]  # display order
    clean = pilot.groupby("method")["chose_generated"].mean()
    for m, rate in RATES.items():
        assert model.rates[m] == pytest.approx(clean[m], abs=1e-12)  # the flagged are out
        assert model.rates[m] == pytest.approx(rate, abs=0.06), m
    assert model.image_sd == pytest.approx(1.0, abs=0.25)
    assert model.rater_sd == pytest.approx(0.5, abs=0.2)
    assert table["answers"].sum() == sizes.answers


def test_cli_prints_the_plan_and_the_rater_time(capsys):
    vtt_plan.main(["--rates", "pixcolor=0.33,cic=0.2", "--images", "60", "--studies", "2",
                   "--n-resamples", "200", "--seconds-per-trial", "6"])
    out = capsys.readouterr().out
    assert "derived --raters 12 = ceil(60 images x 2 methods x K 5 / 50 trials)" in out
    assert "pixcolor" in out and "cic" in out
    # 600 answers + 12 raters x (5 practice + 5 attention) = 720 trials of 6 s = 1.2 h
    assert "6.0 min per rater; 1.2 rater-hours in all" in out


def _cli_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        vtt_plan.main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, flag", [
    (["--rates", "pixcolor=1.3"], "--rates"),
    (["--rates", "pixcolor=0"], "--rates"),
    (["--rates", "pixcolor:0.3"], "--rates"),
    (["--rates", "gt=0.3"], "--rates"),
    (["--rates", "cic=0.2,cic=0.3"], "--rates"),
    (["--rates", "cic=0.2", "--raters", "10", "--images", "500", "--trials-per-rater", "50"],
     "--raters"),
    (["--rates", "cic=0.2", "--raters", "3", "--trials-per-rater", "50"], "--raters"),
    (["--rates", "cic=0.2", "--k", "0"], "--k"),
    (["--rates", "cic=0.2", "--rater-sd", "-1"], "--rater-sd"),
    (["--rates", "cic=0.2", "--target-halfwidth", "1", "--raters", "50"],
     "--target-halfwidth"),
    (["--images", "100"], "--rates"),
    (["--pilot", "does/not/exist.csv"], "--pilot"),
])
def test_bad_input_names_its_flag(capsys, argv, flag):
    assert flag in _cli_error(capsys, argv)


def test_unknown_method_in_rates_names_the_pilot_methods(capsys, tmp_path):
    sizes, _ = resolve_sizes(2, images=20, k=5)
    simulate_study(Model({"cic": 0.2, "ltbc": 0.3}), sizes, np.random.default_rng(0)).to_csv(
        tmp_path / "pilot.csv", index=False)
    err = _cli_error(capsys, ["--pilot", str(tmp_path / "pilot.csv"), "--rates", "pixcolr=0.3"])
    assert "--rates: unknown method(s) ['pixcolr']" in err and "'ltbc', 'cic'" in err


def test_cli_search_keeps_the_trials_per_rater(capsys):
    vtt_plan.main(["--rates", "a=0.3", "--target-halfwidth", "8", "--images", "20",
                   "--trials-per-rater", "30", "--studies", "2", "--search-resamples", "200"])
    out = capsys.readouterr().out
    assert "needed: about" in out and "search" in out and "200 resamples" in out
    assert "x 30 scored trials" in out  # the first guess (20 photos) did not cap it
