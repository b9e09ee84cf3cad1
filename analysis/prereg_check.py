"""Did the analysis follow the study's pre-registered plan?

The VTT app freezes a plan at ``create-study`` and exports it as ``plan.json`` (canonical
JSON whose SHA-256 is the plan's hash) and ``plan.md`` (which prints that hash). The report
(``--plan``; default a ``plan.json`` next to ``--responses``) recomputes the file's hash,
checks it against ``plan.md``'s, and compares its own settings with the plan's:

- the exclusion rules (``analysis.vtt.ExclusionRules``), the bootstrap's resample mode,
  confidence, number of replicates and seed;
- the study, the methods and the test photos the answers come from;
- K: no pair may count more than K raters' answers.

Each difference is a deviation ("resample: plan raters_images, report answers"); pairs
with fewer than K counted answers (a study not finished) are noted, not deviations. The
functions on dicts are pure; :func:`observed` summarises the scored answers.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd

PLAN_FILE = "plan.json"
_MD_HASH = re.compile(r"Plan SHA-256:\s*`?([0-9a-f]{64})")
_INTERVAL = ("resample", "confidence", "n_resamples", "seed")


def find_plan(plan: str | None, responses: str | None) -> Path | None:
    """The plan to check: ``plan`` if given (it must exist), else ``plan.json`` next to the
    responses file if there is one, else None."""
    if plan:
        path = Path(plan)
        if not path.is_file():
            raise FileNotFoundError(f"--plan {plan}: no such file")
        return path
    if responses:
        path = Path(responses).with_name(PLAN_FILE)
        return path if path.is_file() else None
    return None


def read_plan(path: str | Path) -> tuple[dict, str, str | None]:
    """(the plan, the SHA-256 of the file's bytes, the hash ``plan.md`` next to it states
    or None without one)."""
    path = Path(path)
    data = path.read_bytes()
    md = path.with_suffix(".md")
    found = _MD_HASH.search(md.read_text("utf-8")) if md.is_file() else None
    return json.loads(data), hashlib.sha256(data).hexdigest(), found and found.group(1)


def observed(kept: pd.DataFrame) -> dict:
    """What the scored main-stage answers (after exclusions) cover: the studies, methods and
    photos, and per method and photo how many distinct raters' answers count."""
    per_pair = kept.groupby(["method", "image_id"])["rater_id"].nunique()
    raters: dict[str, dict[str, int]] = {}
    for (method, image), n in per_pair.items():
        raters.setdefault(str(method), {})[str(image)] = int(n)
    return {
        "studies": sorted({str(s) for s in kept.get("study", pd.Series(dtype=str)) if s}),
        "methods": sorted({str(m) for m in kept["method"]}),
        "images": sorted({str(i) for i in kept["image_id"]}),
        "pair_raters": raters,
    }


