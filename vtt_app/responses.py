"""Validating and storing a rater's answer with its timing (paper Sec. 4: 1 s per image).

The page measures, per image, the ``requestAnimationFrame`` timestamps at which it was shown
and replaced (``performance.now`` clock, ms), the display's refresh rate and any tab hide or
window blur. A trial is *invalid* (stored, exported with ``valid = 0`` and its slot given
back so another rater rates the pair) when either exposure is off the study's exposure by
more than one frame, the images overlap or come out of order, or the tab was hidden or the
window lost focus while the images were on screen.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from .assignment import n_attention, release_rater_slots, release_slots
from .models import Assignment, Rater, Response, Study, TimingEvent, Trial, utcnow

#: Slack on top of one frame for the rounding of performance.now (ms).
CLOCK_SLACK_MS = 0.25
EVENT_KINDS = {"onset", "offset", "hidden", "visible", "blur", "focus", "resize", "preloaded"}
MAX_EVENTS = 200


class BadRequest(ValueError):
    """A malformed answer; the message is returned to the page with a 400."""


@dataclass
class AnswerPayload:
    """An answer as the page sent it, checked (times in ms on the page's ``performance.now``
    clock); :func:`record_answer` stores it as a :class:`~vtt_app.models.Response` row."""

    choice: int  # 1 or 2
    response_ms: float
    onset: tuple[float, float]
    offset: tuple[float, float]
    frames: tuple[int, int]
    refresh_hz: float
    window_w: int
    window_h: int
    device_pixel_ratio: float
    events: list[tuple[str, int | None, float]] = field(default_factory=list)


_SHORT = reprlib.Repr()  # a value in an error message: bounded in depth and length
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 3, 60, 60, 40


def _num(payload: dict, key: str, lo: float, hi: float) -> float:
    value = payload.get(key)  # an int of any size compares exactly (no float() overflow)
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise BadRequest(f"field {key!r} must be a finite number, got {_SHORT.repr(value)}")
    if not lo <= value <= hi:
        raise BadRequest(f"field {key!r} = {_SHORT.repr(value)} is outside [{lo}, {hi}]")
    return float(value)


def parse_answer(payload: Any) -> AnswerPayload:
    """Check the JSON body of a rating; raise :class:`BadRequest` naming the bad field."""
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    choice = payload.get("choice")
    if choice not in (1, 2) or isinstance(choice, bool):
        raise BadRequest(f"field 'choice' must be 1 or 2, got {_SHORT.repr(choice)}")
    big = 1e9
    events_in = payload.get("events", [])
    if not isinstance(events_in, list) or len(events_in) > MAX_EVENTS:
        raise BadRequest(f"field 'events' must be a list of at most {MAX_EVENTS} events")
    events = []
    for ev in events_in:
        kind = ev.get("kind") if isinstance(ev, dict) else None  # any JSON: maybe unhashable
        if not isinstance(kind, str) or kind not in EVENT_KINDS:
            raise BadRequest(f"bad event {_SHORT.repr(ev)}: kind must be one of "
                             f"{sorted(EVENT_KINDS)}")
        slot = ev.get("slot")
        if slot is not None and (type(slot) is not int or slot not in (1, 2)):
            raise BadRequest(f"bad event slot {_SHORT.repr(slot)}: null, 1 or 2")
        events.append((ev["kind"], slot, _num(ev, "t", 0, big)))
    return AnswerPayload(
        choice=int(choice),
        response_ms=_num(payload, "response_ms", 0, 3.6e6),
        onset=(_num(payload, "onset_1", 0, big), _num(payload, "onset_2", 0, big)),
        offset=(_num(payload, "offset_1", 0, big), _num(payload, "offset_2", 0, big)),
        frames=(int(_num(payload, "frames_1", 0, 1e5)), int(_num(payload, "frames_2", 0, 1e5))),
        refresh_hz=_num(payload, "refresh_hz", 1, 1000),
        window_w=int(_num(payload, "window_w", 0, 1e5)),
        window_h=int(_num(payload, "window_h", 0, 1e5)),
        device_pixel_ratio=_num(payload, "device_pixel_ratio", 0.1, 20),
        events=events,
    )


def timing_problems(ans: AnswerPayload, exposure_ms: float) -> tuple[list[str], bool, bool]:
    """Why an answer's timing cannot be trusted (empty list: valid).

    Returns:
        (reasons, tab_hidden, blurred).
    """
    reasons = []
    if not 20 <= ans.refresh_hz <= 500:
        reasons.append(f"implausible refresh rate {ans.refresh_hz:.1f} Hz")
    frame_ms = 1000.0 / ans.refresh_hz
    for k in range(2):
        shown = ans.offset[k] - ans.onset[k]
        if abs(shown - exposure_ms) > frame_ms + CLOCK_SLACK_MS:
            reasons.append(
                f"image {k + 1} shown {shown:.1f} ms, not {exposure_ms} ms within one frame "
                f"({frame_ms:.1f} ms)"
            )
    if ans.onset[1] < ans.offset[0] - CLOCK_SLACK_MS:
        reasons.append("image 2 appeared before image 1 was removed")
    start, end = ans.onset[0], ans.offset[1]
    hidden = any(kind == "hidden" for kind, _, _ in ans.events)
    blurred = any(kind == "blur" and start <= t <= end for kind, _, t in ans.events)
    if hidden:
        reasons.append("the tab was hidden during the trial")
    if blurred:
        reasons.append("the window lost focus while the images were shown")
    return reasons, hidden, blurred


def generated_slot(trial: Trial) -> int:
    """Which presentation (1 or 2) showed the generated image."""
    return 1 if trial.generated_first else 2


def update_flag(session: Session, study: Study, rater: Rater) -> None:
    """Flag the rater when failed attention checks exceed the study's allowed fraction of
    the planned checks *and* number at least ``attention_min_failures``.

    The fraction is over the planned number of checks, so a rater can be flagged before the
    sitting ends; a flagged rater's slots are given back (their answers stay, flagged). The
    minimum keeps one slip from flagging an honest rater when few checks are planned: with
    5 checks and the defaults (25%, 2), a rater answering at random (fails half) is flagged
    with probability 0.81 and an honest one failing 1 check in 10 with probability 0.08.
    """
    planned = n_attention(study)
    if rater.flagged or planned == 0:
        return
    failed = session.scalar(
        select(func.count(Response.id))
        .join(Trial, Trial.id == Response.trial_id)
        .where(Trial.rater_id == rater.id, Trial.kind == "attention",
               Response.chose_generated.is_(True))
    ) or 0
    if failed >= study.attention_min_failures and failed / planned > study.attention_max_fail_rate:
        rater.flagged = True
        release_rater_slots(session, rater)


# Core statements: an answer's rows are written without the ORM's unit of work.
_INSERT_RESPONSE = insert(Response)
_INSERT_EVENT = insert(TimingEvent)
_ANSWERED = (update(Trial).where(Trial.id == bindparam("b_trial"))
             .values(status="answered", ended_at=bindparam("b_now")))
_DONE = (update(Assignment).where(Assignment.id == bindparam("b_assignment"),
                                  Assignment.status == "open").values(status="done"))


def record_answer(session: Session, study: Study, trial: Trial, ans: AnswerPayload,
                  rater: Rater) -> Response:
    """Store the answer of an open trial, its events, and update slots and the rater flag."""
    reasons, hidden, blurred = timing_problems(ans, study.exposure_ms)
    if not (trial.shown_1 and trial.shown_2):
        reasons.append("answered before both images were delivered")
    chose_generated = ans.choice == generated_slot(trial)
    now = utcnow()
    values = dict(
        trial_id=trial.id,
        choice=ans.choice,
        chose_generated=chose_generated,
        response_ms=ans.response_ms,
        onset_1_ms=ans.onset[0],
        offset_1_ms=ans.offset[0],
        onset_2_ms=ans.onset[1],
        offset_2_ms=ans.offset[1],
        frames_1=ans.frames[0],
        frames_2=ans.frames[1],
        refresh_hz=ans.refresh_hz,
        window_w=ans.window_w,
        window_h=ans.window_h,
        device_pixel_ratio=ans.device_pixel_ratio,
        tab_hidden=hidden,
        blurred=blurred,
        valid=not reasons,
        invalid_reason="; ".join(reasons),
        created_at=now,
    )
    conn = session.connection()
    conn.execute(_INSERT_RESPONSE, values)
    events = [("onset", 1, ans.onset[0]), ("offset", 1, ans.offset[0]),
              ("onset", 2, ans.onset[1]), ("offset", 2, ans.offset[1])]
    events += [e for e in ans.events if e[0] not in ("onset", "offset")]
    conn.execute(_INSERT_EVENT,
                 [dict(trial_id=trial.id, kind=k, slot=s, t_ms=t) for k, s, t in events])
    conn.execute(_ANSWERED, {"b_trial": trial.id, "b_now": now})
    set_committed_value(trial, "status", "answered")
    set_committed_value(trial, "ended_at", now)
    if trial.assignment_id is not None:
        if reasons:  # an invalid trial gives its slot back: the pair is re-queued
            release_slots(session, "invalid", Assignment.id == trial.assignment_id,
                          Assignment.status == "open")
        else:
            conn.execute(_DONE, {"b_assignment": trial.assignment_id})
    if trial.kind == "attention":
        update_flag(session, study, rater)
    session.flush()
    return Response(**values)  # what was stored (not attached to the database session)


def answer_json(trial: Trial, resp: Response, repeated: bool = False) -> dict:
    """What the page gets back after an answer (feedback only for practice trials)."""
    out: dict[str, Any] = {
        "trial_id": trial.id,
        "valid": resp.valid,
        "repeated": repeated,
        "practice": trial.kind == "practice",
    }
    if trial.kind == "practice":
        out["correct"] = not resp.chose_generated
        out["true_slot"] = 3 - generated_slot(trial)
    return out
