"""Methods that need no model: ``gt``, ``gt_protocol``, ``grayscale``, ``gt28_unrefined``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.methods.registry import Item, Method, MethodOptions, Result, register_method
from bench.splits import read_manifest
from pixcolor import color
from pixcolor.io import file_sha256, load_rgb

PROTOCOL_GT = "gt_protocol"
NO_PROTOCOL_GT = ("this split has no protocol ground truth; only splits built with "
                  "`python -m bench build-split --protocol NAME` have one")


class GroundTruth(Method):
    description = "ground truth: the preprocessed split image"

    def generate(self, items: Sequence[Item]) -> list[Result]:
        return [it.rgb for it in items]


class ProtocolGroundTruth(Method):
    """The split's ``ground_truth/<id>.png`` (:func:`bench.protocols.write_ground_truth`),
    each checked against the sha256 ``ground_truth.csv`` recorded for it."""

    description = ("the ground truth through the split protocol's colour round trip (the "
                   "split's ground_truth/ folder)")

    def __init__(self, options: MethodOptions | None = None) -> None:
        super().__init__(options)
        self.folder: Path | None = None  # <split>/ground_truth, set by prepare_split
        self.sha256: dict[str, str] = {}  # image id -> recorded sha256 of its PNG
        self.round_trip: str | None = None  # ground_truth.csv's round_trip

    def meta(self) -> dict:
        return {**super().meta(), "round_trip": self.round_trip}

    def prepare_split(self, ids: Sequence[str], echo: Callable[[str], None] | None = None,
                      *, split_dir: Path | None = None) -> None:
        """Read ``<split_dir>/ground_truth.csv``.

        Raises:
            FileNotFoundError: the split has none (:data:`NO_PROTOCOL_GT`).
        """
        table = Path(split_dir) / "ground_truth.csv" if split_dir is not None else None
        if table is None or not table.is_file():
            raise FileNotFoundError(NO_PROTOCOL_GT)
        rows = read_manifest(table)
        self.folder = table.parent / "ground_truth"
        self.sha256 = {r["image_id"]: r.get("sha256") or "" for r in rows}
        self.round_trip = "; ".join(sorted({r.get("round_trip") or "" for r in rows} - {""}))
        missing = [i for i in ids if i not in self.sha256]
        if missing and echo is not None:
            echo(f"  {self.name}: {len(missing)} split images are not in {table} (first: "
                 f"{missing[0]}); rebuild the split")

    def generate(self, items: Sequence[Item]) -> list[Result]:
        return [self._one(it.image_id) for it in items]

    def _one(self, image_id: str) -> Result:
        """One image's round-tripped truth, or why it cannot be used."""
        if self.folder is None:
            return RuntimeError(f"{self.name}: call prepare_split(ids, split_dir=...) first")
        path, want = self.folder / f"{image_id}.png", self.sha256.get(image_id)
        if want is None:
            return ValueError(f"{image_id} is not in {self.folder.parent / 'ground_truth.csv'}; "
                            "rebuild the split")
        if not path.is_file():
            return FileNotFoundError(f"{path} is missing; rebuild the split")
        have = file_sha256(path)
        if have != want:
            return ValueError(f"{path} was changed: sha256 {have[:12]}..., ground_truth.csv "
                              f"records {want[:12]}...; rebuild the split")
        try:
            return load_rgb(path)
        except ValueError as exc:  # ImageLoadError
            return exc


class Grayscale(Method):
    description = "the Y plane replicated to RGB (no colour)"

    def generate(self, items: Sequence[Item]) -> list[Result]:
        return [np.repeat(color.to_uint8(color.rgb_luma(it.rgb))[..., None], 3, -1)
                for it in items]


class GT28Unrefined(Method):
    description = ("ground-truth chroma downsampled to a 28-pixel short side, bilinearly "
                   "upsampled, with the original Y (paper Fig. 3)")

    def __init__(self, options: MethodOptions | None = None,
                 short_side: int = color.LOWRES_SHORT_SIDE) -> None:
        super().__init__(options)
        self.short_side = short_side

    def meta(self) -> dict:
        return {**super().meta(), "lowres_short_side": self.short_side}

    def generate(self, items: Sequence[Item]) -> list[Result]:
        out: list[Result] = []
        for it in items:
            low = color.lowres_chroma(color.chroma(it.rgb), self.short_side)
            up = color.upsample_chroma(low, it.rgb.shape[:2])
            out.append(color.merge_luma_chroma(color.rgb_luma(it.rgb), up))
        return out


def register() -> None:
    register_method("gt")(GroundTruth)
    # not a default method: a run adds it for protocol splits (bench.pipeline.default_methods)
    register_method(PROTOCOL_GT, default=False)(ProtocolGroundTruth)
    register_method("grayscale")(Grayscale)
    register_method("gt28_unrefined")(GT28Unrefined)