def _plain(value):
    """Tuples as lists and integral floats as ints, so JSON values compare with Python's."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _dev(setting: str, plan, report) -> dict:
    return {"setting": setting, "plan": plan, "report": report}


def deviations(plan: dict, actual: dict, sha: str | None = None,
               md_sha: str | None = None) -> list[dict]:
    """Every way the analysis (``actual``: the report's settings and :func:`observed`)
    differs from ``plan``, as ``{"setting", "plan", "report"}`` dicts.

    ``actual`` holds ``exclusion_rules`` (a dict), ``resample``, ``confidence``,
    ``n_resamples``, ``seed`` and the keys of :func:`observed`. ``sha`` (of ``plan.json``)
    and ``md_sha`` (stated in ``plan.md``) are compared when both are given.
    """
    out = []
    if sha and md_sha and sha != md_sha:
        out.append(_dev("plan SHA-256 (plan.md against plan.json)", md_sha, sha))
    analysis = plan.get("analysis", {})
    want_rules = analysis.get("exclusion_rules", {})
    for key in sorted(set(want_rules) | set(actual["exclusion_rules"])):
        want, got = want_rules.get(key), actual["exclusion_rules"].get(key)
        if _plain(want) != _plain(got):
            out.append(_dev(f"exclusion rule {key}", want, got))
    interval = analysis.get("interval", {})
    for key in _INTERVAL:
        if _plain(interval.get(key)) != _plain(actual[key]):
            out.append(_dev(key, interval.get(key), actual[key]))
    out += _data_deviations(plan, actual)
    return out


def _data_deviations(plan: dict, actual: dict) -> list[dict]:
    """The study, methods, photos and K of the answers against the plan's."""
    out = []
    if actual["studies"] and actual["studies"] != [plan.get("study")]:
        out.append(_dev("study", plan.get("study"), ", ".join(actual["studies"])))
    planned = sorted(m["name"] for m in plan.get("methods", []) if m.get("role") == "method")
    if actual["methods"] != planned:
        missing = sorted(set(planned) - set(actual["methods"]))
        extra = sorted(set(actual["methods"]) - set(planned))
        out.append(_dev("methods", ", ".join(planned), ", ".join(actual["methods"])
                        + f" (not analysed: {', '.join(missing) or '-'}; not in the plan: "
                          f"{', '.join(extra) or '-'})"))
    test = {t["name"] for t in plan.get("images", {}).get("test", [])}
    unplanned = [i for i in actual["images"] if i not in test]
    if unplanned:
        out.append(_dev("test photos", f"{len(test)} photos",
                        f"{len(unplanned)} rated photos not in the plan, e.g. {unplanned[0]}"))
    k = plan.get("design", {}).get("raters_per_pair")
    most = max((n for per in actual["pair_raters"].values() for n in per.values()), default=0)
    if k is not None and most > k:
        out.append(_dev("raters per pair (K)", k, f"up to {most}"))
    return out


def notes(plan: dict, actual: dict) -> list[str]:
    """Facts about the data that are not deviations of the analysis: pairs of the plan with
    fewer than K counted answers."""
    k = plan.get("design", {}).get("raters_per_pair")
    methods = [m["name"] for m in plan.get("methods", []) if m.get("role") == "method"]
    photos = [t["name"] for t in plan.get("images", {}).get("test", [])]
    if k is None or not methods or not photos:
        return []
    counts = [actual["pair_raters"].get(m, {}).get(p, 0) for m in methods for p in photos]
    short = sum(n < k for n in counts)
    if not short:
        return [f"Every one of the plan's {len(counts)} pairs has K = {k} counted answers."]
    return [f"{short} of the plan's {len(counts)} pairs have fewer than K = {k} counted "
            f"answers ({sum(n == 0 for n in counts)} none): the study is not complete."]


def format_deviation(dev: dict) -> str:
    """``"resample: plan raters_images, report answers"``."""
    return f"{dev['setting']}: plan {dev['plan']}, report {dev['report']}"


def summary(sha: str, devs: list[dict], md_sha: str | None = None) -> list[str]:
    """The report's sentences: the plan's hash and whether the analysis followed it."""
    if md_sha is None:
        against = "no plan.md next to it to compare (check with `flask --app vtt_app plan`)."
    elif md_sha == sha:
        against = "plan.md states the same hash."
    else:
        against = f"plan.md states {md_sha}: the plan was changed after it was frozen."
    lines = [f"plan.json SHA-256: {sha}; {against}"]
    if not devs:
        lines.append(f"The analysis followed the pre-registered plan (SHA-256 {sha}).")
    else:
        lines.append(f"The analysis deviated from the pre-registered plan (SHA-256 {sha}) in "
                     f"{len(devs)} point(s):")
        lines += [f"- {format_deviation(d)}" for d in devs]
    return lines


def check(path: str | Path, actual: dict) -> dict:
    """Read the plan at ``path`` and compare: ``sha256``, ``md_sha256``, ``deviations``,
    ``notes`` and ``text`` (the report's sentences)."""
    plan, sha, md_sha = read_plan(path)
    devs = deviations(plan, actual, sha, md_sha)
    text = summary(sha, devs, md_sha) + notes(plan, actual)
    return {"path": str(path), "sha256": sha, "md_sha256": md_sha, "deviations": devs,
            "notes": notes(plan, actual), "followed": not devs, "text": text}
