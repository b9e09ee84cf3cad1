"""Generate every method's outputs for a split: resumable, shardable (paper Sec. 4, 5).

Output layout (read by ``analysis`` and ``vtt_app``)::

    runs/<split>/manifest.csv             copy of the split's manifest (the image ids)
    runs/<split>/split.json               copy of the split's split.json (its protocol and
                                          protocol ground truth, when it has them)
    runs/<split>/<method>/<image_id>.png  uint8 RGB, the ground truth's size
    runs/<split>/<method>/meta.json       method, checkpoint sha256, seed, preset, device,
                                          wall time, software versions, failures, ...
    runs/<split>/<method>/.meta/shard-I-of-N.json   per-shard session records

Resuming: an image whose PNG exists is never generated again (PNGs are written atomically,
so an interrupted run leaves only whole files). A method folder made with another
checkpoint, seed or sampler is refused unless ``overwrite=True``.

Sharding: shard ``i`` of ``n`` takes the images at positions ``i, i + n, i + 2n, ...`` of
the manifest, so the shards cover every image exactly once. Under ``torchrun`` each rank is
one shard (``RANK``/``WORLD_SIZE``). Every shard writes its own session file, then merges
all of them into meta.json; rerunning ``generate`` (which skips everything) refreshes it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.methods import Item, Method, MethodOptions, create_method
from bench.splits import load_split_image, read_manifest
from pixcolor.io import atomic_open, atomic_write_text, save_png
from pixcolor.provenance import now_utc, software_versions

log = logging.getLogger(__name__)

FINGERPRINT_KEYS = ("checkpoint_sha256", "seed", "refine", "sampler", "temperature",
                    "lowres_short_side", "source_dir", "rank_samples", "round_trip")


class GenerateError(ValueError):
    """Generation cannot start (no manifest, bad shard spec)."""


@dataclass
class MethodReport:
    """What happened to one method in one :func:`generate` call."""

    name: str
    status: str  # "done", "incomplete" (some images failed) or "skipped" (not available)
    reason: str = ""
    generated: int = 0
    existing: int = 0
    failed: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0


def parse_shard(spec: str | None) -> tuple[int, int]:
    """``"i/n"`` -> (i, n); None -> the torchrun rank (``RANK``/``WORLD_SIZE``) or (0, 1).

    Raises:
        GenerateError: malformed spec or ``i`` outside ``[0, n)``.
    """
    if spec is None:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    try:
        i, n = (int(v) for v in spec.split("/"))
    except ValueError:
        raise GenerateError(f"--shard must look like 'i/n' (e.g. 0/4), got {spec!r}") from None
    if not 0 <= i < n:
        raise GenerateError(f"--shard {spec}: need 0 <= i < n")
    return i, n


def rank_device(device: str) -> str:
    """``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun (one GPU per rank)."""
    if device == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def shard_ids(ids: Sequence[str], index: int, count: int) -> list[str]:
    """Images of shard ``index`` of ``count``: every ``count``-th id from ``index``."""
    return list(ids[index::count])


def _fingerprint(meta: dict) -> dict:
    return {k: meta[k] for k in FINGERPRINT_KEYS if k in meta}


def _previous_fingerprint(folder: Path) -> dict:
    for path in [folder / "meta.json", *sorted((folder / ".meta").glob("shard-*.json"))]:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        fp = doc.get("fingerprint") or _fingerprint(doc)
        if fp:
            return fp
    return {}


def _mismatch(old: dict, new: dict) -> str:
    diff = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in old if k in new and old[k] != new[k]]
    return "; ".join(diff)


def write_meta(folder: Path, method: str, split: str, ids: Sequence[str], base: dict) -> dict:
    """Merge the shard session files of ``folder`` into ``folder/meta.json``.

    Args:
        folder: ``runs/<split>/<method>``.
        method, split: names.
        ids: every image id of the split (to count what is present).
        base: the method's own fields (checkpoint sha256, seed, preset, device, ...).

    Returns:
        The meta.json document.
    """
    sessions, failures, warnings = [], {}, {}
    for path in sorted((folder / ".meta").glob("shard-*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        sessions += doc.get("sessions", [])
        failures.update(doc.get("failures", {}))
        warnings.update(doc.get("warnings", {}))
    present = {p.stem for p in folder.glob("*.png")}
    missing = [i for i in ids if i not in present]
    meta = {
        "method": method, "split": split,
        "checkpoint_sha256": None, "seed": None, "preset": None, "device": None,
        **base,
        "fingerprint": _fingerprint(base),
        "images_expected": len(ids), "images_present": len(ids) - len(missing),
        "missing": missing,
        "failures": [{"image_id": i, "reason": failures[i]} for i in missing if i in failures],
        "warnings": [{"image_id": i, "warning": w} for i, w in sorted(warnings.items())],
        "wall_time_s": round(sum(s.get("wall_time_s", 0.0) for s in sessions), 3),
        "sessions": sorted(sessions, key=lambda s: s.get("started", "")),
        "software": software_versions(),
        "updated": now_utc(),
    }
    atomic_write_text(folder / "meta.json", json.dumps(meta, indent=1, default=str) + "\n")
    return meta


def _record_session(folder: Path, shard: tuple[int, int], fingerprint: dict, session: dict,
                    failures: dict, warnings: dict) -> None:
    path = folder / ".meta" / f"shard-{shard[0]}-of-{shard[1]}.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        doc = {}
    fails = {k: v for k, v in doc.get("failures", {}).items()
             if not (folder / f"{k}.png").exists()}
    fails.update(failures)
    doc = {"fingerprint": fingerprint, "sessions": [*doc.get("sessions", []), session],
           "failures": fails, "warnings": {**doc.get("warnings", {}), **warnings}}
    atomic_write_text(path, json.dumps(doc, indent=1, default=str) + "\n")


def by_reason(reports: Iterable[MethodReport]) -> dict[str, list[str]]:
    """Skipped methods grouped by their reason (for short messages)."""
    out: dict[str, list[str]] = {}
    for r in reports:
        if r.status == "skipped":
            out.setdefault(r.reason, []).append(r.name)
    return out


def _check(result: object, gt: np.ndarray) -> str | None:
    if isinstance(result, Exception):
        return f"{type(result).__name__}: {result}"
    arr = np.asarray(result)
    if arr.dtype != np.uint8 or arr.shape != gt.shape:
        return f"output {arr.shape} {arr.dtype}, expected {gt.shape} uint8"
    return None


def generate(split_dir: str | os.PathLike, runs_dir: str | os.PathLike,
             methods: Sequence[str | Method], *, shard: tuple[int, int] = (0, 1),
             batch_size: int = 16, overwrite: bool = False,
             options: MethodOptions | None = None,
             echo: Callable[[str], None] = log.info) -> list[MethodReport]:
    """Generate the outputs of ``methods`` for the images of a split.

    Args:
        split_dir: split folder (``manifest.csv`` and ``images/``), see :mod:`bench.splits`.
        runs_dir: ``runs/<split>``.
        methods: registry names, ``external:NAME=DIR`` specs or :class:`Method` objects.
        shard: (index, count) of this process's share of the images.
        batch_size: images per batch (all methods of a batch group share it).
        overwrite: regenerate method folders whose outputs came from other settings.
        options: what named methods are built with (checkpoint, device, ...); under
            torchrun a ``cuda`` device becomes this rank's GPU.
        echo: where progress lines go (the command line passes ``print``).

    Returns:
        One :class:`MethodReport` per method; bad images and unavailable methods are
        reported there, never raised.

    Raises:
        GenerateError: the split has no manifest.
    """
    split_dir, runs_dir = Path(split_dir), Path(runs_dir)
    rows = read_manifest(split_dir / "manifest.csv")
    if not rows:
        raise GenerateError(f"{split_dir / 'manifest.csv'} is missing or empty; build the "
                            "split first (python -m bench build-split)")
    runs_dir.mkdir(parents=True, exist_ok=True)
    for name in ("manifest.csv", "split.json"):
        src = split_dir / name
        if src.is_file() and (not (runs_dir / name).exists() or shard[0] == 0):
            with atomic_open(runs_dir / name) as f:
                f.write(src.read_bytes())
    options = options or MethodOptions()
    options = dataclasses.replace(options, device=rank_device(options.device))
    run = GenerationRun(split_dir, runs_dir, [r["image_id"] for r in rows], shard=shard,
                        batch_size=batch_size, device=options.device, echo=echo)
    run.run([spec if isinstance(spec, Method) else create_method(spec, options)
             for spec in methods], overwrite=overwrite)
    return list(run.reports.values())


@dataclass
class GenerationRun:
    """The generation of one shard of a split: its folders, images and batch size, where
    progress goes, and what happened to each method (:attr:`reports`).

    Methods whose :meth:`~bench.methods.Method.batch_key` agree form a group: each batch of
    images is loaded once for the group and handed to it in one
    :meth:`~bench.methods.Method.generate_group` call.
    """

    split_dir: Path
    runs_dir: Path  # runs/<split>: one folder per method
    ids: list[str]  # every image of the split, in manifest order
    shard: tuple[int, int] = (0, 1)
    batch_size: int = 16
    device: str = "cpu"  # the run's device, recorded for methods whose meta names none
    echo: Callable[[str], None] = log.info
    reports: dict[str, MethodReport] = field(default_factory=dict)
    bases: dict[Method, dict] = field(default_factory=dict)  # a ready method's meta fields

    @property
    def mine(self) -> list[str]:
        """This shard's images."""
        return shard_ids(self.ids, *self.shard)

    def run(self, methods: Sequence[Method], *, overwrite: bool = False) -> None:
        """Generate every method that can run; skipped ones are reported with their reason."""
        ready = [m for m in methods if self.prepare(m, overwrite)]
        for why, names in by_reason(self.reports.values()).items():
            self.echo(f"  skip {', '.join(names)}: {why}")
        groups: dict[object, list[Method]] = {}
        for m in ready:
            groups.setdefault(m.batch_key(), []).append(m)
        for group in groups.values():
            self.run_group(group)

    def prepare(self, m: Method, overwrite: bool) -> bool:
        """Whether ``m`` can run: available and with an output folder made with the same
        settings (or ``overwrite``, which deletes a mismatched one). Reports it either way
        and keeps a ready method's metadata in :attr:`bases`."""
        try:
            ok, why = m.available()
            if ok:
                m.prepare_split(self.ids, self.echo, split_dir=self.split_dir)
            meta = m.meta() if ok else {}
        except Exception as exc:  # noqa: BLE001 - e.g. a corrupt checkpoint: skip the method
            ok, why = False, f"cannot load ({type(exc).__name__}: {exc})"
        if not ok:
            self.reports[m.name] = MethodReport(m.name, "skipped", why)
            return False
        folder = self.runs_dir / m.name
        base = {**meta, "device": meta.get("device") or self.device}
        diff = _mismatch(_previous_fingerprint(folder), _fingerprint(base))
        if diff and not overwrite:
            self.reports[m.name] = MethodReport(m.name, "skipped", f"{folder} was made with "
                                                f"other settings ({diff}); delete it or pass "
                                                "--overwrite")
            return False
        if diff:
            shutil.rmtree(folder)
        self.bases[m] = base
        self.reports[m.name] = MethodReport(m.name, "done")
        return True

    def run_group(self, group: list[Method]) -> None:
        """Generate this shard's images that the methods of ``group`` lack, a batch at a
        time, then record the session in each method's folder (also when interrupted)."""
        mine, names = self.mine, [m.name for m in group]
        pending = {m: {i for i in mine if not (self.runs_dir / m.name / f"{i}.png").exists()}
                   for m in group}
        for m in group:
            self.reports[m.name].existing = len(mine) - len(pending[m])
        todo = [i for i in mine if any(i in p for p in pending.values())]
        failures: dict[Method, dict[str, str]] = {m: {} for m in group}  # image id -> why
        started, t0 = now_utc(), time.perf_counter()
        if todo:
            self.echo(f"  {'+'.join(names)}: {len(todo)} images to generate "
                      f"({sum(self.reports[n].existing for n in names)} outputs exist)")
        try:
            for start in range(0, len(todo), self.batch_size):
                self._run_batch(group, todo[start:start + self.batch_size], pending, failures)
                done = min(start + self.batch_size, len(todo))
                self.echo(f"    {done}/{len(todo)} images, {time.perf_counter() - t0:.1f} s")
        finally:
            wall = time.perf_counter() - t0
            for m in group:
                self._finish(m, failures[m], started, wall, names)

    def _run_batch(self, group: list[Method], chunk: list[str],
                   pending: dict[Method, set[str]], failures: dict[Method, dict[str, str]]
                   ) -> None:
        """Load one batch of split images and run every method of ``group`` that still needs
        them; outputs are saved, bad images and bad outputs recorded in ``failures``."""
        items = {}
        for i in chunk:
            try:
                items[i] = Item(i, load_split_image(self.split_dir, i))
            except (OSError, ValueError) as exc:
                for m in group:
                    if i in pending[m]:
                        failures[m][i] = f"split image unreadable: {exc}"
        requests = {m: [items[i] for i in chunk if i in items and i in pending[m]]
                    for m in group}
        requests = {m: v for m, v in requests.items() if v}
        if not requests:
            return
        try:
            results = type(group[0]).generate_group(requests)
        except Exception as exc:  # noqa: BLE001 - a broken method never stops the run
            log.exception("%s failed on a batch", [m.name for m in group])
            results = {m: [exc] * len(v) for m, v in requests.items()}
        for m, its in requests.items():
            res_list = list(results.get(m, []))
            if len(res_list) != len(its):
                res_list = [RuntimeError(f"{m.name} returned {len(res_list)} outputs for "
                                         f"{len(its)} images")] * len(its)
            for it, res in zip(its, res_list, strict=True):
                err = _check(res, it.rgb)
                if err is None:
                    save_png(self.runs_dir / m.name / f"{it.image_id}.png", np.asarray(res))
                    self.reports[m.name].generated += 1
                else:
                    failures[m][it.image_id] = err

    def _finish(self, m: Method, failures: dict[str, str], started: str, wall: float,
                names: list[str]) -> None:
        """Close ``m``'s report and record this session in its folder's metadata."""
        rep, base = self.reports[m.name], self.bases[m]
        rep.wall_time_s = wall
        rep.failed = [{"image_id": k, "reason": v} for k, v in failures.items()]
        if rep.failed:
            rep.status = "incomplete"
            for f in rep.failed[:5]:
                self.echo(f"  {m.name}: {f['image_id']}: {f['reason']}")
            if len(rep.failed) > 5:
                self.echo(f"  {m.name}: ... and {len(rep.failed) - 5} more failures")
        folder = self.runs_dir / m.name
        folder.mkdir(parents=True, exist_ok=True)
        session = {"shard": f"{self.shard[0]}/{self.shard[1]}", "started": started,
                   "finished": now_utc(), "host": socket.gethostname(),
                   "device": base["device"], "generated": rep.generated,
                   "existing": rep.existing, "failed": len(rep.failed),
                   "wall_time_s": round(wall, 3),
                   "generated_with": names if len(names) > 1 else None}
        warns = {w["image_id"]: w["warning"] for w in m.warnings}
        _record_session(folder, self.shard, _fingerprint(base), session, failures, warns)
        write_meta(folder, m.name, self.runs_dir.name, self.ids, base)
