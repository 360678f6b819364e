"""``monitor migrate``: copy an SQLite database into an empty PostgreSQL database.

In: an open ``SQLiteStore`` (the source, at the newest schema step: opening it applied any step
pending) and an open ``PostgresStore`` (the target, its schema created by ``open_store``).
Out: a ``CopyReport``: the rows of each table on both sides, counted after the copy.

What is copied: the monitor's tables (``TABLES``, in an order that satisfies the foreign keys:
stories before the items that point at them, items before their entries and matches), each by
the columns both sides have, so that a schema step adding a column to both keeps it copied
with no change here. A column only PostgreSQL computes (the items' generated ``search``
tsvector) is left to it; SQLite's FTS5 index and its schema record are not copied (PostgreSQL
has its own). Ids are copied as they are, and the identity sequences (items, stories, alerts,
feedback) are set past the highest id copied, so that the next row does not collide.

How: one PostgreSQL transaction for the whole copy (a failure leaves the target as empty as it
was), one ``COPY … FROM STDIN`` per table, fed with rows read from SQLite ``BATCH_ROWS`` at a
time (memory stays flat whatever the size). The target must be empty (no row in any of the
tables): checked inside that transaction, under an advisory lock, so two copies cannot race.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ..errors import StoreError
from .postgres import PostgresStore, first_line
from .sqlite import SQLiteStore

# In the order the rows are written (the foreign keys: items -> stories; entries, matches -> items).
TABLES = ("feeds", "feeds_added", "channels", "stories", "story_keys", "items", "entries",
          "matches", "alerts", "feedback", "learned_models")
BATCH_ROWS = 5000  # rows read from SQLite at a time
COPY_LOCK = 0x6D69_6772_6174  # pg_advisory_xact_lock key: one copy into a database at a time


@dataclass(frozen=True)
class TableCount:
    table: str
    source: int  # rows in the SQLite database
    target: int  # rows in the PostgreSQL database after the copy
    seconds: float = 0.0  # how long its COPY took

    @property
    def equal(self) -> bool:
        return self.source == self.target


@dataclass
class CopyReport:
    source: str  # where from (a path)
    target: str  # where to (the URL, password hidden)
    tables: list[TableCount] = field(default_factory=list)
    sequences: dict[str, int] = field(default_factory=dict)  # table -> the next id it gives
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(count.equal for count in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "ok": self.ok,
                "seconds": round(self.seconds, 3), "next_ids": self.sequences,
                "tables": [{"table": c.table, "sqlite": c.source, "postgresql": c.target,
                            "equal": c.equal} for c in self.tables]}


def copy_database(source: SQLiteStore, target: PostgresStore, *,
                  batch: int = BATCH_ROWS,
                  progress: Callable[[str, int], None] | None = None) -> CopyReport:
    """Copy every row of ``source`` into ``target``, which must hold none (``StoreError`` if
    it does, naming what it holds). ``progress(table, rows)`` is called after each table."""
    started = time.perf_counter()
    report = CopyReport(source=source.location, target=target.location)
    conn_source = source.db.conn
    tables = [t for t in TABLES if _sqlite_columns(conn_source, t)]
    copied: dict[str, tuple[int, float]] = {}
    try:
        conn = psycopg.connect(target.connect_to, autocommit=True)
    except psycopg.Error as error:
        raise StoreError(f"{target.location}: cannot connect to PostgreSQL: {first_line(error)}") from None
    with conn:
        pg_tables = {t: _pg_columns(conn, t) for t in tables}
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [COPY_LOCK])
            held = {t: n for t in tables if pg_tables[t] and (n := _pg_count(conn, t))}
            if held:
                raise StoreError(
                    f"{target.location}: not an empty database (it holds "
                    f"{', '.join(f'{n:,} {t}' for t, n in held.items())}); 'monitor migrate' copies "
                    "into an empty one only. Create a new database (createdb) and name it with --to.")
            for table in tables:
                if not pg_tables[table]:
                    continue  # a table this PostgreSQL schema does not have (cannot happen today)
                columns = [c for c in _sqlite_columns(conn_source, table) if c in pg_tables[table]]
                table_started = time.perf_counter()
                try:
                    rows = _copy_table(conn_source, conn, table, columns, batch)
                except psycopg.Error as error:  # e.g. a text with a NUL byte, which PostgreSQL refuses
                    raise StoreError(f"{target.location}: copying {table} failed, nothing was "
                                     f"copied: {first_line(error)}") from None
                copied[table] = (rows, time.perf_counter() - table_started)
                if progress:
                    progress(table, rows)
            for table in tables:
                next_id = _reset_identity(conn, table)
                if next_id is not None:
                    report.sequences[table] = next_id
        for table in tables:  # counted afresh on both sides, after the commit
            report.tables.append(TableCount(
                table, _sqlite_count(conn_source, table),
                _pg_count(conn, table) if pg_tables[table] else 0,
                copied.get(table, (0, 0.0))[1]))
    report.seconds = time.perf_counter() - started
    return report


def _copy_table(source: sqlite3.Connection, conn: psycopg.Connection[Any], table: str,
                columns: list[str], batch: int) -> int:
    names = ", ".join(f'"{c}"' for c in columns)
    cursor = source.execute(f"SELECT {names} FROM {table}")
    rows = 0
    with conn.cursor() as pg, pg.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        while chunk := cursor.fetchmany(batch):
            for row in chunk:
                copy.write_row(row)
            rows += len(chunk)
    return rows


def _reset_identity(conn: psycopg.Connection[Any], table: str) -> int | None:
    """Set the identity sequence of ``table`` (if it has one) past its highest id; the next id."""
    row = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s AND is_identity = 'YES'", [table]).fetchone()
    if row is None:
        return None
    column = row[0]
    next_id = _one(conn, f'SELECT COALESCE(MAX("{column}"), 0) + 1 FROM {table}')
    conn.execute("SELECT setval(pg_get_serial_sequence(%s, %s), %s, false)",
                 [table, column, next_id])
    return int(next_id)


def _sqlite_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def _pg_columns(conn: psycopg.Connection[Any], table: str) -> set[str]:
    """The columns of ``table`` a row can be given (not the generated ones)."""
    return {row[0] for row in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s AND is_generated = 'NEVER'", [table])}


def _sqlite_count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _pg_count(conn: psycopg.Connection[Any], table: str) -> int:
    return _one(conn, f"SELECT COUNT(*) FROM {table}")


def _one(conn: psycopg.Connection[Any], sql: str) -> int:
    """The integer a one-row, one-column query gives."""
    row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])
