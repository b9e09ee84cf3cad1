"""``external:NAME=DIR``: another implementation's outputs (not registered: made by
:func:`bench.methods.create_method` from the spec)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from bench.methods.registry import Item, Method, Result
from pixcolor.io import IMAGE_EXTENSIONS, ImageLoadError, load_rgb

log = logging.getLogger(__name__)

class ExternalMethod(Method):
    """Outputs of another implementation: ``DIR/<image_id>.<ext>`` for any image extension.

    Each file is loaded with :func:`pixcolor.io.load_rgb`; a missing or unreadable file is a
    failed image (reported, never fatal); a size different from the ground truth's is
    resized (bicubic) with a warning recorded in meta.json.
    """

    def __init__(self, name: str, folder: str | Path) -> None:
        super().__init__()
        self.name, self.folder = name, Path(folder)
        self.description = f"external outputs from {self.folder}"

    def available(self) -> tuple[bool, str]:
        if not self.folder.is_dir():
            return False, f"external folder {self.folder} does not exist"
        return True, ""

    def meta(self) -> dict:
        return {**super().meta(), "source_dir": str(self.folder.resolve())}

    def _find(self, image_id: str) -> Path | None:
        for ext in sorted(IMAGE_EXTENSIONS):
            for cand in (self.folder / f"{image_id}{ext}",
                         self.folder / f"{image_id}{ext.upper()}"):
                if cand.is_file():
                    return cand
        return None

    def generate(self, items: Sequence[Item]) -> list[Result]:
        out: list[Result] = []
        for it in items:
            path = self._find(it.image_id)
            if path is None:
                out.append(FileNotFoundError(f"{self.name}: no {it.image_id}.* in {self.folder}"))
                continue
            try:
                rgb = load_rgb(path)
            except ImageLoadError as exc:
                out.append(exc)
                continue
            h, w = it.rgb.shape[:2]
            if rgb.shape[:2] != (h, w):
                msg = f"resized from {rgb.shape[1]}x{rgb.shape[0]} to {w}x{h}"
                log.warning("%s/%s: %s", self.name, it.image_id, msg)
                self.warnings.append({"image_id": it.image_id, "warning": msg})
                rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BICUBIC))
            out.append(rgb)
        return out
