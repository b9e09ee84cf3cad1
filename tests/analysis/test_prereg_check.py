"""analysis/prereg_check.py: the report's comparison with the pre-registered plan."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from analysis import prereg_check as pc
from analysis import vtt
from analysis.vtt import ExclusionRules

RULES = {"require_valid": True, "exclude_flagged_raters": True,
         "attention_min_accuracy": "auto", "exclude_suspicious_raters": False,
         "min_response_ms": None, "max_response_ms": None,
         "main_kinds": ["test"], "oracle_kinds": ["oracle", "test"]}


def _plan() -> dict:
    """A plan as the VTT app freezes it (only the keys the check reads, plus some)."""
    return {
        "schema": 1, "study": "s1",
        "methods": [{"name": "gt", "role": "gt"}, {"name": "cic", "role": "method"},
                    {"name": "lrac", "role": "method"}],
        "images": {"test": [{"name": "a", "gt_sha256": "0" * 64, "methods": {}},
                            {"name": "b", "gt_sha256": "1" * 64, "methods": {}}],
                   "practice": [], "attention": []},
        "design": {"raters_per_pair": 2},
        "analysis": {"exclusion_rules": RULES,
                     "interval": {"method": "percentile bootstrap", "resample": "raters_images",
                                  "confidence": 0.95, "n_resamples": 10000, "seed": 0}},
    }


def _actual(**over) -> dict:
    """The report's defaults on answers that cover the plan, every pair with K raters."""
    full = {m: {"a": 2, "b": 2} for m in ("cic", "lrac")}
    out = {"exclusion_rules": ExclusionRules().as_dict(), "resample": "raters_images",
           "confidence": 0.95, "n_resamples": 10000, "seed": 0, "studies": ["s1"],
           "methods": ["cic", "lrac"], "images": ["a", "b"], "pair_raters": full}
    out.update(over)
    return out


def test_followed_plan_has_no_deviation():
    # ExclusionRules' tuples equal the plan's JSON lists
    assert pc.deviations(_plan(), _actual()) == []
    text = pc.summary("f" * 64, [], "f" * 64)
    assert text[-1] == f"The analysis followed the pre-registered plan (SHA-256 {'f' * 64})."
    assert "plan.md states the same hash" in text[0]
    assert pc.notes(_plan(), _actual()) == ["Every one of the plan's 4 pairs has K = 2 "
                                            "counted answers."]


@pytest.mark.parametrize(("over", "line"), [
    ({"resample": "answers"}, "resample: plan raters_images, report answers"),
    ({"confidence": 0.9}, "confidence: plan 0.95, report 0.9"),
    ({"n_resamples": 200}, "n_resamples: plan 10000, report 200"),
    ({"seed": 3}, "seed: plan 0, report 3"),
    ({"exclusion_rules": ExclusionRules(attention_min_accuracy=0.8).as_dict()},
     "exclusion rule attention_min_accuracy: plan auto, report 0.8"),
    ({"exclusion_rules": ExclusionRules(exclude_flagged_raters=False).as_dict()},
     "exclusion rule exclude_flagged_raters: plan True, report False"),
    ({"exclusion_rules": ExclusionRules(max_response_ms=5000.0).as_dict()},
     "exclusion rule max_response_ms: plan None, report 5000.0"),
    ({"studies": ["s2"]}, "study: plan s1, report s2"),
    ({"methods": ["cic"]}, "methods: plan cic, lrac, report cic (not analysed: lrac; not in "
                           "the plan: -)"),
    ({"methods": ["cic", "lrac", "x"]}, "methods: plan cic, lrac, report cic, lrac, x (not "
                                        "analysed: -; not in the plan: x)"),
    ({"images": ["a", "b", "zz"]}, "test photos: plan 2 photos, report 1 rated photos not in "
                                   "the plan, e.g. zz"),
    ({"pair_raters": {"cic": {"a": 3}}}, "raters per pair (K): plan 2, report up to 3"),
])
def test_each_deviation_is_reported(over, line):
    devs = pc.deviations(_plan(), _actual(**over))
    assert [pc.format_deviation(d) for d in devs] == [line]
    text = pc.summary("f" * 64, devs)
    assert "deviated from the pre-registered plan" in text[1] and text[2] == f"- {line}"
    assert not any("followed" in t for t in text)


