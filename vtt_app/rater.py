"""Rater pages: consent, instructions, the trial page and the completion code (paper Sec. 4).

A rater is identified by an unguessable token kept in the signed session cookie. A second
attempt at the same study is refused when the same platform id (``worker_id``,
``PROLIFIC_PID`` or ``workerId`` in the link) or the same browser (a long-lived random
cookie) has already finished it; an unfinished sitting on the same browser is resumed.
Prolific and MTurk specifics (their ids, MTurk's preview, where the rater returns at the
end) are in :mod:`vtt_app.platforms`.
"""

from __future__ import annotations

import re
import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError

from . import platforms, security
from .assignment import n_attention, new_rater, sitting_length
from .db import get_session
from .ids import clean_external_id, external_key
from .models import Rater, Study, Trial
from .study import NAME_RE

bp = Blueprint("rater", __name__)

BROWSER_COOKIE_AGE = 365 * 24 * 3600


_STUDY = select(Study).where(Study.name == bindparam("b_name"))
_RATER = select(Rater).where(Rater.token == bindparam("b_token"),
                             Rater.study_id == bindparam("b_study"))


def get_study(name: str) -> Study:
    """The study called ``name``, or 404 (without a query for a name no study can have,
    e.g. with a NUL, which PostgreSQL refuses in text)."""
    study = get_session().scalar(_STUDY, {"b_name": name}) if NAME_RE.match(name) else None
    if study is None:
        abort(404, description=f"no study called {name!r}")
    g.vtt_platform = study.platform  # the page's framing and cookie rules (vtt_app.security)
    return study


def current_rater(study: Study, required: bool = True) -> Rater | None:
    """The rater of this browser session for ``study`` (401 if ``required`` and none)."""
    token = session.get("raters", {}).get(study.name)
    rater = None
    if token:
        rater = get_session().scalar(_RATER, {"b_token": token, "b_study": study.id})
    if rater is None and required:
        abort(401, description="no rater of this study in this browser's session: start from "
                               "the consent page")
    return rater


#: A browser cookie as the consent page writes it (``secrets.token_urlsafe``), at most the
#: 64 characters of ``Rater.browser_id``.
BROWSER_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _browser_id() -> str:
    """The browser cookie; "" when there is none or it is not a well-formed token (too long,
    a NUL...): as if absent, so the consent page sets a new one."""
    bid = request.cookies.get(current_app.config["BROWSER_COOKIE"], "")
    return bid if BROWSER_ID_RE.fullmatch(bid) else ""


@bp.get("/")
def index():
    """List the studies (raters normally arrive with a study link)."""
    studies = get_session().scalars(select(Study).order_by(Study.id)).all()
    return render_template("index.html", studies=studies)


def _visit(study: Study) -> platforms.Visit:
    """The platform's parameters of this visit: from the link when it has any (an id from
    the link is then fixed: the form shows it read-only and consent takes it from here, not
    from what the form sends back), else as the link of an earlier page in this browser's
    session cookie gave them."""
    visit = platforms.read_visit(study.platform, request.args)
    visits = dict(session.get("visits", {}))
    if visit.preview:
        return visit
    if visit.external_id or visit.session_id:
        visits[study.name] = visit.as_dict()
        session["visits"] = visits
        return visit
    return platforms.Visit(**visits.get(study.name, {}))


def _refusal(study: Study, visit: platforms.Visit) -> str:
    """Why this visit cannot take part ("" if it can)."""
    if study.require_external_id and not visit.external_id:
        return ("This study must be opened from the link on the recruiting platform (it "
                "carries your participant id). Please go back and use that link.")
    if study.platform == "mturk" and not visit.session_id:
        return "Please accept the HIT on Mechanical Turk first, then the study starts here."
    return ""


@bp.get("/s/<study_name>/")
def consent(study_name: str):
    """Consent page; sets the browser cookie used to refuse retakes. An MTurk preview shows
    the instructions only: nothing can start until the worker accepts the HIT."""
    study = get_study(study_name)
    visit = _visit(study)
    page = dict(study=study, n_trials=sitting_length(study), n_attention=n_attention(study))
    if visit.preview:
        return render_template("consent.html", preview=True, **page)
    refusal = _refusal(study, visit)
    if refusal:
        return render_template("message.html", title="Use the platform's link",
                               message=refusal), 400
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
        "consent.html", external_id=visit.external_id, id_locked=bool(visit.external_id),
        resume=rater is not None, **page))
    if not bid:
        resp.set_cookie(current_app.config["BROWSER_COOKIE"], secrets.token_urlsafe(24),
                        max_age=BROWSER_COOKIE_AGE, httponly=True,
                        **security.cookie_site_flags())
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
    visit = platforms.Visit(**session.get("visits", {}).get(study.name, {}))
    refusal = _refusal(study, visit)
    if refusal:
        abort(400, description=refusal)
    external_id = (visit.external_id
                   or clean_external_id(request.form.get("external_id", ""))) or None
    rater = _returning_rater(db, study, bid, external_key(external_id))
    if rater is False:
        return render_template("message.html", title="Already taken",
                               message="This rater id or browser has already taken part "
                               "in this study; a study can be taken only once."), 403
    if rater is None:
        try:
            rater = new_rater(db, study, bid, external_id, request.headers.get("User-Agent", ""))
            rater.platform_study_id, rater.platform_session_id = visit.study_id, visit.session_id
            rater.turk_submit_to = visit.turk_submit_to
            db.commit()
        except IntegrityError:  # the same browser or id consented twice at once
            db.rollback()
            abort(409, description="this browser or rater id has just started this study: "
                  "reload the page")
    raters = dict(session.get("raters", {}))
    raters[study.name] = rater.token
    session["raters"] = raters
    return redirect(url_for("rater.instructions", study_name=study.name))


def _returning_rater(db, study: Study, bid: str, key: str | None) -> Rater | None | bool:
    """The unfinished rater this browser resumes; None for a new rater; False when the
    browser or the platform id has taken the study already (or belong to two raters)."""
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
        return False
    return rater


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
    """The completion code, once the sitting is over."""
    study = get_study(study_name)
    rater = current_rater(study)
    if rater.finished_at is None:
        return redirect(url_for("rater.run", study_name=study.name))
    shown = get_session().scalar(select(func.count(Trial.id)).where(Trial.rater_id == rater.id))
    return render_template(
        "done.html", study=study, code=rater.completion_code, early=shown < sitting_length(study),
        platform_code=platforms.platform_code(study, rater),
        prolific_url=platforms.prolific_return_url(study, rater)
        if study.platform == "prolific" else "",
        mturk_url=platforms.mturk_submit_url(rater) if study.platform == "mturk" else "",
        assignment_id=rater.platform_session_id)
