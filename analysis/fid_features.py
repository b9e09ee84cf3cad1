"""Inception-v3 features of image files for FID and KID, batched and cached on disk.

Each image's 2048 pool features (float32) are kept under its file's sha256, in a folder
per (variant, weights sha256): ``<cache_dir>/<variant>-<weights sha256[:16]>/<sha[:2]>/
<sha>.npy``. The same photo in two folders is computed once, a new method's outputs are
the only images computed when it joins a comparison, and other weights or the other
variant never read these files. Files are written atomically; an unreadable one is
recomputed. A file's sha256 is itself kept per folder under ``<cache_dir>/hashes/`` with
the file's size and modification time, so a second pass over unchanged folders reads no
image (the rule of :func:`analysis.fid_runs.folder_fingerprint`); a file whose size or
time changed is hashed again.

Torch is imported only when an image misses the cache (:mod:`analysis.inception`); images
are read with :func:`pixcolor.io.load_rgb` and resized to 299x299 (a batch of one size
at once, mixed sizes one by one), then batched through the network.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.inception_weights import find_weights, weights_sha256
from pixcolor.io import atomic_open, atomic_write_text, file_sha256, iter_images, load_rgb

log = logging.getLogger(__name__)

FEATURE_DIM = 2048


@dataclass
class FeatureExtractor:
    """An Inception variant and its weights file; the network is loaded on first use.

    Attributes:
        variant: ``"fid"`` or ``"torchvision"`` (:data:`analysis.inception.VARIANTS`).
        weights: the weights file.
        weights_sha256: its sha256 (part of the cache key).
        device: torch device of the network.
        batch_size: images per forward pass.
        backend: ``"ours"`` (:mod:`analysis.inception`) or ``"reference"`` (the
            reference library's network, :mod:`analysis.reference_libs`; cached apart).
        computed: images run through the network so far (cache misses).
    """

    variant: str
    weights: Path
    weights_sha256: str
    device: str = "cpu"
    batch_size: int = 50
    backend: str = "ours"
    computed: int = 0
    _net: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, variant: str = "fid", weights: str | os.PathLike | None = None, *,
             device: str = "cpu", batch_size: int = 50,
             backend: str = "ours") -> FeatureExtractor:
        """Find the weights (:func:`analysis.inception_weights.find_weights`: argument, environment
        variable, torch hub cache) and hash them; the network itself is not built yet.

        Raises:
            WeightsNotFound: no weights file (nothing is downloaded).
        """
        path = find_weights(variant, weights)
        return cls(variant, path, weights_sha256(path), device, batch_size, backend)

    def net(self) -> Any:
        """The :class:`analysis.inception.InceptionV3` in eval mode (loaded once), or the
        reference library's network (:class:`analysis.reference_libs.ReferenceNetwork`)."""
        if self._net is None and self.backend == "reference":
            from analysis.reference_libs import ReferenceNetwork

            log.info("loading the reference %s network with %s", self.variant, self.weights)
            self._net = ReferenceNetwork(self.variant, self.weights, self.device)
        if self._net is None:
            from analysis.inception import load_inception

            log.info("loading %s Inception-v3 weights from %s", self.variant, self.weights)
            self._net = load_inception(self.variant, self.weights, self.device)
        return self._net

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        """Pool features of images.

        Args:
            images: (H, W, 3) uint8 RGB arrays, sizes may differ.

        Returns:
            (N, 2048) float32 features, in order.
        """
        import torch

        net = self.net()
        out = [np.zeros((0, FEATURE_DIM), np.float32)]

        def prepared(group: list[np.ndarray]) -> torch.Tensor:  # images of one size
            nchw = torch.from_numpy(np.stack(group)).permute(0, 3, 1, 2).contiguous()
            return net.preprocess(nchw.to(self.device))

        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start:start + self.batch_size]
                same = len({im.shape for im in chunk}) == 1
                x = prepared(chunk) if same else torch.cat([prepared([im]) for im in chunk])
                out.append(net.pool_features(x).float().cpu().numpy())
        self.computed += len(images)
        return np.concatenate(out)


