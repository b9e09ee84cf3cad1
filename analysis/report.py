"""The analysis report: paper Figs. 5-8 and Table 3 from a runs folder and VTT answers.

Usage (from the project root)::

    python analysis/report.py --runs runs/<split> [--responses responses.csv] --out DIR
    python -m analysis.report ...   # the same
    pixcolor-report ...             # the same (console script; also pixcolor-bench,
                                    # pixcolor-baselines and pixcolor)

Without ratings: automatic metrics, Lab a/b histograms and intersections (Fig. 7) and
sample diversity (Fig. 8). With ratings: also the VTT table (Fig. 6), the oracle score, the
refinement ablation (Fig. 5) and paired comparisons. Writes ``figures/*.png|pdf``,
``tables/*.csv|md``, ``grid/`` thumbnails, ``settings.json`` and ``report.html``.
"""

from __future__ import annotations

import os

# One BLAS thread: the image passes use worker processes, and an idle OpenBLAS thread
# spin-waits on a busy core (it made a plain dot product 7 ms here). Only effective when
# this module is what imports numpy first (the script and ``python -m``); set before.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import diversity, figures, global_colour, prereg_check, tables, vtt  # noqa: E402
from analysis.evaluate import evaluate_runs  # noqa: E402
from analysis.fid_runs import FIDOptions, runs_fid  # noqa: E402
from analysis.lab_stats import AB_EDGES  # noqa: E402
from analysis.leaderboard import (  # noqa: E402
    LeaderboardOptions,
    leaderboard_from_pass,
    not_computed_line,
)
from analysis.leaderboard_format import display_frame, write_leaderboard  # noqa: E402
from analysis.metrics import DEFAULT_METRICS, METRICS  # noqa: E402
from analysis.metrics_cache import MetricsPass  # noqa: E402
from analysis.report_html import Section, render_html, write_grid  # noqa: E402
from analysis.runs import GREY_METHOD, GT_METHOD, RunsFolder, skips_frame  # noqa: E402

BASELINES = ("ltbc", "cic", "lrac")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--runs", required=True, help="benchmark output folder runs/<split>")
    p.add_argument("--responses", help="VTT export responses.csv (optional)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--gt", default=None,
                   help="ground-truth method folder (default: gt, or gt_protocol for a "
                        "protocol split's runs folder)")
    p.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                   help=f"comma-separated metric names from {sorted(METRICS)}")
    p.add_argument("--sample-prefix", default=diversity.DEFAULT_PREFIX,
                   help="methods that are samples of the same model (diversity, pooling)")
    p.add_argument("--ms-ssim-min-size", default="upsample",
                   choices=["raise", "upsample", "fewer_scales"],
                   help="MS-SSIM for images under 161 px per side")
    p.add_argument("--resample", default="raters_images",
                   choices=["answers", "images", "raters_images"], help="VTT bootstrap scheme")
    p.add_argument("--n-resamples", type=int, default=10000, help="bootstrap replicates")
    p.add_argument("--confidence", type=float, default=0.95, help="interval coverage")
    p.add_argument("--plan", help="the study's pre-registered plan.json (default: plan.json "
                   "next to --responses, if there); the report says whether it was followed")
    p.add_argument("--attention-min-accuracy", default="auto",
                   help="exclude raters below this attention-check accuracy: a number, 'off', "
                        "or 'auto' (0.8 only when the export lacks rater_flagged)")
    p.add_argument("--exclude-suspicious", action="store_true",
                   help="also drop raters the VTT app marked suspicious (rater_suspicious)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap and image-grid seed")
    p.add_argument("--grid-images", type=int, default=6, help="rows of the image grid")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes for the image passes (results do not depend on it)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def _step(msg: str, t0: float) -> None:
    print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", flush=True)


