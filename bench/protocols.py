"""Published evaluation protocols built from folders a user already has, like ctest10k.

Each :class:`Protocol` says which images (the list rule), how they are decoded, cropped and
resized, how the ground truth the published metrics compare against is made (an RGB -> Lab
-> RGB round trip), which FID network the source uses, and the source file and lines it was
read from (``bench/PROTOCOLS.md`` has the same with what is and is not verified).
:func:`build_protocol` writes a split folder exactly like ctest10k's
(:func:`bench.splits.build_split`: ``images/``, ``manifest.csv`` with sha256 of every source
and output, ``report.csv``, ``split.json``) plus ``list.txt`` (the expected ids) and
``ground_truth/`` with ``ground_truth.csv`` (the round-tripped ground truth and its sha256).

A new protocol: a :class:`Protocol` in :data:`PROTOCOLS` (a new folder layout: a
:class:`~bench.protocol_folders.Layout` in :data:`~bench.protocol_folders.LAYOUTS`; new
image operations: :mod:`bench.protocol_ops`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from bench import protocol_ops as ops
from bench.protocol_folders import LAYOUTS, Layout, list_entries, locate
from bench.split_lists import SplitError, select_subset
from bench.splits import BuildResult, Preprocessing, _write_csv, build_split, read_manifest
from pixcolor.io import atomic_write_text, file_sha256, load_rgb, save_png

CT2 = "github.com/shuchenweng/CT2 @ cd40f5a"
DDCOLOR = "github.com/piddnad/DDColor @ 2adb63f"
GT_COLUMNS = ("image_id", "image_sha256", "sha256", "round_trip")


@dataclass(frozen=True)
class Protocol:
    """One published evaluation protocol (see the module docstring and PROTOCOLS.md)."""

    name: str
    count: int  # images in the protocol
    dataset: str  # key of LAYOUTS
    follows: str  # whose code it reproduces
    list_rule: str
    decode: str
    crop: str
    resize: str
    size: int  # output side
    ground_truth: str  # the colour round trip of the ground truth
    fid: str  # FID network variant (analysis.inception_weights.VARIANTS)
    fid_detail: str
    sources: tuple[str, ...]  # file and lines each step was read from
    unverified: tuple[str, ...]  # what the source code does not settle
    prep_short: str  # for the table
    gt_short: str

    @property
    def layout(self) -> Layout:
        return LAYOUTS[self.dataset]

    @property
    def tag(self) -> str:
        """The manifest's ``protocol`` column."""
        return f"{self.name}: {self.prep_short}"

    def preprocessing(self) -> Preprocessing:
        """How a source file becomes the split's image (:class:`bench.splits.Preprocessing`)."""
        if self.follows == "CT2":
            return Preprocessing(self.tag, partial(ops.ct2_preprocess, size=self.size),
                                 ops.load_pil_convert_rgb)
        return Preprocessing(self.tag, partial(ops.ddcolor_preprocess, size=self.size),
                             load_rgb)

    def ground_truth_fn(self) -> Callable[[np.ndarray], np.ndarray]:
        """The split image (uint8) to the ground truth the protocol's metrics use."""
        return ops.ct2_ground_truth if self.follows == "CT2" else ops.ddcolor_ground_truth

    def describe(self) -> dict:
        """Every field, and the layout's, as a JSON-able dict (split.json's ``protocol``)."""
        return {**asdict(self), "layout": self.layout.layout,
                "data_from": self.layout.data_from}


_CT2_FID = ("torchvision Inception-v3 (inception_v3_google-1a9a5a14.pth), 2048-d final "
            "average pool, inputs bilinearly resized to 299x299 (F.interpolate, "
            "align_corners=False, no antialiasing), batch 1")
