"""Several `monitor run` instances on one PostgreSQL database, killed at random (issue 16).

Everything is real: three `monitor run` processes on a PostgreSQL cluster of this test's own
(initdb on a free port, so that restarting it never disturbs the machine's shared server), a
feed server on 127.0.0.1 whose feeds keep gaining items and which logs when each request
started and ended, and a Standard Webhooks receiver. Each instance tells who it is by its
User-Agent (``user_agent = "...${KILLTEST_RUN}"``: the number of its run and of its log file).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from faultkit import Daemon, Kit, webhook
from feedserver import FeedServer
from receivers import TEST_SECRET, free_port, wait_until
from test_faults import SLOW_MARGIN, GrowingFeeds, SlowHook

SEED = int(os.environ.get("INSTANCES_SEED", "20261205"))
KILLS = int(os.environ.get("INSTANCES_KILLS", "20"))
INSTANCES = 3
FEEDS = 9
PG_DOWN_SECONDS = float(os.environ.get("INSTANCES_PG_DOWN", "35"))  # longer than a lease
PG_PASSWORD = "pg-Secret-4f1c9e"  # in the URL only: trust auth never asks for it
REQUIRED = os.environ.get("MONITOR_TEST_POSTGRES_REQUIRED") == "1"
AGENT = "killtest-instance/"


# --------------------------------------------------------------------------- a private cluster

def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = [Path(found).parent] if found else []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        candidates.append(Path(subprocess.run(["pg_config", "--bindir"], capture_output=True,
                                              text=True, timeout=10).stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory on a free port of 127.0.0.1, which the
    test may stop and start. initdb refuses to run as root: as root (CI), the cluster is the
    ``postgres`` OS user's."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
        self.data = self.dir / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run([*self.as_user, *args], capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])}: exit {result.returncode}: "
                               f"{result.stderr.strip() or result.stdout.strip()}")

    def init(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  "postgres", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=100")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.dir / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str, password: str | None = None) -> str:
        login = f"postgres:{password}" if password else "postgres"
        return f"postgresql://{login}@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = _pg_bindir()
    problem = None
    if bindir is None:
        problem = "no PostgreSQL server binaries (initdb, pg_ctl) on this machine"
    elif os.geteuid() == 0 and not shutil.which("runuser"):
        problem = "running as root without runuser, and initdb refuses to run as root"
    if problem is None:
        assert bindir is not None
        cluster = PrivatePostgres(bindir)
        try:
            cluster.init()
            cluster.start()
        except (RuntimeError, KeyError, LookupError, OSError, subprocess.SubprocessError) as error:
            cluster.remove()
            problem = f"could not start a private PostgreSQL cluster: {error}"
    if problem is not None:
        message = (f"{problem}; this test restarts PostgreSQL, so it needs a cluster of its own "
                   "(never the shared server)")
        if REQUIRED:
            pytest.fail(message + "; MONITOR_TEST_POSTGRES_REQUIRED=1 asks for one")
        pytest.skip(message)
    try:
        yield cluster
    finally:
        cluster.remove()


# --------------------------------------------------------------------------- who fetched what, when

@dataclass
class Fetch:
    path: str
    run: int  # the instance's run number (its User-Agent)
    start: float
    end: float | None = None


def _run_of(handler: BaseHTTPRequestHandler) -> int:
    agent = handler.headers.get("User-Agent", "")
    return int(agent[len(AGENT):]) if agent.startswith(AGENT) else -1


class LoggedFeeds(GrowingFeeds):
    """GrowingFeeds whose server logs each request's start and end per feed, and by whom."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fetches: list[Fetch] = []
        for path in self.paths:
            self.server.set_handler(path, self._logged)

    def _logged(self, handler: BaseHTTPRequestHandler) -> None:
        fetch = Fetch(handler.path.split("?", 1)[0], _run_of(handler), time.monotonic())
        with self.lock:
            self.fetches.append(fetch)
            delay = self.rng.uniform(0.1, 0.3)  # and GrowingFeeds' own: kills land mid-poll
        try:
            time.sleep(delay)
            self._serve(handler)
        finally:
            fetch.end = time.monotonic()

    def in_flight_by(self) -> dict[int, list[str]]:
        with self.lock:
            busy: dict[int, list[str]] = defaultdict(list)
            for fetch in self.fetches:
                if fetch.end is None:
                    busy[fetch.run].append(fetch.path)
            return busy

    def overlaps(self) -> list[tuple[Fetch, Fetch]]:
        """Two requests for one feed at once (whoever made them: an instance never fetches one
        feed twice at once either)."""
        found = []
        by_path: dict[str, list[Fetch]] = defaultdict(list)
        for fetch in list(self.fetches):
            by_path[fetch.path].append(fetch)
        for fetches in by_path.values():
            fetches.sort(key=lambda f: f.start)
            latest: Fetch | None = None
            for fetch in fetches:
                if latest is not None and fetch.start < (latest.end or float("inf")):
                    found.append((latest, fetch))
                if latest is None or (fetch.end or float("inf")) > (latest.end or float("inf")):
                    latest = fetch
        return found


