"""What a metrics pass must compute, and its per-image table from cached and new values.

:func:`build_plan` lists the (photo, method) outputs of a runs folder that exist, hashes
their files and their truths' (:func:`analysis.fid_features.file_hashes`: a file whose
size and modification time are unchanged is not read again) and names each value's cache
cell (:mod:`analysis.value_store`: the output's and the truth's sha256, the metric's name
and version). :meth:`Plan.todos` gives what the cache lacks, photo by photo
(:func:`analysis.image_scores.score_images`); :meth:`Plan.new_values` the values computed
for the cache; :meth:`Plan.table` the per-image table of the pass.

An output whose truth file is missing or unreadable has no cache cell: its values are
computed in every pass (its reference metrics are NaN).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.fid_features import file_hashes
from analysis.image_scores import Scores, Todo
from analysis.metrics import get_metric
from analysis.runs import GT_METHOD, RunsFolder, Skip, map_chunks
from analysis.value_store import KEY_DTYPE, Block, column_name, pair_key
from pixcolor.io import ImageLoadError

MISSING_COLUMNS = ["method", "image_id", "metrics"]
_PARALLEL_HASHES = 2000  # files from which the workers hash (a folder each)


def shard_ids(ids: Sequence[str], index: int, count: int) -> list[str]:
    """Photos of shard ``index`` of ``count``: every ``count``-th id from ``index`` (the
    rule of ``python -m bench generate --shard``)."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= index < count")
    return list(ids[index::count])


def _png_names(folder: Path) -> set[str]:
    try:
        with os.scandir(folder) as it:
            return {e.name for e in it if e.name.endswith(".png")}
    except (FileNotFoundError, NotADirectoryError):
        return set()


@dataclass
class Plan:
    """The outputs of one pass (module docstring).

    Attributes:
        rows: (method, image_id) of every output file that exists, photo by photo.
        keys: their cache keys (S64; empty bytes where the truth file is missing).
        metrics, columns: the metric names and their cache columns.
        skips: outputs whose file is missing (and truths, when the truth is not a method).
        truth: the truth folder.
        files: (method, image_id) -> the sha256 of every file hashed (outputs and truths).
    """

    rows: list[tuple[str, str]]
    keys: np.ndarray
    metrics: list[str]
    columns: list[str]
    skips: list[Skip] = field(default_factory=list)
    truth: str = GT_METHOD
    files: dict[tuple[str, str], str] = field(default_factory=dict)

    def cacheable(self) -> np.ndarray:
        """Rows with a cache key (their truth's file exists)."""
        return self.keys != b""

    def todos(self, have: np.ndarray, metrics: Sequence[str], *,
              uncacheable_only: bool = False) -> list[Todo]:
        """Per photo, the methods and metrics (of ``metrics``) whose values ``have``
        ((rows, metrics) bool) lacks; uncacheable rows need all of them (and are the only
        ones with ``uncacheable_only``: a merge computes nothing else)."""
        have = have & self.cacheable()[:, None]
        if uncacheable_only:
            have = have | self.cacheable()[:, None]
        use = [j for j, k in enumerate(self.metrics) if k in metrics]
        need = ~have[:, use]
        by_photo: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for r in np.flatnonzero(need.any(axis=1)):
            method, image_id = self.rows[r]
            todo = tuple(self.metrics[use[j]] for j in np.flatnonzero(need[r]))
            by_photo.setdefault(image_id, []).append((method, todo))
        return [Todo(i, tuple(m)) for i, m in by_photo.items()]

    def new_values(self, scores: Scores) -> Block:
        """The cacheable values of ``scores`` as a block of the store."""
        index = {row: r for r, row in enumerate(self.rows)}
        col = {k: j for j, k in enumerate(self.metrics)}
        got = [(index[(s.method, s.image_id)], s) for s in scores.rows
               if s.image_id not in scores.truth_failed]
        got = [(r, s) for r, s in got if self.keys[r] != b""]
        block = Block(self.keys[[r for r, _ in got]].astype(KEY_DTYPE), list(self.columns),
                      np.full((len(got), len(self.columns)), np.nan),
                      np.zeros((len(got), len(self.columns)), bool))
        for i, (_, s) in enumerate(got):
            for k, v in s.values.items():
                block.values[i, col[k]] = v
                block.present[i, col[k]] = True
            block.reasons.update({(i, col[k]): why for k, why in s.reasons.items()})
        return block

    def table(self, cached: Block, scores: Scores, metrics: Sequence[str]
              ) -> tuple[pd.DataFrame, list[Skip], pd.DataFrame]:
        """(per-image values, skipped images and values, missing values) of the pass:
        cached cells where held, else the values just computed; a row with no value at all
        is left out of the table and listed as missing, as are the metrics a kept row
        lacks."""
        values, have = cached.values.copy(), cached.present & self.cacheable()[:, None]
        reasons = {cell: why for cell, why in cached.reasons.items() if have[cell]}
        index = {row: r for r, row in enumerate(self.rows)}
        col = {k: j for j, k in enumerate(self.metrics)}
        failed = np.zeros(len(self.rows), bool)
        for s in scores.rows:
            r = index[(s.method, s.image_id)]
            for k, v in s.values.items():
                values[r, col[k]], have[r, col[k]] = v, True
                reasons.pop((r, col[k]), None)
            reasons.update({(r, col[k]): why for k, why in s.reasons.items()})
        skips = list(self.skips) + list(scores.skips)
        for s in scores.skips:
            failed[index[(s.method, s.image_id)]] = True
        use = [col[k] for k in metrics]
        keep = have[:, use].any(axis=1) & ~failed if use else ~failed
        missing = [(*self.rows[r], ",".join(k for k in metrics if not have[r, col[k]]))
                   for r in np.flatnonzero(~failed & ~have[:, use].all(axis=1))] if use else []
        skips += [Skip(*self.rows[r], why, self.metrics[j])
                  for (r, j), why in sorted(reasons.items()) if keep[r] and j in use]
        rows = [self.rows[r] for r in np.flatnonzero(keep)]
        frame = pd.DataFrame({"method": [m for m, _ in rows], "image_id": [i for _, i in rows],
                              **{k: values[keep, col[k]] for k in metrics}},
                             columns=["method", "image_id", *metrics])
        return frame, skips, pd.DataFrame(missing, columns=MISSING_COLUMNS)


