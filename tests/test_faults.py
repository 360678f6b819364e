"""Faults injected into real processes: SIGKILL of the daemon, receivers that fail, storage.

Everything is real: `monitor run` as a subprocess, a feed server, a Standard Webhooks
receiver and an SMTP server on 127.0.0.1, and the SQLite file the CLI writes.
"""

from __future__ import annotations

import itertools
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import pytest
from faultkit import Kit, email, headline, integrity_check, webhook
from feedserver import FeedServer, rss
from receivers import TEST_SECRET, SMTPReceiver, WebhookReceiver, free_port, wait_until

SEED = int(os.environ.get("CRASH_SEED", "20261126"))
KILLS = int(os.environ.get("CRASH_KILLS", "24"))
SLOW_MARGIN = 0.08  # seconds after a slow webhook request starts (it lasts 0.1-0.4 s)


class SlowHook(WebhookReceiver):
    """A webhook receiver that sometimes takes its time (so kills land mid-delivery) and
    counts the requests in flight, all and the slow ones, by who sent them (``_who``)."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng
        self.in_flight = 0
        self.slow_share = 0.0
        self.busy_by: Counter[object] = Counter()
        self.slow_by: Counter[object] = Counter()

    def _who(self, handler: BaseHTTPRequestHandler) -> object:
        return None  # one sender; a hook of several instances tells them apart

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        who = self._who(handler)
        with self._lock:
            self.in_flight += 1
            self.busy_by[who] += 1
            delay = self.rng.uniform(0.1, 0.4) if self.rng.random() < self.slow_share else 0.0
            self.slow_by[who] += delay > 0
        try:
            time.sleep(delay)
            super()._handle(handler)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.busy_by[who] -= 1
                self.slow_by[who] -= delay > 0

    def busy(self) -> list[object]:
        """Who has a request in flight."""
        with self._lock:
            return [who for who, n in self.busy_by.items() if n > 0]

    def slow_senders(self) -> list[object]:
        """Who has a slow request in flight: it stays in flight for at least another
        ``SLOW_MARGIN`` seconds unless the sender is killed."""
        with self._lock:
            return [who for who, n in self.slow_by.items() if n > 0]


class GrowingFeeds:
    """Feeds on a FeedServer that gain a new relevant item every few hundred milliseconds;
    each answer takes a little while (so kills land mid-poll); requests in flight counted."""

    def __init__(self, server: FeedServer, paths: list[str], rng: random.Random) -> None:
        self.server, self.paths, self.rng = server, paths, rng
        self.items: dict[str, list[dict]] = {path: [] for path in paths}
        self.lock = threading.Lock()
        self.in_flight = 0
        self.published: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._grow, daemon=True)
        for path in paths:
            server.set_handler(path, self._serve)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        with self.lock:
            self.in_flight += 1
            body = rss(self.items[path], title=path)
            delay = self.rng.uniform(0.05, 0.2)  # long enough that a kill can land mid-poll
        try:
            time.sleep(delay)
            handler.send_response(200)
            handler.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        finally:
            with self.lock:
                self.in_flight -= 1

    def add(self) -> None:
        with self.lock:
            item = headline(self.rng, len(self.published))
            self.items[self.rng.choice(self.paths)].append(item)
            self.published.append(item)

    def _grow(self) -> None:
        while not self._stop.wait(self.rng.uniform(0.2, 0.6)):
            self.add()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_sigkill_at_random_moments_loses_nothing_and_sends_nothing_twice(tmp_path, capsys):
    rng = random.Random(SEED)
    kinds = (["poll", "delivery", "any"] * KILLS)[:KILLS]
    rng.shuffle(kinds)
    with FeedServer() as server, SlowHook(random.Random(SEED + 1)) as hook:
        feeds = GrowingFeeds(server, ["/a.xml", "/b.xml", "/c.xml"], random.Random(SEED + 2))
        for _ in range(3):
            feeds.add()
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[(p.strip("/"), server.url(p)) for p in feeds.paths],
                  channels=webhook(hook.url), interval="1s")
        feeds.start()
        landed: Counter[str] = Counter()
        checks = []
        try:
            for kind in kinds:
                hook.slow_share = 0.6 if kind == "delivery" else 0.15
                # the killed daemon's last requests finish first (the receivers keep serving
                # them): a request in flight is then this daemon's, and a kill counted as
                # mid-poll or mid-delivery is one
                assert wait_until(lambda: hook.in_flight == 0 and feeds.in_flight == 0, timeout=5)
                with kit.start() as daemon:
                    if kind == "poll":
                        assert wait_until(lambda: feeds.in_flight > 0, timeout=10, interval=0.002)
                        time.sleep(rng.uniform(0.0, 0.1))
                    elif kind == "delivery":
                        # a slow request lasts 0.1 s at least: killed within SLOW_MARGIN of its
                        # start, the sender is still waiting for the answer, however busy the
                        # machine is in between (a kill at any point of a fast request did
                        # land mid-delivery too rarely on a loaded machine)
                        assert wait_until(lambda: bool(hook.slow_senders()), timeout=10,
                                          interval=0.002)
                        time.sleep(rng.uniform(0.0, SLOW_MARGIN))
                    else:
                        time.sleep(rng.uniform(0.05, 2.5))
                    in_poll, in_delivery = feeds.in_flight > 0, hook.in_flight > 0
                    assert daemon.process.poll() is None, daemon.output()
                    daemon.kill()
                landed["during polling"] += in_poll
                landed["during delivery"] += in_delivery
                landed["elsewhere"] += not (in_poll or in_delivery)
                checks.append(integrity_check(kit.db))
                assert checks[-1] == "ok", (len(checks), checks[-1])
        finally:
            feeds.stop()
        # Heal: one last run delivers everything that is due, then stops cleanly.
        hook.slow_share = 0.0
        guids = {item["guid"] for item in feeds.published}
        with kit.start() as daemon:
            def drained() -> bool:
                stored = {r["guid"] for r in kit.rows("SELECT guid FROM entries")}
                pending = kit.rows("SELECT COUNT(*) AS n FROM alerts WHERE status != 'sent'")[0]["n"]
                return guids <= stored and pending == 0
            assert wait_until(drained, timeout=60, interval=0.2), daemon.output()
            # A stop before Python has even imported the monitor would be a plain SIGTERM death.
            assert wait_until(lambda: "monitoring" in daemon.output(), timeout=30), daemon.output()
            assert daemon.stop() == 0, daemon.output()
        assert integrity_check(kit.db) == "ok"

    # A kill between a request's headers and its body leaves the receiver a headers-only
    # request; it is not a delivery (nothing acknowledged it), so it is redelivered.
    received = [r for r in hook.received if r["id"] and r["complete"]]
    cut_off = sum(1 for r in hook.received if r["id"] and not r["complete"])
    assert all(r["verified"] for r in received), [r["error"] for r in received]
    outbox = kit.rows("SELECT uid, storyline_id, story_id, status, payload FROM alerts")
    # Every published item was stored and matched, and every matched story is in the outbox,
    # once (one alert per story on the channel, naming both storylines): nothing was lost
    # between the feed and the outbox.
    assert {r["guid"] for r in kit.rows("SELECT guid FROM entries")} == guids
    stories = {m["story_id"] for m in kit.rows("SELECT story_id FROM matches")}
    assert sorted(a["story_id"] for a in outbox) == sorted(stories)
    assert len(outbox) == len(guids)  # every headline is a story of its own
    # 0 lost: every outbox alert reached the receiver.
    delivered_ids = {r["id"] for r in received}
    lost = [a["uid"] for a in outbox if a["uid"] not in delivered_ids]
    assert not lost
    assert {a["status"] for a in outbox} == {"sent"}
    # No (storyline, story) under two webhook-ids; nothing received that is not in the outbox.
    ids_by_pair = defaultdict(set)
    for r in received:
        data = r["json"]["data"]
        ids_by_pair[(data["storyline"]["id"], data["story_id"])].add(r["id"])
    duplicates = {pair: ids for pair, ids in ids_by_pair.items() if len(ids) > 1}
    assert not duplicates
    assert delivered_ids == {a["uid"] for a in outbox}
    # Redeliveries carry the same webhook-id and body, and number at most the kills.
    first_body = {}
    for r in received:
        assert first_body.setdefault(r["id"], r["body"]) == r["body"]
    redeliveries = len(received) - len(delivered_ids)
    assert redeliveries <= len(kinds)
    assert landed["during polling"] >= KILLS // 4 and landed["during delivery"] >= KILLS // 4, landed
    logs = kit.logs()
    assert "Traceback" not in logs
    assert TEST_SECRET not in logs
    report = (f"crash test (seed {SEED}): {len(kinds)} SIGKILLs ({landed['during polling']} during "
              f"polling, {landed['during delivery']} during delivery, {landed['elsewhere']} "
              f"elsewhere); {len(guids)} items published, {len(outbox)} alerts in the outbox, "
              f"{len(received)} webhook requests (and {cut_off} cut off by a kill), lost 0, "
              f"duplicate pairs 0, redeliveries {redeliveries} (same webhook-id), "
              f"integrity_check ok {checks.count('ok')}/{len(checks)}")
    with capsys.disabled():
        print("\n" + report)


# --------------------------------------------------------------------------- storage

OLD_PAYLOAD = ('{"type": "storyline.match", "timestamp": "2026-11-25T10:00:00+00:00", "data": '
               '{"storyline": {"id": "cairo", "name": "Cairo track"}, "item": {"title": '
               '"Truce talks in Cairo resume", "link": "https://news.example/old", "summary": "", '
               '"published": "2026-11-25T10:00:00+00:00", "source": "a.xml", "feed_url": "%s"}, '
               '"score": 100.0, "matched_terms": [], "story_id": 1, "sources": []}}')


def _old_database(kit: Kit, feed_url: str, created: datetime) -> None:
    """A database as the first schema version wrote it, with real rows: an item, its match,
    one pending and one failed alert."""
    import sqlite_utils

    from monitor.store import migrations

    db = sqlite_utils.Database(kit.db)
    migrations.apply(db, stop_before="0002_outbox_failed_at_requeue")
    at = created.isoformat(timespec="seconds")
    db.executescript(f"""
    INSERT INTO feeds (url, name, first_poll_done, items_seen) VALUES ('{feed_url}', 'a.xml', 1, 1);
    INSERT INTO stories (id, first_item_id, published, shingles) VALUES (1, 1, 0, x'');
    INSERT INTO items (id, feed_url, source, guid, url, title, summary, published, published_known,
                       first_seen, story_id)
        VALUES (1, '{feed_url}', 'a.xml', 'old-1', 'https://news.example/old',
                'Truce talks in Cairo resume', '', '{at}', 1, '{at}', 1);
    INSERT INTO entries (feed_url, guid, item_id) VALUES ('{feed_url}', 'old-1', 1);
    INSERT INTO matches (item_id, storyline_id, story_id, score, hits, created_at)
        VALUES (1, 'cairo', 1, 100, '[]', '{at}');
    INSERT INTO channels (name, type) VALUES ('hook', 'webhook');
    INSERT INTO alerts (uid, channel, kind, dedup_key, storyline_id, story_id, item_id, payload,
                        created_at, status, attempts, last_error, last_attempt_at)
        VALUES ('msg_old_pending', 'hook', 'storyline.match', 'storyline.match:cairo:1', 'cairo',
                1, 1, '{OLD_PAYLOAD % feed_url}', '{at}', 'pending', 2, 'HTTP 500', '{at}'),
               ('msg_old_failed', 'hook', 'storyline.match', 'x:failed', 'cairo', 1, 1,
                '{OLD_PAYLOAD % feed_url}', '{at}', 'failed', 3, 'HTTP 400 Bad Request', '{at}');
    """)
    db.conn.close()


def test_database_of_the_older_schema_migrates_on_start_and_keeps_its_rows(tmp_path):
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set_feed("/a.xml", rss([]))
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("a.xml", server.url("/a.xml"))], channels=webhook(hook.url))
        created = datetime.now(UTC) - timedelta(hours=1)
        _old_database(kit, server.url("/a.xml"), created)
        steps = [r["name"] for r in kit.rows("SELECT name FROM _sqlite_migrations")]
        assert steps == ["0001_initial"]
        listed = {a["uid"]: a for a in kit.json("alerts")}  # opening the store migrates it
        assert [r["name"] for r in kit.rows("SELECT name FROM _sqlite_migrations ORDER BY id")] == [
            "0001_initial", "0002_outbox_failed_at_requeue", "0003_feedback",
            "0004_story_keys_without_rowid", "0005_one_permutation_band_keys", "0006_event_stories",
            "0007_feeds_added", "0008_alert_policies", "0009_items_fts", "0010_instances"]
        assert set(listed) == {"msg_old_pending", "msg_old_failed"}
        assert listed["msg_old_failed"]["failed_at"] == created.isoformat(timespec="seconds")
        assert listed["msg_old_failed"]["last_error"] == "HTTP 400 Bad Request"
        assert listed["msg_old_pending"]["attempts"] == 2
        assert kit.json("matches")[0]["title"] == "Truce talks in Cairo resume"
        indexes = {r["name"] for r in kit.rows("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"alerts_dedup", "alerts_status"} <= indexes
        # The migrated outbox is delivered as before: the old alert, with its old webhook-id.
        kit.run_once()
        assert [r["id"] for r in hook.received] == ["msg_old_pending"]
        assert integrity_check(kit.db) == "ok"


def test_first_start_killed_before_the_schema_committed_starts_again(tmp_path):
    """A SIGKILL during the very first start can leave only sqlite-utils' migrations table:
    that file is ours and empty, not a foreign database."""
    import sqlite_utils

    from monitor.store import migrations

    kit = Kit(tmp_path)
    kit.write(feeds=[("a", f"http://127.0.0.1:{free_port()}/a.xml")])
    db = sqlite_utils.Database(kit.db)
    migrations.ensure_migrations_table(db)
    db.conn.close()
    result = kit.cli("feeds", "--json")
    assert result.returncode == 0, result.stderr
    assert kit.rows("SELECT COUNT(*) AS n FROM _sqlite_migrations")[0]["n"] == 10


@pytest.mark.parametrize("content", [
    pytest.param(b"PK\x03\x04 this is a zip file, not a database" * 50, id="corrupt"),
    pytest.param(None, id="foreign-sqlite"),
])
def test_corrupt_or_foreign_database_is_refused_by_name_untouched(tmp_path, content):
    kit = Kit(tmp_path)
    kit.write(feeds=[("a", f"http://127.0.0.1:{free_port()}/a.xml")])
    if content is None:
        conn = sqlite3.connect(kit.db)
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
        conn.commit()
        conn.close()
    else:
        kit.db.write_bytes(content)
    before = kit.db.read_bytes()
    for args in (("run", "--once"), ("run",), ("alerts",), ("feeds", "--json")):
        result = kit.cli(*args, timeout=30)
        assert result.returncode == 2, (args, result.stderr)
        assert str(kit.db) in result.stderr and "Traceback" not in result.stderr
        assert "refusing to touch it" in result.stderr
    assert kit.db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["monitor.db", "monitor.toml"]


def test_another_process_holding_the_write_lock_delays_but_loses_nothing(tmp_path):
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set_feed("/a.xml", rss([headline(random.Random(1), 0)]))
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("a", server.url("/a.xml"))], channels=webhook(hook.url))
        kit.cli("feeds")  # creates the database
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sqlite3, time\n"
            f"c = sqlite3.connect({str(kit.db)!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(4)\n"
            "c.execute('COMMIT')\n")], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            started = time.monotonic()
            kit.run_once()
            waited = time.monotonic() - started
        finally:
            holder.wait(timeout=10)
        assert waited > 2.0, waited  # it did wait for the lock rather than fail
        assert len(hook.received) == 1  # one alert, naming both storylines
        assert {a["status"] for a in kit.json("alerts")} == {"sent"}
        assert integrity_check(kit.db) == "ok"


# --------------------------------------------------------------------------- receivers that fail

class PortHook(WebhookReceiver):
    """A webhook receiver on a port chosen in advance: nothing listens there until it starts
    (connections refused), and it can stop and start again on the same port."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.fixed_port = port

    def start(self) -> PortHook:
        from http.server import ThreadingHTTPServer

        original = ThreadingHTTPServer.__init__

        def bind_fixed(server, address, handler, *args, **kwargs):
            original(server, ("127.0.0.1", self.fixed_port), handler, *args, **kwargs)

        ThreadingHTTPServer.__init__ = bind_fixed  # only for the super().start() below
        try:
            return super().start()
        finally:
            ThreadingHTTPServer.__init__ = original


