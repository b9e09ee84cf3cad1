"""What a rater's browser receives: nothing tells the real image from the generated one, and
each image of a trial is delivered once."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo
from sqlalchemy import select

from analysis.vtt import read_responses
from pixcolor.io import load_rgb
from tests.vtt_app.helpers import (
    add_study,
    answer,
    good_answer,
    make_app,
    make_runs,
    post_json,
    rater_client,
)
from vtt_app import media
from vtt_app.db import get_session
from vtt_app.export import export_study
from vtt_app.models import Assignment, Response, Study, Trial


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = make_runs(tmp_path / "runs", ["cic", "lrac"], n_images=12)
    # the benchmark's files differ in every way a server could leak: the ground truth is
    # older, carries a text chunk and compresses differently
    for png in (root / "gt").glob("*.png"):
        info = PngInfo()
        info.add_text("Source", f"ImageNet {png.stem}")
        PILImage.open(png).save(png, pnginfo=info, compress_level=9)
        os.utime(png, (1e9, 1e9))
    return root


@pytest.fixture
def app(tmp_path: Path, runs: Path):
    app = make_app(tmp_path / "inst")
    add_study(app, runs, ["cic", "lrac"], images=8, practice=1, attention_images=2,
              attention_rate=0.2, trials_per_rater=5, raters_per_pair=2, attention_min_failures=1)
    return app


def _chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        out.append(data[pos + 4:pos + 8])
        pos += 12 + n
    return out


def test_every_served_copy_weighs_the_same(app):
    """The size of a served copy depends on the image size only."""
    with app.app_context():
        sizes = {Path(p).stat().st_size for p in _all_served(get_session())}
    assert len(sizes) == 1


def _all_served(db) -> list[str]:
    from vtt_app.models import Image, Pair

    paths = [p for (p,) in db.execute(select(Pair.served))]
    for im in db.scalars(select(Image)):
        paths += [im.gt_served] + ([im.attention_file] if im.attention_file else [])
    return paths


def test_each_image_is_delivered_once(app, client):
    nxt = post_json(client, "/api/s/s1/next").get_json()
    assert post_json(client, "/api/s/s1/next").get_json()["trial_id"] == nxt["trial_id"]
    assert client.head(nxt["images_url"]).status_code == 405  # HEAD must not use it up
    assert client.get(nxt["images_url"]).status_code == 200
    again = client.get(nxt["images_url"])
    assert again.status_code == 410 and "delivered already" in again.get_json()["error"]
    assert post_json(client, nxt["answer_url"], good_answer(1)).get_json()["valid"] is True


def test_reload_mid_trial_records_it_interrupted_and_requeues_its_slot(app, client, tmp_path):
    answer(client, post_json(client, "/api/s/s1/next").get_json(), 1)  # practice
    nxt = post_json(client, "/api/s/s1/next").get_json()
    assert client.get(nxt["images_url"]).status_code == 200  # the presentation started...
    new = post_json(client, "/api/s/s1/next").get_json()  # ...and the page was reloaded
    assert new["trial_id"] != nxt["trial_id"] and not new["done"]
    assert client.get(nxt["images_url"]).status_code == 410  # the old trial is gone
    late = post_json(client, nxt["answer_url"], good_answer(1))
    assert late.status_code == 409 and "interrupted" in late.get_json()["error"]
    with app.app_context():
        db = get_session()
        old = db.get(Trial, nxt["trial_id"])
        assert old.status == "interrupted" and "reload" in old.invalid_reason
        assert old.response is None and old.ended_at is not None
        seq = old.seq
        if old.assignment_id is not None:  # a scored trial gives its slot back
            assert db.get(Assignment, old.assignment_id).status == "invalid"
        study = db.scalar(select(Study))
        out = export_study(db, study, tmp_path / "export")[0]
    rows = list(csv.DictReader(out.open()))
    row = next(r for r in rows if r["trial_seq"] == str(seq))
    assert row["valid"] == "0" and "interrupted" in row["invalid_reason"]
    assert row["chose_generated"] == "" and row["response_ms"] == ""
    df = read_responses(out)  # the analysis reads the row as an invalid trial
    assert (df[df["trial_seq"] == seq]["valid"] == 0).all() and len(df) == len(rows)
    # the new trial proceeds normally
    assert answer(client, new, 2).get_json()["valid"] is True


def test_answer_without_the_images_is_invalid(app, client):
    nxt = post_json(client, "/api/s/s1/next").get_json()
    assert post_json(client, nxt["answer_url"], good_answer(1)).get_json()["valid"] is False
    with app.app_context():
        resp = get_session().scalar(select(Response))
        assert "before both images were delivered" in resp.invalid_reason


def test_a_second_tab_cannot_show_the_open_trial_again(tmp_path, runs):
    app = make_app(tmp_path / "inst2")
    add_study(app, runs, ["cic"], images=4, practice=0, attention_images=1, attention_rate=0.0,
              trials_per_rater=2, raters_per_pair=1, name="tabs")
    tab1 = rater_client(app, "tabs", "same-browser")
    nxt = post_json(tab1, "/api/s/tabs/next").get_json()
    assert tab1.get(nxt["images_url"]).status_code == 200
    tab2 = app.test_client()  # the same browser: its cookies
    tab2._cookies = tab1._cookies
    assert tab2.get(nxt["images_url"]).status_code == 410


def _database_urls() -> list:
    pg = os.environ.get("VTT_TEST_POSTGRES_URL")
    return [None, pg or pytest.param("postgres", marks=pytest.mark.skip(
        reason="set VTT_TEST_POSTGRES_URL to run against PostgreSQL"))]


@pytest.mark.parametrize("database_url", _database_urls())
def test_a_changed_served_copy_is_refused_and_not_counted_as_delivered(
        tmp_path: Path, runs: Path, database_url):
    """A served copy that changed after create-study gets a 409 naming what to do, and the
    delivery is given back: once the file is right again, the image is sent (PostgreSQL
    claims in autocommit mode, SQLite in the request's transaction)."""
    if database_url:
        from vtt_app.db import make_engine
        from vtt_app.models import Base

        engine = make_engine(database_url)
        Base.metadata.drop_all(engine)
        engine.dispose()
    app = make_app(tmp_path / "inst", database_url=database_url)
    add_study(app, runs, ["cic", "lrac"], images=8, practice=1, attention_images=2,
              attention_rate=0.2, trials_per_rater=5, raters_per_pair=2, attention_min_failures=1)
    client = rater_client(app, "s1", "b1")
    trial = post_json(client, "/api/s/s1/next").get_json()
    with app.app_context():
        path = Path(get_session().get(Trial, trial["trial_id"]).served_1)
    good = path.read_bytes()
    path.write_bytes(good + b"\0")
    bad = client.get(trial["images_url"])
    assert bad.status_code == 409 and "changed after create-study" in bad.get_json()["error"]
    assert "recreate the study" in bad.get_json()["error"]
    path.write_bytes(good)
    again = client.get(trial["images_url"])
    assert again.status_code == 200
    one = again.data[:int(again.headers["X-Image-Lengths"].split(",")[0])]
    with app.app_context():
        seed = get_session().get(Trial, trial["trial_id"]).dither_seed
    assert one == media.dither(good, seed, 1)
    assert client.get(trial["images_url"]).status_code == 410


def test_the_page_gets_both_images_in_one_response_once(app, runs):
    """``images_url`` delivers both images in presentation order, split by X-Image-Lengths;
    its headers are the same for every trial; it is delivered once, and not after either
    slot was fetched alone (nor a slot after it)."""
    headers, seen = [], 0
    for r in range(4):
        client = rater_client(app, "s1", f"b{r}")
        while not (nxt := post_json(client, "/api/s/s1/next").get_json())["done"]:
            resp = client.get(nxt["images_url"])
            assert resp.status_code == 200 and resp.mimetype == "application/octet-stream"
            n1, n2 = (int(v) for v in resp.headers["X-Image-Lengths"].split(","))
            assert n1 == n2 and n1 + n2 == len(resp.data)
            one, two = resp.data[:n1], resp.data[n1:]
            for data in (one, two):
                assert set(_chunks(data)) == {b"IHDR", b"IDAT", b"IEND"}
            with app.app_context():
                trial = get_session().get(Trial, nxt["trial_id"])
                gt_slot = 2 if trial.generated_first else 1
                # what was sent is the served copies dithered with the trial's recorded seed
                assert (one, two) == tuple(
                    media.dither(Path(p).read_bytes(), trial.dither_seed, slot)
                    for slot, p in ((1, trial.served_1), (2, trial.served_2)))
                name = trial.image.name
            gt = np.asarray(PILImage.open(io.BytesIO((one, two)[gt_slot - 1]))).astype(int)
            truth = load_rgb(runs / "gt" / f"{name}.png").astype(int)
            assert np.abs(gt - truth).max() == 1 and (gt != truth).mean() > 0.5
            headers.append(dict(resp.headers))
            assert client.get(nxt["images_url"]).status_code == 410
            assert post_json(client, nxt["answer_url"], good_answer(gt_slot)).get_json()["valid"]
            seen += 1
    assert seen >= 16 and all(h == headers[0] for h in headers), headers
    assert not {"Last-Modified", "ETag", "Content-Disposition", "Expires"} & set(headers[0])
    assert headers[0]["Cache-Control"] == "no-store, private"
    client = rater_client(app, "s1", "b9")
    nxt = post_json(client, "/api/s/s1/next").get_json()
    other = rater_client(app, "s1", "b10")  # not this rater's trial: 404
    assert other.get(nxt["images_url"]).status_code == 404
    assert "/image/" not in str(app.url_map)  # no route sends one image alone


def test_no_delivered_image_repeats_bytes(tmp_path: Path, runs: Path):
    """Every delivery is unique bytes: raters with several accounts who see the same photo
    (here every rater sees every test photo) never receive the same bytes twice, so "the
    image whose bytes I saw before is the real one" decides nothing."""
    app = make_app(tmp_path / "inst")
    add_study(app, runs, ["cic"], images=4, practice=0, attention_images=1,
              attention_rate=0.0, trials_per_rater=4, raters_per_pair=6)
    seen: dict[str, int] = {}
    for r in range(6):
        client = rater_client(app, "s1", f"acct{r}")
        while not (nxt := post_json(client, "/api/s/s1/next").get_json())["done"]:
            resp = client.get(nxt["images_url"])
            n1 = int(resp.headers["X-Image-Lengths"].split(",")[0])
            for data in (resp.data[:n1], resp.data[n1:]):
                key = hashlib.sha256(data).hexdigest()
                seen[key] = seen.get(key, 0) + 1
            post_json(client, nxt["answer_url"], good_answer(1))
    assert len(seen) == 2 * 6 * 4 and set(seen.values()) == {1}


def test_the_answer_brings_the_next_trial(app, client):
    """An answer returns the rater's next trial (what the page shows next without asking
    /next); /next returns that same trial while it is not shown, and ``done`` at the end."""
    trial = post_json(client, "/api/s/s1/next").get_json()
    n = 0
    while True:
        nxt = answer(client, trial, 1).get_json()["next"]
        n += 1
        if nxt["done"]:
            assert post_json(client, "/api/s/s1/next").get_json() == nxt
            break
        assert post_json(client, "/api/s/s1/next").get_json() == nxt
        assert nxt["trial_id"] != trial["trial_id"] and nxt["seq"] == trial["seq"] + 1
        trial = nxt
    assert n == trial["total"]
