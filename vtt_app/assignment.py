"""Balanced assignment of trials to raters (paper Sec. 4: each pair seen by K raters).

A rater's session is: ``n_practice`` practice trials with feedback, then
``trials_per_rater`` scored trials with about ``attention_rate`` attention checks mixed in
at positions fixed when the rater starts. A scored trial takes one slot of the
(image, method) pair that currently has the fewest active slots among those the rater may
see (never a photo the rater has already seen), ties broken at random. Slots are
``assignments`` rows; ``open`` and ``done`` rows count towards K, so a pair is never
over-assigned. Open rows older than the study's timeout become ``expired`` (the slot is
reclaimed); invalid trials and the trials of flagged raters give their slot back too.

Each image of a trial is delivered once (``api.image``). A trial whose presentation started
(an image was delivered) and that is still open when the rater asks for the next trial (a
reload, a second tab, a session resumed after a crash) is ``interrupted``: recorded invalid
with its reason, its slot re-queued, and a new trial assigned.

Concurrency: every call runs inside one transaction that first locks the study row
(``FOR UPDATE`` on PostgreSQL; on SQLite the whole database is write-locked by
``BEGIN IMMEDIATE``, see :mod:`vtt_app.db`), so two raters cannot take the last slot of a
pair at once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from datetime import timedelta

import numpy as np
from sqlalchemy import Select, and_, func, select, update
from sqlalchemy.orm import Session

from .ids import external_key
from .models import ACTIVE_STATES, Assignment, Image, Method, Pair, Rater, Study, Trial, utcnow


def rater_rng(study: Study, rater: Rater, salt: int = 0) -> np.random.Generator:
    """Per-rater generator derived from the study seed and the rater token."""
    digest = int(hashlib.sha256(rater.token.encode()).hexdigest()[:12], 16)
    return np.random.default_rng([study.seed, digest, salt])


def n_attention(study: Study) -> int:
    """Attention checks per rater: ``round(rate * scored trials)``, >= 1 if rate > 0, and no
    more than the study's attention photos (each is seen once)."""
    if study.attention_rate <= 0:
        return 0
    n = max(1, round(study.attention_rate * scored_per_rater(study)))
    return min(n, study.attention_images) if study.attention_images > 0 else n


def scored_per_rater(study: Study) -> int:
    """Scored trials a rater is offered: ``trials_per_rater``, or fewer when the study has
    fewer test photos a rater may see (each photo is seen at most once)."""
    if study.max_scored > 0:
        return min(study.trials_per_rater, study.max_scored)
    return study.trials_per_rater


def session_length(study: Study) -> int:
    """Trials in one rater session: practice + scored + attention (what the consent page
    promises; a session ends earlier only when other raters filled every pair left)."""
    return study.n_practice + scored_per_rater(study) + n_attention(study)


def plan_attention_positions(study: Study, rater: Rater) -> str:
    """Choose the session positions (0-based, after practice) of the attention checks."""
    rng = rater_rng(study, rater, salt=1)
    lo, hi = study.n_practice, session_length(study)
    picked = rng.choice(np.arange(lo, hi), size=n_attention(study), replace=False)
    pos = sorted(int(p) for p in picked)
    return ",".join(str(p) for p in pos)


def new_rater(
    session: Session, study: Study, browser_id: str, external_id: str | None, user_agent: str
) -> Rater:
    """Create a rater with an unguessable token and a fixed attention-check plan."""
    rater = Rater(
        study_id=study.id,
        token=secrets.token_urlsafe(32),
        public_id=secrets.token_hex(8),
        external_id=external_id or None,
        external_key=external_key(external_id),
        browser_id=browser_id,
        user_agent=user_agent[:500],
    )
    rater.attention_positions = plan_attention_positions(study, rater)
    session.add(rater)
    session.flush()
    return rater


def lock_study(session: Session, study_id: int) -> Study:
    """Start the transaction by locking the study row (serialises assignment per study)."""
    return session.execute(select(Study).where(Study.id == study_id).with_for_update()).scalar_one()


