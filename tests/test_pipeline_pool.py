"""poll_all digests many changed bodies in a process pool: it stores exactly what the
one-process path stores, skips entries already stored, and records later changes."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import UTC, datetime, timedelta

from feedserver import FeedServer, rss

from monitor import pipeline
from monitor.config import load_config
from monitor.pipeline import Monitor
from monitor.store import SQLiteStore

TITLES = ["Hamas delegation in Cairo for truce talks", "Qatar mediators push Gaza ceasefire deal",
          "Hostages released under the truce", "Stock markets rally", "Storm hits the coast",
          "Negotiators in Doha discuss a pause in fighting", "Football: cup final tonight"]


def _items(feed: int, count: int, start: int = 0) -> list[dict]:
    when = datetime.now(UTC) - timedelta(hours=1)
    return [{"title": f"{TITLES[(feed + i) % len(TITLES)]} ({feed}-{i})",
             "link": f"https://news.example/{feed}/{i}", "guid": f"g-{feed}-{i}",
             "summary": f"<p>Report {i} of feed {feed} &amp; more</p>", "published": when}
            for i in range(start, start + count)]


def _run(tmp_path, name: str, server: FeedServer, feeds: int, pooled: bool, monkeypatch) -> list:
    config_path = tmp_path / f"{name}.toml"
    lines = ['[monitor]', f'database = "{tmp_path / name}.db"', "", "[[storylines]]",
             'id = "talks"', 'name = "Talks"',
             'all = [["Cairo", "Doha", "Qatar"], ["truce", "ceasefire", "talks"]]', ""]
    for index in range(feeds):
        lines += ["[[feeds]]", f'name = "f{index}"', f'url = "{server.url(f"/f{index}.xml")}"', ""]
    config_path.write_text("\n".join(lines))
    config = load_config(config_path)
    monkeypatch.setattr(pipeline, "POOL_MIN_FEEDS", 2 if pooled else 10**9)
    with SQLiteStore(config.database) as store:
        monitor = Monitor(config, store)
        try:
            first = monitor.poll_all()
            # the pool of a first poll is gone when the cycle ends: no worker left waiting
            assert multiprocessing.active_children() == []
            server.set_feed("/f3.xml", rss(_items(3, 2, start=5) + _items(3, 5)))  # two new
            second = monitor.poll_all()
        finally:
            monitor.close()
    with sqlite3.connect(config.database) as conn:
        rows = conn.execute("SELECT i.feed_url, i.guid, i.title, i.summary, i.url, "
                            "(SELECT group_concat(storyline_id) FROM matches m WHERE m.item_id = i.id) "
                            "FROM items i ORDER BY i.feed_url, i.guid").fetchall()
    outcomes = [(r.outcome, r.stored.new_items) for r in first + second]
    return [[(url.rsplit("/", 1)[1], *rest) for url, *rest in rows], outcomes]


def test_pool_stores_what_one_process_stores(tmp_path, monkeypatch):
    with FeedServer() as server:
        for index in range(20):
            server.set_feed(f"/f{index}.xml", rss(_items(index, 5)))
        pooled = _run(tmp_path, "pooled", server, 20, True, monkeypatch)
        for index in range(20):
            server.set_feed(f"/f{index}.xml", rss(_items(index, 5)))
        single = _run(tmp_path, "single", server, 20, False, monkeypatch)
    assert pooled == single
    rows, outcomes = pooled
    assert len(rows) == 20 * 5 + 2
    assert any(matched for *_, matched in rows)
    assert outcomes[:20] == [("new", 5)] * 20
    assert outcomes[20 + 3] == ("new", 2)  # only the two new entries of the changed feed
    assert {outcome for outcome, _ in outcomes[20:]} == {"new", "not_modified"}


def test_poll_all_adds_threads_while_polls_wait(tmp_path, monkeypatch):
    """Polling starts in one thread and adds threads while every poll waits on the network,
    up to fetch_workers and never more; the reports keep the config's order."""
    import threading
    import time

    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    def slow(handler) -> None:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.3)
        with lock:
            state["now"] -= 1
        feed = int(handler.path.rsplit("/f", 1)[1].split(".")[0])
        body = rss(_items(feed, 1))
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rss+xml")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with FeedServer() as server:
        lines = ["[monitor]", f'database = "{tmp_path / "slow.db"}"', "fetch_workers = 3", ""]
        for index in range(8):
            server.set_handler(f"/f{index}.xml", slow)
            lines += ["[[feeds]]", f'name = "f{index}"', f'url = "{server.url(f"/f{index}.xml")}"', ""]
        (tmp_path / "slow.toml").write_text("\n".join(lines))
        config = load_config(tmp_path / "slow.toml")
        monkeypatch.setattr(pipeline, "POOL_MIN_FEEDS", 10**9)
        with SQLiteStore(config.database) as store:
            monitor = Monitor(config, store)
            try:
                reports = monitor.poll_all()
            finally:
                monitor.close()
    assert [r.feed for r in reports] == [f"f{i}" for i in range(8)]
    assert [r.outcome for r in reports] == ["new"] * 8
    assert state["most"] == 3


