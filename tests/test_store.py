"""The store on real SQLite files: dedup layers, the outbox, and refusing files not ours."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from monitor.config import ChannelConfig, FeedConfig
from monitor.dedup import NUM_BANDS, band_keys, fingerprint, unpack_shingles
from monitor.errors import FeedConnectError, StoreError
from monitor.models import Item, Match, TermHit
from monitor.store import AlertPolicy, GuidReader, NewEntry, SQLiteStore, Store, open_store

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
FEEDS = [FeedConfig("Outlet A", "http://127.0.0.1:1/a.xml", 60),
         FeedConfig("Outlet B", "http://127.0.0.1:1/b.xml", 60)]
CHANNELS = (ChannelConfig(type="webhook", name="hook", url="http://127.0.0.1:1/"),
            ChannelConfig(type="console", name="console", storylines=("cairo-talks",)))


def policy(**changes) -> AlertPolicy:
    values = dict(channels=CHANNELS, storyline_names={"cairo-talks": "Cairo track"},
                  alert_after=NOW - timedelta(hours=48))
    values.update(changes)
    return AlertPolicy(**values)


def entry(feed: int, guid: str, title: str, *, url: str | None = None, summary: str = "",
          published: datetime = NOW, matched: bool = True) -> NewEntry:
    item = Item(feed_url=FEEDS[feed].url, source=FEEDS[feed].name, guid=guid,
                url=url or f"https://news.example/{guid}", title=title, summary=summary,
                published=published)
    matches = (Match("cairo-talks", 95.0, (TermHit("Cairo", "Cairo", 100.0),)),) if matched else ()
    return NewEntry(item, fingerprint(title, summary) if matched else None, matches)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    """The store's contract: each test that takes ``store`` runs on both backends."""
    if request.param == "sqlite":
        opened: Store = SQLiteStore(tmp_path / "monitor.db")
    else:
        opened = open_store(request.getfixturevalue("pg_url"))
    with opened:
        opened.sync_feeds(FEEDS)
        opened.sync_channels(CHANNELS)
        yield opened


@pytest.fixture
def sqlite_store(tmp_path):
    """What only the SQLite backend does (its file, its connection, its write lock)."""
    with SQLiteStore(tmp_path / "monitor.db") as store:
        store.sync_feeds(FEEDS)
        store.sync_channels(CHANNELS)
        yield store


def record(store: Store, feed: int, entries, **changes):
    return store.record_poll(FEEDS[feed].url, entries, now=NOW, status=200,
                             next_poll_at=NOW + timedelta(minutes=1), policy=policy(**changes))


TITLE = "Hamas delegation arrives in Cairo for truce talks with Egyptian mediators"
SUMMARY = "A Hamas delegation arrived in Cairo on Saturday for talks on a Gaza truce, officials said."


def test_new_item_matches_and_queues_one_alert_per_channel(store):
    outcome = record(store, 0, [entry(0, "g1", TITLE, summary=SUMMARY)])
    assert (outcome.new_items, outcome.new_matches, outcome.new_alerts) == (1, 1, 2)
    due = store.due_alerts("hook", now=NOW)
    assert len(due) == 1 and due[0].payload["data"]["storyline"]["name"] == "Cairo track"
    assert due[0].payload["data"]["item"]["title"] == TITLE
    assert due[0].uid.startswith("msg_")


def test_same_entry_twice_is_nothing_new(store):
    record(store, 0, [entry(0, "g1", TITLE)])
    again = record(store, 0, [entry(0, "g1", TITLE)])
    assert (again.new_items, again.new_matches, again.new_alerts) == (0, 0, 0)
    assert store.known_guids(FEEDS[0].url, ["g1", "g2"]) == {"g1"}


def test_same_url_in_two_feeds_is_one_item(store):
    record(store, 0, [entry(0, "g1", TITLE, url="https://news.example/story")])
    second = record(store, 1, [entry(1, "other-guid", "Different headline entirely",
                                     url="https://news.example/story")])
    assert (second.new_items, second.known_url, second.new_alerts) == (0, 1, 0)
    assert store.counts()["items"] == 1 and store.counts()["entries"] == 2


def test_syndicated_story_alerts_once_and_lists_sources(store):
    record(store, 0, [entry(0, "g1", TITLE, summary=SUMMARY)])
    second = record(store, 1, [entry(1, "g9", TITLE + " - Reuters", summary=SUMMARY,
                                     url="https://other.example/x")])
    assert (second.new_items, second.syndicated, second.new_matches, second.new_alerts) == (1, 1, 1, 0)
    rows = store.matches(limit=10)
    assert len({r["story_id"] for r in rows}) == 1
    assert sorted(r["alerted"] for r in rows) == [False, True]


def test_only_matched_items_are_compared_with_stories(store):
    # Two outlets carry a story no storyline matched: each copy is a story of its own, with no
    # band keys, so a matched copy later starts a story (and alerts) rather than joining one.
    record(store, 0, [entry(0, "g1", TITLE, summary=SUMMARY, matched=False)])
    copy = record(store, 1, [entry(1, "g2", TITLE, summary=SUMMARY, url="https://other.example/2",
                                   matched=False)])
    assert (copy.new_items, copy.syndicated, copy.new_alerts) == (1, 0, 0)
    assert store.counts()["stories"] == 2
    assert store._read("SELECT COUNT(*) AS n FROM story_keys")[0]["n"] == 0
    matched = record(store, 1, [entry(1, "g3", TITLE + " - AP", summary=SUMMARY,
                                      url="https://other.example/3")])
    assert (matched.syndicated, matched.new_alerts) == (0, 2)
    again = record(store, 0, [entry(0, "g4", TITLE + " - Reuters", summary=SUMMARY,
                                    url="https://news.example/4")])
    assert (again.syndicated, again.new_alerts) == (1, 0)  # matched copies are one story


def test_entry_skipped_for_a_stored_url_that_is_not_stored_is_refused(store):
    skipped = entry(0, "g1", TITLE, matched=False)
    skipped = NewEntry(skipped.item, None, (), url_known=True)
    with pytest.raises(StoreError, match="is stored, but it is not"):
        record(store, 0, [skipped])
    assert store.counts()["items"] == 0


def test_different_story_same_topic_alerts_again(store):
    record(store, 0, [entry(0, "g1", TITLE, summary=SUMMARY)])
    other = record(store, 1, [entry(1, "g2", "Egypt proposes three-stage Gaza truce plan",
                                    summary="Cairo's plan would free hostages in stages.")])
    assert other.new_alerts == 2 and other.syndicated == 0