def build_plan(runs: RunsFolder, methods: Sequence[str], ids: Sequence[str], gt_method: str,
               metrics: Sequence[str], hash_dir: str | os.PathLike | None,
               workers: int = 1) -> Plan:
    """The outputs of ``methods`` for the photos ``ids`` and their cache keys (module
    docstring); the file hashes are kept under ``hash_dir``, those not kept are computed
    by ``workers`` processes (a folder each)."""
    names = {m: _png_names(runs.root / m) for m in dict.fromkeys([*methods, gt_method])}
    paths: dict[tuple[str, str], Path] = {}
    for m in names:
        for i in ids:
            if f"{i}.png" in names[m]:
                paths[(m, i)] = runs.path(m, i)
    shas, skips = _file_shas(paths, hash_dir, workers)
    rows, keys = [], []
    for i in ids:
        truth = shas.get((gt_method, i))
        if truth is None and gt_method not in methods and (gt_method, i) not in paths:
            skips.append(Skip(gt_method, i, str(_missing(runs, gt_method, i))))
        for m in methods:
            if (m, i) not in shas:
                if (m, i) not in paths:
                    skips.append(Skip(m, i, str(_missing(runs, m, i))))
                continue
            rows.append((m, i))
            keys.append(pair_key(shas[(m, i)], truth) if truth else b"")
    columns = [column_name(k, get_metric(k).version) for k in metrics]
    return Plan(rows, np.asarray(keys, KEY_DTYPE), list(metrics), columns, skips,
                gt_method, shas)


def _file_shas(paths: dict[tuple[str, str], Path], hash_dir: str | os.PathLike | None,
               workers: int) -> tuple[dict[tuple[str, str], str], list[Skip]]:
    """The sha256 of every file, and the files that could not be read (skipped)."""
    try:
        return dict(zip(paths, _hashes(list(paths.values()), hash_dir, workers),
                        strict=True)), []
    except OSError:  # a file that vanished or cannot be read: find it, keep the others
        shas, skips = {}, []
        for row, path in paths.items():
            try:
                shas[row] = file_hashes([path], hash_dir)[0]
            except OSError as err:
                skips.append(Skip(*row, f"cannot read {path}: {err}"))
        return shas, skips


def _hash_folders(hash_dir: str | os.PathLike | None, groups: list[list[Path]]
                  ) -> list[dict[Path, str]]:
    return [dict(zip(paths, file_hashes(paths, hash_dir), strict=True)) for paths in groups]


def _hashes(paths: list[Path], hash_dir: str | os.PathLike | None, workers: int) -> list[str]:
    """:func:`analysis.fid_features.file_hashes` of ``paths``, folder by folder in
    ``workers`` processes when many files are not in the index yet (each folder's index
    is written by one process)."""
    if workers <= 1 or len(paths) < _PARALLEL_HASHES:
        return file_hashes(paths, hash_dir)
    groups: dict[Path, list[Path]] = {}
    for path in paths:
        groups.setdefault(path.parent, []).append(path)
    found: dict[Path, str] = {}
    for part in map_chunks(_hash_folders, list(groups.values()), hash_dir, workers=workers):
        for group in part:
            found.update(group)
    return [found[p] for p in paths]


def _missing(runs: RunsFolder, method: str, image_id: str) -> ImageLoadError:
    """The error :meth:`analysis.runs.RunsFolder.load` raises for a missing file."""
    return ImageLoadError(runs.path(method, image_id), "missing",
                          f"generate {method}'s outputs first")