def run_report(args: argparse.Namespace) -> Path:
    """Compute everything and write the report; returns the path of report.html."""
    t0 = time.perf_counter()
    out = Path(args.out)
    fig_dir, tab_dir = out / "figures", out / "tables"
    runs = RunsFolder(args.runs)
    args.gt = args.gt or runs.reference()
    methods = runs.methods()
    metric_names = [m for m in args.metrics.split(",") if m]
    acc = args.attention_min_accuracy
    rules = vtt.ExclusionRules(attention_min_accuracy=None if acc == "off" else
                               acc if acc == "auto" else float(acc),
                               exclude_suspicious_raters=args.exclude_suspicious)
    settings = _settings(args, methods, metric_names, rules)
    # one pass decodes every image once: metrics, a/b histograms and the sample diversity
    ev = evaluate_runs(runs.root, methods, metric_names, gt_method=args.gt, ab_bins=AB_EDGES,
                       progress=not args.no_progress, workers=args.workers,
                       sample_prefix=args.sample_prefix,
                       ms_ssim_min_size=args.ms_ssim_min_size)
    sections = [_metrics_section(ev, methods, metric_names, tab_dir),
                _leaderboard_section(ev, runs, args, out / "leaderboard")]
    _step(f"metrics, histograms and diversity pass: {len(ev.per_image)} image rows, "
          f"{len(ev.pairs)} pairs, {len(ev.skipped)} skipped; leaderboard", t0)
    if args.gt in ev.ab_counts:
        sections.append(_lab_section(ev, args.gt, tab_dir, fig_dir))
    _step("Lab histogram tables and figures", t0)
    colour = _global_colour_section(ev, args, tab_dir)
    if colour is not None:
        sections.append(colour)
    if len(ev.pairs):
        sections.append(_diversity_section(ev, runs, args, tab_dir, fig_dir))
    _step(f"diversity tables and figures: {len(ev.pairs)} pairs", t0)
    if args.responses:
        sections += _vtt_sections(args, rules, tab_dir, fig_dir, settings)
        _step("VTT scores, bootstrap, tables and figures", t0)
    grid_ids = write_grid(runs, methods, ev.image_ids, out / "grid", args.grid_images,
                          args.seed, fig_dir)
    settings["grid_image_ids"] = grid_ids
    _step("image grid (Table 3)", t0)
    (out / "settings.json").write_text(json.dumps(settings, indent=2, default=str) + "\n")
    html = render_html(out, sections, settings, rules.describe() if args.responses else [],
                       methods, grid_ids)
    _step(f"report written to {html}", t0)
    return html


def _settings(args: argparse.Namespace, methods: list[str], metric_names: list[str],
              rules: vtt.ExclusionRules) -> dict:
    """Everything the report's numbers depend on (written to settings.json)."""
    return {
        "runs": str(args.runs), "responses": args.responses, "gt_method": args.gt,
        "methods": methods, "metrics": metric_names, "sample_prefix": args.sample_prefix,
        "ab_bin_edges": f"{len(AB_EDGES) - 1} bins of width {AB_EDGES[1] - AB_EDGES[0]:g} "
                        f"over [{AB_EDGES[0]:g}, {AB_EDGES[-1]:g}], outliers in end bins",
        "ms_ssim": "5 scales, Gaussian 11x11 sigma 1.5, weights 0.0448/0.2856/0.3001/0.2363/"
                   "0.1333, K1 0.01, K2 0.03, per RGB channel then averaged",
        "ms_ssim_min_size": args.ms_ssim_min_size, "resample": args.resample,
        "n_resamples": args.n_resamples, "confidence": args.confidence, "seed": args.seed,
        "exclusion_rules": rules.as_dict(), "grid_images": args.grid_images,
        "python": platform.python_version(), "numpy": np.__version__,
        "pandas": pd.__version__, "matplotlib": matplotlib.__version__,
    }


