"""The pre-registered plan of a study, frozen at ``create-study``.

:func:`freeze` stores the plan as canonical JSON (sorted keys, no spaces, ASCII) in
``Study.plan_json`` and the SHA-256 of those bytes in ``Study.plan_sha256``. The export
writes the same bytes as ``plan.json`` (so ``sha256sum plan.json`` prints the stored hash)
and :func:`plan_markdown` as ``plan.md``; ``analysis/report.py`` checks them and states
whether the analysis followed the plan.

The plan holds the methods, the images by role with the SHA-256 of every file raters see a
copy of, K, the sitting (practice, scored and attention trials), exposure, attention and
platform settings (never the platform's completion codes: they are secret), the oracle
group, the seed, and the analysis plan: what ``analysis/report.py`` does by default, written
out here as plain values because the app does not import ``analysis`` (keep
:data:`ANALYSIS_PLAN` in step with ``analysis.vtt.ExclusionRules`` and ``report.py``'s
defaults).
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from .assignment import n_attention, scored_per_rater, sitting_length
from .models import Image, Method, Pair, Study

SCHEMA = 1

#: The analysis every study pre-registers: ``analysis/report.py``'s defaults.
ANALYSIS_PLAN: dict = {
    "primary_measure": (
        "VTT fool rate per method: the fraction of valid test answers of unflagged raters "
        "that chose the generated image over the ground truth (50% = indistinguishable)"),
    "exclusion_rules": {  # analysis.vtt.ExclusionRules()
        "require_valid": True,
        "exclude_flagged_raters": True,
        "attention_min_accuracy": "auto",  # 0.8 only when an export lacks rater_flagged
        "exclude_suspicious_raters": False,  # vtt_app.quality marks them; counted
        "min_response_ms": None,
        "max_response_ms": None,
        "main_kinds": ["test"],
        "oracle_kinds": ["oracle", "test"],
    },
    "interval": {  # report.py --resample, --confidence, --n-resamples, --seed
        "method": "percentile bootstrap",
        "resample": "raters_images",
        "confidence": 0.95,
        "n_resamples": 10000,
        "seed": 0,
    },
    "oracle_stage": (
        "after the main stage (every seed pair of the oracle group has K valid ratings), "
        "per test image the seed whose sample the largest fraction of valid, unflagged raters "
        "chose over the ground truth (ties: first in the group) is rated again by K raters "
        "who did not see that photo; its VTT score pools all scored oracle-stage answers"),
}


class PlanError(ValueError):
    """A study has no plan, or its stored plan does not match its hash."""


def canonical(plan: dict) -> str:
    """The plan as canonical JSON text (sorted keys, no spaces, ASCII only)."""
    return json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_text(text: str) -> str:
    """SHA-256 (hex) of ``text``'s UTF-8 bytes (ASCII for a canonical plan)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def freeze(session: Session, study: Study) -> None:
    """Store the study's plan (:func:`frozen_plan`) and its SHA-256 on ``study``."""
    study.plan_json = canonical(frozen_plan(session, study))
    study.plan_sha256 = sha256_text(study.plan_json)


def frozen_plan(session: Session, study: Study) -> dict:
    """The plan of a study just created (its rows flushed): see the module docstring."""
    methods = session.execute(
        select(Method.name, Method.role).where(Method.study_id == study.id).order_by(Method.id)
    ).all()
    return {
        "schema": SCHEMA,
        "study": study.name,
        "created_at": study.created_at.isoformat(timespec="seconds") + "Z",
        "runs_dir": study.runs_dir,
        "methods": [{"name": n, "role": r} for n, r in methods],
        "images": _images(session, study),
        "design": {
            "raters_per_pair": study.raters_per_pair,
            "trials_per_rater": study.trials_per_rater,
            "scored_per_rater": scored_per_rater(study),
            "practice": study.n_practice,
            "session_length": sitting_length(study),  # the schema-1 key of a sitting's length
            "exposure_ms": study.exposure_ms,
            "assignment_timeout_s": study.assignment_timeout_s,
            "seed": study.seed,
        },
        "attention": {
            "rate": study.attention_rate,
            "images": study.attention_images,
            "checks_per_rater": n_attention(study),
            "max_fail_rate": study.attention_max_fail_rate,
            "min_failures": study.attention_min_failures,
        },
        "platform": {  # the completion codes stay out: they are secret
            "platform": study.platform or "",
            "require_external_id": bool(study.require_external_id),
        },
        "oracle_group": [g for g in study.oracle_group.split(",") if g],
        "analysis": ANALYSIS_PLAN,
    }


