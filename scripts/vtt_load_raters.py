"""The simulated raters of ``scripts/vtt_load.py``: each one a browser's HTTP calls over its
own keep-alive connection (consent, trials, both images in one response, answers), and the
latency and error records they share."""

from __future__ import annotations

import argparse
import http.client
import json
import re
import threading
import time
import urllib.parse
from collections import defaultdict

CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


class Stats:
    """Thread-safe latency and error records per endpoint."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.acked: set[int] = set()
        self.when: list[tuple[float, float]] = []  # (time, ms) of every request

    def add(self, name: str, ms: float, error: str | None = None) -> None:
        with self.lock:
            self.ms[name].append(ms)
            self.when.append((time.time(), ms))
            if error:
                self.errors[name].append(error)


class Rater:
    """One simulated rater: its own cookies and one keep-alive connection, as a browser."""

    def __init__(self, base: str, study: str, ident: str, stats: Stats, pace: float):
        self.study, self.id, self.stats, self.pace = study, ident, stats, pace
        parts = urllib.parse.urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self.conn: http.client.HTTPConnection | None = None

    def _send(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
        for attempt in (0, 1):  # a keep-alive connection the server closed: reconnect once
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            for value in r.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            if r.headers.get("Connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
            return r.status, data
        raise AssertionError("unreachable")

    def call(self, name: str, path: str, body: bytes | None = None, json_body: bool = True,
             ok=(200,)) -> tuple[int, bytes]:
        headers = {"X-CSRF-Token": self.csrf,
                   "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = ("application/json" if json_body
                                       else "application/x-www-form-urlencoded")
        t0 = time.perf_counter()
        try:
            status, data = self._send("POST" if body is not None else "GET", path, body, headers)
        except OSError as e:
            self.stats.add(name, (time.perf_counter() - t0) * 1e3, f"{type(e).__name__}: {e}")
            return 0, b""
        ms = (time.perf_counter() - t0) * 1e3
        self.stats.add(name, ms, None if status in ok else f"HTTP {status}: {data[:120]!r}")
        return status, data

    def run(self, deadline: float) -> None:
        status, page = self.call("GET consent", f"/s/{self.study}/?worker_id={self.id}")
        m = CSRF_RE.search(page.decode("utf-8", "replace"))
        if status != 200 or not m:
            return
        self.csrf = m.group(1)
        body = f"consent=yes&csrf_token={self.csrf}".encode()
        if self.call("POST consent", f"/s/{self.study}/consent", body, json_body=False,
                     ok=(302,))[0] != 302:
            return
        following = None
        while time.time() < deadline:
            t_trial = time.time()
            if following is None:  # as the page: /next only when the answer brought none
                status, data = self.call("POST next", f"/api/s/{self.study}/next", b"{}")
                if status != 200:
                    time.sleep(1.0)  # what the page does: the rater reloads after a moment
                    continue
                following = json.loads(data)
            trial, following = following, None
            if trial.get("done"):
                return
            self.call("GET images", trial["images_url"])  # both images, one response
            time.sleep(max(0.0, self.pace - (time.time() - t_trial)))
            status, data = self.call("POST answer", trial["answer_url"],
                                     json.dumps(good_answer(1)).encode())
            if status == 200:
                out = json.loads(data)
                following = out.get("next")
                if not out.get("repeated"):
                    with self.stats.lock:
                        self.stats.acked.add(int(trial["trial_id"]))


def good_answer(choice: int, exposure_ms: float = 1000.0, start: float = 5000.0) -> dict:
    """A well-formed answer as the page sends it: both exposures exactly on time at 60 Hz."""
    frames = round(exposure_ms * 60 / 1000)
    return {"choice": choice, "response_ms": 640.0, "onset_1": start,
            "offset_1": start + exposure_ms, "onset_2": start + exposure_ms,
            "offset_2": start + 2 * exposure_ms, "frames_1": frames, "frames_2": frames,
            "refresh_hz": 60.0, "window_w": 1280, "window_h": 800, "device_pixel_ratio": 1.0,
            "events": []}


def warm_up(base: str, study: str, n: int, stats: Stats, seconds: float = 3.0) -> None:
    """``n`` raters (each on its own connection, so spread over the workers) take trials at
    full speed for ``seconds``: worker start-up and the first compiling of templates and
    statements are not measured. Their answers join the integrity check."""
    warm = Stats()
    raters = [Rater(base, study, f"warm-{i}", warm, 0.0) for i in range(n)]
    threads = [threading.Thread(target=r.run, args=(time.time() + seconds,), daemon=True)
               for r in raters]
    [t.start() for t in threads]
    [t.join(timeout=seconds + 60) for t in threads]
    stats.acked |= warm.acked
    for v in warm.errors.values():
        stats.errors["warm-up"].extend(v)  # fail the run too
    n_err = len(stats.errors["warm-up"])
    print(f"warm-up: {n} raters, {len(warm.acked)} answers, {n_err} errors (not in the table)")


def run_raters(base: str, study: str, args: argparse.Namespace, stats: Stats) -> None:
    """``args.raters`` raters started over ``args.ramp`` seconds, run to the deadline."""
    t0 = time.time()
    deadline = t0 + args.duration
    threads = []
    for i in range(args.raters):
        r = Rater(base, study, f"load-{i}", stats, args.pace)
        t = threading.Thread(target=r.run, args=(deadline,), daemon=True)
        threads.append(t)
        time.sleep(max(0.0, t0 + args.ramp * i / max(1, args.raters) - time.time()))
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.time()) + 65)
