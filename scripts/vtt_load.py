"""Load test of the VTT app: N simulated raters through the same HTTP calls as the page.

Each rater opens the consent link (with its own platform id), consents, then loops as the
page does: takes its trial (``POST /api/s/<study>/next`` for the first; later the one the
previous answer brought), fetches both images (one request, ``images_url``), waits
(``--pace`` seconds per trial, about 3.5 for a human: two 1-s exposures and a decision;
0 = full speed) and posts a well-formed answer, over one keep-alive connection as a browser
does. Raters start spread over ``--ramp`` seconds; the test stops after ``--duration``
seconds (or when every rater's sitting is over). All traffic is on 127.0.0.1.

Printed: per endpoint the count, p50/p99/max latency and errors; the throughput; the CPU the
load generator, the app server's processes and PostgreSQL's used (where /proc shows them);
and an integrity check read from the database afterwards: no pair with more active slots
than K and every pair's slot counter equal to a recount, no rater shown a photo twice,
every acknowledged answer stored (and nothing stored that was not acknowledged). Exit
status 1 on any error or failed check.

The app under test is started here (``--server gunicorn``: the production command of
``scripts/serve.sh``; ``--server flask``: werkzeug's threaded server in this process) on a
fresh study made from generated images, or ``--url`` points at a running one whose study and
database (``--database-url``) the caller made.

    python scripts/vtt_load.py --raters 200 --pace 3.5 --duration 90
    python scripts/vtt_load.py --raters 20 --pace 0 --duration 20     # full speed
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vtt_load_raters import Stats, run_raters, warm_up  # noqa: E402 - scripts/ is on the path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic_runs(root: Path, methods: list[str], n_images: int, size: int = 64) -> Path:
    """``root/{gt,<method>}/img_XXXX.png``: smooth colour gradients as ground truths, each
    method's output the truth with its own colour cast (every file differs)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n_images):
        phase = 2 * np.pi * i / max(n_images, 1)
        gt = np.stack([np.sin(3 * xx + phase), np.cos(4 * yy + phase), np.sin(5 * (xx - yy))], -1)
        gt = ((gt * 0.5 + 0.5) * 220).astype(np.int64)
        for k, m in enumerate(["gt", *methods]):
            (root / m).mkdir(parents=True, exist_ok=True)
            out = np.clip(gt + 9 * k, 0, 255).astype(np.uint8)
            Image.fromarray(out).save(root / m / f"img_{i:04d}.png")
    return root


def make_study(instance: Path, database_url: str, n_images: int, k: int, trials: int) -> str:
    """A study over generated photos in a fresh app database; returns its name."""
    from vtt_app import create_app
    from vtt_app.attention import smallest_flagging_rate
    from vtt_app.db import create_all, get_session
    from vtt_app.study import StudyOptions, create_study

    methods = ["m1", "m2", "m3"]
    runs = synthetic_runs(instance / "runs", methods, n_images)
    app = create_app({"SECRET_KEY": "load-test", "DATABASE_URL": database_url,
                      "INSTANCE_PATH": str(instance), "ADMIN_TOKEN": "x"})
    opts = StudyOptions(name=f"load-{int(time.time())}", runs=runs, methods=methods,
                        images=n_images - 10, practice=2, attention_images=4,
                        attention_rate=max(0.1, smallest_flagging_rate(trials, 2)),
                        trials_per_rater=trials, raters_per_pair=k)
    with app.app_context():
        create_all()
        db = get_session()
        create_study(db, opts, Path(app.config["MEDIA_DIR"]) / opts.name)
        db.commit()
    return opts.name


def integrity(database_url: str, acked: set[int], study_name: str) -> list[str]:
    """Problems found in the study's rows after the run (empty: all good)."""
    from sqlalchemy.orm import Session

    from vtt_app.db import make_engine
    from vtt_app.integrity import study_problems

    engine = make_engine(database_url)
    try:
        with Session(engine) as db:
            return study_problems(db, study_name, acked)
    finally:
        engine.dispose()