def test_near_duplicate_outside_window_is_a_new_story(store):
    record(store, 0, [entry(0, "g1", TITLE, summary=SUMMARY)])
    later = record(store, 1, [entry(1, "g2", TITLE, summary=SUMMARY, url="https://x.example/2",
                                    published=NOW + timedelta(days=5))],
                   alert_after=NOW - timedelta(days=30))
    assert later.syndicated == 0 and later.new_alerts == 2


def test_old_items_are_stored_and_matched_but_never_alerted(store):
    old = record(store, 0, [entry(0, "g1", TITLE, published=NOW - timedelta(days=3))])
    assert (old.new_items, old.new_matches, old.new_alerts) == (1, 1, 0)


def test_undated_items_do_not_alert_on_first_poll(store):
    undated = entry(0, "g1", TITLE)
    undated = NewEntry(Item(**{**undated.item.__dict__, "published_known": False}),
                       undated.fingerprint, undated.matches)
    assert record(store, 0, [undated], alert_undated=False).new_alerts == 0


def test_outbox_lifecycle(store):
    record(store, 0, [entry(0, "g1", TITLE), entry(0, "g2", "Qatar and Egypt table truce proposal")])
    first, second = store.due_alerts("hook", now=NOW)
    assert first.id < second.id
    store.mark_retry(first.id, "HTTP 500", now=NOW, channel_next_attempt=NOW + timedelta(seconds=30))
    assert store.due_alerts("hook", now=NOW + timedelta(seconds=10)) == []  # the channel backs off
    again = store.due_alerts("hook", now=NOW + timedelta(seconds=31))
    assert [a.id for a in again] == [first.id, second.id] and again[0].attempts == 1
    assert again[0].uid == first.uid  # the idempotency key is stable across retries
    store.mark_sent(first.id, now=NOW)
    store.mark_failed(second.id, "550 rejected", now=NOW)
    assert store.due_alerts("hook", now=NOW + timedelta(hours=1)) == []
    assert [a["status"] for a in store.alerts(limit=10) if a["channel"] == "hook"] == ["failed", "sent"]
    assert store.retry_alerts(failed=True) == 1
    assert [a.id for a in store.due_alerts("hook", now=NOW + timedelta(hours=1))] == [second.id]


def test_disabled_channel_gets_nothing_until_enabled(store):
    record(store, 0, [entry(0, "g1", TITLE)])
    store.disable_channel("hook", "HTTP 410 Gone", now=NOW)
    assert store.due_alerts("hook", now=NOW) == []
    assert store.channels()[1]["disabled_reason"] == "HTTP 410 Gone"
    assert store.enable_channel("hook")
    assert len(store.due_alerts("hook", now=NOW)) == 1


def test_feed_down_alert_once_then_recovered(store):
    """One "feed down" alert per channel, at the ``down_after``-th failure in a row (not one
    later), and never again while the feed stays down, each failure at its own time."""
    url = FEEDS[0].url

    def down_alerts() -> int:
        return [a["kind"] for a in store.alerts(limit=50)].count("feed.down")

    for n in range(1, 7):
        at = NOW + timedelta(minutes=n)
        state = store.record_failure(url, FeedConnectError("connection refused"), now=at,
                                     next_poll_at=at, down_after=3, policy=policy())
        assert state.consecutive_errors == n
        assert down_alerts() == (0 if n < 3 else len(CHANNELS)), n
    assert state.last_error_code == "fetch.connect"
    store.record_not_modified(url, now=NOW + timedelta(minutes=7), status=304,
                              next_poll_at=NOW, policy=policy())
    kinds = [a["kind"] for a in store.alerts(limit=50)]
    assert kinds.count("feed.recovered") == len(CHANNELS)
    assert store.feed_state(url).consecutive_errors == 0
    # down again later: a new outage, a new alert
    for n in range(3):
        at = NOW + timedelta(hours=1, minutes=n)
        store.record_failure(url, FeedConnectError("connection refused"), now=at,
                             next_poll_at=at, down_after=3, policy=policy())
    assert down_alerts() == 2 * len(CHANNELS)


def test_a_delivered_alert_ends_the_channel_outage(store):
    """After failures, one delivery resets the channel: the next outage starts again from
    the first (shortest) backoff, and nothing holds the channel back."""
    record(store, 0, [entry(0, "g1", TITLE), entry(0, "g2", "Qatar and Egypt table truce proposal")])
    first, second = store.due_alerts("hook", now=NOW)
    for attempt in range(3):
        store.mark_retry(first.id, "HTTP 500", now=NOW + timedelta(seconds=attempt),
                         channel_next_attempt=NOW + timedelta(seconds=10 * (attempt + 1)))
    assert store.channel_failures("hook") == 3
    store.mark_sent(first.id, now=NOW + timedelta(seconds=40))
    assert store.channel_failures("hook") == 0
    assert [a.id for a in store.due_alerts("hook", now=NOW + timedelta(seconds=40))] == [second.id]
    store.mark_retry(second.id, "HTTP 500", now=NOW + timedelta(seconds=41),
                     channel_next_attempt=NOW + timedelta(seconds=43))
    assert store.channel_failures("hook") == 1  # the first failure of a new outage


@pytest.mark.parametrize("offset", [-3600, 3600, -72 * 3600, 72 * 3600])
def test_a_copy_published_within_the_window_before_or_after_joins_the_story(store, offset):
    """Stories are looked for on both sides of a copy's time: a copy published an hour (or the
    whole window) before the stored story, polled later, is the same story and alerts no more."""
    record(store, 0, [entry(0, "g1", TITLE, summary=SUMMARY)])
    copy = entry(1, "g2", TITLE + " - Reuters", summary=SUMMARY, url="https://other.example/2",
                 published=NOW + timedelta(seconds=offset))
    outcome = record(store, 1, [copy], alert_after=NOW - timedelta(days=30))
    assert (outcome.new_items, outcome.syndicated, outcome.new_alerts) == (1, 1, 0)
    # the same with a headline of its own: found by the text's band keys, not the title key
    other = entry(1, "g3", TITLE.replace("arrives", "lands"), summary=SUMMARY,
                  url="https://other.example/3", published=NOW + timedelta(seconds=offset))
    outcome = record(store, 1, [other], alert_after=NOW - timedelta(days=30))
    assert (outcome.new_items, outcome.syndicated, outcome.new_alerts) == (1, 1, 0)


@pytest.mark.parametrize("offset", [-72 * 3600 - 1, 72 * 3600 + 1])
def test_a_copy_published_outside_the_window_is_a_new_story(store, offset):
    record(store, 0, [entry(0, "g1", TITLE, summary=SUMMARY)])
    copy = entry(1, "g2", TITLE + " - Reuters", summary=SUMMARY, url="https://other.example/2",
                 published=NOW + timedelta(seconds=offset))
    outcome = record(store, 1, [copy], alert_after=NOW - timedelta(days=30))
    assert (outcome.syndicated, outcome.new_alerts) == (0, 2)


