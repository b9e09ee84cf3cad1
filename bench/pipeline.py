"""The benchmark end to end: split, generation, metrics, summary (what ``make bench`` runs).

With no data named it uses the embedded demo photos (:mod:`bench.demo`), built into a
split exactly like ctest10k, so every later step (VTT app, analysis report) treats the
demo like any other split.

A protocol split (``python -m bench build-split --protocol NAME``) also gets the method
``gt_protocol`` (its round-tripped ground truth) by default, and its metrics compare against
it with the protocol's FID network (:meth:`analysis.runs.RunsFolder.reference`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import metrics as bench_metrics
from bench.generate import GenerateError, MethodReport, by_reason, generate, parse_shard
from bench.methods import DEFAULT_METHODS, MethodOptions
from bench.methods.simple import PROTOCOL_GT
from bench.protocols import PROTOCOLS
from bench.split_lists import (
    OFFICIAL_SPLITS,
    SplitError,
    folder_entries,
    load_list,
    select_subset,
)
from bench.splits import DEFAULT_SIZE, BuildResult, build_split, load_built

log = logging.getLogger(__name__)


def default_methods(split_dir: str | os.PathLike) -> list[str]:
    """What a run without ``--methods`` generates: :data:`~bench.methods.DEFAULT_METHODS`,
    with ``gt_protocol`` right after ``gt`` when the split has a protocol ground truth
    (``ground_truth.csv``)."""
    names = list(DEFAULT_METHODS)
    if (Path(split_dir) / "ground_truth.csv").is_file() and PROTOCOL_GT not in names:
        names.insert(names.index("gt") + 1 if "gt" in names else 0, PROTOCOL_GT)
    return names


def split_name(split: str, subset: int | None = None, seed: int = 0) -> str:
    """Folder name of a split: ``ctest10k`` or ``ctest10k_sub500_seed0`` for a subset."""
    return f"{split}_sub{subset}_seed{seed}" if subset else split


def build(split: str, out: str | os.PathLike, *, data: str | os.PathLike = "data",
          imagenet_val: str | os.PathLike | None = None, images: str | os.PathLike | None = None,
          list_file: str | os.PathLike | None = None, subset: int | None = None, seed: int = 0,
          size: int = DEFAULT_SIZE, keep_aspect: bool = False, drop_grayscale: bool = False,
          name: str | None = None) -> BuildResult:
    """Build a split folder from the demo photos, a photo folder or an ImageNet val folder.

    Args:
        split: ``demo``, ``ctest10k``, ``cval1k`` or any name with ``list_file``/``images``.
        out: split folder to write.
        data: data folder (the demo photos go to ``<data>/demo``).
        imagenet_val: ILSVRC2012 validation folder (flat or ``<wnid>/`` layout).
        images: any folder of photos (ids are the file stems), instead of a list.
        list_file: a list in the shipped format instead of ``split``'s official one.
        subset, seed: keep the deterministic ``subset``-image subset of the list.
        size, keep_aspect, drop_grayscale: see :func:`bench.splits.build_split`.
        name: split name recorded in split.json (default: the folder name).

    Raises:
        SplitError: nothing to build from (the message says which option is missing).
    """
    info: dict = {"list": None, "list_sha256": None, "source_root": None}
    if images is not None or (split == "demo" and imagenet_val is None and list_file is None):
        if images is None:
            from bench.demo import ensure_demo_data

            images = Path(ensure_demo_data(Path(data) / "demo")) / "images"
        entries, root = folder_entries(images), Path(images)
        info["list"] = f"all images in {root}"
    else:
        if imagenet_val is None:
            raise SplitError(f"split {split!r} needs the ILSVRC2012 validation images: pass "
                             "--imagenet-val DIR (make bench IMAGENET_VAL=DIR SPLIT=...)")
        if list_file is None and split not in OFFICIAL_SPLITS:
            raise SplitError(f"unknown split {split!r}; choose demo, {', '.join(OFFICIAL_SPLITS)}"
                             " or pass --list FILE")
        entries, sha = load_list(None if list_file else split, list_file)
        root = Path(imagenet_val)
        if not root.is_dir():
            raise SplitError(f"--imagenet-val {root} is not a folder")
        info.update({"list": str(list_file or f"bench/lists/{split}.txt"),
                     "list_sha256": sha})
    info["source_root"] = str(Path(root).resolve())
    if subset:
        entries = select_subset(entries, subset, seed)
        info["subset"] = {"n": subset, "seed": seed,
                          "rule": "np.random.default_rng(seed).permutation(len(list))[:n], "
                                  "kept in list order"}
    return build_split(entries, root, out, name=name or Path(out).name, size=size,
                       keep_aspect=keep_aspect, drop_grayscale=drop_grayscale, info=info)


@dataclass(frozen=True)
class SplitSource:
    """The split :func:`run` builds (or reuses) and the photos it comes from (see
    :func:`build` for each field)."""

    split: str = "demo"  # demo, ctest10k, cval1k, or any name with list_file
    data: str = "data"  # data folder: the split goes to <data>/splits/<name>
    imagenet_val: str | None = None  # ILSVRC2012 validation folder
    list_file: str | None = None  # a list in the shipped format instead of the official one
    subset: int | None = None  # keep a deterministic subset of this many images
    seed: int = 0  # seed of the subset
    size: int = DEFAULT_SIZE  # shorter side and crop

    @property
    def name(self) -> str:
        """The split's folder name (:func:`split_name`)."""
        return split_name(self.split, self.subset, self.seed)

    @property
    def folder(self) -> Path:
        return Path(self.data) / "splits" / self.name


