"""Which images a split holds: the official ctest10k and cval1k lists shipped in
``bench/lists/`` (see its ``PROVENANCE.md``), a user's list file, or the photos of a folder,
and the seeded subsets the VTT rates (paper Sec. 4)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from pixcolor.io import iter_images

OFFICIAL_SPLITS = ("ctest10k", "cval1k")


class SplitError(ValueError):
    """A split cannot be built at all (unknown name, unreadable list, no source folder)."""


@dataclass(frozen=True)
class SplitEntry:
    """One expected image of a split.

    Attributes:
        image_id: file stem used everywhere downstream (``ILSVRC2012_val_00042961``).
        wnid: WordNet id of the class folder ("" for the demo photos).
        label: class index as text ("" when unknown).
        relpath: path relative to the source root in the sorted layout
            (``n04286575/ILSVRC2012_val_00042961.JPEG``), or the file name.
    """

    image_id: str
    wnid: str
    label: str
    relpath: str


def parse_list(text: str, origin: str = "<list>") -> list[SplitEntry]:
    """Parse the ``/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG <label>`` line format.

    Blank lines and ``#`` comments are ignored; a line with only a path gets an empty label.

    Raises:
        SplitError: a malformed line (the message names the line number) or duplicate ids.
    """
    entries: list[SplitEntry] = []
    seen: set[str] = set()
    for num, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) > 2:
            raise SplitError(f"{origin}:{num}: expected '<path> <label>', got {raw!r}")
        rel = parts[0].strip("/")
        segs = rel.split("/")
        image_id = Path(segs[-1]).stem
        if not image_id or len(segs) > 2:
            raise SplitError(f"{origin}:{num}: cannot read an image path from {raw!r}")
        if image_id in seen:
            raise SplitError(f"{origin}:{num}: duplicate image id {image_id}")
        seen.add(image_id)
        wnid = segs[0] if len(segs) == 2 else ""
        entries.append(SplitEntry(image_id, wnid, parts[1] if len(parts) == 2 else "", rel))
    return entries


def official_list_text(name: str) -> str:
    """The shipped list file ``bench/lists/<name>.txt`` as text."""
    if name not in OFFICIAL_SPLITS:
        raise SplitError(f"unknown split {name!r}; choose one of {OFFICIAL_SPLITS}, or pass "
                         "--list FILE")
    return resources.files("bench").joinpath("lists", f"{name}.txt").read_text()


def load_list(name: str | None = None, path: str | os.PathLike | None = None
              ) -> tuple[list[SplitEntry], str]:
    """Entries of an official split (``name``) or of a list file (``path``), and its sha256."""
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise SplitError(f"cannot read split list {path}: {exc}") from exc
        origin = str(path)
    elif name is not None:
        text, origin = official_list_text(name), f"bench/lists/{name}.txt"
    else:
        raise SplitError("pass a split name or a list file")
    return parse_list(text, origin), hashlib.sha256(text.encode()).hexdigest()


def folder_entries(folder: str | os.PathLike) -> list[SplitEntry]:
    """Entries for every image in a flat folder (the demo photos): id = file stem.

    Raises:
        SplitError: two files share a stem.
    """
    entries, seen = [], set()
    for p in iter_images(folder, recursive=False):
        if p.stem in seen:
            raise SplitError(f"{folder}: two images share the id {p.stem!r}; rename one")
        seen.add(p.stem)
        entries.append(SplitEntry(p.stem, "", "", p.name))
    return entries


def select_subset(entries: Sequence[SplitEntry], n: int, seed: int) -> list[SplitEntry]:
    """The deterministic ``n``-image subset (the VTT's 500 images, paper Sec. 4).

    A permutation of the list from ``np.random.default_rng(seed)``; its first ``n`` entries
    are kept in list order. Depends only on the list and the seed (not on which files a
    user has), and subsets of one seed are nested: ``subset(100)`` lies in ``subset(500)``.
    """
    if n <= 0:
        raise SplitError(f"--subset must be positive, got {n}")
    if n >= len(entries):
        return list(entries)
    keep = np.sort(np.random.default_rng(seed).permutation(len(entries))[:n])
    return [entries[i] for i in keep]


def find_source(root: Path, entry: SplitEntry) -> Path | None:
    """The source file of ``entry`` under ``root``: sorted layout first, then flat."""
    name = Path(entry.relpath).name
    for cand in (root / entry.relpath, root / name):
        if cand.is_file():
            return cand
    return None
