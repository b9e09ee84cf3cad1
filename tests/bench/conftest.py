"""Fixtures of the harness tests: a random tiny PixColor checkpoint and fake ImageNet
validation folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixcolor import PixColor
from tests.fakes import make_fake_val


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A random ``tiny`` PixColor checkpoint."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    PixColor.from_preset("tiny").save(path)
    return path


@pytest.fixture
def fake_val(tmp_path: Path):
    """``fake_val(split, n, layout, **kw) -> (folder, list file, lines)``: a fake ImageNet
    validation folder ``tmp_path/val`` holding the first ``n`` photos of an official list
    (see :func:`tests.fakes.make_fake_val` for ``kw``: missing, truncated, gray entries)."""

    def make(split: str, n: int, layout: str, **kw):
        root = tmp_path / "val"
        list_file, lines = make_fake_val(root, split, n, layout, **kw)
        return root, list_file, lines

    return make
