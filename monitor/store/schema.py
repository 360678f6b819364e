"""The schema's history: named steps, applied in order, each once, recorded in the database.

In: a database connection. Out: the monitor's tables, at the newest step.

The step names are the history both backends share: a SQLite database made by 0.1 and a
PostgreSQL database made today both record ``0001_initial`` … ``0009_items_fts``, so ``monitor
migrate`` and a refusal to run on a newer schema read the same names. This module holds the
SQLite steps (run through ``sqlite_utils.migrations``); ``pg_schema.py`` holds PostgreSQL's,
written for that engine.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..dedup import NUM_BANDS, band_keys, unpack_shingles

if TYPE_CHECKING:  # sqlite-utils is imported only when schema steps are pending
    import sqlite_utils
    from sqlite_utils.migrations import Migrations

log = logging.getLogger(__name__)

MIGRATION_SET = "ceasefire-monitor"
SCHEMA_VERSION = 10
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


def migration_set() -> Migrations:
    """The schema steps as a ``sqlite_utils`` ``Migrations`` set, built (and sqlite-utils
    imported: ~25 ms) on first use: a start-up with every step applied never needs it."""
    if not _MIGRATIONS:
        from sqlite_utils.migrations import Migrations

        steps = Migrations(MIGRATION_SET)
        for name, fn in _STEPS:
            steps(name=name)(fn)
        _MIGRATIONS.append(steps)
    return _MIGRATIONS[0]


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



@_step("0010_instances")
def _m0010_instances(db: sqlite_utils.Database) -> None:
    """Several instances on one database (issue 16): the instances that ran (``monitor
    instances``), and on each feed and channel the lease of the instance that holds it now
    (``lease_owner`` until ``lease_until``), with a fencing token on the feed (``fence``: a poll's
    results are stored only while the token it claimed with is current). SQLite has one writer
    at a time, so these only show which process holds what; PostgreSQL's instances claim
    through them (``claims.py``)."""
    for statement in (
        "CREATE TABLE instances (id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, "
        "started_at TEXT NOT NULL, heartbeat_at TEXT NOT NULL, stopped_at TEXT)",
        "ALTER TABLE feeds ADD COLUMN lease_owner TEXT",
        "ALTER TABLE feeds ADD COLUMN lease_until TEXT",
        "ALTER TABLE feeds ADD COLUMN fence INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE channels ADD COLUMN lease_owner TEXT",
        "ALTER TABLE channels ADD COLUMN lease_until TEXT",
        "CREATE INDEX feeds_due ON feeds (next_poll_at)",
        "CREATE INDEX feeds_lease ON feeds (lease_owner)",
    ):
        db.conn.execute(statement)

def applied_steps(conn: sqlite3.Connection) -> set[str]:
    """The names of this monitor's schema steps recorded in the database, by plain SQL."""
    try:
        rows = conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ?",
                            [MIGRATION_SET]).fetchall()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return set()
        raise
    return {row[0] for row in rows}


def step_names() -> list[str]:
    """Every step of this release, oldest first."""
    return [name for name, _fn in _STEPS]
