"""Automatic metrics of a runs folder into ``runs/<split>/metrics.csv`` (paper Sec. 4).

The paper judges colorizations by the Visual Turing Test, not by per-pixel metrics; these
numbers are for runs without ratings and for comparison with other papers. The metrics
themselves live in :mod:`analysis.metrics` (PSNR, SSIM, colourfulness, AuC, global ab
error, LPIPS, the papers' colourfulness) and :mod:`analysis.fid_runs` (FID per method). The
per-image values are kept beside ``metrics.csv`` (:mod:`analysis.metrics_cache`), so the
leaderboard (``python -m bench leaderboard``) reuses them. A metric whose weights file is
missing is not computed; the table says so in one line, and every other metric still runs.

The truth and FID's network default to the runs folder's
(:meth:`analysis.runs.RunsFolder.reference` and :meth:`~analysis.runs.RunsFolder.fid_variant`):
``gt`` and ``fid``, or for a protocol split (``build-split --protocol``) ``gt_protocol``
and the protocol's network; a note under the table names them when the truth is not ``gt``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from analysis.fid_interval import INTERVALS
from analysis.fid_runs import FIDOptions
from analysis.leaderboard import LeaderboardOptions, build_leaderboard, not_computed_line
from analysis.leaderboard_format import to_markdown, write_leaderboard
from analysis.metrics import DEFAULT_METRICS
from analysis.metrics_cache import metrics_pass
from analysis.reference_libs import BACKENDS
from analysis.runs import RunsFolder, order_methods
from bench.generate import GenerateError, parse_shard
from pixcolor.io import atomic_open

FID_VARIANTS = ("fid", "torchvision", "none")  # --fid-variant: none computes no FID
MISSING_FILE = "metrics_missing.csv"  # what a merge found missing
MISSING = 3  # exit status of a merge that found values missing (as bench's PARTIAL)
DEFAULT_FID = FIDOptions()  # the TF-ported Inception, the common protocol


def method_folders(runs_dir: Path) -> list[str]:
    """Method folders (with at least one PNG) in display order
    (:data:`analysis.runs.METHOD_ORDER`, the project's one method order)."""
    return order_methods([p.name for p in runs_dir.iterdir()
                          if p.is_dir() and any(p.glob("*.png"))])


def fid_options(variant: str | None, device: str = "cpu",
                runs_dir: str | os.PathLike | None = None) -> FIDOptions | None:
    """FID settings of ``--fid-variant``: ``"none"``: no FID; None: the network of
    ``runs_dir`` (:meth:`~analysis.runs.RunsFolder.fid_variant`; ``fid`` without one)."""
    if variant is None:
        variant = RunsFolder(runs_dir).fid_variant() if runs_dir is not None else "fid"
    return None if variant == "none" else FIDOptions(variant=variant, device=device)


def compute(runs_dir: str | os.PathLike, methods: Sequence[str] | None = None,
            metrics: Sequence[str] = DEFAULT_METRICS, workers: int = 1,
            fid: FIDOptions | None = DEFAULT_FID, gt_method: str | None = None, *,
            reuse: bool = True, merge: bool = False) -> pd.DataFrame:
    """Mean metrics per method; writes ``<runs_dir>/metrics.csv`` and the per-image cache.

    Values already cached (:mod:`analysis.metrics_cache`: by the files' content and the
    metric's version) are not computed again.

    Args:
        runs_dir: ``runs/<split>``.
        methods: method folders (default: every folder with PNGs).
        metrics: metric names registered in :mod:`analysis.metrics`.
        workers: processes for the image pass.
        fid: FID settings (None: no FID column; :func:`fid_options` gives the folder's
            network).
        gt_method: the truth folder (None: the folder's
            :meth:`~analysis.runs.RunsFolder.reference`).
        reuse: take cached values (False: compute every value anew).
        merge: compute no per-image value: the table of what the shards cached
            (``attrs["missing"]`` lists the values still missing).

    Returns:
        One row per method: ``method``, ``n``, ``n_skipped`` and a column per metric (and
        FID); ``attrs["not_computed"]`` (metric -> why) and ``attrs["notes"]`` hold what
        :func:`format_table` prints under the rows, ``attrs["missing"]`` the
        :attr:`~analysis.metrics_cache.MetricsPass.missing` values.
    """
    runs_dir = Path(runs_dir)
    methods = list(methods) if methods else method_folders(runs_dir)
    mp = metrics_pass(runs_dir, methods, list(metrics), fid=fid, gt_method=gt_method,
                      workers=workers, reuse=reuse, compute=not merge)
    df = mp.summary()
    df.attrs["missing"] = mp.missing
    rank = {m: i for i, m in enumerate(methods)}
    attrs = dict(df.attrs)
    df = df.sort_values("method", key=lambda s: s.map(rank)).reset_index(drop=True)
    df.attrs.update(attrs)
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
    if df.attrs.get("not_computed"):
        lines.append(not_computed_line(df.attrs["not_computed"]))
    return "\n".join(lines + list(df.attrs.get("notes", [])))


# --------------------------------------------------------------------------- command line


def add_fid_flag(p: argparse.ArgumentParser) -> None:
    """``--fid-variant`` on a subcommand that computes metrics."""
    p.add_argument("--fid-variant", default=None, choices=FID_VARIANTS,
                   help="FID network: fid (TF-ported Inception, pytorch-fid/torch-fidelity), "
                        "torchvision (DDColor's and CT2's protocol) or none (default: the "
                        "split protocol's network, else fid)")


def add_gt_flag(p: argparse.ArgumentParser) -> None:
    """``--gt`` on a subcommand that computes metrics."""
    p.add_argument("--gt", default=None,
                   help="the truth folder metrics compare against (default: gt, or "
                        "gt_protocol for a protocol split's runs folder)")


def add_leaderboard_parser(sub: argparse._SubParsersAction) -> None:
    """The ``leaderboard`` subcommand's options."""
    lb = sub.add_parser("leaderboard", help="every method x metric of one runs folder, with "
                        "95%% intervals, as CSV, Markdown and LaTeX")
    lb.add_argument("--runs", required=True, help="the runs folder runs/<split>")
    lb.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                    help="comma-separated per-image metrics (default: %(default)s)")
    lb.add_argument("--out", default=None, help="output folder (default: RUNS/leaderboard)")
    add_fid_flag(lb)
    add_gt_flag(lb)
    lb.add_argument("--fid-weights", default=None, help="Inception weights file of the variant")
    lb.add_argument("--fid-resamples", type=int, default=DEFAULT_FID.n_resamples,
                    help="bootstrap resamples of FID's interval (default: %(default)s)")
    lb.add_argument("--fid-interval", default=DEFAULT_FID.interval, choices=INTERVALS,
                    help="FID's interval: linear (the bootstrap of FID's first-order "
                         "expansion, one eigendecomposition per method) or resample (FID "
                         "recomputed per resample: about 1.2 s each at 5,000 images) "
                         "(default: %(default)s)")
    lb.add_argument("--fid-backend", default=DEFAULT_FID.backend, choices=BACKENDS,
                    help="FID features from our network (ours) or the reference library's "
                         "(reference: torch-fidelity's module; torchvision's where it "
                         "imports) (default: %(default)s)")
    lb.add_argument("--n-resamples", type=int, default=1000,
                    help="bootstrap resamples of the per-image metrics (default: %(default)s)")
    lb.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    lb.add_argument("--published", default="match", choices=["match", "all", "none"],
                    help="published numbers: the folder's protocol (else all, labelled), all "
                         "or none (default: match)")
    lb.add_argument("--responses", default=None,
                    help="a VTT export (responses.csv): the VTT fool rate becomes the first "
                         "column, beside the paper's Fig. 6 numbers")
    lb.add_argument("--device", default="cpu", help="torch device of FID features not cached")
    lb.add_argument("--workers", type=int, default=1, help="processes for uncached images")


