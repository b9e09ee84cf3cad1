"""Export of a study: ``responses.csv`` (one row per answer), ``raters.csv`` and the plan.

``analysis`` reads these files to compute VTT scores (paper Fig. 6): the fraction of valid
``test``/``oracle`` rows of unflagged raters with ``chose_generated = 1``, per method.
Nothing is dropped here: practice, attention and invalid rows, interrupted presentations (no
answer, ``valid = 0``) and flagged raters are all exported, marked by ``kind``, ``valid``,
``invalid_reason`` and ``rater_flagged``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import prereg
from .models import Image, Rater, Response, Study, Trial
from .platforms import platform_code
from .quality import rater_quality

RESPONSE_COLUMNS = [
    "study", "stage", "rater_id", "image_id", "method", "source_method", "generated_first",
    "chose_generated", "kind", "valid", "invalid_reason", "response_ms", "rater_flagged",
    "trial_seq", "onset_first_ms", "offset_first_ms", "onset_second_ms", "offset_second_ms",
    "exposure_first_ms", "exposure_second_ms", "gt_onset_ms", "gt_offset_ms",
    "generated_onset_ms", "generated_offset_ms", "frames_first", "frames_second",
    "refresh_hz", "window_w", "window_h", "device_pixel_ratio", "tab_hidden", "blurred",
    "created_at", "rater_suspicious",
]  # fmt: skip
RATER_COLUMNS = [
    "study", "rater_id", "external_id", "platform_study_id", "platform_session_id",
    "created_at", "finished_at", "completion_code", "platform_code",
    "flagged", "n_answers", "n_practice", "n_test", "n_oracle", "n_attention",
    "attention_failed", "n_invalid", "n_interrupted", "n_scored_valid", "accuracy",
    "median_response_ms", "n_too_fast", "suspicious", "suspicious_reason", "user_agent",
]  # fmt: skip


def _ms(x: float) -> str:
    return f"{x:.3f}"


def response_rows(session: Session, study: Study) -> list[dict]:
    """One dict per answer of ``study`` with the keys of :data:`RESPONSE_COLUMNS`."""
    rows = session.execute(
        select(Response, Trial, Rater, Image)
        .join(Trial, Trial.id == Response.trial_id)
        .join(Rater, Rater.id == Trial.rater_id)
        .join(Image, Image.id == Trial.image_id)
        .where(Rater.study_id == study.id)
        .order_by(Response.id)
    ).all()
    suspicious = {r for r, q in rater_quality(session, study)[0].items() if q["suspicious"]}
    out = []
    for resp, trial, rater, image in rows:
        first = (resp.onset_1_ms, resp.offset_1_ms)
        second = (resp.onset_2_ms, resp.offset_2_ms)
        gen, gt = (first, second) if trial.generated_first else (second, first)
        out.append({
            "study": study.name,
            "stage": trial.stage,
            "rater_id": rater.public_id,
            "image_id": image.name,
            "method": trial.method_name,
            "source_method": trial.source_method,
            "generated_first": int(trial.generated_first),
            "chose_generated": int(resp.chose_generated),
            "kind": trial.kind,
            "valid": int(resp.valid),
            "invalid_reason": resp.invalid_reason,
            "response_ms": _ms(resp.response_ms),
            "rater_flagged": int(rater.flagged),
            "trial_seq": trial.seq,
            "onset_first_ms": _ms(first[0]),
            "offset_first_ms": _ms(first[1]),
            "onset_second_ms": _ms(second[0]),
            "offset_second_ms": _ms(second[1]),
            "exposure_first_ms": _ms(first[1] - first[0]),
            "exposure_second_ms": _ms(second[1] - second[0]),
            "gt_onset_ms": _ms(gt[0]),
            "gt_offset_ms": _ms(gt[1]),
            "generated_onset_ms": _ms(gen[0]),
            "generated_offset_ms": _ms(gen[1]),
            "frames_first": resp.frames_1,
            "frames_second": resp.frames_2,
            "refresh_hz": f"{resp.refresh_hz:.2f}",
            "window_w": resp.window_w,
            "window_h": resp.window_h,
            "device_pixel_ratio": resp.device_pixel_ratio,
            "tab_hidden": int(resp.tab_hidden),
            "blurred": int(resp.blurred),
            "created_at": resp.created_at.isoformat(timespec="milliseconds") + "Z",
            "rater_suspicious": int(rater.id in suspicious),
        })  # fmt: skip
    return out + interrupted_rows(session, study)


def interrupted_rows(session: Session, study: Study) -> list[dict]:
    """Rows of the trials whose presentation started and was never answered: no answer
    (empty ``chose_generated``, which :mod:`analysis.vtt` reads as invalid), ``valid = 0``
    and the reason; the timing columns are empty."""
    rows = session.execute(
        select(Trial, Rater, Image)
        .join(Rater, Rater.id == Trial.rater_id)
        .join(Image, Image.id == Trial.image_id)
        .where(Rater.study_id == study.id, Trial.status == "interrupted")
        .order_by(Trial.id)
    ).all()
    out = []
    for trial, rater, image in rows:
        row = dict.fromkeys(RESPONSE_COLUMNS, "")
        ended = trial.ended_at or trial.created_at
        row.update({
            "study": study.name, "stage": trial.stage, "rater_id": rater.public_id,
            "image_id": image.name, "method": trial.method_name,
            "source_method": trial.source_method,
            "generated_first": int(trial.generated_first), "kind": trial.kind, "valid": 0,
            "invalid_reason": trial.invalid_reason, "rater_flagged": int(rater.flagged),
            "trial_seq": trial.seq,
            "created_at": ended.isoformat(timespec="milliseconds") + "Z",
        })  # fmt: skip
        out.append(row)
    return out


def _per_rater_counts(session: Session, study: Study) -> dict[str, dict]:
    """Counts per rater id: answers by trial kind (``kinds`` keyed by (rater, kind)), failed
    attention checks, invalid answers and interrupted presentations."""
    def per_rater(*where, count=Response.id, join_response=True) -> dict:
        q = select(Trial.rater_id, func.count(count)).join(Rater, Rater.id == Trial.rater_id)
        if join_response:
            q = q.join(Response, Response.trial_id == Trial.id)
        return dict(session.execute(
            q.where(Rater.study_id == study.id, *where).group_by(Trial.rater_id)).all())

    kinds = {(rater_id, kind): n for rater_id, kind, n in session.execute(
        select(Trial.rater_id, Trial.kind, func.count(Response.id))
        .join(Response, Response.trial_id == Trial.id)
        .join(Rater, Rater.id == Trial.rater_id)
        .where(Rater.study_id == study.id)
        .group_by(Trial.rater_id, Trial.kind))}  # fmt: skip
    return {
        "kinds": kinds,
        "failed": per_rater(Trial.kind == "attention", Response.chose_generated.is_(True)),
        "invalid": per_rater(Response.valid.is_(False)),
        "interrupted": per_rater(Trial.status == "interrupted", count=Trial.id,
                                 join_response=False),
    }


def rater_rows(session: Session, study: Study) -> list[dict]:
    """One dict per rater of ``study`` with the keys of :data:`RATER_COLUMNS`."""
    c = _per_rater_counts(session, study)
    quality = rater_quality(session, study)[0]
    out = []
    for r in session.scalars(select(Rater).where(Rater.study_id == study.id).order_by(Rater.id)):
        kinds = {k: c["kinds"].get((r.id, k), 0)
                 for k in ("practice", "test", "oracle", "attention")}
        q = quality.get(r.id, {})
        out.append({
            "study": study.name,
            "rater_id": r.public_id,
            "external_id": r.external_id or "",
            "platform_study_id": r.platform_study_id,
            "platform_session_id": r.platform_session_id,
            "created_at": r.created_at.isoformat(timespec="seconds") + "Z",
            "finished_at": (
                r.finished_at.isoformat(timespec="seconds") + "Z" if r.finished_at else ""
            ),
            "completion_code": r.completion_code or "",
            "platform_code": platform_code(study, r) if r.finished_at else "",
            "flagged": int(r.flagged),
            "n_answers": sum(kinds.values()),
            **{f"n_{k}": n for k, n in kinds.items()},
            "attention_failed": c["failed"].get(r.id, 0),
            "n_invalid": c["invalid"].get(r.id, 0),
            "n_interrupted": c["interrupted"].get(r.id, 0),
            "n_scored_valid": q.get("n_scored", 0),
            "accuracy": f"{q['accuracy']:.4f}" if q else "",
            "median_response_ms": f"{q['median_response_ms']:.1f}" if q else "",
            "n_too_fast": q.get("too_fast", 0),
            "suspicious": int(q.get("suspicious", False)),
            "suspicious_reason": q.get("suspicious_reason", ""),
            "user_agent": r.user_agent,
        })  # fmt: skip
    return out


#: Columns holding text a rater or their browser supplied.
RATER_TEXT = ("external_id", "platform_study_id", "platform_session_id", "user_agent")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """Rater-supplied text made inert in a spreadsheet: NUL bytes dropped, and a leading
    ``= + - @`` (or tab, carriage return), which Excel and LibreOffice read as a formula,
    escaped with a quote (OWASP's rule for CSV injection)."""
    text = text.replace("\0", "")
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(rows: list[dict], columns: list[str]) -> str:
    """CSV text with a header row; :data:`RATER_TEXT` columns pass :func:`spreadsheet_safe`."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: spreadsheet_safe(v) if k in RATER_TEXT and isinstance(v, str) else v
                         for k, v in row.items()})
    return buf.getvalue()


def export_study(session: Session, study: Study, out_dir: Path) -> tuple[Path, Path]:
    """Write ``responses.csv`` and ``raters.csv`` of ``study`` into ``out_dir``, and its
    pre-registered plan as ``plan.json`` (the stored bytes: ``sha256sum plan.json`` prints
    ``plan_sha256``) and ``plan.md`` when it has one (:mod:`vtt_app.prereg`).

    Returns:
        The paths of the two CSV files.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    responses = out_dir / "responses.csv"
    raters = out_dir / "raters.csv"
    responses.write_text(to_csv(response_rows(session, study), RESPONSE_COLUMNS), "utf-8")
    raters.write_text(to_csv(rater_rows(session, study), RATER_COLUMNS), "utf-8")
    for name, data in prereg.plan_files(study).items():
        (out_dir / name).write_bytes(data)
    return responses, raters
