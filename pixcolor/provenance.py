"""Where a result came from: the code's git revision, the software versions and the time.

One home for provenance (training checkpoints, the harness's split.json and meta.json).
"""

from __future__ import annotations

import functools
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path


def now_utc() -> str:
    """The current UTC time as ISO 8601 text (seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def git_revision() -> str:
    """HEAD of the project's checkout, with ``-dirty`` when tracked files differ from it;
    ``unknown`` outside a checkout.

    Call it once when a run starts: the code a process runs is the code it imported, even
    if the checkout moves on while it runs.
    """
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip()
    try:
        rev = git("rev-parse", "HEAD")
        if rev and git("status", "--porcelain", "--untracked-files=no"):
            rev += "-dirty"
        return rev or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def software_versions() -> dict:
    """Versions of the software that shaped the outputs, and the git revision (cached for
    the process, as :func:`git_revision` says)."""
    return dict(_software_versions())


@functools.cache
def _software_versions() -> dict:
    import numpy as np
    import PIL
    import torch

    import pixcolor

    return {"python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "pillow": PIL.__version__,
            "pixcolor": pixcolor.__version__, "git_revision": git_revision(),
            "platform": platform.platform()}
