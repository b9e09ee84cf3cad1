"""Timed-out trials: an open trial (and its slot) older than the study's
``assignment_timeout_s`` is ``expired`` and its slot re-queued (paper Sec. 4: every pair
still gets its K raters when some leave mid-trial)."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .assignment import release_slots
from .models import Assignment, Pair, Rater, Study, Trial, utcnow

_last_expiry: dict[tuple[str, str], float] = {}


def expiry_due(session: Session, study_name: str, interval_s: float) -> bool:
    """Whether :func:`expire_stale` should run now: always with ``interval_s`` <= 0, else at
    most once per ``interval_s`` per study and database in this process (the app setting
    ``EXPIRY_INTERVAL_S``, 2 s by default: the timeout is minutes long, and the scan is not
    free)."""
    mono = time.monotonic()
    key = (str(session.get_bind().url), study_name)
    if interval_s > 0 and mono - _last_expiry.get(key, -1e9) < interval_s:
        return False
    _last_expiry[key] = mono
    return True


def expire_stale(session: Session, study: Study) -> int:
    """Reclaim the study's open assignments older than its timeout; returns how many.

    The caller commits (the server runs it in a transaction of its own, so the pair rows it
    touches are not held while a trial is assigned).
    """
    now = utcnow()
    ids = release_slots(session, "expired", Assignment.status == "open",
                        Assignment.expires_at < now,
                        Assignment.pair_id.in_(select(Pair.id).where(Pair.study_id == study.id)))
    if ids:
        session.connection().execute(
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
        .execution_options(synchronize_session=False)
    )
    return len(ids)


def expire_if_stale(session: Session, study: Study, trial: Trial) -> bool:
    """Expire this open trial (and give its slot back) if its time is up; True if it was.

    What an answer checks instead of scanning the whole study: the trial's assignment
    ``expires_at``, or for a practice/attention trial its age against the same timeout.
    """
    now = utcnow()
    # An assignment expires with its trial (both made at once, with the same timeout).
    if trial.created_at >= now - timedelta(seconds=study.assignment_timeout_s):
        return False
    if trial.assignment_id is not None:
        release_slots(session, "expired", Assignment.id == trial.assignment_id,
                      Assignment.status == "open")
    trial.status = "expired"
    return True
