"""Hostile feeds over real HTTP: each is recorded on its feed (status, error), none crashes
or stalls the monitor, and the healthy feed in the same run still alerts.

The corpus files in tests/data/hostile/ are a subset of feedparser's own test corpus
(ill-formed, encoding and entity cases; BSD licence in LICENSE.feedparser there).
"""

from __future__ import annotations

import gzip
import itertools
import random
import socket
import struct
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from faultkit import WORDS, Kit, headline, webhook
from feedserver import FeedServer, rss
from receivers import TEST_SECRET, WebhookReceiver

HOSTILE = Path(__file__).parent / "data" / "hostile"
CORPUS = sorted(p for p in HOSTILE.rglob("*.xml"))
LIMITS = 'max_body_size = "4MiB"\nfetch_timeout = "2s"\nfeed_down_after = 100'


def _trickle(server: FeedServer):
    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "application/rss+xml")
        request.send_header("Content-Length", "1000")
        request.end_headers()
        for byte in rss([]):
            request.wfile.write(bytes([byte]))
            request.wfile.flush()
            if server.closing.wait(1.0):
                return
    return handler


def _never_answer(server: FeedServer):
    def handler(request: BaseHTTPRequestHandler) -> None:
        server.closing.wait(60)
    return handler


def _reset_mid_body(request: BaseHTTPRequestHandler) -> None:
    body = rss([headline(random.Random(3), 900 + n) for n in range(50)])
    request.send_response(200)
    request.send_header("Content-Type", "application/rss+xml")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body[:len(body) // 3])
    request.wfile.flush()
    request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.rfile.close()  # the makefile() reference would keep the socket open
    request.connection.close()  # RST


def _endless(server: FeedServer):
    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "application/rss+xml")
        request.send_header("Connection", "close")
        request.end_headers()
        request.wfile.write(b'<?xml version="1.0"?><rss><channel><title>')
        chunk = b"A" * 65536
        for _ in range(50 * 16):  # 50 MB, no Content-Length
            if server.closing.is_set():
                return
            request.wfile.write(chunk)
    return handler


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>laughs</title>
<item><title>Truce talks in Cairo &lol9;</title><link>https://news.example/lol</link>
<guid>lol-1</guid></item></channel></rss>"""


def _relevant(n: int, **changes) -> dict:
    item = headline(random.Random(1000 + n), 1000 + n)
    item.update(changes)
    return item


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """One `monitor run --once` over a healthy feed, the corpus and every generated case."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    with FeedServer() as server, WebhookReceiver() as hook:
        feeds: dict[str, str] = {}

        def add(name: str, path: str) -> None:
            feeds[name] = path

        server.set_feed("/healthy.xml", rss([_relevant(1), _relevant(2)]))
        add("healthy", "/healthy.xml")
        for n, path in enumerate(CORPUS):
            route = f"/corpus/{n}.xml"
            server.set_response(route, 200, path.read_bytes(),
                                headers={"Content-Type": "application/xml"})
            add(f"corpus {path.relative_to(HOSTILE)}", route)
        server.set_response("/huge.xml", 200, b"<rss>" + b"A" * (50 * 1024 * 1024),
                            headers={"Content-Type": "application/rss+xml"})
        add("50 MB body", "/huge.xml")
        server.set_handler("/endless.xml", _endless(server))
        add("50 MB without length", "/endless.xml")
        bomb = gzip.compress(b"<rss>" + b"\0" * (200 * 1024 * 1024), compresslevel=9)
        server.set_response("/bomb.xml", 200, bomb, headers={
            "Content-Type": "application/rss+xml", "Content-Encoding": "gzip"})
        add("gzip bomb", "/bomb.xml")
        server.set_handler("/trickle.xml", _trickle(server))
        add("trickle", "/trickle.xml")
        server.set_handler("/silent.xml", _never_answer(server))
        add("never answers", "/silent.xml")
        server.set_redirect("/loop1.xml", "/loop2.xml")
        server.set_redirect("/loop2.xml", "/loop1.xml")
        add("redirect loop", "/loop1.xml")
        server.set_handler("/reset.xml", _reset_mid_body)
        add("reset mid-body", "/reset.xml")
        server.set_response("/page.xml", 200, b"<!doctype html><html><head><title>Home</title>"
                            b"</head><body><p>Welcome to our site</p></body></html>",
                            headers={"Content-Type": "text/html; charset=utf-8"})
        add("HTML page", "/page.xml")
        bad_utf8 = rss([_relevant(3)]).replace(b"Truce talks", b"Truce \xff\xfe talks \xc3")
        server.set_response("/bad-utf8.xml", 200, bad_utf8,
                            headers={"Content-Type": "application/rss+xml; charset=utf-8"})
        add("invalid UTF-8", "/bad-utf8.xml")
        latin = rss([_relevant(4, title="Truce talks in Cairo: café délégation " + "n4")])
        latin = latin.decode("utf-8").encode("latin-1")  # declared UTF-8, sent as Latin-1
        server.set_response("/latin.xml", 200, latin,
                            headers={"Content-Type": "application/rss+xml; charset=utf-8"})
        add("wrong charset", "/latin.xml")
        server.set_response("/laughs.xml", 200, BILLION_LAUGHS,
                            headers={"Content-Type": "application/rss+xml"})
        add("billion laughs", "/laughs.xml")
        words = random.Random(5)
        many = [{"title": " ".join(words.sample(WORDS, 8)) + f" {n}",
                 "link": f"https://many.example/{n}", "guid": f"many-{n}",
                 "published": datetime.now(UTC) - timedelta(minutes=n)} for n in range(10_000)]
        server.set_feed("/many.xml", rss(many))
        add("10,000 items", "/many.xml")
        server.set_feed("/big-title.xml", rss([_relevant(5, title="Truce talks in Cairo "
                                                         + "word " * 200_000)]))
        add("1 MB title", "/big-title.xml")
        server.set_feed("/links.xml", rss([
            _relevant(6, link="javascript:alert(document.cookie)"),
            _relevant(7, link="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="),
            _relevant(8, link=" JaVaScRiPt:alert(1)")]))
        add("javascript and data links", "/links.xml")

        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[(name, server.url(path)) for name, path in feeds.items()],
                  channels=webhook(hook.url), settings=LIMITS)
        started = time.monotonic()
        result = kit.run_once(timeout=120)
        elapsed = time.monotonic() - started
        states = {f["name"]: f for f in kit.json("feeds")}
        received = list(hook.received)
    yield {"result": result, "elapsed": elapsed, "states": states, "received": received,
           "kit": kit, "feeds": feeds}