def _metrics_section(ev, methods: list[str], metric_names: list[str], tab_dir: Path
                     ) -> Section:
    summary = ev.summary()
    tables.write_table(summary, tab_dir, "metrics")
    ev.per_image.to_csv(tab_dir / "metrics_per_image.csv", index=False, lineterminator="\n")
    skipped = skips_frame(ev.skipped)
    skipped.to_csv(tab_dir / "skipped.csv", index=False, lineterminator="\n")
    return Section("Automatic metrics", tables=[summary], text=[
        f"{len(ev.image_ids)} images, {len(methods)} methods; {len(skipped)} skipped image or "
        "metric values (tables/skipped.csv). The paper (Sec. 4) warns these metrics cannot "
        "judge colorization; they are for runs without ratings.",
        "Columns: " + "; ".join(
            f"{m}: {METRICS[m].description} ({'higher' if METRICS[m].higher_is_better else 'lower'}"
            " is better)" for m in ev.metrics if m in METRICS) + ".",
        *([not_computed_line(ev.not_computed)] if ev.not_computed else [])])


def _leaderboard_section(ev, runs: RunsFolder, args: argparse.Namespace,
                         out_dir: Path) -> Section:
    """The leaderboard (:mod:`analysis.leaderboard`) of this pass's per-image values, with
    FID when its weights are here; also written as CSV, Markdown and LaTeX to ``out_dir``."""
    fid = FIDOptions(variant=runs.fid_variant(), seed=args.seed, level=args.confidence)
    options = LeaderboardOptions(metrics=tuple(ev.metrics), fid=fid, seed=args.seed,
                                 level=args.confidence, gt_method=args.gt)
    mp = MetricsPass(ev.per_image, list(ev.metrics), dict(ev.not_computed),
                     fid=runs_fid(runs.root, ev.methods, fid, gt_method=args.gt,
                                  image_ids=ev.image_ids), methods=ev.methods,
                     reference=args.gt, reference_line=runs.reference_line(args.gt,
                                                                           fid.variant))
    if mp.fid.not_computed:
        mp.not_computed[fid.column] = mp.fid.not_computed
    board = leaderboard_from_pass(mp, runs.root.resolve().name, options)
    write_leaderboard(board, out_dir)
    return Section("Leaderboard", tables=[display_frame(board)], text=[
        *board.notes, "★ best per column; † references (see the truth's colours), not "
        "ranked. CSV, Markdown and LaTeX (booktabs) in leaderboard/; published numbers of "
        "other papers there too, never mixed into these rows."])


def _lab_section(ev, gt: str, tab_dir: Path, fig_dir: Path) -> Section:
    hists = ev.ab_histograms()
    inter = ev.intersections(gt)
    inter = inter[inter["method"] != gt].reset_index(drop=True)
    tables.write_table(inter, tab_dir, "lab_histogram_intersection")
    counts = pd.DataFrame({"bin_low": AB_EDGES[:-1], "bin_high": AB_EDGES[1:]})
    for m, c in ev.ab_counts.items():
        counts[f"{m}_a"], counts[f"{m}_b"] = c[0], c[1]
    counts.to_csv(tab_dir / "lab_histograms.csv", index=False, lineterminator="\n")
    figures.save_figure(figures.plot_ab_histograms(hists, AB_EDGES, gt), fig_dir,
                        "fig7_ab_histograms")
    figures.save_figure(figures.plot_intersections(inter).figure, fig_dir,
                        "fig7_histogram_intersection")
    return Section("Lab colour statistics (Fig. 7)", tables=[inter],
                   figures=["fig7_ab_histograms", "fig7_histogram_intersection"])