EXPIRY_INTERVAL_S = 2.0  # default of the app setting EXPIRY_INTERVAL_S
_last_expiry: dict[tuple[str, int], float] = {}


def expire_stale(session: Session, study: Study, interval_s: float = 0.0) -> int:
    """Reclaim open assignments older than the study's timeout; returns how many.

    With ``interval_s`` > 0 it runs at most that often per study and database in a process
    (the server passes its ``EXPIRY_INTERVAL_S``, 2 s): the timeout is minutes long, and the
    scan was a large part of each request's time.
    """
    mono = time.monotonic()
    key = (str(session.get_bind().url), study.id)
    if interval_s > 0 and mono - _last_expiry.get(key, -1e9) < interval_s:
        return 0
    _last_expiry[key] = mono
    now = utcnow()
    stale = select(Assignment.id).join(Pair, Pair.id == Assignment.pair_id).where(
        Pair.study_id == study.id, Assignment.status == "open", Assignment.expires_at < now
    )
    ids = list(session.scalars(stale))
    if ids:
        session.execute(update(Assignment).where(Assignment.id.in_(ids)).values(status="expired"))
        session.execute(
            update(Trial)
            .where(Trial.assignment_id.in_(ids), Trial.status == "open")
            .values(status="expired")
        )
    # Open practice/attention trials have no slot; expire them with the same clock.
    cutoff = now - timedelta(seconds=study.assignment_timeout_s)
    session.execute(
        update(Trial)
        .where(
            Trial.status == "open",
            Trial.assignment_id.is_(None),
            Trial.created_at < cutoff,
            Trial.rater_id.in_(select(Rater.id).where(Rater.study_id == study.id)),
        )
        .values(status="expired")
    )
    return len(ids)


def current_stage(session: Session, study: Study) -> str:
    """``oracle`` once the study has an oracle stage, else ``main``."""
    has_oracle = session.scalar(
        select(Pair.id).where(Pair.study_id == study.id, Pair.stage == "oracle").limit(1)
    )
    return "oracle" if has_oracle else "main"


def _seen_images(rater: Rater) -> Select:
    return select(Trial.image_id).where(Trial.rater_id == rater.id)


def _pick_pair(
    session: Session, study: Study, rater: Rater, rng: np.random.Generator
) -> Pair | None:
    active = (
        select(Assignment.pair_id, func.count(Assignment.id).label("n"))
        .where(Assignment.status.in_(ACTIVE_STATES))
        .group_by(Assignment.pair_id)
        .subquery()
    )
    n = func.coalesce(active.c.n, 0)
    rows = session.execute(
        select(Pair.id, n)
        .outerjoin(active, active.c.pair_id == Pair.id)
        .where(
            and_(
                Pair.study_id == study.id,
                n < Pair.raters_needed,
                Pair.image_id.not_in(_seen_images(rater)),
            )
        )
        .order_by(n, Pair.id)
    ).all()
    if not rows:
        return None
    least = rows[0][1]
    ties = [pid for pid, k in rows if k == least]
    return session.get(Pair, ties[int(rng.integers(len(ties)))])


def _pick_image(
    session: Session,
    study: Study,
    rater: Rater,
    role: str,
    rng: np.random.Generator,
    attention: bool = False,
) -> Image | None:
    q = select(Image).where(
        Image.study_id == study.id, Image.id.not_in(_seen_images(rater))
    )
    q = q.where(Image.attention_file.is_not(None)) if attention else q.where(Image.role == role)
    images = list(session.scalars(q.order_by(Image.id)))
    return images[int(rng.integers(len(images)))] if images else None


def open_trial(session: Session, rater: Rater) -> Trial | None:
    """The rater's open trial, if any."""
    return session.scalar(
        select(Trial).where(Trial.rater_id == rater.id, Trial.status == "open").order_by(Trial.seq)
    )


INTERRUPTED = ("presentation interrupted: its images were delivered but no answer came "
               "(page reload, second tab or resumed session)")


def interrupt(trial: Trial, reason: str) -> None:
    """End an open trial without an answer: invalid, with ``reason``; its slot is re-queued."""
    trial.status = "interrupted"
    trial.invalid_reason = reason
    trial.ended_at = utcnow()
    if trial.assignment is not None and trial.assignment.status == "open":
        trial.assignment.status = "invalid"


