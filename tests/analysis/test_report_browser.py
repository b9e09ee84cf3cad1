"""The report as a person sees it: the demo split's report, with synthetic ratings, opened
from disk in headless Debian Chromium (``scripts/install_browser.sh``) through Playwright.

The runs folder is the real demo split (the 34 photos shipped with the package) with the
methods that need no trained network beyond the shipped baselines (gt, grayscale,
gt28_unrefined, cic, ltbc), so the page holds real photographs, real histograms and the
image grid; the ratings are :func:`analysis.synthetic.make_responses`'.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis import report
from analysis.synthetic import make_responses
from bench.methods import MethodOptions
from bench.pipeline import SplitSource, run

pytestmark = pytest.mark.browser

METHODS = ["gt", "grayscale", "gt28_unrefined", "cic", "ltbc"]


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report_browser")
    summary = run(SplitSource(split="demo", data=str(tmp / "data")), runs=str(tmp / "runs"),
                  methods=METHODS, options=MethodOptions(), fid_variant="none")
    runs = tmp / "runs" / summary.split.name
    ids = sorted(p.stem for p in (runs / "gt").glob("*.png"))
    make_responses(ids, {"cic": 0.3, "ltbc": 0.25, "gt28_unrefined": 0.45}, n_raters=30,
                   seed=3).to_csv(tmp / "responses.csv", index=False)
    out = tmp / "report"
    assert report.main(["--runs", str(runs), "--responses", str(tmp / "responses.csv"),
                        "--out", str(out), "--n-resamples", "200", "--workers", "1",
                        "--no-progress"]) == 0
    return out / "report.html"


def test_self_contained_report_opens_anywhere(browser, demo_report, tmp_path):
    """``--self-contained``: the one file, copied away from its folder, shows every image."""
    runs = demo_report.parents[1] / "runs" / "demo"
    out = tmp_path / "one"
    assert report.main(["--runs", str(runs), "--out", str(out), "--n-resamples", "50",
                        "--workers", "1", "--no-progress", "--self-contained"]) == 0
    alone = tmp_path / "elsewhere" / "report.html"
    alone.parent.mkdir()
    alone.write_bytes((out / "report.html").read_bytes())
    page, errors = _open(browser, alone, 1280)
    try:
        images = page.evaluate("Array.from(document.images).map(i => "
                               "[i.getAttribute('src').slice(0, 5), i.complete && "
                               "i.naturalWidth > 0])")
        assert len(images) > 20 and all(src == "data:" and ok for src, ok in images)
        assert errors == [] and _overflow(page) <= 0
    finally:
        page.close()


def _open(browser, path: Path, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors


def _overflow(page) -> int:
    """How many CSS pixels the page is wider than the window (0: no sideways scroll)."""
    return page.evaluate("document.documentElement.scrollWidth - "
                         "document.documentElement.clientWidth")


@pytest.mark.parametrize("width", [1280, 390])
def test_report_in_chromium(browser, demo_report, width):
    page, errors = _open(browser, demo_report, width)
    try:
        images = page.evaluate("Array.from(document.images).map(i => "
                               "[i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
        assert len(images) > 20  # figures and the grid's thumbnails
        assert [src for src, ok in images if not ok] == []
        assert errors == []
        assert _overflow(page) <= 0
        first = page.locator("table").first
        text = first.inner_text()
        heading = page.evaluate("""() => {
            let e = document.querySelector('table');
            while (e && !/^H[12]$/.test(e.tagName)) e = e.previousElementSibling || e.parentElement;
            return e ? e.textContent : ''; }""")
        assert heading == "Leaderboard" and "leaderboard" in first.get_attribute("class")
        for name in ("cic", "ltbc"):
            assert name in text
        assert "[" in text  # intervals
    finally:
        page.close()
