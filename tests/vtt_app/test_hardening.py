"""Bad input never gives a 500, exports are inert in spreadsheets, retakes are caught through
id variants, pages carry security headers, and the attention rule needs repeated failures."""

from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path

import pytest
from sqlalchemy import select

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
from vtt_app.db import get_session
from vtt_app.export import export_study, spreadsheet_safe
from vtt_app.ids import clean_external_id, external_key
from vtt_app.models import Rater, Study


@pytest.fixture
def app(tmp_path: Path):
    runs = make_runs(tmp_path / "runs", ["cic"], n_images=8)
    app = make_app(tmp_path / "inst")
    add_study(app, runs, ["cic"], images=4, practice=1, attention_images=2,
              attention_rate=0.0, trials_per_rater=3, raters_per_pair=2)
    return app


BAD_PARTS = ["0", "-1", "2", "3", str(2**63 - 1), str(2**63), str(2**70), "1e9", "%00",
             "x" * 300, "%E2%80%AE", "..%2F..%2Fetc"]
BAD_BODIES = [None, "", "[" * 5000, "{" * 5000, '{"choice": 1e999}', '"text"', "[]", "null",
              '{"choice": 1, "events": [' + "[" * 3000 + "]}", "\x00", '{"a":' * 2000]


def test_every_endpoint_answers_bad_input_with_4xx(app):
    """Fuzz: every route of the app with odd path parts, query strings and bodies."""
    alice = rater_client(app, "s1", "alice")
    nxt = post_json(alice, "/api/s/s1/next").get_json()
    real = {"study_name": "s1", "trial_id": str(nxt["trial_id"]), "slot": "1"}
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
    assert len(rules) >= 12
    seen = 0
    for rule in rules:
        args = sorted(rule.arguments)
        for values in itertools.product(*[[real[a], *BAD_PARTS] for a in args]) if args else [()]:
            url = rule.rule
            for a, v in zip(args, values, strict=True):
                url = url.replace(f"<{a}>", v)
                url = next((url.replace(m, v) for m in _placeholders(url, a)), url)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                for body in BAD_BODIES if method == "POST" else [None]:
                    r = alice.open(url + "?next=%0d%0aX:1&token=" + "%FF" * 3, method=method,
                                   data=body, content_type="application/json",
                                   headers={"X-CSRF-Token": CSRF})
                    assert r.status_code < 500, (method, url, (body or "")[:20], r.status_code)
                    seen += 1
    assert seen > 500
    # nothing the fuzzing did broke the rater's sitting
    assert post_json(alice, "/api/s/s1/next").status_code == 200


def _placeholders(url: str, name: str) -> list[str]:
    return re.findall(r"<[^<>]*:" + name + r">", url)


def test_consent_form_fuzz(app):
    client = app.test_client()
    client.set_cookie("vtt_bid", "fuzz")
    with client.session_transaction() as s:
        s["csrf"] = CSRF
    for ext in ["\x00", "=cmd|' /C calc'!A0", "a" * 5000, "\u202e", "\r\n", " "]:
        r = client.post("/s/s1/consent", data={"consent": "yes", "external_id": ext,
                                               "csrf_token": CSRF})
        assert r.status_code < 500, repr(ext)
    for raw in (b"%FF%FE", b"%ED%A0%80", b"\xff\xfe"):  # not UTF-8, a lone surrogate
        r = client.post("/s/s1/consent", data=b"consent=yes&csrf_token=" + CSRF.encode()
                        + b"&external_id=" + raw,
                        content_type="application/x-www-form-urlencoded")
        assert r.status_code < 500, raw


def test_external_ids_are_cleaned_and_compared_without_case_or_spaces():
    assert clean_external_id(" A\x00B\u200bC\n ") == "ABC"  # NUL, format and newline dropped
    assert clean_external_id("Ｗ１") == "W1"  # NFKC: full-width forms
    assert len(clean_external_id("x" * 500)) == 200
    assert external_key("RETAKE1") == external_key("retake1") == external_key("re take1")
    assert external_key("") is None and external_key(None) is None


def test_retake_with_an_id_variant_is_refused(app):
    first = rater_client(app, "s1", "browser-a", external_id="retake1")
    run_sitting(first, "s1")
    other = app.test_client()
    other.set_cookie("vtt_bid", "browser-b")
    with other.session_transaction() as s:
        s["csrf"] = CSRF
    r = other.post("/s/s1/consent", data={"consent": "yes", "external_id": " RETAKE1 ",
                                          "csrf_token": CSRF})
    assert r.status_code == 403
    with app.app_context():
        assert get_session().scalar(select(Rater.external_id)) == "retake1"


def test_an_id_from_the_link_is_locked(app):
    client = app.test_client()
    page = client.get("/s/s1/?PROLIFIC_PID=abc123")
    html = page.get_data(as_text=True)
    assert 'value="abc123" readonly' in html
    with client.session_transaction() as s:
        s["csrf"] = CSRF
    client.post("/s/s1/consent", data={"consent": "yes", "external_id": "someone-else",
                                       "csrf_token": CSRF})  # a tampered form
    with app.app_context():
        assert get_session().scalar(select(Rater.external_id)) == "abc123"
    assert 'readonly' not in app.test_client().get("/s/s1/").get_data(as_text=True)


