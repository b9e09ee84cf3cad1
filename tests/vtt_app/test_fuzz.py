"""Zero 5xx: a property-based fuzz of every route of the VTT app.

Each example sends one request to every rule of ``app.url_map`` (a new route is fuzzed
without touching this file): odd path parts (ids around 2^31 and 2^63, negative, huge; text
with NUL, non-ASCII, long), query strings (the platforms' id parameters), form and JSON
bodies (any JSON, and a well-formed answer with fields replaced by odd values), headers
(``X-CSRF-Token``, ``Authorization: Bearer``, ``User-Agent``) and ``vtt_bid`` cookies, as
the example's consented rater (with the CSRF token), as a visitor (a CSRF token, no rater
yet) or as an anonymous client. Every response must be under 500, under ``/api/`` a JSON
``{"error": ...}`` when it is a 4xx, and afterwards the rater still gets its next trial and
answers it. On SQLite always; on PostgreSQL (in a schema of its own, dropped afterwards)
when ``VTT_TEST_POSTGRES_URL`` is set. ``VTT_FUZZ_EXAMPLES`` sets the number of examples.
"""

from __future__ import annotations

import json
import os
import re
import reprlib
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from tests.vtt_app.helpers import CSRF, add_study, good_answer, make_runs, post_json, rater_client
from vtt_app import create_app
from vtt_app.db import create_all, make_engine
from vtt_app.ids import MAX_EXTERNAL_ID, clean_external_id, external_key

settings.register_profile(
    "vtt-fuzz-ci",  # sized for CI's 2 cores: well under a minute per database
    max_examples=int(os.environ.get("VTT_FUZZ_EXAMPLES", "200")), deadline=None,
    derandomize=True, database=None, print_blob=False,
    # no shrinking: a failure names its request already, and shrinking batches of requests
    # against a database takes minutes
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.large_base_example])

# the test client warns about the long cookies the fuzz sends on purpose
pytestmark = pytest.mark.filterwarnings("ignore:The 'vtt_bid' cookie is too large")

STUDY = "fuzz"  # the example's rater's study (a plain link)
PLATFORM_STUDIES = {"fuzz-prolific": dict(platform="prolific", completion_code="FUZZ-DONE",
                                          require_external_id=True),
                    "fuzz-mturk": dict(platform="mturk")}
ADMIN = "fuzz-admin-token"
LIVE = "<live>"  # a path part: the real study name, the rater's open trial, a real file
NEW = "<new>"  # a vtt_bid cookie: a fresh well-formed one
JSON_TYPE, FORM_TYPE = "application/json", "application/x-www-form-urlencoded"


def _rules() -> list:
    """Every rule of the app, from an app that never opens its database."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"TESTING": True, "SECRET_KEY": "x", "INSTANCE_PATH": tmp,
                          "DATABASE_URL": "sqlite://"})
    return sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))


RULES = _rules()


@dataclass
class Req:
    """One request of an example; ``rule`` None: the endpoint's first rule."""

    endpoint: str
    method: str = "GET"
    args: dict = field(default_factory=dict)  # path parts by rule argument (or LIVE)
    query: str = ""
    body: bytes | None = None
    content_type: str | None = None
    headers: tuple = ()
    cookie: str | None = None  # vtt_bid (or NEW); None: the client's own
    who: str = "rater"  # "rater", "visitor" (a CSRF token, no rater) or "anonymous"
    rule: str | None = None

    def __repr__(self) -> str:  # short enough to read in a failure
        short = reprlib.Repr()
        short.maxstring = short.maxother = 160
        return f"Req({', '.join(f'{k}={short.repr(v)}' for k, v in vars(self).items())})"

    def _repr_pretty_(self, p: Any, _cycle: bool) -> None:  # how hypothesis prints it
        p.text(repr(self))


@dataclass(frozen=True)
class Deep:
    """A JSON array nested ``n`` deep (written as text: ``json.dumps`` would recurse)."""

    n: int


def _dump(obj: Any) -> str:
    if isinstance(obj, Deep):
        return "[" * obj.n + "0" + "]" * obj.n
    if isinstance(obj, list):
        return "[" + ",".join(_dump(v) for v in obj) + "]"
    if isinstance(obj, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in obj.items()) + "}"
    return json.dumps(obj)


def _json(obj: Any) -> tuple[bytes, str]:
    return _dump(obj).encode(), JSON_TYPE


def _form(**fields: str) -> tuple[bytes, str]:
    return urlencode(fields).encode(), FORM_TYPE


# --- strategies -------------------------------------------------------------------------

