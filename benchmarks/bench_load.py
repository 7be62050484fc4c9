"""A load test: ``USERS`` simulated users × ``INTERACTIONS`` interactions each, at once,
across the dashboard's tabs and the zoo's models.

Recorded, then replayed, as load tools do: one headless Chromium session (Debian's, as
the browser tests use) walks a script of interactions (for each of four models: pick it,
then open the Samples, Activations, Saliency, LRP, Sensitivity and Latent space tabs,
stepping to the next sample in each: 52 interactions) while every callback request the
page sends is recorded, grouped by interaction. The Evaluation and Compare tabs are left
out: their first look scores every method (seconds of both cores by design), which would
measure the machine, not the server. Then ``USERS`` threads replay them against a
fresh server at once, each user on samples of its own (the recorded sample indices
shifted), each interaction's requests in the order the page sent them. Two rounds: the
second repeats the first, so the server's memory must stay flat once its caches are warm.

Reported: failed requests (HTTP status ≥ 400 or no answer; target 0), the p95 of an
interaction's time (all its requests; target ≤ 1 s), and the server's RSS after each
round (target ≤ 1.5 GB, the second within 10% of the first).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from .bench_dashboard import _serve, _tab
from .bench_faces import _chromium
from .harness import Result

USERS = 8
INTERACTIONS = 50
RSS_TARGET_MB = 1536.0
P95_TARGET_S = 1.0
SHIFT = 37  # each user's samples: the recorded ones shifted by user × SHIFT
LABELLED: list[tuple[str, float]] = []  # (interaction, seconds) of the last replay
# every request answered with its result, never "computing" (dashboard.later): a replay does not poll, and an
# interaction's time is until its figures, as a user waits for them (the background path itself is tested in
# tests/dashboard/test_later.py and test_background_browser.py)
ANSWERED = {"INTERP_INLINE_S": "120"}


def _settle(page, counter: list[int], quiet_ms: int = 600) -> None:
    """Wait until no callback has been in flight for ``quiet_ms`` (background polls included)."""
    last = time.time()
    while True:
        page.wait_for_timeout(50)
        if counter[0] > 0:
            last = time.time()
        elif (time.time() - last) * 1000 > quiet_ms:
            return


def _script(page):
    """The recorded session: (label, action) pairs."""
    def pick(name):
        def act():
            _tab(page, "Overview")
            page.click("#model-picker")
            page.locator(f'[role="option"]:has(input[value="{name}"])').click()
        return act

    steps = []
    for name in MODELS:
        steps.append((f"pick {name}", pick(name)))
        for tab in ("Samples", "Activations", "Saliency", "LRP", "Sensitivity", "Latent space"):
            steps.append((f"{name}: {tab}", lambda t=tab: _tab(page, t)))
            steps.append((f"{name}: {tab}, next sample", lambda: page.click("#sample-next")))
    return steps


def record(url: str) -> list[tuple[str, list[str]]]:
    """The interactions of :func:`_script` in Chromium, each with the bodies of the callback
    requests it made, in order."""
    from playwright.sync_api import sync_playwright

    interactions: list[tuple[str, list[str]]] = []
    inflight = [0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        current: list[str] = []

        def on_request(r):
            if "_dash-update-component" in r.url:
                inflight[0] += 1
                current.append(r.post_data)

        def on_done(r):
            if "_dash-update-component" in r.url:
                inflight[0] -= 1

        page.on("request", on_request)
        page.on("requestfinished", on_done)
        page.on("requestfailed", on_done)
        page.goto(url, timeout=60_000)
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=120_000)
        _settle(page, inflight, 1500)
        current.clear()
        for label, act in _script(page):
            act()
            _settle(page, inflight, 1500)
            interactions.append((label, list(current)))
            current.clear()
        browser.close()
    return [(label, bodies) for label, bodies in interactions if bodies]


MODELS = ("cnn-digits", "mlp-cancer", "vae-digits", "transformer-sentiment")


def _sizes() -> dict[str, int]:
    import zoo
    from interp.study import overview

    return {name: overview.sample_count(zoo.subject(name)) for name in MODELS}


def _shifted(body: str, user: int, sizes: dict[str, int]) -> str:
    """``body`` with the sample it names moved to the user's own (within the model's test set),
    and the page's name the user's (one user's requests supersede only its own, dashboard.later)."""
    data = json.loads(body)
    items = [i for group in data.get("inputs", []) + data.get("state", [])  # ALL-pattern inputs come as lists
             for i in (group if isinstance(group, list) else [group])]
    for item in items:
        if item.get("id") == "page-id":
            item["value"] = f"load-user-{user}"
    if user == 0:
        return json.dumps(data)
    model = next((i.get("value") for i in items if i.get("id") == "model-picker"), None)
    for item in items:
        value = item.get("value")
        if item.get("id") == "current-sample" and isinstance(value, dict):
            n = sizes.get(value.get("model"), 1)
            value["index"] = (int(value.get("index", 0)) + user * SHIFT) % n
        elif item.get("id") == "sample-index" and isinstance(value, int):
            item["value"] = (value + user * SHIFT) % sizes.get(model, 1)
    return json.dumps(data)


def _post(url: str, body: str) -> tuple[bool, float]:
    start = time.perf_counter()
    request = urllib.request.Request(url + "_dash-update-component", data=body.encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            r.read()
            ok = r.status < 400
    except (urllib.error.URLError, OSError):
        ok = False
    return ok, time.perf_counter() - start


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def replay(url: str, interactions, sizes: dict[str, int], users: int = USERS,
           count: int = INTERACTIONS) -> tuple[list[float], int, int]:
    """Every user's ``count`` interactions at once; (interaction seconds, requests, failures)."""
    times: list[float] = []
    failures, requests = [0], [0]
    lock = threading.Lock()
    LABELLED.clear()

    def user(u: int) -> None:
        for k in range(count):
            label, bodies = interactions[(k + u * 5) % len(interactions)]  # users at different places in the script
            start = time.perf_counter()
            for body in bodies:
                ok, _ = _post(url, _shifted(body, u, sizes))
                with lock:
                    requests[0] += 1
                    failures[0] += not ok
            with lock:
                times.append(time.perf_counter() - start)
                LABELLED.append((label, times[-1]))

    threads = [threading.Thread(target=user, args=(u,)) for u in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times, requests[0], failures[0]


def _answering(proc, url: str, timeout: float = 120) -> None:
    """Wait until the server at ``url`` answers (RuntimeError if it dies or takes too long)."""
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the dashboard did not start") from None
            time.sleep(0.2)


def run() -> list[Result]:
    if _chromium() is None:
        print("bench_load: no chromium (tools/ensure-chromium installs it); not measured", file=sys.stderr)
        return []
    with tempfile.TemporaryDirectory() as tmp:
        recorder, record_url = _serve(Path(tmp) / "record", ANSWERED)
        try:
            _answering(recorder, record_url)
            interactions = record(record_url)
            sizes = _sizes()
        finally:
            recorder.terminate()
            recorder.wait(10)
        proc, url = _serve(Path(tmp) / "load", ANSWERED)  # a fresh server and store: the users' load is cold
        try:
            _answering(proc, url)
            start_mb = _rss_mb(proc.pid)
            rounds = []
            for _ in range(2):
                t0 = time.perf_counter()
                times, requests, failures = replay(url, interactions, sizes)
                by_label: dict[str, list[float]] = {}
                for label, seconds in LABELLED:
                    by_label.setdefault(label, []).append(seconds)
                slowest = sorted(((statistics.median(v), k) for k, v in by_label.items()), reverse=True)[:6]
                rounds.append({"times": times, "requests": requests, "failures": failures,
                               "wall_s": time.perf_counter() - t0, "rss_mb": _rss_mb(proc.pid),
                               "slowest": [f"{k}: {v:.2f} s" for v, k in slowest]})
        finally:
            proc.terminate()
            proc.wait(10)
    out = []
    for i, r in enumerate(rounds, 1):
        p95 = statistics.quantiles(r["times"], n=20)[-1]
        detail = {"p50_s": statistics.median(r["times"]), "p95_s": p95, "requests": r["requests"],
                  "failures": r["failures"], "wall_s": r["wall_s"], "rss_mb": r["rss_mb"], "start_rss_mb": start_mb,
                  "interactions_recorded": len(interactions), "slowest_median": r["slowest"]}
        what = "cold store" if i == 1 else "again, warm"
        out.append(Result(f"load, {USERS} users x {INTERACTIONS} interactions, round {i} ({what}): failed requests "
                          f"of {r['requests']}", r["failures"], 0, "absolute (count)", unit="n", detail=detail))
        out.append(Result(f"load round {i}: interaction p95 (p50 {detail['p50_s']:.2f} s, wall {r['wall_s']:.0f} s)",
                          p95, P95_TARGET_S, "absolute (s, all requests of one interaction)", unit="s",
                          detail=detail))
        out.append(Result(f"load round {i}: server RSS after the round (at start {start_mb:.0f} MB)", r["rss_mb"],
                          RSS_TARGET_MB, "absolute (MB)", unit="MB", detail=detail))
    growth = rounds[1]["rss_mb"] / rounds[0]["rss_mb"]
    out.append(Result("load: server RSS after round 2 / after round 1 (flat once warm)", growth, 1.10,
                      "ratio", detail={"round1_mb": rounds[0]["rss_mb"], "round2_mb": rounds[1]["rss_mb"]}))
    return out
