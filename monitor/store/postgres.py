"""The PostgreSQL backend: one database shared by several ``monitor run`` instances.

In: a ``postgresql://`` URL. Out: the ``Store`` over it.

psycopg 3 with its connection pool. Each write is one transaction on a pooled connection;
reads run on whichever connection is free, or inside the caller's write. What SQLite gets
from its single writer is made explicit here:

- **One poll decides stories at a time.** A ``record_poll`` with a matched item takes a
  transaction-level advisory lock first, so that its story decisions see every poll committed
  before it, as with SQLite's write lock. Polls without one (no story to decide: most polls)
  take no lock and record in parallel; items and stories are numbered by sequences. Fetching,
  parsing and matching, the slow part of a poll, run outside it, in parallel on every instance.
- **Story profiles cached between polls stay right.** Each poll takes the next number of a
  sequence under that lock; a gap means another instance recorded a poll meanwhile, and the
  cache is dropped (``_before_poll``).
- **A lost connection is waited out.** A write or read that fails because the server went
  away (restart, network) is retried, with a line in the log, for up to ``lock_wait``
  seconds; then it is a ``StoreError`` for the caller (a poll is recorded as failed on its
  feed and retried at the next turn; nothing half-written stays: the transaction rolled back).

The password of the URL never reaches a log line or an error message (``location``).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import StoreError
from . import describe
from .batch import Tx, stored_urls
from .batch import known_guids as stored_guids
from .core import Store
from .pg_schema import SCHEMA_LOCK, STEPS, STEPS_TABLE
from .reads import match_filters
from .schema import MIGRATION_SET
from .values import NewEntry

log = logging.getLogger(__name__)
T = TypeVar("T")

LOCK_WAIT_SECONDS = 60.0  # how long an operation waits for an unreachable server in all
POLL_LOCK = 0x706F_6C6C  # pg_advisory_xact_lock key of record_poll: one poll decides at a time
POOL_SIZE = 16  # connections per instance: its poll and delivery threads share them
# how long an operation waits for a pooled connection before it says the server is unreachable
# (and tries again, within LOCK_WAIT_SECONDS): psycopg_pool's default, 30 s, kept an outage
# unsaid for half a minute
POOL_WAIT_SECONDS = 10.0
_WORD = re.compile(r"\w+")
# psycopg's errors that mean "the server or the connection went away": worth waiting out
_GONE = (psycopg.OperationalError, PoolTimeout)
# and those where PostgreSQL asks the transaction to be run again
_RETRY = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)


@functools.lru_cache(maxsize=1024)
def to_psycopg(sql: str) -> str:
    """The shared SQL's placeholders (``?``, ``:name``) as psycopg's (``%s``, ``%(name)s``), and
    a literal ``%`` doubled; text in quotes is left as it is (but for ``%``)."""
    out = []
    for index, part in enumerate(re.split(r"('(?:[^']|'')*')", sql)):
        part = part.replace("%", "%%")
        if index % 2 == 0:  # outside quotes
            part = part.replace("?", "%s")
            part = re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", r"%(\1)s", part)
        out.append(part)
    return "".join(out)


class PgTx:
    """A psycopg connection as the shared code's ``Tx``: the shared SQL, rows as tuples."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> psycopg.Cursor[Any]:
        return self.conn.execute(to_psycopg(sql), params or None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            with self.conn.cursor() as cursor:
                cursor.executemany(to_psycopg(sql), rows)

    def pipeline(self) -> AbstractContextManager[Any]:
        """Statements sent without waiting for each answer, one round trip at the end (the
        poll's inserts: ``PollBatch.flush``); an error is raised there."""
        return self.conn.pipeline()


class PostgresStore(Store):
    """A PostgreSQL database, shared by any number of processes. Thread-safe: a connection
    per operation from the pool; a write's connection is the calling thread's until it ends."""

    LIST_AGG = "string_agg"
    LIKE = "ILIKE"  # LIKE is case-sensitive here
    SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    shared = True

    def __init__(self, url: str, *, create: bool = True, lock_wait: float = LOCK_WAIT_SECONDS,
                 pool_size: int = POOL_SIZE, connect_wait: float = 0.0) -> None:
        """``connect_wait``: how long to wait for a server that does not answer yet (the
        daemon, started while PostgreSQL restarts); 0: one try of a few seconds."""
        super().__init__()
        self.connect_to = url
        self.location = describe(url)
        self.lock_wait = lock_wait
        self._local = threading.local()  # .tx: this thread's open write; .deciding: it decides
        self._deciding = threading.Lock()  # held by the poll deciding stories in this process
        self._poll_number: int | None = None  # this instance's last number of poll_sequence
        deadline = time.monotonic() + connect_wait
        while (failure := _connect_failure(url)) is not None:
            reason = first_line(failure)
            left = deadline - time.monotonic()
            if left <= 0 or not _worth_waiting(failure):
                raise StoreError(f"{self.location}: cannot connect to PostgreSQL: {reason}")
            log.warning("PostgreSQL unreachable at start (%s); waiting for it (%.0f s more)",
                        reason, left, extra={"db": self.location})
            time.sleep(min(2.0, left))
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=False,
                                    kwargs={"autocommit": True}, name="monitor",
                                    check=ConnectionPool.check_connection,
                                    timeout=POOL_WAIT_SECONDS)
        try:
            self._pool.open(wait=True, timeout=min(10.0, lock_wait))
        except PoolTimeout:
            self._pool.close()
            raise StoreError(f"{self.location}: cannot connect to PostgreSQL: "
                             f"{_unreachable(url) or 'the pool could not open a connection in time'}"
                             ) from None
        try:
            self._migrate(create)
        except BaseException:
            self._pool.close()
            raise

    def close(self) -> None:
        self._pool.close()

    # -- schema

    def _migrate(self, create: bool) -> None:
        with self._pool.connection() as conn:
            tables = {row[0] for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
            if STEPS_TABLE not in tables:
                if tables:
                    raise StoreError(
                        f"{self.location}: this PostgreSQL database was not created by "
                        f"ceasefire-monitor (it has tables {', '.join(sorted(tables)[:5])}); "
                        "refusing to touch it. Choose another database.")
                if not create:
                    raise StoreError(f"{self.location}: no monitor database here yet "
                                     "('monitor run' creates it)")
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK])
                conn.execute(f"CREATE TABLE IF NOT EXISTS {STEPS_TABLE} (migration_set TEXT NOT NULL, "
                             "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
                             "PRIMARY KEY (migration_set, name))")
                applied = self._applied(conn)
                unknown = applied - set(STEPS)
                if unknown:
                    raise StoreError(
                        f"{self.location}: written by a newer ceasefire-monitor (schema steps "
                        f"{', '.join(sorted(unknown))}); upgrade the monitor.")
                for name, statements in STEPS.items():
                    if name in applied:
                        continue
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute(f"INSERT INTO {STEPS_TABLE} (migration_set, name) VALUES (%s, %s)",
                                 [MIGRATION_SET, name])

    @staticmethod
    def _applied(conn: psycopg.Connection[Any]) -> set[str]:
        return {row[0] for row in conn.execute(
            f"SELECT name FROM {STEPS_TABLE} WHERE migration_set = %s", [MIGRATION_SET])}

    def schema_steps(self) -> list[str]:
        with self._pool.connection() as conn:
            applied = self._applied(conn)
        return [name for name in STEPS if name in applied]

    def integrity_check(self) -> str:
        """PostgreSQL checks its pages itself; here: the server answers and the schema is whole."""
        steps = self.schema_steps()
        return "ok" if steps == list(STEPS) else f"schema steps missing: {set(STEPS) - set(steps)}"

    # -- transactions

    def _retrying(self, operation: Callable[[], T]) -> T:
        """Run ``operation``, again while the server is unreachable or asks for a retry."""
        started = time.monotonic()
        deadline = started + self.lock_wait
        delay = 0.2
        gone = False
        while True:
            try:
                result = operation()
                if gone:
                    log.warning("PostgreSQL reachable again (an operation waited %.0f s)",
                                time.monotonic() - started, extra={"db": self.location})
                return result
            except _RETRY:
                continue
            except _GONE as error:
                if time.monotonic() > deadline:
                    raise StoreError(f"{self.location}: PostgreSQL unreachable for "
                                     f"{self.lock_wait:.0f} s ({first_line(error)})") from None
                log.warning("PostgreSQL unreachable (%s); retrying in %.1f s", first_line(error), delay,
                            extra={"db": self.location})
                gone = True
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _write(self, operation: Callable[[], T]) -> T:
        if getattr(self._local, "tx", None) is not None:  # a write inside a write: the same one
            return operation()

        def attempt() -> T:
            with self._pool.connection() as conn:
                try:
                    with conn.transaction():
                        self._local.tx = PgTx(conn)
                        self._local.outbox = False
                        return operation()
                except BaseException:
                    if getattr(self._local, "deciding", False):
                        self._profiles.clear()  # it may hold what this transaction wrote
                    raise
                finally:
                    self._local.tx = None
                    if getattr(self._local, "deciding", False):
                        self._local.deciding = False
                        self._deciding.release()

        return self._retrying(attempt)

    def _tx(self) -> Tx:
        tx = getattr(self._local, "tx", None)
        if tx is None:
            raise RuntimeError("no write transaction open on this thread")
        return tx  # type: ignore[no-any-return]

    def _reading(self, operation: Callable[[Tx], T]) -> T:
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            return operation(tx)

        def attempt() -> T:
            with self._pool.connection() as conn:
                return operation(PgTx(conn))

        return self._retrying(attempt)

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        def run(tx: Tx) -> list[dict[str, Any]]:
            assert isinstance(tx, PgTx)
            with tx.conn.cursor(row_factory=dict_row) as cursor:
                cursor.execute(to_psycopg(sql), params or None)
                return cursor.fetchall()

        return self._reading(run)

    def _before_poll(self, entries: Sequence[NewEntry]) -> None:
        """The poll lock, for a poll with a matched item only: the others decide no story
        (an unmatched item is a story of its own), so they record in parallel."""
        if not any(entry.matches for entry in entries):
            return
        # This process's threads decide one at a time too: they share the profile cache
        # (``_profiles``), which only a deciding poll reads and writes, until its transaction
        # ends (``_write``).
        self._deciding.acquire()
        self._local.deciding = True
        tx = self._tx()
        tx.execute("SELECT pg_advisory_xact_lock(?)", [POLL_LOCK])
        number = tx.execute("SELECT nextval('poll_sequence')").fetchone()[0]
        if self._poll_number is None or number != self._poll_number + 1:
            self._profiles.clear()  # another instance recorded a poll since this one's last
        self._poll_number = number

    def _outbox_written(self) -> None:
        self._local.outbox = True

    def _poll_recorded(self) -> None:
        """A poll's write with no outbox row commits without waiting for the WAL to reach the
        disk (``synchronous_commit = off`` for this transaction: see ``Store._poll_recorded``).
        A later commit that waits flushes the WAL up to it, so no durable row can point at a
        lost one. Measured: the warm cycle 1.89x SQLite's with every commit waiting, 1.06x
        without (bench/postgres.py)."""
        if not getattr(self._local, "outbox", False):
            self._tx().execute("SET LOCAL synchronous_commit = off")

    def _new_ids(self, count: int) -> tuple[Iterator[int], Iterator[int]]:
        rows = self._tx().execute(
            "SELECT nextval(pg_get_serial_sequence('items', 'id')), "
            "nextval(pg_get_serial_sequence('stories', 'id')) FROM generate_series(1, ?)",
            [count]).fetchall() if count else []
        return iter([row[0] for row in rows]), iter([row[1] for row in rows])

    def _seconds_between(self, later: str, earlier: str) -> str:
        return f"EXTRACT(EPOCH FROM ({later}::timestamptz - {earlier}::timestamptz))::float8"

    # -- search

    def has_fts(self) -> bool:
        return True  # schema step 0009: the items' tsvector

    def search_matches(self, text: str, *, storyline: str | None = None,
                       limit: int = 50) -> tuple[list[dict[str, Any]], str]:
        """As ``SQLiteStore.search_matches``, through the items' tsvector (``"tsvector"``)."""
        words = [word.lower() for word in _WORD.findall(text)]
        if not words:
            return [], "tsvector"
        clauses, params = match_filters(storyline, None, ())
        clauses.append("i.search @@ to_tsquery('simple', ?)")
        params.append(" & ".join(f"{word}:*" for word in words))
        return self._matches_where(clauses, params, limit), "tsvector"


class PostgresGuidReader:
    """``known_guids`` / ``known_urls`` for a parse worker process: a connection of its own,
    opened on first use, in the worker."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[Any] | None = None

    def _tx(self) -> PgTx:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True)
        return PgTx(self._conn)

    def known_guids(self, feed_url: str, guids: Sequence[str]) -> set[str]:
        return stored_guids(self._tx(), feed_url, guids)

    def known_urls(self, urls: Sequence[str]) -> set[str]:
        return set(stored_urls(self._tx(), urls))


def first_line(error: BaseException) -> str:
    """The first line of a psycopg error, which names host and port but never the password."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _connect_failure(url: str) -> psycopg.Error | None:
    """Why one connection to ``url`` fails now (None: it opens)."""
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as error:
        return error
    return None


def _worth_waiting(failure: psycopg.Error) -> bool:
    """No server answered, or it is starting or stopping: worth waiting for. A server that
    answered no (a wrong password, no such database) is not."""
    text = str(failure)
    return "FATAL" not in text or any(state in text for state in (
        "starting up", "shutting down", "in recovery", "not yet accepting"))


def _unreachable(url: str) -> str | None:
    failure = _connect_failure(url)
    return None if failure is None else first_line(failure)
