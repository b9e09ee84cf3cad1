"""Where outputs' overall colour goes wrong, measured against a grey output (issue 16).

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

from analysis.lab_stats import image_ab
from analysis.runs import GREY_METHOD, GT_METHOD, RunsFolder, Skip
from pixcolor.io import ImageLoadError

# Edges of the bands of a truth's distance from grey, in CIELab units.
BAND_EDGES = (0.0, 3.0, 6.0, 10.0, 15.0, 25.0, float("inf"))
SPREADS = (1.0, 0.5, 0.25)


def mean_ab(runs_dir: str | Path, methods: Sequence[str]) -> tuple[list[str], dict[str, np.ndarray],
                                                                    list[Skip]]:
    """Mean (a, b) of every image of ``gt``, ``methods`` and (where present) ``grayscale``.

    Returns:
        (image ids kept, {method: (N, 2) float64}, skipped). An image is kept only where
        every one of those methods has a readable file for it; the others are skipped with
        the reason, never raised.
    """
    runs = RunsFolder(runs_dir)
    parts = [p for m in methods for p in m.split("+")]
    names = [GT_METHOD, *dict.fromkeys(m for m in parts if m not in (GT_METHOD,))]
    if GREY_METHOD not in names and (runs.root / GREY_METHOD).is_dir():
        names.append(GREY_METHOD)
    missing = [m for m in names if not (runs.root / m).is_dir()]
    if missing:
        raise ValueError(f"{runs.root}: no output folder for {', '.join(missing)}; "
                         "generate those methods' outputs first (python -m bench generate)")
    ids, rows, skipped = [], {m: [] for m in names}, []
    for image_id in runs.image_ids(names):
        vals = {}
        for m in names:
            try:
                vals[m] = image_ab(runs.load(m, image_id)).reshape(-1, 2).mean(0, dtype=np.float64)
            except ImageLoadError as err:
                skipped.append(Skip(m, image_id, str(err)))
                break
        if len(vals) < len(names):
            continue
        ids.append(image_id)
        for m in names:
            rows[m].append(vals[m])
    ab = {m: np.array(v, np.float64).reshape(-1, 2) for m, v in rows.items()}
    for m in methods:
        if "+" in m:
            ab[m] = np.mean([ab[p] for p in m.split("+")], axis=0)
    return ids, ab, skipped


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
    """Both analyses for every method of ``methods`` (see :func:`main`)."""
    ids, ab, skipped = mean_ab(runs_dir, methods)
    if len(ids) < 2:
        raise ValueError(f"{runs_dir}: {len(ids)} usable photos in every method of "
                         f"{list(methods)}; generate their outputs first")
    grey = grey_errors(ab)
    out = {"n": len(ids), "grey_mean": float(grey.mean()), "skipped": [s.__dict__ for s in skipped],
           "methods": {}}
    for m in methods:
        out["methods"][m] = {
            "bands": grey_bands(ab[GT_METHOD], ab[m], grey),
            "draws": {str(s): calibrated_draws(ab[GT_METHOD], ab[m], grey, s, draws, seed)
                      for s in spreads}}
        if "+" in m:
            parts = [ab[p] for p in m.split("+")]
            out["methods"][m]["spread"] = sample_spread(ab[GT_METHOD], parts)
    return out


def format_report(res: dict) -> str:
    """The :func:`report` dict as plain-text tables."""
    lines = [f"{res['n']} photos; grey's mean global colour error {res['grey_mean']:.2f}"]
    for m, r in res["methods"].items():
        d0 = next(iter(r["draws"].values()))
        lines += ["", f"{m}: {d0['centre_ratio']:.3f}x grey, "
                  f"{d0['centre_worse_than_grey']:.0%} worse than grey",
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
    if res["skipped"]:
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