def add_shard_flags(p: argparse.ArgumentParser) -> None:
    """``--shard``, ``--merge`` and ``--recompute`` of the ``metrics`` subcommand."""
    p.add_argument("--shard", default=None,
                   help="i/n: score only shard i of n of the photos and cache the values "
                        "(default: a SLURM array task's, else torchrun's RANK/WORLD_SIZE)")
    p.add_argument("--merge", action="store_true",
                   help="compute nothing: metrics.csv from the values every shard cached, "
                        "and which are still missing")
    p.add_argument("--recompute", action="store_true",
                   help="compute every value anew instead of taking cached ones")


def metrics_shard(spec: str | None) -> tuple[int, int]:
    """The shard of ``--shard i/n``; without one, a SLURM array task's (its index among
    ``SLURM_ARRAY_TASK_COUNT`` tasks, from ``SLURM_ARRAY_TASK_MIN`` in steps of
    ``SLURM_ARRAY_TASK_STEP``), else torchrun's ``RANK``/``WORLD_SIZE``, else (0, 1).

    Raises:
        GenerateError: a malformed spec or environment.
    """
    env = os.environ
    if spec is None and "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        try:
            step = int(env.get("SLURM_ARRAY_TASK_STEP", "1"))
            index = (int(env["SLURM_ARRAY_TASK_ID"])
                     - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))) // step
            spec = f"{index}/{int(env['SLURM_ARRAY_TASK_COUNT'])}"
        except ValueError:
            raise GenerateError("unusable SLURM_ARRAY_TASK_* variables") from None
    return parse_shard(spec)


