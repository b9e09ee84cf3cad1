"""VTT assignment rules: K raters per pair under concurrency, reclaiming, re-queueing, oracle."""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import threading
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select, update

from pixcolor.io import load_rgb
from tests.vtt_app.helpers import (
    add_study,
    answer,
    chooser,
    good_answer,
    make_app,
    make_runs,
    post_json,
    rater_client,
    run_sitting,
)
from vtt_app.assignment import slot_count_mismatches
from vtt_app.db import get_engine, get_session, make_engine
from vtt_app.models import Assignment, Base, Pair, Rater, Response, Trial, utcnow
from vtt_app.responses import AnswerPayload, timing_problems
from vtt_app.study import oracle_method_name

SEEDS = ["pixcolor_s1", "pixcolor_s2", "pixcolor_s3"]


def _database_urls() -> list:
    urls = [None]  # None: a SQLite file in the instance folder
    pg = os.environ.get("VTT_TEST_POSTGRES_URL")
    urls.append(pg or pytest.param("postgres", marks=pytest.mark.skip(
        reason="set VTT_TEST_POSTGRES_URL=postgresql+psycopg://... (a scratch database: "
        "its VTT tables are dropped) to run against PostgreSQL")))
    return urls


def _fresh_app(tmp_path: Path, database_url: str | None):
    if database_url:  # a scratch PostgreSQL database: start from empty VTT tables
        engine = make_engine(database_url)
        Base.metadata.drop_all(engine)
        engine.dispose()
    return make_app(tmp_path / "inst", database_url=database_url)


def _slots(app) -> dict[int, dict[str, int]]:
    """Assignments per pair and status; also checks every pair's slot counter."""
    with app.app_context():
        assert slot_count_mismatches(get_session()) == []
        out: dict[int, dict[str, int]] = {}
        for pair_id, status, n in get_session().execute(
            select(Assignment.pair_id, Assignment.status, func.count()).group_by(
                Assignment.pair_id, Assignment.status)
        ):
            out.setdefault(pair_id, {})[status] = n
        return out


@pytest.mark.parametrize("database_url", _database_urls())
def test_concurrent_raters_give_every_pair_exactly_k(tmp_path: Path, database_url):
    runs = make_runs(tmp_path / "runs", ["cic", "lrac"], n_images=5)
    app = _fresh_app(tmp_path, database_url)
    name = "conc"
    # 4 images x 2 methods = 8 pairs, K = 3: 24 slots; a rater sees each photo once (<= 4).
    add_study(app, runs, ["cic", "lrac"], name=name, images=4, practice=1, attention_images=1,
              attention_rate=0.0, trials_per_rater=4, raters_per_pair=3)
    clients = [rater_client(app, name, f"browser-{i}") for i in range(10)]
    barrier = threading.Barrier(len(clients))
    errors: list[BaseException] = []

    def work(client):
        try:
            barrier.wait()
            run_sitting(client, name)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    slots = _slots(app)
    with app.app_context():
        db = get_session()
        pairs = db.scalars(select(Pair)).all()
        assert len(pairs) == 8
        for p in pairs:
            assert slots[p.id] == {"done": 3}, (p.id, slots[p.id])  # none over, none starved
        # no rater saw a photo twice
        seen = db.execute(select(Trial.rater_id, Trial.image_id)).all()
        assert len(seen) == len(set(seen))


def _process_raters(instance: str, name: str, tag: str, barrier, failures) -> None:
    try:
        app = make_app(Path(instance))  # its own engine on the shared SQLite file
        clients = [rater_client(app, name, f"{tag}-{k}") for k in range(2)]
        barrier.wait()
        for client in clients:
            run_sitting(client, name)
    except BaseException as err:  # noqa: BLE001 - reported to the parent
        failures.put(repr(err))


def test_concurrent_processes_give_every_pair_exactly_k(tmp_path: Path):
    runs = make_runs(tmp_path / "runs", ["cic", "lrac"], n_images=5)
    app = make_app(tmp_path / "inst")
    add_study(app, runs, ["cic", "lrac"], name="procs", images=4, practice=0,
              attention_images=1, attention_rate=0.0, trials_per_rater=4, raters_per_pair=2)
    ctx = multiprocessing.get_context("fork")
    barrier, failures = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_process_raters,
                         args=(str(tmp_path / "inst"), "procs", f"p{i}", barrier, failures))
             for i in range(4)]  # fmt: skip
    [p.start() for p in procs]
    [p.join(timeout=60) for p in procs]
    assert failures.empty(), failures.get()
    assert all(p.exitcode == 0 for p in procs)
    slots = _slots(app)
    assert len(slots) == 8 and all(v == {"done": 2} for v in slots.values()), slots


