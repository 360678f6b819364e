"""``monitor migrate --to postgresql://…``: a real SQLite database, filled by the monitor's own
store operations (polls with a syndicated story, alerts sent, failed, pending and held, a feed
down, added and paused feeds, desk verdicts, imported labels, a saved model), copied into a
PostgreSQL database of the test's own: every table's rows equal on both sides, the pending
alert still deliverable, new rows numbered past the copied ones, a second copy refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import ChannelConfig, FeedConfig
from monitor.dedup import fingerprint
from monitor.errors import FeedConnectError
from monitor.models import Item, Match, TermHit
from monitor.policy import DIGEST, ChannelPolicy
from monitor.store import AlertPolicy, NewEntry, SQLiteStore, Store, open_store
from monitor.store.copy import TABLES

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
FEEDS = [FeedConfig("Outlet A", "http://127.0.0.1:1/a.xml", 60),
         FeedConfig("Outlet B", "http://127.0.0.1:1/b.xml", 60),
         FeedConfig("Outlet C", "http://127.0.0.1:1/c.xml", 60)]
CHANNELS = (ChannelConfig(type="webhook", name="hook", url="http://127.0.0.1:1/"),
            ChannelConfig(type="console", name="console"),
            ChannelConfig(type="console", name="digest", policy=ChannelPolicy(mode=DIGEST)))
POLICY = AlertPolicy(channels=CHANNELS, storyline_names={"cairo-talks": "Cairo track"},
                     alert_after=NOW - timedelta(hours=48))
TITLE = "Hamas delegation arrives in Cairo for truce talks with Egyptian mediators"
SUMMARY = "A Hamas delegation arrived in Cairo on Saturday for talks on a Gaza truce, officials said."
OTHER = "Israeli cabinet approves second phase of the hostage release deal"
OTHER_SUMMARY = "The cabinet voted late on Friday to approve the deal's next stage, officials said."
# The primary key (or order) of each table: rows are compared in this order on both sides.
ORDER = {"feeds": "url", "feeds_added": "url", "channels": "name", "stories": "id",
         "story_keys": "key, published, story_id", "items": "id", "entries": "feed_url, guid",
         "matches": "item_id, storyline_id", "alerts": "id", "feedback": "id",
         "learned_models": "storyline_id"}


def entry(feed: int, guid: str, title: str, summary: str, *, url: str | None = None,
          matched: bool = True) -> NewEntry:
    item = Item(feed_url=FEEDS[feed].url, source=FEEDS[feed].name, guid=guid,
                url=url or f"https://news.example/{guid}", title=title, summary=summary,
                published=NOW)
    matches = (Match("cairo-talks", 95.0, (TermHit("Cairo", "Cairo", 100.0),)),) if matched else ()
    return NewEntry(item, fingerprint(title, summary) if matched else None, matches)


def record(store: Store, feed: int, entries: list[NewEntry], now: datetime = NOW):
    return store.record_poll(FEEDS[feed].url, entries, now=now, status=200,
                             next_poll_at=now + timedelta(minutes=1), policy=POLICY,
                             etag=f'"etag-{feed}"', body_hash=f"hash-{feed}")


def fill(path: Path) -> dict[str, int]:
    """An SQLite database with something in every table; returns the ids of notable alerts."""
    with SQLiteStore(path) as store:
        store.sync_feeds(FEEDS)
        store.sync_channels(CHANNELS)
        record(store, 0, [entry(0, "a1", TITLE, SUMMARY),
                          entry(0, "a2", "Weather in Gaza City", "Rain is expected.", matched=False)])
        # the same story from another outlet (a source of it), and a second story
        record(store, 1, [entry(1, "b1", TITLE + " - Reuters", SUMMARY, url="https://other.example/b1"),
                          entry(1, "b2", OTHER, OTHER_SUMMARY)])
        for attempt in range(6):  # feed C goes down: a feed.down alert per channel
            store.record_failure(FEEDS[2].url, FeedConnectError("connection refused"),
                                 now=NOW + timedelta(seconds=attempt),
                                 next_poll_at=NOW + timedelta(minutes=5), policy=POLICY)
        hook = [a.id for a in store.due_alerts("hook", now=NOW)]
        store.mark_sent(hook[0], now=NOW)
        store.mark_failed(hook[1], "410 Gone", now=NOW)
        store.mark_retry(hook[2], "503", now=NOW, channel_next_attempt=NOW + timedelta(seconds=30))
        store.disable_channel("console", "test", now=NOW)
        assert store.add_feed("https://added.example/rss", "Added", 300.0, now=NOW)
        assert store.pause_feed(FEEDS[1].url, now=NOW)
        store.record_feedback("1", "cairo-talks", right=True, now=NOW)
        store.record_feedback("2", "cairo-talks", right=False, now=NOW)
        store.import_examples([("k1", "Truce talks resume", "", "cairo-talks", True)],
                              source="labels:x.jsonl", now=NOW)
        store.save_model("cairo-talks", "fp-1", json.dumps({"weights": [0.5, -1.25]}), now=NOW)
        statuses = {r["status"] for r in store._read("SELECT status FROM alerts")}
        assert statuses == {"sent", "failed", "pending", "held"}
        return {"pending": hook[2], "sent": hook[0], "failed": hook[1]}


def migrate(db: Path, url: str, *extra: str):
    return CliRunner().invoke(cli, ["--db", str(db), "migrate", "--to", url, *extra])


def rows(store: Store, table: str, columns: list[str]) -> list[tuple]:
    names = ", ".join(columns)
    return [tuple(r[c] for c in columns)
            for r in store._read(f"SELECT {names} FROM {table} ORDER BY {ORDER[table]}")]


def test_migrate_copies_every_row_and_the_copy_works_on(tmp_path, pg_url):
    db = tmp_path / "monitor.db"
    ids = fill(db)
    result = migrate(db, pg_url, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    counts = {t["table"]: (t["sqlite"], t["postgresql"]) for t in report["tables"]}
    assert set(counts) == set(TABLES)
    assert all(source == target for source, target in counts.values()), counts
    assert all(source > 0 for source, _ in counts.values()), counts  # every table had rows

    with SQLiteStore(db) as sqlite, open_store(pg_url) as pg:
        for table in TABLES:  # every column SQLite has, row by row
            columns = [r["name"] for r in sqlite._read(f"PRAGMA table_info({table})")]
            assert rows(pg, table, columns) == rows(sqlite, table, columns), table
        story = pg._read("SELECT story_id FROM items WHERE guid = 'a1'")[0]["story_id"]
        assert pg.story_sources([story]) == sqlite.story_sources([story])
        assert len(pg.story_sources([story])[story]) == 2  # both outlets
        assert [a.payload for a in pg.held_alerts("digest", due_by=None)] == \
            [a.payload for a in sqlite.held_alerts("digest", due_by=None)]
        assert pg.search_matches("delegation")[0]  # the generated tsvector was computed

        # the pending alert: still pending, due once the channel's back-off is over, deliverable
        later = NOW + timedelta(minutes=1)
        pending = pg.due_alerts("hook", now=later)
        expected = sqlite.due_alerts("hook", now=later)
        assert [a.id for a in pending] == [ids["pending"]] == [a.id for a in expected]
        assert (pending[0].uid, pending[0].payload) == (expected[0].uid, expected[0].payload)
        assert pg.due_alerts("hook", now=NOW) == []  # the channel's back-off came along
        pg.mark_sent(ids["pending"], now=later)
        assert pg.alert_counts() == {**sqlite.alert_counts(),
                                     "pending": sqlite.alert_counts()["pending"] - 1,
                                     "sent": sqlite.alert_counts()["sent"] + 1}

        # new rows go on past the copied ones: no id collides
        top = max(r["id"] for r in pg._read("SELECT id FROM alerts"))
        assert report["next_ids"]["alerts"] == top + 1
        outcome = record(pg, 0, [entry(0, "a9", "Egypt proposes a three-stage Gaza truce plan",
                                       "Cairo's plan would free hostages in stages.")],
                         now=NOW + timedelta(hours=1))
        assert outcome.new_items == 1 and outcome.new_alerts >= 2
        new = sorted(r["id"] for r in pg._read("SELECT id FROM alerts WHERE id > ?", [top]))
        assert new == list(range(top + 1, top + 1 + outcome.new_alerts))
        assert max(r["id"] for r in pg._read("SELECT id FROM items")) == \
            max(r["id"] for r in sqlite._read("SELECT id FROM items")) + 1
        before = max(r["id"] for r in pg._read("SELECT id FROM feedback"))
        pg.record_feedback("5", "cairo-talks", right=True, now=NOW)
        assert max(r["id"] for r in pg._read("SELECT id FROM feedback")) == before + 1
        assert pg.saved_model("cairo-talks", "fp-1") == json.dumps({"weights": [0.5, -1.25]})
        assert pg.feed_state(FEEDS[2].url).down_alerted and pg.paused_feeds().keys() == {FEEDS[1].url}


def test_migrate_prints_both_sides_and_refuses_a_second_copy(tmp_path, pg_url):
    db = tmp_path / "monitor.db"
    fill(db)
    first = migrate(db, pg_url)
    assert first.exit_code == 0, first.output
    lines = {cells[0]: cells[1:] for line in first.stdout.splitlines()
             if (cells := line.split()) and cells[0] in TABLES}
    assert set(lines) == set(TABLES) and all(cells[2] == "ok" for cells in lines.values())
    assert lines["items"] == ["4", "4", "ok"] and lines["alerts"][0] == lines["alerts"][1]
    assert "copied in" in first.stdout
    # the same target again, its URL now with a password (trust auth ignores it): refused, the
    # password never shown, nothing written
    secret = pg_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2secret@")
    again = migrate(db, secret)
    assert again.exit_code == 2
    assert "not an empty database" in again.output and "4 items" in again.output
    assert "hunter2secret" not in again.output and "postgres:***@" in again.output
    with open_store(pg_url) as pg:
        assert pg.counts()["items"] == 4


def test_a_target_with_feeds_only_is_refused_too(tmp_path, pg_url):
    """A database a 'monitor run' started on (its feeds synced, nothing polled) is not empty."""
    db = tmp_path / "monitor.db"
    fill(db)
    with open_store(pg_url) as pg:
        pg.sync_feeds(FEEDS[:1])
    result = migrate(db, pg_url)
    assert result.exit_code == 2 and "1 feeds" in result.output
    with open_store(pg_url) as pg:
        assert pg.counts()["items"] == 0 and len(pg.feed_states()) == 1


def test_migrate_wants_an_sqlite_source_and_a_postgresql_target(tmp_path, pg_url):
    missing = migrate(tmp_path / "none.db", pg_url)
    assert missing.exit_code == 2 and "no such database" in missing.output
    to_file = migrate(tmp_path / "none.db", str(tmp_path / "other.db"))
    assert to_file.exit_code == 2 and "postgresql:// URL" in to_file.output
    from_pg = CliRunner().invoke(cli, ["--db", pg_url, "migrate", "--to", pg_url])
    assert from_pg.exit_code == 2 and "copies an SQLite file" in from_pg.output


@pytest.mark.parametrize("table", TABLES)
def test_every_copied_table_exists_on_both_sides(tmp_path, pg_url, table):
    """A table renamed or dropped by a schema step would be skipped silently: not so."""
    with SQLiteStore(tmp_path / "m.db") as sqlite, open_store(pg_url) as pg:
        assert sqlite._read(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"] == 0
        assert pg._read(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"] == 0


def test_a_row_postgresql_cannot_hold_stops_the_copy_and_leaves_the_target_empty(tmp_path, pg_url):
    """SQLite keeps a NUL byte in a text; PostgreSQL refuses it: one clear error naming the
    table, and nothing copied (one transaction), so the copy can be run again once fixed."""
    import sqlite3

    db = tmp_path / "monitor.db"
    fill(db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE items SET summary = 'bad' || char(0) || 'byte' WHERE guid = 'b2'")
    result = migrate(db, pg_url)
    assert result.exit_code == 2, result.output
    assert "copying items failed, nothing was copied" in result.output
    assert "Traceback" not in result.output
    with open_store(pg_url) as pg:
        assert pg.counts() == dict.fromkeys(("items", "stories", "matches", "alerts", "entries"), 0)
        assert pg.feed_states() == []