_LONG = ("Egyptian mediators handed Hamas revised truce proposal during overnight Cairo meeting "
         "attended by Qatari envoy Sunday according officials briefed about prisoner exchange")
_OTHER = ("Egyptian mediators handed Hamas revised truce proposal during overnight Cairo meeting "
          "attended terms plus aid convoy route through Rafah crossing later confirmed publicly again")


def test_a_story_that_shares_band_keys_but_not_enough_text_is_another_story(store):
    """Band keys only propose candidates: a story about the same meeting that shares a third
    of its text is checked, found too different, and alerts on its own."""
    first, second = fingerprint("", _LONG), fingerprint("", _OTHER)
    assert set(first.band_keys) & set(second.band_keys)  # a candidate...
    assert first.duplicates(second.shingles) is None  # ...that is not the same story
    record(store, 0, [entry(0, "g1", "", summary=_LONG)])
    other = record(store, 1, [entry(1, "g2", "", summary=_OTHER)])
    assert (other.new_items, other.syndicated, other.new_alerts) == (1, 0, 2)


def test_an_undated_item_alerts_after_the_first_poll(store):
    """Undated items are held back on a feed's first poll only (they would all look new)."""
    undated = entry(0, "g1", TITLE)
    undated = NewEntry(Item(**{**undated.item.__dict__, "published_known": False}),
                       undated.fingerprint, undated.matches)
    assert record(store, 0, [undated]).new_alerts == 2


def test_storyline_stats_count_the_last_24_hours(store):
    day_before = NOW - timedelta(hours=25)
    store.record_poll(FEEDS[0].url, [entry(0, "g1", TITLE, published=day_before)], now=day_before,
                      status=200, next_poll_at=NOW, policy=policy(alert_after=NOW - timedelta(days=3)))
    record(store, 1, [entry(1, "g2", "Qatar and Egypt table truce proposal")])
    assert store.storyline_stats(now=NOW)["cairo-talks"] == {
        "total": 2, "last_24h": 1, "last_match": NOW.isoformat()}
    assert store.storyline_stats(now=NOW + timedelta(hours=25))["cairo-talks"]["last_24h"] == 0


def test_desk_feedback_is_stored_as_what_the_item_truly_is(store):
    """'right' on a match and 'wrong' on a miss are positives; 'wrong' on a match is a negative.
    An item is named by its id or its link; an unknown item is a KeyError."""
    record(store, 0, [entry(0, "g1", TITLE, summary=SUMMARY, url="https://news.example/one")])
    item_id = store._read("SELECT id FROM items")[0]["id"]
    right = store.record_feedback(str(item_id), "cairo-talks", right=True, now=NOW)
    assert (right["matched"], right["label"], right["title"]) == (True, True, TITLE)
    missed = store.record_feedback("https://news.example/one", "truce-talks", right=False, now=NOW)
    assert (missed["matched"], missed["label"]) == (False, True)
    assert store.feedback_examples("truce-talks") == [(f"item:{item_id}", TITLE, SUMMARY, True)]
    wrong = store.record_feedback(str(item_id), "cairo-talks", right=False, now=NOW)
    assert (wrong["matched"], wrong["label"]) == (True, False)  # the later verdict replaces it
    assert store.feedback_examples("cairo-talks") == [(f"item:{item_id}", TITLE, SUMMARY, False)]
    assert store.feedback_counts() == {"cairo-talks": {"examples": 1, "positives": 0, "desk": 1},
                                       "truce-talks": {"examples": 1, "positives": 1, "desk": 1}}
    with pytest.raises(KeyError):
        store.record_feedback("https://news.example/never", "cairo-talks", right=True, now=NOW)


def test_a_saved_model_is_found_only_for_its_fingerprint(store):
    assert store.saved_model("cairo-talks", "f1") is None
    store.save_model("cairo-talks", "f1", '{"weights": [1]}', now=NOW)
    assert store.saved_model("cairo-talks", "f1") == '{"weights": [1]}'
    assert store.saved_model("cairo-talks", "f2") is None  # trained on other examples: retrain
    store.save_model("cairo-talks", "f2", '{"weights": [2]}', now=NOW)
    assert store.saved_model("cairo-talks", "f2") == '{"weights": [2]}'
    assert store.saved_model("cairo-talks", "f1") is None  # one model per storyline


def test_errors_are_kept_to_500_characters(store):
    """A receiver or feed that answers with a page of text does not fill the database: every
    stored error is cut to its first 500 characters."""
    long = "x" * 400 + "y" * 600
    record(store, 0, [entry(0, "g1", TITLE)])
    first = store.due_alerts("hook", now=NOW)[0]
    store.mark_retry(first.id, long, now=NOW, channel_next_attempt=NOW)
    assert store.due_alerts("hook", now=NOW)[0].last_error == long[:500]
    assert store.channels()[1]["last_error"] == long[:500]
    store.mark_failed(first.id, long, now=NOW)
    assert store.alerts(status="failed")[0]["last_error"] == long[:500]
    store.disable_channel("hook", long, now=NOW)
    assert store.channels()[1]["disabled_reason"] == long[:500]
    state = store.record_failure(FEEDS[1].url, FeedConnectError(long), now=NOW, next_poll_at=NOW)
    assert state.last_error == long[:500]


def test_every_stored_link_and_guid_is_known_however_many_are_asked(store):
    """The lookups go in chunks of 500 (SQLite's limit on parameters): a feed of 1,201 entries
    polled again knows every one, the 500th, 501st and last included."""
    entries = [entry(0, f"g{n}", f"Headline number {n}", matched=False) for n in range(1201)]
    record(store, 0, entries)
    guids = [e.item.guid for e in entries]
    urls = [e.item.url for e in entries]
    assert store.known_guids(FEEDS[0].url, [*guids, "new"]) == set(guids)
    assert store.known_urls([*urls, "https://news.example/new"]) == set(urls)
    reader = GuidReader(store.connect_to)
    assert reader.known_guids(FEEDS[0].url, guids) == set(guids)
    assert reader.known_urls(list(reversed(urls))) == set(urls)