def test_concurrent_next_requests_never_overassign(tmp_path: Path):
    runs = make_runs(tmp_path / "runs", ["cic"], n_images=3)
    app = make_app(tmp_path / "inst")
    add_study(app, runs, ["cic"], images=2, practice=1, attention_images=1, attention_rate=0.0,
              trials_per_rater=2, raters_per_pair=2, name="few")
    app.config["TESTING"] = True
    clients = [rater_client(app, "few", f"b{i}") for i in range(12)]
    for c in clients:  # past the practice trial
        answer(c, post_json(c, "/api/s/few/next").get_json(), 1)
    barrier = threading.Barrier(len(clients))
    got = []

    def ask(client):
        barrier.wait()
        got.append(post_json(client, "/api/s/few/next").get_json())

    threads = [threading.Thread(target=ask, args=(c,)) for c in clients]
    [t.start() for t in threads]
    [t.join(timeout=60) for t in threads]
    assert sum(not g["done"] for g in got) == 4  # 2 pairs x K=2, the rest are told "done"
    assert all(v == {"open": 2} for v in _slots(app).values())


def test_abandoned_assignment_is_reclaimed(tmp_path: Path):
    runs = make_runs(tmp_path / "runs", ["cic"], n_images=2)
    app = make_app(tmp_path / "inst")
    add_study(app, runs, ["cic"], images=1, practice=0, attention_images=1, attention_rate=0.0,
              trials_per_rater=1, raters_per_pair=1, timeout_s=60, name="one")
    alice = rater_client(app, "one", "alice")
    first = post_json(alice, "/api/s/one/next").get_json()
    assert not first["done"]
    with app.app_context():  # alice walks away; her slot times out
        db = get_session()
        db.execute(update(Assignment).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.commit()
    bob = rater_client(app, "one", "bob")
    second = post_json(bob, "/api/s/one/next").get_json()
    assert not second["done"]
    late = post_json(alice, first["answer_url"], good_answer(1))
    assert late.status_code == 409 and "expired" in late.get_json()["error"]
    assert answer(bob, second, 1).status_code == 200
    assert _slots(app) == {1: {"expired": 1, "done": 1}}


@pytest.mark.parametrize("database_url", _database_urls())
def test_slot_counters_follow_every_transition(tmp_path: Path, database_url, seeded_tokens):
    """Claim, answer, invalid answer, interruption, expiry and a flagged rater's release
    each keep ``Pair.n_active`` equal to a recount of the pair's active assignments."""
    runs = make_runs(tmp_path / "runs", ["cic", "lrac"], n_images=9)
    app = _fresh_app(tmp_path, database_url)
    add_study(app, runs, ["cic", "lrac"], name="mix", images=6, practice=0,
              attention_images=3, attention_rate=0.5, trials_per_rater=4, raters_per_pair=2,
              timeout_s=60)
    rng = np.random.default_rng(0)
    by_browser = {f"b{i}": rater_client(app, "mix", f"b{i}") for i in range(6)}
    with app.app_context():
        last_check = {r.browser_id: max(int(p) for p in r.attention_positions.split(","))
                      for r in get_session().scalars(select(Rater))}
    # clients[0] fails every attention check: flagged at its second, which must come before
    # its last trial for the flag to exclude a slot
    first = min(sorted(last_check), key=last_check.get)
    clients = [by_browser[first], *(c for b, c in by_browser.items() if b != first)]
    careless = chooser(app, lambda t: t.kind == "attention")
    # the first scored trials take each slot-releasing action once for sure, the rest are
    # drawn (the raters' plans come from their tokens: seeded, so every run is the same)
    forced = [2, 0, 1]
    for _ in range(80):
        client = clients[int(rng.integers(len(clients)))]
        trial = post_json(client, "/api/s/mix/next").get_json()
        if trial["done"]:
            continue
        action = int(rng.integers(5))
        if forced and client is not clients[0] and _kind(app, trial) == "test":
            action = forced.pop(0)
        if client is clients[0]:  # fails every attention check: flagged, slots freed
            answer(client, trial, careless(trial))
        elif action == 0:  # shown, then abandoned: the next /next interrupts it
            client.get(trial["images_url"])
        elif action == 1:  # walked away: its slot times out
            with app.app_context():
                db = get_session()
                rater_id = db.get(Trial, trial["trial_id"]).rater_id
                db.execute(update(Assignment)
                           .where(Assignment.status == "open", Assignment.rater_id == rater_id)
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
                db.execute(update(Trial).where(Trial.status == "open", Trial.rater_id == rater_id)
                           .values(created_at=utcnow() - timedelta(seconds=61)))
                db.commit()
        elif action == 2:  # an invalid answer gives the slot back
            answer(client, trial, 1, events=[{"kind": "hidden", "t": 5500.0}])
        else:
            answer(client, trial, int(rng.integers(1, 3)))
        _slots(app)  # asserts the counters after every step
    for _ in range(10):  # the careless rater finishes its sitting
        trial = post_json(clients[0], "/api/s/mix/next").get_json()
        if trial["done"]:
            break
        answer(clients[0], trial, careless(trial))
        _slots(app)
    with app.app_context():
        statuses = set(get_session().scalars(select(Assignment.status)))
        flagged = get_session().scalar(select(func.count()).where(Rater.flagged.is_(True)))
    assert {"done", "invalid", "expired"} <= statuses, statuses
    assert statuses == {"done", "invalid", "expired", "excluded"}, statuses
    assert flagged >= 1


def _kind(app, trial: dict) -> str:
    with app.app_context():
        return get_session().get(Trial, trial["trial_id"]).kind


def _answer(hz=60.0, exposure=(1000.0, 1000.0), events=()):
    t0 = 100.0
    return AnswerPayload(choice=1, response_ms=500, onset=(t0, t0 + exposure[0]),
                  offset=(t0 + exposure[0], t0 + exposure[0] + exposure[1]), frames=(60, 60),
                  refresh_hz=hz, window_w=800, window_h=600, device_pixel_ratio=1.0,
                  events=list(events))


def test_timing_rule_is_one_frame():
    frame = 1000 / 60
    assert timing_problems(_answer(exposure=(1000 + frame, 1000 - frame)), 1000)[0] == []
    reasons = timing_problems(_answer(exposure=(1000 + frame + 1, 1000)), 1000)[0]
    assert len(reasons) == 1 and "image 1" in reasons[0]
    assert timing_problems(_answer(hz=144, exposure=(1010, 1000)), 1000)[0]  # 7 ms frames
    assert timing_problems(_answer(hz=5), 1000)[0]  # implausible refresh rate
    hidden = timing_problems(_answer(events=[("hidden", None, 1500.0)]), 1000)
    assert hidden[1] is True and hidden[0]
    blur_in = timing_problems(_answer(events=[("blur", None, 900.0)]), 1000)
    blur_after = timing_problems(_answer(events=[("blur", None, 2500.0)]), 1000)
    assert blur_in[2] and blur_in[0] and blur_after[0] == []


@pytest.mark.parametrize("database_url", _database_urls())
def test_invalid_trial_is_flagged_and_requeued(tmp_path: Path, database_url):
    runs = make_runs(tmp_path / "runs", ["cic"], n_images=2)
    app = _fresh_app(tmp_path, database_url)
    add_study(app, runs, ["cic"], images=1, practice=0, attention_images=1, attention_rate=0.0,
              trials_per_rater=1, raters_per_pair=1, name="one")
    alice = rater_client(app, "one", "alice")
    trial = post_json(alice, "/api/s/one/next").get_json()
    res = answer(alice, trial, 1, events=[{"kind": "hidden", "t": 5500.0}],
                 offset_2=7100.0).get_json()
    assert res["valid"] is False
    with app.app_context():
        resp = get_session().scalar(select(Response))
        assert resp.valid is False and resp.tab_hidden
        assert "hidden" in resp.invalid_reason and "image 2" in resp.invalid_reason
    assert _slots(app) == {1: {"invalid": 1}}
    bob = rater_client(app, "one", "bob")  # the pair goes to the next rater
    again = post_json(bob, "/api/s/one/next").get_json()
    assert not again["done"]
    assert answer(bob, again, 2).get_json()["valid"] is True
    assert _slots(app) == {1: {"invalid": 1, "done": 1}}


def test_attention_failures_flag_rater_and_free_slots(tmp_path: Path):
    runs = make_runs(tmp_path / "runs", ["cic"], n_images=12)
    app = make_app(tmp_path / "inst")
    add_study(app, runs, ["cic"], images=6, practice=0, attention_images=4, attention_rate=0.5,
              trials_per_rater=4, raters_per_pair=1, name="att")
    client = rater_client(app, "att", "careless")
    run_sitting(client, "att", chooser(app, lambda t: t.kind == "attention"))
    with app.app_context():
        db = get_session()
        assert db.scalar(select(Rater.flagged)) is True
        kinds = db.scalars(select(Trial.kind)).all()
        assert kinds.count("attention") == 2
        statuses = set(db.scalars(select(Assignment.status)))
        assert statuses == {"excluded"}  # answers kept, slots given back
        assert set(db.scalars(select(Pair.n_active))) == {0}
        assert db.scalar(select(func.count(Response.id))) == 6


@pytest.mark.parametrize("database_url", _database_urls())
def test_oracle_stage(tmp_path: Path, database_url):
    methods = [*SEEDS, "cic"]
    runs = make_runs(tmp_path / "runs", methods, n_images=12)
    app = _fresh_app(tmp_path, database_url)
    add_study(app, runs, methods, images=3, practice=1, attention_images=2, attention_rate=0.0,
              trials_per_rater=3, raters_per_pair=2, name="orc")
    cli = app.test_cli_runner()
    early = cli.invoke(args=["create-oracle", "--study", "orc"])
    assert early.exit_code != 0 and "finish the main stage" in early.output
    with app.app_context():
        images = sorted(p.image.name for p in get_session().scalars(select(Pair)))[::4]
    # Raters prefer seed 2 on the first image, seed 3 on the second, nothing on the third.
    liked = {images[0]: "pixcolor_s2", images[1]: "pixcolor_s3"}

    def likes(trial):
        return liked.get(trial.image.name) == trial.method_name

    for i in range(10):  # 12 pairs x K=2 = 24 slots, 3 per rater (one per photo)
        run_sitting(rater_client(app, "orc", f"main-{i}"), "orc", chooser(app, likes))
    res = cli.invoke(args=["create-oracle", "--study", "orc"])
    assert res.exit_code == 0, res.output
    with app.app_context():
        db = get_session()
        oracle = {p.image.name: p for p in db.scalars(select(Pair).where(Pair.stage == "oracle"))}
        assert {k: p.source_method for k, p in oracle.items()} == {
            images[0]: "pixcolor_s2", images[1]: "pixcolor_s3", images[2]: "pixcolor_s1"}
        assert {p.method.name for p in oracle.values()} == {"pixcolor_oracle"}
    again = cli.invoke(args=["create-oracle", "--study", "orc"])
    assert again.exit_code != 0 and "already" in again.output
    # New raters rate the oracle samples; the image they see is the chosen seed's file.
    client = rater_client(app, "orc", "oracle-rater")
    nxt = post_json(client, "/api/s/orc/next").get_json()  # practice
    answer(client, nxt, 1)
    seen_oracle = 0
    while not (nxt := post_json(client, "/api/s/orc/next").get_json())["done"]:
        with app.app_context():
            trial = get_session().get(Trial, nxt["trial_id"])
            kind, stage, src, name = trial.kind, trial.stage, trial.source_method, trial.image.name
            slot = 1 if trial.generated_first else 2
        if kind == "oracle":
            seen_oracle += 1
            assert stage == "oracle" and src == oracle[name].source_method
        imgs = client.get(nxt["images_url"])
        n1 = int(imgs.headers["X-Image-Lengths"].split(",")[0])
        if kind == "oracle":  # the served copy holds the chosen seed's pixels (dithered by 1)
            data = (imgs.data[:n1], imgs.data[n1:])[slot - 1]
            shown = np.asarray(PILImage.open(io.BytesIO(data))).astype(int)
            assert np.abs(shown - load_rgb(runs / src / f"{name}.png")).max() <= 1
        post_json(client, nxt["answer_url"], good_answer(1))
    assert seen_oracle == 3
    out = tmp_path / "export"
    assert cli.invoke(args=["export", "--study", "orc", "--out", str(out)]).exit_code == 0
    with open(out / "responses.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "oracle"]
    assert len(rows) == 3
    assert all(r["stage"] == "oracle" and r["method"] == "pixcolor_oracle" for r in rows)
    assert {r["source_method"] for r in rows} == {"pixcolor_s1", "pixcolor_s2", "pixcolor_s3"}
    # Main-stage raters never rate an oracle sample of an image (nor see one twice).
    with app.app_context():
        rows = get_session().execute(select(Trial.rater_id, Trial.image_id, Trial.stage)).all()
        seen = {(r, i) for r, i, _ in rows}
        assert len(seen) == len(rows)


def test_oracle_name():
    assert oracle_method_name(SEEDS) == "pixcolor_oracle"
    assert oracle_method_name(["m_seed1", "m_seed2"]) == "m_oracle"


@pytest.mark.parametrize("database_url", _database_urls())
def test_ties_are_broken_uniformly_inside_sql(tmp_path: Path, database_url):
    """The seeded hash order of the pick statement makes every tied pair equally likely
    (chi-square over 3,000 seeded picks among 16 pairs, on the real database)."""
    from vtt_app.assignment import _PICK, tie_coefficients

    runs = make_runs(tmp_path / "runs", ["cic", "lrac"], n_images=9)
    app = _fresh_app(tmp_path, database_url)
    add_study(app, runs, ["cic", "lrac"], name="ties", images=8, practice=0,
              attention_images=1, attention_rate=0.0, trials_per_rater=4, raters_per_pair=2)
    rater_client(app, "ties", "b0")
    rng = np.random.default_rng(7)
    with app.app_context():
        db = get_session()
        study_id = db.scalar(select(Pair.study_id).limit(1))
        rater_id = db.scalar(select(Rater.id))
        pair_ids = sorted(db.scalars(select(Pair.id)))
        counts = dict.fromkeys(pair_ids, 0)
        for _ in range(3000):
            picked = db.execute(_PICK, {"b_study": study_id, "b_rater": rater_id,
                                        **tie_coefficients(rng)}).first()
            counts[picked.id] += 1
    expected = 3000 / len(pair_ids)
    chi2 = sum((n - expected) ** 2 / expected for n in counts.values())
    assert len(pair_ids) == 16 and chi2 < 37.7, (chi2, counts)  # df 15, p = 0.001


def test_postgresql_commits_wait_for_the_disk_only_when_asked(tmp_path: Path):
    """The app's PostgreSQL sessions run with synchronous_commit off unless
    DB_SYNCHRONOUS_COMMIT (VTT_DB_SYNCHRONOUS_COMMIT=on) asks every commit to wait."""
    url = os.environ.get("VTT_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set VTT_TEST_POSTGRES_URL to run against PostgreSQL")
    from sqlalchemy import text

    for flag, expected in ((False, "off"), (True, "on")):
        app = make_app(tmp_path / f"inst{flag}", database_url=url,
                       DB_SYNCHRONOUS_COMMIT=flag)
        with app.app_context():
            assert get_session().scalar(text("SHOW synchronous_commit")) == expected


def test_postgresql_busy_tables_keep_a_small_statistics_sample(tmp_path: Path):
    """init-db sets the statistics target of every column of the tables that grow with each
    trial (autovacuum's analyses of them stalled 200 raters with the default of 100)."""
    url = os.environ.get("VTT_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set VTT_TEST_POSTGRES_URL to run against PostgreSQL")
    from sqlalchemy import text

    from vtt_app.db import BUSY_TABLES, STATISTICS_TARGET, create_all

    app = make_app(tmp_path / "inst", database_url=url)
    with app.app_context():
        with get_engine().begin() as conn:  # as a database made before the setting
            conn.execute(text("ALTER TABLE trials ALTER COLUMN status SET STATISTICS -1"))
        create_all()  # what init-db runs
        rows = get_session().execute(text(
            "SELECT c.relname, a.attname, a.attstattarget FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname = ANY(:t) "
            "AND a.attnum > 0 AND NOT a.attisdropped"), {"t": list(BUSY_TABLES)}).all()
    assert {r[0] for r in rows} == set(BUSY_TABLES)
    assert all(r[2] == STATISTICS_TARGET for r in rows), [r for r in rows
                                                        if r[2] != STATISTICS_TARGET]
    assert {r[0] for r in rows if r[1] == "status"} >= {"trials", "assignments"}
