"""Rater ids from recruiting platforms (MTurk ``workerId``, Prolific ``PROLIFIC_PID``, ...)."""

from __future__ import annotations

import hashlib
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
    (``RETAKE1``, ``retake1`` and ``retake 1`` are one rater). Casefolding can lengthen an
    id (``ß`` -> ``ss``): a key over 200 characters (the column's size) is replaced by its
    SHA-256, so equal ids still get equal keys."""
    if not external_id:
        return None
    key = "".join(external_id.casefold().split())
    if len(key) > MAX_EXTERNAL_ID:
        key = "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key or None
