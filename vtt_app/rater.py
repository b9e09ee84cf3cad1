"""Rater pages: consent, instructions, the trial page and the completion code (paper Sec. 4).

A rater is identified by an unguessable token kept in the signed session cookie. A second
attempt at the same study is refused when the same platform id (``worker_id``,
``PROLIFIC_PID`` or ``workerId`` in the link) or the same browser (a long-lived random
cookie) has already finished it; an unfinished session on the same browser is resumed.
"""

from __future__ import annotations

import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError

from .assignment import n_attention, new_rater, session_length
from .db import get_session
from .ids import clean_external_id, external_key
from .models import Rater, Study, Trial

bp = Blueprint("rater", __name__)

EXTERNAL_ID_PARAMS = ("worker_id", "PROLIFIC_PID", "workerId")

BROWSER_COOKIE_AGE = 365 * 24 * 3600


_STUDY = select(Study).where(Study.name == bindparam("b_name"))  # built once
_RATER = select(Rater).where(Rater.token == bindparam("b_token"),
                             Rater.study_id == bindparam("b_study"))


def get_study(name: str) -> Study:
    """The study called ``name``, or 404."""
    study = get_session().scalar(_STUDY, {"b_name": name})
    if study is None:
        abort(404, description=f"no study called {name!r}")
    return study


def current_rater(study: Study, required: bool = True) -> Rater | None:
    """The rater of this browser session for ``study`` (401 if ``required`` and none)."""
    token = session.get("raters", {}).get(study.name)
    rater = None
    if token:
        rater = get_session().scalar(_RATER, {"b_token": token, "b_study": study.id})
    if rater is None and required:
        abort(401, description="no rater session for this study: start from the consent page")
    return rater


def _browser_id() -> str:
    return request.cookies.get(current_app.config["BROWSER_COOKIE"], "")


@bp.get("/")
def index():
    """List the studies (raters normally arrive with a study link)."""
    studies = get_session().scalars(select(Study).order_by(Study.id)).all()
    return render_template("index.html", studies=studies)


@bp.get("/s/<study_name>/")
def consent(study_name: str):
    """Consent page; sets the browser cookie used to refuse retakes."""
    study = get_study(study_name)
    external_id = clean_external_id(
        next((request.args[k] for k in EXTERNAL_ID_PARAMS if request.args.get(k)), ""))
    # An id from the platform's link is fixed: the form shows it read-only and the consent
    # step takes it from here, not from what the form sends back.
    locked = dict(session.get("locked_ids", {}))
    if external_id:
        locked[study.name] = external_id
        session["locked_ids"] = locked
    else:
        external_id = locked.get(study.name, "")
    rater = current_rater(study, required=False)
    bid = _browser_id()
    if rater is None and bid:
        rater = get_session().scalar(
            select(Rater).where(Rater.study_id == study.id, Rater.browser_id == bid)
        )
    if rater is not None and rater.finished_at is not None:
        return render_template("message.html", title="Already done",
                               message="You have already taken part in this study. Thank you!",
                               code=rater.completion_code), 403
    resp = make_response(render_template(
        "consent.html", study=study, external_id=external_id,
        id_locked=bool(external_id), resume=rater is not None,
        n_trials=session_length(study),
        n_attention=n_attention(study)))
    if not bid:
        resp.set_cookie(current_app.config["BROWSER_COOKIE"], secrets.token_urlsafe(24),
                        max_age=BROWSER_COOKIE_AGE, httponly=True, samesite="Lax",
                        secure=request.is_secure)
    return resp


@bp.post("/s/<study_name>/consent")
def give_consent(study_name: str):
    """Create (or resume) the rater after consent; refuse a second attempt."""
    study = get_study(study_name)
    db = get_session()
    if request.form.get("consent") != "yes":
        abort(400, description="please tick the consent box to take part")
    bid = _browser_id()
    if not bid:
        abort(400, description="cookies are needed to take part: enable them and reload")
    external_id = (session.get("locked_ids", {}).get(study.name)
                   or clean_external_id(request.form.get("external_id", ""))) or None
    key = external_key(external_id)
    by_browser = db.scalar(select(Rater).where(Rater.study_id == study.id, Rater.browser_id == bid))
    by_external = None
    if key:
        by_external = db.scalar(
            select(Rater).where(Rater.study_id == study.id, Rater.external_key == key)
        )
    rater = by_browser or by_external
    if rater is not None and (
        rater.finished_at is not None or (by_external is not None and by_browser is None)
        or (by_browser is not None and by_external is not None and by_browser.id != by_external.id)
    ):
        return render_template("message.html", title="Already taken",
                               message="This rater id or browser has already taken part "
                               "in this study; a study can be taken only once."), 403
    if rater is None:
        try:
            rater = new_rater(db, study, bid, external_id, request.headers.get("User-Agent", ""))
            db.commit()
        except IntegrityError:  # the same browser or id consented twice at once
            db.rollback()
            abort(409, description="this browser or rater id has just started this study: "
                  "reload the page")
    raters = dict(session.get("raters", {}))
    raters[study.name] = rater.token
    session["raters"] = raters
    return redirect(url_for("rater.instructions", study_name=study.name))


@bp.get("/s/<study_name>/instructions")
def instructions(study_name: str):
    """How a trial works, and the keys."""
    study = get_study(study_name)
    current_rater(study)
    return render_template("instructions.html", study=study)


@bp.get("/s/<study_name>/run")
def run(study_name: str):
    """The trial page (driven by ``static/vtt.js``)."""
    study = get_study(study_name)
    rater = current_rater(study)
    if rater.finished_at is not None:
        return redirect(url_for("rater.done", study_name=study.name))
    return render_template("run.html", study=study)


@bp.get("/s/<study_name>/done")
def done(study_name: str):
    """The completion code, once the session is over."""
    study = get_study(study_name)
    rater = current_rater(study)
    if rater.finished_at is None:
        return redirect(url_for("rater.run", study_name=study.name))
    shown = get_session().scalar(select(func.count(Trial.id)).where(Trial.rater_id == rater.id))
    return render_template("done.html", study=study, code=rater.completion_code,
                           early=shown < session_length(study))
