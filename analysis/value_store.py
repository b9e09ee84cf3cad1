"""Per-image metric values on disk, keyed by content, in part files that writers never share.

A value is kept under its key, the sha256 of the output file and of its truth's file (64
bytes), and its column, the metric's name and version (``psnr@v1``,
:func:`column_name`): the same output scored against the same truth by the same metric
version has the same value wherever its file lies, so a renamed or copied folder, a new
method or another split holding the same files reuses it, a changed file gets new keys, and
a metric whose ``version`` is raised gets a new column.

The values of one folder live in ``<folder>/*.npz``, one file per write (a pass, a shard of
a pass, a compaction), named so no two writers pick the same name; every file holds
``keys`` (S64), ``columns`` (str), ``values`` (float64, rows x columns), ``present`` (bool:
which cells the file holds; NaN is a value, the result of a metric that could not be
computed) and the reasons of those NaN (``reason_rows``, ``reason_cols``, ``reason_text``).
Files are written atomically; reading takes every file (later ones win where two hold the
same cell, which happens only when the same value was computed twice) and skips damaged
ones. :meth:`ValueStore.write` with ``compact=True`` writes everything the store holds as
one file and removes the files it read, never one written since.

:class:`VectorStore` keeps vectors (an output's a/b histogram counts,
:mod:`analysis.evaluation_cache`) by the same keys and under the same rules, one column
(vectors of one shape and type) after another, in its own folder.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixcolor.io import atomic_open

log = logging.getLogger(__name__)

KEY_DTYPE = np.dtype("S64")


def column_name(metric: str, version: int) -> str:
    """The store's column of a metric version."""
    return f"{metric}@v{version}"


def pair_key(output_sha: str, truth_sha: str) -> bytes:
    """The 64-byte key of an output file and its truth's file (hex sha256 each)."""
    return bytes.fromhex(output_sha) + bytes.fromhex(truth_sha)


@dataclass
class Block:
    """Values of some keys and columns: ``values`` and ``present`` are (keys, columns);
    ``reasons`` maps (row, column) to why the value is NaN."""

    keys: np.ndarray
    columns: list[str]
    values: np.ndarray
    present: np.ndarray
    reasons: dict[tuple[int, int], str] = field(default_factory=dict)

    @classmethod
    def empty(cls, columns: Sequence[str] = ()) -> Block:
        n = len(columns)
        return cls(np.zeros(0, KEY_DTYPE), list(columns), np.zeros((0, n)),
                   np.zeros((0, n), bool))

    def __len__(self) -> int:
        return len(self.keys)

    def save(self, path: Path) -> None:
        """Write atomically as one ``.npz`` part file."""
        cells = sorted(self.reasons)
        arrays = {"keys": self.keys.astype(KEY_DTYPE), "columns": np.asarray(self.columns, str),
                  "values": self.values, "present": self.present,
                  "reason_rows": np.asarray([r for r, _ in cells], np.int64),
                  "reason_cols": np.asarray([c for _, c in cells], np.int64),
                  "reason_text": np.asarray([self.reasons[c] for c in cells], str)}
        with atomic_open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: Path) -> Block | None:
        """A part file, or None when it is unreadable or malformed (logged)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                block = cls(z["keys"].astype(KEY_DTYPE), [str(c) for c in z["columns"]],
                            z["values"].astype(np.float64), z["present"].astype(bool),
                            {(int(r), int(c)): str(t) for r, c, t in zip(
                                z["reason_rows"], z["reason_cols"], z["reason_text"],
                                strict=True)})
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            log.warning("ignoring the damaged metric values file %s (%s)", path, err)
            return None
        shape = (len(block.keys), len(block.columns))
        if block.values.shape != shape or block.present.shape != shape:
            log.warning("ignoring the malformed metric values file %s", path)
            return None
        return block


def _union(blocks: Sequence[Block]) -> Block:
    """One block holding every cell of ``blocks``; later blocks win."""
    blocks = [b for b in blocks if len(b)]
    if not blocks:
        return Block.empty()
    columns = list(dict.fromkeys(c for b in blocks for c in b.columns))
    col = {c: j for j, c in enumerate(columns)}
    keys, inverse = np.unique(np.concatenate([b.keys for b in blocks]), return_inverse=True)
    out = Block(keys, columns, np.full((len(keys), len(columns)), np.nan),
                np.zeros((len(keys), len(columns)), bool))
    start = 0
    for b in blocks:
        rows = inverse[start:start + len(b)]
        start += len(b)
        written = np.zeros(out.present.shape, bool)
        for j, c in enumerate(b.columns):
            have = b.present[:, j]
            out.values[rows[have], col[c]] = b.values[have, j]
            written[rows[have], col[c]] = True
        out.present |= written
        out.reasons = {cell: why for cell, why in out.reasons.items() if not written[cell]}
        out.reasons.update({(int(rows[r]), col[b.columns[j]]): why
                            for (r, j), why in b.reasons.items()})
    return out


def _read_parts(folder: Path, load: Callable[[Path], Any]) -> tuple[list[Any], list[Path]]:
    """``load`` of every part file of ``folder`` in write order (those it returns None for
    left out) and their paths; read again when a file vanished meanwhile (a compaction)."""
    for _ in range(3):
        found = []
        try:
            for path in folder.glob("*.npz"):
                found.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:
            continue
        loaded, parts = [], []
        for _, _, path in sorted(found):
            if not path.exists():
                break
            item = load(path)
            if item is not None:
                loaded.append(item)
                parts.append(path)
        else:
            return loaded, parts
    return [], []


def _part_path(folder: Path, tag: str) -> Path:
    """A new part file's path: no two writers pick the same."""
    return folder / (f"{tag}-{time.time_ns()}-{socket.gethostname()}-{os.getpid()}-"
                     f"{uuid.uuid4().hex[:8]}.npz")


