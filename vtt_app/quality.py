"""Rater-level checks beyond the attention checks: implausible accuracy and too-fast answers.

A rater who has found a shortcut (or a script) picks the real photo far more often than the
study's other raters, or answers faster than a person can. Such raters are marked
*suspicious* in the admin page and in ``raters.csv`` (``suspicious``, ``suspicious_reason``);
their answers stay and are not excluded automatically: the researcher decides, and says so
(:mod:`analysis.vtt` can drop them with its exclusion rules).

* **Accuracy**: over a rater's valid scored (test and oracle) answers, the share choosing
  the real photo. With at least ``MIN_SCORED`` answers, a rater is suspicious when that
  many correct answers would be very unlikely (one-sided binomial tail under
  ``ALPHA``) for a rater whose accuracy is the study's median (at least 0.5).
* **Speed**: the answer's own ``response_ms`` (from the second image's offset to the key
  press, measured by the page) has a median under ``FAST_RESPONSE_MS``; or more than half
  of the rater's answers reached the server sooner after their trial was assigned than the
  two exposures take (the server's own clock: nothing the page sends can fake it).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Rater, Response, Study, Trial

MIN_SCORED = 20
ALPHA = 1e-3
FAST_RESPONSE_MS = 150.0


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if p >= 1.0:
        return 1.0
    return min(1.0, sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def _answers(session: Session, study: Study) -> dict[int, list[tuple[bool, float, float]]]:
    """Per rater id: (chose the real photo, response_ms, seconds from the trial's assignment
    to the answer's arrival) of each valid scored answer."""
    rows = session.execute(
        select(Trial.rater_id, Response.chose_generated, Response.response_ms,
               Response.created_at, Trial.created_at)
        .join(Response, Response.trial_id == Trial.id)
        .join(Rater, Rater.id == Trial.rater_id)
        .where(Rater.study_id == study.id, Response.valid.is_(True),
               Trial.kind.in_(("test", "oracle"))))
    out: dict[int, list] = defaultdict(list)
    for rater_id, chose_generated, response_ms, answered, assigned in rows:
        out[rater_id].append((not chose_generated, float(response_ms),
                              (answered - assigned).total_seconds()))
    return out


def rater_quality(session: Session, study: Study) -> tuple[dict[int, dict], float | None]:
    """Per rater id: ``n_scored``, ``accuracy``, ``median_response_ms``, ``too_fast`` (answers
    sooner than two exposures after assignment), ``suspicious`` and ``suspicious_reason``;
    and the study's median accuracy over raters with ``MIN_SCORED`` answers (None if none)."""
    answers = _answers(session, study)
    acc = {r: sum(c for c, _, _ in a) / len(a) for r, a in answers.items() if a}
    enough = [acc[r] for r, a in answers.items() if len(a) >= MIN_SCORED]
    median = statistics.median(enough) if enough else None
    min_s = 2 * study.exposure_ms / 1000
    out = {}
    for rater_id, ans in answers.items():
        n, correct = len(ans), sum(c for c, _, _ in ans)
        med_ms = statistics.median(ms for _, ms, _ in ans)
        too_fast = sum(s < min_s for _, _, s in ans)
        reasons = []
        if median is not None and n >= MIN_SCORED:
            p0 = max(median, 0.5)
            tail = binomial_tail(correct, n, p0)
            if tail < ALPHA:
                reasons.append(f"accuracy {correct}/{n} far above the study's median "
                               f"{median:.0%} (p = {tail:.1e})")
        if med_ms < FAST_RESPONSE_MS:
            reasons.append(f"median response {med_ms:.0f} ms (< {FAST_RESPONSE_MS:.0f} ms)")
        if too_fast > n / 2:
            reasons.append(f"{too_fast} of {n} answers came sooner after their trial was "
                           f"assigned than the two {study.exposure_ms}-ms exposures take")
        out[rater_id] = {"n_scored": n, "accuracy": correct / n, "median_response_ms": med_ms,
                         "too_fast": too_fast, "suspicious": bool(reasons),
                         "suspicious_reason": "; ".join(reasons)}
    return out, median


def study_warnings(quality: dict[int, dict], median: float | None) -> list[str]:
    """What the admin page should say above the scores: suspicious raters, and a study whose
    raters pick the real photo almost always (a polluted study looks like that too)."""
    warnings = []
    bad = sum(q["suspicious"] for q in quality.values())
    if bad:
        warnings.append(f"{bad} of {len(quality)} raters look suspicious (implausible accuracy "
                        "or speed; see the raters table and raters.csv). Their answers are "
                        "still counted in 'VTT so far'; the column beside it leaves them out.")
    if median is not None and median >= 0.95:
        warnings.append(f"Raters' median accuracy is {median:.0%}: they pick the real photo "
                        "almost always. Either the colourisations are easy to tell apart, or "
                        "raters have found a shortcut: check the timing and suspicious raters "
                        "before trusting these scores.")
    return warnings
