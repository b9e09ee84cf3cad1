"""Visual Turing Test scores, paired comparisons, oracle and ablation (paper Sec. 4, 5, Figs. 5, 6).

The VTT score of a method is the fraction of valid test answers in which the rater picked
the generated image over the ground truth (Sec. 4; 50% means indistinguishable). Input is
the VTT app's ``responses.csv`` export, read by :mod:`analysis.vtt_responses`.

Exclusions (:class:`ExclusionRules`, printed by the report) are applied inside every
scoring function, so passing the raw export is safe; they are idempotent.
"""

from __future__ import annotations

import fnmatch
import logging
import zlib
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from analysis.bootstrap import Group, Resample, bootstrap_means, percentile_interval
from analysis.runs import order_methods
from analysis.vtt_responses import (  # noqa: F401  (re-exported: the export's reader)
    REQUIRED_COLUMNS,
    ResponsesFormatError,
    normalize_responses,
    read_responses,
)

log = logging.getLogger(__name__)

# Fig. 5 (right) layout: (row, column) -> method name or fnmatch pattern (patterns pool).
ABLATION_LAYOUT: dict[tuple[str, str], str] = {
    ("Unrefined", "Sample"): "pixcolor_unrefined",
    ("Unrefined", "GT 28x28"): "gt28_unrefined",
    ("Refined", "Sample"): "pixcolor_s*",
    ("Refined", "GT 28x28"): "gt28_refined",
}
ORACLE_LABEL = "pixcolor_oracle"
AUTO_ATTENTION_MIN_ACCURACY = 0.8  # used when the export lacks the app's rater_flagged


@dataclass(frozen=True)
class ExclusionRules:
    """Which answers count (printed in the report).

    Attributes:
        require_valid: drop answers with ``valid == 0`` (the app marks trials with invalid
            timing, e.g. the tab lost focus or an image was not shown for its full second).
        exclude_flagged_raters: drop every answer of raters with ``rater_flagged == 1``.
        attention_min_accuracy: also drop raters whose share of correct valid attention
            checks (correct: the ground truth chosen, ``chose_generated == 0``; the app's
            attention image is the ground truth with a, b negated) is below this. None
            disables it; ``"auto"`` (default) applies :data:`AUTO_ATTENTION_MIN_ACCURACY`
            only when the export has no ``rater_flagged`` column, since the app already
            flags raters with the study's own threshold. Raters without checks are kept.
        exclude_suspicious_raters: also drop raters the app marked suspicious
            (``rater_suspicious == 1``: implausible accuracy or speed, see
            :mod:`vtt_app.quality`); off by default: the report counts them.
        min_response_ms, max_response_ms: optional extra timing bounds (None: off).
        main_kinds: kinds scored in the main stage.
        oracle_kinds: kinds scored in the oracle stage.
    """

    require_valid: bool = True
    exclude_flagged_raters: bool = True
    attention_min_accuracy: float | str | None = "auto"
    exclude_suspicious_raters: bool = False
    min_response_ms: float | None = None
    max_response_ms: float | None = None
    main_kinds: tuple[str, ...] = ("test",)
    oracle_kinds: tuple[str, ...] = ("oracle", "test")

    def describe(self) -> list[str]:
        """The rules as sentences, in the order they are applied."""
        lines = [f"Main stage: only answers of kind {' or '.join(self.main_kinds)}; oracle "
                 f"stage: kind {' or '.join(self.oracle_kinds)} (practice and attention "
                 "trials never score)."]
        if self.exclude_flagged_raters:
            lines.append("Raters flagged by the VTT app (rater_flagged = 1) are excluded.")
        acc = self.attention_min_accuracy
        if acc == "auto":
            lines.append("If the export has no rater_flagged column, raters who chose the "
                         f"ground truth in fewer than {AUTO_ATTENTION_MIN_ACCURACY:.0%} of "
                         "their valid attention checks are excluded instead.")
        elif acc is not None:
            lines.append(f"Raters who chose the ground truth in fewer than {float(acc):.0%} "
                         "of their valid attention checks are excluded.")
        if self.exclude_suspicious_raters:
            lines.append("Raters the VTT app marked suspicious (rater_suspicious = 1: "
                         "implausible accuracy or speed) are excluded.")
        if self.require_valid:
            lines.append("Answers marked invalid by the app (valid = 0, e.g. bad timing) "
                         "are excluded.")
        if self.min_response_ms is not None or self.max_response_ms is not None:
            lines.append(f"Answers with response_ms outside [{self.min_response_ms}, "
                         f"{self.max_response_ms}] are excluded.")
        return lines

    def as_dict(self) -> dict:
        return asdict(self)


