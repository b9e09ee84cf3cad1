"""Fixtures of the measurement tools' tests."""

from __future__ import annotations

import pytest
import torch

from pixcolor import PixColor


@pytest.fixture(scope="module")
def tiny() -> PixColor:
    """A random ``tiny`` PixColor (seed 0) in eval mode."""
    torch.manual_seed(0)
    return PixColor.from_preset("tiny").eval()
