"""The store: every SQL query of the monitor lives here, behind domain operations.

In: feed states, normalised items with their matches and fingerprints, delivery
outcomes. Out: what is new (items, matches, outbox rows), what is due, and read
models for the CLI.

SQLite through sqlite-utils, in WAL mode, with one connection guarded by a lock: a
single writer per process. Writes take the write lock up front (``BEGIN IMMEDIATE``)
and wait for another process that holds it (busy timeout, then retries).
The schema is versioned with ``sqlite_utils.migrations.Migrations``.

The interface is deliberately narrow (record a poll, claim due alerts, acknowledge
one) so that a shared PostgreSQL store could replace this module alone.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .config import ChannelConfig, FeedConfig
from .dedup import NUM_BANDS, Fingerprint, band_keys, unpack_shingles
from .errors import MonitorError, StoreError
from .models import Alert, FeedState, Item, Match
from .payload import (
    DIGEST,
    FEED_DOWN,
    FEED_RECOVERED,
    MATCH,
    STORY_UPDATED,
    feed_payload,
    match_payload,
    update_payload,
)
from .policy import Hold, hold
from .stories import JOIN_BEFORE, JOIN_WINDOW, Decision, Event, StoryProfile, decide, event_of

if TYPE_CHECKING:  # sqlite-utils is imported only when schema steps are pending
    import sqlite_utils
    from sqlite_utils.migrations import Migrations

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATION_SET = "ceasefire-monitor"
SCHEMA_VERSION = 9
LOCK_WAIT_SECONDS = 60.0  # how long a write waits for another process's write lock in all
SQLITE_HEADER = b"SQLite format 3\x00"
CANDIDATES_PER_KEY = 8  # newest stories looked at per LSH band key
MAX_CANDIDATES = 20  # stories whose text is compared, most shared keys first
KEPT_PROFILES = 2_000  # story profiles kept parsed between polls (~4 KB each; a day holds dozens)
GROUP_COMMIT_SECONDS = 0.25  # Store.grouped_writes: how long a shared transaction stays open

MIGRATIONS_TABLE = "_sqlite_migrations"  # sqlite-utils' record of the applied steps
_STEPS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = []
_MIGRATIONS: list[Migrations] = []


def _step(name: str) -> Callable[[Callable[[sqlite_utils.Database], None]],
                                 Callable[[sqlite_utils.Database], None]]:
    def register(fn: Callable[[sqlite_utils.Database], None]) -> Callable[
            [sqlite_utils.Database], None]:
        _STEPS.append((name, fn))
        return fn
    return register


def _migration_set() -> Migrations:
    """The schema steps as a ``sqlite_utils`` ``Migrations`` set, built (and sqlite-utils
    imported: ~25 ms) on first use: a start-up with every step applied never needs it."""
    if not _MIGRATIONS:
        from sqlite_utils.migrations import Migrations

        steps = Migrations(MIGRATION_SET)
        for name, fn in _STEPS:
            steps(name=name)(fn)
        _MIGRATIONS.append(steps)
    return _MIGRATIONS[0]


def __getattr__(name: str) -> Any:
    if name == "migrations":
        return _migration_set()
    raise AttributeError(name)


@_step("0001_initial")
def _m0001_initial(db: sqlite_utils.Database) -> None:
    db.executescript("""
    CREATE TABLE feeds (
        url TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        body_hash TEXT,
        last_fetch_at TEXT,
        last_success_at TEXT,
        last_status INTEGER,
        last_error TEXT,
        last_error_code TEXT,
        consecutive_errors INTEGER NOT NULL DEFAULT 0,
        next_poll_at TEXT,
        items_seen INTEGER NOT NULL DEFAULT 0,
        first_poll_done INTEGER NOT NULL DEFAULT 0,
        down_alerted INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE stories (
        id INTEGER PRIMARY KEY,
        first_item_id INTEGER,
        published REAL NOT NULL,
        shingles BLOB NOT NULL
    );
    CREATE TABLE story_keys (
        key INTEGER NOT NULL,
        published REAL NOT NULL,
        story_id INTEGER NOT NULL
    );
    CREATE INDEX story_keys_lookup ON story_keys (key, published);
    CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        feed_url TEXT NOT NULL,
        source TEXT NOT NULL,
        guid TEXT NOT NULL,
        url TEXT,
        title TEXT NOT NULL,
        summary TEXT NOT NULL,
        published TEXT NOT NULL,
        published_known INTEGER NOT NULL,
        first_seen TEXT NOT NULL,
        story_id INTEGER NOT NULL REFERENCES stories(id)
    );
    CREATE INDEX items_url ON items (url);
    CREATE INDEX items_story ON items (story_id);
    -- Layer 1 of dedup: every (feed, guid) ever seen, pointing at the item it became.
    CREATE TABLE entries (
        feed_url TEXT NOT NULL,
        guid TEXT NOT NULL,
        item_id INTEGER NOT NULL REFERENCES items(id),
        PRIMARY KEY (feed_url, guid)
    ) WITHOUT ROWID;
    CREATE INDEX entries_item ON entries (item_id);
    CREATE TABLE matches (
        item_id INTEGER NOT NULL REFERENCES items(id),
        storyline_id TEXT NOT NULL,
        story_id INTEGER NOT NULL,
        score REAL NOT NULL,
        hits TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (item_id, storyline_id)
    );
    CREATE INDEX matches_storyline ON matches (storyline_id, created_at);
    CREATE TABLE channels (
        name TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        disabled_at TEXT,
        disabled_reason TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT
    );
    -- The outbox. dedup_key makes "one alert per (channel, storyline, story)" a constraint.
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        storyline_id TEXT,
        story_id INTEGER,
        item_id INTEGER,
        feed_url TEXT,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_attempt_at TEXT,
        sent_at TEXT,
        UNIQUE (channel, dedup_key)
    );
    CREATE INDEX alerts_due ON alerts (channel, status, id);
    """)


@_step("0002_outbox_failed_at_requeue")
def _m0002_outbox_failed_at_requeue(db: sqlite_utils.Database) -> None:
    """When an alert was given up (``failed_at``) and requeued by hand (``queued_at``: the
    give-up age counts from it, so a requeued old alert gets a fresh ``delivery_max_age``);
    indexes for the new-story check (by ``dedup_key`` alone) and ``monitor alerts --status``."""
    db.executescript("""
    ALTER TABLE alerts ADD COLUMN failed_at TEXT;
    ALTER TABLE alerts ADD COLUMN queued_at TEXT;
    UPDATE alerts SET failed_at = last_attempt_at WHERE status = 'failed';
    CREATE INDEX alerts_dedup ON alerts (dedup_key);
    CREATE INDEX alerts_status ON alerts (status, id);
    """)


@_step("0003_feedback")
def _m0003_feedback(db: sqlite_utils.Database) -> None:
    """Labelled examples for the learned layer (``monitor.learn``): the desk's verdicts on
    stored items (``monitor feedback``) and imported label files (``monitor learn``). The text is
    kept with the label, so that a model can be trained without the items table; the latest
    verdict on an (example, storyline) wins."""
    db.executescript("""
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        storyline_id TEXT NOT NULL,
        example_key TEXT NOT NULL,   -- 'item:<items.id>' or 'label:<id in the labels file>'
        item_id INTEGER,             -- the stored item a verdict is about, if any
        title TEXT NOT NULL,
        summary TEXT NOT NULL,
        label INTEGER NOT NULL,      -- 1: belongs to the storyline, 0: does not
        verdict TEXT,                -- 'right' / 'wrong' for a desk verdict; NULL for imports
        source TEXT NOT NULL,        -- 'desk' or 'labels:<file name>'
        created_at TEXT NOT NULL,
        UNIQUE (storyline_id, example_key)
    );
    -- Trained models (JSON), reused at start-up while their examples and rules are unchanged.
    CREATE TABLE learned_models (
        storyline_id TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        model TEXT NOT NULL,
        trained_at TEXT NOT NULL
    );
    """)


@_step("0004_story_keys_without_rowid")
def _m0004_story_keys_without_rowid(db: sqlite_utils.Database) -> None:
    """``story_keys`` as a ``WITHOUT ROWID`` table keyed by ``(key, published, story_id)``: one
    b-tree instead of a table plus an index, so each band key is one insert rather than two and
    about half the bytes. The rows are copied; the lookup order (newest first, then the newest
    story) is the one the old index gave."""
    # One statement at a time (not executescript, which would commit): the copy, the drop and
    # the rename happen in the migration's transaction, or not at all.
    for statement in (
        "CREATE TABLE story_keys_new (key INTEGER NOT NULL, published REAL NOT NULL, "
        "story_id INTEGER NOT NULL, PRIMARY KEY (key, published, story_id)) WITHOUT ROWID",
        "INSERT OR IGNORE INTO story_keys_new (key, published, story_id) "
        "SELECT key, published, story_id FROM story_keys ORDER BY key, published, story_id",
        "DROP TABLE story_keys",
        "ALTER TABLE story_keys_new RENAME TO story_keys",
    ):
        db.conn.execute(statement)


@_step("0005_one_permutation_band_keys")
def _m0005_one_permutation_band_keys(db: sqlite_utils.Database) -> None:
    """The LSH band keys of every story recomputed from its stored shingles: the fingerprint's
    MinHash became one-permutation hashing (``dedup.band_keys``), so the keys that earlier
    releases stored would no longer meet those of new items. The title keys (band tag
    ``NUM_BANDS``, computed from the headline, which is not stored with the story) are kept.

    The rows are gathered in a temporary table (outside the database file) and copied into the
    new ``story_keys`` in key order, so that its b-tree is built by appending, not by random
    inserts."""
    conn = db.conn
    stories = conn.execute("SELECT COUNT(*) FROM stories").fetchone()[0]
    if stories:  # about 40 s per million stories: say why the start is slow
        log.warning("rebuilding the near-duplicate keys of %d stories (once, after an upgrade)", stories)
    for statement in (
        "CREATE TEMP TABLE story_keys_rebuilt (key INTEGER NOT NULL, published REAL NOT NULL, "
        "story_id INTEGER NOT NULL)",
        "INSERT INTO story_keys_rebuilt (key, published, story_id) "
        f"SELECT key, published, story_id FROM story_keys WHERE key >= {NUM_BANDS << 32} "
        f"AND key < {(NUM_BANDS + 1) << 32}",
    ):
        conn.execute(statement)
    last = 0
    while True:  # a chunk of stories at a time: memory stays flat whatever is stored
        rows = conn.execute("SELECT id, published, shingles FROM stories WHERE id > ? ORDER BY id "
                            "LIMIT 5000", (last,)).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        conn.executemany(
            "INSERT INTO story_keys_rebuilt (key, published, story_id) VALUES (?, ?, ?)",
            [(key, published, story_id) for story_id, published, blob in rows
             if (shingles := unpack_shingles(blob)) for key in band_keys(shingles)])
    for statement in (
        "CREATE TABLE story_keys_new (key INTEGER NOT NULL, published REAL NOT NULL, "
        "story_id INTEGER NOT NULL, PRIMARY KEY (key, published, story_id)) WITHOUT ROWID",
        "INSERT OR IGNORE INTO story_keys_new (key, published, story_id) "
        "SELECT key, published, story_id FROM story_keys_rebuilt ORDER BY key, published, story_id",
        "DROP TABLE story_keys_rebuilt",
        "DROP TABLE story_keys",
        "ALTER TABLE story_keys_new RENAME TO story_keys",
    ):
        conn.execute(statement)


@_step("0006_event_stories")
def _m0006_event_stories(db: sqlite_utils.Database) -> None:
    """Event-level stories (``monitor.stories``): each story of matched items keeps its profile
    (what its items reported: stage, counts, names, words) for later items to be compared with,
    and each item why it joined its story. An index finds whether a story alerted on a channel
    (one alert per story per channel, whichever storylines its items matched)."""
    for statement in (
        "ALTER TABLE stories ADD COLUMN profile TEXT",
        "CREATE INDEX stories_profiled ON stories (published) WHERE profile IS NOT NULL",
        "ALTER TABLE items ADD COLUMN joined TEXT",
        "CREATE INDEX alerts_story ON alerts (story_id, channel)",
    ):
        db.conn.execute(statement)


# --------------------------------------------------------------------------- values in and out

@dataclass(frozen=True)
class NewEntry:
    """An entry of this poll that the store has not seen (by feed + guid), ready to record.

    ``url_known``: the pipeline found its canonical URL stored already; it becomes an entry of
    that item, neither matched nor fingerprinted. ``fingerprint`` is needed only when
    ``matches`` is not empty: an item that matched no storyline is a story of its own, never
    compared with others (layer 3 exists so that one story alerts once per storyline, and only
    matched items alert). 88 % of the news stream's items match no storyline: skipping them is
    most of the dedup work saved."""

    item: Item
    fingerprint: Fingerprint | None
    matches: tuple[Match, ...]
    url_known: bool = False
    event: Event | None = None  # what a matched item reports (``stories.event_of``)


class KnownEntries(Protocol):
    """What the pipeline asks before matching: which entries and URLs are stored already
    (``Store`` in the monitor's process, ``GuidReader`` in a parse worker)."""

    def known_guids(self, feed_url: str, guids: Sequence[str]) -> set[str]: ...

    def known_urls(self, urls: Sequence[str]) -> set[str]: ...


@dataclass(frozen=True)
class AlertPolicy:
    """What decides whether a new match becomes outbox rows."""

    channels: tuple[ChannelConfig, ...]
    storyline_names: dict[str, str]
    alert_after: datetime  # items published before this are stored and matched, never alerted
    alert_undated: bool = True  # False on a feed's first poll: undated items would all look new
    dedup_window: float = 72 * 3600.0
    event_stories: bool = True  # False: only syndicated copies join a story (bench/stories.py)


@dataclass(frozen=True)
class PollOutcome:
    new_items: int = 0
    known_url: int = 0  # same canonical URL already stored (another feed or a new guid)
    syndicated: int = 0  # attached to an existing story from another item
    updates: int = 0  # story.updated alerts written
    new_matches: int = 0
    new_alerts: int = 0


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# --------------------------------------------------------------------------- the store

class Store:
    """One SQLite database. Thread-safe: every operation runs under one lock."""

    def __init__(self, path: str | Path, *, lock_wait: float = LOCK_WAIT_SECONDS,
                 create: bool = True) -> None:
        """Open the database at ``path``; a new one is created there unless ``create`` is false
        (then a missing file is a ``StoreError``: the commands that only look at a database)."""
        self.path = Path(path)
        self.lock_wait = lock_wait
        self._lock = threading.RLock()
        self._profiles: dict[int, StoryProfile] = {}  # story profiles as committed (_PollBatch)
        self._group: float | None = None  # grouped_writes: seconds a transaction may stay open
        self._group_started: float | None = None  # when the open grouped transaction began
        _check_file(self.path)
        if not create and not self.path.exists():
            raise StoreError(f"{self.path}: no such database ('monitor run' creates it; --db or "
                             "the config's database chooses it)")
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0,
                                   isolation_level=None)
            self.db: Any = _Connection(conn)
            applied = _applied_steps(conn)
            pending = applied != {name for name, _fn in _STEPS}
            if pending:
                import sqlite_utils

                self.db = sqlite_utils.Database(conn)
                self._check_ours()
            self._write(lambda: None)  # waits here if another process holds the write lock
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
            # Performance only: checkpoint the WAL every 40 MB rather than 4 MB, and a 16 MB
            # page cache. Recording the 22,898-item stream took 4.6 s with the defaults, 2.8 s so.
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            conn.execute("PRAGMA cache_size=-16384")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA foreign_keys=ON")
            if pending:
                self._retrying(lambda: _migration_set().apply(self.db))
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: cannot use this database: {error}") from None

    def close(self) -> None:
        with self._lock:
            self._group = None
            self._end_group()
            self.db.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_ours(self) -> None:
        tables = set(self.db.table_names())
        if not tables - {MIGRATIONS_TABLE}:
            return  # new, or a first start killed before the first schema step committed
        applied = _applied_steps(self.db.conn)
        if not applied:
            raise StoreError(
                f"{self.path}: this SQLite database was not created by ceasefire-monitor "
                f"(it has tables {', '.join(sorted(tables)[:5])}); refusing to touch it. "
                "Use --db to choose another file."
            )
        known = {name for name, _fn in _STEPS}
        unknown = applied - known
        if unknown:
            raise StoreError(
                f"{self.path}: written by a newer ceasefire-monitor (schema steps "
                f"{', '.join(sorted(unknown))}); upgrade the monitor."
            )

    # -- transactions

    def _retrying(self, operation: Callable[[], T]) -> T:
        """Run ``operation``, retrying while another process holds the database lock."""
        deadline = time.monotonic() + self.lock_wait
        delay = 0.05
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as error:
                if "readonly" in str(error):
                    raise StoreError(f"{self.path}: the database is read-only ({error}): the monitor "
                                     "must be able to write to the file and its folder") from None
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"{self.path}: the database stayed locked by another process for "
                        f"{self.lock_wait:.0f} s"
                    ) from None
                log.info("database locked by another process; waiting", extra={"db": str(self.path)})
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _write(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` in one write transaction (taken up front: BEGIN IMMEDIATE)."""

        def attempt() -> T:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = operation()
                conn.execute("COMMIT")
            except BaseException:
                self._profiles.clear()  # it may hold what this transaction wrote
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        with self._lock:
            if self._group is None and self._group_started is None:
                return self._retrying(attempt)
            return self._grouped(operation)

    @contextmanager
    def grouped_writes(self, seconds: float = GROUP_COMMIT_SECONDS) -> Iterator[None]:
        """Writes in this block share transactions: one is committed once it has been open
        ``seconds`` (checked after each write), and at the end of the block. Each write is a
        savepoint, so a failed one is undone alone. A poll cycle of many feeds commits a few
        times rather than once per feed: each commit writes every page it dirtied to the WAL,
        and a poll's LSH keys land on hundreds of pages. A crash loses at most the writes of
        the open transaction, as a whole (feed states with their items), so those feeds are
        polled again; other processes wait for the write lock at most ``seconds`` longer."""
        with self._lock:
            self._group = seconds
        try:
            yield
        finally:
            with self._lock:
                self._group = None
                self._end_group()

    def _grouped(self, operation: Callable[[], T]) -> T:
        conn = self.db.conn
        if self._group_started is None:
            self._retrying(lambda: conn.execute("BEGIN IMMEDIATE"))
            self._group_started = time.monotonic()
        conn.execute("SAVEPOINT grouped_write")
        try:
            result = operation()
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO grouped_write")
                conn.execute("RELEASE grouped_write")
            else:  # SQLite gave the whole transaction up (e.g. disk full)
                self._group_started = None
                self._profiles.clear()  # it may hold what the group's earlier writes wrote
            raise
        conn.execute("RELEASE grouped_write")
        if self._group is None or time.monotonic() - self._group_started >= self._group:
            self._end_group()
        return result

    def _end_group(self) -> None:
        if self._group_started is None:
            return
        self._group_started = None
        conn = self.db.conn
        try:
            conn.execute("COMMIT")
        except sqlite3.Error:
            self._profiles.clear()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._retrying(lambda: self.db.conn.execute(sql, params))
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.db.conn.execute(sql, params)

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

    def schema_steps(self) -> list[str]:
        with self._lock:
            applied = _applied_steps(self.db.conn)
            return [name for name, _fn in _STEPS if name in applied]

    def integrity_check(self) -> str:
        return self._read("PRAGMA integrity_check")[0]["integrity_check"]

    # -- feeds

    def feed_state(self, url: str) -> FeedState:
        rows = self._read("SELECT * FROM feeds WHERE url = ?", [url])
        if not rows:
            raise KeyError(url)
        return _feed_state(rows[0])

    def feed_states(self) -> list[FeedState]:
        return [_feed_state(row) for row in self._read("SELECT * FROM feeds ORDER BY name")]

    # -- feeds added on the command line (schema step 0007), on top of the config's

    def added_feeds(self) -> list[dict[str, Any]]:
        """The feeds added with ``monitor feeds add`` / ``import``: url, name, interval (seconds,
        or None for the config's ``poll_interval``) and added_at, oldest first."""
        return self._read("SELECT url, name, interval, added_at FROM feeds_added ORDER BY added_at, url")

    def add_feed(self, url: str, name: str, interval: float | None, *, now: datetime) -> bool:
        """Add a feed; False when one with this URL or name was added already."""
        def operation() -> bool:
            cursor = self._exec("INSERT OR IGNORE INTO feeds_added (url, name, interval, added_at) "
                                "VALUES (?, ?, ?, ?)", (url, name, interval, iso(now)))
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
        with self._lock:
            return self._retrying(lambda: _known_guids(self.db.conn, feed_url, guids))

    def known_urls(self, urls: Sequence[str]) -> set[str]:
        """The canonical URLs already stored as items (dedup layer 2)."""
        with self._lock:
            return set(self._retrying(lambda: _stored_urls(self.db.conn, urls)))

    def record_not_modified(self, feed_url: str, *, now: datetime, status: int,
                            next_poll_at: datetime, etag: str | None = None,
                            last_modified: str | None = None,
                            policy: AlertPolicy | None = None) -> int:
        """A 304, or a 200 whose body did not change: the feed is healthy, nothing to parse.

        Returns the number of "feed recovered" alerts written.
        """
        def operation() -> int:
            self._exec(
                "UPDATE feeds SET last_fetch_at = :now, last_success_at = :now, "
                "last_status = :status, last_error = NULL, last_error_code = NULL, "
                "consecutive_errors = 0, next_poll_at = :next, "
                "etag = COALESCE(:etag, etag), last_modified = COALESCE(:lm, last_modified) "
                "WHERE url = :url",
                {"now": iso(now), "status": status, "next": iso(next_poll_at), "etag": etag,
                 "lm": last_modified, "url": feed_url},
            )
            return self._feed_recovered(feed_url, now, policy)
        return self._write(operation)

    def record_failure(self, feed_url: str, error: MonitorError, *, now: datetime,
                       next_poll_at: datetime, status: int | None = None,
                       down_after: int = 5, policy: AlertPolicy | None = None) -> FeedState:
        """A failed poll: count it on the feed; after ``down_after`` in a row, one "feed down" alert."""
        def operation() -> FeedState:
            self._exec(
                "UPDATE feeds SET last_fetch_at = ?, last_status = ?, last_error = ?, "
                "last_error_code = ?, consecutive_errors = consecutive_errors + 1, "
                "next_poll_at = ? WHERE url = ?",
                (iso(now), status, str(error)[:500], error.code, iso(next_poll_at), feed_url),
            )
            state = _feed_state(self._read("SELECT * FROM feeds WHERE url = ?", [feed_url])[0])
            if policy and state.consecutive_errors >= down_after and not state.down_alerted:
                self._exec("UPDATE feeds SET down_alerted = 1 WHERE url = ?", [feed_url])
                body = feed_payload(kind=FEED_DOWN, timestamp=now, feed_name=state.name,
                                    feed_url=feed_url, consecutive_errors=state.consecutive_errors,
                                    last_error=state.last_error)
                for channel in policy.channels:
                    self._insert_alert(channel.name, FEED_DOWN, f"{FEED_DOWN}:{feed_url}:{iso(now)}",
                                       body, now, feed_url=feed_url,
                                       held=self._hold(channel, now, 100.0, capped=False))
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
                    body_hash: str | None = None) -> PollOutcome:
        """Record one successful poll in one transaction: feed health, new items (through the
        three dedup layers), every match, and the outbox rows for new (storyline, story) pairs.
        Returns counts of what was new. Entries already stored are ignored (idempotent)."""

        def operation() -> PollOutcome:
            counts = {"new_items": 0, "known_url": 0, "syndicated": 0, "new_matches": 0,
                      "new_alerts": 0, "updates": 0}
            batch = _PollBatch(self.db.conn, entries, now, self._profiles)
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
            return PollOutcome(**counts)

        return self._write(operation)

    def _record_entry(self, entry: NewEntry, now: datetime, policy: AlertPolicy,
                      counts: dict[str, int], batch: _PollBatch) -> None:
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
        item_id = batch.next_item_id
        batch.next_item_id += 1
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
            batch.flush()  # the sources of the story are read from the items table
            body = match_payload(
                timestamp=now, item=item_fields, story_id=story_id,
                storylines=[{"id": m.storyline_id,
                             "name": policy.storyline_names.get(m.storyline_id, m.storyline_id),
                             "score": m.score, "hits": found_by[m.storyline_id],
                             "decided_by": m.decided_by, "evidence": list(m.evidence)}
                            for m in wanted],
                sources=self._sources(story_id),
            )
            counts["new_alerts"] += self._insert_alert(
                channel.name, MATCH, f"{MATCH}:{story_id}", body, now,
                storyline_id=wanted[0].storyline_id, story_id=story_id, item_id=item_id,
                held=self._hold(channel, now, max(m.score for m in wanted)))
            batch.alerted.add((channel.name, story_id))

    def _story_updates(self, story_id: int, profile: StoryProfile, item: dict[str, Any],
                       policy: AlertPolicy, now: datetime, batch: _PollBatch) -> int:
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

    def _exec_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.db.conn.executemany(sql, rows)

    def _sources(self, story_id: int) -> list[dict[str, Any]]:
        rows = self._exec(
            "SELECT i.source, i.title, i.url, MIN(i.published) AS published FROM items i "
            "WHERE i.story_id = ? GROUP BY i.feed_url ORDER BY MIN(i.id)",
            [story_id],
        ).fetchall()
        return [{"source": r[0], "title": r[1], "link": r[2], "published": r[3]} for r in rows]

    def _insert_alert(self, channel: str, kind: str, dedup_key: str, body: dict[str, Any],
                      now: datetime, *, storyline_id: str | None = None,
                      story_id: int | None = None, item_id: int | None = None,
                      feed_url: str | None = None, held: Hold | None = None) -> int:
        """One outbox row: pending, or held for the channel's digest (``held``: ``policy.hold``)."""
        cursor = self._exec(
            "INSERT OR IGNORE INTO alerts (uid, channel, kind, dedup_key, storyline_id, story_id, "
            "item_id, feed_url, payload, created_at, status, held_until, held_reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (f"msg_{uuid.uuid4().hex}", channel, kind, dedup_key, storyline_id, story_id,
             item_id, feed_url, json.dumps(body, ensure_ascii=False), iso(now),
             "held" if held else "pending", iso(held.until) if held else None,
             held.reason if held else None),
        )
        return cursor.rowcount

    # -- the outbox

    def due_alerts(self, channel: str, *, now: datetime, limit: int = 50) -> list[Alert]:
        """The channel's pending alerts, oldest first, unless the channel is disabled or backing off.

        Alerts of one channel go out in order of creation: when the head fails, the channel
        backs off as a whole rather than skipping ahead.
        """
        state = self._read("SELECT disabled_at, next_attempt_at FROM channels WHERE name = ?",
                           [channel])
        if state and (state[0]["disabled_at"] or (
                state[0]["next_attempt_at"] and state[0]["next_attempt_at"] > iso(now))):
            return []
        rows = self._read(
            "SELECT * FROM alerts WHERE channel = ? AND status = 'pending' ORDER BY id LIMIT ?",
            [channel, limit],
        )
        return [_alert(row) for row in rows]

    def mark_sent(self, alert_id: int, *, now: datetime) -> None:
        def operation() -> None:
            row = self._exec(
                "UPDATE alerts SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
                "last_attempt_at = ?, last_error = NULL WHERE id = ? RETURNING channel",
                (iso(now), iso(now), alert_id),
            ).fetchone()
            if row:
                self._exec("UPDATE channels SET consecutive_failures = 0, next_attempt_at = NULL, "
                           "last_error = NULL WHERE name = ?", [row[0]])
        self._write(operation)

    def mark_retry(self, alert_id: int, error: str, *, now: datetime,
                   channel_next_attempt: datetime) -> None:
        """A retryable failure: the alert stays pending; its channel waits until the given time."""
        def operation() -> None:
            row = self._exec(
                "UPDATE alerts SET attempts = attempts + 1, last_error = ?, last_attempt_at = ? "
                "WHERE id = ? RETURNING channel", (error[:500], iso(now), alert_id),
            ).fetchone()
            if row:
                self._exec(
                    "UPDATE channels SET consecutive_failures = consecutive_failures + 1, "
                    "next_attempt_at = ?, last_error = ? WHERE name = ?",
                    (iso(channel_next_attempt), error[:500], row[0]),
                )
        self._write(operation)

    def mark_failed(self, alert_id: int, reason: str, *, now: datetime) -> None:
        """Never deliverable (permanent error, or too old): kept with its reason, never dropped."""
        self._write(lambda: self._exec(
            "UPDATE alerts SET status = 'failed', attempts = attempts + 1, last_error = ?, "
            "last_attempt_at = ?, failed_at = ? WHERE id = ?",
            (reason[:500], iso(now), iso(now), alert_id)))

    def channel_failures(self, channel: str) -> int:
        rows = self._read("SELECT consecutive_failures FROM channels WHERE name = ?", [channel])
        return rows[0]["consecutive_failures"] if rows else 0

    def disable_channel(self, channel: str, reason: str, *, now: datetime) -> None:
        self._write(lambda: self._exec(
            "UPDATE channels SET disabled_at = ?, disabled_reason = ? WHERE name = ?",
            (iso(now), reason[:500], channel)))

    def enable_channel(self, channel: str) -> bool:
        return bool(self._write(lambda: self._exec(
            "UPDATE channels SET disabled_at = NULL, disabled_reason = NULL, "
            "consecutive_failures = 0, next_attempt_at = NULL WHERE name = ?", [channel]).rowcount))

    def retry_alerts(self, ids: Sequence[int] = (), *, failed: bool = False,
                     now: datetime | None = None) -> int:
        """Requeue the given alerts, or every failed one. Returns how many were requeued.
        The give-up age of a requeued alert counts from ``now``."""
        queued = iso(now or datetime.now(UTC))

        def operation() -> int:
            count = 0
            if failed:
                count += self._exec("UPDATE alerts SET status = 'pending', queued_at = ? "
                                    "WHERE status = 'failed'", [queued]).rowcount
            for alert_id in ids:
                count += self._exec("UPDATE alerts SET status = 'pending', queued_at = ? "
                                    "WHERE id = ? AND status IN ('sent', 'failed')",
                                    [queued, alert_id]).rowcount
            return count
        return self._write(operation)

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

    def held_alerts(self, channel: str, *, due_by: datetime | None) -> list[Alert]:
        """The channel's held alerts, oldest first: those due by ``due_by``; None: all of them."""
        if due_by is None:
            rows = self._read("SELECT * FROM alerts WHERE channel = ? AND status = 'held' ORDER BY id",
                              [channel])
        else:
            rows = self._read("SELECT * FROM alerts WHERE channel = ? AND status = 'held' AND "
                              "held_until <= ? ORDER BY id", [channel, iso(due_by)])
        return [_alert(row) for row in rows]

    def story_sources(self, story_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        """The outlets of each story now: source, title, link, published (first report first)."""
        wanted = sorted(set(story_ids))
        with self._lock:
            return self._retrying(lambda: {story_id: self._sources(story_id) for story_id in wanted})

    def write_digest(self, channel: str, body: dict[str, Any], covered: Sequence[int], *,
                     now: datetime) -> int | None:
        """In one transaction: the digest as one pending outbox row of ``channel`` (its own uid,
        hence ``webhook-id``), and the held rows it covers marked ``digested`` (pointing at it).
        Returns the digest's id; None when a covered row is no longer held (another process
        wrote a digest of it first): then nothing is written."""
        if not covered:
            return None
        ids = sorted(covered)

        def operation() -> int:
            cursor = self._exec(
                "INSERT OR IGNORE INTO alerts (uid, channel, kind, dedup_key, payload, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (f"msg_{uuid.uuid4().hex}", channel, DIGEST, f"{DIGEST}:{ids[0]}:{ids[-1]}:{len(ids)}",
                 json.dumps(body, ensure_ascii=False), iso(now)))
            if not cursor.rowcount:  # the same rows digested already
                raise _DigestRaced
            digest_id = int(cursor.lastrowid or 0)
            marked = 0
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marked += self._exec(
                    f"UPDATE alerts SET status = 'digested', digest_id = ? WHERE channel = ? AND "
                    f"status = 'held' AND id IN ({','.join('?' * len(chunk))})",
                    [digest_id, channel, *chunk]).rowcount
            if marked != len(ids):
                raise _DigestRaced
            return digest_id

        try:
            return self._write(operation)
        except _DigestRaced:
            return None

    def held_summary(self) -> dict[str, dict[str, Any]]:
        """Per channel with held alerts: how many, and when the first of them is due."""
        return {r["channel"]: {"held": r["held"], "due": _parse_time(r["due"])} for r in self._read(
            "SELECT channel, COUNT(*) AS held, MIN(held_until) AS due FROM alerts "
            "WHERE status = 'held' GROUP BY channel")}

    # -- read models for the CLI

    def channels(self) -> list[dict[str, Any]]:
        return self._read("SELECT * FROM channels ORDER BY name")

    def alert_counts(self) -> dict[str, int]:
        """Alerts in the outbox by status (pending, sent, failed)."""
        return {r["status"]: r["n"] for r in self._read(
            "SELECT status, COUNT(*) AS n FROM alerts GROUP BY status")}

    def alerts(self, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        rows = self._read(
            f"SELECT id, uid, channel, kind, storyline_id, story_id, status, attempts, last_error, "
            f"created_at, last_attempt_at, sent_at, failed_at, queued_at, payload FROM alerts {where} "
            f"ORDER BY id DESC LIMIT ?", [*params, limit])
        for row in rows:
            payload = json.loads(row.pop("payload"))
            data = payload.get("data", {})
            row["title"] = data.get("item", {}).get("title") or data.get("feed", {}).get("name") or (
                f"digest of {data.get('count')} stories" if payload.get("type") == DIGEST else None)
        return rows

    def matches(self, *, storyline: str | None = None, limit: int = 20, since: datetime | None = None,
                words: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Matches, newest item first: of ``storyline``, of items published at or after ``since``,
        whose title or summary holds every one of ``words`` (case-insensitive)."""
        clauses, params = _match_filters(storyline, since, words)
        return self._matches_where(clauses, params, limit)

    def _matches_where(self, clauses: Sequence[str], params: Sequence[Any],
                       limit: int) -> list[dict[str, Any]]:
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(
            f"SELECT m.storyline_id AS storyline, i.title, i.url AS link, i.source, i.published, "
            f"m.score, m.story_id, m.hits, m.created_at, i.id AS item_id, "
            f"EXISTS (SELECT 1 FROM alerts a WHERE a.item_id = i.id AND a.kind = '{MATCH}') "
            f"AS alerted, (SELECT group_concat(o.storyline_id, ' ') FROM matches o "
            f"WHERE o.item_id = i.id) AS storylines "
            f"FROM matches m JOIN items i ON i.id = m.item_id {where} "
            f"ORDER BY i.published DESC, i.id DESC LIMIT ?", [*params, limit])
        for row in rows:
            row["alerted"] = bool(row["alerted"])
            row["storylines"] = sorted(row["storylines"].split())  # every storyline of the item
            row["matched_terms"] = json.loads(row.pop("hits"))
        return rows

    def stories(self, *, since: datetime, storyline: str | None = None,
                limit: int = 50) -> list[dict[str, Any]]:
        """The stories of matched items first reported since ``since``, newest first: their
        items (with why each joined), outlets, storylines, and where they alerted."""
        where = ""
        params: list[Any] = [since.timestamp()]
        if storyline:
            where = " AND EXISTS (SELECT 1 FROM matches m WHERE m.story_id = s.id AND m.storyline_id = ?)"
            params.append(storyline)
        stories = self._read(
            f"SELECT s.id AS story_id, s.published FROM stories s WHERE s.profile IS NOT NULL "
            f"AND s.published >= ?{where} ORDER BY s.published DESC, s.id DESC LIMIT ?",
            [*params, limit])
        if not stories:
            return []
        ids = [story["story_id"] for story in stories]
        marks = ",".join("?" * len(ids))
        items: dict[int, list[dict[str, Any]]] = {}
        for row in self._read(
                f"SELECT i.story_id, i.id AS item_id, i.source, i.title, i.url AS link, i.published, "
                f"i.joined, (SELECT group_concat(m.storyline_id, ' ') FROM matches m "
                f"WHERE m.item_id = i.id) AS storylines FROM items i WHERE i.story_id IN ({marks}) "
                f"ORDER BY i.published, i.id", ids):
            why = json.loads(row.pop("joined")) if row["joined"] else None
            row["storylines"] = sorted((row["storylines"] or "").split())
            row["joined"] = why if why and why.get("by") != "new" else None
            row["alerts"] = not (why and why.get("alerts") is False)
            items.setdefault(row.pop("story_id"), []).append(row)
        alerts: dict[int, list[dict[str, Any]]] = {}
        for row in self._read(
                f"SELECT story_id, channel, kind, status, item_id, created_at, sent_at FROM alerts "
                f"WHERE story_id IN ({marks}) ORDER BY id", ids):
            alerts.setdefault(row.pop("story_id"), []).append(row)
        out = []
        for story in stories:
            story_items = items.get(story["story_id"], [])
            if not story_items:
                continue
            first = min(story_items, key=lambda i: (i["published"], i["item_id"]))
            out.append({
                "story_id": story["story_id"], "first_seen": first["published"],
                "headline": first["title"], "outlets": len({i["source"] for i in story_items}),
                "storylines": sorted({s for i in story_items for s in i["storylines"]}),
                "alerts": first["alerts"],
                "alerted": [a for a in alerts.get(story["story_id"], []) if a["kind"] == MATCH],
                "updates": [a for a in alerts.get(story["story_id"], []) if a["kind"] != MATCH],
                "items": story_items})
        return out

    def storyline_stats(self, *, now: datetime) -> dict[str, dict[str, Any]]:
        rows = self._read(
            "SELECT storyline_id, COUNT(*) AS total, "
            "SUM(created_at >= ?) AS last_24h, MAX(created_at) AS last_match "
            "FROM matches GROUP BY storyline_id", [iso(now - timedelta(hours=24))])
        return {r["storyline_id"]: {"total": r["total"], "last_24h": r["last_24h"] or 0,
                                    "last_match": r["last_match"]} for r in rows}

    # -- examples for the learned layer

    def record_feedback(self, item: str, storyline: str, *, right: bool,
                        now: datetime) -> dict[str, Any]:
        """Record the desk's verdict on the monitor's decision for ``item`` (a stored item id, or
        its link) and ``storyline``: the decision was right or wrong. The label stored is what the
        item truly is: matched and right, or not matched and wrong, is a positive.
        Raises ``KeyError`` when no such item is stored."""

        def operation() -> dict[str, Any]:
            row = None
            if item.isdigit():
                row = self._exec("SELECT id, title, summary FROM items WHERE id = ?",
                                 [int(item)]).fetchone()
            if row is None:
                row = self._exec("SELECT id, title, summary FROM items WHERE url = ? LIMIT 1",
                                 [item]).fetchone()
            if row is None:
                raise KeyError(item)
            item_id, title, summary = row
            matched = self._exec("SELECT 1 FROM matches WHERE item_id = ? AND storyline_id = ?",
                                 [item_id, storyline]).fetchone() is not None
            label = matched == right
            self._exec(
                "INSERT INTO feedback (storyline_id, example_key, item_id, title, summary, label, "
                "verdict, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'desk', ?) "
                "ON CONFLICT (storyline_id, example_key) DO UPDATE SET label = excluded.label, "
                "verdict = excluded.verdict, source = excluded.source, "
                "created_at = excluded.created_at",
                [storyline, f"item:{item_id}", item_id, title, summary, int(label),
                 "right" if right else "wrong", iso(now)])
            return {"item_id": item_id, "title": title, "storyline": storyline, "matched": matched,
                    "verdict": "right" if right else "wrong", "label": label}

        return self._write(operation)

    def import_examples(self, rows: Iterable[tuple[str, str, str, str, bool]], *, source: str,
                        now: datetime) -> int:
        """Store labelled examples ``(key, title, summary, storyline, label)`` from a file; an
        example already stored under the same key and storyline is replaced. Returns the count."""
        values = [(storyline, f"label:{key}", title, summary, int(label), source, iso(now))
                  for key, title, summary, storyline, label in rows]

        def operation() -> int:
            self._exec_many(
                "INSERT INTO feedback (storyline_id, example_key, title, summary, label, source, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (storyline_id, example_key) DO UPDATE SET title = excluded.title, "
                "summary = excluded.summary, label = excluded.label, verdict = NULL, "
                "source = excluded.source, created_at = excluded.created_at", values)
            return len(values)

        return self._write(operation)

    def feedback_examples(self, storyline: str) -> list[tuple[str, str, str, bool]]:
        """The stored examples of a storyline: ``(key, title, summary, label)``, oldest first."""
        rows = self._read("SELECT example_key, title, summary, label FROM feedback "
                          "WHERE storyline_id = ? ORDER BY id", [storyline])
        return [(r["example_key"], r["title"], r["summary"], bool(r["label"])) for r in rows]

    def feedback_counts(self) -> dict[str, dict[str, int]]:
        """Per storyline: examples stored, positives, and how many are desk verdicts."""
        rows = self._read("SELECT storyline_id, COUNT(*) AS examples, SUM(label) AS positives, "
                          "SUM(source = 'desk') AS desk FROM feedback GROUP BY storyline_id")
        return {r["storyline_id"]: {"examples": r["examples"], "positives": r["positives"] or 0,
                                    "desk": r["desk"] or 0} for r in rows}

    def review_items(self, *, limit: int = 2000) -> list[dict[str, Any]]:
        """The newest stored items, for ``monitor review`` to rank: ``item_id``, ``title``,
        ``summary``, ``link``, ``source``, ``published``, newest first."""
        rows = self._read("SELECT id AS item_id, title, summary, url AS link, source, published "
                          "FROM items ORDER BY published DESC, id DESC LIMIT ?", [limit])
        return [dict(r) for r in rows]

    def saved_model(self, storyline: str, fingerprint: str) -> str | None:
        """The JSON of the model last trained for ``storyline`` if it was trained on examples and
        rules with this fingerprint; else None."""
        rows = self._read("SELECT model FROM learned_models WHERE storyline_id = ? AND "
                          "fingerprint = ?", [storyline, fingerprint])
        return rows[0]["model"] if rows else None

    def save_model(self, storyline: str, fingerprint: str, model: str, *, now: datetime) -> None:
        self._write(lambda: self._exec(
            "INSERT INTO learned_models (storyline_id, fingerprint, model, trained_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (storyline_id) DO UPDATE SET "
            "fingerprint = excluded.fingerprint, model = excluded.model, "
            "trained_at = excluded.trained_at", [storyline, fingerprint, model, iso(now)]))

    def counts(self) -> dict[str, int]:
        return {table: self._read(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]
                for table in ("items", "stories", "matches", "alerts", "entries")}

    # -- read models for the web desk

    def storyline_activity(self, *, since: datetime) -> dict[str, list[dict[str, Any]]]:
        """What each storyline matched that was published since ``since``: its matches
        (storyline, published) and its stories (storyline, story_id, first: when the story's
        first item of the storyline was published)."""
        matches = self._read("SELECT m.storyline_id AS storyline, i.published FROM matches m "
                             "JOIN items i ON i.id = m.item_id WHERE i.published >= ? "
                             "ORDER BY i.published", [iso(since)])
        stories = self._read("SELECT m.storyline_id AS storyline, m.story_id, MIN(i.published) AS first "
                             "FROM matches m JOIN items i ON i.id = m.item_id "
                             "GROUP BY m.storyline_id, m.story_id HAVING first >= ? ORDER BY first",
                             [iso(since)])
        return {"matches": matches, "stories": stories}

    def story_detail(self, story_id: int) -> dict[str, Any] | None:
        """One story, matched or not: its items oldest first, each with its summary, why it
        joined, its matches (score, terms) and the desk's verdicts; and the story's alerts."""
        items = self._read(
            "SELECT id AS item_id, source, feed_url, title, summary, url AS link, published, "
            "first_seen, joined FROM items WHERE story_id = ? ORDER BY published, id", [story_id])
        if not items:
            return None
        ids = [item["item_id"] for item in items]
        marks = ",".join("?" * len(ids))
        matches: dict[int, list[dict[str, Any]]] = {}
        for row in self._read(f"SELECT item_id, storyline_id AS storyline, score, hits FROM matches "
                              f"WHERE item_id IN ({marks}) ORDER BY storyline_id", ids):
            row["matched_terms"] = json.loads(row.pop("hits"))
            matches.setdefault(row.pop("item_id"), []).append(row)
        verdicts: dict[int, dict[str, str]] = {}
        for row in self._read(f"SELECT item_id, storyline_id, verdict FROM feedback WHERE item_id "
                              f"IN ({marks}) AND verdict IS NOT NULL", ids):
            verdicts.setdefault(row["item_id"], {})[row["storyline_id"]] = row["verdict"]
        for item in items:
            why = json.loads(item.pop("joined")) if item["joined"] else None
            item["joined"] = why if why and why.get("by") != "new" else None
            item["matches"] = matches.get(item["item_id"], [])
            item["verdicts"] = verdicts.get(item["item_id"], {})
        alerts = self._read("SELECT id, channel, kind, status, item_id, created_at, sent_at FROM alerts "
                            "WHERE story_id = ? ORDER BY id", [story_id])
        return {"story_id": story_id, "headline": items[0]["title"], "first_seen": items[0]["published"],
                "outlets": len({item["source"] for item in items}),
                "storylines": sorted({m["storyline"] for item in items for m in item["matches"]}),
                "items": items, "alerts": alerts}

    def storyline_totals(self) -> dict[str, dict[str, int]]:
        """Per storyline: matches and stories stored."""
        rows = self._read("SELECT storyline_id, COUNT(*) AS matches, COUNT(DISTINCT story_id) AS stories "
                          "FROM matches GROUP BY storyline_id")
        return {r["storyline_id"]: {"matches": r["matches"], "stories": r["stories"]} for r in rows}

    def delivery_latencies(self, bounds: Sequence[float]) -> dict[str, Any]:
        """Of the match alerts sent: how many took at most each of ``bounds`` seconds from the
        item's first sight to the receiver's acknowledgement (cumulative), their count and sum."""
        latency = "(julianday(a.sent_at) - julianday(i.first_seen)) * 86400.0"
        buckets = ", ".join(f"SUM({latency} <= ?) AS b{n}" for n in range(len(bounds)))
        row = self._read(f"SELECT COUNT(*) AS count, COALESCE(SUM({latency}), 0) AS total, {buckets} "
                         f"FROM alerts a JOIN items i ON i.id = a.item_id WHERE a.status = 'sent' "
                         f"AND a.kind = '{MATCH}'", list(bounds))[0]
        return {"count": row["count"], "sum": row["total"],
                "buckets": [row[f"b{n}"] or 0 for n in range(len(bounds))]}

    def review_candidates(self, storyline: str, *, since: datetime, limit: int) -> list[dict[str, Any]]:
        """Items first seen since ``since``, newest first, on which the desk gave no verdict for
        ``storyline``: each with its text, story, and whether the monitor matched it there."""
        return self._read(
            "SELECT i.id AS item_id, i.title, i.summary, i.source, i.url AS link, i.published, "
            "i.story_id, EXISTS (SELECT 1 FROM matches m WHERE m.item_id = i.id AND "
            "m.storyline_id = :storyline) AS matched FROM items i WHERE i.first_seen >= :since "
            "AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.storyline_id = :storyline AND "
            "f.example_key = 'item:' || i.id) ORDER BY i.first_seen DESC, i.id DESC LIMIT :limit",
            {"storyline": storyline, "since": iso(since), "limit": limit})

    def has_fts(self) -> bool:
        """Whether the items' full-text index exists (schema step 0009, where SQLite has FTS5)."""
        return bool(self._read("SELECT 1 FROM sqlite_master WHERE name = 'items_fts'"))

    def search_matches(self, text: str, *, storyline: str | None = None,
                       limit: int = 50) -> tuple[list[dict[str, Any]], str]:
        """The matches (as ``matches`` gives them, newest item first) of ``storyline`` whose item's
        title or summary holds every word of ``text``, each word also as the start of a longer
        one ("negotiat" finds "negotiators"), through the FTS5 index; and how they were found:
        ``"fts5"``, or ``"words"`` (``matches(words=...)``: anywhere in a word) without it."""
        words = _FTS_WORD.findall(text)
        if not words:
            return [], "fts5"
        if not self.has_fts():
            return self.matches(storyline=storyline, words=text.split(), limit=limit), "words"
        clauses, params = _match_filters(storyline, None, ())
        clauses.append("i.id IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)")
        params.append(" ".join(f'"{word}"*' for word in words))
        return self._matches_where(clauses, params, limit), "fts5"

    def outbox_summary(self) -> list[dict[str, Any]]:
        """Alerts per channel and status, with the oldest one's time (queued again: from then)."""
        return self._read("SELECT channel, status, COUNT(*) AS count, "
                          "MIN(COALESCE(queued_at, created_at)) AS oldest FROM alerts "
                          "GROUP BY channel, status ORDER BY channel, status")


class _PollBatch:
    """The writes of one ``record_poll``, held and written with one ``executemany`` per table
    (at the end of the poll, or before the items table is read for an alert's sources), and
    the look-ups of the poll done in bulk: which entries are stored (one query per feed), which
    canonical URLs (one query for all). Rows get their ids here (max + 1, as SQLite would give
    them: the poll runs in one write transaction), so a story row is written with its first item.

    Layer 3 (``find_story``) sees the stories of this poll that are not written yet through an
    in-memory copy of their keys and shingles, merged in the order the table gives: the same
    candidates, so the same decisions, as writing every row at once.
    """

    def __init__(self, conn: sqlite3.Connection, entries: Sequence[NewEntry], now: datetime,
                 kept: dict[int, StoryProfile]) -> None:
        self.conn = conn
        self.kept = kept  # the store's profiles as written by earlier polls: never changed here
        self.now = iso(now)  # the time of the poll, as every row of it is written
        guids: dict[str, list[str]] = {}
        urls: set[str] = set()
        for entry in entries:
            guids.setdefault(entry.item.feed_url, []).append(entry.item.guid)
            if entry.item.url:
                urls.add(entry.item.url)
        self.seen = {(feed, guid) for feed, feed_guids in guids.items()
                     for guid in _known_guids(conn, feed, feed_guids)}
        self.urls = _stored_urls(conn, sorted(urls))
        self.next_item_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM items").fetchone()[0]
        self.next_story_id = conn.execute(
            "SELECT COALESCE(MAX(id), 0) + 1 FROM stories").fetchone()[0]
        self.alerted: set[tuple[str, int]] = set()  # (channel, story) alerted in this poll
        self.profiles: dict[int, StoryProfile] = {}  # stories compared or changed in this poll
        self.changed: set[int] = set()  # of which these are to be written
        self.written: set[int] = set()  # and these were, by this poll
        self.loaded: tuple[float, float] | None = None  # the span of stored stories loaded
        self.stories: list[tuple[int, int, float, bytes]] = []
        self.keys: list[tuple[int, float, int]] = []
        self.items: list[tuple[Any, ...]] = []
        self.entries: list[tuple[str, str, int]] = []
        self.matches: list[tuple[Any, ...]] = []
        # stories of this poll not yet written: key -> [(published, story_id)], id -> fingerprint
        self.pending_keys: dict[int, list[tuple[float, int]]] = {}
        self.pending: dict[int, Fingerprint] = {}

    def claim_entry(self, feed_url: str, guid: str) -> bool:
        """False when (feed, guid) is stored or was recorded earlier in this poll."""
        if (feed_url, guid) in self.seen:
            return False
        self.seen.add((feed_url, guid))
        return True

    def add_story(self, fingerprint: Fingerprint | None, published: float, item_id: int) -> int:
        """A new story, first told by ``item_id``; with no fingerprint it has no shingles and no
        keys: no later item can join it."""
        story_id = self.next_story_id
        self.next_story_id += 1
        if fingerprint is None:
            self.stories.append((story_id, item_id, published, b""))
            return story_id
        self.stories.append((story_id, item_id, published, fingerprint.packed))
        for key in set(fingerprint.band_keys):
            self.keys.append((key, published, story_id))
            self.pending_keys.setdefault(key, []).append((published, story_id))
        self.pending[story_id] = fingerprint
        return story_id

    def flush(self) -> None:
        conn = self.conn
        if self.stories:
            conn.executemany("INSERT INTO stories (id, first_item_id, published, shingles) "
                             "VALUES (?, ?, ?, ?)", self.stories)
            self.keys.sort()
            conn.executemany("INSERT INTO story_keys (key, published, story_id) VALUES (?, ?, ?)",
                             self.keys)
        if self.items:
            conn.executemany(
                "INSERT INTO items (id, feed_url, source, guid, url, title, summary, published, "
                "published_known, first_seen, story_id, joined) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self.items)
        if self.entries:
            conn.executemany("INSERT INTO entries (feed_url, guid, item_id) VALUES (?, ?, ?)",
                             self.entries)
        if self.matches:
            conn.executemany(
                "INSERT OR IGNORE INTO matches (item_id, storyline_id, story_id, score, hits, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)", self.matches)
        if self.changed:  # after the stories: a new story's profile is written by an UPDATE too
            conn.executemany("UPDATE stories SET profile = ? WHERE id = ?",
                             [(self.profiles[i].to_json(), i) for i in sorted(self.changed)])
            self.written |= self.changed
            self.changed.clear()
        self.stories, self.keys, self.items, self.entries, self.matches = [], [], [], [], []
        self.pending_keys.clear()
        self.pending.clear()

    def keep_profiles(self) -> None:
        """At the end of the poll: the profiles it wrote are the store's (the store forgets them
        all if the transaction fails). Bounded: past ``KEPT_PROFILES``, start again empty."""
        if len(self.kept) > KEPT_PROFILES:
            self.kept.clear()
        self.kept.update((i, self.profiles[i]) for i in self.written)

    def candidates(self, published: float) -> list[StoryProfile]:
        """The stories an item published at ``published`` could join (``stories.JOIN_WINDOW``
        after their first report, ``JOIN_BEFORE`` before it): stored ones, loaded once per poll
        for the span of the poll's items, and this poll's."""
        low, high = published - JOIN_WINDOW, published + JOIN_BEFORE
        if self.loaded is None or low < self.loaded[0] or high > self.loaded[1]:
            span = (min(low, self.loaded[0]) if self.loaded else low,
                    max(high, self.loaded[1]) if self.loaded else high)
            ids = [row[0] for row in self.conn.execute(
                "SELECT id FROM stories WHERE profile IS NOT NULL AND published BETWEEN ? AND ?",
                span)]
            wanted = [i for i in ids if i not in self.profiles and i not in self.kept]
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                for story_id, profile in self.conn.execute(
                        f"SELECT id, profile FROM stories WHERE id IN ({','.join('?' * len(chunk))})",
                        chunk):
                    self.kept[story_id] = StoryProfile.from_json(story_id, profile)
            for story_id in ids:
                if story_id not in self.profiles:
                    self.profiles[story_id] = self.kept[story_id]
            self.loaded = span
        return [p for p in self.profiles.values() if low <= p.first_published <= high]

    def start_profile(self, story_id: int, event: Event, published: float, source: str,
                      storylines: set[str]) -> StoryProfile:
        profile = StoryProfile.start(story_id, event, published, source, storylines)
        self.profiles[story_id] = profile
        self.changed.add(story_id)
        return profile

    def join_profile(self, story_id: int, event: Event, published: float, source: str,
                     storylines: set[str]) -> tuple[StoryProfile | None, bool]:
        """Add the item to its story's profile (a story of an earlier release has none): the
        profile, and whether the item brought an outlet the story did not have."""
        profile = self.profiles.get(story_id) or self.kept.get(story_id)
        if profile is None:
            row = self.conn.execute("SELECT profile FROM stories WHERE id = ?", [story_id]).fetchone()
            if row is None or row[0] is None:
                return None, False
            profile = StoryProfile.from_json(story_id, row[0])
        if story_id not in self.changed:  # copy on first write: the kept one stays as committed
            profile = self.profiles[story_id] = profile.copy()
        new_outlet = profile.add(event, published, source, storylines)
        self.changed.add(story_id)
        return profile, new_outlet

    def _pending(self, key: int, low: float, high: float) -> list[tuple[float, int]]:
        return [row for row in self.pending_keys.get(key, ()) if low <= row[0] <= high]

    def find_story(self, fingerprint: Fingerprint, published: float, window: float) -> int | None:
        """Layer 3: the story of a near-duplicate item within the window, by LSH band keys:
        the same headline (equal title keys), else the most similar text above the bar.

        Each key looks at its newest ``CANDIDATES_PER_KEY`` stories only (newest first, then the
        newest story), so the work per item is bounded whatever is stored, even when a feed
        repeats one headline thousands of times.
        """
        if not fingerprint.band_keys:
            return None
        low, high = published - window, published + window
        title_key = fingerprint.title_key
        if title_key is not None:
            found = self.conn.execute(
                "SELECT published, story_id FROM story_keys WHERE key = ? AND published "
                "BETWEEN ? AND ? ORDER BY published DESC, story_id DESC LIMIT 1",
                (title_key, low, high)).fetchone()
            pending = self._pending(title_key, low, high)
            if pending:
                found = max([*pending, *([tuple(found)] if found else [])])
            if found:
                return found[1]
        keys = [k for k in set(fingerprint.band_keys) if k != title_key]
        if not keys:
            return None
        per_key = ("SELECT * FROM (SELECT key, published, story_id FROM story_keys WHERE key = ? "
                   "AND published BETWEEN ? AND ? ORDER BY published DESC, story_id DESC LIMIT ?)")
        rows = self.conn.execute(
            " UNION ALL ".join([per_key] * len(keys)),
            [value for key in keys for value in (key, low, high, CANDIDATES_PER_KEY)]).fetchall()
        stored: dict[int, list[tuple[float, int]]] = {}
        for key, row_published, story_id in rows:
            stored.setdefault(key, []).append((row_published, story_id))
        shared: dict[int, int] = {}
        pending_keys = self.pending_keys
        for key in keys:
            newest = stored.get(key, [])
            # most keys of an item are held by no pending story: no call for those
            if key in pending_keys and (pending := self._pending(key, low, high)):
                newest = sorted([*newest, *pending], reverse=True)[:CANDIDATES_PER_KEY]
            for _published, story_id in newest:
                shared[story_id] = shared.get(story_id, 0) + 1
        if not shared:
            return None
        candidates = sorted(shared, key=shared.__getitem__, reverse=True)[:MAX_CANDIDATES]
        texts = {story_id: self.pending[story_id].shingles for story_id in candidates
                 if story_id in self.pending}
        wanted = [story_id for story_id in candidates if story_id not in texts]
        if wanted:
            for story_id, blob in self.conn.execute(
                    f"SELECT id, shingles FROM stories WHERE id IN ({','.join('?' * len(wanted))})",
                    wanted):
                texts[story_id] = unpack_shingles(blob)
        best, best_similarity = None, 0.0
        for story_id in candidates:
            similarity = fingerprint.duplicates(texts[story_id])
            if similarity is not None and similarity > best_similarity:
                best, best_similarity = story_id, similarity
        return best


class _Connection:
    """The store's connection where sqlite-utils is not needed (every schema step applied)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


def _applied_steps(conn: sqlite3.Connection) -> set[str]:
    """The names of this monitor's schema steps recorded in the database, by plain SQL."""
    try:
        rows = conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ?",
                            [MIGRATION_SET]).fetchall()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return set()
        raise
    return {row[0] for row in rows}


class GuidReader:
    """A read-only connection for ``known_guids`` and ``known_urls`` in a worker process of the
    pipeline: WAL lets it read while the monitor's one writer writes. Opened on first use, in
    the worker; it sees what the writer has committed."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=LOCK_WAIT_SECONDS, isolation_level=None)
            self._conn.execute("PRAGMA query_only = ON")
        return self._conn

    def known_guids(self, feed_url: str, guids: Sequence[str]) -> set[str]:
        return _known_guids(self._connection(), feed_url, guids)

    def known_urls(self, urls: Sequence[str]) -> set[str]:
        return set(_stored_urls(self._connection(), urls))


def _stored_urls(conn: sqlite3.Connection, urls: Sequence[str]) -> dict[str, int]:
    """Which of ``urls`` are stored as items (dedup layer 2): URL -> the first item's id."""
    stored: dict[str, int] = {}
    for start in range(0, len(urls), 500):
        chunk = list(urls[start:start + 500])
        stored.update(conn.execute(
            f"SELECT url, MIN(id) FROM items WHERE url IN ({','.join('?' * len(chunk))}) "
            "GROUP BY url", chunk).fetchall())
    return stored


def _known_guids(conn: sqlite3.Connection, feed_url: str, guids: Sequence[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(guids), 500):
        chunk = list(guids[start:start + 500])
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT guid FROM entries WHERE feed_url = ? AND guid IN ({marks})",
                            [feed_url, *chunk])
        known.update(row[0] for row in rows)
    return known


# --------------------------------------------------------------------------- helpers

_FTS_WORD = re.compile(r"\w+")  # FTS5's unicode61 tokens: no quote or operator gets through


def _match_filters(storyline: str | None, since: datetime | None,
                   words: Sequence[str]) -> tuple[list[str], list[Any]]:
    """The WHERE clauses of ``Store.matches``: a word is looked for with LIKE, its wildcards escaped."""
    clauses: list[str] = []
    params: list[Any] = []
    if storyline:
        clauses.append("m.storyline_id = ?")
        params.append(storyline)
    if since is not None:
        clauses.append("i.published >= ?")
        params.append(iso(since))
    for word in words:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(i.title LIKE ? ESCAPE '\\' OR i.summary LIKE ? ESCAPE '\\')")
        params.extend([pattern, pattern])
    return clauses, params



def _check_file(path: Path) -> None:
    """Refuse, before SQLite touches it, a file that is not an SQLite database."""
    if path.is_dir():
        raise StoreError(f"{path}: is a directory, expected an SQLite database file")
    if not path.exists():
        if not path.parent.exists():
            raise StoreError(f"{path}: the folder {path.parent} does not exist")
        return
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        raise StoreError(f"{path}: cannot read the database: {error.strerror}") from None
    if header and header != SQLITE_HEADER:
        raise StoreError(f"{path}: not an SQLite database (corrupt or another kind of file); "
                         "refusing to touch it. Use --db to choose another file.")


def _feed_state(row: dict[str, Any]) -> FeedState:
    return FeedState(
        url=row["url"], name=row["name"], etag=row["etag"], last_modified=row["last_modified"],
        body_hash=row["body_hash"], last_fetch_at=_parse_time(row["last_fetch_at"]),
        last_success_at=_parse_time(row["last_success_at"]), last_status=row["last_status"],
        last_error=row["last_error"], last_error_code=row["last_error_code"],
        consecutive_errors=row["consecutive_errors"], next_poll_at=_parse_time(row["next_poll_at"]),
        items_seen=row["items_seen"], first_poll_done=bool(row["first_poll_done"]),
        down_alerted=bool(row["down_alerted"]),
    )


class _DigestRaced(Exception):
    """A digest's held rows were digested by another process meanwhile (``write_digest``)."""


def _alert(row: dict[str, Any]) -> Alert:
    return Alert(
        id=row["id"], uid=row["uid"], channel=row["channel"], kind=row["kind"],
        storyline_id=row["storyline_id"], story_id=row["story_id"],
        created_at=datetime.fromisoformat(row["created_at"]), attempts=row["attempts"],
        queued_at=_parse_time(row.get("queued_at")),
        status=row["status"], last_error=row["last_error"], payload=json.loads(row["payload"]),
    )


# --------------------------------------------------------------------------- schema steps, continued

@_step("0007_feeds_added")
def _m0007_feeds_added(db: sqlite_utils.Database) -> None:
    """Feeds added on the command line (``monitor feeds add`` / ``feeds import``), polled on top
    of the config's, and a pause on any feed (``monitor feeds pause``). Registered last: at the
    end of the module, after every other step."""
    for statement in (
        "CREATE TABLE feeds_added (url TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
        "interval REAL, added_at TEXT NOT NULL)",
        "ALTER TABLE feeds ADD COLUMN paused_at TEXT",
    ):
        db.conn.execute(statement)


@_step("0008_alert_policies")
def _m0008_alert_policies(db: sqlite_utils.Database) -> None:
    """Alert policies (issue 18, ``monitor.policy``): an alert held for its channel's digest has
    status ``held`` and says until when and why; once a digest (an outbox row of kind
    ``digest``) covers it, ``digested`` and the digest's id. Indexes for the held rows due and
    for the alerts a channel got in the last hour (``max_per_hour``)."""
    for statement in (
        "ALTER TABLE alerts ADD COLUMN held_until TEXT",
        "ALTER TABLE alerts ADD COLUMN held_reason TEXT",
        "ALTER TABLE alerts ADD COLUMN digest_id INTEGER",
        "CREATE INDEX alerts_held ON alerts (channel, status, held_until)",
        "CREATE INDEX alerts_recent ON alerts (channel, created_at)",
    ):
        db.conn.execute(statement)


@_step("0009_items_fts")
def _m0009_items_fts(db: sqlite_utils.Database) -> None:
    """The web desk's search over stored items (``Store.search_matches``): an external-content
    FTS5 index of the items' title and summary (the text stays in ``items``), kept by triggers and
    filled here from the items already stored. An SQLite built without FTS5 skips it: the step is
    recorded all the same, and the search looks for the words with LIKE instead.

    What it costs (measured on the 22,898 items of the news stream, one transaction): 0.86 s to
    index them at insert against 0.05 s without (~35 us an item, paid in ``record_poll``), and
    about as much disk again as their text; a search for two prefixes takes 0.3 ms against 10 ms
    with LIKE."""
    try:
        db.conn.execute("CREATE VIRTUAL TABLE items_fts USING fts5(title, summary, "
                        "content='items', content_rowid='id')")
    except sqlite3.OperationalError as error:
        if "fts5" not in str(error):
            raise
        log.warning("this SQLite has no FTS5: the web desk's search looks for words with LIKE")
        return
    for statement in (
        "CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN "
        "INSERT INTO items_fts (rowid, title, summary) VALUES (new.id, new.title, new.summary); END",
        "CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN "
        "INSERT INTO items_fts (items_fts, rowid, title, summary) "
        "VALUES ('delete', old.id, old.title, old.summary); END",
        "CREATE TRIGGER items_fts_update AFTER UPDATE OF title, summary ON items BEGIN "
        "INSERT INTO items_fts (items_fts, rowid, title, summary) "
        "VALUES ('delete', old.id, old.title, old.summary); "
        "INSERT INTO items_fts (rowid, title, summary) VALUES (new.id, new.title, new.summary); END",
        "INSERT INTO items_fts (items_fts) VALUES ('rebuild')",
    ):
        db.conn.execute(statement)