def test_a_successful_poll_after_an_outage_records_the_feed_healthy_and_recovered(store):
    url = FEEDS[0].url
    for n in range(3):
        store.record_failure(url, FeedConnectError("connection refused"), now=NOW - timedelta(minutes=n),
                             next_poll_at=NOW, down_after=3, policy=policy())
    later = NOW + timedelta(minutes=5)
    outcome = store.record_poll(url, [entry(0, "g1", TITLE)], now=later, status=200,
                                next_poll_at=later + timedelta(minutes=1), policy=policy(),
                                etag='"v2"', last_modified="Thu, 26 Nov 2026 07:05:00 GMT",
                                body_hash="abc")
    assert outcome.new_alerts == 2 + len(CHANNELS)  # the match on two channels, and "recovered"
    state = store.feed_state(url)
    assert (state.consecutive_errors, state.last_error, state.last_error_code) == (0, None, None)
    assert (state.last_success_at, state.last_fetch_at, state.last_status) == (later, later, 200)
    assert (state.etag, state.last_modified, state.body_hash) == (
        '"v2"', "Thu, 26 Nov 2026 07:05:00 GMT", "abc")
    assert state.next_poll_at == later + timedelta(minutes=1)
    assert state.items_seen == 1 and state.first_poll_done
    assert [a["kind"] for a in store.alerts(limit=50)].count("feed.recovered") == len(CHANNELS)
    assert {a["title"] for a in store.alerts(limit=50) if a["kind"].startswith("feed.")} == {"Outlet A"}


def test_a_feed_recovering_without_a_policy_queues_nothing(store):
    url = FEEDS[0].url
    for _ in range(3):
        store.record_failure(url, FeedConnectError("refused"), now=NOW, next_poll_at=NOW,
                             down_after=3, policy=policy())
    assert store.record_not_modified(url, now=NOW, status=304, next_poll_at=NOW) == 0
    assert store.record_not_modified(url, now=NOW, status=304, next_poll_at=NOW,
                                     policy=policy()) == 0  # already recovered


def test_an_alert_lists_the_sources_of_its_story(store):
    record(store, 0, [entry(0, "g1", TITLE, summary=SUMMARY, url="https://news.example/one",
                            published=NOW - timedelta(minutes=3))])
    [alert] = store.due_alerts("hook", now=NOW)
    assert alert.payload["data"]["sources"] == [{
        "source": "Outlet A", "title": TITLE, "link": "https://news.example/one",
        "published": (NOW - timedelta(minutes=3)).isoformat()}]


def test_labelled_examples_are_imported_and_replaced_by_key(store):
    rows = [("k1", "Truce talks", "in Cairo", "cairo-talks", True),
            ("k2", "Football truce", "", "cairo-talks", False)]
    assert store.import_examples(rows, source="labels.jsonl", now=NOW) == 2
    assert store.feedback_examples("cairo-talks") == [
        ("label:k1", "Truce talks", "in Cairo", True), ("label:k2", "Football truce", "", False)]
    store.import_examples([("k2", "Football truce", "", "cairo-talks", True)], source="x", now=NOW)
    assert store.feedback_examples("cairo-talks")[1] == ("label:k2", "Football truce", "", True)
    assert store.feedback_counts() == {"cairo-talks": {"examples": 2, "positives": 2, "desk": 0}}


def test_the_same_headline_over_another_summary_is_the_same_story(store):
    """A headline of five words or more is a story's key: an outlet that rewrites the dek
    under the same headline joins the story (found through the stored headline key)."""
    record(store, 0, [entry(0, "g1", TITLE, summary=SUMMARY)])
    other = record(store, 1, [entry(1, "g2", TITLE.upper(), url="https://other.example/2",
                                    summary="Officials in Doha and Washington welcomed the move.")])
    assert (other.syndicated, other.new_alerts) == (1, 0)


def _story_of_each_item(store: Store) -> dict[str, str]:
    """guid -> the guid of the item that started its story."""
    return dict(store._reading(lambda tx: tx.execute(
        "SELECT i.guid, f.guid FROM items i JOIN stories s ON s.id = i.story_id "
        "JOIN items f ON f.id = s.first_item_id").fetchall()))


_TRUCE = ("Israeli cabinet approves hostage release deal after overnight vote in Jerusalem",
          "Ministers voted through the agreement with Hamas after a six-hour meeting, under which "
          "captives held in Gaza will be freed in stages over the coming days.")
_AID = ("Aid convoys enter northern Gaza through reopened Zikim crossing for first time",
        "Dozens of trucks carrying flour and medicine crossed into the north on Tuesday after the "
        "crossing reopened, the United Nations relief agency said in a statement.")
_H = timedelta(hours=1)


def test_a_poll_decides_copies_of_stored_and_of_its_own_stories_across_a_flush(store):
    """One poll of many entries (layer 3 answers from a snapshot of the stored keys taken before
    the poll writes anything, plus the poll's own stories): copies of stories stored earlier,
    copies of stories started earlier in the same poll after their alert wrote them mid-poll
    (``PollBatch.flush``), each counted once, and each item within its own window only."""
    record(store, 0, [entry(0, "a", TITLE, summary=SUMMARY),
                      entry(0, "b", "", summary=_LONG, published=NOW - 100 * _H)])
    poll = [
        # a new story: it alerts, so the poll's rows are written before the next entry
        entry(1, "n1", _TRUCE[0], summary=_TRUCE[1], published=NOW + _H),
        entry(1, "a-copy", TITLE.replace("arrives", "lands"), summary=SUMMARY,
              published=NOW + 2 * _H),  # stored a, by its text
        entry(1, "n1-text", _TRUCE[0].replace("approves", "backs"), summary=_TRUCE[1],
              published=NOW + 3 * _H),  # n1 (written), by its text
        entry(1, "n1-title", _TRUCE[0].upper(), summary="Officials welcomed the vote.",
              published=NOW + 4 * _H),  # n1 (written), by its headline
        entry(1, "n2", _AID[0], summary=_AID[1], published=NOW + 5 * _H),  # another new story, another write
        entry(1, "b-copy", "", summary=_LONG, published=NOW - 99 * _H),  # stored b, 99 h ago
        entry(1, "a-late", TITLE + " - Reuters", summary=SUMMARY,
              published=NOW + 73 * _H),  # a's text, but after a's window: a story of its own
        entry(1, "n2-copy", _AID[0] + " - AP", summary=_AID[1], published=NOW + 6 * _H),
        entry(1, "n1-again", _TRUCE[0].replace("approves", "endorses"), summary=_TRUCE[1],
              published=NOW + 7 * _H),
    ]
    outcome = record(store, 1, poll, event_stories=False)
    assert outcome.new_alerts == 6  # n1, n2 and a-late on both channels: two writes mid-poll
    assert _story_of_each_item(store) == {
        "a": "a", "b": "b", "n1": "n1", "a-copy": "a", "n1-text": "n1", "n1-title": "n1",
        "n2": "n2", "b-copy": "b", "a-late": "a-late", "n2-copy": "n2", "n1-again": "n1"}