GENERATED = {
    "50 MB body": "fetch.too_large",
    "50 MB without length": "fetch.too_large",
    "gzip bomb": "fetch.too_large",
    "trickle": "fetch.timeout",
    "never answers": "fetch.timeout",
    "redirect loop": "fetch.redirects",
    "reset mid-body": "fetch.connect",
    "HTML page": "parse.error",
}


# Feeds that are hostile in their content only: each must be read and used, not failed.
USABLE = ("healthy", "invalid UTF-8", "wrong charset", "billion laughs", "10,000 items", "1 MB title",
          "javascript and data links")


def test_run_finishes_without_crash_or_stall(hostile_run):
    result = hostile_run["result"]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    # The two slow servers are cut at fetch_timeout (2 s); everything else is quick.
    assert hostile_run["elapsed"] < 60, hostile_run["elapsed"]
    states = hostile_run["states"]
    assert set(states) == set(hostile_run["feeds"])
    for name, state in states.items():
        assert state["last_fetch"], name  # every feed was tried and its outcome recorded
        if name in USABLE:
            assert (state["health"], state["last_error"]) == ("ok", None), (name, state)
        elif name in GENERATED:
            assert state["health"] == "failing", (name, state)
        # a failure is one of the fetch or parse errors, never a crash of ours (internal.error)
        if state["health"] != "ok":
            assert state["consecutive_errors"] == 1 and state["last_error"], (name, state)
            assert state["last_error_code"].startswith(("fetch.", "parse.")), (name, state)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_hostile_feed_is_recorded_with_its_error(hostile_run, name):
    state = hostile_run["states"][name]
    assert state["health"] == "failing"
    assert state["last_error_code"] == GENERATED[name], state
    assert state["consecutive_errors"] == 1
    assert f"{name}:" in hostile_run["result"].stderr


