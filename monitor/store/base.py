"""What every part of ``Store`` runs its SQL through, and what each backend provides for it.

In: SQL with ``?`` / ``:name`` placeholders. Out: rows. ``core.Store``, ``outbox.Outbox``,
``reads.ReadModels``, ``examples.Examples`` and ``claims.Claims`` are written on these; ``sqlite.py`` and
``postgres.py`` implement them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .batch import Cursor, Tx

T = TypeVar("T")


class Queries:
    """Transactions and statements, as the store's shared code sees them."""

    def _write(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` in one write transaction; ``_exec`` and ``_tx`` reach it."""
        raise NotImplementedError

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts: inside the open write if there is one, else on a connection to read."""
        raise NotImplementedError

    def _tx(self) -> Tx:
        """The open write transaction (inside ``_write`` only)."""
        raise NotImplementedError

    def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        return self._tx().execute(sql, params)  # type: ignore[no-any-return]

    def _exec_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self._tx().executemany(sql, rows)
