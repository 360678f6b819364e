"""Fixtures shared by the test modules: a PostgreSQL database for the store's second backend.

The PostgreSQL tests need a server: ``$MONITOR_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``, where CI runs one). A run creates a
database of its own (a random name) on first use and drops it at the end; each test gets a
schema of its own in it, so tests never see each other's rows. Where no server answers, the
PostgreSQL tests skip, saying why; with ``MONITOR_TEST_POSTGRES_REQUIRED=1`` (``.ci/run``) they
fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

SERVER = os.environ.get("MONITOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRED = os.environ.get("MONITOR_TEST_POSTGRES_REQUIRED") == "1"


def _server_url(database: str) -> str:
    return SERVER.rsplit("/", 1)[0] + "/" + database


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The URL of this run's own PostgreSQL database."""
    try:
        import psycopg

        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except Exception as error:  # psycopg missing or the server not there
        message = f"no PostgreSQL server at {SERVER} ({str(error).strip().splitlines()[0]})"
        if REQUIRED:
            pytest.fail(message + "; MONITOR_TEST_POSTGRES_REQUIRED=1 asks for one")
        pytest.skip(message + "; set MONITOR_TEST_POSTGRES to a server's URL to run these")
    name = f"monitor_test_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield _server_url(name)
    finally:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A URL whose connections see an empty schema of this test's own."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{pg_database}?options={quote(f'-csearch_path={schema}')}"
