"""Read a benchmark output folder ``runs/<split>/`` (the layout ``bench`` writes).

Layout: ``<runs>/<method>/<image_id>.png`` (uint8 RGB, same size per image id across
methods), optional ``<runs>/<method>/meta.json`` and ``<runs>/manifest.csv`` (with an
``image_id`` column). The method ``gt`` holds the ground truth. Images that are missing or
unreadable are reported as :class:`Skip` records, never raised, so one bad file does not
stop an analysis.

A folder generated from a protocol split (``python -m bench build-split --protocol NAME``)
also holds ``split.json`` (the split's, copied) and the method ``gt_protocol`` (the truth
through the protocol's colour round trip): :meth:`RunsFolder.reference` and
:meth:`RunsFolder.fid_variant` are then the protocol's truth and FID network, which the
metrics, the leaderboard and the report use unless told otherwise.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pixcolor.io import ImageLoadError, load_rgb

log = logging.getLogger(__name__)

GT_METHOD = "gt"
PROTOCOL_GT_METHOD = "gt_protocol"  # the truth through a protocol split's colour round trip
DEFAULT_FID_VARIANT = "fid"  # FID's network where the split names none
GREY_METHOD = "grayscale"  # the colourless reference output (bench method name)
# Display order of known methods (paper Fig. 6 order, then ablations); others follow sorted.
METHOD_ORDER = ("ltbc", "cic", "lrac", "pixcolor_s1", "pixcolor_s2", "pixcolor_s3",
                "pixcolor_best", "pixcolor_oracle", "pixcolor_unrefined", "gt28_unrefined",
                "gt28_refined", "grayscale", "gt", "gt_protocol")


def order_methods(methods: list[str]) -> list[str]:
    """Sort method names: the known ones in :data:`METHOD_ORDER`, then the rest by name."""
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(set(methods), key=lambda m: (rank.get(m, len(rank)), m))


@dataclass(frozen=True)
class Skip:
    """An image that could not be used: which method, which image and why."""

    method: str
    image_id: str
    reason: str
    metric: str = ""  # empty: the whole image was unusable; else only this metric


class RunsFolder:
    """A benchmark output folder.

    Args:
        root: the ``runs/<split>`` folder.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"runs folder {self.root} does not exist; run the "
                                    "benchmark first (make bench) or pass --runs runs/<split>")

    def methods(self) -> list[str]:
        """Sub-folders holding at least one PNG or a meta.json, in display order."""
        found = [p.name for p in self.root.iterdir()
                 if p.is_dir() and (any(p.glob("*.png")) or (p / "meta.json").exists())]
        return order_methods(found)

    def image_ids(self, methods: list[str] | None = None) -> list[str]:
        """Image ids: from manifest.csv if present, else the PNGs of ``gt``, else of all.

        Returns:
            Sorted (manifest order kept) unique ids as strings.
        """
        manifest = self.root / "manifest.csv"
        if manifest.exists():
            try:
                ids = pd.read_csv(manifest, dtype=str)["image_id"].dropna().tolist()
                return list(dict.fromkeys(ids))
            except (KeyError, ValueError, pd.errors.ParserError) as err:
                log.warning("ignoring %s (%s); listing PNG files instead", manifest, err)
        gt = self.root / GT_METHOD
        folders = [gt] if gt.is_dir() else [self.root / m for m in (methods or self.methods())]
        return sorted({p.stem for f in folders for p in f.glob("*.png")})

    def path(self, method: str, image_id: str) -> Path:
        return self.root / method / f"{image_id}.png"

    def load(self, method: str, image_id: str) -> np.ndarray:
        """One image as uint8 (H, W, 3) RGB.

        Raises:
            ImageLoadError: missing or unreadable file.
        """
        path = self.path(method, image_id)
        if not path.exists():
            raise ImageLoadError(path, "missing", f"generate {method}'s outputs first")
        return load_rgb(path)

    def meta(self, method: str) -> dict:
        """``<method>/meta.json`` as a dict ({} when absent or invalid)."""
        path = self.root / method / "meta.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def split_info(self) -> dict:
        """``split.json`` of the split, copied here by ``bench generate`` ({} when absent or
        invalid)."""
        try:
            doc = json.loads((self.root / "split.json").read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def protocol(self) -> dict | None:
        """The published protocol the split was built by (split.json's ``protocol``:
        ``bench.protocols.Protocol.describe``), or None (every split.json has a
        ``protocol``, its preprocessing; only a published protocol's has a ``name``)."""
        found = self.split_info().get("protocol")
        return found if isinstance(found, dict) and found.get("name") else None

    def reference(self) -> str:
        """The truth folder metrics compare against: :data:`PROTOCOL_GT_METHOD` when the
        split has a protocol ground truth (split.json's ``ground_truth``) and its folder
        exists here, else :data:`GT_METHOD`."""
        if (self.split_info().get("ground_truth")
                and (self.root / PROTOCOL_GT_METHOD).is_dir()):
            return PROTOCOL_GT_METHOD
        return GT_METHOD

    def fid_variant(self) -> str:
        """FID's network: the protocol's (its ``fid``), else :data:`DEFAULT_FID_VARIANT`."""
        return str((self.protocol() or {}).get("fid") or DEFAULT_FID_VARIANT)

    def reference_line(self, gt_method: str, fid_variant: str | None) -> str:
        """The note naming the truth and FID's network, for tables; "" for plain ``gt``
        (the common case says nothing)."""
        if gt_method == GT_METHOD:
            return ""
        what = gt_method
        protocol = self.protocol() or {}
        if gt_method == PROTOCOL_GT_METHOD and protocol:
            what += (f" (the {protocol.get('name', '?')} protocol's ground truth: "
                     f"{protocol.get('gt_short', '?')})")
        return f"reference: {what}; FID network: {fid_variant or 'none (no FID)'}"


class CachedImages:
    """Every method's image of one image id, each decoded at most once (errors remembered)."""

    def __init__(self, runs: RunsFolder, image_id: str):
        self.runs, self.image_id = runs, image_id
        self._got: dict[str, np.ndarray | ImageLoadError] = {}

    def get(self, method: str) -> np.ndarray:
        """The image, or raises the (cached) :class:`ImageLoadError`."""
        if method not in self._got:
            try:
                self._got[method] = self.runs.load(method, self.image_id)
            except ImageLoadError as err:
                self._got[method] = err
        got = self._got[method]
        if isinstance(got, ImageLoadError):
            raise got
        return got


def skips_frame(skips: list[Skip]) -> pd.DataFrame:
    """Skip records as a DataFrame (method, image_id, reason)."""
    cols = ["method", "image_id", "reason", "metric"]
    return pd.DataFrame([s.__dict__ for s in skips], columns=cols)


def _one_thread() -> None:
    """In a worker process: one thread for torch (the workers already use every core)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def map_chunks(fn: Callable[..., Any], ids: Sequence[str], *args: Any, workers: int = 1,
               progress: bool = False, desc: str = "") -> list[Any]:
    """Apply ``fn(*args, chunk)`` to chunks of ``ids``, optionally in forked processes.

    Args:
        fn: a module-level function (picklable) taking the chunk of ids last.
        ids: the image ids to split.
        *args: leading arguments passed to every call.
        workers: processes; 1 runs in this process. Workers are forked and run torch with
            one thread (numpy here uses no BLAS threads in the image passes).
        progress: tqdm bar counting ids.
        desc: bar label.

    Returns:
        The results in chunk order (independent of ``workers``).
    """
    ids = list(ids)
    workers = max(1, min(int(workers), len(ids) or 1))
    n_chunks = workers * 4 if workers > 1 else (max(1, len(ids) // 25) if progress else 1)
    size = max(1, -(-len(ids) // n_chunks))
    chunks = [ids[i:i + size] for i in range(0, len(ids), size)] or [[]]
    results = []
    with tqdm(total=len(ids), desc=desc, unit="img", disable=not progress) as bar:
        if workers == 1:
            for ch in chunks:
                results.append(fn(*args, ch))
                bar.update(len(ch))
        else:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"),
                                     initializer=_one_thread) as pool:
                futures = [pool.submit(fn, *args, ch) for ch in chunks]
                for fut, ch in zip(futures, chunks, strict=True):
                    results.append(fut.result())
                    bar.update(len(ch))
    return results