def test_entries_of_stored_urls_are_not_matched_again(tmp_path, monkeypatch):
    """The same articles under other guids in other feeds (same links): the parse workers see
    the URLs stored and send the entries without matching or fingerprinting them; the store
    records them as entries of the stored items (dedup layer 2), with no new item or match."""
    from monitor.models import ParsedFeed, RawEntry
    from monitor.prepare import Job, prepare

    with FeedServer() as server:
        for index in range(4):
            server.set_feed(f"/f{index}.xml", rss(_items(index, 6)))
        lines = ["[monitor]", f'database = "{tmp_path / "urls.db"}"', "", "[[storylines]]",
                 'id = "talks"', 'name = "Talks"',
                 'all = [["Cairo", "Doha", "Qatar"], ["truce", "ceasefire", "talks"]]', ""]
        for index in range(8):
            lines += ["[[feeds]]", f'name = "f{index}"', f'url = "{server.url(f"/f{index}.xml")}"', ""]
        (tmp_path / "urls.toml").write_text("\n".join(lines))
        config = load_config(tmp_path / "urls.toml")
        monkeypatch.setattr(pipeline, "POOL_MIN_FEEDS", 2)
        with SQLiteStore(config.database) as store:
            monitor = Monitor(config, store)
            try:
                first = monitor.poll_all(config.feeds[:4])
                for index in range(4, 8):  # feeds 4-7 carry feeds 0-3's articles under new guids
                    copies = [dict(item, guid=f"copy-{item['guid']}") for item in _items(index - 4, 6)]
                    server.set_feed(f"/f{index}.xml", rss(copies))
                second = monitor.poll_all(config.feeds[4:])
                stored_url = _items(0, 1)[0]["link"]
                now = datetime.now(UTC)
                job = Job(body=b"", url="", content_type=None, content_location=None,
                           feed_url="https://other.example/feed", source="other", now=now)
                parsed = ParsedFeed(None, (
                    RawEntry("x1", "Qatar truce talks resume", stored_url, "", None),
                    RawEntry("x2", "Qatar truce talks resume", "https://news.example/new/1", "", None)))
                prepared = prepare(job, parsed, monitor.matcher, store)
            finally:
                monitor.close()
    assert sum(r.stored.new_items for r in first) == 24
    assert [(r.stored.new_items, r.stored.known_url, r.stored.new_matches) for r in second] == [(0, 6, 0)] * 4
    stored, new = prepared.new_entries
    assert (stored.fingerprint, stored.matches) == (None, ())
    assert new.fingerprint is not None and [m.storyline_id for m in new.matches] == ["talks"]
    with sqlite3.connect(config.database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 24
        assert conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 48