SPECIAL = ["", " ", "\x00", "a\x00b", STUDY + "\x00", "é", "ß", "ﬃ", "İ", "\u202e", "\ufeff",
           "\t", "NaN", "-Infinity", "1e999", "null", "%00", "%FF", "../../etc/passwd", "\\",
           "s1", STUDY.upper(), STUDY + "\n", "<script>", "' OR 1=1 --", "https://evil.example",
           "javascript:alert(1)", "https://www.mturk.com", "https://workersandbox.mturk.com",
           "ASSIGNMENT_ID_NOT_AVAILABLE", "/admin\r\nX: 1", "/admin\x00", "/admin/../.."]
LONG = st.builds(lambda c, n: c * n, st.sampled_from(["x", "ß", "ﬃ", "İ", "é", "\x00", "9", "€"]),
                 st.sampled_from([63, 64, 65, 101, 199, 200, 201, 300, 5000]))
ODD_TEXT = st.one_of(st.sampled_from(SPECIAL), LONG,
                     st.text(st.characters(exclude_categories=("Cs",)), max_size=10))
HEADER_TEXT = ODD_TEXT.filter(lambda s: "\r" not in s and "\n" not in s)
BIG_INTS = st.one_of(st.integers(), st.sampled_from(
    [0, -1, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, 10**308,
     10**309, 10**3999, -(10**3999)]))
INT_PARTS = st.one_of(BIG_INTS.map(str), st.sampled_from(["9" * 20, "9" * 5000, "01", "1.0"]))


def _often(common: st.SearchStrategy, *rare: st.SearchStrategy) -> st.SearchStrategy:
    """``common`` 3 times in 4: what gets a request past the checks into the view
    (``one_of`` would drop the repeats)."""
    return st.sampled_from([common] * 3 + [st.one_of(*rare)]).flatmap(lambda s: s)


PATH_PART = _often(st.just(LIVE), st.sampled_from(list(PLATFORM_STUDIES)), INT_PARTS, ODD_TEXT)

SCALARS = st.one_of(st.none(), st.booleans(), BIG_INTS, st.floats(), ODD_TEXT,
                    st.sampled_from([50, 500, 900, 990, 3000]).map(Deep))
JSONISH = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=3)
                       | st.dictionaries(ODD_TEXT, kids, max_size=3), max_leaves=6)
KINDS = ["onset", "offset", "hidden", "visible", "blur", "focus", "resize", "preloaded"]
EVENT = st.fixed_dictionaries({
    "kind": st.sampled_from(KINDS) | JSONISH, "slot": st.sampled_from([None, 1, 2]) | JSONISH,
    "t": st.floats(0, 1e4) | JSONISH})
ANSWER_FIELDS = [*good_answer(1), "extra"]
ANSWER = st.dictionaries(st.sampled_from(ANSWER_FIELDS), JSONISH | st.lists(EVENT, max_size=3),
                         max_size=3).map(lambda over: {**good_answer(1), **over})
FORM = st.dictionaries(
    st.sampled_from(["consent", "external_id", "csrf_token", "token", "force"]) | ODD_TEXT,
    st.sampled_from(["yes", CSRF, ADMIN]) | ODD_TEXT, max_size=3,
).map(lambda d: {"consent": "yes", "csrf_token": CSRF, "token": ADMIN, **d})
RAW = st.tuples(st.sampled_from([
    b"", b"\x00", b"\xff\xfe", b"{" * 5000, b"[" * 5000, b'{"choice": 1e999}', b'{"a":' * 2000,
    b"consent=yes&csrf_token=" + CSRF.encode() + b"&external_id=%FF%FE%ED%A0%80",
    b'{"choice": 1, "response_ms": ' + b"9" * 5000 + b"}", b"x" * 300_000]),
    st.sampled_from([JSON_TYPE, FORM_TYPE, "multipart/form-data", "multipart/form-data; "
                     "boundary=x", "text/plain", "application/json; charset=utf-16"]))
BODY = _often(ANSWER.map(_json) | FORM.map(lambda d: (urlencode(d).encode(), FORM_TYPE)),
              st.none(), JSONISH.map(_json), RAW)

PLATFORM_PARAMS = ["PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "assignmentId",
                   "hitId", "turkSubmitTo", "worker_id", "next", "token", "force"]
QUERY = st.one_of(
    st.lists(st.tuples(st.sampled_from(PLATFORM_PARAMS) | ODD_TEXT, ODD_TEXT),
             max_size=4).map(urlencode),
    st.sampled_from(["x=%FF%FE", "PROLIFIC_PID=%00", "workerId=%ED%A0%80", "next=%0d%0aX:1",
                     "next=/admin%0d%0aX:1", "&&==&", "PROLIFIC_PID=" + "%C3%9F" * 200]))
