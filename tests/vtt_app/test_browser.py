"""VTT in real headless Chromium: consent, practice with feedback, trials, completion code.

Drives Debian's ``chromium`` (installed by ``scripts/install_browser.sh``, ``make browser``)
through Playwright's Python package with ``executable_path``; Playwright never downloads a
browser here. Without chromium these tests fail, unless ``PIXCOLOR_SKIP_BROWSER=1`` is set.
The app runs in a real threaded server on a free port with a SQLite file database.
"""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from tests.vtt_app.helpers import add_study, make_app, make_runs
from vtt_app.db import get_session
from vtt_app.models import Rater, Response, TimingEvent, Trial

pytestmark = pytest.mark.browser

def _serve(app):
    """Serve ``app`` on a free port in a thread; yields (app, base URL)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def live(tmp_path: Path):
    runs = make_runs(tmp_path / "runs", ["pixcolor_s1", "cic"], n_images=10, size=64)
    app = make_app(tmp_path / "inst")
    add_study(app, runs, ["pixcolor_s1", "cic"], name="web", images=5, practice=2,
              attention_images=2, attention_rate=0.34, trials_per_rater=3, raters_per_pair=1,
              attention_min_failures=1)
    yield from _serve(app)


def _truth_slot(app) -> int:
    """The slot with the ground truth of the (only) open trial, read from the database."""
    with app.app_context():
        trial = get_session().scalar(select(Trial).where(Trial.status == "open"))
        return 2 if trial.generated_first else 1


def _wait_state(page, states: list[str]) -> str:
    """Wait until the trial page is in one of ``states``, or on the done page ("done-page").

    CSS selectors only: the app's Content-Security-Policy forbids the string evaluation that
    ``wait_for_function`` relies on, so the tests see the page exactly as raters do.
    """
    from playwright.sync_api import Error as PlaywrightError

    selector = ", ".join([*(f"body[data-state='{s}']" for s in states), "#completion-code"])
    for _ in range(3):
        try:
            found = page.wait_for_selector(selector, state="attached")
            state = found.get_attribute("data-state")
            return state if state in states else "done-page"
        except PlaywrightError:  # the page navigated to the done page while we waited
            page.wait_for_load_state()
    raise AssertionError(f"page never reached {states}")


def _consented_page(browser, base: str, study: str, timeout_ms: int = 15_000, **kw):
    """A new page whose rater has consented to ``study``."""
    page = browser.new_page(**kw)
    page.set_default_timeout(timeout_ms)
    page.goto(f"{base}/s/{study}/")
    page.check("#consent")
    page.click("#agree")
    return page


def _wait_for(page, state: str) -> None:
    page.wait_for_selector(f"body[data-state='{state}']", state="attached")


def test_rater_sitting_in_chromium(browser, live, tmp_path: Path):
    app, base = live
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    page.set_default_timeout(15_000)
    page.goto(f"{base}/s/web/?worker_id=w-browser")
    page.check("#consent")
    page.click("#agree")
    page.wait_for_url("**/instructions")
    page.click("#start")
    page.wait_for_url("**/run")
    answered, n_practice_feedback = 0, 0
    keys = ["1", "ArrowRight", "button", "ArrowLeft", "2", "button"]
    while _wait_state(page, ["ready"]) != "done-page":
        truth = _truth_slot(app)
        if answered % 2:
            page.keyboard.press("Space")
        else:
            page.click("#go")
        _wait_for(page, "question")
        how = keys[answered % len(keys)]
        if how == "button":
            page.click(f"#choose{truth}")
        else:
            key = {1: ("1", "ArrowLeft"), 2: ("2", "ArrowRight")}[truth]
            page.keyboard.press(key[0] if how in "12" else key[1])
        answered += 1
        if _wait_state(page, ["ready", "feedback", "loading"]) == "feedback":
            assert page.inner_text("#feedback").startswith("Correct!")
            n_practice_feedback += 1
            page.keyboard.press("Space")
    code = page.inner_text("#completion-code").strip()
    page.close()

    assert answered == 2 + 3 + 1 and n_practice_feedback == 2
    with app.app_context():
        db = get_session()
        rater = db.scalar(select(Rater))
        assert rater.completion_code == code and rater.external_id == "w-browser"
        assert not rater.flagged
        rows = db.execute(select(Trial, Response).join(Response).order_by(Trial.seq)).all()
        assert [t.kind for t, _ in rows].count("practice") == 2
        assert {t.kind for t, _ in rows} == {"practice", "attention", "test"}
        for trial, resp in rows:
            frame = 1000.0 / resp.refresh_hz
            assert 20 <= resp.refresh_hz <= 500
            for onset, offset in ((resp.onset_1_ms, resp.offset_1_ms),
                                  (resp.onset_2_ms, resp.offset_2_ms)):
                assert abs((offset - onset) - 1000.0) <= frame + 0.25, (trial.seq, resp)
            assert resp.onset_2_ms >= resp.offset_1_ms - 0.25
            assert resp.valid, resp.invalid_reason
            assert not resp.chose_generated  # the test always picked the truth
            assert resp.window_w == 1024 and resp.window_h > 0 and resp.response_ms > 0
            assert abs(resp.frames_1 - 1000.0 / frame) <= 2
            kinds = {e.kind for e in db.scalars(
                select(TimingEvent).where(TimingEvent.trial_id == trial.id))}
            assert {"onset", "offset"} <= kinds
    out = tmp_path / "export"
    res = app.test_cli_runner().invoke(args=["export", "--study", "web", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with open(out / "responses.csv", newline="") as f:
        exported = list(csv.DictReader(f))
    assert len(exported) == 6 and all(r["valid"] == "1" for r in exported)
    for r in exported:
        assert abs(float(r["exposure_first_ms"]) - 1000) <= 1000 / float(r["refresh_hz"]) + 0.3


def test_hidden_tab_invalidates_trial(browser, live):
    app, base = live
    page = _consented_page(browser, base, "web")
    page.goto(f"{base}/s/web/run")
    _wait_for(page, "ready")
    page.click("#go")
    # Pretend the tab was hidden mid-presentation, as the visibilitychange event reports it.
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    _wait_for(page, "question")
    page.keyboard.press("1")
    _wait_for(page, "feedback")
    page.close()
    with app.app_context():
        resp = get_session().scalar(select(Response))
        assert resp.valid is False and resp.tab_hidden and "hidden" in resp.invalid_reason


@pytest.fixture
def live_large(tmp_path: Path):
    runs = make_runs(tmp_path / "runs", ["cic"], n_images=4, size=400)
    app = make_app(tmp_path / "inst")
    add_study(app, runs, ["cic"], name="big", images=3, practice=1, attention_images=1,
              attention_rate=0.0, trials_per_rater=2, raters_per_pair=1)
    yield from _serve(app)


@pytest.mark.parametrize("viewport,scaled", [((1280, 800), False), ((390, 844), True)])
def test_photos_shown_at_their_own_size_and_fit_a_phone(browser, live_large, viewport,
                                                        scaled):
    _app, base = live_large
    page = _consented_page(browser, base, "big",
                           viewport={"width": viewport[0], "height": viewport[1]})
    page.goto(f"{base}/s/big/run")
    _wait_for(page, "ready")
    box = page.locator("#stage").bounding_box()
    doc_w = page.evaluate("() => document.documentElement.scrollWidth")
    page.close()
    assert doc_w <= viewport[0]  # nothing overflows sideways
    left, right = box["x"], viewport[0] - box["x"] - box["width"]
    assert abs(left - right) <= 1  # centred
    if scaled:  # a 400-px photo on a 390-px phone: scaled down to fit, square kept
        assert box["width"] < 400 and abs(box["width"] - box["height"]) <= 1
    else:  # pixel for pixel, not blown up
        assert box["width"] == box["height"] == 400


def test_page_retries_a_busy_server(browser, live):
    _app, base = live
    page = _consented_page(browser, base, "web", timeout_ms=20_000)
    failed: dict[str, list[str]] = {"next": [], "images": []}

    def busy_once(kind):
        def handle(route):
            if not failed[kind]:
                failed[kind].append(route.request.url)
                route.fulfill(status=503, content_type="application/json",
                              body='{"error": "busy", "status": 503}')
            else:
                route.continue_()
        return handle

    page.route("**/next", busy_once("next"))
    page.route("**/images", busy_once("images"))
    page.goto(f"{base}/s/web/run")
    _wait_for(page, "ready")  # the first /next and images got a 503; the page tried again
    page.close()
    assert {k: len(v) for k, v in failed.items()} == {"next": 1, "images": 1}


def test_admin_page_does_not_scroll_sideways_on_a_phone(browser, live):
    """At 390 px the admin page's wide tables scroll inside their own boxes; the page does
    not scroll sideways."""
    _app, base = live
    _consented_page(browser, base, "web").close()  # a rater row in the raters table
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.set_default_timeout(15_000)
    page.goto(f"{base}/admin/login")
    page.fill("input[name=token]", "admin-token")
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/")
    page.goto(f"{base}/admin/s/web")
    page.wait_for_selector("h1")
    doc_w = page.evaluate("() => document.documentElement.scrollWidth")
    widest_table = max(t.bounding_box()["width"] for t in page.locator("table").all())
    page.close()
    assert doc_w <= 390 < widest_table, (doc_w, widest_table)
