"""The leaderboard speed script on a tiny synthetic folder: it runs and reports both timings."""

from __future__ import annotations

import json

from tools import leaderboard_speed


def test_leaderboard_speed_runs_and_reports(tmp_path, capsys):
    assert leaderboard_speed.main(["--images", "6", "--methods", "2", "--fid-resamples", "2",
                                   "--tmp", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["features_written"] == 6 * 3 and out["columns"][-1] == "fid"
    assert out["fid_from_features_s"] > 0 and out["warm_s"] >= 0
