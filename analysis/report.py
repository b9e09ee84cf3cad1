"""The analysis report: paper Figs. 5-8 and Table 3 from a runs folder and VTT answers.

Usage (from the project root)::

    python analysis/report.py --runs runs/<split> [--responses responses.csv] --out DIR
    python -m analysis.report ...   # the same
    pixcolor-report ...             # the same (console script; also pixcolor-bench,
                                    # pixcolor-baselines and pixcolor)

The report opens on a summary (split, photos, methods, what was computed and what was not,
and why) and the leaderboard (:mod:`analysis.leaderboard`, the table of
``python -m bench leaderboard``): every method's VTT fool rate (with ratings; the paper's
Fig. 6 numbers beside ours) and automatic metrics with 95% intervals, best marked, each
number by its display rule (:mod:`analysis.display`). Without ratings: automatic metrics,
Lab a/b histograms and intersections (Fig. 7) and sample diversity (Fig. 8). With ratings:
also the VTT table (Fig. 6), the oracle score, the refinement ablation (Fig. 5) and paired
comparisons. Writes ``figures/*.png|pdf``, ``tables/*.csv|md|tex``, ``leaderboard/``,
``grid/`` thumbnails, ``settings.json``, ``report.md`` and ``report.html``;
``--self-contained`` makes ``report.html`` one file with every image inlined.
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
from analysis.display import Display, display_frame, label  # noqa: E402
from analysis.evaluation_cache import cached_evaluation  # noqa: E402
from analysis.fid_runs import FIDOptions, runs_fid  # noqa: E402
from analysis.lab_stats import AB_EDGES  # noqa: E402
from analysis.leaderboard import Leaderboard, LeaderboardOptions, leaderboard_from_pass  # noqa: E402
from analysis.leaderboard_format import write_leaderboard  # noqa: E402
from analysis.leaderboard_vtt import VTTOptions, vtt_frame, with_vtt  # noqa: E402
from analysis.metrics import DEFAULT_METRICS, METRICS  # noqa: E402
from analysis.metrics_cache import MetricsPass  # noqa: E402
from analysis.report_html import Section, render_html, write_grid  # noqa: E402
from analysis.report_page import render_markdown  # noqa: E402
from analysis.report_summary import RunFacts, leaderboard_section, summary_section  # noqa: E402
from analysis.report_vtt import vtt_sections  # noqa: E402
from analysis.runs import GREY_METHOD, GT_METHOD, RunsFolder, skips_frame  # noqa: E402

# the MS-SSIM summary's columns (Fig. 8): statistics of the pairs' MS-SSIM
DIVERSITY_RULES = {"mean": Display("Mean MS-SSIM", 3), "min": Display("Lowest", 3),
                   "q25": Display("25th percentile", 3), "median": Display("Median", 3),
                   "q75": Display("75th percentile", 3), "max": Display("Highest", 3)}


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
    p.add_argument("--recompute", action="store_true",
                   help="compute every per-image value anew instead of taking it from the "
                        "runs folder's cache (<runs>/.metrics_cache, which the new values "
                        "refresh); the numbers are the same")
    p.add_argument("--self-contained", action="store_true",
                   help="write report.html as one file with every image inlined (data: URIs; "
                        "grid thumbnails as JPEG), linking no local file: it opens anywhere")
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
    # one pass decodes each image not yet in the runs folder's cache once: metrics, a/b
    # histograms and the sample diversity (analysis.evaluation_cache)
    ev = cached_evaluation(runs.root, methods, metric_names, gt_method=args.gt,
                           ab_bins=AB_EDGES, progress=not args.no_progress,
                           workers=args.workers, sample_prefix=args.sample_prefix,
                           ms_ssim_min_size=args.ms_ssim_min_size,
                           reuse=not getattr(args, "recompute", False))
    responses = vtt.read_responses(args.responses) if args.responses else None
    scores = None if responses is None else vtt_frame(responses, VTTOptions(
        args.resample, args.n_resamples, args.seed, args.confidence, rules, args.sample_prefix))
    board, missing = _leaderboard(ev, runs, args, scores, out / "leaderboard")
    _step(f"metrics, histograms and diversity pass: {len(ev.per_image)} image rows, "
          f"{len(ev.pairs)} pairs, {len(ev.skipped)} skipped; VTT scores; leaderboard", t0)
    facts = _facts(ev, runs, args, missing, responses, rules)
    sections = [summary_section(facts), leaderboard_section(board)]
    if responses is not None:
        sections += vtt_sections(args, rules, tab_dir, fig_dir, (responses, scores))
        sections.append(_plan_section(args, rules, responses, settings))
        settings["n_answers"] = int(len(responses))
        _step("VTT tables and figures", t0)
    sections.append(_metrics_section(ev, metric_names, tab_dir))
    if args.gt in ev.ab_counts:
        sections.append(_lab_section(ev, args.gt, tab_dir, fig_dir))
    sections += [s for s in [_global_colour_section(ev, args, tab_dir)] if s is not None]
    if len(ev.pairs):
        sections.append(_diversity_section(ev, runs, args, tab_dir, fig_dir))
    _step(f"Lab histograms, overall colour and diversity: {len(ev.pairs)} pairs", t0)
    grid_ids = write_grid(runs, methods, ev.image_ids, out / "grid", args.grid_images,
                          args.seed, fig_dir)
    settings["grid_image_ids"] = grid_ids
    _step("image grid (Table 3)", t0)
    (out / "settings.json").write_text(json.dumps(settings, indent=2, default=str) + "\n")
    render_markdown(out, sections, grid_ids)
    html = render_html(out, sections, settings, methods, grid_ids,
                       self_contained=args.self_contained)
    size = f" (self-contained, {html.stat().st_size / 1e6:.1f} MB)" if args.self_contained \
        else ""
    _step(f"report written to {html}{size} and {out / 'report.md'}", t0)
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


def _facts(ev, runs: RunsFolder, args: argparse.Namespace, missing: dict[str, str],
           responses: pd.DataFrame | None, rules: vtt.ExclusionRules) -> RunFacts:
    """What the summary says about this run (:class:`analysis.report_summary.RunFacts`)."""
    facts = RunFacts(split=runs.root.resolve().name, runs=str(args.runs), truth=args.gt,
                     photos=len(ev.image_ids), methods=list(ev.methods),
                     metrics=list(ev.metrics), missing=missing, pairs=len(ev.pairs),
                     sample_prefix=args.sample_prefix, histograms=args.gt in ev.ab_counts,
                     skipped=len(ev.skipped))
    if responses is not None:
        kept, _ = vtt.apply_exclusions(responses, rules, "main")
        facts.answers, facts.raters = len(kept), int(kept["rater_id"].nunique())
    return facts


def _metrics_section(ev, metric_names: list[str], tab_dir: Path) -> Section:
    summary = ev.summary()
    tables.write_table(summary, tab_dir, "metrics")
    ev.per_image.to_csv(tab_dir / "metrics_per_image.csv", index=False, lineterminator="\n")
    skipped = skips_frame(ev.skipped)
    skipped.to_csv(tab_dir / "skipped.csv", index=False, lineterminator="\n")
    return Section("Automatic metrics (all columns)", tables=[display_frame(summary)], text=[
        f"{len(ev.image_ids)} photos, {len(ev.methods)} methods; {len(skipped)} skipped image "
        "or metric values (tables/skipped.csv). Means over photos; the leaderboard above has "
        "their intervals. The paper (Sec. 4) warns these metrics cannot judge colorization; "
        "they are for runs without ratings."], details=[
        f"{label(m)} ({m}, {'higher' if METRICS[m].higher_is_better else 'lower'} is "
        f"better): {METRICS[m].description}" for m in ev.metrics if m in METRICS])


def _leaderboard(ev, runs: RunsFolder, args: argparse.Namespace,
                 scores: pd.DataFrame | None, out_dir: Path) -> tuple[Leaderboard, dict]:
    """The leaderboard (:mod:`analysis.leaderboard`) of this pass's per-image values, with
    FID when its weights are here and the VTT fool rate when there are ratings; written as
    CSV, Markdown and LaTeX to ``out_dir``. Also returns metric -> why not computed."""
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
    if scores is not None:
        board = with_vtt(board, scores)
    write_leaderboard(board, out_dir)
    return board, dict(mp.not_computed)


def _lab_section(ev, gt: str, tab_dir: Path, fig_dir: Path) -> Section:
    hists = ev.ab_histograms()
    inter = ev.intersections(gt)
    inter = inter[inter["method"] != gt].reset_index(drop=True)
    rules = {"a": "intersection_a", "b": "intersection_b", "mean": "intersection_mean"}
    tables.write_table(inter, tab_dir, "lab_histogram_intersection", rules)
    counts = pd.DataFrame({"bin_low": AB_EDGES[:-1], "bin_high": AB_EDGES[1:]})
    for m, c in ev.ab_counts.items():
        counts[f"{m}_a"], counts[f"{m}_b"] = c[0], c[1]
    counts.to_csv(tab_dir / "lab_histograms.csv", index=False, lineterminator="\n")
    figures.save_figure(figures.plot_ab_histograms(hists, AB_EDGES, gt), fig_dir,
                        "fig7_ab_histograms")
    figures.save_figure(figures.plot_intersections(inter).figure, fig_dir,
                        "fig7_histogram_intersection")
    return Section("Lab colour statistics (Fig. 7)", tables=[display_frame(inter, rules)],
                   text=["Intersection of each method's Lab a and b histograms with the "
                         "truth's (1 = the same marginal distribution)."],
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
    rates = {m: Display(m, 0, percent=True) for m in methods}
    tables.write_table(bands, tab_dir, "global_colour_bands", rates)
    shown = [display_frame(bands, rates)]
    text = [f"Share of outputs whose overall colour (mean Lab a, b) is further from the "
            f"truth's than a grey output's, by the truth's distance from grey (Lab units); "
            f"{len(ids)} photos that every method has. Nearly grey photos are lost to any "
            "visible colour. `python -m analysis.global_colour` adds simulated calibrated "
            "draws."]
    if pools:
        samp = global_colour.samples_table(res, pools)
        tables.write_table(samp, tab_dir, "global_colour_samples")
        shown.append(display_frame(samp))
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
    tables.write_table(dsum, tab_dir, "diversity_summary", DIVERSITY_RULES)
    figures.save_figure(figures.plot_msssim_histogram(pairs["ms_ssim"]).figure, fig_dir,
                        "fig8_ms_ssim_histogram")
    ex = diversity.example_pairs(pairs)
    strip = [(runs.load(r.method_a, r.image_id), runs.load(r.method_b, r.image_id),
              f"{r.ms_ssim:.3f}") for r in ex.itertuples()]
    figures.save_figure(figures.plot_pairs(strip), fig_dir, "fig8_example_pairs")
    n_fb = int((pairs["fallback"] != "").sum())
    return Section("Sample diversity (Fig. 8)", tables=[
        display_frame(dsum, DIVERSITY_RULES), display_frame(ex)], text=[
        f"MS-SSIM between every pair of {args.sample_prefix}* samples per image; "
        f"{n_fb} pairs used the '{args.ms_ssim_min_size}' fallback for images under "
        f"161 px; {len(dskips)} sample images skipped."],
        figures=["fig8_ms_ssim_histogram", "fig8_example_pairs"])


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
