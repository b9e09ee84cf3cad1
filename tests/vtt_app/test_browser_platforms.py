"""A Prolific-style and an MTurk-style sitting end to end in headless Chromium.

A small fake platform runs on another origin of the same host: it frames the MTurk study as
MTurk's worker site does (preview, then the accepted assignment), receives the HIT's
external submit, and is Prolific's completion URL. The app allows that origin through the
two test-only settings ``MTURK_SUBMIT_ORIGINS`` and ``MTURK_FRAME_ORIGINS`` (production
allows MTurk's own origins only).
"""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask, request
from sqlalchemy import select
from werkzeug.serving import make_server

from tests.vtt_app.helpers import add_study, make_app, make_runs
from tests.vtt_app.test_browser import _serve, _truth_slot, _wait_state
from vtt_app.db import get_session
from vtt_app.models import Rater

pytestmark = pytest.mark.browser


@pytest.fixture
def platform():
    """The fake platform: yields (base URL, what it received)."""
    got: dict[str, dict] = {}
    fake = Flask("platform")

    @fake.get("/hit")
    def hit():
        study = request.args["study"]
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in request.args.items()
                         if k != "study")
        return (f'<!doctype html><title>HIT</title><iframe id="task" width="1000" height="900" '
                f'src="{study}?{query}"></iframe>')

    @fake.post("/mturk/externalSubmit")
    def external_submit():
        got["mturk"] = dict(request.form)
        return "<p id='submitted'>HIT submitted</p>"

    @fake.get("/complete")
    def complete():
        got["prolific"] = dict(request.args)
        return "<p id='returned'>Back on Prolific</p>"

    server = make_server("127.0.0.1", 0, fake, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", got
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def live(tmp_path: Path, platform):
    base, _ = platform
    runs = make_runs(tmp_path / "runs", ["pixcolor_s1"], n_images=8, size=64)
    app = make_app(tmp_path / "inst", PROLIFIC_COMPLETION_URL=f"{base}/complete?cc=",
                   MTURK_SUBMIT_ORIGINS=(base,), MTURK_FRAME_ORIGINS=(base,))
    common = dict(images=4, practice=1, attention_images=2, attention_rate=0.0,
                  trials_per_rater=2, raters_per_pair=2)
    add_study(app, runs, ["pixcolor_s1"], name="pro", platform="prolific",
              require_external_id=True, completion_code="PROCODE1", **common)
    add_study(app, runs, ["pixcolor_s1"], name="turk", platform="mturk", **common)
    yield from _serve(app)


def _run_trials(app, frame) -> None:
    """Answer every trial of the sitting in ``frame`` (a page or an iframe) with clicks."""
    while _wait_state(frame, ["ready", "feedback"]) != "done-page":
        if frame.query_selector("body[data-state='feedback']"):
            frame.click("#go")
            continue
        truth = _truth_slot(app)
        frame.click("#go")
        frame.wait_for_selector("body[data-state='question']", state="attached")
        frame.click(f"#choose{truth}")


def test_prolific_sitting_returns_to_prolific_with_the_code(browser, live, platform):
    app, base = live
    plat, got = platform
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    page.set_default_timeout(20_000)
    page.goto(f"{base}/s/pro/?PROLIFIC_PID=p-browser&STUDY_ID=s1&SESSION_ID=x1")
    assert page.input_value("#external_id") == "p-browser"
    page.check("#consent")
    page.click("#agree")
    page.click("#start")
    page.wait_for_url("**/run")
    _run_trials(app, page)
    page.wait_for_url(f"{plat}/complete?cc=PROCODE1")  # the done page sends the rater back
    assert got["prolific"] == {"cc": "PROCODE1"}
    with app.app_context():
        rater = get_session().scalar(select(Rater).where(Rater.external_id == "p-browser"))
        assert rater.finished_at is not None and rater.platform_session_id == "x1"
    page.close()


def test_mturk_sitting_in_the_worker_sites_frame(browser, live, platform):
    app, base = live
    plat, got = platform
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    page.set_default_timeout(20_000)
    hit = f"{plat}/hit?study={quote(base + '/s/turk/', safe='')}&hitId=H1"
    page.goto(hit + "&assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE")  # a worker previews
    frame = page.frame_locator("#task")
    frame.locator("#preview").wait_for()
    assert frame.locator("#agree").count() == 0  # nothing can start
    page.goto(hit + f"&assignmentId=A-1&workerId=W-browser&turkSubmitTo={quote(plat)}")
    frame.locator("#consent").check()
    frame.locator("#agree").click()
    frame.locator("#start").click()
    task = next(f for f in page.frames if f.name == "task" or f.url.endswith("/run"))
    task.wait_for_url("**/run")
    _run_trials(app, task)
    task.click("#submit-hit")  # the HIT's external submit, from inside MTurk's frame
    frame.locator("#submitted").wait_for()
    assert got["mturk"]["assignmentId"] == "A-1"
    with app.app_context():
        rater = get_session().scalar(select(Rater).where(Rater.external_id == "W-browser"))
        assert got["mturk"]["completion_code"] == rater.completion_code
        assert rater.platform_study_id == "H1" and rater.turk_submit_to == plat
    page.close()
