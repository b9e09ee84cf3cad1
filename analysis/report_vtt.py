"""The report's Visual Turing Test sections: Fig. 6, the exclusions, Fig. 5, paired tests.

:func:`vtt_sections` takes the answers and their scores (:func:`analysis.leaderboard_vtt.vtt_frame`:
every rated method, the pooled samples and the oracle, with the 95% interval of the chosen
bootstrap and one standard deviation over answers) and writes the tables (CSV raw; Markdown
and LaTeX as shown) and the Fig. 6 figure.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analysis import figures, tables, vtt
from analysis.display import Display, display_frame
from analysis.report_html import Section

BASELINES = ("ltbc", "cic", "lrac")
RATE_RULES = {"low": Display("95% interval low", 1, percent=True),
              "high": Display("95% interval high", 1, percent=True),
              "sd": Display("Bootstrap SD over answers", 2, percent=True), "n": "answers",
              "row": Display("Row"), "column": Display("Column"), "methods": Display("Methods")}
PAIRED_RULES = {"n_images": "images",
                "low": Display("A - B, 95% interval low", 1, percent=True),
                "high": Display("A - B, 95% interval high", 1, percent=True)}


def _exclusions(responses: pd.DataFrame, rules: vtt.ExclusionRules, tab_dir: Path
                ) -> list[pd.DataFrame]:
    """The answers each rule removed per stage, and the app's reasons for invalid answers."""
    _, log_main = vtt.apply_exclusions(responses, rules, "main")
    _, log_oracle = vtt.apply_exclusions(responses, rules, "oracle")
    excl = pd.concat([log_main.assign(stage="main"), log_oracle.assign(stage="oracle")])
    tables.write_table(excl, tab_dir, "vtt_exclusions")
    print(excl.to_string(index=False))
    shown = [excl]
    if "invalid_reason" in responses:  # the app's reason for each invalid answer
        inv = responses[(responses["valid"] == 0) & responses["kind"].isin(["test", "oracle"])]
        reasons = (inv["invalid_reason"].fillna("(none)").value_counts()
                   .rename_axis("invalid_reason").reset_index(name="answers")
                   .sort_values(["answers", "invalid_reason"], ascending=[False, True]))
        tables.write_table(reasons, tab_dir, "vtt_invalid_reasons")
        shown.append(reasons)
    return [display_frame(t) for t in shown]


def _paired(responses: pd.DataFrame, scores: pd.DataFrame, args: argparse.Namespace,
            rules: vtt.ExclusionRules) -> pd.DataFrame:
    """The pooled samples against each baseline rated on common photos."""
    pooled = f"{args.sample_prefix}* (pooled)"
    relab = vtt.relabel(responses, {f"{args.sample_prefix}*": pooled})
    present = set(scores["method"])
    rows = [vtt.paired_comparison(relab, pooled, base, args.resample,
                                  n_resamples=args.n_resamples, seed=args.seed,
                                  confidence=args.confidence, rules=rules)
            for base in BASELINES if base in present and pooled in present]
    return pd.DataFrame(rows)


def vtt_sections(args: argparse.Namespace, rules: vtt.ExclusionRules, tab_dir: Path,
                 fig_dir: Path, data: tuple[pd.DataFrame, pd.DataFrame]) -> list[Section]:
    """The VTT sections of the report.

    Args:
        args: the report's options (resample, n_resamples, seed, confidence, sample_prefix).
        rules: the exclusion rules.
        tab_dir, fig_dir: where tables and figures go.
        data: the answers (:func:`analysis.vtt.read_responses`) and their scores
            (:func:`analysis.leaderboard_vtt.vtt_frame`).
    """
    responses, scores = data
    print("Exclusion rules:")
    for line in rules.describe():
        print("  -", line)
    excl = _exclusions(responses, rules, tab_dir)
    tables.write_table(scores, tab_dir, "vtt_scores", RATE_RULES)
    fig6 = tables.vtt_table(scores)
    tables.write_table(fig6, tab_dir, "fig6_vtt")
    figures.save_figure(figures.plot_vtt(scores).figure, fig_dir, "fig6_vtt")
    kw = {"n_resamples": args.n_resamples, "seed": args.seed, "confidence": args.confidence,
          "rules": rules}
    layout = {**vtt.ABLATION_LAYOUT, ("Refined", "Sample"): f"{args.sample_prefix}*"}
    abl = vtt.ablation_table(responses, layout, resample=args.resample, **kw)
    tables.write_table(abl, tab_dir, "fig5_ablation_long", RATE_RULES)
    wide = vtt.ablation_wide(abl).reset_index(names="")
    tables.write_table(wide, tab_dir, "fig5_ablation")
    sections = [
        Section("Visual Turing Test (Fig. 6)", tables=[fig6], figures=["fig6_vtt"], text=[
            f"Share of valid answers in which the rater picked the colorization over the true "
            f"colours (50% = indistinguishable). 95% percentile bootstrap interval resampling "
            f"{args.resample.replace('_', ' and ')}, {args.n_resamples:,} replicates, seed "
            f"{args.seed}; ± one bootstrap standard deviation over answers, the kind of "
            "error the paper's Fig. 6 prints (the leaderboard sets ours beside the paper's)."]),
        Section("Exclusion rules", bullets=rules.describe(), tables=excl),
        Section("Refinement ablation (Fig. 5)", tables=[wide], text=[
            "VTT fool rate [95% interval] of unrefined and refined outputs, from samples and "
            "from the truth's 28x28 colours; n/a where no such method was rated."])]
    paired = _paired(responses, scores, args, rules)
    if len(paired):
        tables.write_table(paired, tab_dir, "vtt_paired", PAIRED_RULES)
        sections.append(Section("Paired comparisons", tables=[
            display_frame(paired, PAIRED_RULES)], text=[
            "The pooled samples (A) against each baseline (B) on the photos both were rated "
            "on; the bootstrap draws are shared, so the difference is paired."]))
    sel = vtt.oracle_selection(responses, args.sample_prefix, rules)
    sel.to_csv(tab_dir / "oracle_selection.csv", index=False, lineterminator="\n")
    return sections