HEADERS = st.builds(
    lambda csrf, auth, ua: tuple((k, v) for k, v in (("X-CSRF-Token", csrf),
                                 ("Authorization", auth), ("User-Agent", ua)) if v is not None),
    _often(st.just(CSRF), st.none(), HEADER_TEXT),
    _often(st.just("Bearer " + ADMIN), st.none(), HEADER_TEXT.map("Bearer ".__add__),
           HEADER_TEXT),
    st.none() | HEADER_TEXT)
COOKIE = _often(st.none(), st.just(NEW), HEADER_TEXT)
WHO = st.sampled_from(["rater"] * 4 + ["visitor"] * 2 + ["anonymous"])


def _requests(rule) -> st.SearchStrategy[Req]:
    """Requests to ``rule``: mostly its GET or POST, else HEAD, OPTIONS or one it lacks."""
    body = BODY.map(lambda b: b or (None, None))
    methods = sorted(rule.methods - {"HEAD", "OPTIONS"}) or ["GET"]
    return st.builds(
        lambda method, args, query, body, headers, cookie, who: Req(
            rule.endpoint, method, args, query, body[0], body[1], headers, cookie, who,
            rule.rule),
        _often(st.sampled_from(methods), st.sampled_from(["HEAD", "OPTIONS", "DELETE", "PUT"])),
        st.fixed_dictionaries({a: PATH_PART for a in sorted(rule.arguments)}),
        QUERY, body, HEADERS, COOKIE, WHO)


BATCHES = st.tuples(*(_requests(r) for r in RULES)).map(list)  # one request per rule

# --- hand-picked cases (and those the fuzz found), as examples ---------------------------

_CSRF_H = (("X-CSRF-Token", CSRF),)


def _answer(**over: Any) -> Req:
    return Req("api.answer", "POST", {"trial_id": LIVE}, "", *_json({**good_answer(1), **over}),
               headers=_CSRF_H)


def _consent(cookie: str | None = NEW, who: str = "visitor", study: str = LIVE,
             **form: str) -> Req:
    return Req("rater.give_consent", "POST", {"study_name": study}, "",
               *_form(**{"consent": "yes", "csrf_token": CSRF, **form}), cookie=cookie, who=who)


NUL_STUDY = [Req(r.endpoint, m, {"study_name": "fuzz\x00"}, "PROLIFIC_PID=a%00",
                 *_form(consent="yes", csrf_token=CSRF),
                 headers=(*_CSRF_H, ("Authorization", "Bearer " + ADMIN)), rule=r.rule)
             for r in RULES if "study_name" in r.arguments for m in sorted(r.methods)]


def _consent_get(cookie: str | None = NEW, query: str = "", study: str = LIVE) -> Req:
    return Req("rater.consent", "GET", {"study_name": study}, query, cookie=cookie, who="visitor")


_ODD_IDS = "%C3%9F" * 200 + "%00"  # 'ß' x 200 and a NUL: 400 characters once casefolded
PLATFORM_VISITS = [  # a visitor follows each platform's link with odd ids, then consents
    _consent_get(None, f"PROLIFIC_PID={_ODD_IDS}&STUDY_ID={'x' * 300}&SESSION_ID=%00",
                 "fuzz-prolific"), _consent(None, study="fuzz-prolific"),
    _consent_get(None, f"workerId={_ODD_IDS}&assignmentId={'a' * 300}&hitId=%00&turkSubmitTo="
                 "https://www.mturk.com", "fuzz-mturk"), _consent(None, study="fuzz-mturk")]


# --- the app under test -----------------------------------------------------------------


@dataclass
class Fuzz:
    """The app under fuzz, and what was sent to it."""

    app: Any
    n_requests: int = 0
    n_examples: int = 0
    n_bids: int = 0

    def new_bid(self) -> str:
        self.n_bids += 1
        return f"fuzz-{self.n_bids}-{secrets.token_urlsafe(8)}"


def _databases() -> list:
    url = os.environ.get("VTT_TEST_POSTGRES_URL")
    return [pytest.param(None, id="sqlite"), pytest.param(url, id="postgresql", marks=[] if url
            else pytest.mark.skip(reason="set VTT_TEST_POSTGRES_URL to run against PostgreSQL"))]


def _search_path(schema: str):
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        autocommit, dbapi_conn.autocommit = dbapi_conn.autocommit, True
        with dbapi_conn.cursor() as cur:
            cur.execute(f'SET search_path TO "{schema}"')
        dbapi_conn.autocommit = autocommit
    return on_connect


