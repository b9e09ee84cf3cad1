"""Time the metrics pass (``analysis.metrics_cache.metrics_pass``) on a generated runs folder.

Prints, for ``--images`` photos x (``gt`` + 7 systems) of 256 x 256 (the folder of
:mod:`tools.report_speed`; ``--outputs 11`` adds 3 generated methods, the 11 outputs per photo
of the extrapolation): the first pass from a cold cache (wall, CPU seconds of the pass
and its workers, outputs per second per core = outputs / CPU seconds), a re-run after one
more method is added (its own generated outputs; as a share of the first pass), a re-run
with nothing changed, and the time of a 10,000 photos x 11 outputs pass on this machine,
extrapolated from the first pass's per-core rate. With ``--old TREE`` (a checkout of the
code to compare with, e.g. ``git worktree add /tmp/old HEAD``) it first times that
checkout's pass on the same folder and prints the ratio of the per-core rates. Every pass
runs in a fresh interpreter. It measures and prints; it asserts nothing. On a shared
machine compare CPU seconds (per-core rates), not wall times; the load average is printed.

Usage::

    python -m tools.report_speed --metrics-pass --images 300 --keep /tmp/report_speed
    python -m tools.metrics_speed --images 300 --keep /tmp/report_speed --old /tmp/old
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
NEW_METHOD = "added_method"
TARGET = (10_000, 11)  # photos x outputs of the extrapolation
_SNIPPET = ("import sys; from analysis.metrics_cache import metrics_pass; "
            "from analysis.metrics import DEFAULT_METRICS; "
            "mp = metrics_pass(sys.argv[1], workers=int(sys.argv[2]), {extra}); "
            "print(len(mp.per_image))")
_IMPORTS = ("import sys; from analysis.metrics_cache import metrics_pass; "
            "from analysis.metrics import DEFAULT_METRICS; print(0)")


def subset(keep: Path, full: Path, n: int, outputs: int, size: int) -> Path:
    """A runs folder with the first ``n`` photos of ``full`` (symlinks) and, beyond its
    folders, generated methods up to ``outputs`` folders (``gt`` included); no cache."""
    ids = pd.read_csv(full / "manifest.csv", dtype=str)["image_id"].tolist()[:n]
    runs = keep / f"{full.name}_metrics{n}x{outputs}"
    folders = [p for p in full.iterdir() if p.is_dir()]
    for folder in folders:
        (runs / folder.name).mkdir(parents=True, exist_ok=True)
        for image_id in ids:
            link = runs / folder.name / f"{image_id}.png"
            if not link.exists():
                link.symlink_to(folder / f"{image_id}.png")
    pd.DataFrame({"image_id": ids}).to_csv(runs / "manifest.csv", index=False)
    for k in range(1, outputs - len(folders) + 1):
        link = runs / f"extra_{k}"
        if not link.exists():
            link.symlink_to(generated(keep, runs, size, f"extra_{k}", k),
                            target_is_directory=True)
    return runs


def generated(keep: Path, runs: Path, size: int, name: str, seed: int) -> Path:
    """Outputs of one more method for every photo of ``runs`` (generated once, kept in
    ``keep``): the truth recoloured, so no file equals another method's."""
    from PIL import Image

    from analysis.synthetic import recolor
    from pixcolor.io import load_rgb

    ids = pd.read_csv(runs / "manifest.csv", dtype=str)["image_id"].tolist()
    folder = keep / f"{name}_{size}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for image_id in ids:
        path = folder / f"{image_id}.png"
        if not path.exists():
            gt = load_rgb(runs / "gt" / f"{image_id}.png")
            Image.fromarray(recolor(gt, rng, 30.0)).save(path)
    return folder