def start_server(kind: str, instance: Path, database_url: str, port: int, workers: int,
                 threads: int, sync_commit: str = "answers") -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "VTT_INSTANCE_PATH": str(instance),
           "VTT_DB_POOL_SIZE": str(threads),
           "VTT_DB_SYNCHRONOUS_COMMIT": sync_commit,
           "VTT_SECRET_KEY": "load-test", "VTT_ADMIN_TOKEN": "x", "PYTHONPATH": str(ROOT)}
    if kind == "gunicorn":
        cmd = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads",
               str(threads), "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
               "--keep-alive", "75", "--config", str(ROOT / "scripts" / "gunicorn_conf.py"),
               *(["--access-logfile", os.environ["VTT_LOAD_ACCESS_LOG"],
                  "--access-logformat", "%(t)s %(D)s %(U)s"]
                 if os.environ.get("VTT_LOAD_ACCESS_LOG") else []),
               "vtt_app:create_app()"]
    else:
        cmd = [sys.executable, "-m", "flask", "--app", "vtt_app", "run", "--port", str(port),
               "--with-threads"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise SystemExit(f"the {kind} server did not start on port {port}")
    # The port opens before the workers have imported the app: wait until they are idle
    # (booting workers on a 2-core machine would otherwise be measured as slow requests).
    mine = lambda pid, comm, pgid: pgid == proc.pid  # noqa: E731
    last, quiet = process_cpu(mine), 0
    for _ in range(120):
        time.sleep(0.5)
        now = process_cpu(mine)
        quiet = quiet + 1 if now - last < 0.05 else 0
        last = now
        if quiet >= 2:
            break
    return proc


def process_cpu(match) -> float:
    """CPU seconds (user + system) used so far by the live processes ``match(pid, comm, pgid)``
    selects, from /proc (0 where /proc is missing)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        if match(int(stat.parent.name), comm, int(fields[2])):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def pg_maintenance(database_url: str) -> dict[str, int] | None:
    """PostgreSQL's counts of checkpoints and of autovacuum and autoanalyze runs on the app's
    tables so far (None for another database): the latency tail follows them, so the report
    says how many fell inside the run."""
    if not database_url.startswith("postgresql"):
        return None
    from sqlalchemy import text

    from vtt_app.db import make_engine

    engine = make_engine(database_url, pool_size=1)
    with engine.connect() as conn:
        has_checkpointer = conn.scalar(text(  # PostgreSQL >= 17 moved the counts there
            "SELECT count(*) FROM pg_catalog.pg_views WHERE viewname = 'pg_stat_checkpointer'"))
        checkpoints = conn.scalar(text(
            "SELECT num_timed + num_requested FROM pg_stat_checkpointer" if has_checkpointer
            else "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"))
        vacuums, analyses = conn.execute(text(
            "SELECT coalesce(sum(autovacuum_count), 0), coalesce(sum(autoanalyze_count), 0) "
            "FROM pg_stat_user_tables")).one()
    engine.dispose()
    return {"checkpoints": int(checkpoints), "autovacuum": int(vacuums),
            "autoanalyze": int(analyses)}


def report(stats: Stats, wall: float, cpu: float) -> int:
    n_err = 0
    print(f"{'endpoint':14s} {'n':>6s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'errors':>7s}")
    for name in ("GET consent", "POST consent", "POST next", "GET images", "POST answer"):
        v = np.array(stats.ms.get(name, [np.nan]))
        errs = stats.errors.get(name, [])
        n_err += len(errs)
        print(f"{name:14s} {len(stats.ms.get(name, [])):6d} {np.nanpercentile(v, 50):8.1f} "
              f"{np.nanpercentile(v, 99):8.1f} {np.nanmax(v):8.1f} {len(errs):7d}")
        for e in sorted(set(errs))[:3]:
            print(f"    {e}")
    if stats.when:  # where the slow requests fall in time
        when = np.array(stats.when)
        t0 = when[:, 0].min()
        print("p99 ms of all requests per 10 s: " + " ".join(
            f"{np.percentile(when[(when[:, 0] >= t0 + w) & (when[:, 0] < t0 + w + 10), 1], 99):.0f}"
            for w in range(0, int(when[:, 0].max() - t0) + 1, 10)
            if ((when[:, 0] >= t0 + w) & (when[:, 0] < t0 + w + 10)).any()))
    total = sum(len(v) for v in stats.ms.values())
    print(f"{total} requests in {wall:.1f} s: {total / wall:.1f} requests/s, "
          f"{len(stats.acked)} answers acknowledged; load generator CPU {cpu:.1f} s "
          f"({cpu / wall:.2f} cores)")
    return n_err


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raters", type=int, default=50)
    ap.add_argument("--pace", type=float, default=3.5, help="seconds per trial (0: full speed)")
    ap.add_argument("--duration", type=float, default=60, help="stop after this many seconds")
    ap.add_argument("--ramp", type=float, default=5, help="spread the raters' starts")
    ap.add_argument("--server", choices=["gunicorn", "flask"], default="gunicorn")
    ap.add_argument("--sync-commit", choices=["answers", "on", "off"], default="answers",
                    help="VTT_DB_SYNCHRONOUS_COMMIT: which PostgreSQL commits wait for the "
                         "disk (answers: only answers', the app's default; on: all; off: none)")
    ap.add_argument("--workers", type=int, default=6, help="as scripts/serve.sh")
    ap.add_argument("--threads", type=int, default=6)
    ap.add_argument("--database-url", default=None,
                    help="default: a SQLite file in a temporary instance folder")
    ap.add_argument("--url", default=None, help="a running app (then --database-url too)")
    ap.add_argument("--study", default="load", help="with --url: the running study's name")
    ap.add_argument("--images", type=int, default=300, help="photos of the generated study")
    ap.add_argument("--k", type=int, default=5, help="raters per pair")
    ap.add_argument("--trials", type=int, default=50, help="scored trials per rater")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="vtt-load-")
    instance = Path(tmp.name)
    db_url = args.database_url or f"sqlite:///{instance / 'vtt.sqlite'}"
    if args.url:
        base, study = args.url.rstrip("/"), args.study
    else:
        study = make_study(instance, db_url, args.images, args.k, args.trials)
        port = free_port()
        proc = start_server(args.server, instance, db_url, port, args.workers, args.threads,
                            args.sync_commit)
        base = f"http://127.0.0.1:{port}"
    stats = Stats()
    if proc is not None:
        warm_up(base, study, 4 * args.workers, stats)
    app_pgid = proc.pid if proc is not None else None
    server = {"app": lambda pid, comm, pgid: pgid == app_pgid,
              "PostgreSQL": lambda pid, comm, pgid: comm.startswith("postgres")}
    try:
        s0 = {k: process_cpu(m) for k, m in server.items()}
        m0 = pg_maintenance(db_url)
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.time()
        run_raters(base, study, args, stats)
        wall = time.time() - t0
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
        used = {k: process_cpu(m) - s0[k] for k, m in server.items()}
        m1 = pg_maintenance(db_url)
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    n_err = report(stats, wall, cpu) + len(stats.errors.get("warm-up", []))
    n_trials = max(1, len(stats.ms.get("POST answer", [])))
    for k, v in used.items():
        if k == "app" and app_pgid is None:
            continue
        print(f"{k} server CPU {v:.1f} s ({v / wall:.2f} cores, {v / n_trials * 1e3:.1f} ms "
              f"per answered trial)")
    if m0 is not None and m1 is not None:  # the statistics arrive with a delay of < 1 s
        print("PostgreSQL maintenance during the run: " + ", ".join(
            f"{m1[k] - m0[k]} {k}" for k in m0))
    problems = integrity(db_url, stats.acked, study)
    print("integrity: " + ("ok (no pair over K, no photo shown twice, acknowledged = stored)"
                           if not problems else "; ".join(problems)))
    tmp.cleanup()
    return 1 if n_err or problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
