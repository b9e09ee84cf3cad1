"""Cross-site request protection and JSON errors for the VTT app.

Every POST must carry the session's CSRF token, in the form field ``csrf_token`` or the
``X-CSRF-Token`` header; the session cookie is ``SameSite=Lax`` and HTTP-only. API errors are
JSON ``{"error": message}`` with the 4xx status, so the page can show what went wrong.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, current_app, g, jsonify, request, session
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from werkzeug.exceptions import HTTPException

from . import platforms
from .db import get_session


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def same_secret(sent: object, expected: object) -> bool:
    """Whether two secrets are equal, in constant time, compared as UTF-8 bytes
    (``hmac.compare_digest`` raises on a ``str`` with non-ASCII characters)."""
    return hmac.compare_digest(str(sent).encode("utf-8", "surrogatepass"),
                               str(expected).encode("utf-8", "surrogatepass"))


def _check_csrf() -> None:
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not same_secret(sent, expected):
        abort(403, description="missing or wrong CSRF token: reload the page and try again")


def _json_error(err: HTTPException):
    if request.path.startswith("/api/"):
        return jsonify(error=err.description, status=err.code), err.code
    return err.get_response()


#: Every page's scripts, styles and images come from the app itself (a trial's images are
#: fetched from it and shown from ``blob:`` URLs made of the response); no page may be framed.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _mturk_csp() -> str:
    """The pages of an MTurk study: framed by MTurk's worker sites only, and the done
    page's form may post to MTurk's external-submit origins."""
    submit = " ".join(platforms.submit_origins())
    return CSP.replace("form-action 'self'", f"form-action 'self' {submit}").replace(
        "frame-ancestors 'none'", "frame-ancestors " + " ".join(platforms.frame_origins()))


def _mturk_page() -> bool:
    """A rater page (or API call) of an MTurk study (``rater.get_study`` sets the platform)."""
    return g.get("vtt_platform") == "mturk" and request.blueprint in ("rater", "api")


def _security_headers(resp):
    if _mturk_page():
        resp.headers["Content-Security-Policy"] = _mturk_csp()  # no X-Frame-Options: it
        # cannot name the sites that may frame; frame-ancestors does
    else:
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    return resp


def cookie_site_flags() -> dict:
    """``samesite`` and ``secure`` of the app's cookies for this request: ``Lax``, and
    ``Secure`` over HTTPS; on an MTurk study's pages over HTTPS ``None`` + ``Secure``, since
    MTurk shows the study in a frame of its own site (a third-party context)."""
    if _mturk_page() and request.is_secure:
        return {"samesite": "None", "secure": True}
    return {"samesite": current_app.config["SESSION_COOKIE_SAMESITE"],
            "secure": request.is_secure}


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, marked ``Secure`` whenever the request came over HTTPS
    (directly, or through a proxy that ``ProxyFix`` trusts)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or (request and request.is_secure))

    def get_cookie_samesite(self, app: Flask) -> str | None:
        return cookie_site_flags()["samesite"] if request else super().get_cookie_samesite(app)


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