def time_pass(runs: Path, workers: int, tree: Path = ROOT, extra: str | None = "") -> dict:
    """One pass in a fresh interpreter (cwd ``tree``): wall and CPU seconds, outputs;
    ``extra`` None: only the interpreter start and the imports."""
    code = _IMPORTS if extra is None else _SNIPPET.format(extra=extra or
                                                          "metrics=DEFAULT_METRICS")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code, str(runs), str(workers)], cwd=tree,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        print(res.stdout[-2000:], res.stderr[-3000:], sep="\n")
        raise SystemExit(f"the metrics pass failed in {tree}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "rows": int(res.stdout.split()[-1]), "load": load}


def _line(name: str, r: dict, outputs: int, start: float) -> str:
    return (f"{name:34s} wall {r['wall']:7.1f} s  CPU {r['cpu']:7.1f} s  "
            f"{outputs / (r['cpu'] - start):6.1f} outputs/s/core  (load {r['load']:.1f})")


def _clear(runs: Path) -> None:
    shutil.rmtree(runs / ".metrics_cache", ignore_errors=True)
    for name in ("metrics_per_image.csv", "metrics_cache.json"):
        (runs / name).unlink(missing_ok=True)
    link = runs / NEW_METHOD
    if link.is_symlink():
        link.unlink()


def run(keep: Path, n: int, size: int, workers: int, old: Path | None,
        per_photo: int = 8) -> None:
    """Every measurement of the module docstring, printed."""
    from tools.report_speed import prepare

    runs = subset(keep, prepare(keep, n, size), n, per_photo, size)
    methods = [p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")]
    outputs = n * len(methods)
    added = generated(keep, runs, size, NEW_METHOD, 0)
    cores = min(workers, os.cpu_count() or 1)
    print(f"machine: {os.cpu_count()} CPUs; {n} photos x {len(methods)} outputs "
          f"({', '.join(sorted(methods))}), {size}x{size}; --workers {workers}; the default "
          "metrics (LPIPS only where its weights are found)")
    start = min(time_pass(runs, 1, extra=None)["cpu"] for _ in range(3))
    print(f"interpreter start and imports: {start:.2f} CPU s, left out of the rates below")
    rate_old = None
    if old is not None:
        _clear(runs)
        r = time_pass(runs, workers, old, "metrics=DEFAULT_METRICS, reuse=False")
        rate_old = outputs / (r["cpu"] - start)
        print(_line(f"old ({old}) first pass", r, outputs, start))
    _clear(runs)
    first = time_pass(runs, workers)
    rate = outputs / (first["cpu"] - start)
    print(_line("first pass (cold cache)", first, outputs, start))
    if rate_old:
        print(f"  per-core rate: {rate / rate_old:.2f}x the old code's")
    (runs / NEW_METHOD).symlink_to(added, target_is_directory=True)
    more = time_pass(runs, workers)
    print(_line(f"re-run, one more method (+{n})", more, n, start))
    print(f"  {100 * (more['cpu'] - start) / (first['cpu'] - start):.1f}% of the first pass's "
          f"CPU time ({100 * more['cpu'] / first['cpu']:.1f}% with the start), "
          f"{100 * more['wall'] / first['wall']:.1f}% of its wall time")
    warm = time_pass(runs, workers)
    print(f"{'re-run, nothing changed':34s} wall {warm['wall']:7.1f} s  CPU "
          f"{warm['cpu']:7.1f} s ({warm['cpu'] - start:.2f} s past the start)")
    photos, per = TARGET
    cpu = photos * per / rate
    print(f"\n{photos:,} x {per} outputs on this machine: {cpu:,.0f} CPU s = "
          f"{cpu / cores / 60:.1f} min on {cores} idle cores (first pass, extrapolated "
          f"linearly from {rate:.1f} outputs/s/core)"
          + (f"; the old code: {photos * per / rate_old / cores / 60:.1f} min" if rate_old
             else ""))
    _clear(runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=300, help="photos (default: %(default)s)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--workers", type=int, default=2, help="processes of the pass")
    p.add_argument("--outputs", type=int, default=8,
                   help="folders per photo, gt included: gt + 7 systems, and generated "
                        "methods beyond 8 (default: %(default)s)")
    p.add_argument("--old", default=None, help="a checkout of the code to compare with")
    p.add_argument("--keep", help="folder for the generated data (reused when present); "
                                  "default: a temporary folder removed afterwards")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="metrics_speed_") as tmp:
        keep = Path(args.keep) if args.keep else Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        run(keep, args.images, args.size, args.workers, Path(args.old) if args.old else None,
            args.outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
