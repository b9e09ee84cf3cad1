"""Training curves from run folders' ``log.csv`` files (PixColor stages and baselines alike).

One panel per run: the logged loss against the step (thin) with a running mean over
``--smooth`` rows (thick), and the learning rate on a second axis, so a warm-up, a resumed
run's decay phase and a loss that stops falling are visible at a glance.

Usage::

    python -m tools.curves runs/pixelcnn runs/baselines/cic ... --out curves.png [--smooth 8]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np


def read_log(path: Path) -> dict[str, np.ndarray]:
    """``step``, ``loss`` and ``lr`` columns of a trainer's ``log.csv`` (header rows of
    resumed runs and blank lines are skipped; a row for a step already seen replaces it)."""
    rows: dict[int, tuple[float, float]] = {}
    with open(path, newline="") as f:
        for i, row in enumerate(csv.reader(f), start=1):
            if not row or row[0] == "step":
                continue
            try:
                rows[int(row[0])] = (float(row[1]), float(row[2]))
            except (ValueError, IndexError) as e:
                raise ValueError(f"{path}, line {i}: not a step,loss,lr,... row: {row!r}") from e
    if not rows:
        raise ValueError(f"{path}: no logged steps (is this a run folder's log.csv?)")
    steps = np.array(sorted(rows))
    vals = np.array([rows[s] for s in steps])
    return {"step": steps, "loss": vals[:, 0], "lr": vals[:, 1]}


def running_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each position (fewer at the start)."""
    c = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    n = np.arange(1, len(x) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def plot(runs: list[Path], out: Path, smooth: int = 8, labels: list[str] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or [r.name for r in runs]
    fig, axes = plt.subplots(1, len(runs), figsize=(3.6 * len(runs), 3.0), squeeze=False)
    for ax, run, label in zip(axes[0], runs, labels, strict=True):
        log = read_log(run / "log.csv" if run.is_dir() else run)
        ax.plot(log["step"], log["loss"], lw=0.5, color="0.7")
        ax.plot(log["step"], running_mean(log["loss"], smooth), lw=1.5, color="C0")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        lr = ax.twinx()
        lr.plot(log["step"], log["lr"], lw=1, color="C3", ls="--")
        lr.set_ylim(0, log["lr"].max() * 1.05)
        lr.tick_params(axis="y", labelcolor="C3", labelsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (or log.csv files)")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--smooth", type=int, default=8, help="running mean over this many rows")
    ap.add_argument("--labels", nargs="+", help="panel titles (default: folder names)")
    args = ap.parse_args(argv)
    if args.labels and len(args.labels) != len(args.runs):
        ap.error(f"--labels has {len(args.labels)} names for {len(args.runs)} runs")
    try:
        plot(args.runs, args.out, args.smooth, args.labels)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
