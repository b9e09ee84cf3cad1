"""Display rules (analysis.display), LaTeX tables (analysis.latex, analysis.tables) and the
leaderboard's VTT column with the paper's numbers (analysis.leaderboard_vtt)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.display import COLUMNS, display_frame, display_of, format_interval, format_sd
from analysis.display import format_value as fmt
from analysis.latex import latex_escape, tabular
from analysis.leaderboard import CELL_COLUMNS, Column, Leaderboard, mark_best
from analysis.leaderboard_format import grid, to_html, to_latex, to_markdown
from analysis.leaderboard_vtt import answers_sd, paper_reference, with_vtt
from analysis.metrics import METRICS
from analysis.tables import vtt_table, write_table
from tests.analysis.latex_check import check_booktabs, compile_tables

# paper Fig. 6, as printed (percent): method -> (VTT, +-)
FIG6 = {"ltbc": (25.8, 0.97), "cic": (29.2, 0.98), "lrac": (30.9, 1.02),
        "pixcolor_s1": (33.3, 1.04), "pixcolor_s2": (35.4, 1.01), "pixcolor_s3": (33.2, 1.03),
        "pixcolor_oracle": (38.3, 0.98)}


def test_every_metric_and_set_level_column_has_a_display_rule():
    for name, spec in METRICS.items():
        assert spec.display is not None and spec.display.label != name, name
    for name in ("fid", "fid_torchvision", "colorfulness_gap", "colorfulness_gap_abs", "vtt"):
        assert name in COLUMNS and display_of(name).label != name
    assert display_of("psnr").label == "PSNR (dB)" and display_of("vtt").percent


def test_numbers_are_formatted_per_metric():
    assert fmt("psnr", 23.3614) == "23.36" and fmt("ssim", 0.90994) == "0.910"
    assert format_interval("psnr", 23.3614, 21.31, 25.561) == "23.36 [21.31, 25.56]"
    assert format_interval("vtt", 0.612, 0.55, 0.6712) == "61.2% [55.0, 67.1]"
    assert format_sd("vtt", 0.333, 0.0104, 2) == "33.3% ± 1.04"
    assert fmt("n", 34.0) == "34" and fmt("psnr_n_identical", 0.0) == "0"
    assert fmt("worse_than_grey", 0.4706) == "47.1%"
    assert fmt("psnr", math.inf) == "∞" and format_interval("psnr", math.inf, 1, 2) == "∞"
    assert fmt("psnr", float("nan")) == fmt("psnr", None) == "–"
    assert fmt("global_ab", -0.0001) == "0.00"  # no "-0.00"
    raw = pd.DataFrame({"method": ["cic", None], "n": [34, 33], "psnr": [23.3614, np.nan],
                        "psnr_n_identical": [0, 2], "vtt": [0.3333, 0.25],
                        "pixcolor_s1": [0.5, 0.25]})
    shown = display_frame(raw)
    assert list(shown.columns) == ["Method", "Photos", "PSNR (dB)",
                                   "Identical to truth (PSNR ∞)", "VTT fool rate",
                                   "pixcolor_s1"]  # unknown columns keep their name
    assert shown.iloc[0].tolist() == ["cic", "34", "23.36", "0", "33.3%", "0.500"]
    assert "None" not in shown.to_string() and "nan" not in shown.to_string()


def test_latex_escape_and_tables_are_well_formed(tmp_path):
    assert latex_escape("a_b & 50% #1 {x} ± ∞") == \
        r"a\_b \& 50\% \#1 \{x\} $\pm$ $\infty$"
    df = pd.DataFrame({"method": ["pixcolor_s1", "a&b #1"], "psnr": [23.3614, 20.0],
                       "worse_than_grey": [0.5, 0.25], "n": [34, 3]})
    paths = write_table(df, tmp_path, "demo_table")
    tex = paths[2].read_text()
    assert check_booktabs(tex) == 2
    assert r"pixcolor\_s1 & 23.36 & 50.0\% & 34 \\" in tex and r"a\&b \#1" in tex
    assert r"\begin{tabular}{lrrr}" in tex and "PSNR (dB)" in tex
    assert paths[1].read_text().startswith("| Method | PSNR (dB) |")
    with pytest.raises(ValueError):
        tabular(["a", "b"], [["1"]])


def _board() -> Leaderboard:
    """Two methods, PSNR and SSIM."""
    cells = [{"method": m, "metric": k, "mean": v, "low": v - 1e-3, "high": v + 1e-3, "n": 5,
              "best": False, "reference": m == "gt"}
             for m, k, v in [("ltbc", "psnr", 23.3614), ("pixcolor_s1", "psnr", 21.0),
                             ("gt", "psnr", math.inf), ("ltbc", "ssim", 0.91),
                             ("pixcolor_s1", "ssim", 0.88), ("gt", "ssim", 1.0)]]
    cols = [Column("psnr", True, "PSNR"), Column("ssim", True, "SSIM")]
    frame = mark_best(pd.DataFrame(cells, columns=CELL_COLUMNS), cols)
    return Leaderboard("demo", ["ltbc", "pixcolor_s1", "gt"], cols, frame)


def _scores() -> pd.DataFrame:
    rows = [("ltbc", 0.24, 165), ("pixcolor_s1", 0.404, 161), ("pixcolor_s* (pooled)", 0.349, 487),
            ("pixcolor_oracle", 0.351, 168)]
    df = pd.DataFrame([{"method": m, "score": s, "low": s - 0.1, "high": s + 0.1, "n": n,
                        "n_images": 34, "n_raters": 39} for m, s, n in rows])
    return df.assign(sd=answers_sd(df["score"], df["n"]))


def test_the_paper_numbers_are_fig6_as_printed():
    paper = paper_reference().set_index("method")
    for m, (value, pm) in FIG6.items():
        assert paper.loc[m, "value"] == pytest.approx(value / 100)
        assert paper.loc[m, "pm"] == pytest.approx(pm / 100)
        assert paper.loc[m, "source"] == "PixColor paper Fig. 6"
    assert paper.loc["pixcolor_s* (pooled)", "value"] == pytest.approx(0.339)  # Sec. 5 text
    assert math.isnan(paper.loc["pixcolor_s* (pooled)", "pm"])
    # the paper's +- is one bootstrap SD over answers: 33% of 2,500 answers gives 0.94 points
    assert answers_sd(pd.Series([0.33]), pd.Series([2500]))[0] == pytest.approx(0.0094, abs=1e-4)


def test_vtt_column_comes_first_with_the_paper_beside_it():
    board = with_vtt(_board(), _scores())
    assert [c.name for c in board.columns] == ["vtt", "psnr", "ssim"]
    assert board.methods == ["ltbc", "pixcolor_s1", "pixcolor_s* (pooled)", "pixcolor_oracle",
                             "gt"]
    assert board.cell("pixcolor_s1", "vtt")["best"] and board.cell("pixcolor_oracle",
                                                                   "vtt")["reference"]
    g = grid(board)
    assert g.header[:4] == ["Method", "VTT fool rate ↑", "VTT fool rate (paper)", "PSNR (dB) ↑"]
    ltbc = dict(zip(g.keys[1:], g.rows[0][2], strict=True))
    assert (ltbc["vtt"].text, ltbc["vtt"].detail) == ("24.0%", "± 3.32")
    assert (ltbc["vtt (paper)"].text, ltbc["vtt (paper)"].detail) == ("25.8%", "± 0.97")
    assert (ltbc["psnr"].text, ltbc["psnr"].detail) == ("23.36", "[23.36, 23.36]")
    md = to_markdown(board)
    assert "| ltbc | 24.0% ± 3.32 | 25.8% ± 0.97 | **23.36** [23.36, 23.36] |" in md
    assert "| pixcolor_s* (pooled) | 34.9% ± 2.16 | 33.9% | – | – |" in md
    assert "labelled 'paper'" in md and "PixColor paper Fig. 6" in md
    assert "not a 95% interval" in board.notes[0]
    html = to_html(board)
    assert html.startswith("<table class='leaderboard'>") and "class='paper'" in html
    assert "<span class='ci'>[23.36, 23.36]</span>" in html
    tex = to_latex(board)
    assert check_booktabs(tex) == 5 and r"25.8\% {\scriptsize $\pm$ 0.97}" in tex


def test_fig6_table_reads_like_the_paper():
    shown = vtt_table(_scores())
    assert shown.iloc[0].tolist() == ["ltbc", "24.0%", "[14.0, 34.0]", "3.32", "165", "34",
                                      "39"]


def test_leaderboard_latex_compiles_when_pdflatex_is_here(tmp_path):
    (tmp_path / "lb.tex").write_text(to_latex(with_vtt(_board(), _scores())))
    write_table(pd.DataFrame({"method": ["a_b"], "vtt": [0.5]}), tmp_path, "t")
    res = compile_tables([tmp_path / "lb.tex", tmp_path / "t.tex"], tmp_path)
    if res is None:
        pytest.skip("no pdflatex here")
    assert res.returncode == 0, res.stdout[-2000:]
