"""Shared pytest fixtures (keep them small and generic)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real colour photograph: scikit-image's astronaut, (512, 512, 3) uint8."""
    from skimage import data

    return data.astronaut()


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded numpy generator (tests never touch global RNG state)."""
    return np.random.default_rng(1234)