def _items(n: int, seed: int = 7, start: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [headline(rng, i) for i in range(start, start + n)]


def test_webhook_refused_500_timeout_then_recovery_in_order_and_other_channel_not_delayed(tmp_path):
    port = free_port()
    hook = PortHook(port)
    with FeedServer() as server, SMTPReceiver() as smtp:
        server.set_feed("/a.xml", rss(_items(5)))
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("a", server.url("/a.xml"))], interval="1m",
                  retry_base="200ms", settings='delivery_retry_max = "1s"',
                  channels=webhook(f"http://127.0.0.1:{port}/hook", extra='timeout = "1s"')
                  + email(smtp.port))
        with kit.start() as daemon:
            # Refused: nothing listens on the webhook's port. Email is not held up.
            started = time.monotonic()
            smtp.wait_for(5, timeout=15)  # one alert per item, naming both storylines
            assert time.monotonic() - started < 10
            hook.set_mode("500")
            hook.start()
            try:
                hook.wait_for(2, timeout=15)
                hook.set_mode("hang")  # answers after 10 s; the channel gives up after 1 s
                count = len(hook.received)
                hook.wait_for(count + 2, timeout=15)
                hook.set_mode("ok")
                assert wait_until(lambda: kit.rows(
                    "SELECT COUNT(*) AS n FROM alerts WHERE channel = 'hook' AND status = 'sent'"
                )[0]["n"] == 5, timeout=20), daemon.output()
            finally:
                hook.stop()
            assert daemon.stop() == 0
        log = daemon.output()
    outbox = kit.rows("SELECT id, uid, attempts FROM alerts WHERE channel = 'hook' ORDER BY id")
    received = hook.received
    assert {r["status"] for r in received[:2]} == {500}
    assert "connection refused" in log.lower() and "HTTP 500" in log and "timed out" in log
    # Nothing delivered out of order: the ids of the 200 answers follow the outbox order,
    # and every failed attempt was for the head of the queue.
    ok = [r["id"] for r in received if r["status"] == 200]
    first_ok = {}
    for uid in ok:
        first_ok.setdefault(uid, len(first_ok))
    assert list(first_ok) == [a["uid"] for a in outbox]
    assert {r["id"] for r in received if r["status"] != 200} == {outbox[0]["uid"]}
    assert outbox[0]["attempts"] >= 5  # refused..., 500, 500, timeout, timeout, 200


