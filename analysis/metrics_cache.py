"""The metrics pass of a runs folder, kept next to it so later tables reuse its values.

:func:`metrics_pass` computes the per-image metrics (:func:`analysis.evaluate.evaluate_runs`)
and FID (:func:`analysis.fid_runs.runs_fid`) of a ``runs/<split>`` folder and writes, beside
``metrics.csv``:

* ``metrics_per_image.csv``: ``method``, ``image_id`` and one column per metric;
* ``metrics_cache.json``: per method, the fingerprint of its images and of the truth's
  (names, sizes, modification times: :func:`analysis.fid_runs.folder_fingerprint`) and the
  metrics computed under it; the metrics that could not run and why; FID rows per variant.

With ``reuse`` a method's cached values stand while its images, the truth's and the image
list are unchanged; only missing (method, metric) values are computed. The truth is the
folder's :meth:`~analysis.runs.RunsFolder.reference` unless one is named (``gt``; a
protocol split's ``gt_protocol``). The leaderboard
(:mod:`analysis.leaderboard`) reads through here: from a warm cache it decodes no image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.evaluate import RunsEvaluation, evaluate_runs
from analysis.fid_runs import FID_ROW_COLUMNS, FIDOptions, FIDTable, folder_fingerprint, runs_fid
from analysis.lab_stats import AB_EDGES
from analysis.metrics import DEFAULT_METRICS, get_metric
from analysis.runs import GT_METHOD, RunsFolder
from pixcolor.io import atomic_open

log = logging.getLogger(__name__)

PER_IMAGE_FILE = "metrics_per_image.csv"
STATE_FILE = "metrics_cache.json"
VERSION = 1


@dataclass
class MetricsPass:
    """The values of one :func:`metrics_pass`.

    Attributes:
        per_image: ``method``, ``image_id`` and a column per computed metric (NaN where an
            image could not be scored).
        metrics: the computed metrics, in the order asked.
        not_computed: metric (or FID column) -> why it could not run here (one line).
        fid: the FID table (None when not asked).
        evaluation: the pass over every method, when one ran (``reuse=False`` or a cold
            cache): its skipped images and :meth:`RunsEvaluation.summary`.
        methods: the methods, in display order.
        reused: methods whose per-image values all came from the cache.
        reference: the truth folder the values compare against.
        reference_line: the note naming it and FID's network ("" for plain ``gt``,
            :meth:`~analysis.runs.RunsFolder.reference_line`).
    """

    per_image: pd.DataFrame
    metrics: list[str]
    not_computed: dict[str, str]
    fid: FIDTable | None = None
    evaluation: RunsEvaluation | None = None
    methods: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    reference: str = GT_METHOD
    reference_line: str = ""

    def summary(self) -> pd.DataFrame:
        """Per method: ``n``, ``n_skipped``, each metric's mean (as
        :meth:`RunsEvaluation.summary`, also from cached values) and FID when computed."""
        ev = self.evaluation or RunsEvaluation(
            per_image=self.per_image, skipped=[], ab_counts={}, ab_edges=AB_EDGES,
            methods=self.methods, metrics=self.metrics)
        df = ev.summary()
        df.attrs["skipped"] = [s.__dict__ for s in ev.skipped]
        if self.fid is not None and not self.fid.not_computed:
            values = self.fid.rows.set_index("method")["fid"]
            df.insert(3 + len(self.metrics), self.fid.options.column,
                      df["method"].map(values).astype(float))
        df.attrs["not_computed"] = dict(self.not_computed)
        df.attrs["notes"] = ([self.reference_line] if self.reference_line else []) + (
            self.fid.notes() if self.fid is not None else [])
        return df


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["method", "image_id"])


def _ids_key(ids: Sequence[str], gt_method: str) -> str:
    return hashlib.sha1("\n".join([gt_method, *ids]).encode()).hexdigest()[:16]


def _read(runs_dir: Path) -> tuple[dict, pd.DataFrame]:
    """The state file and the per-image values ({} and an empty frame when absent or
    unreadable: a cache is rebuilt, never trusted half-read)."""
    try:
        state = json.loads((runs_dir / STATE_FILE).read_text())
        frame = pd.read_csv(runs_dir / PER_IMAGE_FILE, dtype={"method": str, "image_id": str})
    except (OSError, ValueError, pd.errors.ParserError):
        return {}, _empty()
    if state.get("version") != VERSION:
        return {}, _empty()
    return state, frame


def _write(runs_dir: Path, state: dict, frame: pd.DataFrame) -> None:
    with atomic_open(runs_dir / PER_IMAGE_FILE, "w", newline="") as f:
        frame.to_csv(f, index=False, lineterminator="\n")
    with atomic_open(runs_dir / STATE_FILE, "w") as f:
        f.write(json.dumps(state, indent=1, sort_keys=True) + "\n")


def _merge(old: pd.DataFrame, new: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """``old`` with ``new``'s rows and ``metrics`` columns written over it."""
    keys = ["method", "image_id"]
    old, new = old.set_index(keys), new.set_index(keys)
    old = old.reindex(old.index.union(new.index, sort=False))
    for k in metrics:
        if k not in old:
            old[k] = float("nan")
        old.loc[new.index, k] = new[k].astype(float)
    return old.reset_index()


