"""One poll's writes and look-ups, batched: the rows of ``Store.record_poll`` and the story
decisions' candidates (dedup layers 1–3, ``stories.decide``'s profiles).

In: a transaction (``Tx``: ``execute`` and ``executemany`` with ``?`` placeholders, either
backend) and the poll's entries. Out: rows written with one ``executemany`` per table, and the
stories an item may join.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any, Protocol

from ..dedup import Fingerprint, unpack_shingles
from ..stories import JOIN_BEFORE, JOIN_WINDOW, Event, StoryProfile
from .values import NewEntry, iso

CANDIDATES_PER_KEY = 8  # newest stories looked at per LSH band key
MAX_CANDIDATES = 20  # stories whose text is compared, most shared keys first
KEPT_PROFILES = 2_000  # story profiles kept parsed between polls (~4 KB each; a day holds dozens)
# stored rows per key read ahead for a poll (``PollBatch.prefetch``), newest first; an item whose
# window holds fewer of them than it looks at, and older rows may exist, asks for its own
PREFETCH_PER_KEY = 64


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

    Layer 3 (``find_story``) answers from a snapshot of the stored keys read before any row of
    the poll is written (``prefetch``: the keys of all the poll's matched items, over the union
    of their windows, and the shingles of the stories those keys name), merged with an in-memory
    copy of the keys and shingles of the stories this poll started, kept for the whole poll (a
    ``flush`` mid-poll writes them, but they are not in the snapshot): the same candidates, in
    the order the table gives, so the same decisions, as a look-up per item after writing every
    row at once. What the snapshot cannot answer (a key past ``PREFETCH_PER_KEY`` rows, another
    window) is asked of the table, merged with the stories not written yet.
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
        # the keys of the stories of this poll not yet written: key -> [(published, story_id)]
        self.pending_keys: dict[int, list[tuple[float, int]]] = {}
        # and all the stories of this poll, written or not (the snapshot holds none of them)
        self.own_keys: dict[int, list[tuple[float, int]]] = {}
        self.own: dict[int, Fingerprint] = {}
        # the items that may decide a story (matched; stored entries and URLs are not): the
        # stories they may join are loaded once for all of them (a feed lists its newest first:
        # one item at a time, each would widen the span and read again), and of those with band
        # keys, the keys layer 3 may look up are read ahead
        deciding = [entry for entry in entries
                    if entry.matches and (entry.item.feed_url, entry.item.guid) not in self.seen
                    and not (entry.item.url and entry.item.url in self.urls)]
        self.deciding = [entry.item.published.timestamp() for entry in deciding]
        self.lookups = [(entry.fingerprint, entry.item.published.timestamp()) for entry in deciding
                        if entry.fingerprint and entry.fingerprint.band_keys]
        # the snapshot (``prefetch``): its span, the keys read, key -> its rows newest first
        # (keys with none left out), the keys with more rows than were read, story -> shingles
        self.span: tuple[float, float] | None = None
        self.read_ahead: set[int] = set()
        self.snapshot: dict[int, list[tuple[float, int]]] = {}
        self.capped: set[int] = set()
        self.texts: dict[int, bytes] = {}
        self.flushed = False

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
            self.own_keys.setdefault(key, []).append((published, story_id))
        self.own[story_id] = fingerprint
        return story_id

    def prefetch(self, window: float) -> None:
        """Before the poll's first decision: read the stored keys of every item layer 3 may look
        up (``window`` either side of each), at most ``PREFETCH_PER_KEY`` rows per key, newest
        first, in one statement per 500 keys; then the shingles of the stored stories those items
        could compare (the newest ``CANDIDATES_PER_KEY`` of each key in the item's window: this
        poll's stories only push stored ones out), in one statement per 500 stories. Nothing
        when the poll has written rows already: the snapshot would hold some of its stories."""
        if self.flushed or not self.lookups:
            return
        low = min(published for _f, published in self.lookups) - window
        high = max(published for _f, published in self.lookups) + window
        keys = sorted({key for fingerprint, _p in self.lookups for key in fingerprint.band_keys})
        rows: dict[int, list[tuple[float, int]]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            for key, published, story_id in self.conn.execute(
                    "SELECT key, published, story_id FROM (SELECT key, published, story_id, "
                    "ROW_NUMBER() OVER (PARTITION BY key ORDER BY published DESC, story_id DESC) "
                    f"AS n FROM story_keys WHERE key IN ({','.join('?' * len(chunk))}) "
                    "AND published BETWEEN ? AND ?) AS k WHERE n <= ?",
                    [*chunk, low, high, PREFETCH_PER_KEY]):
                rows.setdefault(key, []).append((published, story_id))
        self.snapshot = {key: sorted(found, reverse=True) for key, found in rows.items()}
        self.capped = {key for key, found in rows.items() if len(found) >= PREFETCH_PER_KEY}
        self.read_ahead = set(keys)
        self.span = (low, high)
        wanted: set[int] = set()
        for fingerprint, published in self.lookups:
            low, high = published - window, published + window
            title_key = fingerprint.title_key
            if title_key is not None and self._stored(title_key, low, high, 1):
                continue  # joins by its headline: no text compared
            for key in set(fingerprint.band_keys) - {title_key}:
                wanted.update(story_id for _p, story_id
                              in self._stored(key, low, high, CANDIDATES_PER_KEY) or ())
        self.texts = self._shingles(sorted(wanted))

    def _stored(self, key: int, low: float, high: float,
                limit: int) -> list[tuple[float, int]] | None:
        """The newest ``limit`` stored rows of ``key`` in ``[low, high]`` (within the snapshot's
        span), from the snapshot; None when it cannot tell: the key was not read ahead, or it
        had more rows than were read, fewer of them are in the window, and older ones may be."""
        rows = self.snapshot.get(key)
        if rows is None:
            return [] if key in self.read_ahead else None
        inside = [row for row in rows if low <= row[0] <= high]
        if len(inside) >= limit or key not in self.capped or low > rows[-1][0]:
            return inside[:limit]
        return None

    def _shingles(self, story_ids: Sequence[int]) -> dict[int, bytes]:
        texts: dict[int, bytes] = {}
        for start in range(0, len(story_ids), 500):
            chunk = story_ids[start:start + 500]
            texts.update(self.conn.execute(
                f"SELECT id, shingles FROM stories WHERE id IN ({','.join('?' * len(chunk))})",
                chunk).fetchall())
        return texts

    def flush(self) -> None:
        conn = self.conn
        self.flushed = True
        # PostgreSQL: the inserts go out together, one round trip (SQLite writes in-process)
        with getattr(conn, "pipeline", nullcontext)():
            self._insert_pending()
        self.stories, self.keys, self.items, self.entries, self.matches = [], [], [], [], []
        self.pending_keys.clear()

    def _insert_pending(self) -> None:
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
            times = [published, *self.deciding] if self.loaded is None else [published]
            span = (min(times) - JOIN_WINDOW, max(times) + JOIN_BEFORE)
            if self.loaded is not None:
                span = (min(span[0], self.loaded[0]), max(span[1], self.loaded[1]))
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

    @staticmethod
    def _within(rows_by_key: dict[int, list[tuple[float, int]]], key: int, low: float,
                high: float) -> list[tuple[float, int]]:
        """The rows of ``key`` (this poll's stories: written or not) published in ``[low, high]``."""
        return [row for row in rows_by_key.get(key, ()) if low <= row[0] <= high]

    def _newest(self, keys: Sequence[int], low: float, high: float,
                limit: int) -> dict[int, list[tuple[float, int]]]:
        """Per key, its newest ``limit`` stories in ``[low, high]`` (newest first, then the
        newest story), stored or of this poll: the snapshot and this poll's stories, or, for the
        keys the snapshot cannot answer, the table (which holds the poll's written stories) and
        the poll's stories not written yet."""
        newest: dict[int, list[tuple[float, int]]] = {}
        asked = []
        covered = self.span is not None and self.span[0] <= low and high <= self.span[1]
        for key in keys:
            stored = self._stored(key, low, high, limit) if covered else None
            if stored is None:
                asked.append(key)
            elif key in self.own_keys and (own := self._within(self.own_keys, key, low, high)):
                newest[key] = sorted([*stored, *own], reverse=True)[:limit]
            else:
                newest[key] = stored
        if not asked:
            return newest
        per_key = ("SELECT * FROM (SELECT key, published, story_id FROM story_keys WHERE key = ? "
                   "AND published BETWEEN ? AND ? ORDER BY published DESC, story_id DESC LIMIT ?) AS k")
        rows = self.conn.execute(
            " UNION ALL ".join([per_key] * len(asked)),
            [value for key in asked for value in (key, low, high, limit)]).fetchall()
        for key in asked:
            newest[key] = []
        for key, row_published, story_id in rows:
            newest[key].append((row_published, story_id))
        for key in asked:
            # most keys of an item are held by no pending story: no call for those
            if key in self.pending_keys and (
                    pending := self._within(self.pending_keys, key, low, high)):
                newest[key] = sorted([*newest[key], *pending], reverse=True)[:limit]
        return newest

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
            found = self._newest([title_key], low, high, 1)[title_key]
            if found:
                return found[0][1]
        keys = [k for k in set(fingerprint.band_keys) if k != title_key]
        if not keys:
            return None
        newest = self._newest(keys, low, high, CANDIDATES_PER_KEY)
        shared: dict[int, int] = {}
        for key in keys:  # in this order: ties of shared keys go to the story counted first
            for _published, story_id in newest[key]:
                shared[story_id] = shared.get(story_id, 0) + 1
        if not shared:
            return None
        candidates = sorted(shared, key=shared.__getitem__, reverse=True)[:MAX_CANDIDATES]
        wanted = [i for i in candidates if i not in self.own and i not in self.texts]
        texts = self._shingles(wanted) if wanted else {}
        best, best_similarity = None, 0.0
        for story_id in candidates:
            similarity = fingerprint.duplicates(
                self.own[story_id].shingles if story_id in self.own
                else unpack_shingles(self.texts[story_id] if story_id in self.texts
                                     else texts[story_id]))
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
