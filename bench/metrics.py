"""Automatic metrics of a runs folder into ``runs/<split>/metrics.csv`` (paper Sec. 4).

The paper judges colorizations by the Visual Turing Test, not by per-pixel metrics; these
numbers are for runs without ratings and for comparison with other papers. The metrics
themselves live in :mod:`analysis.metrics` (PSNR, SSIM, colourfulness, AuC, global ab
error).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis.evaluate import compute_metrics
from analysis.metrics import DEFAULT_METRICS
from analysis.runs import order_methods
from pixcolor.io import atomic_open


def method_folders(runs_dir: Path) -> list[str]:
    """Method folders (with at least one PNG) in display order
    (:data:`analysis.runs.METHOD_ORDER`, the project's one method order)."""
    return order_methods([p.name for p in runs_dir.iterdir()
                          if p.is_dir() and any(p.glob("*.png"))])


def compute(runs_dir: str | os.PathLike, methods: Sequence[str] | None = None,
            metrics: Sequence[str] = DEFAULT_METRICS, workers: int = 1) -> pd.DataFrame:
    """Mean metrics per method; writes ``<runs_dir>/metrics.csv``.

    Args:
        runs_dir: ``runs/<split>``.
        methods: method folders (default: every folder with PNGs).
        metrics: metric names registered in :mod:`analysis.metrics`.
        workers: processes for :func:`analysis.evaluate.compute_metrics`.

    Returns:
        One row per method: ``method``, ``n``, ``n_skipped`` and a column per metric.
    """
    runs_dir = Path(runs_dir)
    methods = list(methods) if methods else method_folders(runs_dir)
    df = compute_metrics(runs_dir, methods=methods, metrics=list(metrics), workers=workers)
    rank = {m: i for i, m in enumerate(methods)}
    df = df.sort_values("method", key=lambda s: s.map(rank)).reset_index(drop=True)
    with atomic_open(runs_dir / "metrics.csv", "w", newline="") as f:
        df.to_csv(f, index=False, float_format="%.4f")
    return df


def format_table(df: pd.DataFrame) -> str:
    """A short fixed-width text table of a metrics frame."""
    cols = [c for c in df.columns if c not in ("n_skipped",)]
    cells = [[str(c) for c in cols]]
    for _, row in df.iterrows():
        cells.append([f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c])
                      for c in cols])
    widths = [max(len(r[k]) for r in cells) for k in range(len(cols))]
    lines = ["  ".join(v.rjust(w) if k else v.ljust(w) for k, (v, w) in
                       enumerate(zip(r, widths, strict=True))) for r in cells]
    return "\n".join(lines)