class ValueStore:
    """The metric values of one folder (module docstring): those read, plus those added."""

    def __init__(self, folder: str | os.PathLike, read: bool = True) -> None:
        self.folder = Path(folder)
        blocks, self.parts = _read_parts(self.folder, Block.load) if read else ([], [])
        self.block = _union(blocks)
        self.added: list[Block] = []

    def lookup(self, keys: np.ndarray, columns: Sequence[str]) -> Block:
        """The cells of ``keys`` x ``columns`` (``present`` False where none is held)."""
        keys = np.asarray(keys, KEY_DTYPE)
        out = Block(keys, list(columns), np.full((len(keys), len(columns)), np.nan),
                    np.zeros((len(keys), len(columns)), bool))
        held = self.block
        if not len(held) or not len(keys):
            return out
        pos = np.minimum(np.searchsorted(held.keys, keys), len(held) - 1)
        found = held.keys[pos] == keys
        rows = np.flatnonzero(found)
        col = {c: j for j, c in enumerate(held.columns)}
        for j, c in enumerate(columns):
            if c not in col:
                continue
            src = pos[rows]
            out.values[rows, j] = held.values[src, col[c]]
            out.present[rows, j] = held.present[src, col[c]]
        if held.reasons:
            back = {int(p): i for i, p in zip(rows, pos[rows], strict=True)}
            want = {col[c]: j for j, c in enumerate(columns) if c in col}
            for (r, cj), why in held.reasons.items():
                if r in back and cj in want:
                    out.reasons[(back[r], want[cj])] = why
        return out

    def add(self, block: Block) -> None:
        """New values: held from now on and written by :meth:`write`."""
        if len(block):
            self.added.append(block)
            self.block = _union([self.block, block])

    def write(self, tag: str, *, compact: bool = False) -> Path | None:
        """Write the added values as a new part file named after ``tag`` (a shard, a pass);
        with ``compact``, everything held as one file, and remove the files read (when
        there is more than one or anything was added). Returns the file written, or None.
        """
        if compact and (self.added or len(self.parts) > 1):
            block, old = self.block, list(self.parts)
        elif self.added:
            block, old = _union(self.added), []
        else:
            return None
        path = _part_path(self.folder, tag)
        block.save(path)
        for p in old:
            p.unlink(missing_ok=True)
        self.parts = [p for p in self.parts if p not in old] + [path]
        self.added = []
        return path


@dataclass
class Vectors:
    """The vectors of one column: sorted unique ``keys`` (S64) and their ``values``
    (keys x the column's shape)."""

    keys: np.ndarray
    values: np.ndarray


def _sorted_unique(keys: np.ndarray) -> bool:
    return bool(np.all(keys[1:] > keys[:-1]))


