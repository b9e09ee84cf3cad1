"""Database schema of the Visual Turing Test (paper Sec. 4; oracle stage of Sec. 5.1, Fig. 6).

SQLAlchemy 2.0 declarative models. Only portable column types and constraints are used, so
the same schema runs on SQLite (the default, WAL mode) and PostgreSQL. All datetimes are
naive UTC (see :func:`utcnow`).

Tables:
    studies       one row per study (runs folder, K raters per pair, sitting plan, timeout).
    methods       the methods of a study: ``gt``, compared methods, oracle and attention.
    images        the photos of a study with their role (test | practice | attention).
    pairs         (image, method, stage) that must be rated by K distinct raters.
    raters        one row per person per study (secret token, browser id, completion code).
    assignments   a rater's reservation of one slot of a pair (open | done | expired |
                  invalid | excluded); ``open``/``done`` rows count towards K.
    trials        one presentation shown to a rater (practice | attention | test | oracle);
                  each of its two images is delivered once, and a presentation that started
                  and was not answered is ``interrupted`` (invalid, its slot re-queued).
    responses     the answer to a trial, with the page's timing measurements.
    timing_events raw page events of a trial (onset, offset, hidden, blur, ...).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Assignment states that occupy one of the K slots of a pair.
ACTIVE_STATES = ("open", "done")
#: Trial kinds, as exported in ``responses.csv``.
TRIAL_KINDS = ("practice", "attention", "test", "oracle")


def utcnow() -> datetime:
    """Current time as a naive UTC datetime (portable across SQLite and PostgreSQL)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of all VTT tables."""


class _InStudy:
    """Columns of a row that belongs to one study: its key and the study's (indexed)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)


class _NamedInStudy(_InStudy):
    """A row of a study with a ``name`` unique within the study."""

    __table_args__ = (UniqueConstraint("study_id", "name"),)


class Study(Base):
    """A Visual Turing Test study over one runs folder."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    runs_dir: Mapped[str] = mapped_column(Text)  # absolute path of runs/<split>
    raters_per_pair: Mapped[int] = mapped_column(Integer, default=5)  # K
    trials_per_rater: Mapped[int] = mapped_column(Integer, default=50)  # scored trials
    # scored trials one rater can get at most: test photos not also used for attention
    # checks (nobody sees a photo twice); 0 = no limit beyond trials_per_rater
    max_scored: Mapped[int] = mapped_column(Integer, default=0)
    attention_images: Mapped[int] = mapped_column(Integer, default=0)  # 0 = no limit
    n_practice: Mapped[int] = mapped_column(Integer, default=5)
    attention_rate: Mapped[float] = mapped_column(Float, default=0.1)
    attention_max_fail_rate: Mapped[float] = mapped_column(Float, default=0.25)
    attention_min_failures: Mapped[int] = mapped_column(Integer, default=2)
    exposure_ms: Mapped[int] = mapped_column(Integer, default=1000)
    assignment_timeout_s: Mapped[int] = mapped_column(Integer, default=600)
    oracle_group: Mapped[str] = mapped_column(Text, default="")  # comma-separated seeds
    seed: Mapped[int] = mapped_column(Integer, default=0)  # which photos and pairs (not plans)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # where raters come from: "" (a plain link), "prolific" or "mturk" (vtt_app.platforms)
    platform: Mapped[str] = mapped_column(String(20), default="")
    require_external_id: Mapped[bool] = mapped_column(Boolean, default=False)
    # the platform's completion code for raters who finish, and for raters screened out by
    # the attention checks (Prolific); empty: the rater's own code is shown
    completion_code: Mapped[str] = mapped_column(String(64), default="")
    screened_out_code: Mapped[str] = mapped_column(String(64), default="")
    # the frozen pre-registered plan (vtt_app.prereg) and the SHA-256 of its JSON
    plan_json: Mapped[str] = mapped_column(Text, default="")
    plan_sha256: Mapped[str] = mapped_column(String(64), default="")

    methods: Mapped[list[Method]] = relationship(back_populates="study")


class Method(_NamedInStudy, Base):
    """A method of a study; ``role`` is gt | method | oracle | attention."""

    __tablename__ = "methods"

    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20), default="method")

    study: Mapped[Study] = relationship(back_populates="methods")


class Image(_NamedInStudy, Base):
    """A photo of a study; ``name`` is the file stem in ``runs/<split>/<method>/``."""

    __tablename__ = "images"

    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="test")  # test|practice|attention
    gt_sha256: Mapped[str] = mapped_column(String(64))
    attention_file: Mapped[str | None] = mapped_column(Text, nullable=True)  # served copy
    gt_served: Mapped[str] = mapped_column(Text, default="")  # served copy (see media.py)
    # practice images: JSON {method: served copy} (test images' copies are on their pairs)
    practice_served: Mapped[str] = mapped_column(Text, default="")


class Pair(_InStudy, Base):
    """An (image, method) pair of one stage that needs ``raters_needed`` distinct raters."""

    __tablename__ = "pairs"
    __table_args__ = (UniqueConstraint("study_id", "image_id", "method_id", "stage"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    method_id: Mapped[int] = mapped_column(ForeignKey("methods.id"))
    stage: Mapped[str] = mapped_column(String(20), default="main")  # main | oracle
    source_method: Mapped[str] = mapped_column(String(100))  # folder the image is read from
    file_sha256: Mapped[str] = mapped_column(String(64))
    served: Mapped[str] = mapped_column(Text, default="")  # served copy (see media.py)
    raters_needed: Mapped[int] = mapped_column(Integer)
    # slots taken: this pair's assignments in ACTIVE_STATES, kept by vtt_app.assignment
    # (a conditional increment claims a slot, so no lock over the study is needed)
    n_active: Mapped[int] = mapped_column(Integer, default=0)

    image: Mapped[Image] = relationship()
    method: Mapped[Method] = relationship()


class Rater(_InStudy, Base):
    """One person taking one study."""

    __tablename__ = "raters"
    __table_args__ = (
        UniqueConstraint("study_id", "external_key"),
        UniqueConstraint("study_id", "browser_id"),
    )

    token: Mapped[str] = mapped_column(String(64), unique=True)  # secret, in the session cookie
    public_id: Mapped[str] = mapped_column(String(32), unique=True)  # exported rater_id
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # external_id normalised for the retake check (rater.external_key): unique per study
    external_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    browser_id: Mapped[str] = mapped_column(String(64))
    # server-side secret of the rater's plan (order, attention positions, tie-breaks): never
    # sent to the client, so nothing a rater holds predicts the presentation
    plan_secret: Mapped[str] = mapped_column(String(64), default="")
    # the platform's ids of this visit (Prolific STUDY_ID / SESSION_ID, MTurk hitId /
    # assignmentId) and MTurk's checked turkSubmitTo origin
    platform_study_id: Mapped[str] = mapped_column(String(200), default="")
    platform_session_id: Mapped[str] = mapped_column(String(200), default="")
    turk_submit_to: Mapped[str] = mapped_column(String(200), default="")
    attention_positions: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    user_agent: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    completion_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)


class Assignment(Base):
    """A rater's reservation of one of the K slots of a pair."""

    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)

    pair: Mapped[Pair] = relationship()


