"""tools.curves: reading trainers' log.csv files (resumed runs included) and plotting them."""

import numpy as np
import pytest
from PIL import Image

from tools import curves

HEADER = "step,loss,lr,images_per_s,wall_s\n"


def _log(tmp_path, text, name="run"):
    d = tmp_path / name
    d.mkdir()
    (d / "log.csv").write_text(text)
    return d


def test_read_log_joins_a_resumed_run_and_keeps_the_latest_row_per_step(tmp_path):
    run = _log(tmp_path, HEADER + "25,2.0,0.001,9,1\n50,1.5,0.001,9,2\n"
               + HEADER + "50,1.4,0.001,9,1\n75,1.0,0.0005,9,2\n\n")
    log = curves.read_log(run / "log.csv")
    assert log["step"].tolist() == [25, 50, 75]
    assert log["loss"].tolist() == [2.0, 1.4, 1.0]
    assert log["lr"].tolist() == [0.001, 0.001, 0.0005]


def test_read_log_names_the_file_and_line_of_a_bad_row(tmp_path):
    run = _log(tmp_path, HEADER + "25,2.0,0.001,9,1\n50,oops,0.001,9,2\n")
    with pytest.raises(ValueError, match=r"log.csv, line 3"):
        curves.read_log(run / "log.csv")
    with pytest.raises(ValueError, match="no logged steps"):
        curves.read_log(_log(tmp_path, HEADER, "empty") / "log.csv")


def test_running_mean_matches_a_direct_loop():
    x = np.random.default_rng(0).random(20)
    want = [x[max(0, i - 4):i + 1].mean() for i in range(20)]
    np.testing.assert_allclose(curves.running_mean(x, 5), want)


def test_cli_plots_one_panel_per_run(tmp_path, capsys):
    rows = "".join(f"{s},{3 / s ** 0.3},{1e-3 * min(1, (100 - s) / 40)},9,1\n"
                   for s in range(5, 100, 5))
    a, b = _log(tmp_path, HEADER + rows, "a"), _log(tmp_path, HEADER + rows, "b")
    out = tmp_path / "curves.png"
    assert curves.main([str(a), str(b), "--out", str(out), "--smooth", "3"]) == 0
    w, h = Image.open(out).size
    assert w > 1.8 * h  # two panels side by side
    with pytest.raises(SystemExit):
        curves.main([str(a), "--out", str(out), "--labels", "x", "y"])
    assert curves.main([str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "missing" in capsys.readouterr().err
