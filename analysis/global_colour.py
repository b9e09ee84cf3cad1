"""Where outputs' overall colour goes wrong, measured against a grey output.

`global_ab` (:func:`analysis.metrics.global_ab_error`) is the distance between the mean
(a, b) of an output and of its truth; a grey output scores the truth's own distance from
grey. The benchmark table reports a method's mean over grey's (``global_ab_vs_grey``) and
its share of outputs further from the truth than grey (``worse_than_grey``). This module
says where those two numbers come from, from a runs folder (``runs/<split>``, the layout
``bench`` writes):

* :func:`grey_bands`: the photos grouped by how far their truth lies from grey. A photo
  whose truth is nearly grey (an overcast street, a glacier) is lost to any output with a
  visible colour, so a share worse than grey is mostly decided there.
* :func:`calibrated_draws`: what single draws of an honest sampler would score, if that
  sampler knew a photo's overall colour as well as a given method does. A sampler whose
  draws are spread as widely as the truth is around its own mean (calibrated) lands, for an
  isotropic Gaussian spread, sqrt(2) times as far from the truth as that mean. The draws
  are simulated as the method's mean (a, b) plus another photo's residual (truth - method),
  times ``spread``: ``spread`` 1 is a calibrated sampler centred on the method, 0 the method
  itself. The residuals are assumed to have one distribution for every photo.
* A method written ``a+b+c`` is the mean (a, b) of those methods' outputs per photo (for
  example the mean of a sampler's 3 samples), and :func:`sample_spread` says whether those
  samples are spread like the truth: a calibrated sampler's truth is one more draw, as far
  from each sample on average as two samples are from each other (ratio 1); over 1 the
  samples are too alike or off centre, under 1 too spread.

    python -m analysis.global_colour runs/holdout --methods ltbc,lrac,pixcolor_s1
    python -m analysis.global_colour runs/holdout --methods pixcolor_s1+pixcolor_s2+pixcolor_s3
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.evaluate import evaluate_runs
from analysis.metrics import grey_ratio, worse_than_grey
from analysis.runs import GREY_METHOD, GT_METHOD, RunsFolder, Skip

# Edges of the bands of a truth's distance from grey, in CIELab units.
BAND_EDGES = (0.0, 3.0, 6.0, 10.0, 15.0, 25.0, float("inf"))
SPREADS = (1.0, 0.5, 0.25)


def mean_ab(runs_dir: str | Path, methods: Sequence[str]) -> tuple[list[str], dict[str, np.ndarray],
                                                                    list[Skip]]:
    """Mean (a, b) of every image of ``gt``, ``methods`` and (where present) ``grayscale``.

    Returns:
        (image ids kept, {method: (N, 2) float64}, skipped), as :func:`ab_arrays`, from
        the one pass of :func:`analysis.evaluate.evaluate_runs`. An image is kept only
        where every one of those methods has a readable file for it; the unreadable files
        are listed with the reason, never raised.
    """
    runs = RunsFolder(runs_dir)
    names = _needed(methods, (runs.root / GREY_METHOD).is_dir())
    missing = [m for m in names if not (runs.root / m).is_dir()]
    if missing:
        raise ValueError(f"{runs.root}: no output folder for {', '.join(missing)}; "
                         "generate those methods' outputs first (python -m bench generate)")
    ev = evaluate_runs(runs.root, names, ["global_ab"])
    ids, ab = ab_arrays(ev.mean_ab, methods)
    return ids, ab, [k for k in ev.skipped if not k.metric]


def _needed(methods: Sequence[str], has_grey: bool) -> list[str]:
    """``gt``, every method (pooled ones split into their parts) and ``grayscale`` if any."""
    parts = [p for m in methods for p in m.split("+")]
    names = [GT_METHOD, *dict.fromkeys(m for m in parts if m != GT_METHOD)]
    if has_grey and GREY_METHOD not in names:
        names.append(GREY_METHOD)
    return names


def ab_arrays(frame: pd.DataFrame, methods: Sequence[str]) -> tuple[list[str],
                                                                   dict[str, np.ndarray]]:
    """Per-method arrays of overall colours from a long table of them.

    Args:
        frame: rows ``method``, ``image_id``, ``mean_a``, ``mean_b`` (for example
            :attr:`analysis.evaluate.RunsEvaluation.mean_ab`).
        methods: the methods wanted; ``a+b+c`` is the mean of those methods per photo.

    Returns:
        (image ids, in the table's order, that every needed method has: ``gt``, the methods'
        parts and ``grayscale`` where the table holds it; {method: (N, 2) float64}).
    """
    names = _needed(methods, GREY_METHOD in set(frame["method"]))
    order = list(dict.fromkeys(frame["image_id"]))
    sub = frame[frame["method"].isin(names)]
    wide = {c: sub.pivot_table(index="image_id", columns="method", values=c, aggfunc="first")
            .reindex(index=order, columns=names) for c in ("mean_a", "mean_b")}
    keep = wide["mean_a"].notna().all(axis=1) & wide["mean_b"].notna().all(axis=1)
    ids = [i for i in order if keep[i]]
    ab = {m: np.stack([wide["mean_a"].loc[ids, m].to_numpy(np.float64),
                       wide["mean_b"].loc[ids, m].to_numpy(np.float64)], axis=1).reshape(-1, 2)
          for m in names}
    for m in methods:
        if "+" in m:
            ab[m] = np.mean([ab[p] for p in m.split("+")], axis=0)
    return ids, ab


def grey_errors(ab: dict[str, np.ndarray]) -> np.ndarray:
    """Grey's global colour error per photo: from ``grayscale`` outputs where present, else
    the truth's distance from (0, 0)."""
    grey = ab.get(GREY_METHOD, np.zeros_like(ab[GT_METHOD]))
    return np.linalg.norm(grey - ab[GT_METHOD], axis=1)


