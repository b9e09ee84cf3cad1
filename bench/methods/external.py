"""``external:NAME=DIR``: the outputs of another program, matched to the split by file name
(not registered: made by :func:`bench.methods.create_method` from the spec).

Every image file under ``DIR`` (subfolders included, extensions in any case, hidden files
skipped: :func:`pixcolor.io.iter_images`) is matched to a split image id by its stem, with
the first of these rules that names an id of the split (``naming="stem"``, the default):

* ``exact``: ``<id>.<ext>`` (the input's own name, as most inference scripts write it);
* ``input extension``: ``<id>.JPEG.png`` (a script that appends its extension to the
  input's whole name);
* ``suffix``: ``<id>_colorized.png`` and the like: one of :data:`SUFFIXES` after ``_``,
  ``-`` or ``.``, any case (pix2pix's ``_fake_B``, Zhang et al.'s ``_eccv16``, ...);
* ``prefix``: ``fake_<id>.JPEG`` (CT2) and the other :data:`PREFIXES`, before ``_`` or
  ``-``; ``index prefix``: ``<n>_<id>.png`` or ``<n>-<id>.png`` (a running number first);
  either also with one of the suffixes;
* each of these again ignoring the case of the stem, where that names one id only.

``naming="index"`` (``index0``, ``index1``) reads a stem (less a suffix) as a number instead:
``00001.png`` is the split's first image counting from 1; ``index`` counts from 0 when
some file is number 0 and from 1 otherwise. The ``external:NAME=DIR`` spec has no naming
option; pass ``ExternalMethod(NAME, DIR, naming="index")`` to :func:`bench.generate.generate`.

A split image claimed by two files is ambiguous and refused, listing the files. A split
image with no file is a failed image (reported, never fatal); a file matching no split
image is extra. :meth:`ExternalMethod.prepare_split` prints the matching before anything
is computed. An output whose size differs from its ground truth's is resized to it with
:data:`DEFAULT_RESIZE` (PIL's bilinear) and recorded in meta.json.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from bench.methods.registry import Item, Method, Result
from pixcolor.io import IMAGE_EXTENSIONS, ImageLoadError, iter_images, load_rgb

log = logging.getLogger(__name__)

# The filter that brings an output to its ground truth's size: PIL's bilinear, as the
# split's own resize (torchvision's Resize on a PIL image).
DEFAULT_RESIZE = Image.Resampling.BILINEAR
# What colorization scripts append to the input's stem (matched after "_", "-" or ".").
SUFFIXES = ("colorized", "colorised", "colorization", "colored", "coloured", "color",
            "colour", "fake_B", "fake", "output", "out", "pred", "prediction", "result",
            "res", "gen", "eccv16", "siggraph17")
# What they put before it (matched before "_" or "-"); CT2 saves "fake_<input name>".
PREFIXES = ("fake", "pred", "output", "out", "colorized", "result", "gen")
NAMINGS = ("stem", "index", "index0", "index1")
SHOWN = 10  # names listed per kind in the summary and in meta.json
_NUMBER_PREFIX = re.compile(r"^(\d+)[_-](.+)$")
_WORD_PREFIX = re.compile(rf"^((?:{'|'.join(PREFIXES)})[_-])(.+)$", re.IGNORECASE)


class ExternalNamingError(ValueError):
    """The outputs cannot be matched to the split: ambiguous names, or no match at all."""


def _stripped(stem: str) -> list[tuple[str, str]]:
    """(rule, candidate id) for a stem less an appended input extension or a suffix."""
    out = []
    root, ext = os.path.splitext(stem)
    if root and ext.lower() in IMAGE_EXTENSIONS:
        out.append(("input extension", root))
    low = stem.lower()
    for sfx in SUFFIXES:
        for sep in "_-.":
            tail = sep + sfx.lower()
            if low.endswith(tail) and len(stem) > len(tail):
                out.append((f"suffix {sep}{sfx}", stem[:-len(tail)]))
    return out


def candidates(stem: str) -> list[tuple[str, str]]:
    """The (rule, candidate id) pairs of a file stem under ``stem`` naming, in rule order."""
    out = [("exact", stem), *_stripped(stem)]
    prefixed = []
    if m := _NUMBER_PREFIX.match(stem):
        prefixed.append(("index prefix", m.group(2)))
    if m := _WORD_PREFIX.match(stem):
        prefixed.append((f"prefix {m.group(1)}", m.group(2)))
    for rule, rest in prefixed:
        out += [(rule, rest), *((f"{rule} + {r}", c) for r, c in _stripped(rest))]
    return out


def _number(stem: str) -> int | None:
    """The number a stem (or the stem less a suffix) spells, under ``index`` naming."""
    for _, cand in [("", stem), *_stripped(stem)]:
        if cand.isdigit():
            return int(cand)
    return None


def _size(wh: tuple[int, int]) -> str:
    return f"{wh[0]}x{wh[1]}"


def _first(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f", ... and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


@dataclass
class OutputMatch:
    """How the image files of a folder map to the ids of a split."""

    folder: Path
    naming: str  # the naming asked for, or "index from 0/1" once resolved
    ids: list[str]  # the split's ids, in manifest order
    files: dict[str, Path] = field(default_factory=dict)  # id -> its one file
    rules: dict[str, str] = field(default_factory=dict)  # id -> the rule that matched
    ambiguous: dict[str, list[Path]] = field(default_factory=dict)  # id -> its files
    extra: list[Path] = field(default_factory=list)  # files that match no id

    def claim(self, image_id: str, path: Path, rule: str) -> None:
        if image_id in self.ambiguous:
            self.ambiguous[image_id].append(path)
        elif image_id in self.files:
            self.ambiguous[image_id] = [self.files.pop(image_id), path]
            self.rules.pop(image_id)
        else:
            self.files[image_id], self.rules[image_id] = path, rule

    @property
    def missing(self) -> list[str]:
        """Split ids with no file (ambiguous ones excluded), in split order."""
        return [i for i in self.ids if i not in self.files and i not in self.ambiguous]

    def rel(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()

    def ambiguity_message(self, name: str) -> str:
        lines = [f"{name}: {len(self.ambiguous)} split images match more than one file in "
                 f"{self.folder}; keep one file per image (move the others out):"]
        for image_id, paths in list(self.ambiguous.items())[:SHOWN]:
            lines.append(f"  {image_id}: {', '.join(self.rel(p) for p in paths)}")
        if len(self.ambiguous) > SHOWN:
            lines.append(f"  ... and {len(self.ambiguous) - SHOWN} more")
        return "\n".join(lines)

    def record(self) -> dict:
        """The matching as meta.json records it (lists cut to their first :data:`SHOWN`)."""
        missing = self.missing
        return {"naming": self.naming, "matched": len(self.files),
                "rules": dict(Counter(self.rules.values()).most_common()),
                "in_subfolders": sum(len(p.relative_to(self.folder).parts) > 1
                                     for p in self.files.values()),
                "missing_count": len(missing), "missing_first": missing[:SHOWN],
                "extra_count": len(self.extra),
                "extra_first": [self.rel(p) for p in self.extra[:SHOWN]]}

    def summary(self, name: str) -> list[str]:
        """Lines saying what matched, by which rules, what is missing and what is extra."""
        rec = self.record()
        rules = ", ".join(f"{r} {n}" for r, n in rec["rules"].items()) or "none"
        sub = f"; {rec['in_subfolders']} in subfolders" if rec["in_subfolders"] else ""
        lines = [f"{name}: {len(self.files)} of {len(self.ids)} split images matched in "
                 f"{self.folder} (naming {self.naming}: {rules}{sub})"]
        missing = self.missing
        if missing:
            lines.append(f"  missing {len(missing)}: {_first(missing)}")
        if self.extra:
            lines.append(f"  extra {len(self.extra)} files (no split image): "
                         f"{_first([self.rel(p) for p in self.extra])}")
        return lines


def _match_index(m: OutputMatch, files: Sequence[Path], base: int | None) -> None:
    numbers = {p: _number(p.stem) for p in files}
    if base is None:
        base = 0 if 0 in numbers.values() else 1
    m.naming = f"index from {base}"
    for p, n in numbers.items():
        k = None if n is None else n - base
        if k is None or not 0 <= k < len(m.ids):
            m.extra.append(p)
        else:
            m.claim(m.ids[k], p, m.naming)


class Listing:
    """The image files of an output folder (listed once) and each stem's candidate ids
    (worked out once): a method matches every batch against the same listing."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.files = list(iter_images(self.folder))
        self._stems: list[tuple[Path, list[tuple[str, str, str]]]] | None = None

    @property
    def stems(self) -> list[tuple[Path, list[tuple[str, str, str]]]]:
        """(file, [(rule, candidate id, its casefold), ...]) per file, in rule order."""
        if self._stems is None:
            self._stems = [(p, [(r, c, c.casefold()) for r, c in candidates(p.stem)])
                           for p in self.files]
        return self._stems