class Trial(Base):
    """One paired presentation shown to a rater (ground truth and a generated image)."""

    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("rater_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # 0-based position in the rater's sitting
    kind: Mapped[str] = mapped_column(String(20))  # practice|attention|test|oracle
    stage: Mapped[str] = mapped_column(String(20), default="main")  # main | oracle
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    method_name: Mapped[str] = mapped_column(String(100))
    source_method: Mapped[str] = mapped_column(String(100))
    pair_id: Mapped[int | None] = mapped_column(ForeignKey("pairs.id"), nullable=True)
    assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignments.id"), nullable=True
    )
    generated_first: Mapped[bool] = mapped_column(Boolean)
    # open | answered | expired | interrupted (its presentation started and was not answered)
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Each image is delivered once (api.image); set when slot 1 / 2 was sent.
    shown_1: Mapped[bool] = mapped_column(Boolean, default=False)
    shown_2: Mapped[bool] = mapped_column(Boolean, default=False)
    # the served copies of slot 1 and 2 (vtt_app.media), fixed when the trial is assigned
    served_1: Mapped[str] = mapped_column(Text, default="")
    served_2: Mapped[str] = mapped_column(Text, default="")
    # seed of the per-delivery dither of both images (vtt_app.media.dither): every delivered
    # image is unique bytes; the seed reproduces exactly what was sent
    dither_seed: Mapped[int] = mapped_column(BigInteger, default=0)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    invalid_reason: Mapped[str] = mapped_column(Text, default="")  # of an interrupted trial

    rater: Mapped[Rater] = relationship()
    image: Mapped[Image] = relationship()
    assignment: Mapped[Assignment | None] = relationship()
    response: Mapped[Response | None] = relationship(back_populates="trial")


class Response(Base):
    """The answer to a trial and the page's timing measurements (ms, ``performance.now``)."""

    __tablename__ = "responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), unique=True)
    choice: Mapped[int] = mapped_column(Integer)  # 1 or 2: which presentation was chosen
    chose_generated: Mapped[bool] = mapped_column(Boolean)
    response_ms: Mapped[float] = mapped_column(Float)
    onset_1_ms: Mapped[float] = mapped_column(Float)
    offset_1_ms: Mapped[float] = mapped_column(Float)
    onset_2_ms: Mapped[float] = mapped_column(Float)
    offset_2_ms: Mapped[float] = mapped_column(Float)
    frames_1: Mapped[int] = mapped_column(Integer)
    frames_2: Mapped[int] = mapped_column(Integer)
    refresh_hz: Mapped[float] = mapped_column(Float)
    window_w: Mapped[int] = mapped_column(Integer)
    window_h: Mapped[int] = mapped_column(Integer)
    device_pixel_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    tab_hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    blurred: Mapped[bool] = mapped_column(Boolean, default=False)
    valid: Mapped[bool] = mapped_column(Boolean)
    invalid_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    trial: Mapped[Trial] = relationship(back_populates="response")


class TimingEvent(Base):
    """A raw page event of a trial: onset/offset of a slot, hidden/visible, blur/focus."""

    __tablename__ = "timing_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    slot: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1 or 2, or none
    t_ms: Mapped[float] = mapped_column(Float)  # performance.now() of the page