def apply_exclusions(responses: pd.DataFrame, rules: ExclusionRules | None = None,
                     stage: str = "main") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The answers that count for ``stage``, and how many each rule removed.

    Returns:
        (kept answers, log) where log has columns ``rule``, ``excluded`` (answers of the
        stage's scored kinds removed by the rule) and ``remaining``.
    """
    rules = rules or ExclusionRules()
    df = normalize_responses(responses)
    bad_flag: set[str] = set()
    if rules.exclude_flagged_raters:
        bad_flag = set(df.loc[df["rater_flagged"] == 1, "rater_id"])
    bad_att: set[str] = set()
    min_acc = rules.attention_min_accuracy
    if min_acc == "auto":
        min_acc = None if "rater_flagged" in responses.columns else AUTO_ATTENTION_MIN_ACCURACY
    if min_acc is not None:
        att = df[(df["kind"] == "attention") & (df["valid"] == 1)]
        acc = 1 - att.groupby("rater_id")["chose_generated"].mean()
        bad_att = set(acc.index[acc < float(min_acc)])
    bad_sus: set[str] = set()
    if rules.exclude_suspicious_raters and "rater_suspicious" in df:
        sus = pd.to_numeric(df["rater_suspicious"], errors="coerce").fillna(0)
        bad_sus = set(df.loc[sus == 1, "rater_id"])
    kinds = rules.oracle_kinds if stage == "oracle" else rules.main_kinds
    cur = df[(df["stage"] == stage) & df["kind"].isin(kinds)]
    steps = [("scored kinds of stage " + stage, len(cur))]
    for name, raters in [("raters flagged by the app", bad_flag),
                         ("raters failing attention checks", bad_att - bad_flag),
                         ("raters marked suspicious", bad_sus - bad_flag - bad_att)]:
        cur = cur[~cur["rater_id"].isin(raters)]
        steps.append((name, len(cur)))
    if rules.require_valid:
        cur = cur[cur["valid"] == 1]
        steps.append(("invalid answers (valid = 0)", len(cur)))
    if rules.min_response_ms is not None or rules.max_response_ms is not None:
        lo = -np.inf if rules.min_response_ms is None else rules.min_response_ms
        hi = np.inf if rules.max_response_ms is None else rules.max_response_ms
        cur = cur[cur["response_ms"].between(lo, hi)]
        steps.append(("response time out of bounds", len(cur)))
    rows = [{"rule": steps[0][0], "excluded": 0, "remaining": steps[0][1]}]
    rows += [{"rule": n, "excluded": prev - now, "remaining": now}
             for (_, prev), (n, now) in zip(steps, steps[1:], strict=False)]
    return cur, pd.DataFrame(rows)


def relabel(responses: pd.DataFrame, groups: dict[str, str]) -> pd.DataFrame:
    """Rename methods matching fnmatch patterns (e.g. ``{"pixcolor_s*": "pixcolor"}``)."""
    out = responses.copy()
    for pattern, label in groups.items():
        out.loc[out["method"].map(lambda m, p=pattern: fnmatch.fnmatchcase(m, p)),
                "method"] = label
    return out


def _rng(seed: int | np.random.Generator, key: str) -> np.random.Generator:
    """A generator per method: stable under adding or removing other methods."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng([int(seed), zlib.crc32(key.encode())])


def _groups(df: pd.DataFrame, methods: list[str]) -> tuple[list[Group], int, int]:
    img = pd.Categorical(df["image_id"])
    rat = pd.Categorical(df["rater_id"])
    codes_i = np.asarray(img.codes, dtype=np.int64)
    codes_r = np.asarray(rat.codes, dtype=np.int64)
    y = df["chose_generated"].to_numpy(dtype=np.float64)
    meth = df["method"].to_numpy()
    groups = [Group(y[meth == m], codes_i[meth == m], codes_r[meth == m]) for m in methods]
    return groups, len(img.categories), len(rat.categories)


def vtt_scores(responses: pd.DataFrame, resample: Resample = "answers",
               n_resamples: int = 10000, seed: int | np.random.Generator = 0, *,
               confidence: float = 0.95, rules: ExclusionRules | None = None,
               stage: str = "main", methods: list[str] | None = None) -> pd.DataFrame:
    """VTT score per method with a percentile bootstrap interval (paper Fig. 6).

    Args:
        responses: the ``responses.csv`` export as a DataFrame (raw or already filtered).
        resample: ``"answers"``, ``"images"`` or ``"raters_images"`` (two-level; see
            :mod:`analysis.bootstrap`).
        n_resamples: bootstrap replicates.
        seed: int seed (each method gets ``default_rng([seed, crc32(method)])``) or one
            ``np.random.Generator`` used for all methods in order.
        confidence: interval coverage (0.95: 2.5th to 97.5th percentile).
        rules: exclusion rules (default :class:`ExclusionRules`).
        stage: ``"main"`` or ``"oracle"``.
        methods: methods to score (default: all with answers, in display order).

    Returns:
        Columns ``method``, ``score``, ``low``, ``high`` (fractions in [0, 1]), ``n``
        (answers), ``n_images``, ``n_raters``.
    """
    kept, _ = apply_exclusions(responses, rules, stage)
    methods = methods or order_methods(kept["method"].unique().tolist())
    rows = []
    for m in methods:
        sub = kept[kept["method"] == m]
        row = {"method": m, "score": np.nan, "low": np.nan, "high": np.nan, "n": len(sub),
               "n_images": sub["image_id"].nunique(), "n_raters": sub["rater_id"].nunique()}
        if len(sub):
            groups, ni, nr = _groups(sub, [m])
            boot = bootstrap_means(groups, resample, n_resamples, _rng(seed, m), ni, nr)[0]
            lo, hi = percentile_interval(boot, confidence)
            row.update(score=float(groups[0].y.mean()), low=float(lo), high=float(hi))
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "score", "low", "high", "n", "n_images",
                                       "n_raters"])


