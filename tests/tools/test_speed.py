"""The sampling speed script on the tiny preset: it runs, extrapolates right and says how."""

from __future__ import annotations

import json

import pytest
import torch

from tools import sampling_speed
from tools.sampling_speed import end_to_end, main, measure


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as the script uses by default (restored afterwards)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_measure_full_and_extrapolated_runs():
    full, part = measure("tiny", [2], torch.device("cpu"), 1, None) + \
        measure("tiny", [2], torch.device("cpu"), 1, 3)
    assert full.cached_rows_timed == full.rows == 8 and part.cached_rows_timed == 3
    for r in (full, part):
        assert r.naive_s > 0 and r.cached_s > 0


def test_timed_parts_are_extrapolated_to_a_whole_run(monkeypatch):
    """With every timed call taking 1 s, a whole run costs what the docstrings say: naive
    2 x h x w forward steps from ``steps`` timed ones, cached h rows from ``rows`` timed."""
    monkeypatch.setattr(sampling_speed, "_timed", lambda fn, device: 1.0)
    (full,) = measure("tiny", [2], torch.device("cpu"), 4, None)
    (part,) = measure("tiny", [2], torch.device("cpu"), 4, 3)
    h = full.rows
    assert full.naive_s == part.naive_s == pytest.approx(2 * h * h / 4)
    assert full.cached_s == pytest.approx(1.0) and part.cached_s == pytest.approx(h / 3)
    assert part.ratio == pytest.approx((2 * h * h / 4) / (h / 3))


def test_script_prints_table_and_json(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert main(["--presets", "tiny", "--batches", "1,2", "--naive-steps", "1", "--rows", "2",
                 "--no-e2e", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "samplers agree on a tiny network: True" in text
    assert "1 of 128 steps timed, extrapolated" in text and "2 of 8 rows timed" in text
    doc = json.loads(out.read_text())
    assert [r["batch"] for r in doc["rows"]] == [1, 2] and doc["device"] == "cpu"
    assert end_to_end("tiny", torch.device("cpu"), samples=1, size=32) > 0