def _app(instance, url: str | None, schema: str):
    """An app on a SQLite file, or on PostgreSQL in ``schema`` (its own tables)."""
    app = create_app({"TESTING": True, "SECRET_KEY": "fuzz-secret", "ADMIN_TOKEN": ADMIN,
                      "INSTANCE_PATH": str(instance), "EXPIRY_INTERVAL_S": 0.0,
                      "DATABASE_URL": url or f"sqlite:///{instance / 'vtt.sqlite'}"})
    if url:
        event.listen(app.extensions["vtt_engine"], "connect", _search_path(schema), insert=True)
    with app.app_context():
        create_all()
    return app


@pytest.fixture(scope="module", params=_databases())
def fuzz(request, tmp_path_factory):
    url, schema = request.param, f"vtt_fuzz_{os.getpid()}_{secrets.token_hex(4)}"
    if url:
        admin = make_engine(url)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    tmp = tmp_path_factory.mktemp("fuzz")
    app = _app(tmp / "inst", url, schema)
    runs = make_runs(tmp / "runs", ["cic", "lrac"], n_images=8)
    for name, platform in {STUDY: {}, **PLATFORM_STUDIES}.items():
        add_study(app, runs, ["cic", "lrac"], name=name, images=6, practice=1,
                  attention_images=2, attention_rate=0.0, trials_per_rater=2,
                  raters_per_pair=100_000, **platform)  # slots never run out
    state, start = Fuzz(app), time.perf_counter()
    yield state
    print(f"\n{'postgresql' if url else 'sqlite'}: {state.n_examples} examples, {state.n_requests} "
          f"requests in {time.perf_counter() - start:.1f} s")
    app.extensions["vtt_engine"].dispose()
    if url:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def _url(req: Req, live: dict[str, str]) -> str:
    rule = req.rule or next(r.rule for r in RULES if r.endpoint == req.endpoint)
    for name, value in req.args.items():
        part = quote(live[name] if value == LIVE else value, safe="")
        rule = re.sub(r"<(?:[^<>:]*:)?" + name + ">", lambda _m, p=part: p, rule)
    return rule + ("?" + req.query if req.query else "")


def _send(fuzz: Fuzz, clients: dict, req: Req, live: dict[str, str]):
    """Send ``req`` as its rater, the example's visitor or a new anonymous client."""
    if req.who == "anonymous" or req.who not in clients:
        clients[req.who] = fuzz.app.test_client()
        if req.who == "visitor":
            with clients["visitor"].session_transaction() as s:
                s["csrf"] = CSRF
    client = clients[req.who]
    if req.cookie is not None:
        client.set_cookie("vtt_bid", fuzz.new_bid() if req.cookie == NEW else req.cookie)
    url = _url(req, live)
    resp = client.open(url, method=req.method, data=req.body, content_type=req.content_type,
                       headers=list(req.headers))
    fuzz.n_requests += 1
    what = f"{req}\n{req.method} {url[:200]} -> {resp.status_code}"
    assert resp.status_code < 500, f"{what}: {resp.get_data(as_text=True)[-2000:]}"
    if url.startswith("/api/") and resp.status_code >= 400 and req.method != "HEAD":
        assert resp.is_json and resp.get_json().get("error"), what


def _still_works(fuzz: Fuzz, rater) -> None:
    """The example's rater gets its next trial, answers every trial left and gets its code."""
    nxt = post_json(rater, f"/api/s/{STUDY}/next")
    assert nxt.status_code == 200, nxt.get_data(as_text=True)
    trial, answered = nxt.get_json(), 0
    while not trial["done"]:
        rater.get(trial["images_url"])  # 410 if the fuzz took them: the answer still counts
        ans = post_json(rater, trial["answer_url"], good_answer(1))
        assert ans.status_code == 200 and "valid" in ans.get_json(), ans.get_data(as_text=True)
        trial, answered = ans.get_json()["next"], answered + 1
        fuzz.n_requests += 2
    assert answered >= 1  # the fuzz answers at most 1 of the rater's 3 trials
    done = rater.get(f"/s/{STUDY}/done")
    assert done.status_code == 200, done.get_data(as_text=True)
    fuzz.n_requests += 2


@settings(settings.get_profile("vtt-fuzz-ci"))
@given(batch=BATCHES)
@example(batch=[Req("api.next_", "POST", {"study_name": LIVE}, headers=(("X-CSRF-Token", "é"),)),
                _consent(who="rater", csrf_token="jeton-ü"),
                Req("admin.index", headers=(("Authorization", "Bearer é€"),)),
                Req("admin.login", "POST", body=_form(csrf_token=CSRF, token="é")[0],
                    content_type=FORM_TYPE)])  # non-ASCII CSRF and admin tokens
