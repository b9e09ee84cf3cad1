"""Sample diversity: MS-SSIM between samples of the same input (paper Sec. 5.1, Fig. 8).

PixColor is run with several seeds (methods ``pixcolor_s1``, ``pixcolor_s2``, ...); for
every image we score every pair of its samples with 5-scale MS-SSIM (:mod:`analysis.ssim`).
Fig. 8 shows the histogram of these values (most pairs 0.95-0.99 in the paper) and example
pairs at several MS-SSIM values. Each sample's per-scale moments are computed once and
reused for all of its pairs. The report scores the pairs inside the metrics pass
(:func:`analysis.evaluate.evaluate_runs` with ``sample_prefix``, or through the runs
folder's cache, :func:`analysis.evaluation_cache.cached_evaluation`, which keeps each pair's
value under its two files' sha256), which decodes each image once and reuses the
finest-scale moments of the SSIM metric; :func:`pairwise_ms_ssim` is the same computation on
its own.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.runs import RunsFolder, Skip, map_chunks
from analysis.ssim import (
    MIN_SIDE,
    MS_SSIM_WEIGHTS,
    MinSize,
    _Moments,
    ms_ssim,
    ms_ssim_prepared,
)
from analysis.ssim import prepare_ms_ssim as _prepare
from pixcolor.io import ImageLoadError

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "pixcolor_s"
PAIR_COLUMNS = ["image_id", "method_a", "method_b", "ms_ssim", "fallback"]


def sample_methods(methods: Sequence[str], prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The methods that are samples of one model: names starting with ``prefix``, sorted."""
    return sorted(m for m in methods if m.startswith(prefix))


def image_pairs(image_id: str, imgs: dict[str, np.ndarray], min_size: MinSize = "raise",
                first: dict[str, _Moments] | None = None) -> tuple[list[dict], list[Skip]]:
    """MS-SSIM of every pair of the loaded samples of one image.

    Args:
        image_id: the image.
        imgs: sample method -> uint8 (H, W, 3) image, in sample order (missing ones left out).
        min_size: fallback for images under 161 px (see :func:`analysis.ssim.ms_ssim`).
        first: optional sample method -> its finest-scale moments
            (:func:`analysis.ssim.prepare_ssim` of the same image), reused instead of
            recomputed; the values do not change.

    Returns:
        (rows, skips): one row per pair as in :func:`pairwise_ms_ssim`; pairs whose shapes
        differ are skipped.
    """
    rows: list[dict] = []
    skips: list[Skip] = []
    names = list(imgs)
    if len(names) < 2:
        return rows, skips
    first = first or {}
    shapes = {imgs[m].shape for m in names}
    small = min(min(s[:2]) for s in shapes) < MIN_SIDE
    if len(shapes) == 1 and not small:
        prepared = {m: _prepare(imgs[m], first=first.get(m)) for m in names}
        for a, b in itertools.combinations(names, 2):
            rows.append({"image_id": image_id, "method_a": a, "method_b": b,
                         "ms_ssim": ms_ssim_prepared(prepared[a], prepared[b],
                                                     MS_SSIM_WEIGHTS),
                         "fallback": ""})
        return rows, skips
    for a, b in itertools.combinations(names, 2):
        if imgs[a].shape != imgs[b].shape:
            skips.append(Skip(b, image_id, f"shape {imgs[b].shape} differs from {a} "
                              f"{imgs[a].shape}", "ms_ssim"))
            continue
        rows.append({"image_id": image_id, "method_a": a, "method_b": b,
                     "ms_ssim": ms_ssim(imgs[a], imgs[b], min_size=min_size),
                     "fallback": min_size if small else ""})
    return rows, skips


def _pairs_chunk(root: str, samples: list[str], min_size: MinSize,
                 ids: list[str]) -> tuple[list[dict], list[Skip]]:
    runs = RunsFolder(root)
    rows: list[dict] = []
    skips: list[Skip] = []
    for image_id in ids:
        imgs = {}
        for m in samples:
            try:
                imgs[m] = runs.load(m, image_id)
            except ImageLoadError as err:
                skips.append(Skip(m, image_id, str(err)))
        r, s = image_pairs(image_id, imgs, min_size)
        rows += r
        skips += s
    return rows, skips


