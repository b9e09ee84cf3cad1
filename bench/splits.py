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
import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.split_lists import SplitEntry, find_source
from pixcolor import color
from pixcolor.io import (
    ImageLoadError,
    atomic_write_text,
    file_sha256,
    load_rgb,
    save_png,
)
from pixcolor.provenance import now_utc, software_versions

log = logging.getLogger(__name__)

DEFAULT_SIZE = 256
MANIFEST_COLUMNS = ("image_id", "wnid", "label", "source_path", "source_sha256",
                    "output_sha256", "width", "height", "source_width", "source_height",
                    "colorness", "protocol")
REPORT_COLUMNS = ("image_id", "wnid", "label", "status", "detail", "source_path")


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


@dataclass(frozen=True)
class Preprocessing:
    """A protocol other than :func:`preprocess` (the published ones of
    :mod:`bench.protocols`): ``load`` decodes a source file (raising
    :class:`~pixcolor.io.ImageLoadError`), ``fn`` turns the decoded (H, W, 3) uint8 into the
    split's image, ``tag`` is the manifest's ``protocol`` column."""

    tag: str
    fn: Callable[[np.ndarray], np.ndarray]
    load: Callable[[Path], np.ndarray] = load_rgb


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
                progress: Callable[[int, int], None] | None = None,
                preprocessing: Preprocessing | None = None) -> BuildResult:
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
        preprocessing: decode and preprocess another way (``size`` and ``keep_aspect``
            must then describe its output); default :func:`pixcolor.io.load_rgb` and
            :func:`preprocess`.

    Returns:
        A :class:`BuildResult`; never raises for a bad source.
    """
    root, out = Path(source_root), Path(out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    old = {r["image_id"]: r for r in read_manifest(out / "manifest.csv")}
    result = BuildResult(name, out, len(entries))
    prep = preprocessing or Preprocessing(
        protocol_tag(size, keep_aspect),
        lambda rgb: preprocess(rgb, size, keep_aspect))
    builder = _EntryBuilder(root, result, old, size=size, keep_aspect=keep_aspect,
                            drop_grayscale=drop_grayscale, threshold=threshold, prep=prep)
    for k, e in enumerate(entries):
        builder.add(e)
        if progress is not None:
            progress(k + 1, len(entries))
    _write_outputs(result, size=size, keep_aspect=keep_aspect, threshold=threshold,
                   info=info or {})
    return result


@dataclass
class _EntryBuilder:
    """What :func:`build_split` needs for each entry: where sources are found, the previous
    manifest rows, the protocol, and the result it fills."""

    root: Path  # source folder
    result: BuildResult
    old: dict[str, dict]  # the previous manifest's rows by image id
    size: int
    keep_aspect: bool
    drop_grayscale: bool
    threshold: float
    prep: Preprocessing  # how a source becomes the split's image

    def add(self, e: SplitEntry) -> None:
        """Add ``e``'s manifest row (reused or processed) or its problem (missing,
        unreadable, grayscale) to the result."""
        root, images, result = self.root, self.result.out / "images", self.result
        base = {"image_id": e.image_id, "wnid": e.wnid, "label": e.label}
        src = find_source(root, e)
        if src is None:
            result.problems.append({**base, "status": "missing", "source_path": "",
                                    "detail": f"not found as {root / e.relpath} or "
                                              f"{root / Path(e.relpath).name}"})
            return
        row = _reuse(self.old.get(e.image_id), src, images, self.keep_aspect, self.size,
                     self.prep.tag)
        if row is None:
            try:
                row = _process(e, src, images, self.prep)
            except ImageLoadError as exc:
                result.problems.append({**base, "status": "unreadable",
                                        "source_path": str(src), "detail": exc.reason})
                return
        gray = float(row["colorness"]) < self.threshold
        if gray:
            result.problems.append({
                **base, "status": "grayscale_dropped" if self.drop_grayscale else "grayscale",
                "source_path": str(src),
                "detail": f"colorness {float(row['colorness']):.4f} < {self.threshold}"})
        if not (gray and self.drop_grayscale):
            result.rows.append(row)
        elif (images / f"{e.image_id}.png").exists():
            (images / f"{e.image_id}.png").unlink()


def _reuse(row: dict | None, src: Path, images: Path, keep_aspect: bool, size: int,
           tag: str) -> dict | None:
    if row is None or row.get("source_path") != str(src):
        return None
    png = images / f"{row['image_id']}.png"
    if not png.is_file() or file_sha256(png) != row.get("output_sha256"):
        return None
    w, h = int(row["width"]), int(row["height"])
    square = (w == size and h == size)
    if (not keep_aspect and not square) or (keep_aspect and min(w, h) != size):
        return None
    if row.get("protocol") != tag:
        return None
    return row


def protocol_tag(size: int, keep_aspect: bool) -> str:
    """The preprocessing protocol in a few words (the manifest's ``protocol`` column)."""
    crop = "none" if keep_aspect else f"centre {size}x{size}"
    return f"shorter side {size} (antialiased bilinear), crop {crop}"


def _process(e: SplitEntry, src: Path, images: Path, prep: Preprocessing) -> dict:
    rgb = prep.load(src)
    out = prep.fn(rgb)
    png = save_png(images / f"{e.image_id}.png", out)
    return {"image_id": e.image_id, "wnid": e.wnid, "label": e.label,
            "source_path": str(src), "source_sha256": file_sha256(src),
            "output_sha256": file_sha256(png), "width": out.shape[1], "height": out.shape[0],
            "source_width": rgb.shape[1], "source_height": rgb.shape[0],
            "colorness": f"{color.colorness(out):.5f}",
            "protocol": prep.tag}


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
    return load_rgb(Path(split_dir) / "images" / f"{image_id}.png")

