// Visual Turing Test trial page (paper Sec. 4): two images, 1 s each, in random order.
//
// Timing: the display's refresh interval is measured from requestAnimationFrame timestamps
// before the first trial. Both images of a trial are fetched (one request) and decoded
// before it starts.
// Presentation runs in rAF callbacks: an image is made visible in one callback (its onset
// is that frame's timestamp) and replaced in the first frame whose timestamp is within half
// a frame of onset + exposure (its offset), counting the frames in between. Tab hides and
// window blurs are recorded with performance.now() and sent with the answer; the server
// decides whether the trial is valid.
(() => {
  "use strict";
  const root = document.getElementById("vtt");
  const nextUrl = root.dataset.nextUrl;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const img = [null, $("img1"), $("img2")];
  const status = $("status"), question = $("question"), feedback = $("feedback"), go = $("go");
  let frameMs = 1000 / 60;
  let trial = null;
  let events = [];
  let recording = false;
  let state = "loading";
  let pending = null; // {onset, offset, frames, shownAt}
  let following = null; // the next trial, as the last answer brought it

  function setState(s) { state = s; document.body.dataset.state = s; }
  function note(kind, slot) {
    if (recording) events.push({ kind, slot: slot || null, t: performance.now() });
  }
  document.addEventListener("visibilitychange", () => note(document.hidden ? "hidden" : "visible"));
  window.addEventListener("blur", () => note("blur"));
  window.addEventListener("focus", () => note("focus"));
  window.addEventListener("resize", () => note("resize"));

  function measureRefresh(n) {
    return new Promise((resolve) => {
      const ts = [];
      function tick(t) {
        ts.push(t);
        if (ts.length < n) { requestAnimationFrame(tick); return; }
        const d = ts.slice(1).map((t, i) => t - ts[i]).sort((a, b) => a - b);
        resolve(d[Math.floor(d.length / 2)]);
      }
      requestAnimationFrame(tick);
    });
  }

  // POST JSON; a busy server (503) or a dropped connection is retried with a growing pause
  // (both calls are safe to repeat: /next returns the open trial, a repeated answer the
  // stored result), so a rater is never stuck on a transient error.
  async function post(url, body) {
    for (let attempt = 0; ; attempt++) {
      let r = null;
      try {
        r = await fetch(url, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify(body || {}),
        });
      } catch (e) { r = null; }
      if ((r === null || r.status === 503) && attempt < 6) {
        status.textContent = "The server is busy; trying again…";
        await new Promise((res) => setTimeout(res, 500 * 2 ** attempt));
        continue;
      }
      if (r === null) return { ok: false, status: 0, data: { error: "no connection" } };
      let data = {};
      try { data = await r.json(); } catch (e) { data = { error: r.statusText }; }
      return { ok: r.ok, status: r.status, data };
    }
  }

  // Both images of a trial come in one response (the server delivers them once): the two
  // PNGs one after the other, their byte lengths in X-Image-Lengths. A busy server (503:
  // nothing was delivered) or a dropped connection is retried as in post().
  async function fetchImages(url) {
    let r = null;
    for (let attempt = 0; ; attempt++) {
      try {
        r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      } catch (e) { r = null; }
      if ((r === null || r.status === 503) && attempt < 6) {
        status.textContent = "The server is busy; trying again…";
        await new Promise((res) => setTimeout(res, 500 * 2 ** attempt));
        continue;
      }
      break;
    }
    if (r === null || !r.ok) throw new Error("images: HTTP " + (r ? r.status : 0));
    const n = (r.headers.get("X-Image-Lengths") || "").split(",").map(Number);
    const buf = await r.arrayBuffer();
    if (n.length !== 2 || n[0] + n[1] !== buf.byteLength) throw new Error("images: bad lengths");
    return [new Blob([buf.slice(0, n[0])], { type: "image/png" }),
            new Blob([buf.slice(n[0])], { type: "image/png" })];
  }

  // Show the photos at their own size, pixel for pixel (a 256-px photo blown up to 512 px
  // looks blurred); only a screen too small for that scales them down.
  function fitStage(w, h) {
    if (!w || !h) return;
    const stage = img[1].parentElement;
    const availW = stage.parentElement.clientWidth, availH = window.innerHeight * 0.7;
    const s = Math.min(1, availW / w, availH / h);
    stage.style.width = Math.floor(w * s) + "px";
    stage.style.height = Math.floor(h * s) + "px";
  }

  async function loadNext() {
    setState("loading");
    question.hidden = true; go.hidden = true;
    status.textContent = "Loading…";
    // The answer brings the next trial; /next is asked only without one (first trial,
    // a 409, a reload).
    const r = following ? { ok: true, data: following } : await post(nextUrl);
    following = null;
    if (!r.ok) { status.textContent = "Error: " + (r.data.error || r.status); setState("error"); return; }
    if (r.data.done) { setState("done"); window.location.assign(r.data.redirect); return; }
    trial = r.data;
    try {
      const blobs = await fetchImages(trial.images_url);
      for (const s of [1, 2]) {
        img[s].style.visibility = "hidden";
        if (img[s].src.startsWith("blob:")) URL.revokeObjectURL(img[s].src);
        img[s].src = URL.createObjectURL(blobs[s - 1]);
      }
      await Promise.all([img[1].decode(), img[2].decode()]);
    } catch (e) {
      status.textContent = "Could not load the images; reload the page."; setState("error"); return;
    }
    fitStage(img[1].naturalWidth, img[1].naturalHeight);
    const k = trial.seq + 1;
    status.textContent = (trial.practice ? "Practice " : "Trial ") +
      (trial.practice ? k + " of " + trial.n_practice : (k - trial.n_practice) + " of " + (trial.total - trial.n_practice)) +
      ". Look at the grey area, then press space or click Start.";
    go.textContent = "Start (space)";
    go.hidden = false;
    setState("ready");
  }

  function present(exposureMs) {
    return new Promise((resolve) => {
      const onset = [0, 0, 0], offset = [0, 0, 0], frames = [0, 0, 0];
      let slot = 0;
      function tick(t) {
        if (slot === 0) {
          img[1].style.visibility = "visible"; onset[1] = t; slot = 1; note("onset", 1);
        } else {
          frames[slot] += 1;
          if (t - onset[slot] + frameMs / 2 >= exposureMs) {
            img[slot].style.visibility = "hidden"; offset[slot] = t; note("offset", slot);
            if (slot === 2) { resolve({ onset, offset, frames }); return; }
            img[2].style.visibility = "visible"; onset[2] = t; slot = 2; note("onset", 2);
          }
        }
        requestAnimationFrame(tick);
      }
      requestAnimationFrame(tick);
    });
  }

  async function start() {
    if (state !== "ready") return;
    if (document.hidden) { status.textContent = "Bring this tab to the front first."; return; }
    go.hidden = true; setState("presenting");
    status.textContent = "";
    events = []; recording = true;
    const shown = await present(trial.exposure_ms);
    pending = { ...shown, shownAt: performance.now() };
    question.hidden = false; setState("question");
  }

  async function choose(choice) {
    if (state !== "question") return;
    const response_ms = performance.now() - pending.offset[2];
    setState("sending"); question.hidden = true; recording = false;
    const body = {
      choice, response_ms,
      onset_1: pending.onset[1], offset_1: pending.offset[1],
      onset_2: pending.onset[2], offset_2: pending.offset[2],
      frames_1: pending.frames[1], frames_2: pending.frames[2],
      refresh_hz: 1000 / frameMs, window_w: window.innerWidth, window_h: window.innerHeight,
      device_pixel_ratio: window.devicePixelRatio || 1,
      events: events.filter((e) => e.kind !== "onset" && e.kind !== "offset").slice(0, 150),
    };
    const r = await post(trial.answer_url, body);
    following = (r.ok && r.data.next) || null;
    if (!r.ok && r.status !== 409) { status.textContent = "Error: " + (r.data.error || r.status); setState("error"); return; }
    if (r.ok && r.data.practice) {
      feedback.hidden = false;
      feedback.className = r.data.correct ? "correct" : "wrong";
      feedback.textContent = (r.data.correct ? "Correct! " : "Not this time. ") +
        "The true colours were in the " + (r.data.true_slot === 1 ? "first" : "second") + " image.";
      go.textContent = "Continue (space)"; go.hidden = false; setState("feedback");
      return;
    }
    await loadNext();
  }

  go.addEventListener("click", () => {
    if (state === "feedback") { feedback.hidden = true; loadNext(); } else { start(); }
  });
  $("choose1").addEventListener("click", () => choose(1));
  $("choose2").addEventListener("click", () => choose(2));
  document.addEventListener("keydown", (e) => {
    if (e.repeat) return;
    if (e.key === "1" || e.key === "ArrowLeft") { e.preventDefault(); choose(1); }
    else if (e.key === "2" || e.key === "ArrowRight") { e.preventDefault(); choose(2); }
    else if (e.key === " " || e.key === "Enter") {
      e.preventDefault();
      if (state === "ready") start();
      else if (state === "feedback") { feedback.hidden = true; loadNext(); }
    }
  });

  (async () => {
    setState("measuring");
    frameMs = await measureRefresh(61);
    root.dataset.refreshHz = (1000 / frameMs).toFixed(2);
    await loadNext();
  })();
})();
