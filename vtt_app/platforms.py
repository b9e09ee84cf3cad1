"""Recruiting platforms: Prolific and Amazon Mechanical Turk (ExternalQuestion).

A study is fielded on one platform (``Study.platform``) or on a plain link (""):

* **Prolific** sends raters to ``/s/<study>/?PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=...``;
  the three are recorded on the rater. At the end the rater is sent back to Prolific's
  completion URL with the study's completion code, or with the second code for raters the
  attention checks screened out (``screened_out_code``), so the researcher can tell them
  apart on Prolific. Each rater's own code (``Rater.completion_code``) is shown too and
  exported, with the code the rater was sent back with (``platform_code``).
* **MTurk** shows the study in an iframe of its worker site with ``assignmentId``,
  ``hitId``, ``workerId`` and ``turkSubmitTo`` in the link. While a worker previews the HIT
  (``assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE``) the page shows the instructions only and
  nothing can start. At the end a form POSTs ``assignmentId`` (and the rater's code) to
  ``<turkSubmitTo>/mturk/externalSubmit``; ``turkSubmitTo`` is accepted only when it is one
  of MTurk's origins (or an origin the app's ``MTURK_SUBMIT_ORIGINS`` adds, for tests).
  Only MTurk studies may be framed, and only by MTurk's worker sites (or the origins of
  ``MTURK_FRAME_ORIGINS``). Over HTTPS their cookies are ``SameSite=None; Secure``, since
  the frame is a third-party context for the browser.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

from flask import current_app

from .ids import clean_external_id

PLATFORMS = ("", "prolific", "mturk")
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
#: Where MTurk's ``turkSubmitTo`` may point (production and sandbox).
MTURK_SUBMIT_ORIGINS = ("https://www.mturk.com", "https://workersandbox.mturk.com")
#: The worker sites that frame an ExternalQuestion.
MTURK_FRAME_ORIGINS = ("https://worker.mturk.com", "https://workersandbox.mturk.com",
                       "https://www.mturk.com")
PROLIFIC_COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc="
MAX_PARAM = 200


class PlatformError(ValueError):
    """A study's platform settings are incomplete or wrong; the message says what to set."""


@dataclass
class Visit:
    """What the platform's link said about this visit (all cleaned; "" when absent)."""

    external_id: str = ""  # PROLIFIC_PID, workerId or worker_id
    study_id: str = ""  # Prolific STUDY_ID, MTurk hitId
    session_id: str = ""  # Prolific SESSION_ID, MTurk assignmentId
    turk_submit_to: str = ""  # a checked MTurk origin
    preview: bool = False  # an MTurk worker previewing the HIT

    def as_dict(self) -> dict:
        return asdict(self)


def _param(args, *names: str) -> str:
    return clean_external_id(next((str(args[k]) for k in names if args.get(k)), ""))[:MAX_PARAM]


def submit_origins() -> tuple[str, ...]:
    """MTurk's submit origins plus any the app's config adds (``MTURK_SUBMIT_ORIGINS``)."""
    return MTURK_SUBMIT_ORIGINS + tuple(current_app.config.get("MTURK_SUBMIT_ORIGINS", ()))


def frame_origins() -> tuple[str, ...]:
    """MTurk's worker sites plus any the app's config adds (``MTURK_FRAME_ORIGINS``)."""
    return MTURK_FRAME_ORIGINS + tuple(current_app.config.get("MTURK_FRAME_ORIGINS", ()))


def turk_origin(value: str) -> str:
    """``value``'s origin if it is an allowed ``turkSubmitTo``, else ""."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return ""
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username:
        return ""
    return origin if origin in submit_origins() else ""


def read_visit(platform: str, args) -> Visit:
    """The platform's parameters of a study link (``request.args``)."""
    visit = Visit(external_id=_param(args, "worker_id", "PROLIFIC_PID", "workerId"))
    if platform == "prolific":
        visit.study_id, visit.session_id = _param(args, "STUDY_ID"), _param(args, "SESSION_ID")
    elif platform == "mturk":
        visit.study_id, visit.session_id = _param(args, "hitId"), _param(args, "assignmentId")
        visit.preview = visit.session_id == MTURK_PREVIEW
        visit.turk_submit_to = turk_origin(str(args.get("turkSubmitTo", "")))
        if visit.preview:
            visit.session_id = visit.external_id = ""
    return visit


def platform_code(study, rater) -> str:
    """The code the rater is sent back to the platform with: the study's completion code,
    or its screened-out code for a flagged rater; the rater's own code without them."""
    if rater.flagged and study.screened_out_code:
        return study.screened_out_code
    return study.completion_code or rater.completion_code or ""


def prolific_return_url(study, rater) -> str:
    """Prolific's completion URL with the rater's platform code."""
    base = current_app.config.get("PROLIFIC_COMPLETION_URL", PROLIFIC_COMPLETION_URL)
    return base + quote(platform_code(study, rater), safe="")


def mturk_submit_url(rater) -> str:
    """The external-submit URL of the rater's MTurk assignment ("" without one)."""
    return f"{rater.turk_submit_to}/mturk/externalSubmit" if rater.turk_submit_to else ""


def check_settings(platform: str, completion_code: str, screened_out_code: str) -> None:
    """Refuse platform settings that cannot work.

    Raises:
        PlatformError: naming the option to set.
    """
    if platform not in PLATFORMS:
        raise PlatformError(f"unknown platform {platform!r}: use one of prolific, mturk "
                            "(or none for a plain link)")
    for name, code in (("--completion-code", completion_code),
                       ("--screened-out-code", screened_out_code)):
        if code and (len(code) > 64 or not code.replace("-", "").replace("_", "").isalnum()):
            raise PlatformError(f"{name} {code!r}: use up to 64 letters, digits, '-' or '_'")
    if platform == "prolific" and not completion_code:
        raise PlatformError("a Prolific study needs --completion-code (the code Prolific "
                            "shows under 'Completion paths' of the study)")
    if platform != "prolific" and (completion_code or screened_out_code):
        raise PlatformError("--completion-code and --screened-out-code are for "
                            "--platform prolific")


def external_question_xml(url: str, frame_height: int = 0) -> str:
    """MTurk's ExternalQuestion XML for a study URL (HTTPS, as MTurk requires).

    Raises:
        PlatformError: the URL is not HTTPS.
    """
    if urlsplit(url).scheme != "https":
        raise PlatformError(f"MTurk loads ExternalQuestion pages over HTTPS only: {url!r}")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/'
        'AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd">\n'
        f"  <ExternalURL>{escape(url)}</ExternalURL>\n"
        f"  <FrameHeight>{int(frame_height)}</FrameHeight>\n"
        "</ExternalQuestion>\n")