def test_healthy_feed_still_alerts(hostile_run):
    titles = {r["json"]["data"]["item"]["title"] for r in hostile_run["received"]}
    assert {_relevant(1)["title"], _relevant(2)["title"]} <= titles
    assert all(r["verified"] for r in hostile_run["received"])


def test_corpus_files_each_recorded(hostile_run):
    corpus = {n: s for n, s in hostile_run["states"].items() if n.startswith("corpus ")}
    assert len(corpus) == len(CORPUS) >= 40
    ok = [n for n, s in corpus.items() if s["health"] == "ok"]
    failing = {n: s["last_error_code"] for n, s in corpus.items() if s["health"] != "ok"}
    assert ok  # ill-formed feeds that still have entries are used, and the log says so
    assert "ill-formed feed used anyway (malformed XML: " in hostile_run["result"].stderr
    assert set(failing.values()) <= {"parse.error"}, failing
    print(f"\nfeedparser corpus over HTTP: {len(ok)} used, {len(failing)} recorded as parse errors")


def test_encoding_trouble_is_decoded_and_still_alerts(hostile_run):
    states = hostile_run["states"]
    for name in ("invalid UTF-8", "wrong charset"):
        assert states[name]["health"] == "ok", states[name]
    titles = [r["json"]["data"]["item"]["title"] for r in hostile_run["received"]]
    assert any(t.startswith("Truce") and "Cairo" in t and "n4" in t for t in titles)


def test_billion_laughs_is_not_expanded(hostile_run):
    """The nested entity declarations are dropped before parsing: the feed is used, and its
    item keeps the reference as literal text (27 characters, not 3 GB of "lol")."""
    state = hostile_run["states"]["billion laughs"]
    assert state["health"] == "ok" and state["items_seen"] == 1, state
    rows = hostile_run["kit"].rows("SELECT title FROM items WHERE url = 'https://news.example/lol'")
    assert [r["title"] for r in rows] == ["Truce talks in Cairo &lol9;"]
    matched = hostile_run["kit"].rows(
        "SELECT m.storyline_id FROM matches m JOIN items i ON i.id = m.item_id "
        "WHERE i.url = 'https://news.example/lol' ORDER BY m.storyline_id")
    assert [r["storyline_id"] for r in matched] == ["cairo", "truce-talks"]  # and it was matched


def test_ten_thousand_items_are_all_stored(hostile_run):
    state = hostile_run["states"]["10,000 items"]
    assert state["health"] == "ok" and state["items_seen"] == 10_000


def test_huge_title_is_bounded_in_alerts(hostile_run):
    big = [r for r in hostile_run["received"]
           if r["json"]["data"]["item"]["title"].startswith("Truce talks in Cairo word")]
    assert big, "the 1 MB title still matches and alerts"
    assert all(len(r["body"]) < 64 * 1024 for r in big), max(len(r["body"]) for r in big)


def test_javascript_and_data_links_are_never_alerted_as_links(hostile_run):
    received = [r for r in hostile_run["received"]
                if r["json"]["data"]["item"]["feed_url"].endswith("/links.xml")]
    assert len(received) == 3  # three items, one alert each naming both storylines
    for r in received:
        link = r["json"]["data"]["item"]["link"]
        assert link is None or link.startswith(("http://", "https://")), link
        assert b"javascript:" not in r["body"].lower() and b"data:text" not in r["body"]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/feed.xml",
                                 "gopher://example.org/feed", "/etc/passwd"])
def test_non_http_feed_url_is_refused_at_config_load(tmp_path, url):
    kit = Kit(tmp_path)
    kit.write(feeds=[("local", url)])
    result = kit.cli("run", "--once", timeout=30)
    assert result.returncode == 2
    assert "feeds[0].url" in result.stderr and "http" in result.stderr
    assert "Traceback" not in result.stderr
    assert not kit.db.exists()


