"""analysis/report.py end to end on a generated runs folder and responses file."""

from __future__ import annotations

import html
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis import global_colour, report
from analysis.report_html import pick_grid_ids
from analysis.synthetic import make_responses, make_runs
from analysis.tables import to_markdown
from tests.analysis.latex_check import check_booktabs, compile_tables

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("cic", "pixcolor_s1", "pixcolor_s2")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    ids = make_runs(tmp / "runs", n_images=3, size=(40, 48), methods=METHODS, seed=1)
    (tmp / "runs" / "cic" / f"{ids[1]}.png").unlink()  # a missing image is reported
    rates = {"cic": 0.3, "pixcolor_s1": 0.35, "pixcolor_s2": 0.33}
    make_responses(ids, rates, n_raters=10, seed=2).to_csv(tmp / "responses.csv", index=False)
    return tmp


def _run(inputs: Path, out: str, responses: bool) -> Path:
    argv = ["--runs", str(inputs / "runs"), "--out", str(inputs / out), "--n-resamples", "200",
            "--grid-images", "2", "--workers", "1", "--no-progress"]
    if responses:
        argv += ["--responses", str(inputs / "responses.csv")]
    assert report.main(argv) == 0
    return inputs / out


@pytest.fixture(scope="module")
def full(inputs):
    return _run(inputs, "out_full", responses=True)


def test_report_end_to_end(full, capsys):
    html = (full / "report.html").read_text()
    for name in ["fig6_vtt", "fig7_ab_histograms", "fig7_histogram_intersection",
                 "fig8_ms_ssim_histogram", "fig8_example_pairs", "table3_grid"]:
        assert (full / "figures" / f"{name}.png").stat().st_size > 0
        assert (full / "figures" / f"{name}.pdf").stat().st_size > 0
    for name in ["metrics", "lab_histogram_intersection", "diversity_summary", "fig6_vtt",
                 "fig5_ablation", "vtt_exclusions", "vtt_scores", "vtt_invalid_reasons"]:
        assert (full / "tables" / f"{name}.csv").exists()
        assert (full / "tables" / f"{name}.md").read_text().startswith("| ")
    scores = pd.read_csv(full / "tables" / "vtt_scores.csv")
    assert {"cic", "pixcolor_s1", "pixcolor_oracle", "pixcolor_s* (pooled)"} <= set(
        scores["method"])
    assert ((scores["low"] <= scores["score"]) & (scores["score"] <= scores["high"])).all()
    metrics = pd.read_csv(full / "tables" / "metrics.csv").set_index("method")
    assert metrics.loc["cic", "n_skipped"] == 1 and metrics.loc["cic", "n"] == 2
    assert ("Global ab error (Lab units) (global_ab, lower is better): distance between the "
            "mean a, b of output and truth (global cast)") in html
    assert "Exclusion rules" in html and "rater_flagged = 1" in html
    assert "Leaderboard" in html and "not computed (no weights file" in html
    assert r"\toprule" in (full / "leaderboard" / "leaderboard.tex").read_text()
    assert "grid/pixcolor_s1/" in html and "&quot;seed&quot;: 0" in html
    pairs = pd.read_csv(full / "tables" / "diversity_pairs.csv")
    assert len(pairs) == 3 and (pairs["fallback"] == "upsample").all()  # 40x48 < 161 px
    assert (full / "settings.json").exists()
    # overall colour against grey: the same numbers as analysis.global_colour on the files
    assert "Overall colour against grey" in html
    bands = pd.read_csv(full / "tables" / "global_colour_bands.csv")
    pool = "pixcolor_s1+pixcolor_s2"
    direct = global_colour.report(full.parent / "runs", [*METHODS, pool], spreads=())
    want = global_colour.bands_table(direct, list(METHODS))
    assert list(bands.columns) == list(want.columns) and bands.iloc[-1]["photos"] == 2
    pd.testing.assert_frame_equal(bands, want, check_dtype=False, rtol=1e-6)
    samples = pd.read_csv(full / "tables" / "global_colour_samples.csv")
    assert samples["spread ratio"].iloc[0] == pytest.approx(
        direct["methods"][pool]["spread"]["ratio"], rel=1e-6)


def test_rerun_is_byte_stable(inputs, full):
    again = _run(inputs, "out_again", responses=False)  # no ratings: the other mode
    for name in ["fig7_ab_histograms.pdf", "table3_grid.pdf"]:
        assert (again / "figures" / name).read_bytes() == (full / "figures" / name).read_bytes()
    for name in ["fig7_ab_histograms.png", "fig8_ms_ssim_histogram.png"]:
        # Agg's antialiasing moved one pixel by 2 levels in about 1 run of 5 (the PDFs, drawn
        # from the same numbers, were identical): the pixels agree, not the bytes
        a, b = (np.asarray(Image.open(d / "figures" / name).convert("RGB"), np.int16)
                for d in (again, full))
        assert a.shape == b.shape and np.abs(a - b).max() <= 4
        assert (np.abs(a - b).max(-1) > 0).mean() < 1e-3
    assert (again / "tables" / "metrics.md").read_text() == (
        full / "tables" / "metrics.md").read_text()
    assert not (again / "figures" / "fig6_vtt.png").exists()
    assert "Visual Turing Test" not in (again / "report.html").read_text()


