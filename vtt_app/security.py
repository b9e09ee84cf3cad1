"""Cross-site request protection and JSON errors for the VTT app.

Every POST must carry the session's CSRF token, in the form field ``csrf_token`` or the
``X-CSRF-Token`` header; the session cookie is ``SameSite=Lax`` and HTTP-only. API errors are
JSON ``{"error": message}`` with the 4xx status, so the page can show what went wrong.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, current_app, jsonify, request, session
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from werkzeug.exceptions import HTTPException

from .db import get_session


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _check_csrf() -> None:
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        abort(403, description="missing or wrong CSRF token: reload the page and try again")


def _json_error(err: HTTPException):
    if request.path.startswith("/api/"):
        return jsonify(error=err.description, status=err.code), err.code
    return err.get_response()


#: Every page's scripts, styles and images come from the app itself (a trial's images are
#: fetched from it and shown from ``blob:`` URLs made of the response); no page may be framed.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _security_headers(resp):
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    return resp


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, marked ``Secure`` whenever the request came over HTTPS
    (directly, or through a proxy that ``ProxyFix`` trusts)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or (request and request.is_secure))


def _db_unavailable(err: Exception):
    """A transient database failure (connection lost, pool exhausted, deadlock): 503 with
    ``Retry-After``; the page retries, and every API call is safe to repeat."""
    current_app.logger.warning("database unavailable: %s", err)
    get_session().rollback()
    desc = "the server is busy: try again in a moment"
    if request.path.startswith("/api/"):
        resp = jsonify(error=desc, status=503)
    else:
        resp = current_app.response_class(desc, mimetype="text/plain")
    resp.status_code = 503
    resp.headers["Retry-After"] = "1"
    return resp


def init_app(app: Flask) -> None:
    """Install the CSRF check, the template helper, JSON errors for ``/api/``, security
    headers on every response, and ``Secure`` cookies over HTTPS."""
    app.session_interface = _SessionInterface()
    app.after_request(_security_headers)
    app.before_request(_check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.register_error_handler(HTTPException, _json_error)
    app.register_error_handler(OperationalError, _db_unavailable)
    app.register_error_handler(SATimeoutError, _db_unavailable)