def _newest(parts: Sequence[Vectors | None]) -> Vectors:
    """One :class:`Vectors` of every key of ``parts``, the later part's vector where two
    hold a key; parts whose vectors' shape or type differ from the first's are left out."""
    parts = [p for p in parts if p is not None and len(p.keys)]
    if not parts:
        return Vectors(np.zeros(0, KEY_DTYPE), np.zeros(0))
    like = parts[0].values
    same = [p for p in parts if p.values.shape[1:] == like.shape[1:]
            and p.values.dtype == like.dtype]
    if len(same) < len(parts):
        log.warning("ignoring %d vector parts of another shape or type", len(parts) - len(same))
    if len(same) == 1 and _sorted_unique(same[0].keys):
        return same[0]
    keys = np.concatenate([p.keys for p in same])[::-1]
    keys, first = np.unique(keys, return_index=True)  # first in reverse: the latest
    return Vectors(keys, np.concatenate([p.values for p in same])[::-1][first])


def _load_vectors(path: Path) -> dict[str, Vectors] | None:
    """A vector part file (column -> vectors), or None when unreadable or malformed."""
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {str(c): Vectors(z[f"keys_{j}"].astype(KEY_DTYPE), z[f"values_{j}"])
                   for j, c in enumerate(z["columns"])}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        log.warning("ignoring the damaged vector values file %s (%s)", path, err)
        return None
    if any(len(v.keys) != len(v.values) or not _sorted_unique(v.keys) for v in out.values()):
        log.warning("ignoring the malformed vector values file %s", path)
        return None
    return out


class VectorStore:
    """Per-key vectors (an image's a/b histogram counts) in part files under the rules of
    :class:`ValueStore`: one file per write, written atomically, later files winning, damaged
    ones skipped, ``compact`` removing only the files read. A column (a name and version,
    with whatever else its vectors depend on) holds vectors of one shape and type; a file
    holds ``columns`` and, for column j, ``keys_j`` (S64, sorted) and ``values_j``
    (compressed)."""

    def __init__(self, folder: str | os.PathLike, read: bool = True) -> None:
        self.folder = Path(folder)
        parts, self.parts = (_read_parts(self.folder, _load_vectors) if read else ([], []))
        self.columns: dict[str, Vectors] = {}
        for part in parts:
            for c, v in part.items():
                self.columns[c] = _newest([self.columns.get(c), v])
        self.added: dict[str, list[Vectors]] = {}

    def lookup(self, keys: np.ndarray, column: str, shape: tuple[int, ...],
               dtype: np.dtype | type) -> tuple[np.ndarray, np.ndarray]:
        """(values, present): the vectors of ``keys`` in ``column`` ((keys, *shape) of
        ``dtype``, zeros where none is held) and which keys have one (a held column of
        another shape or type holds none)."""
        keys = np.asarray(keys, KEY_DTYPE)
        out = np.zeros((len(keys), *shape), dtype)
        present = np.zeros(len(keys), bool)
        held = self.columns.get(column)
        if held is None or not len(held.keys) or not len(keys):
            return out, present
        if held.values.shape[1:] != tuple(shape) or held.values.dtype != out.dtype:
            log.warning("ignoring the cached %s: vectors of shape %s, not %s", column,
                        held.values.shape[1:], tuple(shape))
            return out, present
        pos = np.minimum(np.searchsorted(held.keys, keys), len(held.keys) - 1)
        present[:] = held.keys[pos] == keys
        out[present] = held.values[pos[present]]
        return out, present

    def add(self, column: str, keys: np.ndarray, values: np.ndarray) -> None:
        """New vectors of ``column`` (one per key; no empty key): held from now on and
        written by :meth:`write`."""
        if len(keys):
            new = _newest([Vectors(np.asarray(keys, KEY_DTYPE), np.asarray(values))])
            self.added.setdefault(column, []).append(new)
            self.columns[column] = _newest([self.columns.get(column), new])

    def write(self, tag: str, *, compact: bool = False) -> Path | None:
        """As :meth:`ValueStore.write`."""
        if compact and (self.added or len(self.parts) > 1):
            columns, old = self.columns, list(self.parts)
        elif self.added:
            columns, old = {c: _newest(v) for c, v in self.added.items()}, []
        else:
            return None
        arrays: dict[str, np.ndarray] = {"columns": np.asarray(list(columns), str)}
        for j, v in enumerate(columns.values()):
            arrays[f"keys_{j}"], arrays[f"values_{j}"] = v.keys.astype(KEY_DTYPE), v.values
        path = _part_path(self.folder, tag)
        with atomic_open(path, "wb") as f:
            np.savez_compressed(f, **arrays)
        for p in old:
            p.unlink(missing_ok=True)
        self.parts = [p for p in self.parts if p not in old] + [path]
        self.added = {}
        return path