_DDCOLOR_COMMON = {
    "follows": "DDColor", "size": 256,
    "decode": "OpenCV imdecode IMREAD_COLOR (EXIF orientation applied; pixcolor.io.load_rgb)",
    "crop": "none (the aspect ratio is not kept)",
    "resize": "float32 / 255, cv2.resize(img, (256, 256)): INTER_LINEAR, half-pixel "
              "centres, no antialiasing (bench.protocol_ops.cv2_resize_linear); split image "
              "= round(255 x), output 256x256",
    "ground_truth": "scikit-image rgb2lab of the float32 image, DDColor's tensor_lab2rgb "
                    "(clamped to [0, 1]), tensor2img: round(255 x) to uint8; made here from "
                    "the split's uint8 image, not the float resize (a few pixels move by "
                    "one level)",
    "fid": "torchvision",
    "fid_detail": _CT2_FID + "; the [0, 1] tensors go in where the network's forward "
                  "expects [-1, 1] (x * 0.5 + 0.5 first), as the code reads",
    "prep_short": "cv2 INTER_LINEAR to 256x256, no crop",
    "gt_short": "skimage rgb2lab + DDColor lab2rgb, rounded",
}
_DDCOLOR_SOURCES = (
    f"{DDCOLOR} basicsr/data/lab_dataset.py 74-75 (decode, /255, cv2.resize to gt_size), "
    "108-109 (BGR->RGB, rgb2lab)",
    f"{DDCOLOR} basicsr/utils/img_util.py 114-132 (imfrombytes), 38-94 (tensor2img), "
    "175-227 (tensor_lab2rgb)",
    f"{DDCOLOR} basicsr/data/transforms.py 185-189 (skimage color.rgb2lab)",
    f"{DDCOLOR} basicsr/models/color_model.py 128-134, 211-212 (ground truth = "
    "tensor_lab2rgb(L, ab)), 269-273 (tensor2img), 296-320, 345-350 (FID)",
    f"{DDCOLOR} basicsr/metrics/custom_fid.py 8-135 (INCEPTION_V3_FID; 117-125 resize "
    "and normalisation)",
    f"{DDCOLOR} options/train/train_ddcolor.yml 40-46 (val: gt_size 256)",
)
_DDCOLOR_UNVERIFIED = (
    "which images: DDColor reads its evaluation sets from list files that are not in the "
    "repository (data_list/*.txt); the list rule is the paper's dataset description",
    "the paper's numbers may come from scripts other than the training-time validation "
    "read here",
)

