"""Time ``analysis/report.py`` end to end on generated runs (target: 500 images in 60 s).

The target: the full report for 500 images x 7 systems x 5 raters with 10,000 bootstrap
resamples in at most 60 s on a 2-core machine, linear in the number of images. This script
generates a synthetic runs folder (:func:`analysis.synthetic.make_runs`, 256x256, ``gt``
plus 7 systems including ``pixcolor_s1..s3`` so the diversity pass runs) and a
``responses.csv`` (:func:`analysis.synthetic.make_responses`, 5 raters per image), runs the
report in a fresh process for each image count and prints wall time, CPU time (user + sys of
the report and its worker processes), the per-stage times the report prints and the ratio
to the 60 s target. It measures and prints; it asserts nothing.

Usage::

    python -m tools.report_speed                      # 250 and 500 images, temporary folder
    python -m tools.report_speed --images 500 --keep /tmp/report_speed   # reuse the data
    python -m tools.report_speed --metrics-pass --images 300 --old /tmp/old  # the metrics pass

With ``--metrics-pass`` it times the cached metrics pass instead (:mod:`tools.metrics_speed`:
outputs per second per core of the first pass, old code against new with ``--old``, a re-run
after adding one method as a share of the first pass, 10,000 x 11 on this machine).

On a shared machine the wall time depends on what else runs; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = ("ltbc", "cic", "lrac", "pixcolor_s1", "pixcolor_s2", "pixcolor_s3",
           "pixcolor_unrefined")
TARGET_S = 60.0
TARGET_IMAGES = 500
_STEP = re.compile(r"^\[\s*([0-9.]+) s\] (.*)$")


def prepare(keep: Path, n_max: int, size: int) -> Path:
    """Generate ``keep/runs_<n>_<size>`` (n >= n_max; reused when present); returns it."""
    from analysis.synthetic import make_runs

    for old in sorted(keep.glob(f"runs_*_{size}")):  # reuse a complete, large enough one
        if (old / ".complete").exists() and int(old.name.split("_")[1]) >= n_max:
            print(f"reusing {old}")
            return old
    runs = keep / f"runs_{n_max}_{size}"
    stamp = runs / ".complete"
    t = time.perf_counter()
    print(f"generating {n_max} images x {len(SYSTEMS) + 1} folders of {size}x{size} "
          f"in {runs} ...", flush=True)
    make_runs(runs, n_images=n_max, size=(size, size), methods=SYSTEMS, seed=0)
    stamp.write_text("ok\n")
    print(f"  generated in {time.perf_counter() - t:.1f} s")
    return runs


def subset(keep: Path, full: Path, n: int, raters: int) -> tuple[Path, Path]:
    """A runs folder with the first ``n`` images (symlinks into ``full``) and its responses."""
    from analysis.synthetic import DEFAULT_RATES, make_responses

    ids = pd.read_csv(full / "manifest.csv", dtype=str)["image_id"].tolist()[:n]
    runs = keep / f"{full.name}_first{n}"
    if not (runs / "manifest.csv").exists():
        for m in ("gt", *SYSTEMS):
            (runs / m).mkdir(parents=True, exist_ok=True)
            for image_id in ids:
                link = runs / m / f"{image_id}.png"
                if not link.exists():
                    link.symlink_to(full / m / f"{image_id}.png")
        pd.DataFrame({"image_id": ids}).to_csv(runs / "manifest.csv", index=False)
    responses = keep / f"responses_{n}_r{raters}.csv"
    if not responses.exists():
        rates = {m: DEFAULT_RATES[m] for m in SYSTEMS}
        make_responses(ids, rates, raters_per_image=raters, seed=0).to_csv(responses, index=False)
    return runs, responses


def time_report(runs: Path, responses: Path, out: Path, n_resamples: int, workers: int,
                extra: list[str]) -> dict:
    """Run the report in a fresh interpreter; wall and CPU seconds plus its stage lines."""
    cmd = [sys.executable, str(ROOT / "analysis" / "report.py"), "--runs", str(runs),
           "--responses", str(responses), "--out", str(out), "--n-resamples",
           str(n_resamples), "--workers", str(workers), "--no-progress", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        print(res.stdout[-3000:], res.stderr[-3000:], sep="\n")
        raise SystemExit(f"report failed with exit code {res.returncode}")
    stages, last = [], 0.0
    for line in res.stdout.splitlines():
        m = _STEP.match(line)
        if m:
            at = float(m.group(1))
            stages.append((m.group(2), at - last))
            last = at
    return {"wall": wall, "user": after.ru_utime - before.ru_utime,
            "sys": after.ru_stime - before.ru_stime, "load_before": load, "stages": stages,
            "inside": last}


def _metrics_pass(args: argparse.Namespace, n: int) -> int:
    """``--metrics-pass``: :mod:`tools.metrics_speed` on ``n`` photos."""
    from tools.metrics_speed import main as metrics_speed

    return metrics_speed(["--images", str(n), "--size", str(args.size),
                          "--workers", str(args.workers),
                          *(["--keep", args.keep] if args.keep else []),
                          *(["--old", args.old] if args.old else [])])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", default="250,500",
                   help="comma-separated image counts to time (the largest is generated)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--raters", type=int, default=5, help="raters per image and system")
    p.add_argument("--n-resamples", type=int, default=10000, help="bootstrap replicates")
    p.add_argument("--workers", type=int, default=2, help="report --workers")
    p.add_argument("--keep", help="folder for the generated data (reused when present); "
                                  "default: a temporary folder removed afterwards")
    p.add_argument("--report-arg", action="append", default=[],
                   help="extra argument passed to report.py (repeatable)")
    p.add_argument("--metrics-pass", action="store_true",
                   help="time the cached metrics pass instead (tools.metrics_speed: outputs "
                        "per second per core, a re-run with one more method, 10,000 x 11)")
    p.add_argument("--old", default=None,
                   help="with --metrics-pass: a checkout of the code to compare with")
    args = p.parse_args(argv)
    counts = sorted({int(x) for x in args.images.split(",") if x})
    if args.metrics_pass:
        return _metrics_pass(args, max(counts))
    with tempfile.TemporaryDirectory(prefix="report_speed_") as tmp:
        keep = Path(args.keep) if args.keep else Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        full = prepare(keep, max(counts), args.size)
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
              f"before timing; systems: {', '.join(SYSTEMS)}; {args.raters} raters per "
              f"image; {args.n_resamples} resamples; --workers {args.workers}")
        results = {}
        for n in counts:
            runs, responses = subset(keep, full, n, args.raters)
            r = time_report(runs, responses, Path(tmp) / f"out_{n}", args.n_resamples,
                            args.workers, args.report_arg)
            results[n] = r
            cpu = r["user"] + r["sys"]
            print(f"\n{n} images: wall {r['wall']:.1f} s, CPU {cpu:.1f} s "
                  f"(user {r['user']:.1f} + sys {r['sys']:.1f}), CPU/wall "
                  f"{cpu / r['wall']:.2f}, load average before {r['load_before']:.2f}")
            print(f"  stages (report's own clock, {r['inside']:.1f} s; the rest is "
                  f"interpreter start and imports):")
            for name, dt in r["stages"]:
                print(f"    {dt:6.1f} s  {name}")
        if len(results) > 1:
            lo, hi = min(results), max(results)
            w = results[hi]["wall"] / results[lo]["wall"]
            c = ((results[hi]["user"] + results[hi]["sys"])
                 / (results[lo]["user"] + results[lo]["sys"]))
            print(f"\nlinearity: {hi}/{lo} images = {hi / lo:.2f}x the images took "
                  f"{w:.2f}x the wall time and {c:.2f}x the CPU time")
        n = max(results)
        r = results[n]
        scale = TARGET_IMAGES / n
        print(f"\ntarget: {TARGET_IMAGES} images in {TARGET_S:.0f} s on 2 cores. Measured at "
              f"{n} images: wall {r['wall']:.1f} s = {r['wall'] * scale / TARGET_S:.2f}x "
              f"the target{' (scaled linearly to 500)' if n != TARGET_IMAGES else ''}; "
              f"CPU {r['user'] + r['sys']:.1f} s, i.e. {(r['user'] + r['sys']) * scale / 2:.1f}"
              f" s on 2 idle cores if the work were perfectly parallel "
              f"({(r['user'] + r['sys']) * scale / 2 / TARGET_S:.2f}x the target).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
