"""Admin pages: progress per method, rater quality, flagged trials, export, oracle stage.

Protected by ``ADMIN_TOKEN`` (``instance/config.py`` or the ``VTT_ADMIN_TOKEN`` variable):
log in with it once (kept in the session cookie), or send ``Authorization: Bearer <token>``.
A rater's cookie gives no access. With no token configured the admin pages are closed.
"""

from __future__ import annotations

import hmac
import io
import zipfile
from functools import wraps

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from sqlalchemy import case, func, or_, select

from . import prereg
from .db import get_session
from .export import RATER_COLUMNS, RESPONSE_COLUMNS, rater_rows, response_rows, to_csv
from .models import ACTIVE_STATES, Assignment, Method, Pair, Rater, Response, Study, Trial
from .quality import rater_quality, study_warnings
from .rater import get_study
from .study import StudyError, create_oracle_stage

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _token_ok(sent: str) -> bool:
    token = current_app.config.get("ADMIN_TOKEN", "")
    return bool(token) and hmac.compare_digest(sent.encode(), token.encode())


def admin_required(view):
    """Allow the view only to a logged-in admin or a request with the bearer token."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        auth = request.headers.get("Authorization", "")
        if session.get("admin") is True or (auth.startswith("Bearer ") and _token_ok(auth[7:])):
            return view(*args, **kwargs)
        if not current_app.config.get("ADMIN_TOKEN"):
            abort(403, description="admin is closed: set ADMIN_TOKEN in instance/config.py")
        return redirect(url_for("admin.login", next=request.path))

    return wrapped


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in with the admin token."""
    if request.method == "POST":
        if _token_ok(request.form.get("token", "")):
            session["admin"] = True
            nxt = request.args.get("next", "")  # no CR/LF/NUL: they cannot be in a header
            ok = nxt.startswith("/admin") and nxt.isprintable()
            return redirect(nxt if ok else url_for("admin.index"))
        flash("wrong token")
        return render_template("admin_login.html"), 403
    return render_template("admin_login.html")


@bp.get("/")
@admin_required
def index():
    """All studies."""
    studies = get_session().scalars(select(Study).order_by(Study.id)).all()
    return render_template("admin_index.html", studies=studies)


def method_progress(study: Study, suspicious: frozenset[int] = frozenset()) -> list[dict]:
    """Per (stage, method): pairs, slots needed, done/open slots, valid answers, VTT so far
    (unflagged raters), and VTT so far without the raters in ``suspicious`` (ids)."""
    db = get_session()
    slots = dict(
        ((stage, m, status), n)
        for stage, m, status, n in db.execute(
            select(Pair.stage, Method.name, Assignment.status, func.count(Assignment.id))
            .join(Pair, Pair.id == Assignment.pair_id)
            .join(Method, Method.id == Pair.method_id)
            .where(Pair.study_id == study.id)
            .group_by(Pair.stage, Method.name, Assignment.status)
        )
    )
    scores: dict[tuple[str, str], list[int]] = {}  # (n, gen, n trusted, gen trusted)
    for stage, m, rater_id, n, gen in db.execute(
        select(Trial.stage, Trial.method_name, Trial.rater_id, func.count(Response.id),
               func.sum(case((Response.chose_generated.is_(True), 1), else_=0)))
        .join(Response, Response.trial_id == Trial.id)
        .join(Rater, Rater.id == Trial.rater_id)
        .where(Rater.study_id == study.id, Rater.flagged.is_(False),
               Response.valid.is_(True), Trial.kind.in_(("test", "oracle")))
        .group_by(Trial.stage, Trial.method_name, Trial.rater_id)
    ):  # fmt: skip
        acc = scores.setdefault((stage, m), [0, 0, 0, 0])
        trusted = rater_id not in suspicious
        acc[0], acc[1] = acc[0] + n, acc[1] + (gen or 0)
        acc[2], acc[3] = acc[2] + n * trusted, acc[3] + (gen or 0) * trusted
    out = []
    for stage, m, n_pairs, needed in db.execute(
        select(Pair.stage, Method.name, func.count(Pair.id), func.sum(Pair.raters_needed))
        .join(Method, Method.id == Pair.method_id)
        .where(Pair.study_id == study.id)
        .group_by(Pair.stage, Method.name)
        .order_by(Pair.stage, Method.name)
    ):
        n, gen, n_ok, gen_ok = scores.get((stage, m), (0, 0, 0, 0))
        out.append({
            "stage": stage, "method": m, "pairs": n_pairs, "needed": int(needed or 0),
            "done": slots.get((stage, m, "done"), 0), "open": slots.get((stage, m, "open"), 0),
            "invalid": slots.get((stage, m, "invalid"), 0),
            "expired": slots.get((stage, m, "expired"), 0),
            "valid_answers": n, "vtt": (gen or 0) / n if n else None,
            "vtt_trusted": gen_ok / n_ok if n_ok else None,
        })  # fmt: skip
    return out


@bp.get("/s/<study_name>")
@admin_required
def study(study_name: str):
    """Progress, warnings, rater quality and invalid trials of one study."""
    st = get_study(study_name)
    db = get_session()
    invalid = db.execute(
        select(Trial, Rater, Response.invalid_reason)
        .outerjoin(Response, Response.trial_id == Trial.id)
        .join(Rater, Rater.id == Trial.rater_id)
        .where(Rater.study_id == st.id,
               or_(Response.valid.is_(False), Trial.status == "interrupted"))
        .order_by(Trial.id.desc())
        .limit(200)
    ).all()
    open_slots = db.scalar(
        select(func.count(Assignment.id)).join(Pair, Pair.id == Assignment.pair_id)
        .where(Pair.study_id == st.id, Assignment.status.in_(ACTIVE_STATES[:1]))
    )  # fmt: skip
    quality, median = rater_quality(db, st)
    suspicious = frozenset(r for r, q in quality.items() if q["suspicious"])
    return render_template("admin_study.html", study=st,
                           progress=method_progress(st, suspicious),
                           raters=rater_rows(db, st), invalid=invalid, open_slots=open_slots,
                           warnings=study_warnings(quality, median))


@bp.get("/s/<study_name>/export.zip")
@admin_required
def export(study_name: str):
    """Download responses.csv, raters.csv, plan.json and plan.md as a zip."""
    st = get_study(study_name)
    db = get_session()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("responses.csv", to_csv(response_rows(db, st), RESPONSE_COLUMNS))
        zf.writestr("raters.csv", to_csv(rater_rows(db, st), RATER_COLUMNS))
        for name, data in prereg.plan_files(st).items():  # plan.json, plan.md
            zf.writestr(name, data)
    buf.seek(0)
    return send_file(buf, mimetype="application/zip", as_attachment=True,
                     download_name=f"{st.name}-export.zip")


@bp.post("/s/<study_name>/oracle")
@admin_required
def oracle(study_name: str):
    """Create the oracle stage (as ``flask create-oracle``)."""
    st = get_study(study_name)
    db = get_session()
    try:
        chosen = create_oracle_stage(db, st, force=request.form.get("force") == "yes")
    except StudyError as err:
        db.rollback()
        flash(str(err))
        return redirect(url_for("admin.study", study_name=st.name))
    db.commit()
    flash(f"oracle stage created for {len(chosen)} images")
    return redirect(url_for("admin.study", study_name=st.name))