@pytest.mark.filterwarnings("ignore:'analysis.report' found in sys.modules:RuntimeWarning")
def test_script_and_module_entry_points(monkeypatch, capsys):
    # as a script from the project root (a fresh interpreter: checks the sys.path fix)
    res = subprocess.run([sys.executable, "analysis/report.py", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "--responses" in res.stdout
    # as ``python -m analysis.report`` (same code path as -m, in this interpreter)
    monkeypatch.setattr(sys, "argv", ["analysis.report", "--help"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("analysis.report", run_name="__main__", alter_sys=True)
    assert exc.value.code == 0
    assert "--responses" in capsys.readouterr().out


def test_grid_ids_seeded_and_markdown():
    ids = [f"i{k}" for k in range(20)]
    assert pick_grid_ids(ids, 5, 0) == pick_grid_ids(ids, 5, 0)
    assert pick_grid_ids(ids, 5, 0) != pick_grid_ids(ids, 5, 1)
    assert pick_grid_ids(ids, 50, 0) and len(pick_grid_ids(ids, 50, 0)) == 20
    md = to_markdown(pd.DataFrame({"a": [1.0, float("nan")], "b": ["x|y", "z"]}))
    assert md.splitlines()[2] == "| 1.0000 | x\\|y |"


def _visible(page: str) -> str:
    """The page's text without tags, scripts and styles."""
    return html.unescape(re.sub(r"<style>.*?</style>|<[^>]+>", " ", page, flags=re.S))


def test_report_opens_on_the_summary_and_the_leaderboard(full):
    page = (full / "report.html").read_text()
    first = page.index("<table")
    assert page[first:].startswith("<table class='leaderboard'>")
    assert page.index("<h2 id='summary'>Summary</h2>") < first < page.index(
        "<h2 id='leaderboard'>Leaderboard</h2>") + 200
    summary = _visible(page[:first])
    assert "Split runs: 3 photos" in summary and "methods: cic, pixcolor_s1, pixcolor_s2" \
        in summary
    assert "LPIPS (AlexNet): needs" in summary and "FID: needs" in summary
    assert "VTT fool rates from" in summary and "Fig. 7 histogram-intersection" in summary
    board = page[first:page.index("</table>", first)]
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", board.split("</thead>")[0])
    assert heads[:4] == ["Method", "VTT fool rate ↑", "VTT fool rate (paper)", "PSNR (dB) ↑"]
    # every automatic metric with its 95% interval under it; one best per column at least
    assert len(re.findall(r"<span class='ci'>\[[0-9.]+, [0-9.]+\]</span>", board)) >= 8
    assert "class='best'" in board and "29.2%" in board and "± 0.98" in board
    text = _visible(page[:page.index("<h2>Settings</h2>")])  # settings.json is shown as is
    for raw in (r"\bNone\b", r"\bnan\b", r"\bNaN\b", "psnr_n_identical", r"\d\.\d{4}\b"):
        assert not re.search(raw, text), (raw, re.search(raw, text))
    md = (full / "report.md").read_text().splitlines()
    table = [ln for ln in md if ln.startswith("|")]
    assert table[0].startswith("| Method | VTT fool rate ↑ | VTT fool rate (paper) | PSNR (dB)")
    assert re.match(r"\| cic \| [0-9.]+% ± [0-9.]+ \| 29\.2% ± 0\.98 \| (\*\*)?[0-9]+\.[0-9]{2}"
                    r"(\*\*)? \[", table[2]), table[2]
    assert md.index("## Summary") < md.index("## Leaderboard") < md.index(table[0])


def test_every_table_is_also_latex(full, tmp_path):
    texs = sorted([*(full / "tables").glob("*.tex"), *(full / "leaderboard").glob("*.tex")])
    mds = {p.stem for p in (full / "tables").glob("*.md")}
    assert {p.stem for p in texs} >= mds | {"leaderboard"}
    for p in texs:
        check_booktabs(p.read_text())
    metrics = (full / "tables" / "metrics.tex").read_text()
    assert "PSNR (dB)" in metrics and r"pixcolor\_s1" in metrics
    res = compile_tables(texs, tmp_path)
    if res is None:
        pytest.skip("no pdflatex here (the structure is checked above)")
    assert res.returncode == 0, res.stdout[-3000:]


def test_self_contained_report_links_no_local_file(inputs, capsys):
    argv = ["--runs", str(inputs / "runs"), "--out", str(inputs / "out_one"), "--n-resamples",
            "100", "--grid-images", "2", "--workers", "1", "--no-progress",
            "--responses", str(inputs / "responses.csv"), "--self-contained"]
    assert report.main(argv) == 0
    page = (inputs / "out_one" / "report.html").read_text()
    assert "self-contained, " in capsys.readouterr().out
    links = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]*)['"]""", page)
    assert links and all(u.startswith("data:image/") for u in links), [
        u[:40] for u in links if not u.startswith("data:")]
    assert len(re.findall(r"<img [^>]*src='data:image/jpeg", page)) >= 2 * len(METHODS)
    assert "url(" not in page


def test_report_of_an_export_without_answers_yet(inputs):
    """A study exported before anyone rated: the report is written and says so."""
    empty = pd.read_csv(inputs / "responses.csv").iloc[0:0]
    empty.to_csv(inputs / "responses_empty.csv", index=False)
    out = inputs / "out_empty"
    assert report.main(["--runs", str(inputs / "runs"), "--out", str(out), "--responses",
                        str(inputs / "responses_empty.csv"), "--n-resamples", "50",
                        "--grid-images", "2", "--workers", "1", "--no-progress"]) == 0
    assert (out / "report.html").is_file()