def image_paths(images: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """A folder's images (:func:`pixcolor.io.iter_images`, in its order) or the given files."""
    if isinstance(images, str | os.PathLike):
        return list(iter_images(images))
    return [Path(p) for p in images]


def _cache_file(cache_dir: Path, extractor: FeatureExtractor, sha: str) -> Path:
    key = f"{extractor.variant}-{extractor.weights_sha256[:16]}"
    if extractor.backend != "ours":
        key += f"-{extractor.backend}"
    return cache_dir / key / sha[:2] / f"{sha}.npy"


def file_hashes(paths: list[Path], cache_dir: str | os.PathLike | None) -> list[str]:
    """The sha256 of each file, from the per-folder index under ``<cache_dir>/hashes/``
    where the file's size and modification time still match (module docstring); the index
    is updated with what had to be hashed. None: hash every file."""
    if cache_dir is None:
        return [file_sha256(p) for p in paths]
    by_folder: dict[Path, list[int]] = {}
    resolved: dict[Path, Path] = {}
    for k, p in enumerate(paths):
        parent = p.parent
        if parent not in resolved:
            resolved[parent] = parent.resolve()
        by_folder.setdefault(resolved[parent], []).append(k)
    out = [""] * len(paths)
    for folder, positions in by_folder.items():
        index_file = (Path(cache_dir) / "hashes"
                      / f"{hashlib.sha1(str(folder).encode()).hexdigest()[:20]}.json")
        try:
            index = json.loads(index_file.read_text())
        except (OSError, ValueError):
            index = {}
        changed = False
        for k in positions:
            try:
                st = paths[k].stat()
            except OSError:  # hashing says what is wrong with the file
                out[k] = file_sha256(paths[k])
                continue
            known = index.get(paths[k].name)
            if known and known[:2] == [st.st_size, st.st_mtime_ns]:
                out[k] = known[2]
                continue
            out[k] = file_sha256(paths[k])
            index[paths[k].name] = [st.st_size, st.st_mtime_ns, out[k]]
            changed = True
        if changed:
            _save_index(index_file, index, [paths[k].name for k in positions])
    return out


def _save_index(index_file: Path, index: dict, names: list[str]) -> None:
    """Write a folder's hash index, keeping the entries another process (a shard of the
    same folder) wrote since it was read, except those of ``names``."""
    try:
        latest = json.loads(index_file.read_text())
    except (OSError, ValueError):
        latest = {}
    if isinstance(latest, dict):
        mine = set(names)
        index = {**index, **{k: v for k, v in latest.items() if k not in mine}}
    index_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(index_file, json.dumps(index, separators=(",", ":")))


def _npy_header() -> bytes:
    """The exact header ``np.save`` writes for one (2048,) float32 vector."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.zeros(FEATURE_DIM, np.float32))
    return buf.getvalue()[:-FEATURE_DIM * 4]


_NPY_HEADER = _npy_header()


def _read_cached(path: Path) -> np.ndarray | None:
    """A cached feature vector, or None when missing or damaged (then it is recomputed).
    Files that ``np.save`` wrote for a (2048,) float32 vector are read as raw bytes after
    their known header (a fifth of ``np.load``'s time, which parses the header each time);
    anything else goes through ``np.load``."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) == len(_NPY_HEADER) + FEATURE_DIM * 4 and data.startswith(_NPY_HEADER):
        return np.frombuffer(data, np.float32, offset=len(_NPY_HEADER)).copy()
    try:
        feats = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return feats if feats.shape == (FEATURE_DIM,) and feats.dtype == np.float32 else None


def image_features(images: str | os.PathLike | Iterable[str | os.PathLike],
                   extractor: FeatureExtractor,
                   cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Inception pool features of a folder or list of image files.

    Args:
        images: a folder (its images, recursively, in :func:`pixcolor.io.iter_images`
            order) or image files.
        extractor: the network (:meth:`FeatureExtractor.open`).
        cache_dir: where features are kept (module docstring); None computes all.

    Returns:
        (N, 2048) float32 features, one row per file, in order.

    Raises:
        ImageLoadError: a file that cannot be read (FID needs every image of the set).
        WeightsNotFound: from the extractor, when an image must be computed.
    """
    paths = image_paths(images)
    shas = file_hashes(paths, cache_dir)
    found: dict[str, np.ndarray] = {}
    if cache_dir is not None:
        for sha in set(shas):
            feats = _read_cached(_cache_file(Path(cache_dir), extractor, sha))
            if feats is not None:
                found[sha] = feats
    missing: dict[str, Path] = {}  # one file per distinct content
    for sha, p in zip(shas, paths, strict=True):
        if sha not in found:
            missing.setdefault(sha, p)
    todo = list(missing.items())
    log.info("FID features: %d images, %d distinct to compute, the rest from the cache",
             len(paths), len(todo))
    step = extractor.batch_size
    for start in range(0, len(todo), step):
        chunk = todo[start:start + step]
        feats = extractor([load_rgb(p) for _, p in chunk])
        for (sha, _), f in zip(chunk, feats, strict=True):
            found[sha] = f
            if cache_dir is not None:
                with atomic_open(_cache_file(Path(cache_dir), extractor, sha), "wb") as fh:
                    np.save(fh, f)
    if not paths:
        return np.zeros((0, FEATURE_DIM), np.float32)
    return np.stack([found[sha] for sha in shas])
