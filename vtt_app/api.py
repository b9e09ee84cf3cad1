"""JSON API of the trial page: next trial, answer, and the trial's two images.

The images' URL names only the trial, never the method, and both images come in one
response (they cannot differ in timing), so the page cannot tell which is the ground truth.
The bytes are the study's normalised copies (:mod:`vtt_app.media`), checked against their
SHA-256 and dithered with the trial's secret seed before sending (every delivery is unique
bytes); a trial's images are delivered once.
"""

from __future__ import annotations

from typing import NoReturn

from flask import Blueprint, abort, current_app, jsonify, request, session, url_for
from flask import Response as HttpResponse
from sqlalchemy import bindparam, select, update

from . import media
from .assignment import n_attention, next_trial, sitting_length
from .db import durable_commit, get_engine, get_session
from .expiry import expire_if_stale, expire_stale, expiry_due
from .models import Rater, Response, Study, Trial
from .rater import current_rater, get_study
from .responses import BadRequest, answer_json, parse_answer, record_answer
from .security import same_secret
from .study import NAME_RE

bp = Blueprint("api", __name__, url_prefix="/api")
# The id columns are Integer (int4 on PostgreSQL): a larger id cannot exist, and is a 404
# instead of a database error.
MAX_ID = 2**31 - 1


def _json_body():
    """The request's JSON, or None; a body nested too deeply for the parser is a 400."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        abort(400, description="the body is nested too deeply: send a flat JSON object")


def _trial_json(study: Study, trial: Trial) -> dict:
    practice = trial.kind == "practice"
    return {
        "done": False,
        "trial_id": trial.id,
        "seq": trial.seq,
        "total": sitting_length(study),
        "practice": practice,
        "n_practice": study.n_practice,
        "exposure_ms": study.exposure_ms,
        "images_url": url_for("api.images", trial_id=trial.id),
        "answer_url": url_for("api.answer", trial_id=trial.id),
    }


@bp.post("/s/<study_name>/next")
def next_(study_name: str):
    """The rater's open trial, or a newly assigned one, or ``done`` with the code page."""
    db = get_session()
    if expiry_due(db, study_name, current_app.config["EXPIRY_INTERVAL_S"]):
        expire_stale(db, get_study(study_name))
        db.commit()
    study, rater = _locked_rater(study_name)
    trial = next_trial(db, study, rater)
    db.commit()
    return jsonify(_next_json(study, trial))


def _next_json(study: Study, trial: Trial | None) -> dict:
    """What the page gets for its next trial: the trial, or ``done`` with the code page."""
    if trial is None:
        return {"done": True, "redirect": url_for("rater.done", study_name=study.name)}
    return _trial_json(study, trial)


_LOCKED_RATER = (select(Study, Rater).join(Rater, Rater.study_id == Study.id)
                 .where(Study.name == bindparam("b_name"), Rater.token == bindparam("b_token"))
                 .with_for_update(of=Rater).execution_options(populate_existing=True))
_TRIAL_AND_RATER = (select(Trial, Rater, Study).join(Rater, Rater.id == Trial.rater_id)
                    .join(Study, Study.id == Rater.study_id)
                    .where(Trial.id == bindparam("b_trial"))
                    .execution_options(populate_existing=True))
_SESSION_RATERS = select(Rater.id).where(Rater.token.in_(bindparam("b_tokens", expanding=True)))
_LOCK_RATERS = _SESSION_RATERS.with_for_update()


# Claim the delivery of both images of this browser's rater's open trial (none sent yet),
# returning their served copies and the dither seed; and give the claim back.
_CLAIM = (update(Trial)
          .where(Trial.id == bindparam("b_trial"), Trial.status == "open",
                 Trial.shown_1.is_(False), Trial.shown_2.is_(False),
                 Trial.served_1 != "", Trial.served_2 != "",
                 Trial.rater_id.in_(_SESSION_RATERS))
          .values(shown_1=True, shown_2=True)
          .returning(Trial.served_1, Trial.served_2, Trial.dither_seed))
_GIVE_BACK = (update(Trial).where(Trial.id == bindparam("b_trial"))
              .values(shown_1=False, shown_2=False))


def _tokens() -> list[str]:
    """The rater tokens this browser session holds (401 if none)."""
    tokens = [str(t) for t in session.get("raters", {}).values()]
    if not tokens:
        abort(401, description="no rater in this browser's session: start from the consent page")
    return tokens


def _locked_rater(study_name: str) -> tuple[Study, Rater]:
    """The study and this browser's rater of it, the rater's row locked (one query)."""
    token = session.get("raters", {}).get(study_name)
    row = None
    if token and NAME_RE.match(study_name):  # else no study: get_study's 404, no query
        row = get_session().execute(_LOCKED_RATER, {"b_name": study_name,
                                                    "b_token": str(token)}).first()
    if row is None:
        current_rater(get_study(study_name))  # 404 for no study, else 401 for no rater
    return row[0], row[1]


def _own_trial(trial_id: int) -> tuple[Trial, Rater, Study]:
    """The trial, if it belongs to a rater of this browser session (else 404), its rater and
    study.

    One query: the trial joined with its rater (whose token must be one this browser holds)
    and the study.
    """
    db = get_session()
    row = db.execute(_TRIAL_AND_RATER, {"b_trial": trial_id}).first()
    if row is None:
        abort(404, description=f"no trial {trial_id}")
    trial, rater, study = row
    tokens = _tokens()
    if not any(same_secret(t, rater.token) for t in tokens):
        abort(404, description=f"no trial {trial_id} for this rater")
    return trial, rater, study


