"""Integrity of a study's rows: what the load test checks after a run, and what an operator
can check on a live database: no pair holds more active slots than K and every pair's slot
counter equals a recount, no rater was shown a photo twice, and (given the trial ids whose
answers a client saw acknowledged) every acknowledged answer is stored and nothing else."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .assignment import slot_count_mismatches
from .models import ACTIVE_STATES, Assignment, Pair, Rater, Response, Study, Trial


def study_problems(db: Session, study_name: str, acked: set[int] | None = None) -> list[str]:
    """The problems found (empty: all good); ``acked=None`` skips the answer comparison."""
    problems: list[str] = []
    sid = db.scalar(select(Study.id).where(Study.name == study_name))
    if sid is None:
        return [f"no study {study_name!r}"]
    raters = select(Rater.id).where(Rater.study_id == sid)
    over = db.execute(
        select(Pair.id, Pair.raters_needed, func.count(Assignment.id))
        .join(Assignment, Assignment.pair_id == Pair.id)
        .where(Assignment.status.in_(ACTIVE_STATES), Pair.study_id == sid)
        .group_by(Pair.id, Pair.raters_needed)
        .having(func.count(Assignment.id) > Pair.raters_needed)).all()
    if over:
        problems.append(f"{len(over)} pairs over K, e.g. {over[0]}")
    counters = slot_count_mismatches(db, sid)
    if counters:
        problems.append(f"{len(counters)} pair slot counters off, e.g. {counters[0]}")
    twice = db.execute(
        select(Trial.rater_id, Trial.image_id, func.count(Trial.id))
        .where(Trial.rater_id.in_(raters))
        .group_by(Trial.rater_id, Trial.image_id).having(func.count(Trial.id) > 1)).all()
    if twice:
        problems.append(f"{len(twice)} (rater, photo) shown twice, e.g. {twice[0]}")
    if acked is None:
        return problems
    stored = set(db.scalars(select(Response.trial_id).join(Trial, Trial.id == Response.trial_id)
                            .where(Trial.rater_id.in_(raters))))
    if acked - stored:
        problems.append(f"{len(acked - stored)} acknowledged answers not stored")
    if stored - acked:
        problems.append(f"{len(stored - acked)} stored answers never acknowledged")
    return problems
