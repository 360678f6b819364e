"""What only the PostgreSQL backend does: its schema history, refusals, the password kept out of
every message, placeholders translated, and several stores (processes) on one database deciding
stories as one. The store's contract on both backends is tests/test_store.py."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from test_store import CHANNELS, FEEDS, NOW, entry, policy

from monitor.errors import StoreError
from monitor.store import describe, open_store
from monitor.store.pg_schema import STEPS
from monitor.store.postgres import to_psycopg
from monitor.store.schema import step_names


def test_the_schema_history_is_the_same_named_steps_as_sqlites(pg_url):
    assert list(STEPS) == step_names()
    with open_store(pg_url) as store:
        assert store.schema_steps() == step_names()
        assert store.integrity_check() == "ok"
    with open_store(pg_url) as store:  # reopened: nothing applied twice
        assert store.schema_steps() == step_names()


def test_a_database_of_a_newer_monitor_is_refused(pg_url):
    import psycopg

    with open_store(pg_url):
        pass
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO monitor_schema_steps (migration_set, name) "
                     "VALUES ('ceasefire-monitor', '0099_from_the_future')")
    with pytest.raises(StoreError, match=r"newer ceasefire-monitor.*0099_from_the_future"):
        open_store(pg_url)


def test_a_foreign_database_is_refused_untouched(pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id INT)")
    with pytest.raises(StoreError, match=r"not created by ceasefire-monitor.*invoices"):
        open_store(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    assert tables == {"invoices"}


def test_a_missing_database_is_not_created_by_the_commands_that_only_look(pg_url):
    with pytest.raises(StoreError, match="no monitor database here yet"):
        open_store(pg_url, create=False)


def test_the_password_never_reaches_a_message():
    url = "postgresql://monitor:s3cr3t-pw@127.0.0.1:1/monitor"  # nothing listens on port 1
    assert describe(url) == "postgresql://monitor:***@127.0.0.1:1/monitor"
    with pytest.raises(StoreError) as raised:
        open_store(url, lock_wait=1.0)
    assert "s3cr3t-pw" not in str(raised.value) and "***" in str(raised.value)
    assert "cannot connect" in str(raised.value)


def test_placeholders_become_psycopgs_and_quoted_text_stays():
    assert to_psycopg("SELECT ?, :name, x::text FROM t WHERE a LIKE '50%' AND b = '?:x'") == (
        "SELECT %s, %(name)s, x::text FROM t WHERE a LIKE '50%%' AND b = '?:x'")


def test_two_stores_recording_the_same_story_at_once_alert_once(pg_url):
    """Two processes' stores (two pools) record copies of one story from two feeds at the same
    moment: the poll lock makes the second see the first's story, so it joins it."""
    with open_store(pg_url) as first, open_store(pg_url) as second:
        first.sync_feeds(FEEDS)
        first.sync_channels(CHANNELS)
        text = "Hamas delegation arrives in Cairo for ceasefire talks with Egyptian mediators"
        outcomes = []
        barrier = threading.Barrier(2)

        def record(store, feed):
            barrier.wait()
            outcomes.append(store.record_poll(
                FEEDS[feed].url, [entry(feed, f"g{feed}", text)], now=NOW, status=200,
                next_poll_at=NOW + timedelta(minutes=1), policy=policy()))

        threads = [threading.Thread(target=record, args=(s, n)) for n, s in enumerate((first, second))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(o.new_items for o in outcomes) == [1, 1]
        assert sorted(o.syndicated for o in outcomes) == [0, 1]  # the second joined the first
        assert first.counts()["stories"] == 1
        alerts = first.alerts()
        assert len(alerts) == len(CHANNELS)  # one per channel, not one per feed


def test_a_profile_cached_by_one_store_is_dropped_after_anothers_poll(pg_url):
    """Each store keeps the story profiles it wrote; another process's poll since makes them
    stale, and the next poll reads them again (else it would decide on an old profile)."""
    with open_store(pg_url) as first, open_store(pg_url) as second:
        first.sync_feeds(FEEDS)
        first.sync_channels(CHANNELS)
        def poll(store, feed, guid, title):
            store.record_poll(FEEDS[feed].url, [entry(feed, guid, title)], now=NOW, status=200,
                              next_poll_at=NOW, policy=policy())

        poll(first, 0, "a", "Hamas delegation arrives in Cairo for ceasefire talks")
        kept = dict(first._profiles)
        assert len(kept) == 1  # kept for its next poll
        poll(first, 0, "b", "Qatar says a truce proposal is on the table")
        assert all(first._profiles[i] is kept[i] for i in kept)  # no other poll between: reused
        kept = dict(first._profiles)
        poll(second, 1, "c", "Egypt hosts envoys over the Rafah crossing")
        poll(first, 0, "d", "Mediators meet again in Doha over the captives")
        # another process's poll came between: every profile read again from the database
        assert set(kept) < set(first._profiles)
        assert not any(first._profiles[i] is kept[i] for i in kept)


def _fill(store) -> None:
    """The same history on any backend: polls of two feeds (a story told twice, another once, an
    unmatched item), a sent alert, a failed one, a verdict, a held alert and its digest."""
    from test_store import TITLE

    store.sync_feeds(FEEDS)
    store.sync_channels(CHANNELS)
    later = NOW + timedelta(minutes=5)
    for feed, guid, title, when in ((0, "a1", TITLE, NOW), (1, "b1", TITLE, later),
                                    (0, "a2", "Qatar and Egypt table truce proposal", later)):
        store.record_poll(FEEDS[feed].url, [entry(feed, guid, title, published=when)], now=when,
                          status=200, next_poll_at=when, policy=policy())
    store.record_poll(FEEDS[1].url, [entry(1, "b2", "Football results of the weekend", matched=False)],
                      now=later, status=200, next_poll_at=later, policy=policy())
    first, second = store.due_alerts("hook", now=later)[:2]
    store.mark_sent(first.id, now=later + timedelta(seconds=3))
    store.mark_failed(second.id, "550 rejected", now=later)
    store.record_feedback("https://news.example/a2", "cairo-talks", right=False, now=later)
    store.write_digest("mail", {"type": "digest", "data": {"count": 0}},
                       [a.id for a in store.due_alerts("mail", now=later)], now=later)


IDS = {"uid", "id", "item_id", "story_id", "digest_id"}


def _without_ids(value):
    """Values as the two backends may differ only in: ids (outbox uids are random; PostgreSQL
    numbers items and stories by sequences, with gaps), float noise."""
    if isinstance(value, dict) and value and all(isinstance(k, int) for k in value):
        return [_without_ids(v) for _k, v in sorted(value.items())]
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in IDS}
    if isinstance(value, list | tuple):
        return [_without_ids(v) for v in value]
    if isinstance(value, float):
        return round(value, 3)  # SQLite's julianday() arithmetic is off by microseconds
    return value