def test_failing_feed_backs_off_honours_retry_after_and_alerts_down_once_then_recovered(tmp_path):
    """Real HTTP failures, a simulated clock stepped a second at a time as the daemon looks:
    backoff grows exponentially with jitter up to the cap, Retry-After is honoured, one
    "feed down" after feed_down_after failures and one "feed recovered" when it heals."""
    from monitor.config import load_config
    from monitor.pipeline import Monitor
    from monitor.store import SQLiteStore

    with FeedServer() as server, WebhookReceiver() as hook:
        server.set_response("/flaky.xml", 500, b"oops")
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("flaky", server.url("/flaky.xml"))], channels=webhook(hook.url),
                  interval="30s", settings='feed_down_after = 3\nbackoff_max = "10m"')
        config = load_config(kit.config, environ=kit.env)
        start = datetime.now(UTC)
        now = [start]
        polls: list[float] = []
        with SQLiteStore(kit.db) as store:
            monitor = Monitor(config, store, clock=lambda: now[0], rng=random.Random(4))

            def run_for(seconds: float) -> None:
                end = now[0] + timedelta(seconds=seconds)
                while now[0] < end:
                    before = server.hits["/flaky.xml"]
                    monitor.poll_all(only_due=True)
                    if server.hits["/flaky.xml"] > before:
                        polls.append((now[0] - start).total_seconds())
                    monitor.dispatch_all()
                    state = store.feed_state(config.feeds[0].url)
                    step = timedelta(seconds=30)  # the feed's interval: the scheduler's ticks
                    if state.consecutive_errors and state.next_poll_at:
                        step = max(timedelta(seconds=1), min(step, state.next_poll_at - now[0]))
                    now[0] += step
            try:
                server.set_response("/flaky.xml", 503, b"busy", headers={"Retry-After": "300"})
                run_for(1800)  # half an hour of 503 + Retry-After
                retry_after_gaps = [b - a for a, b in itertools.pairwise(polls)]
                server.set_feed("/flaky.xml", rss([headline(random.Random(9), 1)]))
                run_for(120)  # healed
                assert store.feed_state(config.feeds[0].url).consecutive_errors == 0
                server.set_response("/flaky.xml", 500, b"oops")
                mark = len(polls)
                run_for(3600)  # an hour of HTTP 500
                failures = len(polls) - mark
                gaps = [b - a for a, b in itertools.pairwise(polls[mark:])]
                server.set_feed("/flaky.xml", rss([headline(random.Random(9), 1),
                                                   headline(random.Random(9), 2)]))
                run_for(1200)
            finally:
                monitor.close()
            state = store.feed_state(config.feeds[0].url)
    assert state.consecutive_errors == 0 and state.last_status in (200, 304)  # healed by itself
    assert all(g >= 300 - 1 for g in retry_after_gaps), retry_after_gaps  # Retry-After honoured
    assert min(gaps) >= 30 - 1 and max(gaps) >= 8 * gaps[0], gaps  # never faster than the interval; grows
    assert max(gaps) <= 600 + 1  # capped at backoff_max
    assert len(set(round(g) for g in gaps)) >= len(gaps) - 1  # jittered
    assert failures <= 3600 / 100, polls  # far fewer than the 120 polls of a healthy feed
    kinds = [r["json"]["type"] for r in hook.received if r["json"]["type"] != "storyline.match"]
    # One "down" per outage (after 3 failures), one "recovered" per healing: never one per failure.
    assert kinds == ["feed.down", "feed.recovered", "feed.down", "feed.recovered"], kinds
    assert len(retry_after_gaps) >= 3 and failures >= 3
    print(f"\nfeed failing for 1 h (HTTP 500, interval 30 s, cap 10 m): {failures} polls, gaps "
          f"{', '.join(f'{g:.0f}' for g in gaps)} s; under 503 + Retry-After 300: gaps "
          f"{', '.join(f'{g:.0f}' for g in retry_after_gaps)} s; alerts {kinds}")


# --------------------------------------------------------------------------- the cost of one poll

