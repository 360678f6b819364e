"""The store's values in and out: what the pipeline hands the store to record, what decides the
alerts of a poll, and the rows the store gives back as the monitor's own types.

Pure: no I/O. Both backends (``sqlite.py``, ``postgres.py``) take and give these.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ..config import ChannelConfig
from ..dedup import Fingerprint
from ..models import Alert, FeedState, Item, Match
from ..stories import Event


@dataclass(frozen=True)
class NewEntry:
    """An entry of this poll that the store has not seen (by feed + guid), ready to record.

    ``url_known``: the pipeline found its canonical URL stored already; it becomes an entry of
    that item, neither matched nor fingerprinted. ``fingerprint`` is needed only when
    ``matches`` is not empty: an item that matched no storyline is a story of its own, never
    compared with others (layer 3 exists so that one story alerts once per storyline, and only
    matched items alert). 88 % of the news stream's items match no storyline: skipping them is
    most of the dedup work saved."""

    item: Item
    fingerprint: Fingerprint | None
    matches: tuple[Match, ...]
    url_known: bool = False
    event: Event | None = None  # what a matched item reports (``stories.event_of``)


class KnownEntries(Protocol):
    """What the pipeline asks before matching: which entries and URLs are stored already
    (``Store`` in the monitor's process, ``GuidReader`` in a parse worker)."""

    def known_guids(self, feed_url: str, guids: Sequence[str]) -> set[str]: ...

    def known_urls(self, urls: Sequence[str]) -> set[str]: ...


@dataclass(frozen=True)
class AlertPolicy:
    """What decides whether a new match becomes outbox rows."""

    channels: tuple[ChannelConfig, ...]
    storyline_names: dict[str, str]
    alert_after: datetime  # items published before this are stored and matched, never alerted
    alert_undated: bool = True  # False on a feed's first poll: undated items would all look new
    dedup_window: float = 72 * 3600.0
    event_stories: bool = True  # False: only syndicated copies join a story (bench/stories.py)


@dataclass(frozen=True)
class Lease:
    """A feed claimed by an instance: polled by it alone until the lease passes, and its poll's
    results stored only while ``fence`` is the feed's current token."""

    feed_url: str
    fence: int
    owner: str


@dataclass(frozen=True)
class PollOutcome:
    new_items: int = 0
    known_url: int = 0  # same canonical URL already stored (another feed or a new guid)
    syndicated: int = 0  # attached to an existing story from another item
    updates: int = 0  # story.updated alerts written
    new_matches: int = 0
    new_alerts: int = 0


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def feed_state(row: dict[str, Any]) -> FeedState:
    return FeedState(
        url=row["url"], name=row["name"], etag=row["etag"], last_modified=row["last_modified"],
        body_hash=row["body_hash"], last_fetch_at=parse_time(row["last_fetch_at"]),
        last_success_at=parse_time(row["last_success_at"]), last_status=row["last_status"],
        last_error=row["last_error"], last_error_code=row["last_error_code"],
        consecutive_errors=row["consecutive_errors"], next_poll_at=parse_time(row["next_poll_at"]),
        items_seen=row["items_seen"], first_poll_done=bool(row["first_poll_done"]),
        down_alerted=bool(row["down_alerted"]), lease_owner=row.get("lease_owner"),
        lease_until=parse_time(row.get("lease_until")),
    )


def alert(row: dict[str, Any]) -> Alert:
    return Alert(
        id=row["id"], uid=row["uid"], channel=row["channel"], kind=row["kind"],
        storyline_id=row["storyline_id"], story_id=row["story_id"],
        created_at=datetime.fromisoformat(row["created_at"]), attempts=row["attempts"],
        queued_at=parse_time(row.get("queued_at")),
        status=row["status"], last_error=row["last_error"], payload=json.loads(row["payload"]),
    )
