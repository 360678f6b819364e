"""``/stories.atom`` and ``/storylines/{id}.atom``: the stories as Atom (RFC 4287), one entry per
story, for a desk to follow a storyline in the feed reader it already uses. Built with
``xml.etree``: every text is escaped by the serialiser, never pasted into markup."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .desk import desk_of
from .render import http_url
from .storylines import EPOCH, storyline_of

ATOM = "http://www.w3.org/2005/Atom"
ENTRIES = 50
ID_PREFIX = "urn:ceasefire-monitor"  # ids that stay when the desk moves to another address
ET.register_namespace("", ATOM)


def _rfc3339(value: str | None) -> str:
    """A stored ISO time as RFC 3339 in UTC (``...Z``); the epoch when unknown."""
    try:
        moment = datetime.fromisoformat(value) if value else EPOCH
    except ValueError:
        moment = EPOCH
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def atom_feed(*, title: str, feed_id: str, self_url: str, page_url: str,
              stories: Sequence[dict[str, Any]], base: str) -> bytes:
    """The Atom document of ``stories`` (``Store.stories`` rows, newest first)."""
    feed = ET.Element(f"{{{ATOM}}}feed")
    _add(feed, "title", title)
    _add(feed, "id", feed_id)
    _add(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    _add(feed, "link", rel="alternate", href=page_url, type="text/html")
    author = _add(feed, "author")
    _add(author, "name", "ceasefire-monitor")
    _add(feed, "generator", "ceasefire-monitor")
    updated = max((item["published"] for s in stories for item in s["items"]), default=None)
    _add(feed, "updated", _rfc3339(updated))
    for story in stories:
        entry = _add(feed, "entry")
        _add(entry, "title", story["headline"])
        _add(entry, "id", f"{ID_PREFIX}:story:{story['story_id']}")
        _add(entry, "link", rel="alternate", href=f"{base}/stories/{story['story_id']}", type="text/html")
        first_link = http_url(story["items"][0]["link"]) if story["items"] else None
        if first_link:
            _add(entry, "link", rel="related", href=first_link)
        _add(entry, "published", _rfc3339(story["first_seen"]))
        _add(entry, "updated", _rfc3339(max(i["published"] for i in story["items"])))
        for storyline in story["storylines"]:
            _add(entry, "category", term=storyline)
        lines = [f"{story['outlets']} outlet(s); storylines: {', '.join(story['storylines'])}."]
        lines += [f"{item['source']}: {item['title']}" for item in story["items"]]
        _add(entry, "summary", "\n".join(lines), type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _answer(body: bytes) -> Response:
    return Response(body, media_type="application/atom+xml; charset=utf-8")


def all_stories(request: Request) -> Response:
    desk, base = desk_of(request), _base(request)
    stories = desk.store.stories(since=EPOCH, limit=ENTRIES)
    return _answer(atom_feed(title="ceasefire-monitor: all stories", feed_id=f"{ID_PREFIX}:stories",
                             self_url=f"{base}/stories.atom", page_url=f"{base}/", stories=stories,
                             base=base))


def storyline_stories(request: Request) -> Response:
    desk, base = desk_of(request), _base(request)
    storyline = storyline_of(desk, request.path_params["storyline"])
    stories = desk.store.stories(since=EPOCH, storyline=storyline.id, limit=ENTRIES)
    return _answer(atom_feed(title=f"ceasefire-monitor: {storyline.name}",
                             feed_id=f"{ID_PREFIX}:storyline:{storyline.id}",
                             self_url=f"{base}/storylines/{storyline.id}.atom",
                             page_url=f"{base}/storylines/{storyline.id}", stories=stories, base=base))
