"""Provenance records for the harness: checksums, timestamps, software versions, atomic writes.

Every split.json and meta.json says when, with what software and from which bytes its files
were made, so a reader can tell whether two runs are comparable.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pixcolor.io import file_sha256  # noqa: F401  (re-exported for bench modules)


def now_utc() -> str:
    """The current UTC time as ISO 8601 text (seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def software_versions() -> dict:
    """Versions of the software that shaped the outputs (for split.json and meta.json)."""
    return dict(_software_versions())


@functools.cache
def _software_versions() -> dict:
    import PIL
    import torch

    import pixcolor

    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return {"python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "pillow": PIL.__version__,
            "pixcolor": pixcolor.__version__, "git_revision": rev or None,
            "platform": platform.platform()}


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to a temporary file next to ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
