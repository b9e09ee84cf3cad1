"""Time ``analysis/report.py`` end to end on generated runs (target: 500 images in 60 s).

The target: the full report for 500 images x 7 systems x 5 raters with 10,000 bootstrap
resamples in at most 60 s on a 2-core machine, linear in the number of images. This script
generates a synthetic runs folder (:func:`analysis.synthetic.make_runs`, 256x256, ``gt``
plus 7 systems including ``pixcolor_s1..s3`` so the diversity pass runs) and a
``responses.csv`` (:func:`analysis.synthetic.make_responses`, 5 raters per image), runs the
report in a fresh process for each image count and prints wall time, CPU time (user + sys of
the report and its worker processes), the per-stage times the report prints and the ratio
to the 60 s target. It measures and prints; it asserts nothing.

Then, at the largest image count, the report through its cache (the runs folder's
``.metrics_cache``, :mod:`analysis.evaluation_cache`): a first run on a folder without one
system (``--added``, default ``lrac``) and a fresh cache, a re-run after that system is
added (as a share of the first) and a re-run with nothing changed; ``--no-incremental``
leaves it out. Every image count's own run above starts from a fresh cache too.

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
import shutil
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
    """Run the report in a fresh interpreter; wall and CPU seconds plus its stage lines.
    The runs folder's cache is used as it is (remove ``<runs>/.metrics_cache`` for a first
    run)."""
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


def _print_run(title: str, r: dict) -> None:
    cpu = r["user"] + r["sys"]
    print(f"\n{title}: wall {r['wall']:.1f} s, CPU {cpu:.1f} s "
          f"(user {r['user']:.1f} + sys {r['sys']:.1f}), CPU/wall "
          f"{cpu / r['wall']:.2f}, load average before {r['load_before']:.2f}")
    print(f"  stages (report's own clock, {r['inside']:.1f} s; the rest is "
          f"interpreter start and imports):")
    for name, dt in r["stages"]:
        print(f"    {dt:6.1f} s  {name}")


def incremental(keep: Path, full: Path, n: int, args: argparse.Namespace, tmp: Path) -> None:
    """The report of ``n`` images without ``args.added`` from a fresh cache, then with it,
    then again with nothing changed; printed with the re-runs as shares of the first."""
    runs, responses = subset(keep, full, n, args.raters)
    folder = keep / f"{runs.name}_incremental"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(runs / "manifest.csv", folder / "manifest.csv")
    for m in ("gt", *SYSTEMS):
        if m != args.added:
            (folder / m).symlink_to(runs / m, target_is_directory=True)
    timed = {}
    for step in ("first", "added", "unchanged"):
        if step == "added":
            (folder / args.added).symlink_to(runs / args.added, target_is_directory=True)
        timed[step] = time_report(folder, responses, tmp / f"incremental_{step}",
                                  args.n_resamples, args.workers, args.report_arg)
    first = timed["first"]
    _print_run(f"{n} images, first run without {args.added} (fresh cache)", first)
    for step, what in (("added", f"re-run after adding {args.added}"),
                       ("unchanged", "re-run with nothing changed")):
        r = timed[step]
        _print_run(f"{n} images, {what}", r)
        print(f"  = {r['wall'] / first['wall']:.0%} of the first run's wall time, "
              f"{(r['user'] + r['sys']) / (first['user'] + first['sys']):.0%} of its CPU "
              f"time; the first stage (image values, VTT scores, leaderboard) "
              f"{_stage(r) / max(_stage(first), 1e-9):.0%} of the first's")
    shutil.rmtree(folder, ignore_errors=True)


def _stage(r: dict) -> float:
    """Seconds of the report's first stage (the image values, VTT scores, leaderboard)."""
    return r["stages"][0][1] if r["stages"] else float("nan")


def _metrics_pass(args: argparse.Namespace, n: int) -> int:
    """``--metrics-pass``: :mod:`tools.metrics_speed` on ``n`` photos."""
    from tools.metrics_speed import main as metrics_speed

    return metrics_speed(["--images", str(n), "--size", str(args.size),
                          "--workers", str(args.workers),
                          *(["--keep", args.keep] if args.keep else []),
                          *(["--old", args.old] if args.old else [])])


def _parser() -> argparse.ArgumentParser:
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
    p.add_argument("--added", default="lrac", choices=SYSTEMS,
                   help="the system added before the incremental re-run")
    p.add_argument("--no-incremental", action="store_true",
                   help="leave out the first run / re-run with one more system / unchanged "
                        "re-run through the report's cache")
    return p


def _print_totals(results: dict[int, dict]) -> None:
    """Linearity over the image counts and the largest count against the target."""
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from analysis.metrics_cache import CACHE_DIR

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
            shutil.rmtree(runs / CACHE_DIR, ignore_errors=True)  # a first run
            results[n] = time_report(runs, responses, Path(tmp) / f"out_{n}",
                                     args.n_resamples, args.workers, args.report_arg)
            _print_run(f"{n} images", results[n])
        _print_totals(results)
        if not args.no_incremental:
            incremental(keep, full, max(counts), args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