def _images(session: Session, study: Study) -> dict:
    """Images by role with the SHA-256 of their ground truth (and, for test images, of
    each method's file); a test photo also used for attention checks is in both lists."""
    rows = session.scalars(
        select(Image).where(Image.study_id == study.id).order_by(Image.name)
    ).all()
    files: dict[int, dict[str, str]] = {}
    for image_id, method, sha in session.execute(
        select(Pair.image_id, Pair.source_method, Pair.file_sha256)
        .where(Pair.study_id == study.id, Pair.stage == "main")
    ):
        files.setdefault(image_id, {})[method] = sha
    out: dict[str, list] = {"test": [], "practice": [], "attention": []}
    for im in rows:
        if im.role == "test":
            out["test"].append({"name": im.name, "gt_sha256": im.gt_sha256,
                                "methods": dict(sorted(files.get(im.id, {}).items()))})
        elif im.role == "practice":
            out["practice"].append({"name": im.name, "gt_sha256": im.gt_sha256})
        if im.attention_file:
            out["attention"].append({"name": im.name, "gt_sha256": im.gt_sha256,
                                     "also_test": im.role == "test"})
    return out


def stored_plan(study: Study) -> dict:
    """The study's plan, after checking ``plan_json`` against ``plan_sha256``.

    Raises:
        PlanError: no plan (a study created before pre-registration), or a plan whose bytes
            no longer hash to the stored SHA-256 (changed in the database).
    """
    if not study.plan_json:
        raise PlanError(f"study {study.name!r} has no pre-registered plan (created before "
                        "plans were frozen at create-study)")
    actual = sha256_text(study.plan_json)
    if actual != study.plan_sha256:
        raise PlanError(f"the plan of study {study.name!r} does not match its SHA-256: stored "
                        f"{study.plan_sha256 or '(none)'}, plan hashes to {actual}; it was "
                        "changed after create-study")
    return json.loads(study.plan_json)


def plan_files(study: Study) -> dict[str, bytes]:
    """``plan.json`` (exactly the stored bytes) and ``plan.md`` of the study; empty without
    a plan. Not checked here: a changed plan then fails the report's hash check."""
    if not study.plan_json:
        return {}
    md = plan_markdown(json.loads(study.plan_json), study.plan_sha256)
    return {"plan.json": study.plan_json.encode("utf-8"), "plan.md": md.encode("utf-8")}


def plan_markdown(plan: dict, sha: str) -> str:
    """The plan as a human-readable pre-registration document (Markdown)."""
    lines = [f"# Pre-registered plan of study `{plan['study']}`", "",
             f"Plan SHA-256: `{sha}`", "",
             "Verify: `sha256sum plan.json` prints this hash (`plan.json` holds the exact bytes "
             f"hashed); `flask --app vtt_app plan --study {plan['study']}` checks the "
             "database's copy.", "",
             f"Frozen at create-study, {plan['created_at']} (plan schema {plan['schema']}), "
             f"from the runs folder `{plan['runs_dir']}`.", "", "## Methods", "",
             "| method | role |", "|---|---|"]
    lines += [f"| {m['name']} | {m['role']} |" for m in plan["methods"]]
    lines += ["", "## Design", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _settings_rows(plan)]
    lines += ["", "## Analysis", ""] + _analysis_lines(plan["analysis"])
    lines += ["", "## Images", ""] + _image_lines(plan)
    return "\n".join(lines) + "\n"


