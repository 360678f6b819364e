"""The store's domain operations, written once for both backends: record a poll (feed health,
the three dedup layers, the story decisions, the outbox rows it writes), the feeds added on the
command line; ``Store`` gathers them with the other parts (the outbox's life in ``outbox.py``,
the read models, the desk's examples, the instances' claims).

In: feed states, normalised items with their matches and fingerprints.
Out: what is new (items, matches, outbox rows).

Every operation is one transaction (``_write``) of SQL both engines run as written
(``?`` placeholders, ``ON CONFLICT``, ``RETURNING``, window functions). What only one engine does
well is the backend's: how transactions are taken and retried, how several processes are kept
from deciding stories at once, claims and leases, full-text search (``sqlite.py``,
``postgres.py``).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ..config import ChannelConfig, FeedConfig
from ..errors import MonitorError, StoreError
from ..models import FeedState
from ..payload import (
    FEED_DOWN,
    FEED_RECOVERED,
    MATCH,
    STORY_UPDATED,
    feed_payload,
    match_payload,
    update_payload,
)
from ..policy import Hold, hold
from ..stories import Decision, StoryProfile, decide, event_of
from .batch import PollBatch, Tx, stored_urls
from .batch import known_guids as stored_guids
from .claims import Claims
from .examples import Examples
from .outbox import Outbox
from .reads import ReadModels
from .values import AlertPolicy, Lease, NewEntry, PollOutcome, iso
from .values import feed_state as feed_state_row

T = TypeVar("T")


class Store(ReadModels, Examples, Claims, Outbox):
    """The monitor's database, whichever engine: ``open_store`` gives the one a location names.
    Thread-safe: each backend serialises or pools its connections."""

    shared = False  # True: several instances may share the database (they claim feeds)
    location: str  # the file's path, or the URL with its password hidden: for messages
    connect_to: str  # what opens it again (a worker process's ``GuidReader``): never logged

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._profiles: dict[int, StoryProfile] = {}  # story profiles as committed (PollBatch)

    # -- what each backend provides

    def _reading(self, operation: Callable[[Tx], T]) -> T:
        """Run ``operation`` with a transaction to read from (retried as the backend retries)."""
        raise NotImplementedError

    def _before_poll(self, entries: Sequence[NewEntry]) -> None:
        """At the start of ``record_poll``'s transaction: make it the only one deciding stories
        (the SQLite write lock is that already; PostgreSQL takes a lock for it)."""

    def _poll_recorded(self) -> None:
        """At the end of a poll's write (``record_poll``, ``record_not_modified``,
        ``record_failure``): a backend may commit it without waiting for the disk when it wrote
        no outbox row (PostgreSQL). Such a write lost in a server crash is redone by the feed's
        next poll (its ETag and body hash are lost with it), and nothing was delivered from it;
        a write with an outbox row stays durable before any instance can deliver the row."""

    def _outbox_written(self) -> None:
        """Called for each outbox row written in the open transaction."""

    def _new_ids(self, count: int) -> tuple[Iterator[int], Iterator[int]]:
        """The ids of the items and of the stories a poll of ``count`` entries writes, in order
        (each entry makes at most one of each)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def schema_steps(self) -> list[str]:
        raise NotImplementedError

    def integrity_check(self) -> str:
        raise NotImplementedError

    def has_fts(self) -> bool:
        raise NotImplementedError

    def search_matches(self, text: str, *, storyline: str | None = None,
                       limit: int = 50) -> tuple[list[dict[str, Any]], str]:
        raise NotImplementedError

    @contextmanager
    def grouped_writes(self, seconds: float = 0.25) -> Iterator[None]:
        """Writes in this block may share transactions (SQLite: fewer commits); others: as is."""
        yield

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- set-up

    def sync_feeds(self, feeds: Iterable[FeedConfig]) -> None:
        def operation() -> None:
            for feed in feeds:
                self._exec(
                    "INSERT INTO feeds (url, name) VALUES (?, ?) "
                    "ON CONFLICT (url) DO UPDATE SET name = excluded.name",
                    (feed.url, feed.name),
                )
        self._write(operation)

    def sync_channels(self, channels: Iterable[ChannelConfig]) -> None:
        def operation() -> None:
            for channel in channels:
                self._exec(
                    "INSERT INTO channels (name, type) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET type = excluded.type",
                    (channel.name, channel.type),
                )
        self._write(operation)

    # -- feeds

    def feed_state(self, url: str) -> FeedState:
        rows = self._read("SELECT * FROM feeds WHERE url = ?", [url])
        if not rows:
            raise KeyError(url)
        return feed_state_row(rows[0])

    def feed_states(self) -> list[FeedState]:
        return [feed_state_row(row) for row in self._read("SELECT * FROM feeds ORDER BY name")]

    # -- feeds added on the command line (schema step 0007), on top of the config's

    def added_feeds(self) -> list[dict[str, Any]]:
        """The feeds added with ``monitor feeds add`` / ``import``: url, name, interval (seconds,
        or None for the config's ``poll_interval``) and added_at, oldest first."""
        return self._read("SELECT url, name, interval, added_at FROM feeds_added ORDER BY added_at, url")

    def add_feed(self, url: str, name: str, interval: float | None, *, now: datetime) -> bool:
        """Add a feed; False when one with this URL or name was added already."""
        def operation() -> bool:
            cursor = self._exec("INSERT INTO feeds_added (url, name, interval, added_at) "
                                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (url, name, interval, iso(now)))
            if cursor.rowcount:
                self._exec("INSERT INTO feeds (url, name) VALUES (?, ?) ON CONFLICT (url) "
                           "DO UPDATE SET name = excluded.name", (url, name))
            return bool(cursor.rowcount)
        return self._write(operation)

    def remove_feed(self, url: str) -> bool:
        """Forget an added feed (its items and matches stay); False when it was not added."""
        def operation() -> bool:
            removed = self._exec("DELETE FROM feeds_added WHERE url = ?", [url]).rowcount
            if removed:
                self._exec("UPDATE feeds SET paused_at = NULL WHERE url = ?", [url])
            return bool(removed)
        return self._write(operation)

    def pause_feed(self, url: str, *, now: datetime | None) -> bool:
        """Pause a feed (``now``), or resume it (None); False when it was already so."""
        if now is None:
            sql, params = "UPDATE feeds SET paused_at = NULL WHERE url = ? AND paused_at IS NOT NULL", [url]
        else:
            sql, params = ("UPDATE feeds SET paused_at = ? WHERE url = ? AND paused_at IS NULL",
                           [iso(now), url])
        return bool(self._write(lambda: self._exec(sql, params).rowcount))

    def paused_feeds(self) -> dict[str, str]:
        """URL -> when it was paused, for every paused feed."""
        return {r["url"]: r["paused_at"] for r in self._read(
            "SELECT url, paused_at FROM feeds WHERE paused_at IS NOT NULL")}

    def known_guids(self, feed_url: str, guids: Sequence[str]) -> set[str]:
        """The guids of this feed already stored: their entries need no further work."""
        return self._reading(lambda tx: stored_guids(tx, feed_url, guids))

    def known_urls(self, urls: Sequence[str]) -> set[str]:
        """The canonical URLs already stored as items (dedup layer 2)."""
        return set(self._reading(lambda tx: stored_urls(tx, urls)))

    def record_not_modified(self, feed_url: str, *, now: datetime, status: int,
                            next_poll_at: datetime, etag: str | None = None,
                            last_modified: str | None = None,
                            policy: AlertPolicy | None = None, lease: Lease | None = None) -> int:
        """A 304, or a 200 whose body did not change: the feed is healthy, nothing to parse.

        Returns the number of "feed recovered" alerts written.
        """
        def operation() -> int:
            self.check_lease(lease)
            self._exec(
                "UPDATE feeds SET last_fetch_at = :now, last_success_at = :now, "
                "last_status = :status, last_error = NULL, last_error_code = NULL, "
                "consecutive_errors = 0, next_poll_at = :next, "
                "etag = COALESCE(:etag, etag), last_modified = COALESCE(:lm, last_modified) "
                "WHERE url = :url",
                {"now": iso(now), "status": status, "next": iso(next_poll_at), "etag": etag,
                 "lm": last_modified, "url": feed_url},
            )
            written = self._feed_recovered(feed_url, now, policy)
            self._poll_recorded()
            return written
        return self._write(operation)

    def record_failure(self, feed_url: str, error: MonitorError, *, now: datetime,
                       next_poll_at: datetime, status: int | None = None,
                       down_after: int = 5, policy: AlertPolicy | None = None,
                       lease: Lease | None = None) -> FeedState:
        """A failed poll: count it on the feed; after ``down_after`` in a row, one "feed down" alert."""
        def operation() -> FeedState:
            self.check_lease(lease)
            self._exec(
                "UPDATE feeds SET last_fetch_at = ?, last_status = ?, last_error = ?, "
                "last_error_code = ?, consecutive_errors = consecutive_errors + 1, "
                "next_poll_at = ? WHERE url = ?",
                (iso(now), status, str(error)[:500], error.code, iso(next_poll_at), feed_url),
            )
            state = feed_state_row(self._read("SELECT * FROM feeds WHERE url = ?", [feed_url])[0])
            if policy and state.consecutive_errors >= down_after and not state.down_alerted:
                self._exec("UPDATE feeds SET down_alerted = 1 WHERE url = ?", [feed_url])
                body = feed_payload(kind=FEED_DOWN, timestamp=now, feed_name=state.name,
                                    feed_url=feed_url, consecutive_errors=state.consecutive_errors,
                                    last_error=state.last_error)
                for channel in policy.channels:
                    self._insert_alert(channel.name, FEED_DOWN, f"{FEED_DOWN}:{feed_url}:{iso(now)}",
                                       body, now, feed_url=feed_url,
                                       held=self._hold(channel, now, 100.0, capped=False))
            self._poll_recorded()
            return state
        return self._write(operation)

    def _feed_recovered(self, feed_url: str, now: datetime, policy: AlertPolicy | None) -> int:
        row = self._read("SELECT name, down_alerted FROM feeds WHERE url = ?", [feed_url])
        if not row or not row[0]["down_alerted"]:
            return 0
        self._exec("UPDATE feeds SET down_alerted = 0 WHERE url = ?", [feed_url])
        if not policy:
            return 0
        body = feed_payload(kind=FEED_RECOVERED, timestamp=now, feed_name=row[0]["name"],
                            feed_url=feed_url, consecutive_errors=0, last_error=None)
        written = 0
        for channel in policy.channels:
            written += self._insert_alert(channel.name, FEED_RECOVERED,
                                          f"{FEED_RECOVERED}:{feed_url}:{iso(now)}", body, now,
                                          feed_url=feed_url,
                                          held=self._hold(channel, now, 100.0, capped=False))
        return written

    def record_poll(self, feed_url: str, entries: Sequence[NewEntry], *, now: datetime,
                    status: int, next_poll_at: datetime, policy: AlertPolicy,
                    etag: str | None = None, last_modified: str | None = None,
                    body_hash: str | None = None, lease: Lease | None = None) -> PollOutcome:
        """Record one successful poll in one transaction: feed health, new items (through the
        three dedup layers), every match, and the outbox rows for new (storyline, story) pairs.
        Returns counts of what was new. Entries already stored are ignored (idempotent)."""

        def operation() -> PollOutcome:
            counts = {"new_items": 0, "known_url": 0, "syndicated": 0, "new_matches": 0,
                      "new_alerts": 0, "updates": 0}
            self.check_lease(lease)  # first: the feed's row stays locked to this poll till commit
            self._before_poll(entries)
            batch = PollBatch(self._tx(), entries, now, self._profiles, self._new_ids(len(entries)))
            batch.prefetch(policy.dedup_window)
            for entry in entries:
                self._record_entry(entry, now, policy, counts, batch)
            batch.flush()
            self._exec(
                "UPDATE feeds SET last_fetch_at = :now, last_success_at = :now, "
                "last_status = :status, last_error = NULL, last_error_code = NULL, "
                "consecutive_errors = 0, next_poll_at = :next, etag = :etag, "
                "last_modified = :lm, body_hash = COALESCE(:hash, body_hash), "
                "items_seen = items_seen + :seen, first_poll_done = 1 WHERE url = :url",
                {"now": iso(now), "status": status, "next": iso(next_poll_at), "etag": etag,
                 "lm": last_modified, "hash": body_hash, "url": feed_url,
                 "seen": counts["new_items"] + counts["known_url"]},
            )
            counts["new_alerts"] += self._feed_recovered(feed_url, now, policy)
            batch.keep_profiles()
            self._poll_recorded()
            return PollOutcome(**counts)

        return self._write(operation)

    def _record_entry(self, entry: NewEntry, now: datetime, policy: AlertPolicy,
                      counts: dict[str, int], batch: PollBatch) -> None:
        item = entry.item
        if not batch.claim_entry(item.feed_url, item.guid):
            return  # layer 1: this entry again (another poll, or earlier in this one)
        if item.url:
            known = batch.urls.get(item.url)
            if known is not None:  # layer 2: the same canonical URL, from this or another feed
                batch.entries.append((item.feed_url, item.guid, known))
                counts["known_url"] += 1
                return
        if entry.url_known:  # never: the pipeline found this URL stored, and items stay
            raise StoreError(f"entry {item.guid!r} of {item.feed_url} was not matched because "
                             f"its URL {item.url!r} is stored, but it is not")
        published = item.published.timestamp()
        item_id = next(batch.item_ids)
        joined: dict[str, Any] | None = None
        alerts = True
        profile: StoryProfile | None = None
        new_outlet = False  # the item joined a story another outlet reported: story.updated?
        if not entry.matches:  # no alert to deduplicate: a story of its own, never a candidate
            story_id = batch.add_story(None, published, item_id)
            new_story = True
        else:
            if entry.fingerprint is None:
                raise StoreError(f"entry {item.guid!r} of {item.feed_url} matched but came "
                                 "without a fingerprint")
            event = entry.event or event_of(item.title, item.summary)
            storylines = {m.storyline_id for m in entry.matches}
            found = batch.find_story(entry.fingerprint, published, policy.dedup_window)
            if found is not None:
                decision = Decision(found, {"by": "copy"})
            elif policy.event_stories:
                decision = decide(event, published, batch.candidates(published))
            else:
                decision = Decision(None, {"by": "new"})
            new_story = decision.story_id is None
            if decision.story_id is None:
                story_id = batch.add_story(entry.fingerprint, published, item_id)
                batch.start_profile(story_id, event, published, item.source, storylines)
                alerts = decision.alerts
                if not alerts:  # why it started a story that does not alert
                    joined = {**decision.why, "alerts": False}
            else:
                story_id = decision.story_id
                joined = decision.why
                profile, new_outlet = batch.join_profile(story_id, event, published, item.source,
                                                         storylines)
                counts["syndicated"] += 1
        batch.items.append(
            (item_id, item.feed_url, item.source, item.guid, item.url, item.title, item.summary,
             iso(item.published), int(item.published_known), batch.now, story_id,
             json.dumps(joined) if joined is not None else None))
        if item.url:
            batch.urls.setdefault(item.url, item_id)
        batch.entries.append((item.feed_url, item.guid, item_id))
        counts["new_items"] += 1
        alertable = alerts and item.published >= policy.alert_after and (
            item.published_known or policy.alert_undated)
        found_by: dict[str, list[dict[str, Any]]] = {}
        for match in entry.matches:
            hits = [{"term": h.term, "found": h.found, "score": h.score, "field": h.field}
                    for h in match.hits]
            found_by[match.storyline_id] = hits
            batch.matches.append((item_id, match.storyline_id, story_id, match.score,
                                  json.dumps(hits), batch.now))
            counts["new_matches"] += 1
        if not entry.matches:
            return
        item_fields = {"title": item.title, "url": item.url, "summary": item.summary,
                       "published": iso(item.published), "source": item.source,
                       "feed_url": item.feed_url}
        if new_outlet and profile is not None:  # a story joined by another outlet
            counts["updates"] += self._story_updates(
                story_id, profile, item_fields, policy, now, batch)
        if not alertable:
            return
        # One alert per story per channel, naming every storyline of the item the channel takes:
        # a later report of the development (another outlet, another storyline) is a source.
        for channel in policy.channels:
            wanted = [m for m in entry.matches if channel.wants(m.storyline_id)]
            if not wanted or (channel.name, story_id) in batch.alerted:
                continue
            if not new_story and self._exec(
                    "SELECT 1 FROM alerts WHERE story_id = ? AND channel = ? AND kind = ? LIMIT 1",
                    [story_id, channel.name, MATCH]).fetchone():
                continue  # the story alerted on this channel: this item is one more source
            if new_story:  # its one source is this item: nothing to read back
                sources = [source_row(item.source, item.title, item.url, iso(item.published))]
            else:
                batch.flush()  # the sources of the story are read from the items table
                sources = self._sources(story_id)
            body = match_payload(
                timestamp=now, item=item_fields, story_id=story_id,
                storylines=[{"id": m.storyline_id,
                             "name": policy.storyline_names.get(m.storyline_id, m.storyline_id),
                             "score": m.score, "hits": found_by[m.storyline_id],
                             "decided_by": m.decided_by, "evidence": list(m.evidence)}
                            for m in wanted],
                sources=sources,
            )
            counts["new_alerts"] += self._insert_alert(
                channel.name, MATCH, f"{MATCH}:{story_id}", body, now,
                storyline_id=wanted[0].storyline_id, story_id=story_id, item_id=item_id,
                held=self._hold(channel, now, max(m.score for m in wanted)))
            batch.alerted.add((channel.name, story_id))

    def _story_updates(self, story_id: int, profile: StoryProfile, item: dict[str, Any],
                       policy: AlertPolicy, now: datetime, batch: PollBatch) -> int:
        """``story.updated`` on the channels that ask for it (``updates = "sources:N"``) when
        this item brings the story to N outlets, once per story and channel, and only where
        the story alerted."""
        reached = len(profile.sources)
        written = 0
        for channel in policy.channels:
            if channel.updates_at_sources is None or reached != channel.updates_at_sources:
                continue
            row = self._exec("SELECT storyline_id FROM alerts WHERE story_id = ? AND channel = ? "
                             "AND kind = ? LIMIT 1", [story_id, channel.name, MATCH]).fetchone()
            if row is None:
                continue
            batch.flush()
            body = update_payload(
                timestamp=now, story_id=story_id, outlets=reached, item=item,
                storylines=[{"id": s, "name": policy.storyline_names.get(s, s)}
                            for s in sorted(profile.storylines) if channel.wants(s)],
                sources=self._sources(story_id))
            written += self._insert_alert(
                channel.name, STORY_UPDATED, f"{STORY_UPDATED}:{story_id}:{reached}", body, now,
                storyline_id=row[0], story_id=story_id, held=self._hold(channel, now, 100.0))
        return written

    def _sources(self, story_id: int) -> list[dict[str, Any]]:
        return story_sources(self._tx(), story_id)

    def _insert_alert(self, channel: str, kind: str, dedup_key: str, body: dict[str, Any],
                      now: datetime, *, storyline_id: str | None = None,
                      story_id: int | None = None, item_id: int | None = None,
                      feed_url: str | None = None, held: Hold | None = None) -> int:
        """One outbox row: pending, or held for the channel's digest (``held``: ``policy.hold``)."""
        self._outbox_written()
        cursor = self._exec(
            "INSERT INTO alerts (uid, channel, kind, dedup_key, storyline_id, story_id, "
            "item_id, feed_url, payload, created_at, status, held_until, held_reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (f"msg_{uuid.uuid4().hex}", channel, kind, dedup_key, storyline_id, story_id,
             item_id, feed_url, json.dumps(body, ensure_ascii=False), iso(now),
             "held" if held else "pending", iso(held.until) if held else None,
             held.reason if held else None),
        )
        return cursor.rowcount

    # -- alert policies (issue 18): held alerts and digests. What to hold, and until when, is
    # decided by monitor.policy (``_hold``); the digest's body by the pipeline (payload.py).

    def _hold(self, channel: ChannelConfig, now: datetime, score: float, *,
              capped: bool = True) -> Hold | None:
        """Whether a new alert of ``channel`` waits (``policy.hold``), counting the alerts the
        channel was given instantly in the hour before ``now`` (those written in this
        transaction included). ``capped=False``: ``max_per_hour`` does not apply (feed health)."""
        if not channel.policy.holds:
            return None
        recent = 0
        if capped and channel.policy.max_per_hour is not None:
            recent = self._exec(
                "SELECT COUNT(*) FROM alerts WHERE channel = ? AND kind IN (?, ?) AND "
                "held_until IS NULL AND created_at > ?",
                [channel.name, MATCH, STORY_UPDATED, iso(now - timedelta(hours=1))]).fetchone()[0]
        return hold(channel.policy, now=now, score=score, recent=recent)

    def story_sources(self, story_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        """The outlets of each story now: source, title, link, published (first report first)."""
        wanted = sorted(set(story_ids))
        return self._reading(lambda tx: {story_id: story_sources(tx, story_id) for story_id in wanted})

def story_sources(tx: Tx, story_id: int) -> list[dict[str, Any]]:
    """The outlets of a story: per feed, its first report (source, title, link, published),
    in the order the feeds first reported it."""
    rows = tx.execute(
        "SELECT source, title, url, published FROM (SELECT i.source, i.title, i.url, i.published, "
        "ROW_NUMBER() OVER (PARTITION BY i.feed_url ORDER BY i.published, i.id) AS n, "
        "MIN(i.id) OVER (PARTITION BY i.feed_url) AS first_id FROM items i WHERE i.story_id = ?) "
        "AS s WHERE n = 1 ORDER BY first_id", [story_id]).fetchall()
    return [source_row(*row) for row in rows]


def source_row(source: str, title: str, link: str | None, published: str) -> dict[str, Any]:
    """One outlet of a story, as an alert's ``sources`` lists it."""
    return {"source": source, "title": title, "link": link, "published": published}
