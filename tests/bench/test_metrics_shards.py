"""``python -m bench metrics --shard i/n`` (or a SLURM array, or torchrun) and ``--merge``:
the shards fill the cache, the merge builds the same metrics.csv as one pass and says what
is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.synthetic import make_runs
from bench.__main__ import main
from bench.generate import GenerateError
from bench.metrics import MISSING, MISSING_FILE, metrics_shard

SLURM = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
         "SLURM_ARRAY_TASK_STEP", "RANK", "WORLD_SIZE")


@pytest.fixture
def env(monkeypatch):
    for var in SLURM:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "demo"
    make_runs(root, n_images=5, size=(24, 28), methods=("cic", "grayscale"), seed=4)
    return root


def _metrics(runs: Path, *more: str) -> int:
    return main(["metrics", "--runs-dir", str(runs), "--fid-variant", "none", *more])


def test_shard_of_the_flag_a_slurm_array_or_torchrun(env):
    assert metrics_shard(None) == (0, 1)
    assert metrics_shard("2/3") == (2, 3)
    env.setenv("RANK", "1")
    env.setenv("WORLD_SIZE", "4")
    assert metrics_shard(None) == (1, 4)
    env.setenv("SLURM_ARRAY_TASK_ID", "7")  # --array=5-11:2: tasks 5, 7, 9, 11
    env.setenv("SLURM_ARRAY_TASK_MIN", "5")
    env.setenv("SLURM_ARRAY_TASK_STEP", "2")
    env.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    assert metrics_shard(None) == (1, 4) and metrics_shard("0/2") == (0, 2)
    env.setenv("SLURM_ARRAY_TASK_ID", "x")
    with pytest.raises(GenerateError):
        metrics_shard(None)


def test_two_shards_then_a_merge_write_one_pass_s_table(runs, tmp_path, env, capsys):
    whole = tmp_path / "whole"
    shutil.copytree(runs, whole)
    assert _metrics(whole) == 0
    capsys.readouterr()
    assert _metrics(runs, "--shard", "0/2") == 0
    assert "shard 0/2: 9 outputs of 3 photos, 9 scored now" in capsys.readouterr().out
    assert not (runs / "metrics.csv").exists()
    assert _metrics(runs, "--merge") == MISSING  # shard 1 has not run
    out = capsys.readouterr().out
    assert "missing: 6 outputs of 2 photos" in out and "run the shards" in out
    missing = pd.read_csv(runs / MISSING_FILE, dtype=str)
    assert sorted(set(missing["image_id"])) == ["img0001", "img0003"]
    env.setenv("SLURM_ARRAY_TASK_ID", "1")
    env.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert _metrics(runs) == 0
    assert "shard 1/2: 6 outputs of 2 photos, 6 scored now" in capsys.readouterr().out
    env.delenv("SLURM_ARRAY_TASK_ID")
    assert _metrics(runs, "--merge") == 0
    assert "missing" not in capsys.readouterr().out
    assert (runs / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()
    assert _metrics(runs) == 0  # everything cached: the same table, nothing computed
    assert (runs / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()