@example(batch=[_answer(events=[{"kind": ["onset"], "slot": 1, "t": 1.0}]),
                _answer(events=[{"kind": {"a": 1}, "slot": 1, "t": 1.0}]),
                _answer(events=[{"kind": "blur", "slot": [1], "t": 1.0}]),
                _answer(events=[{"kind": "blur", "slot": {"a": 1}, "t": 1.0}]),
                _answer(response_ms=10**3999), _answer(onset_1=-(10**3999)),
                _answer(events=[Deep(900)]), _answer(choice=Deep(900))])  # unhashable, huge
@example(batch=[Req("api.answer", "POST", {"trial_id": str(2**31)}, headers=_CSRF_H),
                Req("api.answer", "POST", {"trial_id": str(2**63 - 1)}, headers=_CSRF_H),
                Req("api.images", "GET", {"trial_id": str(2**31)}),
                Req("api.images", "GET", {"trial_id": str(2**63 - 1)})])  # past int4
@example(batch=NUL_STUDY)  # NUL in the study name, on every route that has one
@example(batch=PLATFORM_VISITS[:2])
@example(batch=PLATFORM_VISITS[2:])
@example(batch=[Req("admin.login", "POST", {}, "next=/admin%0d%0aX:1",
                    *_form(csrf_token=CSRF, token=ADMIN)),  # found: CR/LF in a redirect
                Req("rater.give_consent", "POST", {"study_name": LIVE}, "",
                    *_form(consent="yes", csrf_token=CSRF), (("User-Agent", "a\x00b"),),
                    NEW, "visitor")])  # found: NUL in the User-Agent of a new rater
@example(batch=[_consent_get("a\x00b"), _consent("a\x00b", who="anonymous"),
                _consent("a\x00b", who="rater")])  # NUL in the browser cookie
@example(batch=[_consent(external_id="ß" * 200), _consent(external_id="ﬃ" * 200),
                _consent(external_id="İ" * 150),
                _consent_get(query="PROLIFIC_PID=" + "%C3%9F" * 200), _consent()])  # casefold
@example(batch=[_consent_get("b" * 65), _consent("b" * 65), _consent("é" * 10),
                _consent("b" * 64, who="rater")])  # a browser cookie too long or odd
def test_no_request_gets_a_5xx_and_the_rater_carries_on(fuzz: Fuzz, batch: list[Req]):
    rater = rater_client(fuzz.app, STUDY, fuzz.new_bid())
    trial = post_json(rater, f"/api/s/{STUDY}/next").get_json()
    live = {"study_name": STUDY, "trial_id": str(trial["trial_id"]), "filename": "vtt.js"}
    fuzz.n_requests += 2
    fuzz.n_examples += 1
    clients = {"rater": rater}
    for req in batch:
        _send(fuzz, clients, req, live)
    _still_works(fuzz, rater)


def test_every_route_is_fuzzed():
    """The batches cover every rule of the app, and the examples every listed case."""
    assert len(RULES) >= 12 and {r.endpoint for r in RULES} >= {
        "api.answer", "api.next_", "rater.give_consent", "admin.export", "static"}
    assert len(NUL_STUDY) >= 10


def test_what_the_listed_cases_get_instead(fuzz: Fuzz):
    """A malformed browser cookie is replaced by a new one; ids that casefolding lengthens
    past the column keep one key per rater; ids past int4 and impossible names are 404s."""
    for bad, replaced in (("x" * 65, True), ("a\x00b", True), ("é", True), ("ok-Cookie_1", False)):
        client = fuzz.app.test_client()
        client.set_cookie("vtt_bid", bad)
        page = client.get(f"/s/{STUDY}/")
        assert page.status_code == 200
        assert ("vtt_bid=" in page.headers.get("Set-Cookie", "")) is replaced, bad
    assert external_key(clean_external_id("ß" * 200)) == external_key("SS" * 200)
    assert len(external_key("ß" * 200)) <= MAX_EXTERNAL_ID
    assert external_key("ß" * 200) != external_key("ß" * 199 + "t")
    client = rater_client(fuzz.app, STUDY, fuzz.new_bid())
    for url in (f"/api/trials/{2**31}/answer", f"/api/s/{STUDY}%00/next"):
        r = post_json(client, url, good_answer(1))
        assert r.status_code == 404 and r.get_json()["error"], url