_PROPOSAL = "Egypt hands Hamas and Israel a revised truce proposal at overnight Cairo meeting"
_PROPOSAL_TEXT = ("Egyptian mediators handed both sides a revised proposal for a Gaza truce during an "
                  "overnight meeting in Cairo attended by a Qatari envoy, officials briefed on the "
                  "talks said on Sunday, adding that a reply was expected within days.")


def test_a_story_of_the_poll_written_mid_poll_counts_its_keys_once(store, monkeypatch):
    """The copy shares 7 band keys with the stored story and 4 with a story the same poll
    started (and wrote, for its alert) 40 hours later; with one story compared, the stored
    one is, as it would be poll by poll. Counted twice (the snapshot re-read after the write,
    plus the poll's own copy), the poll's story would be compared instead, and joined."""
    from monitor.store import batch

    monkeypatch.setattr(batch, "MAX_CANDIDATES", 1)
    record(store, 0, [entry(0, "stored", _PROPOSAL, summary=_PROPOSAL_TEXT,
                            published=NOW - 40 * _H)], event_stories=False)
    later = _PROPOSAL_TEXT.replace("an overnight", "an US").replace(
        "the talks said", "the final Egyptian").replace("that a reply", "early armed fresh")
    copy = _PROPOSAL_TEXT.replace("mediators handed", "mediators late")
    outcome = record(store, 1, [
        entry(1, "later", _PROPOSAL.replace("hands", "offers"), summary=later,
              published=NOW + 40 * _H),  # a story of its own: outside the stored one's window
        entry(1, "copy", _PROPOSAL.replace("hands", "gives"), summary=copy, published=NOW)],
        event_stories=False)
    assert outcome.new_alerts == 2  # "later" alerted: the poll's rows were written before "copy"
    assert _story_of_each_item(store) == {"stored": "stored", "later": "later", "copy": "stored"}


def test_a_key_with_more_stored_rows_than_read_ahead_is_looked_up_per_item(store, monkeypatch):
    """The snapshot reads ``PREFETCH_PER_KEY`` rows per key, the newest of the poll's span: an
    item whose own window holds fewer of them than it needs, where older rows may be, asks the
    table, so a copy of an old story of a repeated headline still finds it."""
    from monitor.store import batch

    monkeypatch.setattr(batch, "PREFETCH_PER_KEY", 2)
    for hours in (0, 150, 300, 450):  # the same headline, each time outside the last's window
        record(store, 0, [entry(0, f"h{hours}", TITLE, summary=SUMMARY,
                                published=NOW + hours * _H)], event_stories=False)
    assert len(set(_story_of_each_item(store).values())) == 4
    poll = [entry(1, "c440", TITLE + " - AP", summary=SUMMARY, published=NOW + 440 * _H),
            entry(1, "c10", TITLE + " - AP", summary=SUMMARY, published=NOW + 10 * _H),
            entry(1, "c160", TITLE.replace("arrives", "lands"), summary=SUMMARY,
                  published=NOW + 160 * _H)]
    record(store, 1, poll, event_stories=False)
    stories = _story_of_each_item(store)
    assert (stories["c440"], stories["c10"], stories["c160"]) == ("h450", "h0", "h150")


@pytest.fixture(params=["sqlite", "postgres"])
def two_stores(request, tmp_path):
    """Two empty stores of one backend."""
    if request.param == "sqlite":
        made: list[Store] = [SQLiteStore(tmp_path / "one.db"), SQLiteStore(tmp_path / "two.db")]
    else:
        import psycopg

        database = request.getfixturevalue("pg_database")
        made = []
        for _ in range(2):
            schema = f"t_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(database, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            made.append(open_store(f"{database}?options={quote(f'-csearch_path={schema}')}"))
    for opened in made:
        opened.sync_feeds(FEEDS)
        opened.sync_channels(CHANNELS)
    yield made
    for opened in made:
        opened.close()


def _copies(seed: int) -> list[NewEntry]:
    """Reports of a few stories and their copies (the same headline, another one, a shortened
    text), spread over 16 days, so that some copies fall in their story's window and some not,
    in a shuffled order."""
    texts = [(TITLE, SUMMARY), ("", _LONG), ("", _OTHER), _TRUCE, _AID]
    rng = random.Random(seed)
    made = []
    for number in range(48):
        title, summary = texts[number % len(texts)]
        variant = rng.randrange(4)
        if variant == 1 and title:
            title = title + " - Reuters"
        elif variant == 2 and title:
            title, summary = title.upper(), "Officials said more would follow."
        elif variant == 3:
            summary = " ".join(summary.split()[:-3])
        made.append(entry(1, f"g{number}", title, summary=summary,
                          published=NOW + rng.randrange(-190, 190) * _H))
    rng.shuffle(made)
    return made


@pytest.mark.parametrize(("prefetched", "compared"), [(64, 20), (2, 20), (64, 1)])
@pytest.mark.parametrize("event_stories", [False, True])
def test_a_poll_of_many_entries_decides_as_polls_of_one(two_stores, monkeypatch, prefetched,
                                                        compared, event_stories):
    """The same entries recorded one per poll and all in one poll (written mid-poll by each
    new story's alert) join the same stories: also when most keys hold more rows than the poll
    reads ahead, and when only the story sharing most keys is compared (where a story counted
    twice, or counted in another order, would be another)."""
    from monitor.store import batch

    monkeypatch.setattr(batch, "PREFETCH_PER_KEY", prefetched)
    monkeypatch.setattr(batch, "MAX_CANDIDATES", compared)
    one, many = two_stores
    entries = _copies(seed=prefetched + compared)
    for alone in entries:
        record(one, 1, [alone], event_stories=event_stories)
    record(many, 1, entries, event_stories=event_stories)
    decided = _story_of_each_item(one)
    assert 10 < len(set(decided.values())) < 40  # copies joined, and windows kept some apart
    assert _story_of_each_item(many) == decided


