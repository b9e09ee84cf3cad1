"""VTT security and bad input: 4xx with a message, stored data intact, no retakes, no escapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from tests.vtt_app.helpers import (
    CSRF,
    answer,
    good_answer,
    post_json,
    rater_client,
    run_sitting,
)
from vtt_app.db import get_engine, get_session
from vtt_app.models import Base, Rater, Response, TimingEvent, Trial
from vtt_app.study import StudyError, StudyOptions, create_study


def _snapshot(app) -> list[tuple]:
    with app.app_context():
        db = get_session()
        rows = [(r.id, r.trial_id, r.choice, r.valid, r.response_ms, r.onset_1_ms)
                for r in db.scalars(select(Response).order_by(Response.id))]
        rows += [(e.id, e.trial_id, e.kind, e.t_ms)
                 for e in db.scalars(select(TimingEvent).order_by(TimingEvent.id))]
        return rows


@pytest.mark.parametrize("body, field", [
    ("not json", "JSON object"),
    ({"choice": 3}, "choice"),
    ({"choice": True}, "choice"),
    ({"choice": "1"}, "choice"),
    ({"response_ms": -5}, "response_ms"),
    ({"onset_1": "soon"}, "onset_1"),
    ({"refresh_hz": None}, "refresh_hz"),
    ({"events": "many"}, "events"),
    ({"events": [{"kind": "explode", "t": 1}]}, "event"),
    ({"events": [{"kind": "blur", "t": 1, "slot": 7}]}, "slot"),
])  # fmt: skip
def test_malformed_answer_is_400_and_loses_nothing(app, client, body, field):
    nxt = post_json(client, "/api/s/s1/next").get_json()
    assert answer(client, nxt, 1).status_code == 200
    before = _snapshot(app)
    nxt = post_json(client, "/api/s/s1/next").get_json()
    payload = body if isinstance(body, str) else {**good_answer(1), **body}
    if isinstance(body, str):
        r = client.post(nxt["answer_url"], data=body, headers={"X-CSRF-Token": CSRF})
    else:
        r = post_json(client, nxt["answer_url"], payload)
    assert r.status_code == 400 and field in r.get_json()["error"]
    assert _snapshot(app) == before
    # The trial is still open and can be answered properly.
    assert answer(client, nxt, 2).get_json()["valid"] is True


def test_repeat_submission_is_idempotent(app, client):
    nxt = post_json(client, "/api/s/s1/next").get_json()
    first = answer(client, nxt, 1).get_json()
    before = _snapshot(app)
    again = post_json(client, nxt["answer_url"], good_answer(2, response_ms=1.0))
    assert again.status_code == 200
    assert again.get_json()["repeated"] is True and again.get_json()["valid"] == first["valid"]
    assert _snapshot(app) == before


def test_only_own_open_trial(app):
    alice = rater_client(app, "s1", "alice")
    bob = rater_client(app, "s1", "bob")
    nxt = post_json(alice, "/api/s/s1/next").get_json()
    assert post_json(bob, nxt["answer_url"], good_answer(1)).status_code == 404
    assert bob.get(nxt["images_url"]).status_code == 404
    assert post_json(app.test_client(), nxt["answer_url"], good_answer(1)).status_code in (
        401, 403)  # fmt: skip
    assert post_json(alice, "/api/trials/999/answer", good_answer(1)).status_code == 404
    assert alice.get(nxt["images_url"].replace("/images", "/image/1")).status_code == 404
    post_json(alice, nxt["answer_url"], good_answer(1))
    assert alice.get(nxt["images_url"]).status_code == 410  # answered: images gone
    fresh = rater_client(app, "s1", "carol")
    assert post_json(fresh, "/api/s/nope/next").status_code == 404


def test_csrf_is_required(app, client):
    nxt = client.post("/api/s/s1/next", json={})
    assert nxt.status_code == 403 and "CSRF" in nxt.get_json()["error"]
    other = app.test_client()
    other.set_cookie("vtt_bid", "x")
    assert other.post("/s/s1/consent", data={"consent": "yes"}).status_code == 403


def test_rater_cannot_retake(app):
    first = rater_client(app, "s1", "browser-a", external_id="worker-7")
    run_sitting(first, "s1")
    # Same browser: refused on the consent page and on the form.
    assert first.get("/s/s1/").status_code == 403
    r = first.post("/s/s1/consent", data={"consent": "yes", "csrf_token": CSRF})
    assert r.status_code == 403
    # Same platform id from another browser: refused.
    other = app.test_client()
    other.set_cookie("vtt_bid", "browser-b")
    with other.session_transaction() as s:
        s["csrf"] = CSRF
    r = other.post("/s/s1/consent",
                   data={"consent": "yes", "external_id": "worker-7", "csrf_token": CSRF})
    assert r.status_code == 403
    with app.app_context():
        assert len(get_session().scalars(select(Rater)).all()) == 1


def test_unfinished_sitting_resumes(app):
    client = rater_client(app, "s1", "browser-a", external_id="w1")
    nxt = post_json(client, "/api/s/s1/next").get_json()
    rater_client(app, "s1", "browser-a", external_id="w1")  # consents again: same rater
    with app.app_context():
        raters = get_session().scalars(select(Rater)).all()
        assert len(raters) == 1 and len(raters[0].token) >= 40  # unguessable
    assert post_json(client, "/api/s/s1/next").get_json()["trial_id"] == nxt["trial_id"]


def test_admin_is_not_reachable_by_raters(app, client):
    assert client.get("/admin/s/s1").status_code == 302
    assert client.get("/admin/s/s1/export.zip").status_code == 302
    assert client.get("/admin/s/s1", headers={"Authorization": "Bearer nope"}).status_code == 302
    assert client.post("/admin/s/s1/oracle", data={"csrf_token": CSRF}).status_code == 302


def test_names_cannot_escape_runs_folder(app, runs: Path, tmp_path: Path):
    with app.app_context():
        db = get_session()
        for bad in (["../cic"], ["cic/../../etc"], ["gt"]):
            with pytest.raises(StudyError):
                create_study(db, StudyOptions(name="bad", runs=runs, methods=bad), tmp_path)
        with pytest.raises(StudyError):
            create_study(db, StudyOptions(name="../x", runs=runs, methods=["cic"]), tmp_path)
        db.rollback()


def test_served_copies_are_checked_and_the_runs_folder_no_longer_matters(app, client, runs: Path):
    answer(client, post_json(client, "/api/s/s1/next").get_json(), 1)  # practice
    nxt = post_json(client, "/api/s/s1/next").get_json()
    for png in runs.glob("*/*.png"):  # rewriting the benchmark's files changes nothing shown
        png.write_bytes(b"\0")
    assert client.get(nxt["images_url"]).status_code == 200
    nxt = post_json(client, nxt["answer_url"], good_answer(1)).get_json()["next"]
    with app.app_context():
        path = Path(get_session().get(Trial, nxt["trial_id"]).served_2)
    path.write_bytes(path.read_bytes() + b"\0")  # a served copy changed: refused
    r = client.get(nxt["images_url"])
    assert r.status_code == 409 and "changed" in r.get_json()["error"]


SQLITE_ONLY = (
    "INSERT OR", "julianday", "strftime", "GLOB ", "ifnull(", "datetime(", "AUTOINCREMENT",
)  # fmt: skip


def test_portable_sql(app, runner):
    """No SQLite-only SQL: the schema compiles for PostgreSQL, the flow's SQL is plain."""
    for table in Base.metadata.sorted_tables:
        str(CreateTable(table).compile(dialect=postgresql.dialect()))
        for index in table.indexes:
            str(CreateIndex(index).compile(dialect=postgresql.dialect()))
    statements: list[str] = []
    with app.app_context():
        engine = get_engine()

    def log(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", log)
    try:
        run_sitting(rater_client(app, "s1", "b1"), "s1")
        runner.invoke(args=["export", "--study", "s1", "--out", "/dev/null/x"])
    finally:
        event.remove(engine, "before_cursor_execute", log)
    assert len(statements) > 20
    for s in statements:
        if s.startswith(("BEGIN", "PRAGMA")):  # connection set-up of the SQLite engine only
            continue
        assert not any(tok.lower() in s.lower() for tok in SQLITE_ONLY), s