def _global_colour_section(ev, args: argparse.Namespace, tab_dir: Path) -> Section | None:
    """Where outputs' overall colour loses to grey (:mod:`analysis.global_colour`), from the
    mean (a, b) the metrics pass recorded; None without ``gt`` and two photos."""
    frame = ev.mean_ab
    if args.gt != GT_METHOD:  # the chosen truth stands in for gt (a gt folder there goes)
        frame = frame[frame["method"] != GT_METHOD].replace({"method": {args.gt: GT_METHOD}})
    present = set(frame["method"])
    methods = [m for m in ev.methods if m in present and m not in (GT_METHOD, GREY_METHOD)]
    samples = diversity.sample_methods(methods, args.sample_prefix)
    pools = ["+".join(samples)] if len(samples) >= 2 else []
    if not methods or GT_METHOD not in present:
        return None
    ids, ab = global_colour.ab_arrays(frame, methods + pools)
    if len(ids) < 2:
        return None
    res = global_colour.analyse(ab, methods + pools, spreads=())
    bands = global_colour.bands_table(res, methods)
    tables.write_table(bands, tab_dir, "global_colour_bands")
    shown = [bands]
    text = [f"Share of outputs whose overall colour (mean Lab a, b) is further from the "
            f"truth's than a grey output's, by the truth's distance from grey (Lab units); "
            f"{len(ids)} photos that every method has. Nearly grey photos are lost to any "
            "visible colour. `python -m analysis.global_colour` adds simulated calibrated "
            "draws."]
    if pools:
        samp = global_colour.samples_table(res, pools)
        tables.write_table(samp, tab_dir, "global_colour_samples")
        shown.append(samp)
        text.append("Samples: single samples and the mean of a photo's samples against grey; "
                    "the spread ratio (truth to a sample over sample to sample) is 1 for a "
                    "sampler whose samples are spread like the truth, over 1 when they are "
                    "too alike or off centre, under 1 when too spread.")
    return Section("Overall colour against grey", tables=shown, text=text)


def _diversity_section(ev, runs: RunsFolder, args: argparse.Namespace, tab_dir: Path,
                       fig_dir: Path) -> Section:
    pairs, dskips = ev.pairs, ev.pair_skips
    pairs.to_csv(tab_dir / "diversity_pairs.csv", index=False, lineterminator="\n")
    dsum = diversity.diversity_summary(pairs)
    tables.write_table(dsum, tab_dir, "diversity_summary")
    figures.save_figure(figures.plot_msssim_histogram(pairs["ms_ssim"]).figure, fig_dir,
                        "fig8_ms_ssim_histogram")
    ex = diversity.example_pairs(pairs)
    strip = [(runs.load(r.method_a, r.image_id), runs.load(r.method_b, r.image_id),
              f"{r.ms_ssim:.3f}") for r in ex.itertuples()]
    figures.save_figure(figures.plot_pairs(strip), fig_dir, "fig8_example_pairs")
    n_fb = int((pairs["fallback"] != "").sum())
    return Section("Sample diversity (Fig. 8)", tables=[dsum, ex], text=[
        f"MS-SSIM between every pair of {args.sample_prefix}* samples per image; "
        f"{n_fb} pairs used the '{args.ms_ssim_min_size}' fallback for images under "
        f"161 px; {len(dskips)} sample images skipped."],
        figures=["fig8_ms_ssim_histogram", "fig8_example_pairs"])


