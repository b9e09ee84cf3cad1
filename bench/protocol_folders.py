"""Where the images of a published protocol (:mod:`bench.protocols`) are: the dataset
folders a user already has, their file names, and the errors that say which folder is
expected and where its data comes from."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from bench.split_lists import SplitEntry, SplitError


@dataclass(frozen=True)
class Layout:
    """A dataset's folder: the file names it holds and how to recognise a wrong folder."""

    title: str
    layout: str  # the expected layout, in words
    data_from: str  # where the data comes from
    pattern: str  # regular expression of an image's file name
    example: str  # one such name
    name_format: str | None  # the n-th file's name (1-based), when names are numbered
    class_folders: bool  # images may also sit in one level of sub-folders
    below: tuple[str, ...]  # sub-paths tried when the folder given is a parent
    wrong: tuple[tuple[str, str], ...]  # (file name pattern, what such a folder is)


LAYOUTS = {
    "imagenet": Layout(
        "ILSVRC2012 validation",
        "ILSVRC2012_val_00000001.JPEG ... ILSVRC2012_val_00050000.JPEG, directly in the "
        "folder or in its <wnid>/ class folders",
        "ILSVRC2012_img_val.tar (50,000 JPEGs, 6.3 GB) from https://image-net.org "
        "(registration needed); extract it into one folder",
        r"ILSVRC2012_val_\d{8}\.JPEG", "ILSVRC2012_val_00000001.JPEG",
        "ILSVRC2012_val_{:08d}.JPEG", True,
        ("val", "ILSVRC2012_img_val", "Data/CLS-LOC/val"),
        ((r"n\d{8}_\d+\.JPEG", "the ILSVRC2012 training images"),)),
    "coco": Layout(
        "COCO 2017 validation (COCO-Stuff val)",
        "the 5,000 COCO val2017 images, 000000000139.jpg ..., directly in the folder",
        "http://images.cocodataset.org/zips/val2017.zip (COCO-Stuff uses the COCO 2017 "
        "images: https://github.com/nightrome/cocostuff)",
        r"\d{12}\.jpg", "000000000139.jpg", None, False, ("val2017", "images/val2017"),
        ((r"COCO_val2014_\d{12}\.jpg", "COCO 2014 validation (40,504 images), not val2017"),
         (r"COCO_train2014_\d{12}\.jpg", "COCO 2014 training images"))),
    "ade20k": Layout(
        "ADE20K validation (SceneParsing)",
        "ADEChallengeData2016/images/validation: ADE_val_00000001.jpg ... "
        "ADE_val_00002000.jpg, directly in the folder",
        "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip (MIT Scene "
        "Parsing benchmark)",
        r"ADE_val_\d{8}\.jpg", "ADE_val_00000001.jpg", "ADE_val_{:08d}.jpg", False,
        ("images/validation", "ADEChallengeData2016/images/validation", "validation"),
        ((r"ADE_train_\d{8}\.jpg", "the ADE20K training images"),)),
}



@dataclass(frozen=True)
class Located:
    """Where a protocol's images are: the folder, file name -> path under it, the layout."""

    root: Path
    files: dict[str, str]
    layout: str


def _index(folder: Path, lay: Layout) -> dict[str, str]:
    """File name -> path relative to ``folder`` of the images matching the layout."""
    pat = re.compile(lay.pattern)
    flat = {p.name: p.name for p in folder.iterdir() if pat.fullmatch(p.name) and p.is_file()}
    if flat or not lay.class_folders:
        return flat
    return {p.name: f"{sub.name}/{p.name}" for sub in sorted(folder.iterdir()) if sub.is_dir()
            for p in sub.iterdir() if pat.fullmatch(p.name) and p.is_file()}


def _what_it_is(folder: Path, lay: Layout) -> str:
    """A sentence on a folder that holds none of the layout's files."""
    names = [p.name for p in folder.iterdir()][:2000]
    names += [q.name for p in folder.iterdir() if p.is_dir() for q in list(p.iterdir())[:50]]
    for pattern, what in lay.wrong:
        if any(re.fullmatch(pattern, n) for n in names):
            return f"it looks like {what}"
    return (f"it holds no file named like {lay.example} (nor do {', '.join(lay.below)} "
            "below it)")


def locate(lay: Layout, source: str | os.PathLike, protocol: str) -> Located:
    """The folder of a ``lay`` dataset: ``source`` or a known folder below it.

    Raises:
        SplitError: no such folder, or not the expected layout; the message names the
            layout expected and where the data comes from.
    """
    source = Path(source)
    expect = (f"{protocol} needs the {lay.title} images: {lay.layout}. They come from "
              f"{lay.data_from}.")
    if not source.is_dir():
        raise SplitError(f"--source {source} is not a folder. {expect}")
    for cand in (source, *(source / b for b in lay.below)):
        files = _index(cand, lay) if cand.is_dir() else {}
        if files:
            nested = any("/" in v for v in files.values())
            return Located(cand, files, "class folders" if nested else "flat")
    raise SplitError(f"--source {source} is not the expected folder: "
                     f"{_what_it_is(source, lay)}. {expect}")


def list_entries(lay: Layout, found: Located, count: int, protocol: str) -> list[SplitEntry]:
    """The ``count`` images of a protocol in list order: the first ``count`` numbered names,
    or every file of a folder of unnumbered ones (sorted). A numbered file the folder lacks
    is kept (the build reports it missing), like ctest10k.

    Raises:
        SplitError: a folder of unnumbered files (COCO) that does not hold exactly the
            protocol's count.
    """
    if lay.name_format is not None:
        names = [lay.name_format.format(k) for k in range(1, count + 1)]
    else:
        names = sorted(found.files)
        if len(names) != count:
            raise SplitError(
                f"{found.root} holds {len(names)} {lay.title} images, {protocol} has "
                f"{count}: {lay.layout}. They come from {lay.data_from}.")
    entries = []
    for name in names:
        rel = found.files.get(name, name)
        entries.append(SplitEntry(Path(name).stem, rel.split("/")[0] if "/" in rel else "",
                                  "", rel))
    return entries


