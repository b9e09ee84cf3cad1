"""Command line of the benchmark harness: ``python -m bench {build-split,generate,metrics,run,
protocols,leaderboard}``.

Examples::

    python -m bench run                                   # demo split, as `make bench`
    python -m bench run --split ctest10k --imagenet-val /data/ILSVRC2012/val --device cuda
    python -m bench build-split --split ctest10k --imagenet-val DIR --subset 500 --seed 0
    python -m bench protocols                             # the published protocols
    python -m bench build-split --protocol imagenet-val5k --source /data/ILSVRC2012/val
    python -m bench generate --split ctest10k --methods pixcolor_s1,gt --shard 0/4
    python -m bench generate --split demo --methods external:mine=/path/to/pngs
    python -m bench metrics --runs-dir runs/demo
    python -m bench metrics --runs-dir runs/ctest10k --shard 0/4   # then --merge
    python -m bench leaderboard --runs runs/demo          # mean [95% interval], best marked

Exit status: 0 when every expected image is usable and generated, 3 when some are not (the
outputs are still written and the final lines say how many), 1 on an error that stops the
command (unknown split, no manifest, ...), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bench import metrics as bench_metrics
from bench.generate import GenerateError, generate, parse_shard
from bench.methods import DEFAULT_METHODS, METHODS, MethodOptions
from bench.pipeline import SplitSource, build, default_methods, run, split_name
from bench.protocols import build_protocol, format_protocol, format_table
from bench.split_lists import SplitError
from bench.splits import DEFAULT_SIZE, BuildResult

PARTIAL = 3


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="data", help="data folder (default: data)")
    p.add_argument("--split", default="demo",
                   help="demo, ctest10k, cval1k, or a name with --list/--images")
    p.add_argument("--subset", type=int, default=None, help="keep a deterministic N-image subset")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset (default 0)")


def _gen_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", default=None,
                   help="comma-separated names or external:NAME=DIR (default: every "
                        f"available one of {','.join(DEFAULT_METHODS)}, and gt_protocol "
                        "for a protocol split)")
    p.add_argument("--checkpoint", default=None,
                   help="PixColor checkpoint (default: the shipped demo checkpoint)")
    p.add_argument("--baseline-checkpoint", action="append", default=[], metavar="NAME=PATH",
                   help="checkpoint of a baseline (cic, lrac, ltbc); repeatable")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per batch (default: 64 on a CPU, 256 on a GPU)")
    p.add_argument("--shard", default=None,
                   help="i/n: this process's share (default: torchrun RANK/WORLD_SIZE)")
    p.add_argument("--sampling-threads", type=int, default=1,
                   help="torch CPU threads while sampling the PixelCNN (0: torch default)")
    p.add_argument("--rank-samples", type=int, default=10,
                   help="pixcolor_best: samples drawn per photo, the most likely kept")
    p.add_argument("--overwrite", action="store_true",
                   help="regenerate method folders made with other settings")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build-split", help="build a split folder (manifest, report, images)")
    _common(b)
    b.add_argument("--imagenet-val", default=None, help="ILSVRC2012 validation folder")
    b.add_argument("--images", default=None, help="any folder of photos (ids = file stems)")
    b.add_argument("--list", dest="list_file", default=None, help="list file to use instead")
    b.add_argument("--out", default=None, help="split folder (default: DATA/splits/NAME)")
    b.add_argument("--size", type=int, default=DEFAULT_SIZE, help="shorter side and crop")
    b.add_argument("--keep-aspect", action="store_true", help="resize only, no centre crop")
    b.add_argument("--drop-grayscale", action="store_true",
                   help="leave grayscale sources out of the manifest (they are reported)")
    b.add_argument("--protocol", default=None,
                   help="a published protocol (python -m bench protocols) built from --source")
    b.add_argument("--source", default=None, help="the dataset folder of --protocol")

    g = sub.add_parser("generate", help="generate method outputs for a built split")
    _common(g)
    g.add_argument("--split-dir", default=None, help="split folder (default DATA/splits/NAME)")
    g.add_argument("--runs", default="runs", help="runs folder (default: runs)")
    _gen_opts(g)

    m = sub.add_parser("metrics", help="metrics.csv of a runs folder")
    _common(m)
    m.add_argument("--runs", default="runs", help="runs folder (default: runs)")
    m.add_argument("--runs-dir", default=None, help="runs/<split> (default RUNS/NAME)")
    m.add_argument("--methods", default=None, help="comma-separated methods (default: all)")
    m.add_argument("--workers", type=int, default=1, help="processes for the metrics")
    bench_metrics.add_fid_flag(m)
    bench_metrics.add_gt_flag(m)
    bench_metrics.add_shard_flags(m)

    r = sub.add_parser("run", help="split + generate + metrics (what `make bench` runs)")
    _common(r)
    r.add_argument("--runs", default="runs", help="runs folder (default: runs)")
    r.add_argument("--imagenet-val", default=None, help="ILSVRC2012 validation folder")
    r.add_argument("--list", dest="list_file", default=None, help="list file to use instead")
    r.add_argument("--size", type=int, default=DEFAULT_SIZE, help="shorter side and crop")
    r.add_argument("--workers", type=int, default=1, help="processes for the metrics")
    bench_metrics.add_fid_flag(r)
    _gen_opts(r)
    bench_metrics.add_leaderboard_parser(sub)
    sub.add_parser("list-methods", help="registered method names")
    pr = sub.add_parser("protocols", help="the published protocols build-split --protocol makes")
    pr.add_argument("name", nargs="?", default=None, help="print every field of one protocol")
    return parser


def _pairs(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise KeyError(f"--baseline-checkpoint wants NAME=PATH, got {v!r}")
        out[name] = path
    return out


def _methods(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _method_options(args: argparse.Namespace) -> MethodOptions:
    """The generation flags as the settings methods are built with."""
    return MethodOptions(checkpoint=args.checkpoint, device=args.device,
                         batch_size=args.batch_size, sampling_threads=args.sampling_threads,
                         rank_samples=args.rank_samples,
                         baseline_checkpoints=_pairs(args.baseline_checkpoint))


def _build_protocol(args: argparse.Namespace, out: Path, name: str) -> BuildResult:
    """build-split --protocol NAME --source DIR; the options of other splits are refused."""
    if not (args.protocol and args.source):
        raise SplitError("--protocol and --source go together: python -m bench build-split "
                         "--protocol NAME --source DIR (python -m bench protocols lists them)")
    given = [f for f, v in (("--imagenet-val", args.imagenet_val), ("--images", args.images),
                            ("--list", args.list_file), ("--keep-aspect", args.keep_aspect),
                            ("--drop-grayscale", args.drop_grayscale),
                            ("--size", args.size != DEFAULT_SIZE)) if v]
    if given:
        raise SplitError(f"{', '.join(given)}: not with --protocol (a protocol fixes its "
                         "images and preprocessing)")
    return build_protocol(args.protocol, args.source, out, subset=args.subset, seed=args.seed,
                          name=name)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (see the module docstring)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "list-methods":
            print("\n".join(sorted(METHODS)))
            return 0
        if args.command == "protocols":
            print(format_protocol(args.name) if args.name else format_table())
            return 0
        if args.command == "leaderboard":
            return bench_metrics.leaderboard_command(args)
        if getattr(args, "protocol", None):
            args.split = args.protocol
        name = split_name(args.split, args.subset, args.seed)
        if getattr(args, "batch_size", 0) is None:
            args.batch_size = 64 if args.device == "cpu" else 256
        if args.command == "build-split":
            out = Path(args.out) if args.out else Path(args.data) / "splits" / name
            if args.protocol or args.source:
                result = _build_protocol(args, out, name)
            else:
                result = build(args.split, out, data=args.data, imagenet_val=args.imagenet_val,
                               images=args.images, list_file=args.list_file,
                               subset=args.subset, seed=args.seed, size=args.size,
                               keep_aspect=args.keep_aspect,
                               drop_grayscale=args.drop_grayscale, name=name)
            for p in result.problems:
                print(f"{p['status']}: {p['image_id']}: {p['detail']}")
            print(f"wrote {out}/manifest.csv, report.csv, split.json")
            print(result.summary_line())
            return 0 if result.usable == result.expected else (PARTIAL if result.usable else 1)
        if args.command == "generate":
            split_dir = Path(args.split_dir or Path(args.data) / "splits" / name)
            reports = generate(split_dir, Path(args.runs) / name,
                               _methods(args.methods) or default_methods(split_dir),
                               shard=parse_shard(args.shard), batch_size=args.batch_size,
                               overwrite=args.overwrite, options=_method_options(args),
                               echo=print)
            for rep in reports:
                why = f": {rep.reason}" if rep.reason else ""
                print(f"{rep.name}: {rep.status} ({rep.generated} generated, {rep.existing} "
                      f"existed, {len(rep.failed)} failed){why}")
            return PARTIAL if any(r.status == "incomplete" for r in reports) else 0
        if args.command == "metrics":
            return bench_metrics.metrics_command(args, name, _methods(args.methods))
        source = SplitSource(split=args.split, data=args.data, imagenet_val=args.imagenet_val,
                             list_file=args.list_file, subset=args.subset, seed=args.seed,
                             size=args.size)
        summary = run(source, runs=args.runs, methods=_methods(args.methods),
                      options=_method_options(args), shard=args.shard,
                      overwrite=args.overwrite, metric_workers=args.workers, echo=print,
                      fid_variant=args.fid_variant)
        return 0 if summary.ok else (PARTIAL if summary.split.usable else 1)
    except (SplitError, GenerateError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