PROTOCOLS = {p.name: p for p in (
    Protocol(
        "imagenet-val5k", 5000, "imagenet", "CT2",
        "ILSVRC2012_val_00000001 ... ILSVRC2012_val_00005000 (the first 5,000 validation "
        "files in sorted order)",
        "PIL Image.open(...).convert('RGB') (no EXIF orientation)",
        "centre square of the shorter side: torchvision CenterCrop(min(w, h)), offsets "
        "int(round((size - side) / 2))",
        "torchvision Resize(256) on the PIL image = Image.resize((256, 256), BILINEAR) "
        "(antialiased when shrinking), output 256x256",
        256,
        "CT2's '_convert' ground truth: (255 * clip(lab2rgb(rgb2lab(gt).astype(float32)), "
        "0, 1)).astype(uint8) with scikit-image (truncating); CT2 reports both",
        "torchvision",
        _CT2_FID + "; inputs normalised to [-1, 1] first; statistics of the 5,000 outputs "
        "against the 5,000 ground truths (and their round trip)",
        (f"{CT2} README.md 37 (first 5k val images, centre cropped, 256x256)",
         f"{CT2} segm/data/coco.py 101-110 (val list), 132 (decode), 139-145 (crop, resize)",
         f"{CT2} segm/test.py 35-36 and segm/config.yml 165-172 (256)",
         f"{CT2} segm/metrics.py 162-168 (round trip), 456-485 (PSNR/SSIM), 488-521 "
         "(LPIPS VGG), 584-612 and 623-655 (FID), 195-322 (INCEPTION_V3_FID)",
         f"{CT2} segm/engine.py 238-255 (outputs saved as fake_<name>.JPEG)"),
        ("how CT2's ground-truth folder was written (no code in the repository saves it)",
         "CT2 saves its outputs with the .JPEG extension of the source names (lossy), "
         "engine.py 252-255; this harness keeps PNGs",
         "DDColor's paper reports val5k too; DDColor's code has no centre crop "
         "(see imagenet-val50k)"),
        "centre crop, PIL bilinear to 256x256", "skimage Lab round trip, truncated"),
    Protocol(
        "imagenet-val50k", 50000, "imagenet",
        list_rule="all 50,000 ILSVRC2012 validation files, sorted by name",
        sources=_DDCOLOR_SOURCES, unverified=_DDCOLOR_UNVERIFIED, **_DDCOLOR_COMMON),
    Protocol(
        "cocostuff-val", 5000, "coco",
        list_rule="all 5,000 COCO val2017 images, sorted by file name",
        sources=_DDCOLOR_SOURCES, unverified=_DDCOLOR_UNVERIFIED, **_DDCOLOR_COMMON),
    Protocol(
        "ade20k-val", 2000, "ade20k",
        list_rule="ADE_val_00000001 ... ADE_val_00002000 (all 2,000 validation images)",
        sources=_DDCOLOR_SOURCES, unverified=_DDCOLOR_UNVERIFIED, **_DDCOLOR_COMMON),
)}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; :class:`SplitError` naming the known ones otherwise."""
    if name not in PROTOCOLS:
        raise SplitError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)} "
                         "(python -m bench protocols)")
    return PROTOCOLS[name]


# --------------------------------------------------------------------------- build


def build_protocol(protocol: str | Protocol, source: str | os.PathLike,
                   out: str | os.PathLike, *, subset: int | None = None, seed: int = 0,
                   name: str | None = None,
                   progress: Callable[[int, int], None] | None = None) -> BuildResult:
    """Build ``protocol``'s split folder from a user's dataset folder.

    Args:
        protocol: a name of :data:`PROTOCOLS` or a :class:`Protocol`.
        source: the dataset folder (see :func:`locate`).
        out: split folder to write (rebuilt incrementally, as ctest10k).
        subset, seed: keep a deterministic subset (:func:`bench.split_lists.select_subset`;
            not the protocol any more, recorded in split.json).
        name: split name for split.json (default: the protocol's).
        progress: called as ``progress(done, total)``.

    Raises:
        SplitError: unknown protocol, missing or wrongly laid-out folder
            (:func:`bench.protocol_folders.locate`).
    """
    p = get_protocol(protocol) if isinstance(protocol, str) else protocol
    found = locate(p.layout, source, p.name)
    entries = list_entries(p.layout, found, p.count, p.name)
    ids = "".join(f"{e.image_id}\n" for e in entries)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "list.txt", ids)
    info = {"protocol": p.describe(), "list": p.list_rule, "list_file": "list.txt",
            "list_sha256": hashlib.sha256(ids.encode()).hexdigest(),
            "source_root": str(found.root.resolve()), "source_layout": found.layout}
    if subset:
        entries = select_subset(entries, subset, seed)
        info["subset"] = {"n": subset, "seed": seed,
                          "rule": "np.random.default_rng(seed).permutation(len(list))[:n], "
                                  "kept in list order"}
    result = build_split(entries, found.root, out, name=name or p.name, size=p.size,
                         info=info, progress=progress, preprocessing=p.preprocessing())
    n = write_ground_truth(result, p)
    doc = json.loads((out / "split.json").read_text())
    doc["ground_truth"] = {"folder": "ground_truth", "manifest": "ground_truth.csv",
                           "round_trip": p.ground_truth, "count": n}
    atomic_write_text(out / "split.json", json.dumps(doc, indent=1) + "\n")
    return result


def write_ground_truth(result: BuildResult, protocol: Protocol) -> int:
    """``<out>/ground_truth/<id>.png``: every split image through the protocol's colour
    round trip, and ``ground_truth.csv`` with both sha256 (an image whose recorded hashes
    still match is not redone). Returns the number of images."""
    out = result.out
    folder = out / "ground_truth"
    folder.mkdir(exist_ok=True)
    old = {r["image_id"]: r for r in read_manifest(out / "ground_truth.csv")}
    fn, rows = protocol.ground_truth_fn(), []
    for r in result.rows:
        gt, prev = folder / f"{r['image_id']}.png", old.get(r["image_id"])
        if (prev is not None and prev["image_sha256"] == r["output_sha256"]
                and prev["round_trip"] == protocol.gt_short and gt.is_file()
                and file_sha256(gt) == prev["sha256"]):
            rows.append(prev)
            continue
        save_png(gt, fn(load_rgb(out / "images" / f"{r['image_id']}.png")))
        rows.append({"image_id": r["image_id"], "image_sha256": r["output_sha256"],
                     "sha256": file_sha256(gt), "round_trip": protocol.gt_short})
    keep = {r["image_id"] for r in rows}
    for png in folder.glob("*.png"):
        if png.stem not in keep:
            png.unlink()
    _write_csv(out / "ground_truth.csv", rows, GT_COLUMNS)
    return len(rows)


# --------------------------------------------------------------------------- listing


def format_table() -> str:
    """The protocols as a fixed-width text table (``python -m bench protocols``)."""
    cells = [("protocol", "images", "dataset", "preprocessing", "GT round trip", "FID",
              "follows")]
    cells += [(p.name, f"{p.count:,}", p.layout.title.split(" (")[0], p.prep_short,
               p.gt_short, p.fid, p.follows) for p in PROTOCOLS.values()]
    widths = [max(len(r[k]) for r in cells) for k in range(len(cells[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells)


def format_protocol(name: str) -> str:
    """Every field of one protocol, one per line (``python -m bench protocols NAME``)."""
    d = get_protocol(name).describe()
    lines = []
    for key, value in d.items():
        if isinstance(value, (list, tuple)):
            lines.append(f"{key}:")
            lines += [f"  - {v}" for v in value]
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)
