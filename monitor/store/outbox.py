"""The outbox's life: which alerts of a channel are due, and what became of each delivery
(sent, to retry with the channel backing off, failed with its reason, requeued); a channel
disabled and enabled again; the alerts a channel's policy holds, and the digest that covers them.

In: a channel's name, alert ids, delivery outcomes, the clock. Out: ``Alert`` rows due or held,
counts. Rows are written by ``core.Store`` when a poll records a match (``_insert_alert``); this
part only moves them along. Alerts of one channel go out in order of creation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..models import Alert
from ..payload import DIGEST
from .base import Queries
from .values import alert as alert_row
from .values import iso, parse_time


class Outbox(Queries):
    """The outbox side of ``Store``."""

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
        return [alert_row(row) for row in rows]

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

    # -- held alerts (issue 18) and the digests that cover them

    def held_alerts(self, channel: str, *, due_by: datetime | None) -> list[Alert]:
        """The channel's held alerts, oldest first: those due by ``due_by``; None: all of them."""
        if due_by is None:
            rows = self._read("SELECT * FROM alerts WHERE channel = ? AND status = 'held' ORDER BY id",
                              [channel])
        else:
            rows = self._read("SELECT * FROM alerts WHERE channel = ? AND status = 'held' AND "
                              "held_until <= ? ORDER BY id", [channel, iso(due_by)])
        return [alert_row(row) for row in rows]

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
                "INSERT INTO alerts (uid, channel, kind, dedup_key, payload, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                (f"msg_{uuid.uuid4().hex}", channel, DIGEST, f"{DIGEST}:{ids[0]}:{ids[-1]}:{len(ids)}",
                 json.dumps(body, ensure_ascii=False), iso(now)))
            row = cursor.fetchone()
            if row is None:  # the same rows digested already
                raise _DigestRaced
            digest_id = int(row[0])
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
        return {r["channel"]: {"held": r["held"], "due": parse_time(r["due"])} for r in self._read(
            "SELECT channel, COUNT(*) AS held, MIN(held_until) AS due FROM alerts "
            "WHERE status = 'held' GROUP BY channel")}



class _DigestRaced(Exception):
    """A digest's held rows were digested by another process meanwhile (``write_digest``)."""