def test_retry_backoff_is_bounded_and_gives_up_after_max_age(tmp_path):
    """A receiver that answers 500 for 25 hours (simulated clock, real HTTP): attempts
    back off exponentially with jitter, never hammer, and the alert is failed after
    ``delivery_max_age`` (the default 24 h) with the reason kept."""
    from monitor.config import load_config
    from monitor.pipeline import Monitor
    from monitor.store import SQLiteStore

    with FeedServer() as server, WebhookReceiver() as hook:
        server.set_feed("/a.xml", rss(_items(1)))
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("a", server.url("/a.xml"))], channels=webhook(hook.url),
                  retry_base=None, storylines=STORYLINE_CAIRO)
        config = load_config(kit.config, environ=kit.env)
        assert config.delivery_max_age == 24 * 3600  # the default
        hook.set_mode("500")
        start = datetime.now(UTC)
        now = [start]
        with SQLiteStore(kit.db) as store:
            monitor = Monitor(config, store, clock=lambda: now[0], rng=random.Random(SEED))
            try:
                monitor.poll_all()
                attempts_at = []
                while now[0] < start + timedelta(hours=25):
                    before = len(hook.received)
                    report = monitor.dispatch(monitor.channels[0])
                    if len(hook.received) > before:
                        attempts_at.append((now[0] - start).total_seconds())
                    if report.failed:
                        break
                    # The daemon looks every second; idle seconds are skipped.
                    state = {c["name"]: c for c in store.channels()}["hook"]
                    due = datetime.fromisoformat(state["next_attempt_at"]) if state[
                        "next_attempt_at"] else now[0]
                    now[0] = max(now[0] + timedelta(seconds=1), due)
            finally:
                monitor.close()
            failed = store.alerts(status="failed")
    assert len(failed) == 1 and failed[0]["status"] == "failed"
    assert "gave up after" in failed[0]["last_error"] and "HTTP 500" in failed[0]["last_error"]
    assert failed[0]["failed_at"]
    gaps = [b - a for a, b in itertools.pairwise(attempts_at)]
    per_minute = Counter(int(t // 60) for t in attempts_at)
    first_hour = sum(1 for t in attempts_at if t < 3600)
    # (times are stored to the second, so a gap can be up to 1 s shorter than drawn)
    assert all(g >= config.delivery_retry_base - 1 for g in gaps)
    assert all(g <= config.delivery_retry_max + 1 for g in gaps)
    assert max(per_minute.values()) <= 10, per_minute  # no hammering
    assert len(set(round(g) for g in gaps)) > len(gaps) // 2  # jittered, not lock-step
    # it grows: the first retry after the base delay, later ones spread up to the cap
    assert gaps[0] <= config.delivery_retry_base + 1
    assert statistics.median(gaps[10:]) > 10 * statistics.median(gaps[:3]), gaps[:12]
    assert len(attempts_at) < 25 * 60 / 5  # fewer than one every 5 minutes over the day
    print(f"\noutage of 25 h (simulated clock, real HTTP 500s): {len(attempts_at)} attempts; "
          f"{first_hour} in the first hour; at most {max(per_minute.values())} in any minute; "
          f"gaps {min(gaps):.1f}-{max(gaps):.0f} s; given up after "
          f"{attempts_at[-1] / 3600:.1f} h, reason kept")


def _monitor_on_a_clock(kit: Kit, now: list[datetime]):
    from monitor.config import load_config
    from monitor.pipeline import Monitor
    from monitor.store import SQLiteStore

    config = load_config(kit.config, environ=kit.env)
    store = SQLiteStore(kit.db)
    return config, store, Monitor(config, store, clock=lambda: now[0], rng=random.Random(SEED))


def _next_attempt(store) -> datetime:
    state = {c["name"]: c for c in store.channels()}["hook"]
    return datetime.fromisoformat(state["next_attempt_at"])


@pytest.mark.parametrize("retry_after, waited", [(300, 300), ("300", 300), (86_400, 600)])
def test_a_receiver_asking_to_wait_is_not_retried_sooner(tmp_path, retry_after, waited):
    """A receiver answering 503 with ``Retry-After: 300`` is next tried 300 s later, not after
    the ~2 s of the first backoff; a Retry-After beyond ``delivery_retry_max`` (600 s by
    default) waits that long only (real HTTP, simulated clock)."""
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set_feed("/a.xml", rss(_items(1)))
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("a", server.url("/a.xml"))], channels=webhook(hook.url),
                  retry_base=None, storylines=STORYLINE_CAIRO)
        start = datetime.now(UTC).replace(microsecond=0)
        now = [start]
        config, store, monitor = _monitor_on_a_clock(kit, now)
        assert (config.delivery_retry_base, config.delivery_retry_max) == (2.0, 600.0)
        try:
            monitor.poll_all()
            hook.respond_with(503, retry_after=retry_after)
            assert monitor.dispatch(monitor.channels[0]).retrying == 1
            assert (_next_attempt(store) - start).total_seconds() == pytest.approx(waited, abs=1)
            hook.respond_with(200)
            now[0] = start + timedelta(seconds=waited - 2)
            assert monitor.dispatch(monitor.channels[0]).sent == 0 and len(hook.received) == 1
            now[0] = start + timedelta(seconds=waited + 1)
            assert monitor.dispatch(monitor.channels[0]).sent == 1 and len(hook.received) == 2
        finally:
            monitor.close()
            store.close()