def _items_seen_by_another_process(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    finally:
        conn.close()


def test_grouped_writes_commit_once_their_time_is_up_and_at_the_end(sqlite_store):
    store = sqlite_store
    """Writes of a poll cycle share a transaction: within ``seconds`` another process sees
    none of them (a crash would lose them together), after it each is committed at once,
    and the end of the block commits what is left."""
    with store.grouped_writes(3600):
        record(store, 0, [entry(0, "g1", TITLE)])
        assert _items_seen_by_another_process(store.path) == 0
    assert _items_seen_by_another_process(store.path) == 1
    with store.grouped_writes(0.0):
        record(store, 1, [entry(1, "g2", "Qatar and Egypt table truce proposal")])
        assert _items_seen_by_another_process(store.path) == 2  # its time was up: committed


def test_foreign_database_is_refused_untouched(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"other\.db: this SQLite database was not created by"):
        SQLiteStore(path)
    assert path.read_bytes() == before


def test_corrupt_file_is_refused_untouched(tmp_path):
    path = tmp_path / "monitor.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match=r"monitor\.db: not an SQLite database"):
        SQLiteStore(path)
    assert path.read_bytes() == b"this is not a database at all" * 100


def test_reopen_keeps_everything(tmp_path):
    path = tmp_path / "monitor.db"
    with SQLiteStore(path) as store:
        store.sync_feeds(FEEDS)
        store.sync_channels(CHANNELS)
        record(store, 0, [entry(0, "g1", TITLE)])
    with SQLiteStore(path) as store:
        assert store.counts()["items"] == 1
        assert store.schema_steps() == ["0001_initial", "0002_outbox_failed_at_requeue",
                                        "0003_feedback", "0004_story_keys_without_rowid",
                                        "0005_one_permutation_band_keys", "0006_event_stories",
                                        "0007_feeds_added", "0008_alert_policies", "0009_items_fts",
                                        "0010_instances"]
        assert store.integrity_check() == "ok"


def test_database_at_0003_migrates_story_keys_and_keeps_its_stories(tmp_path):
    path = tmp_path / "monitor.db"
    with SQLiteStore(path) as store:
        store.sync_feeds(FEEDS)
        store.sync_channels(CHANNELS)
        record(store, 0, [entry(0, "g1", TITLE, summary=SUMMARY)])
    conn = sqlite3.connect(path, isolation_level=None)  # back to the layout of schema step 0003
    keys = conn.execute("SELECT key, published, story_id FROM story_keys ORDER BY key").fetchall()
    assert len(keys) == 17
    conn.executescript("""
        DROP TABLE story_keys;
        CREATE TABLE story_keys (key INTEGER NOT NULL, published REAL NOT NULL,
                                 story_id INTEGER NOT NULL);
        CREATE INDEX story_keys_lookup ON story_keys (key, published);
        DELETE FROM _sqlite_migrations WHERE name = '0004_story_keys_without_rowid';
    """)
    conn.executemany("INSERT INTO story_keys VALUES (?, ?, ?)", keys)
    conn.close()
    with SQLiteStore(path) as store:
        assert {"0004_story_keys_without_rowid", "0005_one_permutation_band_keys",
                "0006_event_stories"} <= set(
            store.schema_steps())
        assert store.integrity_check() == "ok"
        rows = store._read("SELECT key, published, story_id FROM story_keys ORDER BY key")
        assert [tuple(r.values()) for r in rows] == keys  # written by this release: the same keys
        sql = store._read("SELECT sql FROM sqlite_master WHERE name = 'story_keys'")[0]["sql"]
        assert "WITHOUT ROWID" in sql
        assert not store._read("SELECT name FROM sqlite_master WHERE name = 'story_keys_lookup'")
        # the stored story is still found: the same story from another outlet joins it
        again = record(store, 1, [entry(1, "b1", TITLE + " - Outlet B", summary=SUMMARY)])
        assert (again.new_items, again.syndicated, again.new_alerts) == (1, 1, 0)


def test_database_at_0004_gets_the_new_band_keys_and_keeps_its_title_keys(tmp_path):
    """A database written by the release before one-permutation MinHash (tests/data/store_0004.sql):
    the band keys of its stories are recomputed from their shingles, the title keys kept, and
    new items find the stored stories through either."""
    path = tmp_path / "monitor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript((DATA / "store_0004.sql").read_text(encoding="utf-8"))
    old_rows = set(conn.execute("SELECT key, published, story_id FROM story_keys").fetchall())
    conn.close()
    title_rows = {row for row in old_rows if row[0] >> 32 == NUM_BANDS}
    assert len(old_rows) == 2 * NUM_BANDS + 1 and len(title_rows) == 1
    with SQLiteStore(path) as store:
        assert "0005_one_permutation_band_keys" in store.schema_steps()
        assert "0006_event_stories" in store.schema_steps()
        assert store.integrity_check() == "ok"
        rows = {tuple(r.values()) for r in store._read("SELECT key, published, story_id FROM story_keys")}
        stories = store._read("SELECT id, published, shingles FROM stories")
        assert len(stories) == 2
        assert rows == title_rows | {(key, story["published"], story["id"]) for story in stories
                                     for key in band_keys(unpack_shingles(story["shingles"]))}
        assert not rows & (old_rows - title_rows)
        # The story without a title key, told differently by another outlet: found by band keys.
        again = record(store, 1, [entry(1, "b2", "Gaza truce talks resume in Cairo", summary=(
            "Egyptian and Qatari mediators met Hamas and Israeli officials in Cairo on Sunday to "
            "discuss extending the truce in Gaza by two days and freeing more hostages, officials "
            "said."))])
        assert (again.new_items, again.syndicated, again.new_alerts) == (1, 1, 0)
        # The headline story with another summary: found by its kept title key.
        again = record(store, 1, [entry(1, "b1", TITLE + " - Outlet B", summary="Talks resumed.")])
        assert (again.new_items, again.syndicated, again.new_alerts) == (1, 1, 0)


def test_waits_for_another_process_holding_the_write_lock(tmp_path):
    path = tmp_path / "monitor.db"
    with SQLiteStore(path) as store:
        store.sync_feeds(FEEDS)
        store.sync_channels(CHANNELS)
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(2.5)\n"
            "c.execute('COMMIT')\n")], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        outcome = record(store, 0, [entry(0, "g1", TITLE)])
        waited = time.monotonic() - started
        holder.wait(timeout=10)
        assert outcome.new_items == 1 and store.counts()["items"] == 1
        assert waited > 1.0  # it really waited for the other process rather than failing


def test_one_writer_many_threads(store):
    def work(n: int) -> None:
        for i in range(20):
            record(store, n % 2, [entry(n % 2, f"t{n}-{i}", f"Story number {n} {i} unique words {i * n}",
                                        matched=False)])
    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.counts()["entries"] == 80