def test_hash_mismatch_with_plan_md_is_a_deviation():
    devs = pc.deviations(_plan(), _actual(), sha="a" * 64, md_sha="b" * 64)
    assert pc.format_deviation(devs[0]) == (
        f"plan SHA-256 (plan.md against plan.json): plan {'b' * 64}, report {'a' * 64}")
    assert "the plan was changed after it was frozen" in pc.summary("a" * 64, devs, "b" * 64)[0]


def test_incomplete_study_is_noted_not_a_deviation():
    actual = _actual(pair_raters={"cic": {"a": 2, "b": 1}, "lrac": {"a": 2}})
    assert pc.deviations(_plan(), actual) == []
    assert pc.notes(_plan(), actual) == [
        "2 of the plan's 4 pairs have fewer than K = 2 counted answers (1 none): the study "
        "is not complete."]


def test_observed_counts_distinct_raters_per_pair():
    kept = pd.DataFrame({"study": ["s1"] * 4, "method": ["cic", "cic", "cic", "lrac"],
                         "image_id": ["a", "a", "b", "a"], "rater_id": ["r1", "r2", "r1", "r1"]})
    assert pc.observed(kept) == {"studies": ["s1"], "methods": ["cic", "lrac"],
                                 "images": ["a", "b"],
                                 "pair_raters": {"cic": {"a": 2, "b": 1}, "lrac": {"a": 1}}}


def test_find_read_and_check_plan_files(tmp_path):
    responses = tmp_path / "responses.csv"
    responses.write_text("x\n")
    assert pc.find_plan(None, str(responses)) is None
    with pytest.raises(FileNotFoundError, match="--plan"):
        pc.find_plan(str(tmp_path / "nope.json"), str(responses))
    data = json.dumps(_plan(), sort_keys=True, separators=(",", ":")).encode()
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "plan.json").write_bytes(data)
    assert pc.find_plan(None, str(responses)) == tmp_path / "plan.json"
    assert pc.read_plan(tmp_path / "plan.json") == (_plan(), sha, None)
    (tmp_path / "plan.md").write_text(f"# Plan\n\nPlan SHA-256: `{sha}`\n")
    res = pc.check(tmp_path / "plan.json", _actual())
    assert res["followed"] and res["md_sha256"] == sha and res["deviations"] == []
    # an edited plan.json no longer matches plan.md's hash
    (tmp_path / "plan.json").write_bytes(data.replace(b"raters_images", b"answers"))
    res = pc.check(tmp_path / "plan.json", _actual())
    assert not res["followed"]
    assert [d["setting"] for d in res["deviations"]] == [
        "plan SHA-256 (plan.md against plan.json)", "resample"]


def test_report_section_states_whether_the_plan_was_followed(tmp_path):
    """report.py's "Pre-registered plan" section, on synthetic answers next to a plan."""
    from analysis import report
    from analysis.synthetic import make_responses

    make_responses(["a", "b"], {"cic": 0.3, "lrac": 0.4}, raters_per_image=2, n_raters=6,
                   seed=1).to_csv(tmp_path / "responses.csv", index=False)
    plan = {**_plan(), "study": "synthetic"}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    argv = ["--runs", "r", "--out", "o", "--responses", str(tmp_path / "responses.csv")]
    responses = vtt.read_responses(tmp_path / "responses.csv")
    for extra, last in [([], "The analysis followed the pre-registered plan"),
                        (["--resample", "answers"], "- resample: plan raters_images, report "
                                                    "answers")]:
        args = report.build_parser().parse_args(argv + extra)
        settings: dict = {}
        section = report._plan_section(args, ExclusionRules(), responses, settings)
        assert section.title == "Pre-registered plan"
        assert any(t.startswith(last) for t in section.text), section.text
        assert settings["plan"]["followed"] == (not extra)
    (tmp_path / "plan.json").unlink()
    section = report._plan_section(args, ExclusionRules(), responses, {})
    assert section.text[0].startswith("No plan.json given")
