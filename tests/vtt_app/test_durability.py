"""Acknowledged answers survive a kill -9 of PostgreSQL.

The tests run a private PostgreSQL cluster in a temporary folder (initdb as the ``postgres``
user when the tests run as root, as initdb refuses root; only a unix socket in that folder,
so nothing else on the machine is touched), skipped when PostgreSQL's binaries are missing
(CI installs them through ``scripts/start_postgres.sh``). The cluster is killed and removed
by the fixture's finaliser whatever happens.

``VTT_MEASURE_ASYNC_LOSS=1`` also runs the crash with ``VTT_DB_SYNCHRONOUS_COMMIT=off`` and
prints how many acknowledged answers it lost (measured, not asserted: the loss depends on
where the kill falls in the WAL writer's cycle).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from glob import glob
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from sqlalchemy import event

from tests.vtt_app.helpers import (
    add_study,
    good_answer,
    make_app,
    make_runs,
    post_json,
    rater_client,
)
from vtt_app.db import sync_commit_mode

METHODS = ["cic", "lrac"]
# Crashes per test. With synchronous_commit off a kill -9 lost acknowledged answers in about
# half the crashes (0-5 of ~300: only the last, partly filled WAL page is still in shared
# memory), so three crashes catch a non-durable answer nine times in ten; the per-commit
# check (test_only_the_answers_commit_waits_for_the_disk_by_default) catches it always.
ROUNDS = 3


def _pg_bin() -> Path | None:
    """The newest PostgreSQL server's binaries (Debian's layout), or None."""
    found = [Path(p).parent for p in glob("/usr/lib/postgresql/*/bin/postgres")
             if Path(p).with_name("initdb").exists()]
    version = lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()]  # noqa: E731
    return max(found, key=version) if found else None


class PrivateCluster:
    """A PostgreSQL cluster in ``root`` that listens only on a unix socket in ``root``."""

    def __init__(self, bin_dir: Path, root: Path):
        self.bin, self.root, self.data = bin_dir, root, root / "data"
        self.port = _free_port()  # names the socket file only: no TCP
        self.proc: subprocess.Popen | None = None
        self.as_user: dict[str, Any] = {}
        if os.getuid() == 0:  # initdb and postgres refuse root: run them as postgres
            pw = pwd.getpwnam("postgres")
            os.chown(root, pw.pw_uid, pw.pw_gid)
            self.as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def initdb(self) -> None:
        subprocess.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "--locale=C", "-E", "UTF8", "--no-sync"],
                       cwd=self.root, check=True, capture_output=True, **self.as_user)

    def start(self) -> None:
        """Start the postmaster (crash recovery after a kill) and wait until it answers."""
        log = open(self.root / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-k", str(self.root),
             "-p", str(self.port), "-c", "listen_addresses=", "-c", "max_connections=50"],
            cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            **self.as_user)
        log.close()
        deadline = time.monotonic() + 30
        while self.proc.poll() is None and time.monotonic() < deadline:
            if subprocess.run(
                    [str(self.bin / "psql"), "-h", str(self.root), "-p", str(self.port),
                     "-U", "postgres", "-qAtc", "select 1"], capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not start: {self.log_tail()}")

    def kill9(self) -> int:
        """SIGKILL the postmaster and every child (each is its own process group, so no one
        killpg reaches them all): all are stopped first, so none writes WAL in between.

        Returns:
            How many processes were killed.
        """
        if self.proc is None or self.proc.poll() is not None:
            return 0
        os.kill(self.proc.pid, signal.SIGSTOP)  # forks nothing more
        pids = [self.proc.pid, *_children(self.proc.pid)]
        for pid in pids[1:]:
            os.kill(pid, signal.SIGSTOP)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)
        return len(pids)

    def stop(self) -> None:
        """Immediate shutdown (the postmaster removes its shared memory), else kill -9."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def sql(self, query: str, db: str = "postgres") -> str:
        out = subprocess.run([str(self.bin / "psql"), "-h", str(self.root), "-p",
                              str(self.port), "-U", "postgres", "-d", db, "-qAtc", query],
                             capture_output=True, text=True, check=True)
        return out.stdout

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres@/{db}?host={self.root}&port={self.port}"

    def log_tail(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(ppid: int) -> list[int]:
    """The pids whose parent is ``ppid`` (from /proc)."""
    out = []
    for stat in glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == ppid:
            out.append(int(Path(stat).parent.name))
    return out


@pytest.fixture(scope="module")
def cluster():
    """A private, running PostgreSQL cluster; stopped and removed after the module."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are missing: "
                    "scripts/start_postgres.sh installs them")
    if os.getuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run initdb as")
    root = Path(tempfile.mkdtemp(prefix="vtt-pg-"))
    pg = PrivateCluster(bin_dir, root)
    try:
        pg.initdb()
        pg.start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def _app_on(pg: PrivateCluster, tmp_path: Path, db: str, images: int, **config: Any) -> Flask:
    """A new database ``db`` in ``pg`` and an app on it with study ``s1`` (K = 5)."""
    pg.sql(f"create database {db}")
    app = make_app(tmp_path / f"inst_{db}", database_url=pg.url(db), **config)
    runs = make_runs(tmp_path / f"runs_{db}", METHODS, n_images=images + 2)
    add_study(app, runs, METHODS, images=images, practice=0, attention_images=2,
              attention_rate=0.0, trials_per_rater=40, raters_per_pair=5)
    return app


def test_sync_commit_mode_reads_new_and_old_values():
    for value, mode in (("answers", "answers"), ("on", "on"), ("OFF", "off"), ("1", "on"),
                        ("true", "on"), ("yes", "on"), ("0", "off"), ("false", "off"),
                        ("no", "off"), (True, "on"), (False, "off")):
        assert sync_commit_mode(value) == mode
    with pytest.raises(ValueError, match="VTT_DB_SYNCHRONOUS_COMMIT='local'"):
        sync_commit_mode("local")


@pytest.mark.parametrize("mode", [None, "on", "off"])
def test_only_the_answers_commit_waits_for_the_disk_by_default(cluster, tmp_path, mode):
    """By default (``answers``) the transaction that stores an answer commits with
    synchronous_commit on and every other one with it off; ``on`` and ``off`` are uniform."""
    config = {} if mode is None else {"DB_SYNCHRONOUS_COMMIT": mode}
    app = _app_on(cluster, tmp_path, f"show_{mode or 'default'}", images=4, **config)
    seen: list[tuple[str, str]] = []

    @event.listens_for(app.extensions["vtt_sessionmaker"], "before_commit")
    def _show(session):
        value = session.connection().exec_driver_sql("SHOW synchronous_commit").scalar()
        seen.append((request.path.rsplit("/", 1)[-1], value))

    client = rater_client(app, "s1", "b1")
    data = post_json(client, "/api/s/s1/next").get_json()
    answers = []  # the first commit of an answer request stores the answer
    for _ in range(3):
        before = len(seen)
        r = post_json(client, data["answer_url"], good_answer(1))
        assert r.status_code == 200, r.get_data(as_text=True)
        assert seen[before][0] == "answer"
        answers.append(seen.pop(before)[1])
        data = r.get_json()["next"]
    others = [v for _path, v in seen]  # consent, next, expiry sweeps after an answer
    assert others
    expect = {None: ("on", "off"), "on": ("on", "on"), "off": ("off", "off")}[mode]
    assert set(answers) == {expect[0]} and set(others) == {expect[1]}, seen


def _rater_loop(app: Flask, name: str, stop: threading.Event, acked: list[int],
                errors: list[tuple[float, str]]) -> None:
    """Consent, answer every trial, again with a new rater, until ``stop`` or an error;
    every 200 to an answer is an acknowledged trial id."""
    n = 0
    try:
        while not stop.is_set():
            n += 1
            client = rater_client(app, "s1", f"{name}-{n}")
            data = post_json(client, "/api/s/s1/next").get_json()
            if data["done"]:
                return  # the study is full
            while not data["done"] and not stop.is_set():
                r = post_json(client, data["answer_url"], good_answer(1))
                if r.status_code != 200:
                    errors.append((time.monotonic(), f"{r.status_code} {r.get_data()!r}"))
                    return
                acked.append(data["trial_id"])
                data = r.get_json()["next"]
    except Exception as exc:  # the database went away (expected after the kill)
        errors.append((time.monotonic(), repr(exc)[:300]))


def crash_run(pg: PrivateCluster, tmp_path: Path, db: str, mode: str | None,
              threads: int = 8, kill_after: int = 300) -> dict:
    """Raters answer concurrently; PostgreSQL is killed -9 mid-run and restarted.

    Returns:
        ``acked`` and ``stored`` trial ids, ``lost`` (acknowledged, not stored), the number
        of ``killed`` processes and the ``errors`` (time, text) seen before the kill.
    """
    config = {} if mode is None else {"DB_SYNCHRONOUS_COMMIT": mode}
    app = _app_on(pg, tmp_path, db, images=80, DB_POOL_SIZE=threads, **config)
    stop, acked, errors = threading.Event(), [], []
    workers = [threading.Thread(target=_rater_loop, args=(app, f"b{i}", stop, acked, errors))
               for i in range(threads)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 20
    while len(acked) < kill_after and time.monotonic() < deadline and any(
            w.is_alive() for w in workers):
        time.sleep(0.01)
    t_kill = time.monotonic()
    killed = pg.kill9()
    stop.set()
    for w in workers:
        w.join(30)
    assert not any(w.is_alive() for w in workers), "a rater thread hung after the kill"
    app.extensions["vtt_engine"].dispose()
    pg.start()
    stored = {int(x) for x in pg.sql("select trial_id from responses", db).split()}
    done = set(acked)
    return {"acked": done, "stored": stored, "lost": done - stored, "killed": killed,
            "errors": [e for e in errors if e[0] < t_kill],
            "failed_after_kill": sum(e[0] >= t_kill for e in errors)}


def _report(mode: str, out: dict) -> None:
    print(f"{mode}: acknowledged {len(out['acked'])}, stored {len(out['stored'])}, lost "
          f"{len(out['lost'])}, {out['killed']} processes killed, "
          f"{out['failed_after_kill']} raters cut off")


@pytest.mark.slow
def test_kill_9_of_postgresql_loses_no_acknowledged_answer(cluster, tmp_path):
    """With the default ``VTT_DB_SYNCHRONOUS_COMMIT`` (``answers``) every answer that got a
    200 is in ``responses`` after PostgreSQL was killed -9 mid-run and restarted."""
    for i in range(ROUNDS):
        out = crash_run(cluster, tmp_path, f"crash_default_{i}", None)
        _report("answers", out)
        assert not out["errors"], out["errors"]
        assert out["killed"] >= 2 and out["failed_after_kill"] >= 1  # killed mid-run
        assert len(out["acked"]) >= 100
        assert not out["lost"], f"acknowledged but lost: {sorted(out['lost'])}"


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("VTT_MEASURE_ASYNC_LOSS"),
                    reason="a measurement: set VTT_MEASURE_ASYNC_LOSS=1")
def test_kill_9_with_synchronous_commit_off_measured(cluster, tmp_path):
    """The fast option (``off``), measured the same way: how many acknowledged answers a
    kill -9 loses (printed; run with -s)."""
    for i in range(ROUNDS):
        out = crash_run(cluster, tmp_path, f"crash_off_{i}", "off")
        _report("off", out)
        assert not out["errors"], out["errors"]