def grey_bands(truth: np.ndarray, out: np.ndarray, grey: np.ndarray,
               edges: Sequence[float] = BAND_EDGES) -> list[dict]:
    """Per band of ``grey`` (the truth's distance from grey): the photos' count, the share of
    outputs further from the truth than grey, their mean error and their mean distance
    from grey (how colourful the outputs are).

    Args:
        truth, out: (N, 2) mean (a, b) of the truths and of one output per photo.
        grey: (N,) grey's error per photo (:func:`grey_errors`).
        edges: increasing band edges; a band holds ``lo <= grey < hi``.
    """
    err = np.linalg.norm(out - truth, axis=1)
    chroma = np.linalg.norm(out, axis=1)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        k = (grey >= lo) & (grey < hi)
        n = int(k.sum())
        rows.append({"lo": float(lo), "hi": float(hi), "n": n,
                     "worse_than_grey": float((err[k] > grey[k]).mean()) if n else float("nan"),
                     "error": float(err[k].mean()) if n else float("nan"),
                     "chroma": float(chroma[k].mean()) if n else float("nan")})
    return rows


def calibrated_draws(truth: np.ndarray, centre: np.ndarray, grey: np.ndarray, spread: float = 1.0,
                     draws: int = 200, seed: int = 0) -> dict:
    """Single draws of a sampler centred on ``centre`` with ``spread`` times the centre's own
    residuals as its spread (see the module docstring).

    Each draw gives photo i the residual of another photo: the photos are put in a random
    order and each takes the residual of the one ``k`` places further (``k`` random in
    1..N-1), so no photo keeps its own.

    Returns:
        {"ratio": mean draw error over grey's mean error, "worse_than_grey": share of draws
        further from the truth than grey, "centre_ratio", "centre_worse_than_grey": the same
        for ``centre`` itself}, averaged over ``draws`` draws.
    """
    n = len(truth)
    if n < 2:
        raise ValueError(f"calibrated draws need at least 2 photos, got {n}")
    rng = np.random.default_rng(seed)
    resid = truth - centre
    g = float(grey.mean())
    ratios, worse = [], []
    for _ in range(draws):
        order = rng.permutation(n)
        other = np.empty(n, np.int64)
        other[order] = order[(np.arange(n) + rng.integers(1, n)) % n]
        err = np.linalg.norm(centre + spread * resid[other] - truth, axis=1)
        ratios.append(err.mean() / g)
        worse.append((err > grey).mean())
    err0 = np.linalg.norm(resid, axis=1)
    return {"ratio": float(np.mean(ratios)), "worse_than_grey": float(np.mean(worse)),
            "centre_ratio": float(err0.mean() / g),
            "centre_worse_than_grey": float((err0 > grey).mean())}


def sample_spread(truth: np.ndarray, samples: Sequence[np.ndarray]) -> dict:
    """Whether a sampler's samples are spread like the truth, in overall colour.

    Args:
        truth: (N, 2) mean (a, b) of the truths.
        samples: k >= 2 arrays (N, 2), one per sample (seed), of the outputs' mean (a, b).

    Returns:
        {"between_samples": mean distance between two samples of a photo, "truth_to_sample":
        mean distance from the truth to a sample, "ratio": the second over the first}. For
        a calibrated sampler the truth is exchangeable with its samples and the ratio is 1.
    """
    if len(samples) < 2:
        raise ValueError(f"a sample spread needs at least 2 samples per photo, got {len(samples)}")
    s = np.stack(samples)
    pairs = [np.linalg.norm(s[i] - s[j], axis=1).mean()
             for i in range(len(s)) for j in range(i + 1, len(s))]
    between = float(np.mean(pairs))
    to_truth = float(np.linalg.norm(s - truth[None], axis=2).mean())
    return {"between_samples": between, "truth_to_sample": to_truth,
            "ratio": to_truth / between if between > 0 else float("inf")}


def report(runs_dir: str | Path, methods: Sequence[str], spreads: Sequence[float] = SPREADS,
           draws: int = 200, seed: int = 0) -> dict:
    """Both analyses for every method of ``methods`` (see :func:`main`), read from a runs
    folder: :func:`analyse` plus ``skipped``, the unreadable images."""
    ids, ab, skipped = mean_ab(runs_dir, methods)
    if len(ids) < 2:
        raise ValueError(f"{runs_dir}: {len(ids)} usable photos in every method of "
                         f"{list(methods)}; generate their outputs first")
    return {**analyse(ab, methods, spreads, draws, seed), "skipped": [s.__dict__ for s in skipped]}


