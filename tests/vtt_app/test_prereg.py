"""The pre-registered plan (vtt_app/prereg.py): frozen at create-study, exported with its hash,
checked by ``flask plan`` and by the report (analysis/prereg_check.py)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from analysis import prereg_check, report, vtt
from pixcolor.io import file_sha256
from tests.vtt_app.helpers import add_study, make_app, rater_client, run_sitting
from vtt_app import prereg
from vtt_app.assignment import n_attention
from vtt_app.db import get_session
from vtt_app.export import export_study
from vtt_app.models import Study


def _study(app: Flask) -> Study:
    return get_session().scalar(select(Study).where(Study.name == "s1"))


def test_plan_is_frozen_at_create_study_with_its_hashes(app: Flask, runs: Path):
    with app.app_context():
        study = _study(app)
        text = study.plan_json
        assert study.plan_sha256 == hashlib.sha256(text.encode()).hexdigest()
        plan = json.loads(text)
        assert text == json.dumps(plan, sort_keys=True, separators=(",", ":"))  # canonical
        assert text.isascii() and prereg.stored_plan(study) == plan
        assert plan["study"] == "s1" and plan["runs_dir"] == str(runs.resolve())
        assert plan["methods"] == [{"name": "gt", "role": "gt"},
                                   {"name": "cic", "role": "method"},
                                   {"name": "lrac", "role": "method"}]
        assert plan["design"]["raters_per_pair"] == 2 and plan["design"]["trials_per_rater"] == 3
        assert plan["design"]["practice"] == 1 and plan["design"]["exposure_ms"] == 1000
        assert plan["attention"]["checks_per_rater"] == n_attention(study) == 0
        assert plan["platform"] == {"platform": "", "require_external_id": False}
        assert plan["oracle_group"] == ["pixcolor_s1", "pixcolor_s2", "pixcolor_s3"]
    images = plan["images"]
    assert (len(images["test"]), len(images["practice"]), len(images["attention"])) == (4, 1, 2)
    for t in images["test"]:
        assert t["gt_sha256"] == file_sha256(runs / "gt" / f"{t['name']}.png")
        assert t["methods"] == {m: file_sha256(runs / m / f"{t['name']}.png")
                                for m in ("cic", "lrac")}
    for x in images["practice"] + images["attention"]:
        assert x["gt_sha256"] == file_sha256(runs / "gt" / f"{x['name']}.png")


def test_plan_analysis_is_the_reports_default():
    """ANALYSIS_PLAN restates analysis' defaults (the app cannot import analysis)."""
    plan = prereg.ANALYSIS_PLAN
    rules = {k: list(v) if isinstance(v, tuple) else v
             for k, v in vtt.ExclusionRules().as_dict().items()}
    assert plan["exclusion_rules"] == rules
    args = report.build_parser().parse_args(["--runs", "r", "--out", "o"])
    assert {k: plan["interval"][k] for k in ("resample", "confidence", "n_resamples", "seed")} \
        == {"resample": args.resample, "confidence": args.confidence,
            "n_resamples": args.n_resamples, "seed": args.seed}


def test_plan_leaves_out_the_completion_codes(app: Flask):
    with app.app_context():
        db = get_session()
        study = _study(app)
        study.completion_code, study.screened_out_code = "C0DE-DONE-777", "C0DE-OUT-888"
        study.platform, study.require_external_id = "prolific", True
        prereg.freeze(db, study)
        db.commit()
        plan = prereg.stored_plan(study)
        assert plan["platform"] == {"platform": "prolific", "require_external_id": True}
        assert "C0DE" not in study.plan_json and "completion_code" not in study.plan_json
        md = prereg.plan_files(study)["plan.md"].decode()
        assert "C0DE" not in md and "prolific, platform id required" in md