def test_export_neutralises_spreadsheet_formulas(app, tmp_path):
    assert spreadsheet_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert spreadsheet_safe("-2+3") == "'-2+3" and spreadsheet_safe("@SUM") == "'@SUM"
    assert spreadsheet_safe("a\x00b") == "ab" and spreadsheet_safe("w-1") == "w-1"
    client = app.test_client()
    client.set_cookie("vtt_bid", "evil")
    with client.session_transaction() as s:
        s["csrf"] = CSRF
    client.post("/s/s1/consent", data={"consent": "yes", "external_id": "=1+1",
                                       "csrf_token": CSRF},
                headers={"User-Agent": "+cmd"})
    answer(client, post_json(client, "/api/s/s1/next").get_json(), 1)
    with app.app_context():
        db = get_session()
        responses, raters = export_study(db, db.scalar(select(Study)), tmp_path / "out")
    row = next(csv.DictReader(raters.open()))
    assert row["external_id"] == "'=1+1" and row["user_agent"] == "'+cmd"


def test_pages_carry_security_headers_and_https_cookies_are_secure(app):
    client = app.test_client()
    for url in ("/", "/s/s1/", "/admin/login"):
        h = client.get(url).headers
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"], url
        assert h["X-Frame-Options"] == "DENY" and h["X-Content-Type-Options"] == "nosniff"
    plain = rater_client(app, "s1", "plain")
    assert plain.get_cookie("session") is not None and not plain.get_cookie("session").secure
    https = app.test_client()
    r = https.get("/s/s1/", base_url="https://localhost")
    assert all("Secure" in c for c in r.headers.getlist("Set-Cookie"))
    with https.session_transaction(base_url="https://localhost") as s:
        s["csrf"] = CSRF
    r = https.post("/s/s1/consent", data={"consent": "yes", "csrf_token": CSRF},
                   base_url="https://localhost")
    assert r.status_code == 302
    assert all("Secure" in c for c in r.headers.getlist("Set-Cookie"))


def test_one_failed_attention_check_does_not_flag(tmp_path):
    runs = make_runs(tmp_path / "runs", ["cic"], n_images=12)
    app = make_app(tmp_path / "inst")
    add_study(app, runs, ["cic"], images=6, practice=0, attention_images=4, attention_rate=0.5,
              trials_per_rater=4, raters_per_pair=2, name="att")  # 2 checks planned
    failed = []

    def fail_first(trial):
        if trial.kind == "attention" and not failed:
            failed.append(trial.id)
            return True
        return False

    client = rater_client(app, "att", "one-slip")
    run_sitting(client, "att", chooser(app, fail_first))
    with app.app_context():
        assert len(failed) == 1  # 1 of 2 failed: 50% > 25%, but under the minimum of 2
        assert get_session().scalar(select(Rater.flagged)) is False


@pytest.mark.parametrize("n_images,practice,attention_images", [(10, 2, 2), (30, 3, 4)])
def test_consent_promises_what_the_sitting_delivers(tmp_path, n_images, practice,
                                                    attention_images):
    runs = make_runs(tmp_path / "runs", ["cic", "lrac"], n_images=n_images)
    app = make_app(tmp_path / "inst")
    add_study(app, runs, ["cic", "lrac"], images=n_images, practice=practice,
              attention_images=attention_images, attention_rate=0.1, trials_per_rater=50,
              attention_min_failures=1,
              raters_per_pair=3, name="small")
    client = app.test_client()
    html = client.get("/s/small/").get_data(as_text=True)
    promised = int(re.search(r"then\s+(\d+) trials", html).group(1))
    client = rater_client(app, "small", "alone")
    log = run_sitting(client, "small", chooser(app))  # always the truth: never flagged
    assert len(log) == practice + promised  # alone in the study: exactly as announced
    assert "ended-early" not in client.get("/s/small/done").get_data(as_text=True)
    # a later rater who finds the pairs already filled is told why the sitting was short
    add_study(app, runs, ["cic"], images=n_images, practice=practice,
              attention_images=attention_images, attention_rate=0.1, trials_per_rater=50,
              attention_min_failures=1,
              raters_per_pair=1, name="full")
    run_sitting(rater_client(app, "full", "first"), "full", chooser(app))
    late = rater_client(app, "full", "second")
    run_sitting(late, "full", chooser(app))
    assert "ended-early" in late.get("/s/full/done").get_data(as_text=True)


def test_a_transient_database_error_is_a_503_and_the_next_try_works(app, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import vtt_app.api as api

    client = rater_client(app, "s1", "b1")
    real, calls = api.next_trial, []

    def flaky(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return real(*args, **kw)

    monkeypatch.setattr(api, "next_trial", flaky)
    r = post_json(client, "/api/s/s1/next")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert "busy" in r.get_json()["error"]
    again = post_json(client, "/api/s/s1/next")
    assert again.status_code == 200 and not again.get_json()["done"]


def test_a_database_from_an_older_version_is_refused_with_what_to_do(tmp_path: Path):
    import sqlite3

    from vtt_app.db import SchemaError

    instance = tmp_path / "inst"
    make_app(instance)  # today's tables
    con = sqlite3.connect(instance / "vtt.sqlite")
    con.execute("ALTER TABLE pairs DROP COLUMN n_active")  # as an older version made it
    con.commit()
    con.close()
    with pytest.raises(SchemaError, match=r"'pairs' .* lacks column\(s\) n_active.*init-db"):
        make_app(instance)
