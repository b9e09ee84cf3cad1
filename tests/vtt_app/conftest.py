"""Fixtures of the VTT tests: a runs folder, an app with a study over it, a consented rater.

A test module that needs another study overrides ``runs`` or ``app``; the helpers these are
built from (and the answers, sittings and choosers of the tests) are in ``helpers.py``.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.vtt_app.helpers import add_study, make_app, make_runs, rater_client


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Eight photos: their truths and the outputs of ``cic`` and ``lrac``."""
    return make_runs(tmp_path / "runs", ["cic", "lrac"], n_images=8)


@pytest.fixture
def app(tmp_path: Path, runs: Path) -> Flask:
    """An app on a SQLite file with study ``s1`` over ``runs``: 4 test photos, 1 practice
    trial, 2 attention photos (no attention trials drawn), 3 trials per rater, K = 2."""
    app = make_app(tmp_path / "inst")
    add_study(app, runs, ["cic", "lrac"], images=4, practice=1, attention_images=2,
              attention_rate=0.0, trials_per_rater=3, raters_per_pair=2)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Rater ``b1`` of ``s1``, consented."""
    return rater_client(app, "s1", "b1")


@pytest.fixture
def runner(app: Flask):
    """The app's command-line runner (``flask init-db``, ``create-study``, ``export``...)."""
    return app.test_cli_runner()


class _SeededTokens:
    """``secrets``' token functions drawn from a seeded generator."""

    def __init__(self, seed: int):
        self._gen = random.Random(seed)

    def token_urlsafe(self, n: int = 32) -> str:
        return base64.urlsafe_b64encode(self._gen.randbytes(n)).rstrip(b"=").decode()

    def token_hex(self, n: int = 32) -> str:
        return self._gen.randbytes(n).hex()


@pytest.fixture
def seeded_tokens(monkeypatch):
    """Rater tokens, public ids and completion codes from a seeded generator instead of the
    OS: a rater's sitting plan and tie-breaks derive from its token, so a test that drives
    several raters through random actions then takes the same path in every run."""
    monkeypatch.setattr("vtt_app.assignment.secrets", _SeededTokens(0))


