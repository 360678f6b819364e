"""The store: every SQL query of the monitor lives in this package, behind domain operations.

In: feed states, normalised items with their matches and fingerprints, delivery outcomes.
Out: what is new (items, matches, outbox rows), what is due, and read models for the CLI and
the web desk.

Two backends behind one interface (``core.Store``):

- ``sqlite.py``: one file, one process writing at a time; the embedded default.
- ``postgres.py``: one database shared by several ``monitor run`` instances, which claim feeds
  and outbox rows with leases (``claims.py``).

``open_store(location)`` chooses: a ``postgresql://`` URL is PostgreSQL, anything else a path.
The modules: ``values`` (what goes in and out), ``core`` (the operations, written once),
``batch`` (one poll's rows and story candidates), ``reads`` and ``examples`` (read models, the
desk's examples), ``schema`` / ``pg_schema`` (one history of named steps, per engine).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..config import is_database_url
from .core import Store
from .schema import SCHEMA_VERSION
from .sqlite import SQLiteGuidReader, SQLiteStore
from .values import AlertPolicy, KnownEntries, Lease, NewEntry, PollOutcome, iso

if TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = [
    "SCHEMA_VERSION",
    "AlertPolicy",
    "GuidReader",
    "KnownEntries",
    "Lease",
    "NewEntry",
    "PollOutcome",
    "PostgresStore",
    "SQLiteStore",
    "Store",
    "describe",
    "is_postgres",
    "iso",
    "may_exist",
    "open_store",
]


def is_postgres(location: str | Path) -> bool:
    """A PostgreSQL URL, not an SQLite file's path."""
    return isinstance(location, str) and is_database_url(location)


def describe(location: str | Path) -> str:
    """The location as logs and messages may show it: a URL's password as ``***``."""
    if not is_postgres(location):
        return str(location)
    parts = urlsplit(str(location))
    if parts.password is None:
        return str(location)
    netloc = f"{parts.username}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def may_exist(location: str | Path) -> bool:
    """False when there is certainly no database there yet (an SQLite path with no file); a
    server's database is asked for by opening it (``open_store(create=False)``)."""
    return is_postgres(location) or Path(location).exists()


def open_store(location: str | Path, *, create: bool = True, **options: Any) -> Store:
    """The store at ``location``: a PostgreSQL URL (``postgresql://user@host:5432/db``), else
    an SQLite file path. ``create=False``: a missing database is a ``StoreError`` rather than
    created (the commands that only look)."""
    if is_postgres(location):
        from .postgres import PostgresStore

        return PostgresStore(str(location), create=create, **options)
    return SQLiteStore(location, create=create, **options)


def GuidReader(location: str | Path) -> KnownEntries:
    """A read-only look-up of stored entries and URLs for a parse worker process, opened on
    first use in the worker."""
    if is_postgres(location):
        from .postgres import PostgresGuidReader

        return PostgresGuidReader(str(location))
    return SQLiteGuidReader(location)


def __getattr__(name: str) -> Any:
    if name == "migrations":  # the SQLite schema steps as a sqlite-utils Migrations set
        from .schema import migration_set

        return migration_set()
    if name == "PostgresStore":
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(name)