def test_after_a_delivery_the_next_outage_starts_with_the_shortest_backoff(tmp_path):
    """Five failures push the channel's backoff up; one delivery ends the outage, and the
    first failure after it is retried after the base delay again (2 s), not a longer one."""
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set_feed("/a.xml", rss(_items(2)))
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("a", server.url("/a.xml"))], channels=webhook(hook.url),
                  retry_base=None, storylines=STORYLINE_CAIRO)
        start = datetime.now(UTC).replace(microsecond=0)
        now = [start]
        config, store, monitor = _monitor_on_a_clock(kit, now)
        try:
            monitor.poll_all()
            hook.set_mode("500")
            delays = []
            for _ in range(5):
                assert monitor.dispatch(monitor.channels[0]).retrying == 1
                delays.append((_next_attempt(store) - now[0]).total_seconds())
                now[0] = _next_attempt(store)
            assert max(delays) > 2 * config.delivery_retry_base + 1  # it had grown
            hook.queue(200)  # the head of the queue goes through, the next one fails again
            report = monitor.dispatch(monitor.channels[0])
            assert (report.sent, report.retrying) == (1, 1)
            delay = (_next_attempt(store) - now[0]).total_seconds()
            assert delay <= config.delivery_retry_base + 1, delay
        finally:
            monitor.close()
            store.close()