def test_grouped_writes_share_a_transaction_and_undo_a_failed_write_alone(tmp_path):
    path = tmp_path / "monitor.db"
    with SQLiteStore(path) as store:
        store.sync_feeds(FEEDS)
        store.sync_channels(CHANNELS)
        other = sqlite3.connect(path)
        with store.grouped_writes(seconds=3600):
            record(store, 0, [entry(0, "g1", TITLE, summary=SUMMARY)])
            with pytest.raises(sqlite3.IntegrityError):
                store._write(lambda: (store._exec("INSERT INTO feeds (url, name) VALUES ('x', 'x')"),
                                      store._exec("INSERT INTO feeds (url, name) VALUES ('x', 'x')")))
            record(store, 1, [entry(1, "b1", "Another story entirely about mediators in Doha")])
            # not committed yet: another connection sees nothing
            assert other.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0
        assert other.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 2
        assert other.execute("SELECT COUNT(*) FROM feeds WHERE url = 'x'").fetchone()[0] == 0
        record(store, 0, [entry(0, "g2", "A third story on aid convoys at the Rafah crossing")])
        assert other.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 3  # per write again
        other.close()


def test_feeds_added_paused_and_removed(tmp_path):
    """Schema step 0007: feeds added on the command line, and a pause on any feed."""
    now = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    with SQLiteStore(tmp_path / "monitor.db") as store:
        store.sync_feeds(FEEDS)
        assert "0007_feeds_added" in store.schema_steps()
        assert store.add_feed("https://x.example/rss", "X", 120.0, now=now)
        assert not store.add_feed("https://x.example/rss", "Y", None, now=now)  # the URL again
        assert not store.add_feed("https://y.example/rss", "X", None, now=now)  # the name again
        assert store.added_feeds() == [{"url": "https://x.example/rss", "name": "X", "interval": 120.0,
                                        "added_at": "2026-11-26T07:00:00+00:00"}]
        assert store.feed_state("https://x.example/rss").name == "X"  # polled like the others
        url = FEEDS[0].url
        assert store.pause_feed(url, now=now) and not store.pause_feed(url, now=now)
        assert store.paused_feeds() == {url: "2026-11-26T07:00:00+00:00"}
        assert store.pause_feed(url, now=None) and not store.pause_feed(url, now=None)
        assert store.paused_feeds() == {}
        store.pause_feed("https://x.example/rss", now=now)
        assert store.remove_feed("https://x.example/rss") and not store.remove_feed("https://x.example/rss")
        assert store.added_feeds() == [] and store.paused_feeds() == {}


# --------------------------------------------------------------------------- several instances (issue 16)
# The claims of claims.py, on both engines: who polls which feed, who delivers which channel.

from monitor.errors import LeaseLost  # noqa: E402
from monitor.store.values import parse_time  # noqa: E402

LEASE = timedelta(seconds=30)
SIX = [FeedConfig(f"Outlet {n}", f"http://127.0.0.1:1/{n}.xml", 60) for n in range(6)]


def claim(store: Store, instance: str, at: datetime, limit: int = 10):
    return store.claim_feeds(instance, now=at, until=at + LEASE, limit=limit)


