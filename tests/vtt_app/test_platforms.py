"""Fielding a study on Prolific and MTurk, a required platform id, and the rater-level
quality checks."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from tests.vtt_app.helpers import (
    CSRF,
    add_study,
    chooser,
    make_app,
    make_runs,
    post_json,
    run_sitting,
)
from vtt_app.db import get_session
from vtt_app.export import export_study
from vtt_app.models import Rater, Study
from vtt_app.study import StudyError

PROLIFIC = "https://prolific.test/complete?cc="
SUBMIT = "https://www.mturk.com"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return make_runs(tmp_path / "runs", ["cic"], n_images=12)


@pytest.fixture
def app(tmp_path: Path, runs: Path):
    app = make_app(tmp_path / "inst", PROLIFIC_COMPLETION_URL=PROLIFIC)
    common = dict(images=6, practice=1, attention_images=4, attention_rate=0.5,
                  trials_per_rater=4, raters_per_pair=3)
    add_study(app, runs, ["cic"], name="pro", platform="prolific", require_external_id=True,
              completion_code="C0MPL3TE", screened_out_code="SCREENED", **common)
    add_study(app, runs, ["cic"], name="turk", platform="mturk", **common)
    add_study(app, runs, ["cic"], name="plain", **common)
    return app


def _client(app, query: str, study: str):
    """A browser that opens ``/s/<study>/?<query>`` and consents."""
    client = app.test_client()
    client.set_cookie(app.config["BROWSER_COOKIE"], f"bid-{abs(hash(query)) % 10**8}")
    with client.session_transaction() as s:
        s["csrf"] = CSRF
    page = client.get(f"/s/{study}/?{query}")
    return client, page


def _consent(client, study: str):
    return client.post(f"/s/{study}/consent", data={"consent": "yes", "csrf_token": CSRF})


def test_prolific_ids_are_recorded_and_the_rater_returns_with_the_study_code(app, tmp_path):
    client, page = _client(app, "PROLIFIC_PID=pid1&STUDY_ID=st9&SESSION_ID=se7", "pro")
    assert page.status_code == 200 and 'value="pid1" readonly' in page.get_data(as_text=True)
    assert _consent(client, "pro").status_code == 302
    run_sitting(client, "pro", chooser(app))  # attentive: always the real photo
    done = client.get("/s/pro/done").get_data(as_text=True)
    assert f'content="3;url={PROLIFIC}C0MPL3TE"' in done and "C0MPL3TE" in done
    # screened out by the attention checks: the second code
    cheat, _ = _client(app, "PROLIFIC_PID=pid2&STUDY_ID=st9&SESSION_ID=se8", "pro")
    _consent(cheat, "pro")
    run_sitting(cheat, "pro", chooser(app, lambda t: t.kind == "attention"))
    assert f"{PROLIFIC}SCREENED" in cheat.get("/s/pro/done").get_data(as_text=True)
    with app.app_context():
        db = get_session()
        study = db.query(Study).filter_by(name="pro").one()
        raters = {r.external_id: r for r in db.query(Rater).filter_by(study_id=study.id)}
        assert (raters["pid1"].platform_study_id, raters["pid1"].platform_session_id) == (
            "st9", "se7")
        assert raters["pid2"].flagged
        out = export_study(db, study, tmp_path / "export")[1]
    rows = {r["external_id"]: r for r in csv.DictReader(out.open())}
    assert rows["pid1"]["platform_code"] == "C0MPL3TE"
    assert rows["pid2"]["platform_code"] == "SCREENED"
    assert rows["pid1"]["platform_session_id"] == "se7"
    # each rater's own code stays in the export, and is the one its done page showed
    assert re.fullmatch(r"[0-9A-F]{10}", rows["pid1"]["completion_code"])
    assert rows["pid1"]["completion_code"] in done


def test_a_study_that_requires_a_platform_id_refuses_links_without_one(app):
    client, page = _client(app, "", "pro")
    assert page.status_code == 400 and "platform" in page.get_data(as_text=True)
    assert _consent(client, "pro").status_code == 400
    typed = client.post("/s/pro/consent", data={"consent": "yes", "csrf_token": CSRF,
                                                "external_id": "typed-by-hand"})
    assert typed.status_code == 400  # an id typed into the form does not count
    client, page = _client(app, "", "plain")  # a plain study takes anyone
    assert page.status_code == 200 and _consent(client, "plain").status_code == 302


def test_mturk_preview_shows_instructions_only_and_the_end_posts_to_external_submit(app):
    client, page = _client(app, "assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1", "turk")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="preview"' in html and "<form" not in html
    assert _consent(client, "turk").status_code == 400  # nothing can start in preview
    assert post_json(client, "/api/s/turk/next").status_code == 401
    query = f"assignmentId=A7&hitId=H1&workerId=W1&turkSubmitTo={SUBMIT}"
    client, page = _client(app, query, "turk")
    assert page.status_code == 200 and _consent(client, "turk").status_code == 302
    run_sitting(client, "turk", chooser(app))
    done = client.get("/s/turk/done").get_data(as_text=True)
    assert f'action="{SUBMIT}/mturk/externalSubmit"' in done
    assert 'name="assignmentId" value="A7"' in done


def test_turk_submit_to_must_be_an_mturk_origin(app):
    query = "assignmentId=A8&hitId=H1&workerId=W2&turkSubmitTo=https://evil.example"
    client, _ = _client(app, query, "turk")
    _consent(client, "turk")
    run_sitting(client, "turk", chooser(app))
    done = client.get("/s/turk/done").get_data(as_text=True)
    assert "evil.example" not in done and "externalSubmit" not in done


def test_only_mturk_studies_may_be_framed_and_only_by_mturk(app):
    turk = app.test_client().get("/s/turk/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE")
    csp = turk.headers["Content-Security-Policy"]
    assert "frame-ancestors https://worker.mturk.com" in csp
    assert "X-Frame-Options" not in turk.headers
    assert f"form-action 'self' {SUBMIT}" in csp
    for url in ("/s/plain/", "/s/pro/?PROLIFIC_PID=x", "/admin/login", "/"):
        r = app.test_client().get(url)
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], url
        assert r.headers["X-Frame-Options"] == "DENY", url


def test_platform_settings_are_checked_at_create_study(app, runs):
    with pytest.raises(StudyError, match="needs --completion-code"):
        add_study(app, runs, ["cic"], name="p2", platform="prolific", images=6, practice=1,
                  attention_rate=0.0)
    with pytest.raises(StudyError, match="unknown platform"):
        add_study(app, runs, ["cic"], name="p3", platform="mechanical", attention_rate=0.0)


def test_mturk_question_xml(app):
    cli = app.test_cli_runner()
    res = cli.invoke(args=["mturk-question", "--study", "turk", "--base-url",
                           "https://vtt.example.org/"])
    assert res.exit_code == 0, res.output
    assert "<ExternalURL>https://vtt.example.org/s/turk/</ExternalURL>" in res.output
    assert "ExternalQuestion.xsd" in res.output
    http = cli.invoke(args=["mturk-question", "--study", "turk", "--base-url", "http://x"])
    assert http.exit_code != 0 and "HTTPS" in http.output
    plain = cli.invoke(args=["mturk-question", "--study", "plain", "--base-url", "https://x"])
    assert plain.exit_code != 0 and "not an MTurk study" in plain.output


def test_a_rater_who_always_picks_the_real_photo_is_suspicious(tmp_path, runs):
    """Among raters who are right about 60% of the time, one who is always right over 30
    scored answers is marked suspicious in the export and the admin page."""
    big = make_runs(tmp_path / "big", ["cic", "lrac", "ltbc"], n_images=40, size=8)
    app = make_app(tmp_path / "inst2")
    add_study(app, big, ["cic", "lrac", "ltbc"], name="q", images=36, practice=0,
              attention_images=1, attention_rate=0.0, trials_per_rater=30, raters_per_pair=5)
    for k in range(5):
        client, _ = _client(app, f"worker_id=honest{k}", "q")
        _consent(client, "q")
        run_sitting(client, "q", chooser(app, lambda t: t.id % 5 < 2))  # fooled 40%
    client, _ = _client(app, "worker_id=oracle", "q")
    _consent(client, "q")
    run_sitting(client, "q", chooser(app))
    with app.app_context():
        db = get_session()
        out = export_study(db, db.query(Study).filter_by(name="q").one(), tmp_path / "e")[1]
    rows = {r["external_id"]: r for r in csv.DictReader(out.open())}
    assert rows["oracle"]["suspicious"] == "1"
    assert "far above" in rows["oracle"]["suspicious_reason"]
    assert all(rows[f"honest{k}"]["suspicious_reason"].count("far above") == 0 for k in range(5))
    admin = app.test_client()
    page = admin.get("/admin/s/q", headers={"Authorization": "Bearer admin-token"})
    html = page.get_data(as_text=True)
    assert "look suspicious" in html and "VTT without suspicious raters" in html