def test_retry_jitter_follows_the_random_source_given(tmp_path):
    """A seeded Monitor retries on the same schedule every time (what the benchmarks and these
    tests rely on), and the delays stay between the base and the exponential bound."""
    kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
    kit.write(feeds=[("a", "http://127.0.0.1:9/a.xml")], channels=webhook("http://127.0.0.1:9/"),
              retry_base=None, storylines=STORYLINE_CAIRO)
    schedules = []
    for _ in range(2):
        now = [datetime.now(UTC)]
        _config, store, monitor = _monitor_on_a_clock(kit, now)
        try:
            schedules.append([monitor.retry_delay(failures, None) for failures in range(1, 12)])
        finally:
            monitor.close()
            store.close()
    assert schedules[0] == schedules[1]
    for failures, delay in enumerate(schedules[0], start=1):
        assert 2.0 <= delay <= min(600.0, 2.0 * 2 ** (failures - 1))
    assert len(set(schedules[0])) > 8  # jittered


def test_a_failing_feed_is_polled_again_when_its_backoff_ends_not_before(tmp_path):
    """After a 503 with Retry-After: 120 the feed waits: the daemon's pass over due feeds skips
    it until then, and polls it at exactly that moment (real HTTP, simulated clock)."""
    with FeedServer() as server:
        server.set_response("/a.xml", 503, b"busy", headers={"Retry-After": "120"})
        kit = Kit(tmp_path)
        kit.write(feeds=[("a", server.url("/a.xml"))], storylines=STORYLINE_CAIRO)
        start = datetime.now(UTC).replace(microsecond=0)
        now = [start]
        _config, store, monitor = _monitor_on_a_clock(kit, now)
        try:
            [report] = monitor.poll_all(only_due=True)
            assert report.outcome == "error" and server.hits["/a.xml"] == 1
            due = store.feed_state(server.url("/a.xml")).next_poll_at
            assert due is not None and (due - start).total_seconds() >= 120
            now[0] = due - timedelta(seconds=1)
            assert monitor.poll_all(only_due=True) == [] and server.hits["/a.xml"] == 1
            now[0] = due
            server.set_feed("/a.xml", rss(_items(1)))
            [report] = monitor.poll_all(only_due=True)
            assert report.outcome == "new" and server.hits["/a.xml"] == 2
            now[0] = due + timedelta(seconds=1)  # healthy again: polled on every pass
            assert len(monitor.poll_all(only_due=True)) == 1
        finally:
            monitor.close()
            store.close()