def finish(rater: Rater) -> None:
    """Mark the rater finished and give them a completion code."""
    if rater.finished_at is None:
        rater.finished_at = utcnow()
        rater.completion_code = secrets.token_hex(5).upper()


def next_trial(session: Session, study_id: int, rater_id: int,
               expiry_interval_s: float = 0.0) -> Trial | None:
    """Return the rater's open trial or assign the next one; ``None`` when the session is over.

    Must be called at the start of a transaction; the caller commits.

    Args:
        session: database session with no transaction in progress.
        study_id: the study.
        rater_id: the rater (primary key).

    Returns:
        The trial to show, or ``None`` (the rater is then finished).
    """
    study = lock_study(session, study_id)
    rater = session.get(Rater, rater_id)
    expire_stale(session, study, expiry_interval_s)
    if rater.finished_at is not None:
        return None
    trial = open_trial(session, rater)
    if trial is not None and not (trial.shown_1 or trial.shown_2):
        return trial  # not shown yet (e.g. the page asked twice): the same trial
    if trial is not None:
        interrupt(trial, INTERRUPTED)
        trial = None
    seq = session.scalar(select(func.count(Trial.id)).where(Trial.rater_id == rater.id)) or 0
    if seq >= session_length(study):
        finish(rater)
        return None
    rng = rater_rng(study, rater, salt=100 + seq)
    stage = current_stage(session, study)
    attention = {int(p) for p in rater.attention_positions.split(",") if p}
    generated_first = bool(rng.integers(2))
    if seq < study.n_practice:
        image = _pick_image(session, study, rater, "practice", rng)
        methods = [m.name for m in study.methods if m.role == "method"]
        if image is not None and methods:
            method = methods[int(rng.integers(len(methods)))]
            trial = Trial(kind="practice", image_id=image.id, method_name=method,
                          source_method=method)
    elif seq in attention:
        image = _pick_image(session, study, rater, "", rng, attention=True)
        if image is not None:
            trial = Trial(kind="attention", image_id=image.id, method_name="attention",
                          source_method="attention")
    if trial is None:
        pair = _pick_pair(session, study, rater, rng)
        if pair is None:
            finish(rater)
            return None
        method = session.get(Method, pair.method_id)
        assignment = Assignment(
            pair_id=pair.id,
            rater_id=rater.id,
            # A flagged rater goes on as before but no longer fills slots.
            status="excluded" if rater.flagged else "open",
            expires_at=utcnow() + timedelta(seconds=study.assignment_timeout_s),
        )
        session.add(assignment)
        session.flush()
        trial = Trial(
            kind="oracle" if pair.stage == "oracle" else "test",
            image_id=pair.image_id,
            method_name=method.name,
            source_method=pair.source_method,
            pair_id=pair.id,
            assignment_id=assignment.id,
        )
        stage = pair.stage
    trial.rater_id = rater.id
    trial.seq = seq
    trial.stage = stage
    trial.generated_first = generated_first
    trial.served_1, trial.served_2 = _served_paths(session, trial)
    trial.status = "open"
    session.add(trial)
    session.flush()
    return trial


def _served_paths(session: Session, trial: Trial) -> tuple[str, str]:
    """The served copies (vtt_app.media) shown in slot 1 and 2 of a new trial."""
    image = session.get(Image, trial.image_id)
    if trial.kind == "attention":
        generated = image.attention_file or ""
    elif trial.pair_id is not None:
        generated = session.get(Pair, trial.pair_id).served
    else:  # practice: no pair
        generated = json.loads(image.practice_served or "{}").get(trial.source_method, "")
    return (generated, image.gt_served) if trial.generated_first else (image.gt_served, generated)


def release_rater_slots(session: Session, rater: Rater) -> None:
    """Give back every slot of a flagged rater (their answers stay, marked by the flag)."""
    session.execute(
        update(Assignment)
        .where(Assignment.rater_id == rater.id, Assignment.status.in_(ACTIVE_STATES))
        .values(status="excluded")
    )
