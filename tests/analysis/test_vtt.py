"""VTT scores: bootstraps, exclusions, paired comparisons, oracle and ablation tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import vtt
from analysis.bootstrap import Group, bootstrap_means
from analysis.synthetic import make_responses


def answers_frame(y: np.ndarray, method: str = "m") -> pd.DataFrame:
    n = len(y)
    return pd.DataFrame({"rater_id": [f"r{i % 7}" for i in range(n)],
                         "image_id": [f"i{i // 5}" for i in range(n)], "method": method,
                         "chose_generated": y.astype(int), "kind": "test", "valid": 1})


def test_answer_bootstrap_agrees_with_scipy():
    y = (np.random.default_rng(11).random(400) < 0.3).astype(float)
    ours = vtt.vtt_scores(answers_frame(y), "answers", n_resamples=10000, seed=0).iloc[0]
    ref = stats.bootstrap((y,), np.mean, n_resamples=10000, method="percentile",
                          confidence_level=0.95, rng=np.random.default_rng(1))
    assert ours["score"] == pytest.approx(y.mean())
    # Monte Carlo error of a 2.5% percentile with 10,000 replicates is about 0.002 here.
    assert ours["low"] == pytest.approx(ref.confidence_interval.low, abs=0.006)
    assert ours["high"] == pytest.approx(ref.confidence_interval.high, abs=0.006)
    assert ours["n"] == 400


def test_general_values_use_index_resampling():
    y = np.random.default_rng(2).random(200)  # not 0/1: plain index bootstrap
    g = Group(y, np.zeros(200, np.int64), np.zeros(200, np.int64))
    boot = bootstrap_means([g], "answers", 4000, np.random.default_rng(0), 1, 1)[0]
    ref = stats.bootstrap((y,), np.mean, n_resamples=4000, method="percentile",
                          rng=np.random.default_rng(3)).confidence_interval
    lo, hi = np.percentile(boot, [2.5, 97.5])
    assert lo == pytest.approx(ref.low, abs=0.01) and hi == pytest.approx(ref.high, abs=0.01)


def test_bootstrap_is_seeded():
    r = make_responses([f"i{k}" for k in range(30)], n_raters=12, seed=1)
    a = vtt.vtt_scores(r, "raters_images", n_resamples=500, seed=3)
    b = vtt.vtt_scores(r, "raters_images", n_resamples=500, seed=3)
    c = vtt.vtt_scores(r, "raters_images", n_resamples=500, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["low"], c["low"])
    one = vtt.vtt_scores(r, "raters_images", n_resamples=500, seed=3, methods=["cic"])
    assert one.iloc[0]["low"] == a.set_index("method").loc["cic", "low"]  # per-method stream


def test_two_level_bootstrap_covers_simulated_effect():
    """Crossed rater and image effects: the two-level interval covers the true mean."""
    true = 0.35
    covered, width_two, width_ans = 0, [], []
    ids = [f"i{k}" for k in range(60)]
    for sim in range(30):
        r = make_responses(ids, {"m": true}, raters_per_image=5, n_raters=15, seed=100 + sim,
                           image_sd=0.15, rater_sd=0.08, oracle_rate=None)
        two = vtt.vtt_scores(r, "raters_images", n_resamples=600, seed=sim).iloc[0]
        ans = vtt.vtt_scores(r, "answers", n_resamples=600, seed=sim).iloc[0]
        covered += two["low"] <= true <= two["high"]
        width_two.append(two["high"] - two["low"])
        width_ans.append(ans["high"] - ans["low"])
    assert covered >= 26  # nominal 95% of 30 is 28.5
    assert np.mean(width_two) > 1.2 * np.mean(width_ans)  # answers ignore the clustering


def test_image_bootstrap_is_a_cluster_bootstrap():
    # every answer of an image is the same: the image bootstrap sees 40 clusters, not 200
    y = np.repeat((np.random.default_rng(0).random(40) < 0.4).astype(float), 5)
    df = answers_frame(y)
    img = vtt.vtt_scores(df, "images", n_resamples=3000, seed=0).iloc[0]
    ans = vtt.vtt_scores(df, "answers", n_resamples=3000, seed=0).iloc[0]
    assert (img["high"] - img["low"]) > 1.8 * (ans["high"] - ans["low"])


def test_exclusions_and_defaults():
    r = make_responses([f"i{k}" for k in range(10)], n_raters=10, seed=2)
    kept, log = vtt.apply_exclusions(r)
    assert set(kept["kind"]) == {"test"} and set(kept["stage"]) == {"main"}
    assert (kept["valid"] == 1).all() and (kept["rater_flagged"] == 0).all()
    assert log["remaining"].iloc[-1] == len(kept)
    # a rater who picks the fake on every attention check is dropped
    bad = r["rater_id"].iloc[0]
    r2 = r.copy()
    r2.loc[(r2["rater_id"] == bad) & (r2["kind"] == "attention"), ["chose_generated", "valid"]] = 1
    assert bad in set(vtt.apply_exclusions(r2)[0]["rater_id"])  # auto: the app's flag rules
    kept2, _ = vtt.apply_exclusions(r2.drop(columns=["rater_flagged"]))  # auto: derive
    assert bad not in set(kept2["rater_id"])
    strict = vtt.ExclusionRules(attention_min_accuracy=0.9)
    assert bad not in set(vtt.apply_exclusions(r2, strict)[0]["rater_id"])
    loose = vtt.ExclusionRules(attention_min_accuracy=None)
    assert bad in set(vtt.apply_exclusions(r2.drop(columns=["rater_flagged"]), loose)[0][
        "rater_id"])
    # optional columns missing, extra column present
    slim = r.drop(columns=["stage", "rater_flagged", "study", "response_ms"]).assign(extra=1)
    kept3, _ = vtt.apply_exclusions(slim)
    assert len(kept3) > 0 and "extra" in kept3
    assert any("flagged" in line for line in vtt.ExclusionRules().describe())
    with pytest.raises(vtt.ResponsesFormatError, match="chose_generated"):
        vtt.normalize_responses(r.drop(columns=["chose_generated"]))
    odd = r.head(3).astype({"chose_generated": object, "valid": object})
    odd.loc[odd.index[0], ["chose_generated", "valid"]] = [None, "true"]
    odd.loc[odd.index[1], ["chose_generated", "valid"]] = ["True", "False"]
    norm = vtt.normalize_responses(odd)
    assert list(norm["valid"])[:2] == [0, 0] and list(norm["chose_generated"])[:2] == [0, 1]
    with pytest.raises(vtt.ResponsesFormatError, match="valid"):
        vtt.normalize_responses(odd.assign(valid="maybe"))


def test_read_responses_csv(tmp_path):
    r = make_responses(["001", "002"], n_raters=8, seed=0)
    path = tmp_path / "responses.csv"
    r.to_csv(path, index=False)
    back = vtt.read_responses(path)
    assert set(back["image_id"]) == {"001", "002"}  # ids stay strings


def test_paired_comparison():
    ids = [f"i{k}" for k in range(80)]
    r = make_responses(ids, {"good": 0.45, "bad": 0.15}, n_raters=20, seed=5, oracle_rate=None)
    ab = vtt.paired_comparison(r, "good", "bad", "images", n_resamples=2000)
    assert ab["diff"] > 0.2 and ab["low"] > 0 and ab["p_a_beats_b"] > 0.99
    assert ab["n_images"] == 80 and 0.5 < ab["image_win_rate"] <= 1
    ba = vtt.paired_comparison(r, "bad", "good", "raters_images", n_resamples=2000)
    assert ba["diff"] == pytest.approx(-ab["diff"]) and ba["high"] < 0
    with pytest.raises(ValueError, match="share no"):
        vtt.paired_comparison(r.assign(image_id=np.where(r["method"] == "bad", "x",
                                                         r["image_id"])), "good", "bad")


def test_oracle_score_and_selection():
    ids = [f"i{k}" for k in range(20)]
    r = make_responses(ids, {"pixcolor_s1": 0.3, "pixcolor_s2": 0.3}, n_raters=10, seed=4,
                       oracle_rate=0.4)
    o = vtt.oracle_score(r, n_resamples=500)
    assert list(o["method"]) == [vtt.ORACLE_LABEL]
    orc = vtt.apply_exclusions(r, stage="oracle")[0]
    assert o.iloc[0]["n"] == len(orc) and o.iloc[0]["score"] == orc["chose_generated"].mean()
    sel = vtt.oracle_selection(r)
    assert len(sel) == 20 and set(sel["method"]) <= {"pixcolor_s1", "pixcolor_s2"}
    tie = pd.DataFrame({"rater_id": ["a", "b"], "image_id": "x", "kind": "test", "valid": 1,
                        "method": ["pixcolor_s2", "pixcolor_s1"], "chose_generated": [1, 1]})
    assert vtt.oracle_selection(tie).iloc[0]["method"] == "pixcolor_s1"
    assert vtt.oracle_score(r[r["stage"] == "main"], n_resamples=10).empty


def test_ablation_table_pools_seeds():
    ids = [f"i{k}" for k in range(15)]
    r = make_responses(ids, n_raters=12, seed=6, oracle_rate=None)
    long = vtt.ablation_table(r, n_resamples=300)
    assert list(zip(long["row"], long["column"], strict=True)) == list(vtt.ABLATION_LAYOUT)
    kept = vtt.apply_exclusions(r)[0]
    seeds = kept[kept["method"].str.startswith("pixcolor_s")]
    cell = long[(long["row"] == "Refined") & (long["column"] == "Sample")].iloc[0]
    assert cell["score"] == pytest.approx(seeds["chose_generated"].mean())
    assert cell["n"] == len(seeds) and cell["methods"] == "pixcolor_s1,pixcolor_s2,pixcolor_s3"
    wide = vtt.ablation_wide(long)
    assert list(wide.index) == ["Unrefined", "Refined"]
    assert list(wide.columns) == ["Sample", "GT 28x28"]
    assert wide.loc["Refined", "Sample"].endswith("]")