def test_dispatch_delivers_at_most_its_limit_and_counts_what_it_gave_up(tmp_path):
    """``dispatch(limit=25)`` sends 25 alerts in order and leaves the rest for the next pass;
    alerts older than ``delivery_max_age`` are failed, each counted once, none sent."""
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set_feed("/a.xml", rss(_items(30)))
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("a", server.url("/a.xml"))], channels=webhook(hook.url),
                  storylines=STORYLINE_CAIRO)
        start = datetime.now(UTC)
        now = [start]
        config, store, monitor = _monitor_on_a_clock(kit, now)
        try:
            monitor.poll_all()
            first = monitor.dispatch(monitor.channels[0], limit=25)  # more than one batch of 20
            assert (first.sent, first.failed, len(hook.received)) == (25, 0, 25)
            assert [r["id"] for r in hook.received] == [
                a["uid"] for a in kit.rows("SELECT uid FROM alerts ORDER BY id LIMIT 25")]
            now[0] = start + timedelta(seconds=config.delivery_max_age + 1)
            late = monitor.dispatch(monitor.channels[0])
            assert (late.sent, late.failed, len(hook.received)) == (0, 5, 25)
            failed = store.alerts(status="failed", limit=50)
            assert len(failed) == 5
            assert all(a["last_error"] == "gave up after 24.0h and 0 attempt(s); last error: none"
                       for a in failed), failed[0]["last_error"]
        finally:
            monitor.close()
            store.close()