def _match_stems(m: OutputMatch, listing: Listing) -> None:
    known = set(m.ids)
    by_case: dict[str, list[str]] = {}
    for i in m.ids:
        by_case.setdefault(i.casefold(), []).append(i)
    for p, cands in listing.stems:
        hit = next(((r, c) for r, c, _ in cands if c in known), None)
        if hit is None:
            hit = next(((f"{r} (case-insensitive)", by_case[f][0]) for r, _, f in cands
                        if len(by_case.get(f, ())) == 1), None)
        if hit is None:
            m.extra.append(p)
        else:
            m.claim(hit[1], p, hit[0])


def match_outputs(folder: str | os.PathLike | Listing, ids: Sequence[str],
                  naming: str = "stem") -> OutputMatch:
    """Match the image files of ``folder`` to the split ids ``ids`` (see the module's rules).

    Args:
        folder: the other program's output folder, or its :class:`Listing`.
        ids: the split's image ids in manifest order (``index`` naming counts in it).
        naming: ``stem``, ``index`` (from 0 if a file is number 0, else 1), ``index0``,
            ``index1``.

    Returns:
        The match; ambiguous ids are in ``ambiguous``, not raised.
    """
    if naming not in NAMINGS:
        raise ValueError(f"unknown naming {naming!r}; use one of {', '.join(NAMINGS)}")
    listing = folder if isinstance(folder, Listing) else Listing(folder)
    m = OutputMatch(listing.folder, naming, list(ids))
    if naming.startswith("index"):
        _match_index(m, listing.files, {"index0": 0, "index1": 1}.get(naming))
    else:
        _match_stems(m, listing)
    return m


