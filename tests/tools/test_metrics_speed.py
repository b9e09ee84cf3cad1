"""The metrics pass speed script on a tiny generated folder: it runs (its old-code comparison
included, against this checkout) and prints every number it promises; no time is checked."""

from __future__ import annotations

from pathlib import Path

from tools import metrics_speed

ROOT = Path(__file__).resolve().parents[2]


def test_metrics_speed_runs_and_reports(tmp_path, capsys):
    assert metrics_speed.main(["--images", "3", "--size", "48", "--workers", "1",
                               "--keep", str(tmp_path), "--old", str(ROOT), "--outputs", "9"]) == 0
    out = capsys.readouterr().out
    assert "3 photos x 9 outputs" in out and "extra_1" in out
    for part in ("first pass (cold cache)", "per-core rate:", "re-run, one more method (+3)",
                 "of the first pass's CPU time", "re-run, nothing changed",
                 "10,000 x 11 outputs on this machine"):
        assert part in out, part
    runs = tmp_path / "runs_3_48_metrics3x9"
    assert not (runs / ".metrics_cache").exists() and not (runs / "added_method").exists()