def paired_comparison(responses: pd.DataFrame, method_a: str, method_b: str,
                      resample: Resample = "images", n_resamples: int = 10000,
                      seed: int | np.random.Generator = 0, *, confidence: float = 0.95,
                      rules: ExclusionRules | None = None, stage: str = "main") -> dict:
    """Compare two methods on the images both were rated on.

    Image (and rater) draws are shared between the two methods in each replicate, so the
    comparison is paired (except under ``"answers"``).

    Returns:
        Dict with ``method_a``, ``method_b``, ``n_images`` (common), ``score_a``,
        ``score_b``, ``diff`` (a - b), ``low``, ``high`` (interval of the difference),
        ``p_a_beats_b`` (share of replicates with a > b, ties half) and
        ``image_win_rate`` (share of common images where a's per-image score beats b's,
        ties half).

    Raises:
        ValueError: the methods share no image.
    """
    kept, _ = apply_exclusions(responses, rules, stage)
    kept = kept[kept["method"].isin([method_a, method_b])]
    common = set(kept.loc[kept["method"] == method_a, "image_id"]) & set(
        kept.loc[kept["method"] == method_b, "image_id"])
    if not common:
        raise ValueError(f"{method_a!r} and {method_b!r} share no rated image")
    kept = kept[kept["image_id"].isin(common)]
    groups, ni, nr = _groups(kept, [method_a, method_b])
    boot = bootstrap_means(groups, resample, n_resamples,
                           _rng(seed, f"{method_a}|{method_b}"), ni, nr)
    diff = boot[0] - boot[1]
    lo, hi = percentile_interval(diff, confidence)
    per = kept.groupby(["image_id", "method"])["chose_generated"].mean().unstack()
    wins = (per[method_a] > per[method_b]).mean() + 0.5 * (per[method_a] == per[method_b]).mean()
    ok = ~np.isnan(diff)
    return {"method_a": method_a, "method_b": method_b, "n_images": len(common),
            "score_a": float(groups[0].y.mean()), "score_b": float(groups[1].y.mean()),
            "diff": float(groups[0].y.mean() - groups[1].y.mean()),
            "low": float(lo), "high": float(hi),
            "p_a_beats_b": float(((diff[ok] > 0) + 0.5 * (diff[ok] == 0)).mean()),
            "image_win_rate": float(wins)}