def _output_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the header, upright as :func:`load_rgb` turns it; None if the
    file cannot be opened (it fails when generated)."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            turned = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:  # noqa: BLE001 - PIL raises many types on bad data
        return None
    return (h, w) if turned else (w, h)


class ExternalMethod(Method):
    """Outputs of another program under ``folder``, matched to the split by file name.

    Call :meth:`prepare_split` with the split's ids before generating: it prints the match
    (and refuses an ambiguous one) before anything is computed. Without it each batch is
    matched alone, so missing and extra files are not listed and ``index`` naming cannot
    work. A missing or unreadable file is a failed image (reported, never fatal); a size
    different from the ground truth's is resized with ``resize_filter``, and meta.json
    says how many were and from what sizes.
    """

    def __init__(self, name: str, folder: str | Path, naming: str = "stem",
                 resize_filter: Image.Resampling = DEFAULT_RESIZE) -> None:
        super().__init__()
        if naming not in NAMINGS:
            raise ValueError(f"unknown naming {naming!r}; use one of {', '.join(NAMINGS)}")
        self.name, self.folder, self.naming = name, Path(folder), naming
        self.resize_filter = Image.Resampling(resize_filter)
        self.description = f"external outputs from {self.folder}"
        self.match: OutputMatch | None = None
        self.echo: Callable[[str], None] = log.info
        self._listing: Listing | None = None
        self._known: set[str] = set()  # the ids prepare_split matched
        self._resized: Counter[tuple[str, str]] = Counter()  # (from, to) -> outputs
        # What meta.json records under "external": meta() is read before generation and
        # meta.json written after it, so this dict is filled in place as outputs are read.
        self.record: dict = {"naming": naming, "resize_filter": self.resize_filter.name.lower()}

    def available(self) -> tuple[bool, str]:
        if not self.folder.is_dir():
            return False, f"external folder {self.folder} does not exist"
        return True, ""

    def meta(self) -> dict:
        return {**super().meta(), "source_dir": str(self.folder.resolve()),
                "external": self.record}

    def listing(self) -> Listing:
        """The folder's image files (listed once)."""
        if self._listing is None:
            self._listing = Listing(self.folder)
        return self._listing

    def prepare_split(self, ids: Sequence[str], echo: Callable[[str], None] | None = None,
                      *, split_dir: Path | None = None) -> OutputMatch:
        """Match the folder to the split's ``ids`` (manifest order) and print the summary:
        matched, missing and extra, the rules that matched, the outputs' sizes
        (``split_dir`` is not needed).

        Raises:
            ExternalNamingError: a split image matches several files, or none matches.
        """
        self.echo = echo or self.echo
        m = match_outputs(self.listing(), ids, self.naming)
        if m.ambiguous:
            raise ExternalNamingError(m.ambiguity_message(self.name))
        if not m.files:
            shown = _first([m.rel(p) for p in self.listing().files]) or "no image files"
            raise ExternalNamingError(
                f"{self.name}: no file in {self.folder} matches a split image under "
                f"{self.naming} naming (files: {shown}); see bench.methods.external for "
                "the naming rules")
        self.match, self._known = m, set(m.ids)
        sizes = Counter(_output_size(p) for p in m.files.values())
        self.record.update(m.record(), output_sizes={
            (_size(s) if s else "unreadable"): n for s, n in sizes.most_common()})
        for line in m.summary(self.name):
            self.echo(line)
        shown = ", ".join(f"{k} ({n})" for k, n in self.record["output_sizes"].items())
        self.echo(f"  output sizes: {shown}; one that differs from its ground truth's is "
                  f"resized to it ({self.record['resize_filter']})")
        return m

    def _lookup(self, ids: Sequence[str]) -> OutputMatch:
        if self.match is not None and self._known.issuperset(ids):
            return self.match
        if self.naming != "stem":
            raise ExternalNamingError(f"{self.name}: {self.naming} naming counts in the "
                                      "split's order: call prepare_split(ids) first")
        return match_outputs(self.listing(), ids, self.naming)

    def generate(self, items: Sequence[Item]) -> list[Result]:
        m = self._lookup([it.image_id for it in items])
        out: list[Result] = []
        for it in items:
            if it.image_id in m.ambiguous:
                names = ", ".join(m.rel(p) for p in m.ambiguous[it.image_id])
                out.append(ExternalNamingError(f"{self.name}: {it.image_id} matches "
                                               f"several files: {names}"))
            elif it.image_id not in m.files:
                out.append(FileNotFoundError(f"{self.name}: no file for {it.image_id} in "
                                             f"{self.folder} ({m.naming} naming)"))
            else:
                try:
                    out.append(self._fit(it, load_rgb(m.files[it.image_id])))
                except ImageLoadError as exc:
                    out.append(exc)
        return out

    def _fit(self, it: Item, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` at the ground truth's size: resized with the filter when it differs."""
        h, w = it.rgb.shape[:2]
        if rgb.shape[:2] == (h, w):
            return rgb
        src, dst = _size((rgb.shape[1], rgb.shape[0])), _size((w, h))
        if not self._resized[(src, dst)]:
            self.echo(f"  {self.name}: resizing {src} outputs to {dst} "
                      f"({self.record['resize_filter']}; first: {it.image_id})")
        self._resized[(src, dst)] += 1
        self.record["resized"] = {
            "count": sum(self._resized.values()),
            "from_to": {f"{a} -> {b}": n for (a, b), n in self._resized.most_common()}}
        aspect = "" if rgb.shape[1] * h == rgb.shape[0] * w else "; aspect ratio changed"
        self.warnings.append({"image_id": it.image_id, "warning": f"resized from {src} to "
                              f"{dst} ({self.record['resize_filter']}{aspect})"})
        return np.asarray(Image.fromarray(rgb).resize((w, h), self.resize_filter))
