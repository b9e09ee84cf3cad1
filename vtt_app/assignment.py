"""Balanced assignment of trials to raters (paper Sec. 4: each pair seen by K raters).

A rater's *sitting* (their whole sequence of trials, from consent to the completion code)
is: ``n_practice`` practice trials with feedback, then ``trials_per_rater`` scored trials
with about ``attention_rate`` attention checks mixed in at positions fixed when the rater
starts. A scored trial takes one slot of the (image, method) pair that currently has the
fewest active slots among those the rater may see (never a photo the rater has already
seen), ties broken at random. Slots are ``assignments`` rows; ``open`` and ``done`` rows
count towards K, so a pair is never over-assigned. Open rows older than the study's timeout
become ``expired`` (the slot is reclaimed, :mod:`vtt_app.expiry`); invalid trials and the
trials of flagged raters give their slot back too.

Each image of a trial is delivered once (``api.image``). A trial whose presentation started
(an image was delivered) and that is still open when the rater asks for the next trial (a
reload, a second tab, a sitting resumed after a crash) is ``interrupted``: recorded invalid
with its reason, its slot re-queued, and a new trial assigned.

Concurrency, with no lock over the whole study (so raters do not queue behind each other):
each pair keeps its count of active slots (``Pair.n_active``); a slot is claimed by the
conditional ``UPDATE pairs SET n_active = n_active + 1 WHERE id = ? AND n_active <
raters_needed`` (a row lock on one pair: two raters cannot both take its last slot; the
loser picks again), and every change of an assignment out of ``ACTIVE_STATES`` gives its
slot back in the same transaction (:func:`release_slots`). A rater's own calls are
serialised by locking the rater's row (``FOR UPDATE`` on PostgreSQL; on SQLite every
transaction takes the database's write lock with ``BEGIN IMMEDIATE``, see
:mod:`vtt_app.db`). Lock order, to keep transactions from deadlocking: rater, then
assignments, then trials, then pairs in id order.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from datetime import timedelta

import numpy as np
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    bindparam,
    case,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from .ids import external_key
from .models import ACTIVE_STATES, Assignment, Image, Method, Pair, Rater, Study, Trial, utcnow


def rater_rng(rater: Rater, salt: int = 0) -> np.random.Generator:
    """Per-rater generator from the rater's server-side secret (``Rater.plan_secret``).

    Nothing a client holds (its cookies, which carry the rater token, the pages, the
    responses, the practice feedback, the study seed) determines it, so no client can
    predict the presentation order, the attention positions or which pair comes next. The
    secret stays in the database, so a sitting's plan can be reproduced from it afterwards.
    """
    return np.random.default_rng([int(rater.plan_secret, 16), salt])


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


def sitting_length(study: Study) -> int:
    """Trials in one rater's sitting: practice + scored + attention (what the consent page
    promises; a sitting ends earlier only when other raters filled every pair left)."""
    return study.n_practice + scored_per_rater(study) + n_attention(study)


def plan_attention_positions(study: Study, rater: Rater) -> str:
    """Choose the positions in the sitting (0-based, after practice) of the attention checks."""
    rng = rater_rng(rater, salt=1)
    lo, hi = study.n_practice, sitting_length(study)
    picked = rng.choice(np.arange(lo, hi), size=n_attention(study), replace=False)
    pos = sorted(int(p) for p in picked)
    return ",".join(str(p) for p in pos)


def new_rater(
    session: Session, study: Study, browser_id: str, external_id: str | None, user_agent: str
) -> Rater:
    """Create a rater with an unguessable token, a plan secret (128 bits from the OS, kept
    server-side) and a fixed attention-check plan."""
    rater = Rater(
        study_id=study.id,
        token=secrets.token_urlsafe(32),
        public_id=secrets.token_hex(8),
        external_id=external_id or None,
        external_key=external_key(external_id),
        browser_id=browser_id,
        user_agent=user_agent.replace("\x00", "")[:500],  # PostgreSQL refuses NUL in text
        plan_secret=secrets.token_hex(16),
    )
    rater.attention_positions = plan_attention_positions(study, rater)
    session.add(rater)
    session.flush()
    return rater


def release_slots(session: Session, status: str, *where: ColumnElement[bool]) -> list[int]:
    """Move the active assignments matching ``where`` to ``status`` and give their slots back.

    Returns:
        The ids of the assignments that changed.
    """
    conn = session.connection()  # Core statements: no Assignment objects are kept loaded
    rows = conn.execute(
        update(Assignment).where(Assignment.status.in_(ACTIVE_STATES), *where)
        .values(status=status).returning(Assignment.id, Assignment.pair_id)).all()
    for pair_id, n in sorted(Counter(pair for _, pair in rows).items()):  # in id order
        conn.execute(update(Pair).where(Pair.id == pair_id).values(n_active=Pair.n_active - n))
    return [a for a, _ in rows]


def slot_count_mismatches(session: Session, study_id: int | None = None
                          ) -> list[tuple[int, int, int]]:
    """Pairs whose ``n_active`` differs from a recount of their active assignments, as
    (pair id, n_active, recount); empty when the counters are right (tests, load test)."""
    recount = (select(Assignment.pair_id, func.count(Assignment.id).label("n"))
               .where(Assignment.status.in_(ACTIVE_STATES)).group_by(Assignment.pair_id)
               .subquery())
    n = func.coalesce(recount.c.n, 0)
    query = (select(Pair.id, Pair.n_active, n).outerjoin(recount, recount.c.pair_id == Pair.id)
             .where(Pair.n_active != n).order_by(Pair.id))
    if study_id is not None:
        query = query.where(Pair.study_id == study_id)
    return [tuple(row) for row in session.execute(query)]


def current_stage(session: Session, study: Study) -> str:
    """``oracle`` once the study has an oracle stage, else ``main``."""
    has_oracle = session.scalar(
        select(Pair.id).where(Pair.study_id == study.id, Pair.stage == "oracle").limit(1)
    )
    return "oracle" if has_oracle else "main"


_SEEN = select(Trial.image_id).where(Trial.rater_id == bindparam("b_rater"))
# Ties are broken at random inside SQL: pairs are ordered by the hash
# (id^2 mod P * a + id * c + b) mod P, a degree-2 polynomial with coefficients a, b, c < 2^30
# drawn from the rater's generator (a 3-wise independent family: every tie is equally likely
# to come first, checked in tests; an affine hash is not, for consecutive ids). 64-bit safe.
_P = 2_147_483_647  # prime


def _pick(pairs, *columns) -> Select:
    """The pair (of table ``pairs``) with the fewest active slots among those with one left
    and a photo the rater has not seen, ties in a seeded random order (one row)."""
    pid = cast(pairs.c.id, BigInteger)
    coef = {k: bindparam(k, type_=BigInteger) for k in ("b_a", "b_b", "b_c")}
    rank = ((pid * pid) % _P * coef["b_a"] + pid * coef["b_c"] + coef["b_b"]) % _P
    return (select(*columns)
            .where(pairs.c.study_id == bindparam("b_study"),
                   pairs.c.n_active < pairs.c.raters_needed, pairs.c.image_id.not_in(_SEEN))
            .order_by(pairs.c.n_active, rank)
            .limit(1))


def tie_coefficients(rng: np.random.Generator) -> dict[str, int]:
    """The hash coefficients of one pick (see ``_pick``)."""
    a, b, c = (int(v) for v in rng.integers(0, 2**30, size=3))
    return {"b_a": a + 1, "b_b": b, "b_c": c}


_TRIALS_SO_FAR = (select(func.count(Trial.id), func.max(case((Trial.status == "open", Trial.id))))
                  .where(Trial.rater_id == bindparam("b_rater")))


_PAIR_FIELDS = (Pair.id, Pair.image_id, Pair.method_id, Pair.source_method, Pair.served,
                Pair.stage)
_PICK = _pick(Pair.__table__, *_PAIR_FIELDS)
_PICKED = Pair.__table__.alias("pick")
# Pick and claim in one statement: the conditional increment takes a slot only if the pair
# still has one when its row lock is granted.
# On PostgreSQL the pick skips pairs whose row another rater's transaction has locked (it is
# claiming that pair right now): no rater waits for another (without it, raters queued on
# the last few pairs of a level, for up to ~0.7 s under 200 raters); it takes the next pair
# in the order instead. SQLite has no row locks (one writer at a time) and ignores it.
_TAKE = (update(Pair)
         .where(Pair.id == _pick(_PICKED, _PICKED.c.id)
                .with_for_update(of=_PICKED, skip_locked=True).scalar_subquery(),
                Pair.n_active < Pair.raters_needed)
         .values(n_active=Pair.n_active + 1).returning(*_PAIR_FIELDS))
_METHOD_AND_GT = (select(Method.name, Image.gt_served).select_from(Pair)
                  .join(Method, Method.id == Pair.method_id).join(Image, Image.id == Pair.image_id)
                  .where(Pair.id == bindparam("b_pair")))
# (method name, ground truth's served copy) of a pair: fixed when the study is created, so
# kept per process, keyed by the database, the study and its creation time.
_PAIR_NAMES: dict[tuple, tuple[str, str]] = {}


def _method_and_gt(session: Session, study: Study, pair_id: int) -> tuple[str, str]:
    key = (str(session.get_bind().url), study.id, study.created_at, pair_id)
    if key not in _PAIR_NAMES:
        if len(_PAIR_NAMES) > 200_000:
            _PAIR_NAMES.clear()
        _PAIR_NAMES[key] = tuple(session.connection().execute(
            _METHOD_AND_GT, {"b_pair": pair_id}).one())
    return _PAIR_NAMES[key]


_INSERT_ASSIGNMENT = insert(Assignment).returning(Assignment.id)
_INSERT_TRIAL = insert(Trial).returning(Trial.id)


def _take_pair(session: Session, study: Study, rater: Rater, rng: np.random.Generator):
    """Pick a pair and claim one of its slots (a flagged rater's trial takes none); the
    pair's ``_PAIR_FIELDS``, or None when none is left. When another rater took the picked
    pair's last slot at the same moment, the pick is made again."""
    conn = session.connection()
    for _ in range(100):
        params = {"b_study": study.id, "b_rater": rater.id, **tie_coefficients(rng)}
        if not rater.flagged:
            taken = conn.execute(_TAKE, params).first()
            if taken is not None:
                return taken
        picked = conn.execute(_PICK, params).first()
        if picked is None or rater.flagged:
            return picked
    raise RuntimeError("no slot could be claimed in 100 attempts")  # a 500 the page retries


def _pick_image(
    session: Session,
    study: Study,
    rater: Rater,
    role: str,
    rng: np.random.Generator,
    attention: bool = False,
) -> Image | None:
    q = select(Image).where(Image.study_id == study.id, Image.id.not_in(_SEEN))
    q = q.where(Image.attention_file.is_not(None)) if attention else q.where(Image.role == role)
    images = list(session.scalars(q.order_by(Image.id), {"b_rater": rater.id}))
    return images[int(rng.integers(len(images)))] if images else None


INTERRUPTED = ("presentation interrupted: its images were delivered but no answer came "
               "(page reload, second tab or resumed sitting)")


def interrupt(session: Session, trial: Trial, reason: str) -> None:
    """End an open trial without an answer: invalid, with ``reason``; its slot is re-queued."""
    trial.status = "interrupted"
    trial.invalid_reason = reason
    trial.ended_at = utcnow()
    if trial.assignment_id is not None:
        release_slots(session, "invalid", Assignment.id == trial.assignment_id,
                      Assignment.status == "open")


def finish(rater: Rater) -> None:
    """Mark the rater finished and give them a completion code."""
    if rater.finished_at is None:
        rater.finished_at = utcnow()
        rater.completion_code = secrets.token_hex(5).upper()


def next_trial(session: Session, study: Study, rater: Rater,
               after: Trial | None = None) -> Trial | None:
    """Return the rater's open trial or assign the next one; ``None`` when the sitting is over.

    The caller has locked the rater's row (``SELECT ... FOR UPDATE``) and commits.

    Args:
        session: database session.
        study: the study.
        rater: the rater, locked.
        after: the rater's open trial that the caller has just ended (answered), in the
            same transaction: then no trial is open and ``after.seq + 1`` trials exist,
            which spares the query for them.

    Returns:
        The trial to show, or ``None`` (the rater is then finished).
    """
    if rater.finished_at is not None:
        return None
    if after is not None:
        seq, open_id = after.seq + 1, None  # the open trial is always the rater's newest
    else:
        seq, open_id = session.execute(_TRIALS_SO_FAR, {"b_rater": rater.id}).one()
    trial = session.get(Trial, open_id, populate_existing=True) if open_id else None
    if trial is not None and not (trial.shown_1 or trial.shown_2):
        return trial  # not shown yet (e.g. the page asked twice): the same trial
    if trial is not None:
        interrupt(session, trial, INTERRUPTED)
        trial = None
    if seq >= sitting_length(study):
        finish(rater)
        return None
    rng = rater_rng(rater, salt=100 + seq)
    generated_first = bool(rng.integers(2))
    trial, gt, generated = _unscored_trial(session, study, rater, seq, rng)
    if trial is None:
        taken = _scored_trial(session, study, rater, rng)
        if taken is None:
            finish(rater)
            return None
        trial, gt, generated = taken
    trial.rater_id = rater.id
    trial.seq = seq
    trial.generated_first = generated_first
    trial.served_1, trial.served_2 = (generated, gt) if generated_first else (gt, generated)
    trial.status = "open"
    trial.shown_1 = trial.shown_2 = False
    trial.dither_seed = int(secrets.token_hex(8), 16) >> 2  # 62 bits: fits a signed BIGINT
    trial.created_at = utcnow()
    trial.ended_at, trial.invalid_reason = None, ""
    # One Core INSERT (the unit of work costs more than the statement on this hot path); the
    # returned object is not attached to the session.
    values = {c.key: getattr(trial, c.key) for c in Trial.__table__.columns if c.key != "id"}
    trial.id = session.connection().execute(_INSERT_TRIAL, values).scalar_one()
    return trial


def _unscored_trial(session: Session, study: Study, rater: Rater, seq: int,
                    rng: np.random.Generator) -> tuple[Trial | None, str, str]:
    """A practice trial (the first ``n_practice``) or an attention check (at the rater's
    planned positions), with its ground truth's and other image's served copies; None
    otherwise, or when no photo is left for it."""
    attention = {int(p) for p in rater.attention_positions.split(",") if p}
    if seq < study.n_practice:
        image = _pick_image(session, study, rater, "practice", rng)
        methods = [m.name for m in study.methods if m.role == "method"]
        if image is not None and methods:
            method = methods[int(rng.integers(len(methods)))]
            trial = Trial(kind="practice", image_id=image.id, method_name=method,
                          source_method=method, stage=current_stage(session, study))
            return trial, image.gt_served, json.loads(image.practice_served or "{}").get(
                method, "")
    elif seq in attention:
        image = _pick_image(session, study, rater, "", rng, attention=True)
        if image is not None:
            trial = Trial(kind="attention", image_id=image.id, method_name="attention",
                          source_method="attention", stage=current_stage(session, study))
            return trial, image.gt_served, image.attention_file or ""
    return None, "", ""


def _scored_trial(session: Session, study: Study, rater: Rater, rng: np.random.Generator
                  ) -> tuple[Trial, str, str] | None:
    """A test (or oracle) trial on a pair whose slot this takes (a flagged rater's takes
    none), with the served copies; None when no pair is left for the rater."""
    pair = _take_pair(session, study, rater, rng)
    if pair is None:
        return None
    method_name, gt = _method_and_gt(session, study, pair.id)
    now = utcnow()
    assignment_id = session.connection().execute(_INSERT_ASSIGNMENT, dict(
        pair_id=pair.id,
        rater_id=rater.id,
        # A flagged rater goes on as before but no longer fills slots.
        status="excluded" if rater.flagged else "open",
        created_at=now,
        expires_at=now + timedelta(seconds=study.assignment_timeout_s),
    )).scalar_one()
    trial = Trial(kind="oracle" if pair.stage == "oracle" else "test", image_id=pair.image_id,
                  method_name=method_name, source_method=pair.source_method, pair_id=pair.id,
                  assignment_id=assignment_id, stage=pair.stage)
    return trial, gt, pair.served


def release_rater_slots(session: Session, rater: Rater) -> None:
    """Give back every slot of a flagged rater (their answers stay, marked by the flag)."""
    release_slots(session, "excluded", Assignment.rater_id == rater.id)