class AttributedHook(SlowHook):
    """SlowHook that tells the instances apart (``busy``, ``slow_senders``: which runs)."""

    def _who(self, handler: BaseHTTPRequestHandler) -> object:
        return _run_of(handler)


# --------------------------------------------------------------------------- the test

def _db_rows(url: str, sql: str) -> list[dict]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=10) as conn:
        cursor = conn.execute(sql)
        return list(cursor) if cursor.description else []


def test_three_instances_on_postgresql_killed_at_random_and_a_restart_of_the_server(
        tmp_path, capsys, private_postgres):
    """Issue 16's kill test: three instances share nine feeds of 1 s and a webhook channel;
    20 SIGKILLs of random instances (each restarted at once), landing during polls and
    deliveries; PostgreSQL stopped for longer than a lease once, halfway. Then: no feed fetched
    twice at once, every item stored and alerted, every alert delivered under one webhook-id,
    redeliveries at most the kills, failover within a lease (feeds) and a delivery's lease
    (channel), no traceback, no password in the logs."""
    pytest.importorskip("psycopg")
    pg = private_postgres
    _db_rows(pg.url("postgres"), "CREATE DATABASE monitor")
    url = pg.url("monitor", PG_PASSWORD)
    rng = random.Random(SEED)
    kinds = (["poll", "delivery", "any"] * KILLS)[:KILLS]
    rng.shuffle(kinds)
    restart_after = KILLS // 2  # PostgreSQL goes down once, after this many kills
    with FeedServer() as server, AttributedHook(random.Random(SEED + 1)) as hook:
        feeds = LoggedFeeds(server, [f"/f{n}.xml" for n in range(FEEDS)], random.Random(SEED + 2))
        for _ in range(FEEDS):
            feeds.add()
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.env["MONITOR_DB"] = url
        kit.write(feeds=[(p.strip("/."), server.url(p)) for p in feeds.paths],
                  # a short delivery timeout: a channel's lease is that and 5 s
                  channels=webhook(hook.url, extra='timeout = "2s"'), interval="1s",
                  settings=f'user_agent = "{AGENT}${{KILLTEST_RUN}}"')
        live: dict[int, Daemon] = {}

        def start() -> None:
            kit.env["KILLTEST_RUN"] = str(kit.runs + 1)  # kit.start numbers runs 1, 2, ...
            daemon = kit.start()
            live[kit.runs] = daemon

        landed: Counter[str] = Counter()
        killed_at: list[tuple[float, int, list[str]]] = []  # when, whose run, feeds in flight
        killed_delivering: list[tuple[float, int]] = []  # wall time, run: killed mid-delivery
        pg_down = pg_back = 0.0
        began = time.monotonic()
        try:
            for _ in range(INSTANCES):
                start()
            feeds.start()
            # Every instance polls: they split the feeds between them.
            assert wait_until(lambda: {f.run for f in feeds.fetches} >= set(live), timeout=60,
                              interval=0.1), ({f.run for f in feeds.fetches}, kit.logs()[-3000:])
            for number, kind in enumerate(kinds):
                if number == restart_after:
                    pg_down = time.monotonic()
                    pg.stop("fast")
                    time.sleep(PG_DOWN_SECONDS)
                    pg.start()
                    pg_back = time.monotonic()
                    for run, daemon in live.items():  # every instance lived through it
                        assert daemon.process.poll() is None, (run, daemon.output()[-3000:])
                hook.slow_share = 0.6 if kind == "delivery" else 0.15
                victim = None
                if kind == "poll":
                    wait_until(lambda: set(feeds.in_flight_by()) & set(live), timeout=20,
                               interval=0.002)
                    time.sleep(rng.uniform(0.0, 0.1))
                    busy = sorted(set(feeds.in_flight_by()) & set(live))
                    victim = rng.choice(busy) if busy else None
                elif kind == "delivery":
                    wait_until(lambda: set(hook.slow_senders()) & set(live), timeout=20,
                               interval=0.002)
                    time.sleep(rng.uniform(0.0, SLOW_MARGIN))  # see test_faults
                    busy = sorted(set(hook.slow_senders()) & set(live))
                    victim = rng.choice(busy) if busy else None
                else:
                    time.sleep(rng.uniform(0.05, 2.5))
                if victim is None:
                    victim = rng.choice(sorted(live))
                in_poll = feeds.in_flight_by().get(victim, [])
                in_delivery = victim in hook.busy()
                daemon = live.pop(victim)
                assert daemon.process.poll() is None, daemon.output()[-3000:]
                daemon.kill()
                killed_at.append((time.monotonic(), victim, in_poll))
                if in_delivery:
                    killed_delivering.append((time.time(), victim))
                landed["during polling"] += bool(in_poll)
                landed["during delivery"] += in_delivery
                landed["elsewhere"] += not (in_poll or in_delivery)
                start()  # restarted right after
                time.sleep(rng.uniform(0.5, 1.5))
        finally:
            feeds.stop()
        killing = time.monotonic() - began
        # Heal: the instances alive go on until everything published is stored and delivered.
        hook.slow_share = 0.0
        guids = {item["guid"] for item in feeds.published}

        def drained() -> bool:
            stored = {r["guid"] for r in _db_rows(url, "SELECT guid FROM entries")}
            pending = _db_rows(url, "SELECT COUNT(*) AS n FROM alerts WHERE status != 'sent'")
            return guids <= stored and pending[0]["n"] == 0

        healing = time.monotonic()
        try:
            assert wait_until(drained, timeout=120, interval=0.5), kit.logs()[-5000:]
            healed = time.monotonic() - healing
            survivors = sorted(live)
            for daemon in live.values():
                assert wait_until(lambda d=daemon: "monitoring" in d.output(), timeout=30)
                assert daemon.process.poll() is None, daemon.output()[-3000:]
        finally:
            stops = [daemon.stop() for daemon in live.values()]
        assert stops == [0] * len(stops), kit.logs()[-3000:]
        # A clean stop gives every lease up and says so in the instances table (a killed
        # instance's leases stay until they pass and another instance claims the feed).
        stopped = "(SELECT id FROM instances WHERE stopped_at IS NOT NULL)"
        assert len(_db_rows(url, f"SELECT * FROM {stopped} AS s")) == len(stops)
        assert _db_rows(url, f"SELECT url FROM feeds WHERE lease_owner IN {stopped}") == []
        assert _db_rows(url, f"SELECT name FROM channels WHERE lease_owner IN {stopped}") == []

    # No feed was ever fetched by two instances (or twice by one) at once.
    overlaps = feeds.overlaps()
    assert not overlaps, overlaps[:5]
    assert all(f.run > 0 for f in feeds.fetches)  # every request told whose it was
    # The instances split the feeds: each of the last three polled, and so did most of the
    # others (an instance killed within a second or two of its start may not have begun).
    polled_by = {f.run for f in feeds.fetches}
    assert set(survivors) <= polled_by and len(polled_by) > kit.runs // 2, (polled_by, kit.runs)

    received = [r for r in hook.received if r["id"] and r["complete"]]
    cut_off = sum(1 for r in hook.received if r["id"] and not r["complete"])
    assert all(r["verified"] for r in received), [r["error"] for r in received]
    outbox = _db_rows(url, "SELECT uid, storyline_id, story_id, status FROM alerts")
    # Every published item was stored and matched, and every matched story is in the outbox,
    # once: nothing was lost between the feed and the outbox.
    assert {r["guid"] for r in _db_rows(url, "SELECT guid FROM entries")} == guids
    stories = {m["story_id"] for m in _db_rows(url, "SELECT story_id FROM matches")}
    assert sorted(a["story_id"] for a in outbox) == sorted(stories)
    assert len(outbox) == len(guids)  # every headline is a story of its own
    # Every outbox alert reached the receiver; nothing received that is not in the outbox.
    delivered_ids = {r["id"] for r in received}
    assert {a["status"] for a in outbox} == {"sent"}
    assert delivered_ids == {a["uid"] for a in outbox}
    # No (storyline, story) under two webhook-ids.
    ids_by_pair = defaultdict(set)
    for r in received:
        data = r["json"]["data"]
        ids_by_pair[(data["storyline"]["id"], data["story_id"])].add(r["id"])
    assert not {pair: ids for pair, ids in ids_by_pair.items() if len(ids) > 1}
    # Redeliveries carry the same webhook-id and body, and number at most the kills.
    first_body: dict[str, bytes] = {}
    for r in received:
        assert first_body.setdefault(r["id"], r["body"]) == r["body"]
    redeliveries = len(received) - len(delivered_ids)
    assert redeliveries <= len(kinds)

    # How long the others took to poll a feed a killed instance was fetching.
    takeovers = []
    for when, victim, paths in killed_at:
        for path in paths:
            later = [f.start for f in feeds.fetches
                     if f.path == path and f.run != victim and f.start > when]
            if later:  # (less the time PostgreSQL was down meanwhile: nobody could claim)
                outage = max(0.0, min(min(later), pg_back) - max(when, pg_down))
                takeovers.append(min(later) - when - outage)
    assert takeovers and max(takeovers) < 40, takeovers  # one lease (30 s) and a claim or two

    # How long deliveries stopped when the instance delivering was killed (its channel lease:
    # one delivery's timeout and a margin, 7 s here, not a feed's 30 s lease).
    resumed = []
    offset = time.time() - time.monotonic()

    def wall(monotonic: float) -> float:
        return monotonic + offset

    for when, victim in killed_delivering:
        later = [r["at"] for r in hook.received
                 if r["at"] > when and r["headers"].get("user-agent") != f"{AGENT}{victim}"]
        if later:  # (less the time PostgreSQL was down meanwhile: nothing could be claimed)
            down_from, down_to = wall(pg_down), wall(pg_back)
            outage = max(0.0, min(min(later), down_to) - max(when, down_from))
            resumed.append(min(later) - when - outage)
    assert resumed and max(resumed) < 15, resumed

    logs = kit.logs()
    assert "Traceback" not in logs
    assert TEST_SECRET not in logs
    assert PG_PASSWORD not in logs
    assert "PostgreSQL unreachable" in logs  # the outage was told
    report = (f"instances test (seed {SEED}): {INSTANCES} instances on one PostgreSQL database, "
              f"{len(kinds)} SIGKILLs ({landed['during polling']} during polling, "
              f"{landed['during delivery']} during delivery, {landed['elsewhere']} elsewhere), "
              f"{kit.runs} runs; PostgreSQL down {pg_back - pg_down:.0f} s once; "
              f"{len(guids)} items published, {len(outbox)} alerts, {len(received)} webhook "
              f"requests ({cut_off} cut off), lost 0, duplicate pairs 0, redeliveries "
              f"{redeliveries}; {len(feeds.fetches)} fetches, overlapping 0; a killed "
              f"instance's feed polled again after {statistics.median(takeovers):.1f} s "
              f"(median, max {max(takeovers):.1f} s, {len(takeovers)} feeds), deliveries resumed after "
              f"{statistics.median(resumed):.1f} s (median, max {max(resumed):.1f} s); {killing:.0f} s of "
              f"kills, drained {healed:.0f} s later")
    with capsys.disabled():
        print("\n" + report)
    assert landed["during polling"] >= KILLS // 4 and landed["during delivery"] >= KILLS // 4, landed