def oracle_selection(responses: pd.DataFrame, prefix: str = "pixcolor_s",
                     rules: ExclusionRules | None = None) -> pd.DataFrame:
    """Per image, the sample the most raters liked in the main stage (paper Sec. 5.1).

    "Liked" is the fraction of valid answers choosing the sample over the ground truth;
    ties go to the method name that sorts first.

    Returns:
        Columns ``image_id``, ``method``, ``score``, ``n`` (answers of that sample).
    """
    kept, _ = apply_exclusions(responses, rules, "main")
    kept = kept[kept["method"].str.startswith(prefix)]
    per = (kept.groupby(["image_id", "method"])["chose_generated"].agg(["mean", "size"])
           .reset_index().rename(columns={"mean": "score", "size": "n"}))
    per = per.sort_values(["image_id", "score", "method"], ascending=[True, False, True])
    return per.groupby("image_id", as_index=False).first()[["image_id", "method", "score", "n"]]


def oracle_score(responses: pd.DataFrame, resample: Resample = "answers",
                 n_resamples: int = 10000, seed: int | np.random.Generator = 0, *,
                 confidence: float = 0.95, rules: ExclusionRules | None = None,
                 label: str = ORACLE_LABEL) -> pd.DataFrame:
    """VTT score of the oracle stage (best sample per image, new raters; paper Fig. 6).

    All scored oracle-stage answers are pooled under ``label`` whatever their ``method``.

    Returns:
        One row as in :func:`vtt_scores` (empty if there is no oracle stage).
    """
    df = normalize_responses(responses)
    df = df.assign(method=np.where(df["stage"] == "oracle", label, df["method"]))
    out = vtt_scores(df, resample, n_resamples, seed, confidence=confidence, rules=rules,
                     stage="oracle", methods=[label])
    return out[out["n"] > 0].reset_index(drop=True)


def ablation_table(responses: pd.DataFrame, layout: dict[tuple[str, str], str] | None = None,
                   resample: Resample = "answers", n_resamples: int = 10000,
                   seed: int | np.random.Generator = 0, *, confidence: float = 0.95,
                   rules: ExclusionRules | None = None) -> pd.DataFrame:
    """The refinement ablation of paper Fig. 5 (right) in long form.

    Args:
        layout: (row, column) -> method or fnmatch pattern; matching methods are pooled
            (default :data:`ABLATION_LAYOUT`: refined sample = all ``pixcolor_s*`` seeds).

    Returns:
        Columns ``row``, ``column``, ``methods``, ``score``, ``low``, ``high``, ``n``; NaN
        scores where no method matched.
    """
    layout = layout or ABLATION_LAYOUT
    kept, _ = apply_exclusions(responses, rules, "main")
    rows = []
    for (r, c), pattern in layout.items():
        label = f"{r} / {c}"
        match = sorted(m for m in kept["method"].unique() if fnmatch.fnmatchcase(m, pattern))
        sub = kept[kept["method"].isin(match)].assign(method=label)
        s = vtt_scores(sub, resample, n_resamples, seed, confidence=confidence, rules=rules,
                       methods=[label])
        rows.append({"row": r, "column": c, "methods": ",".join(match) or pattern,
                     **s.iloc[0][["score", "low", "high", "n"]].to_dict()})
    return pd.DataFrame(rows)


def ablation_wide(long: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Fig. 5 layout: rows Unrefined/Refined, columns Sample/GT 28x28, "33.9% [31.0, 36.8]"."""
    def cell(r: pd.Series) -> str:
        if np.isnan(r["score"]):
            return "n/a"
        return (f"{100 * r['score']:.{digits}f}% [{100 * r['low']:.{digits}f}, "
                f"{100 * r['high']:.{digits}f}]")

    t = long.assign(cell=long.apply(cell, axis=1))
    wide = t.pivot(index="row", columns="column", values="cell")
    rows = list(dict.fromkeys(long["row"]))
    cols = list(dict.fromkeys(long["column"]))
    return wide.loc[rows, cols].rename_axis(index=None, columns=None)