def pairwise_ms_ssim(runs_dir: str | Path, prefix: str = DEFAULT_PREFIX,
                     image_ids: Sequence[str] | None = None, *, min_size: MinSize = "raise",
                     progress: bool = False, workers: int = 1
                     ) -> tuple[pd.DataFrame, list[Skip]]:
    """MS-SSIM of every pair of samples of every image.

    Args:
        runs_dir: ``runs/<split>`` holding ``<prefix>*/<image_id>.png`` folders.
        prefix: sample-group prefix (``pixcolor_s`` matches pixcolor_s1, pixcolor_s2, ...).
        image_ids: ids to use (default: as :meth:`RunsFolder.image_ids`).
        min_size: images under 161 px per side: ``"raise"``, ``"upsample"`` or
            ``"fewer_scales"`` (see :func:`analysis.ssim.ms_ssim`).
        progress: tqdm bar over images.
        workers: processes over image chunks (results do not depend on it).

    Returns:
        (pairs, skipped): pairs has columns ``image_id``, ``method_a``, ``method_b``
        (method_a < method_b), ``ms_ssim`` in [0, 1] and ``fallback`` (the ``min_size``
        fallback used, or ""); skipped lists sample images that were missing or unreadable.

    Raises:
        ValueError: an image is too small and ``min_size="raise"``.
    """
    runs = RunsFolder(runs_dir)
    samples = sample_methods(runs.methods(), prefix)
    ids = list(image_ids) if image_ids is not None else runs.image_ids()
    results = map_chunks(_pairs_chunk, ids, str(runs.root), samples, min_size,
                         workers=workers, progress=progress, desc="diversity")
    rows = [r for res in results for r in res[0]]
    skips = [s for res in results for s in res[1]]
    for s in skips:
        log.warning("diversity: skipped %s/%s: %s", s.method, s.image_id, s.reason)
    return pd.DataFrame(rows, columns=PAIR_COLUMNS), skips


def example_pairs(pairs: pd.DataFrame, quantiles: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)
                  ) -> pd.DataFrame:
    """Pairs at several MS-SSIM levels for a Fig. 8-style strip (deterministic).

    Args:
        pairs: output of :func:`pairwise_ms_ssim`.
        quantiles: levels in [0, 1]; 0 is the least similar pair, 1 the most similar.

    Returns:
        One row per distinct chosen pair (the pair whose MS-SSIM is nearest to each
        quantile; ties broken by image id), sorted by MS-SSIM, with a ``quantile`` column.
    """
    if pairs.empty:
        return pairs.assign(quantile=pd.Series(dtype=float))
    srt = pairs.sort_values(["ms_ssim", "image_id", "method_a", "method_b"]).reset_index(drop=True)
    vals = srt["ms_ssim"].to_numpy()
    picked: dict[int, float] = {}
    for q in quantiles:
        target = np.quantile(vals, q, method="nearest")
        picked.setdefault(int(np.argmin(np.abs(vals - target))), q)
    out = srt.loc[sorted(picked)].assign(quantile=[picked[i] for i in sorted(picked)])
    return out.reset_index(drop=True)


def diversity_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Count, mean, quartiles and share of pairs in [0.95, 0.99] (the paper's bulk)."""
    v = pairs["ms_ssim"].to_numpy(dtype=np.float64)
    if len(v) == 0:
        return pd.DataFrame([{"pairs": 0}])
    q = np.quantile(v, [0.0, 0.25, 0.5, 0.75, 1.0])
    return pd.DataFrame([{"pairs": len(v), "images": pairs["image_id"].nunique(),
                          "mean": v.mean(), "min": q[0], "q25": q[1], "median": q[2],
                          "q75": q[3], "max": q[4],
                          "share_0.95_0.99": float(((v >= 0.95) & (v <= 0.99)).mean())}])
