"""Helpers of the VTT tests: tiny runs folders, apps, studies, raters and well-formed answers
(the fixtures built from them are in ``conftest.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image as PILImage

from vtt_app import create_app
from vtt_app.db import create_all, get_session
from vtt_app.study import StudyOptions, create_study

CSRF = "test-csrf-token"


def make_runs(root: Path, methods: list[str], n_images: int, size: int = 24, seed: int = 0) -> Path:
    """Write ``root/<method>/img_XXXX.png`` (uint8 RGB) for ``gt`` and ``methods``.

    Ground truths are random blocks of strong colour; each method's output is the ground truth with
    a method-specific colour cast, so every file differs.

    Returns:
        ``root``.
    """
    rng = np.random.default_rng(seed)
    for i in range(n_images):
        blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        gt = np.kron(blocks, np.ones((size // 4, size // 4, 1), dtype=np.uint8))
        for k, m in enumerate(["gt", *methods]):
            out = gt if m == "gt" else np.clip(gt.astype(int) + 7 * (k + 1), 0, 255)
            folder = root / m
            folder.mkdir(parents=True, exist_ok=True)
            PILImage.fromarray(out.astype(np.uint8)).save(folder / f"img_{i:04d}.png")
    return root


def make_app(instance: Path, database_url: str | None = None, **config: Any) -> Flask:
    """An app with its own instance folder and a SQLite file database (or ``database_url``)."""
    cfg = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "ADMIN_TOKEN": "admin-token",
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": database_url or f"sqlite:///{instance / 'vtt.sqlite'}",
        "EXPIRY_INTERVAL_S": 0.0,  # tests move clocks and expect expiry at the next call
        **config,
    }
    app = create_app(cfg)
    with app.app_context():
        create_all()
    return app


def add_study(app: Flask, runs: Path, methods: list[str], **kw: Any) -> str:
    """Create a study in ``app`` and return its name."""
    opts = StudyOptions(name=kw.pop("name", "s1"), runs=runs, methods=methods, **kw)
    with app.app_context():
        db = get_session()
        create_study(db, opts, Path(app.config["MEDIA_DIR"]) / opts.name)
        db.commit()
    return opts.name


def rater_client(app: Flask, study: str, browser_id: str, external_id: str = "") -> FlaskClient:
    """A test client that has consented to ``study`` with its own browser cookie."""
    client = app.test_client()
    client.set_cookie(app.config["BROWSER_COOKIE"], browser_id)
    with client.session_transaction() as s:
        s["csrf"] = CSRF
    r = client.post(f"/s/{study}/consent",
                    data={"consent": "yes", "external_id": external_id, "csrf_token": CSRF})
    assert r.status_code == 302, r.get_data(as_text=True)
    return client


def good_answer(choice: int, exposure_ms: float = 1000.0, hz: float = 60.0,
                start: float = 5000.0, **over: Any) -> dict:
    """A well-formed answer whose timing is exactly on time."""
    body = {
        "choice": choice, "response_ms": 640.0,
        "onset_1": start, "offset_1": start + exposure_ms,
        "onset_2": start + exposure_ms, "offset_2": start + 2 * exposure_ms,
        "frames_1": round(exposure_ms * hz / 1000), "frames_2": round(exposure_ms * hz / 1000),
        "refresh_hz": hz, "window_w": 1280, "window_h": 800, "device_pixel_ratio": 1.0,
        "events": [],
    }
    body.update(over)
    return body


def post_json(client: FlaskClient, url: str, body: Any = None):
    """POST JSON with the test CSRF header."""
    return client.post(url, json=body if body is not None else {},
                       headers={"X-CSRF-Token": CSRF})


def answer(client: FlaskClient, trial: dict, choice: int, **over: Any):
    """Fetch both images of a trial (``/next``'s JSON), as the page does, then answer it."""
    r = client.get(trial["images_url"])
    assert r.status_code == 200, r.get_data(as_text=True)
    return post_json(client, trial["answer_url"], good_answer(choice, **over))


def run_sitting(client: FlaskClient, study: str, choose=lambda trial: 1, max_trials: int = 500):
    """Answer trials until the sitting is over; returns the list of (next, answer) JSONs."""
    log = []
    for _ in range(max_trials):
        nxt = post_json(client, f"/api/s/{study}/next")
        assert nxt.status_code == 200, nxt.get_data(as_text=True)
        data = nxt.get_json()
        if data["done"]:
            return log
        ans = answer(client, data, choose(data))
        assert ans.status_code == 200, ans.get_data(as_text=True)
        log.append((data, ans.get_json()))
    raise AssertionError("sitting did not end")


def chooser(app: Flask, pick_generated=lambda trial: False):
    """A ``choose`` for :func:`run_sitting` that looks the trial up in the database.

    Args:
        app: the app.
        pick_generated: ``Trial -> bool``; True chooses the generated image, else the truth.
    """
    from vtt_app.models import Trial

    def choose(data: dict) -> int:
        with app.app_context():
            trial = get_session().get(Trial, data["trial_id"])
            gen = 1 if trial.generated_first else 2
            return gen if pick_generated(trial) else 3 - gen

    return choose