def _vtt_sections(args: argparse.Namespace, rules: vtt.ExclusionRules, tab_dir: Path,
                  fig_dir: Path, settings: dict) -> list[Section]:
    responses = vtt.read_responses(args.responses)
    kw = {"n_resamples": args.n_resamples, "seed": args.seed, "confidence": args.confidence,
          "rules": rules}
    print("Exclusion rules:")
    for line in rules.describe():
        print("  -", line)
    _, log_main = vtt.apply_exclusions(responses, rules, "main")
    _, log_oracle = vtt.apply_exclusions(responses, rules, "oracle")
    excl = pd.concat([log_main.assign(stage="main"), log_oracle.assign(stage="oracle")])
    tables.write_table(excl, tab_dir, "vtt_exclusions")
    print(excl.to_string(index=False))
    excl_tables = [excl]
    if "invalid_reason" in responses:  # the app's reason for each invalid answer
        inv = responses[(responses["valid"] == 0) & responses["kind"].isin(["test", "oracle"])]
        reasons = (inv["invalid_reason"].fillna("(none)").value_counts()
                   .rename_axis("invalid_reason").reset_index(name="answers")
                   .sort_values(["answers", "invalid_reason"], ascending=[False, True]))
        tables.write_table(reasons, tab_dir, "vtt_invalid_reasons")
        excl_tables.append(reasons)
    scores = vtt.vtt_scores(responses, args.resample, **kw)
    pooled_label = f"{args.sample_prefix}* (pooled)"
    pooled = vtt.vtt_scores(vtt.relabel(responses, {f"{args.sample_prefix}*": pooled_label}),
                            args.resample, methods=[pooled_label], **kw)
    oracle = vtt.oracle_score(responses, args.resample, **kw)
    allscores = pd.concat([scores, pooled[pooled["n"] > 0], oracle], ignore_index=True)
    tables.write_table(allscores, tab_dir, "vtt_scores")
    fig6 = tables.vtt_table(allscores)
    tables.write_table(fig6, tab_dir, "fig6_vtt")
    figures.save_figure(figures.plot_vtt(allscores).figure, fig_dir, "fig6_vtt")
    layout = {**vtt.ABLATION_LAYOUT, ("Refined", "Sample"): f"{args.sample_prefix}*"}
    abl = vtt.ablation_table(responses, layout, resample=args.resample, **kw)
    tables.write_table(abl, tab_dir, "fig5_ablation_long")
    wide = vtt.ablation_wide(abl)
    tables.write_table(wide.reset_index(names=""), tab_dir, "fig5_ablation")
    present = set(scores["method"])
    paired = []
    relab = vtt.relabel(responses, {f"{args.sample_prefix}*": pooled_label})
    for base in BASELINES:
        if base in present and pooled["n"].iloc[0] > 0:
            paired.append(vtt.paired_comparison(relab, pooled_label, base, args.resample,
                                                **kw))
    sections = [Section("Visual Turing Test (Fig. 6)", tables=[fig6], figures=["fig6_vtt"],
                        text=[f"Percentile bootstrap, resampling {args.resample}, "
                              f"{args.n_resamples} replicates, seed {args.seed}."]),
                Section("Exclusions", tables=excl_tables),
                Section("Refinement ablation (Fig. 5)", tables=[wide.reset_index(
                    names="")])]
    if paired:
        pt = pd.DataFrame(paired)
        tables.write_table(pt, tab_dir, "vtt_paired")
        sections.append(Section("Paired comparisons", tables=[pt]))
    sel = vtt.oracle_selection(responses, args.sample_prefix, rules)
    sel.to_csv(tab_dir / "oracle_selection.csv", index=False, lineterminator="\n")
    settings["n_answers"] = int(len(responses))
    sections.append(_plan_section(args, rules, responses, settings))
    return sections


def _plan_section(args: argparse.Namespace, rules: vtt.ExclusionRules,
                  responses: pd.DataFrame, settings: dict) -> Section:
    """Whether the analysis followed the study's pre-registered plan (analysis.prereg_check)."""
    path = prereg_check.find_plan(args.plan, args.responses)
    if path is None:
        text = ["No plan.json given (--plan) or next to the responses: the analysis is not "
                "checked against a pre-registered plan."]
        return Section("Pre-registered plan", text=text)
    kept, _ = vtt.apply_exclusions(responses, rules, "main")
    actual = {"exclusion_rules": rules.as_dict(), "resample": args.resample,
              "confidence": args.confidence, "n_resamples": args.n_resamples,
              "seed": args.seed, **prereg_check.observed(kept)}
    res = prereg_check.check(path, actual)
    settings["plan"] = {k: res[k] for k in ("path", "sha256", "followed", "deviations")}
    print("\n".join(res["text"]))
    return Section("Pre-registered plan", text=res["text"])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