def _missing_lines(missing: pd.DataFrame, runs_dir: Path) -> list[str]:
    """What a merge still lacks, in a few lines; the full list goes to a CSV."""
    if missing.empty:
        return []
    path = runs_dir / MISSING_FILE
    with atomic_open(path, "w", newline="") as f:
        missing.to_csv(f, index=False, lineterminator="\n")
    first = ", ".join(f"{r.method}/{r.image_id}" for r in missing.head(5).itertuples())
    return [f"missing: {len(missing)} outputs of {missing['image_id'].nunique()} photos "
            f"have no cached value for some metric ({first}{', ...' if len(missing) > 5 else ''}"
            f"; all in {path}): their shard has not run, or the file or its truth cannot be "
            "read (the shard's output says which); run the shards, then --merge again"]


def metrics_command(args: argparse.Namespace, name: str, methods: list[str] | None) -> int:
    """``python -m bench metrics``: metrics.csv and the table; with a shard (``--shard``,
    a SLURM array or torchrun), only that shard's values into the cache; with ``--merge``,
    the table from the cache. Returns 3 when a merge found values missing."""
    runs_dir = Path(args.runs_dir) if args.runs_dir else Path(args.runs) / name
    fid = fid_options(args.fid_variant, runs_dir=runs_dir)
    index, count = (0, 1) if args.merge else metrics_shard(args.shard)
    if count > 1:
        mp = metrics_pass(runs_dir, methods or method_folders(runs_dir), DEFAULT_METRICS,
                          fid=fid, gt_method=args.gt, workers=args.workers,
                          reuse=not args.recompute, shard=(index, count))
        skipped = len([s for s in mp.evaluation.skipped if not s.metric])
        print(f"shard {index}/{count}: {len(mp.per_image)} outputs of "
              f"{len(mp.evaluation.image_ids)} photos, {mp.computed} scored now, the rest "
              f"from the cache; {skipped} unusable; when every shard is done: python -m "
              f"bench metrics --runs-dir {runs_dir} --merge")
        return 0
    df = compute(runs_dir, methods, workers=args.workers, fid=fid, gt_method=args.gt,
                 reuse=not args.recompute, merge=args.merge)
    print(format_table(df))
    lines = _missing_lines(df.attrs["missing"], runs_dir)
    print("\n".join([*lines, f"wrote {runs_dir / 'metrics.csv'}"]))
    return MISSING if lines else 0


def leaderboard_command(args: argparse.Namespace) -> int:
    """``python -m bench leaderboard``: build, print (Markdown) and write the leaderboard."""
    t0 = time.perf_counter()
    fid = fid_options(args.fid_variant, args.device, args.runs)
    if fid is not None:
        fid = replace(fid, weights=args.fid_weights, n_resamples=args.fid_resamples,
                      seed=args.seed, interval=args.fid_interval, backend=args.fid_backend)
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    options = LeaderboardOptions(metrics=metrics, fid=fid, n_resamples=args.n_resamples,
                                 seed=args.seed, workers=args.workers, published=args.published,
                                 gt_method=args.gt, responses=args.responses)
    board = build_leaderboard(args.runs, options)
    print(to_markdown(board))
    out = Path(args.out) if args.out else Path(args.runs) / "leaderboard"
    paths = write_leaderboard(board, out)
    print(f"wrote {', '.join(str(p) for p in paths)} ({time.perf_counter() - t0:.1f} s)")
    return 0