@dataclass
class RunSummary:
    """Outcome of :func:`run`."""

    split: BuildResult
    reports: list[MethodReport] = field(default_factory=list)
    metrics_table: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.split.usable == self.split.expected
                and all(r.status != "incomplete" for r in self.reports))


def run(source: SplitSource, *, runs: str = "runs", methods: Sequence[str] | None = None,
        options: MethodOptions | None = None, shard: str | None = None,
        overwrite: bool = False, metric_workers: int = 1,
        echo: Callable[[str], None] = log.info, fid_variant: str | None = None) -> RunSummary:
    """Build the split, generate every available method, compute metrics, print a summary.

    Args:
        source: the split and its photos.
        runs: runs folder; outputs go to ``<runs>/<split name>``.
        methods: method names (default: :func:`default_methods`, every registered default
            one and a protocol split's ``gt_protocol``).
        options: the settings methods are built with; its ``batch_size`` is also the
            generation batch (images loaded at once).
        shard: ``"i/n"`` (default: the torchrun rank), see :func:`bench.generate.parse_shard`.
        overwrite: regenerate method folders made with other settings.
        metric_workers: processes for the metrics.
        echo: where progress and the summary go (the command line passes ``print``).
        fid_variant: FID's network (``"fid"``, ``"torchvision"``; ``"none"``: no FID; None:
            the split protocol's, else ``"fid"``); FID and LPIPS without their weights file
            are reported, not computed. The truth is the runs folder's reference
            (:meth:`analysis.runs.RunsFolder.reference`).

    Returns:
        A :class:`RunSummary`; problems are reported, not raised (except a split that
        cannot be built at all, :class:`~bench.split_lists.SplitError`).

    Raises:
        GenerateError: called under torchrun (build the split once, then run
            ``torchrun ... -m bench generate``: every rank takes its own shard).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise GenerateError("under torchrun, build the split first (python -m bench "
                            "build-split ...), then run torchrun ... -m bench generate")
    t0 = time.perf_counter()
    options = options or MethodOptions()
    runs_dir = Path(runs) / source.name
    result = _split_step(source, echo)
    summary = RunSummary(result)
    if not result.usable:
        echo("no usable images; nothing to generate")
        return summary
    echo(f"[2/3] generate -> {runs_dir}")
    summary.reports = generate(source.folder, runs_dir,
                               list(methods or default_methods(source.folder)),
                               shard=parse_shard(shard), batch_size=options.batch_size,
                               overwrite=overwrite, options=options, echo=echo)
    if parse_shard(shard)[1] > 1:
        echo("sharded run: compute metrics once every shard is done "
             f"(python -m bench metrics --runs-dir {runs_dir})")
    else:
        echo(f"[3/3] metrics -> {runs_dir / 'metrics.csv'}")
        fid = bench_metrics.fid_options(fid_variant, options.device, runs_dir)
        df = bench_metrics.compute(runs_dir, workers=metric_workers, fid=fid)
        summary.metrics_table = bench_metrics.format_table(df)
        echo(summary.metrics_table)
    summary.seconds = time.perf_counter() - t0
    echo(_closing(summary, runs_dir))
    return summary


def _split_step(source: SplitSource, echo: Callable[[str], None]) -> BuildResult:
    """Step 1 of :func:`run`: the split built earlier (an official split, no new source
    given) or built now, its problems echoed."""
    s, split_dir = source, source.folder
    echo(f"[1/3] split {s.name} -> {split_dir}")
    built = s.split in OFFICIAL_SPLITS or s.split in PROTOCOLS  # reusable once built
    result = load_built(split_dir) if (built and s.imagenet_val is None
                                        and s.list_file is None) else None
    if result is not None:
        how = "build-split --protocol" if s.split in PROTOCOLS else "pass --imagenet-val"
        echo(f"  using the split built earlier in {split_dir} ({how} to rebuild)")
    elif s.split in PROTOCOLS:
        raise SplitError(f"build {s.split} first: python -m bench build-split --protocol "
                         f"{s.split} --source DIR --data {s.data}")
    else:
        result = build(s.split, split_dir, data=s.data, imagenet_val=s.imagenet_val,
                       list_file=s.list_file, subset=s.subset, seed=s.seed, size=s.size)
    for p in result.problems[:10]:
        echo(f"  {p['status']}: {p['image_id']} ({p['detail']})")
    if len(result.problems) > 10:
        echo(f"  ... {len(result.problems) - 10} more in {split_dir / 'report.csv'}")
    echo(f"  {result.summary_line()}")
    return result


def _closing(summary: RunSummary, runs_dir: Path) -> str:
    lines = [f"\nDone in {summary.seconds:.0f} s: {summary.split.summary_line()}"]
    made = [r.name for r in summary.reports if r.status != "skipped"]
    lines.append(f"  generated: {', '.join(made) or 'nothing'}")
    for why, names in by_reason(summary.reports).items():
        lines.append(f"  not generated: {', '.join(names)}: {why}")
    for r in summary.reports:
        if r.status == "incomplete":
            lines.append(f"  incomplete: {r.name}: {len(r.failed)} images failed "
                         f"(see {runs_dir / r.name / 'meta.json'})")
    study = ",".join(m for m in made if m not in ("gt", PROTOCOL_GT)) or "grayscale"
    lines += [
        "Next steps:",
        f"  outputs:  {runs_dir}/<method>/<image_id>.png, metrics in {runs_dir}/metrics.csv",
        "  VTT app:  flask --app vtt_app init-db && flask --app vtt_app create-study "
        f"--runs {runs_dir} --methods {study}{_small_study_flags(summary.split.usable)} "
        "&& flask --app vtt_app run",
        f"  report:   python analysis/report.py --runs {runs_dir} --out report",
        f"  leaderboard: python -m bench leaderboard --runs {runs_dir}  (mean [95% interval])",
    ]
    return "\n".join(lines)


def _small_study_flags(usable: int) -> str:
    """create-study options for a split too small for its defaults (500 rated photos, 5
    practice, 20 attention photos): 2 practice and 8 attention photos, the rest rated, and
    enough attention checks (4 at 24 photos) for the flag rule to fire."""
    if usable >= 530 or usable < 14:
        return ""
    rated = usable - 10
    rate = max(0.1, round(4.5 / rated, 2))
    return (f" --images {rated} --practice 2 --attention-images 8 --attention-rate {rate}")