# `monitor ARGS...` that prints its own peak RSS (kB, VmHWM) last on stderr as it exits: rusage's
# ru_maxrss of a child would also count the pages of the test process at the fork.
_PEAK = """
import atexit, sys

def peak():
    status = open("/proc/self/status").read()
    sys.stderr.write("\\npeak " + next(line.split()[1] for line in status.splitlines()
                                        if line.startswith("VmHWM:")) + "\\n")

atexit.register(peak)
from monitor.cli import main
main()
"""

_TEN_MB = 10_000_000
_RSS_HEAD = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>'


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
@pytest.mark.parametrize(("body", "content_type", "error"), [
    (b"<!doctype html><html><body>" + b"<div><p>Truce talks in <b>Cairo</b></p></div>\n" * (_TEN_MB // 47),
     "text/html", "not a feed: HTML page (text/html)"),
    (_RSS_HEAD + b"Truce talks in Cairo resume as mediators press on.\n" * (_TEN_MB // 51),
     "application/rss+xml", "refused: a text of more than 2.0 MiB in one element"),
    (_RSS_HEAD + b"<x>" * (_TEN_MB // 3), "application/rss+xml",
     "refused: elements nested more than 100 deep"),
], ids=["html page", "rss head and text", "rss head and tag soup"])
def test_one_poll_of_a_hostile_10_mb_body_stays_under_100_mb(tmp_path, body, content_type, error):
    """Measured before the sniffing and bounds (bench/hostile.py): the HTML page 11 s of CPU and
    210 MB, the text 122 MB, the tag soup 110 s and 2.2 GB. A real feed's poll peaks at ~44 MB."""
    with FeedServer() as server:
        server.set_response("/hostile.xml", 200, body, headers={"Content-Type": content_type})
        kit = Kit(tmp_path)
        kit.write(feeds=[("hostile", server.url("/hostile.xml"))])
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-c", _PEAK, "--config", str(kit.config), "run", "--once"],
                                capture_output=True, text=True, env=kit.env, cwd=tmp_path, timeout=300)
        elapsed = time.monotonic() - started
    peak_mb = int(result.stderr.rsplit("peak ", 1)[1]) / 1024
    assert peak_mb < 100, (peak_mb, result.stderr[-2000:])
    assert elapsed < 10, elapsed
    assert result.returncode == 3, result.stderr  # the feed failed
    (state,) = kit.rows("SELECT last_error, last_error_code FROM feeds")
    assert state == {"last_error": error, "last_error_code": "parse.error"}
    print(f"\none poll of {len(body):,} bytes ({content_type}): peak RSS {peak_mb:.0f} MB, {elapsed:.1f} s")


def test_a_feed_that_keeps_sending_garbage_backs_off(tmp_path):
    from monitor.config import load_config
    from monitor.pipeline import Monitor
    from monitor.store import SQLiteStore

    with FeedServer() as server:
        server.set_response("/garbage.xml", 200, b"Service temporarily replaced by a text page.\n" * 1000,
                            headers={"Content-Type": "application/rss+xml"})
        kit = Kit(tmp_path)
        kit.write(feeds=[("garbage", server.url("/garbage.xml"))], interval="1m",
                  settings='backoff_max = "1h"')
        config = load_config(kit.config, environ=kit.env)
        start = datetime.now(UTC)
        now = [start]
        polls: list[float] = []
        with SQLiteStore(kit.db) as store:
            monitor = Monitor(config, store, clock=lambda: now[0], rng=random.Random(7))
            try:
                while now[0] < start + timedelta(hours=3):
                    before = server.hits["/garbage.xml"]
                    monitor.poll_all(only_due=True)
                    if server.hits["/garbage.xml"] > before:
                        polls.append((now[0] - start).total_seconds())
                    now[0] += timedelta(seconds=30)
            finally:
                monitor.close()
            state = store.feed_state(config.feeds[0].url)
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert state.last_error_code == "parse.error" and state.consecutive_errors == len(polls)
    assert max(gaps) >= 1800 and max(gaps) <= 3600 + 30, gaps  # grows, jittered, to the cap of an hour
    assert len(polls) < 20, polls  # a healthy feed: 180 polls in these three hours
