"""VTT app: a rater's whole sitting, the commands, the export schema and the admin pages."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.vtt_app.helpers import (
    CSRF,
    add_study,
    answer,
    chooser,
    make_app,
    make_runs,
    post_json,
    rater_client,
    run_sitting,
)
from vtt_app.assignment import n_attention, sitting_length
from vtt_app.db import get_session
from vtt_app.export import RESPONSE_COLUMNS
from vtt_app.models import Assignment, Rater, Response, Study, Trial

METHODS = ["pixcolor_s1", "pixcolor_s2", "pixcolor_s3", "cic"]
#: Columns the analysis reads (plus timing) — the export contract.
REQUIRED = [
    "study", "stage", "rater_id", "image_id", "method", "generated_first", "chose_generated",
    "kind", "valid", "response_ms", "rater_flagged", "onset_first_ms", "offset_first_ms",
    "onset_second_ms", "offset_second_ms", "created_at",
]  # fmt: skip


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return make_runs(tmp_path / "runs" / "demo", METHODS, n_images=14)


@pytest.fixture
def app(tmp_path: Path, runs: Path):
    app = make_app(tmp_path / "instance")
    add_study(app, runs, METHODS, images=6, practice=2, attention_images=3,
              trials_per_rater=6, raters_per_pair=2, attention_min_failures=1)
    return app


def test_consent_instructions_run_and_done_pages(app):
    client = app.test_client()
    r = client.get("/s/s1/")
    assert r.status_code == 200 and b"true colours" in r.data
    assert "vtt_bid" in r.headers.get("Set-Cookie", "")
    with client.session_transaction() as s:
        token = s["csrf"]
    assert client.get("/s/s1/instructions").status_code == 401  # no consent yet
    r = client.post("/s/s1/consent", data={"consent": "yes", "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].endswith("/s/s1/instructions")
    assert b"Start" in client.get("/s/s1/instructions").data
    page = client.get("/s/s1/run")
    assert page.status_code == 200 and b"vtt.js" in page.data
    assert client.get("/s/s1/done").status_code == 302  # not finished yet


def test_consent_requires_the_box(app):
    client = app.test_client()
    client.get("/s/s1/")
    with client.session_transaction() as s:
        token = s["csrf"]
    assert client.post("/s/s1/consent", data={"csrf_token": token}).status_code == 400


def test_whole_sitting_plan_feedback_and_completion(app):
    client = rater_client(app, "s1", "browser-1", external_id="worker-1")
    log = run_sitting(client, "s1", chooser(app))
    with app.app_context():
        db = get_session()
        study = db.scalar(select(Study))
        rater = db.scalar(select(Rater))
        trials = db.scalars(select(Trial).order_by(Trial.seq)).all()
        kinds = [t.kind for t in trials]
        assert len(trials) == sitting_length(study) == 2 + 6 + n_attention(study)
        assert kinds[:2] == ["practice", "practice"]
        assert kinds.count("attention") == n_attention(study) == 1
        assert kinds.count("test") == 6
        assert len({t.image_id for t in trials}) == len(trials)
        assert rater.finished_at is not None and rater.completion_code
        assert not rater.flagged  # always chose the truth, attention check included
        done_slots = db.scalar(select(func.count()).where(Assignment.status == "done"))
        assert done_slots == 6
    # Practice answers come with feedback, scored ones without.
    for nxt, ans in log:
        assert ("correct" in ans) == nxt["practice"]
    r = client.get("/s/s1/done")
    assert r.status_code == 200 and rater.completion_code.encode() in r.data
    assert post_json(client, "/api/s/s1/next").get_json()["done"] is True


def test_practice_feedback_says_which_was_true(app):
    client = rater_client(app, "s1", "browser-2")
    nxt = post_json(client, "/api/s/s1/next").get_json()
    assert nxt["practice"]
    with app.app_context():
        trial = get_session().get(Trial, nxt["trial_id"])
        gt_slot = 2 if trial.generated_first else 1
    ans = answer(client, nxt, gt_slot).get_json()
    assert ans["correct"] is True and ans["true_slot"] == gt_slot


def test_images_preload_and_differ(app, runs: Path):
    client = rater_client(app, "s1", "browser-3")
    nxt = post_json(client, "/api/s/s1/next").get_json()
    both = client.get(nxt["images_url"])
    assert both.status_code == 200 and "no-store" in both.headers["Cache-Control"]
    n1 = int(both.headers["X-Image-Lengths"].split(",")[0])
    assert both.data[:n1] != both.data[n1:]
    assert "gt" not in nxt["images_url"] and "pixcolor" not in nxt["images_url"]


def test_cli_init_create_study_and_export(tmp_path: Path, runs: Path):
    app = make_app(tmp_path / "inst2")
    cli = app.test_cli_runner()
    assert "Initialised" in cli.invoke(args=["init-db"]).output
    res = cli.invoke(args=["create-study", "--name", "cli", "--runs", str(runs),
                           "--methods", ",".join(METHODS), "--images", "5", "--practice", "2",
                           "--raters-per-pair", "1", "--trials-per-rater", "4",
                           "--attention-images", "2"])  # fmt: skip
    # 1 check per rater (round(0.1 x 4)) but 2 failures needed: the rule could never fire
    assert res.exit_code != 0 and "can never flag anyone" in res.output, res.output
    assert "--attention-min-failures to 1" in res.output
    res = cli.invoke(args=["create-study", "--name", "cli", "--runs", str(runs),
                           "--methods", ",".join(METHODS), "--images", "5", "--practice", "2",
                           "--raters-per-pair", "1", "--trials-per-rater", "4",
                           "--attention-images", "2", "--attention-rate", "0.5"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "a rater answering at random is flagged with probability 0.25" in res.output
    bad = cli.invoke(args=["create-study", "--name", "cli", "--runs", str(runs),
                           "--methods", "cic"])  # fmt: skip
    assert bad.exit_code != 0 and "exists already" in bad.output
    missing = cli.invoke(args=["create-study", "--name", "x", "--runs", str(runs),
                               "--methods", "nope"])  # fmt: skip
    assert missing.exit_code != 0 and "not a folder" in missing.output
    run_sitting(rater_client(app, "cli", "b"), "cli", chooser(app))
    out = tmp_path / "export"
    res = cli.invoke(args=["export", "--study", "cli", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with open(out / "responses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert set(REQUIRED) <= set(rows[0]) and list(rows[0]) == RESPONSE_COLUMNS
    assert {r["kind"] for r in rows} == {"practice", "attention", "test"}
    for r in rows:
        assert r["study"] == "cli" and r["stage"] == "main"
        assert r["generated_first"] in "01" and r["chose_generated"] in "01"
        assert r["valid"] == "1" and r["rater_flagged"] == "0"
        assert float(r["offset_first_ms"]) - float(r["onset_first_ms"]) == pytest.approx(1000)
        assert r["created_at"].endswith("Z")
        if r["kind"] == "test":
            assert r["method"] in METHODS
    with open(out / "raters.csv", newline="") as f:
        raters = list(csv.DictReader(f))
    assert len(raters) == 1 and raters[0]["completion_code"] and raters[0]["n_test"] == "4"


def test_admin_progress_and_export_download(app):
    run_sitting(rater_client(app, "s1", "b1"), "s1")
    admin = app.test_client()
    assert admin.get("/admin/").status_code == 302  # to the login page
    with admin.session_transaction() as s:
        s["csrf"] = CSRF
    bad = admin.post("/admin/login", data={"token": "wrong", "csrf_token": CSRF})
    assert bad.status_code == 403
    ok = admin.post("/admin/login", data={"token": "admin-token", "csrf_token": CSRF})
    assert ok.status_code == 302
    page = admin.get("/admin/s/s1")
    assert page.status_code == 200
    for m in METHODS:
        assert m.encode() in page.data
    z = admin.get("/admin/s/s1/export.zip")
    assert z.status_code == 200
    with zipfile.ZipFile(io.BytesIO(z.data)) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("responses.csv").decode())))
        assert {"responses.csv", "raters.csv", "plan.json", "plan.md"} == set(zf.namelist())
    with app.app_context():
        assert len(rows) == get_session().scalar(select(func.count(Response.id)))
    bearer = app.test_client().get("/admin/s/s1",
                                   headers={"Authorization": "Bearer admin-token"})
    assert bearer.status_code == 200


def test_admin_closed_without_token(tmp_path: Path):
    app = make_app(tmp_path / "inst3", ADMIN_TOKEN="")
    assert app.test_client().get("/admin/").status_code == 403


def test_plain_flask_from_the_project_root_finds_the_vtt_app(tmp_path):
    """`flask run` with no --app, from the project root, reads .flaskenv (FLASK_APP=vtt_app)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("FLASK_APP", "FLASK_DEBUG")}
    env["VTT_INSTANCE_PATH"] = str(tmp_path / "instance")
    flask = Path(sys.executable).with_name("flask")
    res = subprocess.run([str(flask), "routes"], cwd=root, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "rater.consent" in res.stdout and "api.answer" in res.stdout
