"""The values that flow between the pipeline's stages.

fetch → ``FetchResult`` → parse → ``RawEntry`` → normalise → ``Item`` → match →
``Match`` → dedup/store → ``Alert`` (outbox row) → alert channels.
All are plain frozen dataclasses: no I/O, no behaviour beyond small derived values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class FeedState:
    """What the monitor remembers about one feed between polls (owned by the store)."""

    url: str
    name: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None  # sha1 of the last parsed body: many sites ignore ETag
    last_fetch_at: datetime | None = None
    last_success_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    last_error_code: str | None = None
    consecutive_errors: int = 0
    next_poll_at: datetime | None = None
    items_seen: int = 0
    first_poll_done: bool = False
    down_alerted: bool = False
    lease_owner: str | None = None  # the instance polling it now (until lease_until), if any
    lease_until: datetime | None = None

    def holder(self, now: datetime) -> str | None:
        """The instance that holds the feed's lease at ``now``, if any."""
        if self.lease_owner and self.lease_until and self.lease_until >= now:
            return self.lease_owner
        return None


@dataclass(frozen=True)
class FetchResult:
    """A successful HTTP exchange: 200 with a body, or 304 without one."""

    url: str  # the final URL after redirects
    status: int
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    content_location: str | None = None
    elapsed: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class RawEntry:
    """One feed entry as the parser found it: strings may hold HTML and entities."""

    guid: str | None
    title: str
    link: str | None
    summary: str  # HTML allowed
    published: str | None  # ISO 8601 in UTC when the parser understood the date, else None


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    entries: tuple[RawEntry, ...]
    bozo: str | None = None  # the parser's complaint about an ill-formed feed that still had entries


@dataclass(frozen=True)
class Item:
    """A normalised news item: plain text, canonical URL, UTC time."""

    feed_url: str
    source: str  # the feed's display name
    guid: str  # entry id, else the canonical link, else a hash of the title
    url: str | None  # canonical: no tracking parameters, no fragment; only http(s)
    title: str  # plain text
    summary: str  # plain text
    published: datetime  # UTC; the first-seen time when the feed gave none
    published_known: bool = True


@dataclass(frozen=True)
class TermHit:
    """One term of a storyline found in the text."""

    term: str
    found: str  # the words of the text that matched
    score: float  # 0-100
    field: str = "title"  # "title" or "summary"
    position: int = 0  # word index in the field


@dataclass(frozen=True)
class Match:
    """An item belongs to a storyline. ``hits`` explain why.

    ``score`` is 0-100: when the rules decide, how well the storyline's terms were found (the
    mean over its groups of the best hit's fuzzy score); when a model decides, its probability
    × 100. ``decided_by`` says which; ``evidence`` are the words that weighed most in a model's
    decision (the rules' are their hits)."""

    storyline_id: str
    score: float
    hits: tuple[TermHit, ...] = ()
    decided_by: str = "rules"  # "rules" | "model" | "refines <storyline>"
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class Alert:
    """An outbox row: one (channel, storyline, story) to deliver, or a feed health notice."""

    id: int
    uid: str  # stable across retries: the webhook-id
    channel: str
    kind: str  # payload.MATCH | STORY_UPDATED | FEED_DOWN | FEED_RECOVERED | DIGEST
    storyline_id: str | None
    story_id: int | None
    created_at: datetime
    attempts: int = 0
    status: str = "pending"  # pending | sent | failed | held (for a digest) | digested
    last_error: str | None = None
    payload: dict = field(default_factory=dict)  # the body delivered (see payload.py)
    queued_at: datetime | None = None  # requeued by hand: the give-up age counts from here