def test_a_poll_whose_lease_passed_before_the_fetch_does_not_fetch(tmp_path):
    """An instance whose poll waited (for an unreachable database) past its lease must not
    fetch the feed: another instance may have claimed it and be fetching it now."""
    from datetime import UTC, datetime, timedelta

    from feedserver import rss
    from test_faults import STORYLINE_CAIRO, _items

    from monitor.config import load_config
    from monitor.pipeline import Monitor
    from monitor.store import SQLiteStore

    with FeedServer() as server:
        server.set_feed("/a.xml", rss(_items(2)))
        kit = Kit(tmp_path)
        kit.write(feeds=[("a", server.url("/a.xml"))], storylines=STORYLINE_CAIRO)
        config = load_config(kit.config, environ=kit.env)
        now = [datetime.now(UTC)]
        with SQLiteStore(kit.db) as store:
            monitor = Monitor(config, store, clock=lambda: now[0])
            [stale] = store.claim_feeds("a", now=now[0], until=now[0] + timedelta(seconds=30),
                                        limit=1)
            now[0] += timedelta(seconds=31)  # a's lease passed; b claims the feed
            [current] = store.claim_feeds("b", now=now[0], until=now[0] + timedelta(seconds=30),
                                          limit=1)
            report = monitor.poll_feed(config.feeds[0], lease=stale)
            assert report.outcome == "lease_lost" and server.hits["/a.xml"] == 0
            # Passed but not claimed by anyone else: not fetched either (it may be any moment).
            now[0] += timedelta(seconds=31)
            report = monitor.poll_feed(config.feeds[0], lease=current)
            assert report.outcome == "lease_lost" and server.hits["/a.xml"] == 0
            # ... and given up, so that no heartbeat of b's keeps it from the others.
            assert store.feed_state(server.url("/a.xml")).lease_owner is None
            [fresh] = store.claim_feeds("b", now=now[0], until=now[0] + timedelta(seconds=30),
                                        limit=1)
            assert monitor.poll_feed(config.feeds[0], lease=fresh).outcome == "new"
            assert server.hits["/a.xml"] == 1 and store.counts()["entries"] == 2
            assert store.feed_state(server.url("/a.xml")).lease_owner is None  # freed


