"""Several instances on one database: who is alive, and who holds which feed and channel.

In: an instance's id, the clock, lease lengths. Out: the feeds it may poll now (``Lease``s
with fencing tokens), whether it may deliver a channel now, and the read model of ``monitor
instances``.

Each instance claims due feeds in batches (``claim_feeds``: one UPDATE of the rows a sub-SELECT
picks; on PostgreSQL ``FOR UPDATE SKIP LOCKED``, so that two instances claiming at once take
different feeds and never wait for each other) and keeps them while it polls by its heartbeat
(``heartbeat`` extends every lease it holds). A poll's results are stored only while the token
it claimed with is current (``check_lease`` in the poll's transaction, which also frees the
feed); an instance that dies holds its feeds until their leases pass, then any other instance
claims them. A channel is delivered by one instance at a time (``claim_channel``), so its
alerts keep their order and its backoff is one; an instance killed mid-delivery leaves the
alert pending, and the next holder delivers it again under the same ``webhook-id``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..errors import LeaseLost
from .base import Queries
from .values import Lease, iso

FORGET_AFTER = timedelta(days=1)  # an instance silent this long is dropped from the table


class Claims(Queries):
    """The instances side of ``Store`` (schema step 0010)."""

    SKIP_LOCKED = ""  # PostgreSQL: " FOR UPDATE SKIP LOCKED" (SQLite's one writer needs none)

    def register_instance(self, instance: str, *, host: str, pid: int, now: datetime) -> None:
        """The instance starts. Those silent for ``FORGET_AFTER`` (killed, or stopped) are
        forgotten: every start of every instance is a row, and no one else removes them."""
        def operation() -> None:
            self._exec("DELETE FROM instances WHERE heartbeat_at < ? AND id NOT IN ("
                       "SELECT lease_owner FROM feeds WHERE lease_owner IS NOT NULL UNION "
                       "SELECT lease_owner FROM channels WHERE lease_owner IS NOT NULL)",
                       [iso(now - FORGET_AFTER)])
            self._exec(
                "INSERT INTO instances (id, host, pid, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
                [instance, host, pid, iso(now), iso(now)])
        self._write(operation)

    def heartbeat(self, instance: str, *, now: datetime, until: datetime, alive_within: float) -> int:
        """The instance is alive: its feeds' leases not passed yet last until ``until``. Returns how many
        instances are alive (a heartbeat in the last ``alive_within`` seconds, this one included).
        Channel leases are not stretched here: their holder renews them before each delivery
        (``claim_channel``), for as long as one delivery may take, so that a dead holder keeps
        its channel no longer than that."""
        def operation() -> int:
            self._exec("UPDATE instances SET heartbeat_at = ?, stopped_at = NULL WHERE id = ?",
                       [iso(now), instance])
            self._exec("UPDATE feeds SET lease_until = ? WHERE lease_owner = ? AND lease_until >= ?",
                       [iso(until), instance, iso(now)])  # a lease that passed stays passed
            return int(self._exec(
                "SELECT COUNT(*) FROM instances WHERE stopped_at IS NULL AND heartbeat_at >= ?",
                [iso(now - timedelta(seconds=alive_within))]).fetchone()[0])
        return self._write(operation)

    def stop_instance(self, instance: str, *, now: datetime) -> None:
        """A clean stop: every lease of the instance is given up now, for the others to claim."""
        def operation() -> None:
            self._exec("UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
                       [instance])
            self._exec("UPDATE channels SET lease_owner = NULL, lease_until = NULL "
                       "WHERE lease_owner = ?", [instance])
            self._exec("UPDATE instances SET stopped_at = ?, heartbeat_at = ? WHERE id = ?",
                       [iso(now), iso(now), instance])
        self._write(operation)

    def claim_feeds(self, instance: str, *, now: datetime, until: datetime,
                    limit: int) -> list[Lease]:
        """Up to ``limit`` feeds due now (never paused, not held by a live lease), longest due
        first, leased to ``instance`` until ``until`` with a new fencing token each."""
        if limit <= 0:
            return []
        rows = self._write(lambda: self._exec(
            "UPDATE feeds SET lease_owner = ?, lease_until = ?, fence = fence + 1 WHERE url IN ("
            "SELECT url FROM feeds WHERE paused_at IS NULL AND (next_poll_at IS NULL OR "
            "next_poll_at <= ?) AND (lease_until IS NULL OR lease_until < ?) "
            f"ORDER BY next_poll_at NULLS FIRST LIMIT ?{self.SKIP_LOCKED}) RETURNING url, fence",
            [instance, iso(until), iso(now), iso(now), limit]).fetchall())
        return [Lease(url, fence, instance) for url, fence in rows]

    def release_feed(self, lease: Lease, *, next_poll_at: datetime) -> bool:
        """Give a claimed feed back unpolled (this instance does not poll it: not in its config),
        not due again before ``next_poll_at``. False when the lease had passed already."""
        return bool(self._write(lambda: self._exec(
            "UPDATE feeds SET lease_owner = NULL, lease_until = NULL, next_poll_at = ? "
            "WHERE url = ? AND fence = ?", [iso(next_poll_at), lease.feed_url, lease.fence]).rowcount))

    def holds_feed(self, lease: Lease, *, now: datetime) -> bool:
        """Whether ``lease`` is still the feed's and has not passed at ``now``: asked before a
        fetch, so that an instance whose lease passed meanwhile (its poll waited out an
        unreachable database) never fetches a feed that another instance may be fetching."""
        return bool(self._read(
            "SELECT 1 FROM feeds WHERE url = ? AND fence = ? AND lease_owner = ? AND lease_until >= ?",
            [lease.feed_url, lease.fence, lease.owner, iso(now)]))

    def check_lease(self, lease: Lease | None) -> None:
        """Inside a poll's write: the lease's token is still the feed's (else ``LeaseLost``, and
        the transaction is undone); the feed is freed with the commit."""
        if lease is None:
            return
        if not self._exec("UPDATE feeds SET lease_owner = NULL, lease_until = NULL "
                          "WHERE url = ? AND fence = ?", [lease.feed_url, lease.fence]).rowcount:
            raise LeaseLost(f"{lease.feed_url}: the lease (token {lease.fence}) passed to another "
                            "instance before this poll's results were stored; they were dropped")

    def claim_channel(self, channel: str, instance: str, *, now: datetime, until: datetime) -> bool:
        """Whether ``instance`` delivers ``channel`` now: it holds the channel's lease already,
        or the lease is free or has passed (then it is taken until ``until``)."""
        return bool(self._write(lambda: self._exec(
            "UPDATE channels SET lease_owner = ?, lease_until = ? WHERE name = ? AND "
            "(lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
            [instance, iso(until), channel, instance, iso(now)]).rowcount))

    def instances(self, *, now: datetime, alive_within: float) -> list[dict[str, Any]]:
        """Every instance not stopped whose last heartbeat is at most ``alive_within`` seconds old
        (host, pid, started, last heartbeat), with the feeds and channels it holds now."""
        alive = self._read(
            "SELECT id, host, pid, started_at, heartbeat_at FROM instances WHERE stopped_at IS NULL "
            "AND heartbeat_at >= ? ORDER BY started_at, id", [iso(now - timedelta(seconds=alive_within))])
        held: dict[str, list[str]] = {}
        for row in self._read("SELECT lease_owner, url FROM feeds WHERE lease_until >= ? "
                              "ORDER BY url", [iso(now)]):
            held.setdefault(row["lease_owner"], []).append(row["url"])
        channels: dict[str, list[str]] = {}
        for row in self._read("SELECT lease_owner, name FROM channels WHERE lease_until >= ? "
                              "ORDER BY name", [iso(now)]):
            channels.setdefault(row["lease_owner"], []).append(row["name"])
        return [{**row, "feeds": held.get(row["id"], []), "channels": channels.get(row["id"], [])}
                for row in alive]