def test_every_read_model_answers_the_same_on_both_backends(pg_url, tmp_path):
    """The CLI and the web desk read the same rows whichever engine stores them."""
    from monitor.store import SQLiteStore

    answers = []
    for store in (SQLiteStore(tmp_path / "m.db"), open_store(pg_url)):
        with store:
            _fill(store)
            since = NOW - timedelta(days=1)
            story = store.matches(limit=1)[0]["story_id"]
            answers.append({
                "matches": store.matches(limit=50), "words": store.matches(words=["qatar"]),
                "stories": store.stories(since=since), "stats": store.storyline_stats(now=NOW),
                "activity": store.storyline_activity(since=since), "detail": store.story_detail(story),
                "totals": store.storyline_totals(), "alerts": store.alerts(limit=50),
                "counts": store.counts(), "alert_counts": store.alert_counts(),
                "outbox": store.outbox_summary(), "held": store.held_summary(),
                "channels": store.channels(), "feedback": store.feedback_counts(),
                "examples": store.feedback_examples("cairo-talks"),
                "latencies": store.delivery_latencies([1.0, 60.0, 3600.0]),
                "review": store.review_candidates("cairo-talks", since=since, limit=10),
                "review_items": store.review_items(limit=10),
                "search": store.search_matches("cair truc", limit=10)[0],
                "sources": store.story_sources([story]),
                "feeds": [(s.url, s.items_seen, s.first_poll_done) for s in store.feed_states()],
            })
    sqlite, postgres = (_without_ids(a) for a in answers)
    for key in sqlite:
        assert postgres[key] == sqlite[key], key
    assert sqlite["latencies"]["count"] == 1 and sqlite["stories"] and sqlite["search"]


