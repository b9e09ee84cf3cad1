"""Evaluation splits: ctest10k, cval1k and the demo photos, preprocessed one way (paper Sec. 4).

The paper evaluates on 500 images of the "ctest10k" split of the ILSVRC2012 validation set
(Larsson et al. 2016) and shows them as centre crops. This module turns a user's validation
folder (flat ``ILSVRC2012_val_00042961.JPEG`` files or ``<wnid>/`` sub-folders) or the
embedded demo photos into a split folder::

    <out>/images/<image_id>.png   preprocessed ground truth (uint8 RGB PNG)
    <out>/manifest.csv            one row per usable image (see MANIFEST_COLUMNS)
    <out>/report.csv              missing, unreadable and grayscale sources
    <out>/split.json              protocol, counts, list checksum, subset, software

Protocol (torchvision's ``Resize(size)`` + ``CenterCrop(size)``): the image is decoded
upright (:func:`pixcolor.io.load_rgb`), its shorter side resized to ``size`` (default 256)
with antialiased bilinear filtering (:func:`pixcolor.color.resize`; the longer side is
``int(size * long / short)``), then centre-cropped to ``size x size`` (offsets rounded
half to even). ``keep_aspect=True`` skips the crop. A missing or corrupt source never
aborts a build: it is listed in the report and left out of the manifest.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from pixcolor import color
from pixcolor.io import (
    ImageLoadError,
    atomic_write_text,
    file_sha256,
    iter_images,
    load_rgb,
    save_png,
)
from pixcolor.provenance import now_utc, software_versions

log = logging.getLogger(__name__)

OFFICIAL_SPLITS = ("ctest10k", "cval1k")
DEFAULT_SIZE = 256
MANIFEST_COLUMNS = ("image_id", "wnid", "label", "source_path", "source_sha256",
                    "output_sha256", "width", "height", "source_width", "source_height",
                    "colorness", "protocol")
REPORT_COLUMNS = ("image_id", "wnid", "label", "status", "detail", "source_path")


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


@dataclass
class BuildResult:
    """What :func:`build_split` did; ``rows`` are manifest rows, ``problems`` report rows."""

    name: str
    out: Path
    expected: int
    rows: list[dict] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(p["status"] == status for p in self.problems)

    @property
    def usable(self) -> int:
        return len(self.rows)

    def summary_line(self) -> str:
        """The final line of a build: usable images out of expected, and why not all."""
        parts = [f"{self.count('missing')} missing", f"{self.count('unreadable')} unreadable"]
        gray = self.count("grayscale") + self.count("grayscale_dropped")
        kept = "dropped" if self.count("grayscale_dropped") else "kept"
        return (f"{self.name}: {self.usable} of {self.expected} expected images usable "
                f"({', '.join(parts)}; {gray} grayscale sources {kept})")


# --------------------------------------------------------------------------- lists


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


# --------------------------------------------------------------------------- images


def preprocess(rgb: np.ndarray, size: int = DEFAULT_SIZE, keep_aspect: bool = False
               ) -> np.ndarray:
    """Shorter side to ``size`` (antialiased bilinear), then a centred ``size`` crop.

    Args:
        rgb: (H, W, 3) uint8.
        size: target shorter side (and crop side).
        keep_aspect: no crop; the result is (size, L, 3) or (L, size, 3).

    Returns:
        (size, size, 3) uint8 (or the uncropped resize).
    """
    h, w = rgb.shape[:2]
    short, long_ = min(h, w), max(h, w)
    new_long = max(size, int(size * long_ / short))
    nh, nw = (size, new_long) if h <= w else (new_long, size)
    out = rgb if (nh, nw) == (h, w) else color.to_uint8(
        color.resize(rgb.astype(np.float32) / 255.0, (nh, nw), antialias=True))
    if keep_aspect:
        return out
    top, left = int(round((nh - size) / 2)), int(round((nw - size) / 2))
    return np.ascontiguousarray(out[top:top + size, left:left + size])


def _write_csv(path: Path, rows: Iterable[dict], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``manifest.csv`` as dicts of strings (empty list if absent)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- build


def build_split(entries: Sequence[SplitEntry], source_root: str | os.PathLike,
                out: str | os.PathLike, *, name: str, size: int = DEFAULT_SIZE,
                keep_aspect: bool = False, drop_grayscale: bool = False,
                threshold: float = color.COLORNESS_THRESHOLD, info: dict | None = None,
                progress: Callable[[int, int], None] | None = None) -> BuildResult:
    """Preprocess every entry's source into ``out`` and write manifest, report and split.json.

    Rebuilding is incremental: a manifest row whose output PNG still has the recorded
    sha256 and whose source path is unchanged is kept without reading the source again.

    Args:
        entries: the expected images.
        source_root: ImageNet validation folder (flat or ``<wnid>/``) or the demo images.
        out: split folder.
        name: split name (for messages and split.json).
        size: shorter side and crop size.
        keep_aspect: resize only, no crop.
        drop_grayscale: leave sources under ``threshold`` colorness out of the manifest.
        threshold: colorness under which a source is reported as grayscale.
        info: extra fields for split.json (list sha256, subset, ...).
        progress: called as ``progress(done, total)`` after each entry.

    Returns:
        A :class:`BuildResult`; never raises for a bad source.
    """
    root, out = Path(source_root), Path(out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    old = {r["image_id"]: r for r in read_manifest(out / "manifest.csv")}
    result = BuildResult(name, out, len(entries))
    for k, e in enumerate(entries):
        _build_entry(e, root, images, old.get(e.image_id), result, size=size,
                     keep_aspect=keep_aspect, drop_grayscale=drop_grayscale,
                     threshold=threshold)
        if progress is not None:
            progress(k + 1, len(entries))
    _write_outputs(result, size=size, keep_aspect=keep_aspect, threshold=threshold,
                   info=info or {})
    return result


def _build_entry(e: SplitEntry, root: Path, images: Path, old_row: dict | None,
                 result: BuildResult, *, size: int, keep_aspect: bool, drop_grayscale: bool,
                 threshold: float) -> None:
    """One entry of :func:`build_split`: its manifest row (reused or processed) or its
    problem (missing, unreadable, grayscale) added to ``result``."""
    base = {"image_id": e.image_id, "wnid": e.wnid, "label": e.label}
    src = find_source(root, e)
    if src is None:
        result.problems.append({**base, "status": "missing", "source_path": "",
                                "detail": f"not found as {root / e.relpath} or "
                                          f"{root / Path(e.relpath).name}"})
        return
    row = _reuse(old_row, src, images, keep_aspect, size)
    if row is None:
        try:
            row = _process(e, src, images, size, keep_aspect)
        except ImageLoadError as exc:
            result.problems.append({**base, "status": "unreadable",
                                    "source_path": str(src), "detail": exc.reason})
            return
    gray = float(row["colorness"]) < threshold
    if gray:
        result.problems.append({
            **base, "status": "grayscale_dropped" if drop_grayscale else "grayscale",
            "source_path": str(src),
            "detail": f"colorness {float(row['colorness']):.4f} < {threshold}"})
    if not (gray and drop_grayscale):
        result.rows.append(row)
    elif (images / f"{e.image_id}.png").exists():
        (images / f"{e.image_id}.png").unlink()


def _reuse(row: dict | None, src: Path, images: Path, keep_aspect: bool, size: int
           ) -> dict | None:
    if row is None or row.get("source_path") != str(src):
        return None
    png = images / f"{row['image_id']}.png"
    if not png.is_file() or file_sha256(png) != row.get("output_sha256"):
        return None
    w, h = int(row["width"]), int(row["height"])
    square = (w == size and h == size)
    if (not keep_aspect and not square) or (keep_aspect and min(w, h) != size):
        return None
    if row.get("protocol") != protocol_tag(size, keep_aspect):
        return None
    return row


def protocol_tag(size: int, keep_aspect: bool) -> str:
    """The preprocessing protocol in a few words (the manifest's ``protocol`` column)."""
    crop = "none" if keep_aspect else f"centre {size}x{size}"
    return f"shorter side {size} (antialiased bilinear), crop {crop}"


def _process(e: SplitEntry, src: Path, images: Path, size: int, keep_aspect: bool) -> dict:
    rgb = load_rgb(src)
    out = preprocess(rgb, size, keep_aspect)
    png = save_png(images / f"{e.image_id}.png", out)
    return {"image_id": e.image_id, "wnid": e.wnid, "label": e.label,
            "source_path": str(src), "source_sha256": file_sha256(src),
            "output_sha256": file_sha256(png), "width": out.shape[1], "height": out.shape[0],
            "source_width": rgb.shape[1], "source_height": rgb.shape[0],
            "colorness": f"{color.colorness(out):.5f}",
            "protocol": protocol_tag(size, keep_aspect)}


def _write_outputs(result: BuildResult, *, size: int, keep_aspect: bool, threshold: float,
                   info: dict) -> None:
    out = result.out
    keep = {r["image_id"] for r in result.rows}
    for png in (out / "images").glob("*.png"):  # outputs of entries no longer usable/listed
        if png.stem not in keep:
            png.unlink()
    _write_csv(out / "manifest.csv", result.rows, MANIFEST_COLUMNS)
    _write_csv(out / "report.csv", result.problems, REPORT_COLUMNS)
    doc = {
        "name": result.name,
        "protocol": {
            "resize": f"shorter side to {size}, antialiased bilinear "
                      "(pixcolor.color.resize; torchvision Resize)",
            "crop": "none (--keep-aspect)" if keep_aspect else f"centre {size}x{size}",
            "size": size, "keep_aspect": keep_aspect, "decode": "pixcolor.io.load_rgb "
            "(EXIF orientation applied, grayscale replicated to RGB)"},
        "counts": {"expected": result.expected, "usable": result.usable,
                   "missing": result.count("missing"),
                   "unreadable": result.count("unreadable"),
                   "grayscale": result.count("grayscale") + result.count("grayscale_dropped"),
                   "grayscale_dropped": result.count("grayscale_dropped")},
        "colorness_threshold": threshold,
        "summary": result.summary_line(),
        "created": now_utc(),
        "software": software_versions(),
        **info,
    }
    atomic_write_text(out / "split.json", json.dumps(doc, indent=1) + "\n")


def load_built(out: str | os.PathLike) -> BuildResult | None:
    """A split built earlier, from its split.json, manifest and report (None if absent)."""
    out = Path(out)
    try:
        doc = json.loads((out / "split.json").read_text())
    except (OSError, ValueError):
        return None
    rows = read_manifest(out / "manifest.csv")
    if not rows:
        return None
    return BuildResult(doc.get("name", out.name), out, int(doc["counts"]["expected"]), rows,
                       read_manifest(out / "report.csv"))


def load_split_image(split_dir: str | os.PathLike, image_id: str) -> np.ndarray:
    """A preprocessed ground-truth image of a split as (H, W, 3) uint8."""
    path = Path(split_dir) / "images" / f"{image_id}.png"
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()

