"""JSON API of the trial page: next trial, answer, and the trial's two images.

Image URLs name only the trial and the presentation slot (1 or 2), never the method, so the
page cannot tell which image is the ground truth. Files are resolved inside the study's runs
folder (or the study's generated attention images) and checked against the SHA-256 recorded
by ``create-study``.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, jsonify, request, send_file, url_for
from werkzeug.security import safe_join

from .assignment import expire_stale, lock_study, n_attention, next_trial, session_length
from .db import get_session
from .models import Image, Pair, Study, Trial
from .rater import current_rater, get_study
from .responses import BadRequest, answer_json, parse_answer, record_answer
from .study import GT, file_sha256

bp = Blueprint("api", __name__, url_prefix="/api")


def _trial_json(study: Study, trial: Trial) -> dict:
    practice = trial.kind == "practice"
    return {
        "done": False,
        "trial_id": trial.id,
        "seq": trial.seq,
        "total": session_length(study),
        "practice": practice,
        "n_practice": study.n_practice,
        "exposure_ms": study.exposure_ms,
        "images": [url_for("api.image", trial_id=trial.id, slot=s) for s in (1, 2)],
        "answer_url": url_for("api.answer", trial_id=trial.id),
    }


@bp.post("/s/<study_name>/next")
def next_(study_name: str):
    """The rater's open trial, or a newly assigned one, or ``done`` with the code page."""
    study = get_study(study_name)
    rater = current_rater(study)
    db = get_session()
    trial = next_trial(db, study.id, rater.id)
    db.commit()
    if trial is None:
        return jsonify(done=True, redirect=url_for("rater.done", study_name=study.name))
    return jsonify(_trial_json(study, trial))


def _own_trial(trial_id: int) -> tuple[Study, Trial]:
    db = get_session()
    trial = db.get(Trial, trial_id)
    if trial is None:
        abort(404, description=f"no trial {trial_id}")
    study = db.get(Study, trial.rater.study_id)
    rater = current_rater(study)
    if trial.rater_id != rater.id:
        abort(404, description=f"no trial {trial_id} for this rater")
    return study, trial


@bp.post("/trials/<int:trial_id>/answer")
def answer(trial_id: int):
    """Store the answer to the rater's own open trial (a repeat returns the stored result)."""
    study, trial = _own_trial(trial_id)
    db = get_session()
    if trial.response is not None:
        return jsonify(answer_json(trial, trial.response, repeated=True))
    try:
        ans = parse_answer(request.get_json(silent=True))
    except BadRequest as err:
        abort(400, description=str(err))
    lock_study(db, study.id)
    expire_stale(db, study)
    db.refresh(trial)
    if trial.response is not None:  # a concurrent duplicate got here first
        return jsonify(answer_json(trial, trial.response, repeated=True))
    if trial.status != "open":
        abort(409, description=f"trial {trial_id} is {trial.status}: ask for the next trial")
    resp = record_answer(db, study, trial, ans)
    db.commit()
    out = answer_json(trial, resp)
    out["n_attention"] = n_attention(study)
    return jsonify(out)


def _image_path(study: Study, trial: Trial, slot: int) -> tuple[Path, str | None]:
    """File shown in ``slot`` of ``trial`` and its expected SHA-256 (None: not recorded)."""
    image = get_session().get(Image, trial.image_id)
    runs = Path(study.runs_dir)
    generated = (slot == 1) == trial.generated_first
    if not generated:
        method, sha = GT, image.gt_sha256
    elif trial.kind == "attention":
        if not image.attention_file:
            abort(404, description="no attention image")
        return Path(image.attention_file), None
    else:
        method = trial.source_method
        pair = get_session().get(Pair, trial.pair_id) if trial.pair_id else None
        sha = pair.file_sha256 if pair is not None else None
    joined = safe_join(str(runs), method, f"{image.name}.png")
    if joined is None or not Path(joined).resolve().is_relative_to(runs.resolve()):
        abort(404, description="image outside the runs folder")
    return Path(joined), sha


@bp.get("/trials/<int:trial_id>/image/<int:slot>")
def image(trial_id: int, slot: int):
    """One of the two images of the rater's own open trial."""
    if slot not in (1, 2):
        abort(404, description="slot must be 1 or 2")
    study, trial = _own_trial(trial_id)
    if trial.status != "open":
        abort(404, description=f"trial {trial_id} is {trial.status}")
    path, sha = _image_path(study, trial, slot)
    if not path.is_file():
        abort(404, description="image file missing from the runs folder")
    if sha is not None and file_sha256(path) != sha:
        abort(409, description="the runs folder changed after create-study; recreate the study")
    resp = send_file(path, mimetype="image/png", max_age=0)
    resp.headers["Cache-Control"] = "no-store, private"
    return resp
