"""A changed feed body prepared for the store: parse → normalise → match → fingerprint.

In: a ``Job`` (a changed body and the feed it came from, plain values that cross to another
process) and what is stored already (``KnownEntries``). Out: ``Prepared``, the body's entry
count and the ``NewEntry``s for ``Store.record_poll``: each entry not stored yet, with the
storylines its item matched and, when it matched, its fingerprint and the development it
reports (an entry whose URL is stored already: none of these).

The CPU work of a poll: the orchestrator (``pipeline.Monitor``) runs it in the polling thread,
or, when it starts a process pool for many new feeds, in a worker process (``init_worker`` is
the pool's initializer, ``prepare_in_worker`` the function submitted: both at module top level,
as the pool pickles them by reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .dedup import fingerprint
from .models import Item, ParsedFeed
from .normalise import normalise_entry
from .store import GuidReader, KnownEntries, NewEntry
from .stories import event_of


@dataclass(frozen=True)
class Job:
    """A changed body to prepare: plain values, so that it crosses to a worker process."""

    body: bytes
    url: str
    content_type: str | None
    content_location: str | None
    feed_url: str
    source: str
    now: datetime


@dataclass(frozen=True)
class Prepared:
    """What ``prepare`` made of a body: its entry count, its entries not stored yet, and the
    parser's complaint when the feed was ill-formed."""

    entries: int
    new_entries: list[NewEntry]
    bozo: str | None


def prepare(job: Job, parsed: ParsedFeed, matcher: Any, stored: KnownEntries) -> Prepared:
    """Normalise the parsed entries; match those not stored yet, and fingerprint those that
    matched (the store compares no other item with the stories it holds).

    An entry whose canonical URL is already stored (the same article in another feed) becomes
    an entry of that item in the store (dedup layer 2) and is neither matched nor fingerprinted:
    ``NewEntry.url_known``. The store's own look-up, at write time, finds the URL too:
    items are never deleted. URLs stored by polls not committed yet are not seen here; those
    entries take the whole path and the store still finds them."""
    items = [normalise_entry(entry, feed_url=job.feed_url, source=job.source, first_seen=job.now)
             for entry in parsed.entries]
    known = stored.known_guids(job.feed_url, [item.guid for item in items])
    fresh: list[Item] = []
    seen: set[str] = set()
    for item in items:
        if item.guid in known or item.guid in seen:
            continue
        seen.add(item.guid)
        fresh.append(item)
    stored_urls = stored.known_urls([item.url for item in fresh if item.url])
    new_entries = []
    for item in fresh:
        if item.url in stored_urls:
            new_entries.append(NewEntry(item=item, fingerprint=None, matches=(), url_known=True))
            continue
        matches = tuple(matcher.match(item.title, item.summary))
        # only a matched item is compared with other stories (see NewEntry)
        new_entries.append(NewEntry(
            item=item, matches=matches,
            fingerprint=fingerprint(item.title, item.summary) if matches else None,
            event=event_of(item.title, item.summary) if matches else None))
    return Prepared(len(items), new_entries, parsed.bozo)


_worker: dict[str, Any] = {}


def init_worker(matcher: Any, db_path: str) -> None:
    _worker["matcher"] = matcher  # the monitor's own, whatever layers it has
    _worker["reader"] = GuidReader(db_path)


def parse_body(job: Job) -> ParsedFeed:
    from .parse import parse_feed  # imported on the first changed body: a cycle of 304s never needs it

    return parse_feed(job.body, url=job.url, content_type=job.content_type,
                      content_location=job.content_location)


def prepare_in_worker(job: Job) -> Prepared:
    return prepare(job, parse_body(job), _worker["matcher"], _worker["reader"])