def test_two_instances_claiming_at_once_take_disjoint_feeds_and_all_of_them(store):
    store.sync_feeds(FEEDS + SIX)  # eight feeds
    everything = {feed.url for feed in FEEDS + SIX}
    for round in range(5):  # each round a minute later: every lease before has passed
        at = NOW + timedelta(minutes=round)
        got: dict[str, list] = {}
        barrier = threading.Barrier(2)

        def take(instance: str, at: datetime = at, got: dict = got,
                 barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            got[instance] = [lease for _ in range(4) for lease in claim(store, instance, at, limit=1)]

        threads = [threading.Thread(target=take, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        a, b = ({lease.feed_url for lease in got[name]} for name in ("a", "b"))
        # Neither waits for the other's locked rows nor comes back empty-handed (SKIP LOCKED).
        assert not a & b and len(a) == len(b) == 4 and a | b == everything, (round, a, b)
        assert {lease.owner for lease in got["a"]} == {"a"}
        assert claim(store, "c", at + timedelta(seconds=29)) == []  # all held, none passed yet
    assert claim(store, "a", NOW, limit=0) == []


def test_a_feed_not_due_or_paused_is_not_claimed(store):
    record(store, 0, [])  # polled: next poll in a minute
    store.pause_feed(FEEDS[1].url, now=NOW)
    assert claim(store, "a", NOW) == []
    assert [lease.feed_url for lease in claim(store, "a", NOW + timedelta(minutes=1))] == [FEEDS[0].url]


def test_an_expired_lease_is_claimed_again_with_a_higher_token(store):
    [first] = claim(store, "a", NOW, limit=1)
    # The lease lasts till its end: at its very end another instance gets only the other feed.
    assert [lease.feed_url for lease in claim(store, "b", NOW + timedelta(seconds=30))] == [
        feed.url for feed in FEEDS if feed.url != first.feed_url]
    [again] = [lease for lease in claim(store, "b", NOW + timedelta(seconds=31))
               if lease.feed_url == first.feed_url]
    assert again.owner == "b" and again.fence > first.fence
    assert store.feed_state(first.feed_url).holder(NOW + timedelta(seconds=32)) == "b"


def test_a_poll_recorded_with_a_stale_token_raises_lease_lost_and_stores_nothing(store):
    url = FEEDS[0].url
    [stale] = [lease for lease in claim(store, "a", NOW) if lease.feed_url == url]
    [current] = [lease for lease in claim(store, "b", NOW + timedelta(seconds=31))
                 if lease.feed_url == url]
    later = NOW + timedelta(minutes=5)
    with pytest.raises(LeaseLost):
        store.record_poll(url, [entry(0, "g1", TITLE, summary=SUMMARY)], now=NOW, status=200,
                          next_poll_at=later, policy=policy(), lease=stale)
    with pytest.raises(LeaseLost):
        store.record_not_modified(url, now=NOW, status=304, next_poll_at=later, lease=stale)
    with pytest.raises(LeaseLost):
        store.record_failure(url, FeedConnectError("refused"), now=NOW, next_poll_at=later,
                             lease=stale)
    assert store.counts()["entries"] == 0 and store.counts()["alerts"] == 0
    state = store.feed_state(url)
    assert state.last_fetch_at is None and state.consecutive_errors == 0
    assert state.holder(NOW + timedelta(seconds=32)) == "b"  # b's lease untouched
    # The current holder's poll is stored, and frees the feed until it is due again.
    outcome = store.record_poll(url, [entry(0, "g1", TITLE, summary=SUMMARY)], now=NOW, status=200,
                                next_poll_at=later, policy=policy(), lease=current)
    assert outcome.new_items == 1 and store.counts()["entries"] == 1
    assert store.feed_state(url).lease_owner is None
    assert url not in {lease.feed_url for lease in claim(store, "c", later - timedelta(seconds=1))}
    assert url in {lease.feed_url for lease in claim(store, "c", later)}


def test_heartbeat_extends_the_leases_and_counts_the_live_instances(store):
    for name, at in (("a", NOW), ("b", NOW), ("gone", NOW - timedelta(minutes=5))):
        store.register_instance(name, host="h", pid=1, now=at)
    leases = claim(store, "a", NOW)
    assert store.claim_channel("hook", "a", now=NOW, until=NOW + LEASE)
    assert store.heartbeat("a", now=NOW + timedelta(seconds=20), until=NOW + timedelta(seconds=50),
                           alive_within=60) == 2  # a and b; "gone" beat 5 minutes ago
    assert claim(store, "b", NOW + timedelta(seconds=40)) == []  # extended past the first 30 s
    retaken = claim(store, "b", NOW + timedelta(seconds=51))
    assert {lease.feed_url for lease in retaken} == {lease.feed_url for lease in leases}
    # A channel's lease is renewed by its holder before each delivery, not by the heartbeat:
    # a holder that stopped delivering loses it when its last renewal ends.
    assert store.claim_channel("hook", "b", now=NOW + timedelta(seconds=31),
                               until=NOW + timedelta(seconds=61))
    assert store.heartbeat("b", now=NOW + timedelta(seconds=90), until=NOW + timedelta(seconds=120),
                           alive_within=60) == 1  # a's last beat was 70 s before
    # A lease that passed is not revived by a later heartbeat: the feed is anyone's to claim.
    assert store.heartbeat("b", now=NOW + timedelta(seconds=200), until=NOW + timedelta(seconds=230),
                           alive_within=60) == 1
    assert {lease.feed_url for lease in claim(store, "a", NOW + timedelta(seconds=201))} == {
        lease.feed_url for lease in leases}


def test_a_channel_held_by_a_live_instance_is_not_claimed_by_another(store):
    until = NOW + LEASE
    assert store.claim_channel("hook", "a", now=NOW, until=until)
    assert store.claim_channel("hook", "a", now=NOW + timedelta(seconds=5), until=until)  # its own
    assert not store.claim_channel("hook", "b", now=NOW + timedelta(seconds=30), until=until)
    assert store.claim_channel("console", "b", now=NOW, until=until)  # another channel: free
    assert store.claim_channel("hook", "b", now=NOW + timedelta(seconds=31),
                               until=NOW + timedelta(seconds=61))  # a's lease passed
    assert not store.claim_channel("hook", "a", now=NOW + timedelta(seconds=32), until=until)
    assert not store.claim_channel("no-such-channel", "a", now=NOW, until=until)


def test_stop_instance_gives_up_every_lease_at_once(store):
    store.register_instance("a", host="h", pid=1, now=NOW)
    held = claim(store, "a", NOW)
    assert held and store.claim_channel("hook", "a", now=NOW, until=NOW + LEASE)
    store.stop_instance("a", now=NOW + timedelta(seconds=1))
    at = NOW + timedelta(seconds=2)
    assert {lease.feed_url for lease in claim(store, "b", at)} == {lease.feed_url for lease in held}
    assert store.claim_channel("hook", "b", now=at, until=at + LEASE)
    assert store.instances(now=at, alive_within=60) == []


def test_a_feed_released_unpolled_is_not_due_before_the_time_given(store):
    [lease] = claim(store, "a", NOW, limit=1)
    assert store.release_feed(lease, next_poll_at=NOW + timedelta(seconds=30))
    url = lease.feed_url
    assert url not in {other.feed_url for other in claim(store, "b", NOW + timedelta(seconds=29))}
    assert url in {other.feed_url for other in claim(store, "b", NOW + timedelta(seconds=30))}
    assert not store.release_feed(lease, next_poll_at=NOW)  # b claimed it since: not a's to give


def test_instances_lists_the_live_ones_with_what_they_hold(store):
    store.register_instance("a", host="desk-1", pid=101, now=NOW)
    store.register_instance("b", host="desk-2", pid=202, now=NOW + timedelta(seconds=1))
    store.register_instance("old", host="desk-3", pid=303, now=NOW - timedelta(minutes=5))
    [lease] = claim(store, "a", NOW, limit=1)
    store.claim_channel("hook", "b", now=NOW, until=NOW + LEASE)
    rows = store.instances(now=NOW + timedelta(seconds=2), alive_within=60)
    assert [(r["id"], r["host"], r["pid"]) for r in rows] == [("a", "desk-1", 101),
                                                             ("b", "desk-2", 202)]
    assert rows[0]["feeds"] == [lease.feed_url] and rows[0]["channels"] == []
    assert rows[1]["feeds"] == [] and rows[1]["channels"] == ["hook"]
    assert parse_time(rows[0]["started_at"]) == NOW
    assert parse_time(rows[1]["heartbeat_at"]) == NOW + timedelta(seconds=1)
    # A lease that passed is not held any more, whoever's it was.
    later = store.instances(now=NOW + timedelta(seconds=40), alive_within=60)
    assert [(r["feeds"], r["channels"]) for r in later] == [([], []), ([], [])]


def test_an_instance_starting_forgets_those_silent_for_a_day(store):
    store.register_instance("killed", host="h", pid=1, now=NOW - timedelta(days=1, seconds=1))
    store.register_instance("stopped", host="h", pid=2, now=NOW - timedelta(hours=2))
    store.stop_instance("stopped", now=NOW - timedelta(hours=2))
    store.register_instance("new", host="h", pid=3, now=NOW)
    assert {row["id"] for row in store._read("SELECT id FROM instances")} == {"stopped", "new"}


def test_a_poll_reads_the_stories_its_items_may_join_once(store, monkeypatch):
    """A feed lists its newest item first: read per item, each older one would widen the span
    and read the join window's stories again (a round trip under the poll lock on PostgreSQL)."""
    from monitor.store import batch

    reads: list[str] = []

    class Counting:
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, *args):
            reads.append(sql)
            return self.conn.execute(sql, *args)

        def executemany(self, sql, rows):
            return self.conn.executemany(sql, rows)

    made = batch.PollBatch.__init__

    def counted(self, conn, *args, **kwargs):
        made(self, Counting(conn), *args, **kwargs)

    monkeypatch.setattr(batch.PollBatch, "__init__", counted)
    record(store, 0, [entry(0, "old", "Qatar and Egypt table truce proposal",
                            published=NOW - timedelta(days=2))])
    reads.clear()
    titles = ["Hamas delegation arrives in Cairo", "Egypt hosts talks on hostages",
              "Qatar mediators meet Israeli officials", "Truce proposal handed to Hamas"]
    newest_first = [entry(0, f"g{n}", title, published=NOW - timedelta(hours=6 * n))
                    for n, title in enumerate(titles)]
    record(store, 0, newest_first)
    window_reads = [sql for sql in reads if "profile IS NOT NULL" in sql]
    assert len(window_reads) == 1
