"""The colourise-these-files routine shared by ``pixcolor colorize`` and ``python -m
baselines colorize``: expand the inputs (files and folders), load them in batches, skip and
report unreadable files (they cost no other work), save the outputs, and give the exit
status."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from pixcolor.io import ImageLoadError, expand_inputs, load_rgb, save_png

#: Colourises a batch of RGB images: per image, its outputs (one, or several samples).
Colorize = Callable[[list[np.ndarray]], Sequence[Sequence[np.ndarray]]]


def colorize_files(inputs: Iterable[str | Path], out: str | Path, colorize: Colorize, *,
                   batch_size: int = 8, numbered: bool = True, seed: int | None = None,
                   what: str = "") -> int:
    """Colourise every image of ``inputs`` into ``out``.

    Args:
        inputs: image files and folders (a folder gives its images).
        out: output folder (created).
        colorize: the model's batch call.
        batch_size: images loaded and colourised at once.
        numbered: the k-th output of an image (k from 1) is ``<stem>_seed<seed>_sample<k>.png``
            (``<stem>_sample<k>.png`` without ``seed``); else one ``<stem>.png``.
        seed: the seed the samples were drawn with, written in their names: ``_seed1_sample2``
            is the second sample of seed 1, not the harness's seed-2 method ``pixcolor_s2``.
        what: said in the summary line (e.g. "3 samples each").

    Returns:
        The exit status: 0 when an image was colourised (or there was none), 1 when every
        file was unreadable. Unreadable files are listed in ``out/failed.json``.
    """
    from tqdm import tqdm

    files = expand_inputs(inputs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    failed, done, t0 = [], 0, time.time()
    prefix = "" if seed is None else f"_seed{seed}"
    for start in tqdm(range(0, len(files), batch_size), desc="colorize", unit="batch"):
        batch, names = [], []
        for f in files[start:start + batch_size]:
            try:
                batch.append(load_rgb(f))
                names.append(f.stem)
            except ImageLoadError as e:
                failed.append((str(f), str(e)))
                print(f"skipped: {e}", file=sys.stderr)
        if not batch:
            continue
        for name, outputs in zip(names, colorize(batch), strict=True):
            for k, rgb in enumerate(outputs, 1):
                save_png(out / (f"{name}{prefix}_sample{k}.png" if numbered else f"{name}.png"),
                         rgb)
            done += 1
    detail = f" ({what})" if what else ""
    print(f"colorized {done} of {len(files)} images{detail} into {out} "
          f"in {time.time() - t0:.1f} s; {len(failed)} unreadable")
    if failed:
        (out / "failed.json").write_text(json.dumps(failed, indent=1))
    return 0 if done or not files else 1
