"""The colourise-these-files routine shared by ``pixcolor colorize`` and ``python -m
baselines colorize``: expand the inputs (files and folders), load them in batches, skip and
report unreadable files (they cost no other work), save the outputs, and give the exit
status."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixcolor.io import ImageLoadError, atomic_write_text, expand_inputs, load_rgb, save_png


@dataclass
class Chosen:
    """One image's output chosen among ``of`` samples (``pixcolor colorize --rank``)."""

    rgb: np.ndarray  # (H, W, 3) uint8
    index: int  # the chosen sample's index, 0 .. of-1: the file _sample<index+1> of --samples
    logps: list[float]  # every candidate's log-likelihood, in nats (the choice: the highest)

    @property
    def of(self) -> int:
        return len(self.logps)


#: Colourises a batch of RGB images: per image, its outputs (one, or several samples), or the
#: one :class:`Chosen` among its samples.
Colorize = Callable[[list[np.ndarray]], Sequence[Sequence[np.ndarray] | Chosen]]


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
            (``<stem>_sample<k>.png`` without ``seed``); else one ``<stem>.png``. A
            :class:`Chosen` output of n samples is ``<stem>_seed<seed>_best<n>.png``; which
            sample it is and the log-likelihoods are printed and kept in ``out/chosen.json``
            (by file name, merged with the file's earlier entries).
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
    failed, chosen, done, t0 = [], {}, 0, time.time()
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
            if isinstance(outputs, Chosen):
                chosen.update(_save_chosen(out, f"{name}{prefix}", outputs, seed))
            else:
                for k, rgb in enumerate(outputs, 1):
                    save_png(out / (f"{name}{prefix}_sample{k}.png" if numbered
                                    else f"{name}.png"), rgb)
            done += 1
    detail = f" ({what})" if what else ""
    print(f"colorized {done} of {len(files)} images{detail} into {out} "
          f"in {time.time() - t0:.1f} s; {len(failed)} unreadable")
    if failed:
        (out / "failed.json").write_text(json.dumps(failed, indent=1))
    if chosen:
        _record_chosen(out / "chosen.json", chosen)
    return 0 if done or not files else 1


def _save_chosen(out: Path, stem: str, c: Chosen, seed: int | None) -> dict[str, dict]:
    """Save a :class:`Chosen` output as ``<stem>_best<n>.png`` and print which sample it
    is; returns its entry of ``chosen.json``."""
    name = f"{stem}_best{c.of}.png"
    save_png(out / name, c.rgb)
    print(f"{name}: sample {c.index + 1} of {c.of} (= {stem}_sample{c.index + 1}.png of "
          f"--samples {c.of}), log-likelihood {c.logps[c.index]:.2f} nats "
          f"(all {c.of}: {min(c.logps):.2f} .. {max(c.logps):.2f})")
    return {name: {"seed": seed, "samples": c.of, "index": c.index, "sample": c.index + 1,
                   "logp": c.logps[c.index], "logps": c.logps}}


def _record_chosen(path: Path, chosen: dict[str, dict]) -> None:
    """Merge ``chosen`` into the JSON file ``path`` (an unreadable one is replaced)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = {}
    merged = {**(old if isinstance(old, dict) else {}), **chosen}
    atomic_write_text(path, json.dumps(merged, indent=1) + "\n")
