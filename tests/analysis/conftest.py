"""Fixtures of the analysis tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analysis.synthetic import make_runs


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """Three synthetic photos and three methods' outputs, with the faults an evaluation
    must report: a missing file, an unreadable one and one of the wrong size."""
    root = tmp_path_factory.mktemp("runs")
    make_runs(root, n_images=3, size=(24, 28), methods=("cic", "pixcolor_s1", "grayscale"))
    (root / "cic" / "img0001.png").unlink()  # missing
    (root / "pixcolor_s1" / "img0002.png").write_bytes(b"not a png")  # unreadable
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "grayscale" / "img0002.png")
    return root
