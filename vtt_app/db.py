"""Engine and per-request sessions (SQLAlchemy 2.0, no Flask-SQLAlchemy).

SQLite (the default, a file in the instance folder) runs in WAL mode and every transaction
starts with ``BEGIN IMMEDIATE``: the write lock is taken before the assignment code reads the
slot counts, so concurrent raters cannot over-assign a pair. On PostgreSQL a rater's calls
are serialised by a row lock on the rater and a slot is claimed by a conditional update of
its pair (:mod:`vtt_app.assignment`), and an answer is acknowledged only once it is on disk
(:func:`durable_commit`; ``VTT_DB_SYNCHRONOUS_COMMIT``, :func:`sync_commit_mode`).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from .models import Base

SYNC_COMMIT_MODES = ("answers", "on", "off")
_SYNC_COMMIT_ALIASES = {"1": "on", "true": "on", "yes": "on", "0": "off", "false": "off",
                        "no": "off"}


def sync_commit_mode(value: str | bool) -> str:
    """The PostgreSQL commit mode named by ``VTT_DB_SYNCHRONOUS_COMMIT`` (or the config's
    ``DB_SYNCHRONOUS_COMMIT``): ``answers``, ``on`` or ``off`` (see :func:`make_engine`).

    The boolean spellings of earlier versions still work: ``1``/``true``/``yes`` (and True)
    mean ``on``, ``0``/``false``/``no`` (and False) mean ``off``.

    Raises:
        ValueError: any other value, naming the variable and the accepted values.
    """
    if isinstance(value, bool):
        return "on" if value else "off"
    word = str(value).strip().lower()
    mode = _SYNC_COMMIT_ALIASES.get(word, word)
    if mode not in SYNC_COMMIT_MODES:
        raise ValueError(f"VTT_DB_SYNCHRONOUS_COMMIT={value!r}: expected answers (the default: "
                         "answers wait for the disk), on (every commit waits) or off (none "
                         "waits)")
    return mode


def make_engine(url: str, pool_size: int = 10, synchronous_commit: str | bool = "answers"
                ) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL, foreign keys and BEGIN IMMEDIATE.

    Args:
        url: any SQLAlchemy database URL.
        pool_size: connections kept open per process (a server's threads per worker); up
            to as many again open under a burst, and a request waits at most 10 s for one.
        synchronous_commit: PostgreSQL only, a value of :func:`sync_commit_mode`.
            ``answers`` (the app's default): sessions run with ``synchronous_commit = off``,
            so a commit does not wait for the WAL flush (the disk's flush stalls were the
            whole tail of the latency under 200 raters), except the transaction that stores
            an answer (:func:`durable_commit`): an answer is acknowledged only once it is on
            disk, and its flush takes every earlier commit with it. A crash of PostgreSQL or
            of the machine can lose the last ~0.6 s of other writes (a trial assigned but
            not yet answered, a delivery flag), which then look never made. ``on``: every
            commit waits for the disk. ``off`` (the fast option): no commit waits, and a
            crash can also lose the last ~0.6 s of acknowledged answers (a lost answer is an
            open trial whose slot expires and is re-queued). The database stays consistent
            in every mode.

    Returns:
        The engine.
    """
    if not url.startswith("sqlite"):
        on = sync_commit_mode(synchronous_commit) == "on"
        connect_args = {} if on else {"options": "-c synchronous_commit=off"}
        return create_engine(url, pool_pre_ping=False, pool_size=pool_size,
                             max_overflow=pool_size, pool_timeout=10,
                             connect_args=connect_args)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN
        cur = dbapi_conn.cursor()
        if ":memory:" not in url and url.rstrip("/") != "sqlite:":
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def init_app(app: Flask) -> None:
    """Attach an engine and a session factory to ``app`` and close sessions per request."""
    mode = sync_commit_mode(app.config.get("DB_SYNCHRONOUS_COMMIT", "answers"))
    engine = make_engine(app.config["DATABASE_URL"], app.config.get("DB_POOL_SIZE", 10), mode)
    app.extensions["vtt_engine"] = engine
    app.extensions["vtt_durable_answers"] = (mode == "answers"
                                             and engine.dialect.name == "postgresql")
    app.extensions["vtt_sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(close_session)


def get_engine() -> Engine:
    """The engine of the current app."""
    return current_app.extensions["vtt_engine"]


def get_session() -> Session:
    """The session of the current request or command, created on first use."""
    if "vtt_session" not in g:
        g.vtt_session = current_app.extensions["vtt_sessionmaker"]()
    return g.vtt_session


def durable_commit(session: Session) -> None:
    """Commit ``session``'s transaction, which stores an answer, and return once it is on
    disk: in mode ``answers`` (PostgreSQL) the transaction's own ``synchronous_commit`` is
    turned on first; in the other modes and on SQLite this is a plain commit."""
    if current_app.extensions.get("vtt_durable_answers"):
        session.execute(text("SET LOCAL synchronous_commit TO on"))
    session.commit()


def close_session(_exc: BaseException | None = None) -> None:
    """Close the session of the current app context (rolling back anything uncommitted)."""
    session = g.pop("vtt_session", None)
    if session is not None:
        session.close()


# PostgreSQL's autovacuum analyses a table whenever a tenth of it has changed, which during a
# study is every few minutes for the tables below. With the default statistics target (100)
# one analysis of ``trials`` samples 30,000 rows and took 0.5 s of CPU on the 2-core
# development machine; several ran together once a minute and each time stalled 200 raters'
# requests for 2-3 s (p99 over 500 ms). The queries of the app look rows up by key, so a
# sample of 3,000 rows (target 10) plans them as well, at a tenth of the cost.
STATISTICS_TARGET = 10
BUSY_TABLES = ("pairs", "raters", "assignments", "trials", "responses", "timing_events")


def tune_postgres(engine: Engine) -> None:
    """Set the statistics target of every column of ``BUSY_TABLES`` (PostgreSQL only; the
    statement is idempotent and needs the tables' owner, which made them)."""
    if engine.dialect.name != "postgresql":
        return
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        for name in BUSY_TABLES:
            columns = Base.metadata.tables[name].columns
            conn.exec_driver_sql(f"ALTER TABLE {quote(name)} " + ", ".join(
                f"ALTER COLUMN {quote(c.name)} SET STATISTICS {STATISTICS_TARGET}"
                for c in columns))


class SchemaError(RuntimeError):
    """The database's tables lack columns this version of the app needs."""


def create_all() -> None:
    """Create the tables that do not exist yet, check that the existing ones have every
    column (the app has no migrations: a database made by an older version is refused with
    what to do, instead of failing at the first rater), and on PostgreSQL set the busy
    tables' statistics target (:func:`tune_postgres`).

    Raises:
        SchemaError: naming the table and the missing columns.
    """
    engine = get_engine()
    Base.metadata.create_all(engine)
    found = inspect(engine)
    for table in Base.metadata.sorted_tables:
        have = {c["name"] for c in found.get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in have]
        if missing:
            raise SchemaError(
                f"table {table.name!r} of {engine.url.render_as_string(hide_password=True)} "
                f"lacks column(s) {', '.join(missing)}: the database was made by an older "
                "version of the app. Export its studies (flask --app vtt_app export), then "
                "point DATABASE_URL at a new database (or drop the old tables) and run init-db "
                "and create-study again.")
    tune_postgres(engine)