def test_a_monitor_fetches_with_the_fetcher_it_is_given(tmp_path):
    from monitor.config import load_config
    from monitor.fetch import Fetcher
    from monitor.pipeline import Monitor
    from monitor.store import SQLiteStore

    with FeedServer() as server:
        server.set_feed("/a.xml", rss(_items(1)))
        kit = Kit(tmp_path)
        kit.write(feeds=[("a", server.url("/a.xml"))], storylines=STORYLINE_CAIRO)
        config = load_config(kit.config, environ=kit.env)
        with SQLiteStore(kit.db) as store, Fetcher(user_agent="desk-probe/9", trust_env=False) as fetcher:
            monitor = Monitor(config, store, fetcher=fetcher)
            [report] = monitor.poll_all()
        assert report.outcome == "new"
        [(_path, headers)] = [r for r in server.requests if r[0] == "/a.xml"]
        assert {k.lower(): v for k, v in headers.items()}["user-agent"] == "desk-probe/9"


def test_a_feed_serving_the_same_body_again_is_recorded_healthy_without_parsing(tmp_path):
    """A site that ignores ETag sends the same body: the poll is "unchanged", and the feed's
    health (last fetch, next poll, errors reset after an outage) is recorded all the same."""
    with FeedServer() as server:
        body = rss(_items(2))
        server.set_feed("/a.xml", body, etag=False, last_modified=False)
        kit = Kit(tmp_path)
        kit.write(feeds=[("a", server.url("/a.xml"))], storylines=STORYLINE_CAIRO)
        start = datetime.now(UTC).replace(microsecond=0)
        now = [start]
        _config, store, monitor = _monitor_on_a_clock(kit, now)
        url = server.url("/a.xml")
        try:
            assert [r.outcome for r in monitor.poll_all()] == ["new"]
            server.set_response("/a.xml", 500, b"down")
            now[0] = start + timedelta(minutes=5)
            assert [r.outcome for r in monitor.poll_all()] == ["error"]
            assert store.feed_state(url).consecutive_errors == 1
            server.set_feed("/a.xml", body, etag=False, last_modified=False)
            now[0] = start + timedelta(minutes=10)
            assert [r.outcome for r in monitor.poll_all()] == ["unchanged"]
            state = store.feed_state(url)
            assert (state.consecutive_errors, state.last_error) == (0, None)
            assert state.last_fetch_at == state.last_success_at == now[0]
            assert state.next_poll_at > now[0]
        finally:
            monitor.close()
            store.close()


def test_a_bug_while_polling_one_feed_is_logged_with_its_traceback_and_spares_the_others(
        tmp_path, caplog):
    """An exception that is no MonitorError (a bug of ours) while polling a feed: logged with
    its traceback, recorded on that feed as internal.error; the other feed is polled."""
    from monitor.config import load_config
    from monitor.fetch import Fetcher
    from monitor.pipeline import Monitor
    from monitor.store import SQLiteStore

    class BrokenForOneFeed(Fetcher):
        def fetch(self, url, **options):
            if url.endswith("/b.xml"):
                raise ZeroDivisionError("a bug")
            return super().fetch(url, **options)

    with FeedServer() as server:
        server.set_feed("/a.xml", rss(_items(1)))
        server.set_feed("/b.xml", rss(_items(1, seed=9)))
        kit = Kit(tmp_path)
        kit.write(feeds=[("a", server.url("/a.xml")), ("b", server.url("/b.xml"))],
                  storylines=STORYLINE_CAIRO)
        config = load_config(kit.config, environ=kit.env)
        with SQLiteStore(kit.db) as store, BrokenForOneFeed(user_agent="t/1", trust_env=False) as fetcher, \
                caplog.at_level("ERROR", logger="monitor"):
            reports = Monitor(config, store, fetcher=fetcher).poll_all()
            state = store.feed_state(server.url("/b.xml"))
    assert [r.outcome for r in reports] == ["new", "error"]
    assert state.last_error_code == "internal.error" and "ZeroDivisionError: a bug" in state.last_error
    [record] = [r for r in caplog.records if "internal error while polling" in r.getMessage()]
    assert record.exc_info and record.exc_info[0] is ZeroDivisionError