def _settings_rows(plan: dict) -> list[tuple[str, object]]:
    d, a, p = plan["design"], plan["attention"], plan["platform"]
    platform = p["platform"] or "plain link"
    return [
        ("Raters per pair (K)", d["raters_per_pair"]),
        ("Scored trials per rater", f"{d['trials_per_rater']} (offered: {d['scored_per_rater']})"),
        ("Practice trials (with feedback, not scored)", d["practice"]),
        ("Trials per sitting", d["session_length"]),
        ("Exposure per image", f"{d['exposure_ms']} ms"),
        ("Assignment timeout", f"{d['assignment_timeout_s']} s"),
        ("Attention checks per rater", f"{a['checks_per_rater']} (rate {a['rate']:g}, "
                                       f"{a['images']} photos)"),
        ("Rater flagged when", f"failed checks >= {a['min_failures']} and failed / planned "
                               f"checks > {a['max_fail_rate']:g}"),
        ("Platform", platform + (", platform id required" if p["require_external_id"] else "")),
        ("Oracle group", ", ".join(plan["oracle_group"]) or "(none)"),
        ("Seed (photos and pairs)", d["seed"]),
    ]


def _analysis_lines(an: dict) -> list[str]:
    iv, ex = an["interval"], an["exclusion_rules"]
    return [
        f"- Primary measure: {an['primary_measure']}.",
        f"- Scored kinds: main stage {', '.join(ex['main_kinds'])}; oracle stage "
        f"{', '.join(ex['oracle_kinds'])} (practice and attention trials never score).",
        "- Exclusions: " + "; ".join(_exclusions(ex)) + ".",
        f"- Interval: {iv['method']}, resampling {iv['resample']}, {iv['confidence']:.0%}, "
        f"{iv['n_resamples']} replicates, seed {iv['seed']}.",
        f"- Oracle stage: {an['oracle_stage']}.",
        f"- Exclusion rules as values: `{json.dumps(ex, sort_keys=True)}`.",
    ]


def _exclusions(ex: dict) -> list[str]:
    out = []
    if ex["exclude_flagged_raters"]:
        out.append("raters flagged by the app")
    acc = ex["attention_min_accuracy"]
    if acc == "auto":
        out.append("raters below 80% attention accuracy, only when an export lacks "
                   "rater_flagged")
    elif acc is not None:
        out.append(f"raters below {float(acc):.0%} attention accuracy")
    if ex["require_valid"]:
        out.append("answers marked invalid (timing, focus, interruption)")
    if ex["min_response_ms"] is not None or ex["max_response_ms"] is not None:
        out.append(f"response_ms outside [{ex['min_response_ms']}, {ex['max_response_ms']}]")
    return out or ["none"]


def _image_lines(plan: dict) -> list[str]:
    im = plan["images"]
    methods = [m["name"] for m in plan["methods"] if m["role"] == "method"]
    lines = [f"{len(im['test'])} test, {len(im['practice'])} practice and "
             f"{len(im['attention'])} attention photos. SHA-256 below: first 12 hex digits "
             "(full values in `plan.json`).", "", "### Test photos", "",
             "| photo | gt | " + " | ".join(methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    for t in im["test"]:
        cells = [t["methods"].get(m, "")[:12] for m in methods]
        lines.append(f"| {t['name']} | {t['gt_sha256'][:12]} | " + " | ".join(cells) + " |")
    for role in ("practice", "attention"):
        lines += ["", f"### {role.capitalize()} photos", ""]
        lines += [f"- {x['name']} (gt {x['gt_sha256'][:12]})" for x in im[role]] or ["(none)"]
    return lines
