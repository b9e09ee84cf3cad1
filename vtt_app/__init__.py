"""Visual Turing Test web app (paper Sec. 4 and Fig. 6), in the Flask tutorial's shape.

``create_app`` builds the app: configuration from defaults, then ``instance/config.py``
(secrets, written on first start), then the environment (``DATABASE_URL``,
``VTT_ADMIN_TOKEN``, ``VTT_DB_POOL_SIZE``, ``VTT_DB_SYNCHRONOUS_COMMIT`` (PostgreSQL:
``answers``, the default, acknowledges an answer only once it is on disk; ``on``: every
commit waits for the disk; ``off``: none does, the fast option; see
:func:`vtt_app.db.make_engine`);
``VTT_INSTANCE_PATH`` moves the instance folder),
then ``test_config``. Blueprints: ``rater`` (consent, instructions,
trials, completion code), ``api`` (JSON trial/answer endpoints, images), ``admin`` (progress,
rater quality, export). Commands: ``init-db``, ``create-study``, ``create-oracle``, ``export``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask


def _ensure_secrets(app: Flask) -> None:
    """Write ``instance/config.py`` with a SECRET_KEY and an ADMIN_TOKEN if it is missing."""
    path = Path(app.instance_path) / "config.py"
    if path.exists():
        return
    text = (
        "# Secrets of the VTT app, written on first start. Keep this file private.\n"
        f"SECRET_KEY = {secrets.token_hex(32)!r}\n"
        f"ADMIN_TOKEN = {secrets.token_urlsafe(24)!r}\n"
    )
    try:
        with open(path, "x", encoding="utf-8") as f:  # "x": two processes never both write
            f.write(text)
        os.chmod(path, 0o600)
    except FileExistsError:
        pass


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the Flask app.

    Args:
        test_config: settings that override everything else (tests pass ``SECRET_KEY``,
            ``DATABASE_URL``, ``ADMIN_TOKEN``...); when given, ``instance/config.py`` is
            neither read nor written unless ``test_config`` lacks ``SECRET_KEY``.

    Returns:
        The app.
    """
    instance = os.environ.get("VTT_INSTANCE_PATH") or None
    if test_config is not None and "INSTANCE_PATH" in test_config:
        instance = str(test_config["INSTANCE_PATH"])
    app = Flask(__name__, instance_relative_config=True,
                instance_path=str(Path(instance).resolve()) if instance else None)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(
        DATABASE_URL=f"sqlite:///{Path(app.instance_path) / 'vtt.sqlite'}",
        MEDIA_DIR=str(Path(app.instance_path) / "media"),
        ADMIN_TOKEN="",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        MAX_CONTENT_LENGTH=256 * 1024,
        BROWSER_COOKIE="vtt_bid",
        DB_POOL_SIZE=10,  # per process: at least the server's threads per worker
        EXPIRY_INTERVAL_S=2.0,  # look for timed-out slots at most this often
        DB_SYNCHRONOUS_COMMIT="answers",  # PostgreSQL: see vtt_app.db.make_engine
    )
    if test_config is None or "SECRET_KEY" not in test_config:
        _ensure_secrets(app)
        app.config.from_pyfile("config.py", silent=True)
    if os.environ.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = os.environ["DATABASE_URL"]
    if os.environ.get("VTT_DB_POOL_SIZE"):
        app.config["DB_POOL_SIZE"] = int(os.environ["VTT_DB_POOL_SIZE"])
    if os.environ.get("VTT_DB_SYNCHRONOUS_COMMIT"):  # checked by db.sync_commit_mode
        app.config["DB_SYNCHRONOUS_COMMIT"] = os.environ["VTT_DB_SYNCHRONOUS_COMMIT"]
    if os.environ.get("VTT_ADMIN_TOKEN"):
        app.config["ADMIN_TOKEN"] = os.environ["VTT_ADMIN_TOKEN"]
    if test_config is not None:
        app.config.from_mapping(test_config)

    from . import admin, api, commands, db, rater, security

    db.init_app(app)
    security.init_app(app)
    app.register_blueprint(rater.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    commands.init_app(app)
    return app
