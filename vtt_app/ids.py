"""Rater ids from recruiting platforms (MTurk ``workerId``, Prolific ``PROLIFIC_PID``, ...)."""

from __future__ import annotations

import unicodedata

MAX_EXTERNAL_ID = 200


def clean_external_id(text: str) -> str:
    """A platform id as stored and exported: NFKC, no control characters, no surrounding
    spaces, at most 200 characters."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if unicodedata.category(c)[0] != "C").strip()[
        :MAX_EXTERNAL_ID]


def external_key(external_id: str | None) -> str | None:
    """The form under which two ids count as the same rater: case and inner spaces ignored
    (``RETAKE1``, ``retake1`` and ``retake 1`` are one rater)."""
    if not external_id:
        return None
    return "".join(external_id.casefold().split()) or None