def analyse(ab: dict[str, np.ndarray], methods: Sequence[str], spreads: Sequence[float] = SPREADS,
            draws: int = 200, seed: int = 0) -> dict:
    """Bands, calibrated draws and (for pooled methods) the sample spread of every method.

    Args:
        ab: {method: (N, 2)} overall colours, ``gt`` included (:func:`ab_arrays`).

    Returns:
        {"n", "grey_mean", "methods": {method: {"ratio" (mean error over grey's),
        "worse_than_grey", "bands", "draws": {spread: ...}, "spread" (pooled methods
        only)}}}.
    """
    grey = grey_errors(ab)
    truth = ab[GT_METHOD]
    out = {"n": len(truth), "grey_mean": float(grey.mean()), "methods": {}}
    for m in methods:
        err = np.linalg.norm(ab[m] - truth, axis=1)
        out["methods"][m] = {
            "ratio": grey_ratio(err, grey), "worse_than_grey": worse_than_grey(err, grey),
            "bands": grey_bands(truth, ab[m], grey),
            "draws": {str(s): calibrated_draws(truth, ab[m], grey, s, draws, seed)
                      for s in spreads}}
        if "+" in m:
            out["methods"][m]["spread"] = sample_spread(truth, [ab[p] for p in m.split("+")])
    return out


def bands_table(res: dict, methods: Sequence[str]) -> pd.DataFrame:
    """The share of each method's outputs further from the truth's overall colour than
    grey, per band of the truth's distance from grey, and over all photos (last row)."""
    first = res["methods"][methods[0]]["bands"]
    rows = [{"truth from grey": f"{b['lo']:g}-{b['hi']:g}".replace("-inf", " and more"),
             "photos": b["n"], **{m: res["methods"][m]["bands"][i]["worse_than_grey"]
                                  for m in methods}}
            for i, b in enumerate(first) if b["n"]]
    rows.append({"truth from grey": "all", "photos": res["n"],
                 **{m: res["methods"][m]["worse_than_grey"] for m in methods}})
    return pd.DataFrame(rows, columns=["truth from grey", "photos", *methods])


def samples_table(res: dict, pools: Sequence[str]) -> pd.DataFrame:
    """For each pooled method (a sampler's samples, each also analysed on its own): single
    samples and the samples' mean against grey, and whether the samples are spread like
    the truth (:func:`sample_spread`)."""
    rows = []
    for pool in pools:
        parts = pool.split("+")
        r, sp = res["methods"][pool], res["methods"][pool]["spread"]
        rows.append({
            "samples": f"{parts[0]} .. {parts[-1]} ({len(parts)})",
            "single vs grey": float(np.mean([res["methods"][p]["ratio"] for p in parts])),
            "single worse than grey": float(np.mean([res["methods"][p]["worse_than_grey"]
                                                     for p in parts])),
            "mean vs grey": r["ratio"], "mean worse than grey": r["worse_than_grey"],
            "between samples": sp["between_samples"], "truth to sample": sp["truth_to_sample"],
            "spread ratio": sp["ratio"]})
    return pd.DataFrame(rows)


def format_report(res: dict) -> str:
    """The :func:`report` dict as plain-text tables."""
    lines = [f"{res['n']} photos; grey's mean global colour error {res['grey_mean']:.2f}"]
    for m, r in res["methods"].items():
        lines += ["", f"{m}: {r['ratio']:.3f}x grey, {r['worse_than_grey']:.0%} worse than grey",
                  "  truth from grey      n  worse  error  output chroma"]
        lines += [f"  {b['lo']:>5.0f} - {b['hi']:<5.0f}  {b['n']:>5d}  {b['worse_than_grey']:>5.0%}"
                  f"  {b['error']:>5.1f}  {b['chroma']:>13.1f}" for b in r["bands"] if b["n"]]
        lines += [f"  single draws of a sampler centred on it, spread x{s}: {d['ratio']:.3f}x "
                  f"grey, {d['worse_than_grey']:.0%} worse" for s, d in r["draws"].items()]
        if "spread" in r:
            sp = r["spread"]
            lines.append(f"  its samples: {sp['between_samples']:.2f} apart, the truth "
                         f"{sp['truth_to_sample']:.2f} from one (ratio {sp['ratio']:.2f}; "
                         "1 = calibrated)")
    if res.get("skipped"):
        first = res["skipped"][0]["reason"]
        lines += ["", f"skipped {len(res['skipped'])} photos (first: {first})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", help="a benchmark output folder, runs/<split>")
    ap.add_argument("--methods", required=True,
                    help="comma-separated method folders; a+b+c is the mean of those methods' "
                    "overall colours (a sampler's samples)")
    ap.add_argument("--spreads", default=",".join(map(str, SPREADS)),
                    help="comma-separated spreads of the simulated sampler (1 = calibrated)")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    try:
        res = report(args.runs, methods, [float(s) for s in args.spreads.split(",")],
                     args.draws, args.seed)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