def metrics_pass(runs_dir: str | os.PathLike, methods: Sequence[str] | None = None,
                 metrics: Sequence[str] = DEFAULT_METRICS, *, fid: FIDOptions | None = None,
                 gt_method: str | None = None, workers: int = 1, reuse: bool = True,
                 progress: bool = False) -> MetricsPass:
    """Per-image metrics and FID of a runs folder, reusing and updating its cache files.

    Args:
        runs_dir: ``runs/<split>``.
        methods: the methods (default: every method folder, ``gt`` included).
        metrics: registered per-image metrics; one that cannot run here (a missing weights
            file) is listed in ``not_computed`` and the others still run.
        fid: compute FID with these options (None: no FID).
        gt_method: the ground-truth folder (None: the folder's
            :meth:`~analysis.runs.RunsFolder.reference`).
        workers: processes for the image pass.
        reuse: keep cached values of unchanged methods (False: compute everything anew).
        progress: a progress bar over images.

    Returns:
        A :class:`MetricsPass`; the cache files are rewritten when anything was computed.
    """
    runs = RunsFolder(runs_dir)
    gt_method = gt_method or runs.reference()
    methods = list(methods) if methods is not None else runs.methods()
    ids = runs.image_ids(methods)
    cache = _Cache.open(runs, methods, _ids_key(ids, gt_method), gt_method, reuse)
    have = cache.have
    wanted = {k for m in methods for k in metrics if k not in have[m]}
    result = MetricsPass(cache.frame, [], {k: why for k in wanted
                                           if (why := get_metric(k).unavailable())},
                         methods=methods, reference=gt_method,
                         reference_line=runs.reference_line(gt_method,
                                                            fid.variant if fid else None))
    groups: dict[tuple[str, ...], list[str]] = {}
    for m in methods:
        todo = tuple(k for k in metrics if k not in have[m] and k not in result.not_computed)
        groups.setdefault(todo, []).append(m)
    for todo, group in groups.items():
        if not todo:
            result.reused += group
            continue
        ev = evaluate_runs(runs.root, group, list(todo), gt_method=gt_method, image_ids=ids,
                           workers=workers, progress=progress)
        if len(group) == len(methods) and not any(have.values()):
            result.evaluation = ev
        cache.add(group, ev)
        result.not_computed.update(ev.not_computed)
    result.metrics = [k for k in metrics if k not in result.not_computed]
    changed = len(result.reused) < len(methods)
    if fid is not None:
        changed |= _fid_step(runs, methods, fid, gt_method, ids, cache.state, result)
    cache.state["not_computed"] = result.not_computed
    if changed:
        _write(runs.root, cache.state, cache.frame)
    frame = cache.frame
    result.per_image = frame.loc[frame["method"].isin(methods),
                                 ["method", "image_id", *result.metrics]].reset_index(drop=True)
    return result


@dataclass
class _Cache:
    """The cache files of a runs folder as read, and what stands of them: ``have[m]`` the
    metrics of method m whose values are still valid (its images and the truth's unchanged)."""

    state: dict
    frame: pd.DataFrame
    prints: dict[str, str]
    have: dict[str, set[str]]

    @classmethod
    def open(cls, runs: RunsFolder, methods: list[str], ids_key: str, gt_method: str,
             reuse: bool) -> _Cache:
        state, frame = _read(runs.root) if reuse else ({}, _empty())
        if state.get("ids") != ids_key:
            state, frame = {}, _empty()
        state.update(version=VERSION, ids=ids_key)
        known = state.setdefault("methods", {})
        gt_print = folder_fingerprint(runs.root / gt_method)
        prints = {m: folder_fingerprint(runs.root / m) + gt_print for m in methods}
        have = {m: set(known[m]["metrics"]) if known.get(m, {}).get("fingerprint") == prints[m]
                else set() for m in methods}
        frame = frame[~frame["method"].isin([m for m in methods if not have[m]])]
        return cls(state, frame, prints, have)

    def add(self, group: list[str], ev: RunsEvaluation) -> None:
        """The values of a pass over ``group`` into the frame and the state."""
        self.frame = _merge(self.frame, ev.per_image, ev.metrics)
        for m in group:
            self.state["methods"][m] = {"fingerprint": self.prints[m],
                                        "metrics": sorted(self.have[m] | set(ev.metrics))}


def _fid_step(runs: RunsFolder, methods: list[str], options: FIDOptions, gt_method: str,
              ids: list[str], state: dict, result: MetricsPass) -> bool:
    """FID into ``result`` (rows reused from ``state`` where their key still holds);
    returns whether anything was computed."""
    saved = state.setdefault("fid", {}).get(options.column, {}).get("rows", [])
    previous = pd.DataFrame(saved, columns=FID_ROW_COLUMNS)
    table = runs_fid(runs.root, methods, options, gt_method=gt_method, image_ids=ids,
                     previous=previous)
    result.fid = table
    result.not_computed.pop(options.column, None)
    if table.not_computed:
        result.not_computed[options.column] = table.not_computed
        return False
    keep = previous[~previous["method"].isin(table.rows["method"])]
    rows = pd.concat([keep, table.rows], ignore_index=True) if len(keep) else table.rows
    state["fid"][options.column] = {"weights_sha256": table.weights_sha256,
                                    "rows": rows.to_dict("records")}
    return table.computed > 0
