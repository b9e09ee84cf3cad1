"""A cheater with everything the client holds stays at chance.

The cheater plays many accounts through the app's own calls and keeps everything it sees:
the session cookie (signed, not encrypted: it reads the rater token and CSRF token out of
it), the study's seed (public: it is in the docs' commands), every JSON response, every
image byte, and the practice feedback (which says where the true colours were). From these
it tries the attacks an audit made work before the plan secret and the per-delivery dither:

* reproduce the presentation order from the token and the study seed (the old derivation);
* "the image whose bytes I saw before is the real one", across accounts;
* simple statistics of what it receives besides the pictures (ids, sequence numbers,
  checksums).

Each guess must be right about half the time over hundreds of trials. The truth comes from
the database, only to score the guesses.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.vtt_app.helpers import (
    add_study,
    good_answer,
    make_app,
    make_runs,
    post_json,
    rater_client,
)
from vtt_app.db import get_session
from vtt_app.models import Trial

N_ACCOUNTS = 16


def cookie_payload(client) -> dict:
    """What any client can read from Flask's session cookie without the secret key."""
    value = client.get_cookie("session").value
    data = value.split(".")[1] if value.startswith(".") else value.split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return json.loads(zlib.decompress(raw) if value.startswith(".") else raw)


def old_generated_first(study_seed: int, token: str, seq: int) -> bool:
    """The order as it was derived before the plan secret: from the study seed and the
    rater token (which the cookie carries)."""
    digest = int(hashlib.sha256(token.encode()).hexdigest()[:12], 16)
    return bool(np.random.default_rng([study_seed, digest, 100 + seq]).integers(2))


@pytest.fixture
def played(tmp_path: Path, seeded_tokens) -> dict[str, list]:
    """Guesses of each attack and the truth over every trial of ``N_ACCOUNTS`` accounts."""
    runs = make_runs(tmp_path / "runs", ["cic", "lrac"], n_images=30, size=16)
    app = make_app(tmp_path / "inst")
    add_study(app, runs, ["cic", "lrac"], name="cheat", images=20, practice=2,
              attention_images=4, attention_rate=0.1, trials_per_rater=20,
              raters_per_pair=N_ACCOUNTS, seed=0)
    seen_bytes: set[str] = set()
    guesses: dict[str, list] = {"truth": [], "order": [], "bytes": [], "bytes_decided": [],
                                "id_parity": [], "seq_parity": [], "checksum": []}
    for account in range(N_ACCOUNTS):
        client = rater_client(app, "cheat", f"acct{account}")
        token = cookie_payload(client)["raters"]["cheat"]
        nxt = post_json(client, "/api/s/cheat/next").get_json()
        while not nxt["done"]:
            resp = client.get(nxt["images_url"])
            n1 = int(resp.headers["X-Image-Lengths"].split(",")[0])
            images = (resp.data[:n1], resp.data[n1:])
            digests = [hashlib.sha256(d).hexdigest() for d in images]
            with app.app_context():
                trial = get_session().get(Trial, nxt["trial_id"])
                true_slot = 2 if trial.generated_first else 1
            # each attack names the slot it believes holds the true colours
            guesses["truth"].append(true_slot)
            guesses["order"].append(2 if old_generated_first(0, token, nxt["seq"]) else 1)
            known = [d in seen_bytes for d in digests]
            guesses["bytes_decided"].append(known[0] != known[1])
            guesses["bytes"].append(1 if known[0] and not known[1] else
                                    2 if known[1] and not known[0] else 1 + nxt["seq"] % 2)
            guesses["id_parity"].append(1 + nxt["trial_id"] % 2)
            guesses["seq_parity"].append(1 + nxt["seq"] % 2)
            # a file-level statistic (not the picture: the generated images here are
            # brighter, which raters may see): the IDAT checksum bytes before IEND
            guesses["checksum"].append(1 if images[0][-16:-12] >= images[1][-16:-12] else 2)
            seen_bytes.update(digests)
            # the cheater answers with its order guess and learns from practice feedback
            out = post_json(client, nxt["answer_url"], good_answer(guesses["order"][-1]))
            nxt = out.get_json()["next"]
    return guesses


def test_nothing_the_client_holds_predicts_the_true_image(played):
    truth = np.array(played["truth"])
    assert len(truth) >= 300, len(truth)
    for attack in ("order", "bytes", "id_parity", "seq_parity", "checksum"):
        hits = float(np.mean(np.array(played[attack]) == truth))
        # binomial sd at 300+ trials is <= 0.029: 0.40..0.60 is more than 3 sd from 0.5
        assert 0.40 <= hits <= 0.60, (attack, hits, len(truth))
    # no delivered image ever repeated bytes, so byte matching never decided a trial
    assert not any(played["bytes_decided"])