@bp.post(f"/trials/<int(max={MAX_ID}):trial_id>/answer")
def answer(trial_id: int):
    """Store the answer to the rater's own open trial (a repeat returns the stored result)
    and assign the rater's next trial, returned under ``next`` as ``/next`` would.

    Locks only this browser's rater rows (not the study): answers of different raters run
    at once, and the same rater's ``/next`` waits (it would interrupt an open trial).
    """
    db = get_session()
    db.execute(_LOCK_RATERS, {"b_tokens": _tokens()})
    trial, rater, study = _own_trial(trial_id)  # read after the lock: as it is now
    if trial.status == "answered":  # a repeat, or a concurrent duplicate got here first
        resp = db.scalar(select(Response).where(Response.trial_id == trial.id))
        return jsonify(answer_json(trial, resp, repeated=True))
    try:
        ans = parse_answer(_json_body())
    except BadRequest as err:
        abort(400, description=str(err))
    if trial.status == "open" and expire_if_stale(db, study, trial):
        db.commit()
    if trial.status != "open":
        abort(409, description=f"trial {trial_id} is {trial.status}: ask for the next trial")
    resp = record_answer(db, study, trial, ans, rater)
    # The rater's next trial comes with the answer (what /next would return now: one request
    # and one transaction fewer per trial); the page asks /next only when this is missing.
    following = next_trial(db, study, rater, after=trial)
    durable_commit(db)  # acknowledged only once on disk (VTT_DB_SYNCHRONOUS_COMMIT=answers)
    out = answer_json(trial, resp)
    out["n_attention"] = n_attention(study)
    out["next"] = _next_json(study, following)
    if expiry_due(db, study.name, current_app.config["EXPIRY_INTERVAL_S"]):
        expire_stale(db, study)  # its own transaction, after the answer is stored
        db.commit()
    return jsonify(out)


@bp.get(f"/trials/<int(max={MAX_ID}):trial_id>/images")
def images(trial_id: int):
    """Both images of the rater's own open trial in one response, delivered once.

    The body is the two PNGs in presentation order, one after the other, each dithered with
    the trial's secret seed (unique bytes per delivery, :func:`vtt_app.media.dither`); the
    header ``X-Image-Lengths`` gives their byte lengths (equal for two images of one size).
    The response differs between the real and the generated image only in the body: no
    ``Last-Modified``, ``ETag`` or file name, no caching. A second request gets 410: a
    reload or a second tab cannot show a trial again (the next ``/next`` records it as
    interrupted).
    """
    if request.method != "GET":  # Flask answers HEAD with this view: it must not deliver
        abort(405, description="fetch the images with GET")
    one, two = _deliver_or_abort(trial_id)
    resp = HttpResponse(one + two, mimetype="application/octet-stream")
    resp.headers["X-Image-Lengths"] = f"{len(one)},{len(two)}"
    return _no_store(resp)


def _no_store(resp: HttpResponse) -> HttpResponse:
    resp.headers["Cache-Control"] = "no-store, private"
    return resp


def _deliver_or_abort(trial_id: int) -> list[bytes]:
    """The bytes of both images, their delivery claimed; else abort with 404, 409 or 410."""
    params = {"b_trial": trial_id, "b_tokens": _tokens()}
    try:
        data = _deliver(params)
    except media.MediaError as err:
        abort(409, description=f"{err}: recreate the study")
    if data is None:
        _no_image(trial_id)
    return data


def _read_dithered(claimed) -> list[bytes]:
    """The two images' bytes as sent: their served copies dithered with the trial's seed."""
    *paths, seed = claimed
    return [media.dither(media.read_served(p), seed, slot) for slot, p in enumerate(paths, 1)]


def _deliver(params: dict) -> list[bytes] | None:
    """Claim the delivery of both images and read them; None if it cannot be claimed.

    On PostgreSQL the claim is one statement in autocommit mode (no BEGIN/COMMIT round
    trips); elsewhere it is the request's transaction. A missing or changed copy gives the
    claim back, so it consumes no delivery.

    Raises:
        media.MediaError: a served copy is missing or changed.
    """
    engine = get_engine()
    if engine.dialect.name != "postgresql":  # SQLite: one write transaction (BEGIN IMMEDIATE)
        db = get_session()
        claimed = db.connection().execute(_CLAIM, params).first()
        if claimed is None:
            db.rollback()
            return None
        try:
            data = _read_dithered(claimed)
        except media.MediaError:
            db.rollback()
            raise
        db.commit()
        return data
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        claimed = conn.execute(_CLAIM, params).first()
        if claimed is None:
            return None
        try:
            return _read_dithered(claimed)
        except media.MediaError:
            conn.execute(_GIVE_BACK, params)
            raise


def _no_image(trial_id: int) -> NoReturn:
    """Abort with why the images cannot be delivered: 404 (not this rater's trial, or a
    slot without an image) or 410 (the trial is over, or its images were delivered)."""
    trial, _rater, _study = _own_trial(trial_id)
    if trial.status != "open":
        abort(410, description=f"trial {trial_id} is {trial.status}")
    if not (trial.served_1 and trial.served_2):
        abort(404, description="no image for this slot")
    abort(410, description=f"the images of trial {trial_id} were delivered already")
