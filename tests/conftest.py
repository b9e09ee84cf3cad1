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


@pytest.fixture(scope="session", autouse=True)
def no_local_weights(tmp_path_factory):
    """No test reads pretrained weights or a feature cache from this machine: torch hub's
    folder is an empty temporary one and the weight variables are unset, so LPIPS and FID
    are "not computed" unless a test points the variables at generated files (and the
    tables of ``make test`` do not depend on what a developer has downloaded)."""
    root = tmp_path_factory.mktemp("no_weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(root / "torch"))
        mp.setenv("PIXCOLOR_FID_CACHE", str(root / "fid_cache"))
        for var in ("PIXCOLOR_FID_WEIGHTS", "PIXCOLOR_FID_TV_WEIGHTS",
                    "PIXCOLOR_LPIPS_BACKBONE_WEIGHTS", "PIXCOLOR_LPIPS_HEADS"):
            mp.delenv(var, raising=False)
        yield
