"""One poll's writes and look-ups, batched: the rows of ``Store.record_poll`` and the story
decisions' candidates (dedup layers 1–3, ``stories.decide``'s profiles).

In: a transaction (``Tx``: ``execute`` and ``executemany`` with ``?`` placeholders, either
backend) and the poll's entries. Out: rows written with one ``executemany`` per table, and the
stories an item may join.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from ..dedup import Fingerprint, unpack_shingles
from ..stories import JOIN_BEFORE, JOIN_WINDOW, Event, StoryProfile
from .values import NewEntry, iso

CANDIDATES_PER_KEY = 8  # newest stories looked at per LSH band key
MAX_CANDIDATES = 20  # stories whose text is compared, most shared keys first
KEPT_PROFILES = 2_000  # story profiles kept parsed between polls (~4 KB each; a day holds dozens)


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Any: ...


class Tx(Protocol):
    """The open transaction of a write, as the batch and the store's shared code use it: SQL with
    ``?`` (or ``:name``) placeholders, rows as tuples. ``sqlite3.Connection`` is one; the
    PostgreSQL store wraps its connection in one."""

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Any: ...


class PollBatch:
    """The writes of one ``record_poll``, held and written with one ``executemany`` per table
    (at the end of the poll, or before the items table is read for an alert's sources), and
    the look-ups of the poll done in bulk: which entries are stored (one query per feed), which
    canonical URLs (one query for all). Rows get their ids here (from the store: ``_new_ids``), so
    a story row is written with its first item.

    Layer 3 (``find_story``) sees the stories of this poll that are not written yet through an
    in-memory copy of their keys and shingles, merged in the order the table gives: the same
    candidates, so the same decisions, as writing every row at once.
    """

    def __init__(self, conn: Tx, entries: Sequence[NewEntry], now: datetime,
                 kept: dict[int, StoryProfile], ids: tuple[Iterator[int], Iterator[int]]) -> None:
        """``ids``: the ids the new items and stories take, in order (``Store._new_ids``)."""
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
                     for guid in known_guids(conn, feed, feed_guids)}
        self.urls = stored_urls(conn, sorted(urls))
        self.item_ids, self.story_ids = ids
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
        story_id = next(self.story_ids)
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
                "INSERT INTO matches (item_id, storyline_id, story_id, score, hits, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", self.matches)
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
        all if the transaction fails). Bounded: past ``KEPT_PROFILES``, start again empty. A poll
        that wrote none leaves them alone (on PostgreSQL it ran beside a deciding one)."""
        if not self.written:
            return
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
                   "AND published BETWEEN ? AND ? ORDER BY published DESC, story_id DESC LIMIT ?) AS k")
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


def stored_urls(conn: Tx, urls: Sequence[str]) -> dict[str, int]:
    """Which of ``urls`` are stored as items (dedup layer 2): URL -> the first item's id."""
    stored: dict[str, int] = {}
    for start in range(0, len(urls), 500):
        chunk = list(urls[start:start + 500])
        stored.update(conn.execute(
            f"SELECT url, MIN(id) FROM items WHERE url IN ({','.join('?' * len(chunk))}) "
            "GROUP BY url", chunk).fetchall())
    return stored


def known_guids(conn: Tx, feed_url: str, guids: Sequence[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(guids), 500):
        chunk = list(guids[start:start + 500])
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT guid FROM entries WHERE feed_url = ? AND guid IN ({marks})",
                            [feed_url, *chunk])
        known.update(row[0] for row in rows)
    return known
