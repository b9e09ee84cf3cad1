"""pixcolor.checkpoint: one reader with one typed error, atomic writes, numbered files."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from baselines.base import BaselineCheckpointError, read_checkpoint
from pixcolor import checkpoint
from pixcolor.checkpoint import CheckpointError


def test_read_names_the_file_and_what_is_wrong(tmp_path: Path):
    with pytest.raises(CheckpointError, match=r"missing\.pt: no such checkpoint file"):
        checkpoint.read(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a readable PyTorch checkpoint"):
        checkpoint.read(tmp_path / "junk.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"list\.pt: expected a dict, got list"):
        checkpoint.read(tmp_path / "list.pt")
    # the baselines raise their subclass, which callers of either catch
    with pytest.raises(BaselineCheckpointError) as info:
        read_checkpoint(tmp_path / "junk.pt")
    assert isinstance(info.value, CheckpointError)


def test_write_is_atomic_and_numbered_files_keep_the_newest(tmp_path: Path, monkeypatch):
    path = checkpoint.write({"step": 1}, tmp_path / "sub" / "m.pt")
    assert checkpoint.read(path) == {"step": 1}

    def crash(obj, f):  # a save that dies half-way
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.write({"step": 2}, path)
    monkeypatch.undo()
    assert checkpoint.read(path) == {"step": 1}  # the old file is whole
    assert os.listdir(path.parent) == ["m.pt"]  # and no temporary file is left
    out = tmp_path / "run"
    assert checkpoint.latest(out) is None
    for step in (5, 10, 20, 40):
        checkpoint.save_numbered(out, {"step": step}, step, keep_last=2)
    assert [p.name for p in checkpoint.numbered(out)] == ["ckpt_00000020.pt",
                                                          "ckpt_00000040.pt"]
    assert checkpoint.read(checkpoint.latest(out))["step"] == 40
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_rng_state_round_trips():
    import random

    import numpy as np

    st = checkpoint.rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    checkpoint.set_rng_state(st)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]


def test_read_weights_reads_tensors_only_and_reports_bad_files(tmp_path: Path):
    torch.save({"conv1.weight": torch.ones(2)}, tmp_path / "w.pth")
    assert torch.equal(checkpoint.read_weights(tmp_path / "w.pth")["conv1.weight"], torch.ones(2))
    (tmp_path / "bad.pth").write_bytes(b"junk")
    with pytest.raises(KeyError, match=r"bad\.pth: cannot read a PyTorch state dict"):
        checkpoint.read_weights(tmp_path / "bad.pth", error=KeyError)
    torch.save([torch.ones(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match=r"list\.pth: expected a state dict, got list"):
        checkpoint.read_weights(tmp_path / "list.pth")


def test_the_file_format_module_does_not_load_the_model():
    # pixcolor.checkpoint is the file format; building models from checkpoints is
    # pixcolor.assembly's, so importing it alone loads no model code (no import circle)
    code = ("import json, sys, pixcolor.checkpoint\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pixcolor'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    loaded = json.loads(out)
    model = [m for m in loaded if m in ("pixcolor.colorizer", "pixcolor.stages",
                                        "pixcolor.assembly", "pixcolor.sampling")
             or m.startswith("pixcolor.models")]
    assert not model, model
    assert "pixcolor.checkpoint" in loaded
    # nor inside a function: every pixcolor import of the module is of the floor below it
    tree = ast.parse(Path(checkpoint.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in imported if m and m.startswith("pixcolor")} <= {"pixcolor.config",
                                                                         "pixcolor.io"}