STORYLINE_CAIRO = """
[[storylines]]
id = "cairo"
name = "Cairo track"
all = [["Cairo"]]
"""


def test_webhook_410_disables_the_channel_in_log_and_cli(tmp_path):
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set_feed("/a.xml", rss(_items(2)))
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("a", server.url("/a.xml"))], channels=webhook(hook.url))
        hook.set_mode("410")
        result = kit.run_once()
        assert "channel hook disabled" in result.stderr
        assert len(hook.received) == 1  # it stopped at the 410
        listing = kit.cli("alerts")
        assert "channel hook DISABLED" in listing.stdout and "410" in listing.stdout
        hook.set_mode("ok")
        kit.run_once()
        assert len(hook.received) == 1  # still disabled: nothing more was tried
        assert kit.cli("alerts", "enable", "hook").returncode == 0
        kit.run_once()
        assert len(hook.received) == 1 + 2
        assert {a["status"] for a in kit.json("alerts")} == {"sent"}


def test_smtp_down_then_up_4xx_retried_5xx_failed_with_reason_then_requeued(tmp_path, monkeypatch):
    import receivers

    port = free_port()
    with FeedServer() as server:
        server.set_feed("/a.xml", rss(_items(2)))
        kit = Kit(tmp_path)
        kit.write(feeds=[("a", server.url("/a.xml"))], channels=email(port))
        kit.run_once()  # the SMTP server is down
        pending = kit.json("alerts", "--status", "pending")
        assert len(pending) == 2 and "refused" in pending[-1]["last_error"]
        monkeypatch.setattr(receivers, "free_port", lambda: port)
        with SMTPReceiver() as smtp:
            smtp.queue("451")  # the first message: 4xx, retried
            kit.run_once()
            # the head of the queue was refused for now: the channel backs off as a whole,
            # nothing behind it goes out of order, and the 451 is kept on the alert
            assert len(smtp.messages) == 0
            pending = kit.json("alerts", "--status", "pending")
            assert len(pending) == 2 and "451" in min(pending, key=lambda a: a["id"])["last_error"]
            kit.run_once()
            smtp.wait_for(2)
            assert {a["status"] for a in kit.json("alerts")} == {"sent"}
            # 5xx: failed for good, reason kept; then requeued by hand.
            server.set_feed("/a.xml", rss(_items(3, seed=8, start=100)))
            smtp.set_mode("550")
            kit.run_once()
            failed = kit.json("alerts", "--status", "failed")
            assert len(failed) == 3 and all("550" in a["last_error"] for a in failed)
            assert all(a["failed_at"] for a in failed)
            smtp.set_mode("ok")
            kit.run_once()
            assert len(smtp.messages) == 2  # failed alerts are not retried by themselves
            requeue = kit.cli("alerts", "retry", "--failed")
            assert requeue.returncode == 0 and "requeued 3" in requeue.stdout
            kit.run_once()
            smtp.wait_for(5)
            assert {a["status"] for a in kit.json("alerts", "--limit", "100")} == {"sent"}
            # retry by id, and the JSON listing carries attempts and the last error.
            rows = kit.json("alerts", "--limit", "100")
            assert all({"id", "status", "attempts", "last_error", "channel"} <= set(a) for a in rows)
            assert kit.cli("alerts", "retry", str(rows[0]["id"])).returncode == 0
            assert kit.json("alerts", "--status", "pending")[0]["id"] == rows[0]["id"]


def test_hanging_webhook_never_delays_email_in_the_daemon(tmp_path):
    """The daemon runs one delivery job per channel: while the webhook receiver hangs past
    the channel's timeout, new alerts still reach the SMTP server within seconds."""
    rng = random.Random(SEED)
    with FeedServer() as server, WebhookReceiver(hang_seconds=30) as hook, SMTPReceiver() as smtp:
        server.set_feed("/a.xml", rss([headline(rng, 0)]))
        kit = Kit(tmp_path, secrets={"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("A", server.url("/a.xml"))], interval="1s",
                  channels=webhook(hook.url, extra="timeout = \"20s\"") + email(smtp.port))
        hook.set_mode("hang")
        with kit.start() as daemon:
            assert wait_until(lambda: len(hook.received) >= 1, timeout=20)  # the webhook hangs now
            first_mails = len(smtp.wait_for(1, timeout=20))  # item 0 by email
            served = time.monotonic()
            server.set_feed("/a.xml", rss([headline(rng, 1), headline(rng, 0)]))
            smtp.wait_for(first_mails + 1, timeout=15)
            latency = time.monotonic() - served
            assert latency < 10, latency
            assert len(hook.received) == 1  # the webhook channel is still stuck in its first attempt
            hook.release()
            hook.set_mode("ok")
            assert daemon.stop() == 0
        print(f"\nhanging webhook: email of a new item arrived {latency:.1f} s after it was served")
