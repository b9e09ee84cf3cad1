"""Engine and per-request sessions (SQLAlchemy 2.0, no Flask-SQLAlchemy).

SQLite (the default, a file in the instance folder) runs in WAL mode and every transaction
starts with ``BEGIN IMMEDIATE``: the write lock is taken before the assignment code reads the
slot counts, so concurrent raters cannot over-assign a pair. On PostgreSQL a rater's calls
are serialised by a row lock on the rater and a slot is claimed by a conditional update of
its pair (:mod:`vtt_app.assignment`).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from .models import Base


def make_engine(url: str, pool_size: int = 10, synchronous_commit: bool = False) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL, foreign keys and BEGIN IMMEDIATE.

    Args:
        url: any SQLAlchemy database URL.
        pool_size: connections kept open per process (a server's threads per worker); up
            to as many again open under a burst, and a request waits at most 10 s for one.
        synchronous_commit: PostgreSQL only. False (the app's default): its sessions run
            with ``synchronous_commit = off``, so a commit does not wait for the WAL flush
            (the disk's flush stalls were the whole tail of the latency under 200 raters).
            The database stays consistent; a crash of PostgreSQL or of the machine (not of
            the app) can lose the last ~0.6 s of acknowledged writes, which then look never
            made (an answer lost so is an open trial whose slot expires and is re-queued).
            True: every commit waits for the disk.

    Returns:
        The engine.
    """
    if not url.startswith("sqlite"):
        connect_args = {} if synchronous_commit else {"options": "-c synchronous_commit=off"}
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
    engine = make_engine(app.config["DATABASE_URL"], app.config.get("DB_POOL_SIZE", 10),
                         app.config.get("DB_SYNCHRONOUS_COMMIT", False))
    app.extensions["vtt_engine"] = engine
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
