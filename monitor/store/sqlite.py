"""The SQLite backend: the embedded default, one file, zero set-up.

In: a file path. Out: the ``Store`` over it.

SQLite in WAL mode, with one connection guarded by a lock: a single writer per process. Writes
take the write lock up front (``BEGIN IMMEDIATE``) and wait for another process that holds it
(busy timeout, then retries); that lock is also what makes one poll at a time decide stories.
``grouped_writes`` lets a poll cycle share transactions. The schema steps are
``schema.py``'s, applied with ``sqlite_utils.migrations``. Search uses an FTS5 index.
"""

from __future__ import annotations

import itertools
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreError
from .batch import Tx, stored_urls
from .batch import known_guids as stored_guids
from .core import Store
from .reads import match_filters
from .schema import MIGRATIONS_TABLE, applied_steps, migration_set, step_names

log = logging.getLogger(__name__)
T = TypeVar("T")

LOCK_WAIT_SECONDS = 60.0  # how long a write waits for another process's write lock in all
SQLITE_HEADER = b"SQLite format 3\x00"
GROUP_COMMIT_SECONDS = 0.25  # SQLiteStore.grouped_writes: how long a shared transaction stays open
_FTS_WORD = re.compile(r"\w+")  # FTS5's unicode61 tokens: no quote or operator gets through


class SQLiteStore(Store):
    """One SQLite database file. Thread-safe: every operation runs under one lock."""

    LIST_AGG = "group_concat"
    LIKE = "LIKE"

    def __init__(self, path: str | Path, *, lock_wait: float = LOCK_WAIT_SECONDS,
                 create: bool = True) -> None:
        """Open the database at ``path``; a new one is created there unless ``create`` is false
        (then a missing file is a ``StoreError``: the commands that only look at a database)."""
        super().__init__()
        self.path = Path(path)
        self.location = self.connect_to = str(self.path)
        self.lock_wait = lock_wait
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
            applied = applied_steps(conn)
            pending = applied != set(step_names())
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
                self._retrying(lambda: migration_set().apply(self.db))
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: cannot use this database: {error}") from None

    def close(self) -> None:
        with self._lock:
            self._group = None
            self._end_group()
            self.db.conn.close()

    def _check_ours(self) -> None:
        tables = set(self.db.table_names())
        if not tables - {MIGRATIONS_TABLE}:
            return  # new, or a first start killed before the first schema step committed
        applied = applied_steps(self.db.conn)
        if not applied:
            raise StoreError(
                f"{self.path}: this SQLite database was not created by ceasefire-monitor "
                f"(it has tables {', '.join(sorted(tables)[:5])}); refusing to touch it. "
                "Use --db to choose another file."
            )
        known = set(step_names())
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

    def _tx(self) -> Tx:
        return self.db.conn  # type: ignore[no-any-return]

    def _reading(self, operation: Callable[[Tx], T]) -> T:
        with self._lock:
            return self._retrying(lambda: operation(self.db.conn))

    def _new_ids(self, count: int) -> tuple[Iterator[int], Iterator[int]]:
        """Max + 1 onwards, as SQLite would give them: the poll holds the write lock."""
        conn = self.db.conn
        return (itertools.count(conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM items").fetchone()[0]),
                itertools.count(conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM stories").fetchone()[0]))

    def _seconds_between(self, later: str, earlier: str) -> str:
        return f"(julianday({later}) - julianday({earlier})) * 86400.0"

    def schema_steps(self) -> list[str]:
        with self._lock:
            applied = applied_steps(self.db.conn)
            return [name for name in step_names() if name in applied]

    def integrity_check(self) -> str:
        return self._read("PRAGMA integrity_check")[0]["integrity_check"]

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
        clauses, params = match_filters(storyline, None, ())
        clauses.append("i.id IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)")
        params.append(" ".join(f'"{word}"*' for word in words))
        return self._matches_where(clauses, params, limit), "fts5"


class _Connection:
    """The store's connection where sqlite-utils is not needed (every schema step applied)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


class SQLiteGuidReader:
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
        return stored_guids(self._connection(), feed_url, guids)

    def known_urls(self, urls: Sequence[str]) -> set[str]:
        return set(stored_urls(self._connection(), urls))


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