def test_the_daemon_started_while_postgresql_is_down_waits_for_it(tmp_path, private_postgres):
    """`monitor run` on a PostgreSQL server that does not answer yet (restarting, or started
    after the monitor) waits for it, saying so, rather than dying; `run --once` does not wait.
    The URL's password is in no line of either."""
    pytest.importorskip("psycopg")
    pg = private_postgres
    _db_rows(pg.url("postgres"), "CREATE DATABASE monitor")
    pg.stop("fast")
    kit = Kit(tmp_path)
    kit.env["MONITOR_DB"] = pg.url("monitor", PG_PASSWORD)
    kit.write(feeds=[], interval="1s")
    once = kit.cli("run", "--once", timeout=60)
    assert once.returncode == 2 and "cannot connect to PostgreSQL" in once.stderr, once.stderr
    with kit.start() as daemon:
        assert wait_until(lambda: "waiting for it" in daemon.output(), timeout=30), daemon.output()
        time.sleep(2)
        assert daemon.process.poll() is None, daemon.output()
        pg.start()
        assert wait_until(lambda: "monitoring 0 feeds" in daemon.output(), timeout=60), \
            daemon.output()
        assert daemon.stop() == 0, daemon.output()
    # A server that answers no (here: no such database) is not waited for.
    started = time.monotonic()
    missing = kit.cli("--db", pg.url("no_such_database", PG_PASSWORD), "run", timeout=60)
    assert missing.returncode == 2 and "does not exist" in missing.stderr, missing.stderr
    assert time.monotonic() - started < 20
    output = once.stderr + daemon.output() + missing.stderr
    assert "postgres:***@127.0.0.1" in output
    assert PG_PASSWORD not in output and "Traceback" not in output
