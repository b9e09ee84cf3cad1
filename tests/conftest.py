"""Shared pytest fixtures (keep them small and generic)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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


CHROMIUM = os.environ.get("PIXCOLOR_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium through Playwright (the browser tests)."""
    if os.environ.get("PIXCOLOR_SKIP_BROWSER") == "1":
        pytest.skip("PIXCOLOR_SKIP_BROWSER=1")
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.fail(f"{CHROMIUM} not found: run `make browser` (scripts/install_browser.sh), "
                    "or set PIXCOLOR_SKIP_BROWSER=1 to skip the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()