def test_threads_deciding_and_not_deciding_at_once_share_the_profile_cache_safely(pg_url, monkeypatch):
    """One process's threads record polls at once: those with a matched item decide stories
    (they read and write the cached profiles), the others take no lock. Neither may break the
    other's view of the cache (a cache emptied under a deciding poll was a KeyError)."""
    from monitor.store import batch

    monkeypatch.setattr(batch, "KEPT_PROFILES", 0)  # every poll that keeps profiles starts again
    with open_store(pg_url) as store:
        store.sync_feeds(FEEDS)
        store.sync_channels(CHANNELS)
        errors: list[BaseException] = []
        words = ["Cairo truce talks resume", "Doha mediators meet envoys", "Hostages freed at Rafah",
                 "Egypt proposes a pause", "Qatar hosts a delegation"]

        def work(n: int) -> None:
            try:
                for i in range(12):
                    matched = (n + i) % 2 == 0
                    title = f"{words[(n + i) % len(words)]} number {n} {i}"
                    store.record_poll(FEEDS[n % 2].url, [entry(n % 2, f"t{n}-{i}", title, matched=matched)],
                                      now=NOW, status=200, next_poll_at=NOW, policy=policy())
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert store.counts()["entries"] == 96


def test_a_poll_commits_without_waiting_for_the_disk_only_when_it_wrote_no_alert(pg_url, monkeypatch):
    """A poll's write with an outbox row must be on disk before any instance delivers the row;
    one without (feed health, items that alert nothing) may be lost in a server crash and is
    redone by the next poll, so it does not wait for the WAL flush."""
    from monitor.store.postgres import PgTx

    statements: list[str] = []
    execute = PgTx.execute

    def watched(self, sql, params=()):
        statements.append(sql)
        return execute(self, sql, params)

    monkeypatch.setattr(PgTx, "execute", watched)
    relaxed = "SET LOCAL synchronous_commit = off"
    with open_store(pg_url) as store:
        store.sync_feeds(FEEDS)
        store.sync_channels(CHANNELS)
        cases = {
            "not modified": lambda: store.record_not_modified(FEEDS[0].url, now=NOW, status=304,
                                                              next_poll_at=NOW, policy=policy()),
            "unmatched item": lambda: store.record_poll(
                FEEDS[0].url, [entry(0, "u", "Football results", matched=False)], now=NOW, status=200,
                next_poll_at=NOW, policy=policy()),
            "an alert": lambda: store.record_poll(
                FEEDS[0].url, [entry(0, "m", "Hamas delegation arrives in Cairo for truce talks")],
                now=NOW, status=200, next_poll_at=NOW, policy=policy()),
            "an old matched item": lambda: store.record_poll(
                FEEDS[1].url, [entry(1, "o", "Qatar tables a truce proposal in Doha",
                                     published=NOW - timedelta(days=9))],
                now=NOW, status=200, next_poll_at=NOW, policy=policy()),
        }
        waited = {}
        for name, record in cases.items():
            statements.clear()
            record()
            waited[name] = relaxed not in statements
    assert waited == {"not modified": False, "unmatched item": False, "an alert": True,
                      "an old matched item": False}
