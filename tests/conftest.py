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


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: tiny models gain nothing from more, and the tests must
    not compete with other work on a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