def test_export_writes_plan_json_with_the_stored_hash(app: Flask, tmp_path: Path):
    with app.app_context():
        study = _study(app)
        export_study(get_session(), study, tmp_path / "out")
        sha = study.plan_sha256
    data = (tmp_path / "out" / "plan.json").read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha  # what `sha256sum plan.json` prints
    md = (tmp_path / "out" / "plan.md").read_text()
    assert f"Plan SHA-256: `{sha}`" in md and "sha256sum plan.json" in md
    assert "| Raters per pair (K) | 2 |" in md and "4 test, 1 practice and 2 attention" in md
    z = app.test_client().get("/admin/s/s1/export.zip",
                              headers={"Authorization": "Bearer admin-token"})
    with zipfile.ZipFile(io.BytesIO(z.data)) as zf:
        assert zf.read("plan.json") == data and zf.read("plan.md").decode() == md


def test_plan_command_verifies_and_detects_tampering(app: Flask, runner, tmp_path: Path):
    res = runner.invoke(args=["plan", "--study", "s1"])
    assert res.exit_code == 0, res.output
    with app.app_context():
        sha = _study(app).plan_sha256
    assert "# Pre-registered plan of study `s1`" in res.output and sha in res.output
    res = runner.invoke(args=["plan", "--study", "s1", "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert hashlib.sha256((tmp_path / "p" / "plan.json").read_bytes()).hexdigest() == sha
    with app.app_context():  # the plan edited in the database
        db = get_session()
        study = _study(app)
        study.plan_json = study.plan_json.replace('"exposure_ms":1000', '"exposure_ms":500')
        db.commit()
    res = runner.invoke(args=["plan", "--study", "s1"])
    assert res.exit_code != 0 and "does not match its SHA-256" in res.output
    res = runner.invoke(args=["export", "--study", "s1", "--out", str(tmp_path / "x")])
    assert res.exit_code == 0 and "Warning: the plan of study 's1' does not match" in res.output
    with app.app_context():  # a study made before plans were frozen
        db = get_session()
        _study(app).plan_json = ""
        db.commit()
    res = runner.invoke(args=["plan", "--study", "s1"])
    assert res.exit_code != 0 and "has no pre-registered plan" in res.output


def test_report_checks_the_exported_plan(tmp_path: Path, runs: Path):
    """Answers of a finished study, exported, analysed with the plan's settings: followed;
    with another resample mode or an edited plan: the deviations are listed."""
    app = make_app(tmp_path / "inst2")
    add_study(app, runs, ["cic", "lrac"], name="s1", images=2, practice=1,
              attention_images=2, attention_rate=0.0, trials_per_rater=2, raters_per_pair=1)
    run_sitting(rater_client(app, "s1", "b1"), "s1")
    run_sitting(rater_client(app, "s1", "b2"), "s1")
    out = tmp_path / "export"
    with app.app_context():
        export_study(get_session(), _study(app), out)
    responses = vtt.read_responses(out / "responses.csv")
    kept, _ = vtt.apply_exclusions(responses, vtt.ExclusionRules(), "main")
    actual = {"exclusion_rules": vtt.ExclusionRules().as_dict(), "resample": "raters_images",
              "confidence": 0.95, "n_resamples": 10000, "seed": 0,
              **prereg_check.observed(kept)}
    path = prereg_check.find_plan(None, str(out / "responses.csv"))
    res = prereg_check.check(path, actual)
    assert res["followed"], res["text"]
    assert res["md_sha256"] == res["sha256"]
    assert "Every one of the plan's 4 pairs has K = 1 counted answers." in res["text"]
    res = prereg_check.check(path, {**actual, "resample": "answers"})
    assert res["text"][-2:] == ["- resample: plan raters_images, report answers",
                                "Every one of the plan's 4 pairs has K = 1 counted answers."]
    path.write_bytes(path.read_bytes().replace(b'"seed":0}', b'"seed":1}'))
    res = prereg_check.check(path, actual)
    assert [d["setting"] for d in res["deviations"]] == [
        "plan SHA-256 (plan.md against plan.json)", "seed"]
