"""Fixtures of the baselines' tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fakes import fake_photo


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    """Four generated colourful photos in two class folders (labels 0 and 1)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for k in range(4):
        (root / f"class{k % 2}").mkdir(exist_ok=True)
        Image.fromarray(fake_photo(rng, 40, 48)).save(root / f"class{k % 2}" / f"p{k}.png")
    return root
