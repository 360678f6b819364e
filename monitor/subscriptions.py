"""The feeds the monitor polls: the config's, those added on the command line, which are paused;
a web page's feed found through its ``<link rel="alternate">``; OPML 2.0 in and out.

How the two sources combine:

* the config lists feeds and stays the source for them: their name, URL and interval come from
  it at every start; ``monitor feeds remove`` refuses them (edit the config instead);
* feeds added with ``monitor feeds add`` or ``feeds import`` are kept in the database and polled
  on top of the config's, by the daemon and by ``run --once``; a URL that the config lists too
  is the config's feed (its name and interval win);
* any feed, of either kind, may be paused (``monitor feeds pause``): it is not polled until
  resumed, and keeps its state and items.

In: a ``MonitorConfig`` and the store's rows (``Store.added_feeds``, ``Store.paused_feeds``).
Out: ``FeedEntry`` values. Discovery fetches through ``monitor.fetch.Fetcher``; OPML is read and
written with the standard library's ``xml.etree.ElementTree``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from .config import FeedConfig, MonitorConfig
from .errors import MonitorError, ParseError

if TYPE_CHECKING:
    from .fetch import Fetcher
    from .store import Store

CONFIG = "config"
ADDED = "added"
FEED_TYPES = ("application/rss+xml", "application/atom+xml")
_HTML_SCAN = 1024 * 1024  # bytes of a page searched for its feed links


class OPMLError(MonitorError):
    """An OPML file that cannot be read (not XML, not OPML, an entity declaration)."""

    code = "opml.invalid"


@dataclass(frozen=True)
class FeedEntry:
    """One feed with where it comes from (``config`` or ``added``) and when it was paused."""

    feed: FeedConfig
    origin: str
    paused_at: str | None = None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


def combine(config: MonitorConfig, added: Iterable[Mapping[str, Any]],
            paused: Mapping[str, str]) -> list[FeedEntry]:
    """The config's feeds in config order, then the added ones (oldest first) whose URL the
    config does not list; each with its pause."""
    entries = [FeedEntry(feed, CONFIG, paused.get(feed.url)) for feed in config.feeds]
    listed = {feed.url for feed in config.feeds}
    for row in added:
        if row["url"] in listed:
            continue
        interval = row["interval"] if row["interval"] is not None else config.poll_interval
        entries.append(FeedEntry(FeedConfig(name=row["name"], url=row["url"], interval=interval),
                                 ADDED, paused.get(row["url"])))
    return entries


def all_feeds(config: MonitorConfig, store: Store) -> list[FeedEntry]:
    """Every feed, paused or not, with its origin."""
    return combine(config, store.added_feeds(), store.paused_feeds())


def polled_feeds(config: MonitorConfig, store: Store) -> tuple[FeedConfig, ...]:
    """The feeds to poll: the config's and the added ones, less the paused."""
    return tuple(entry.feed for entry in all_feeds(config, store) if not entry.paused)


def is_http_url(url: str) -> bool:
    """An absolute http:// or https:// URL with a host (what a feed's URL must be)."""
    scheme, _, rest = url.partition("://")
    return scheme.lower() in ("http", "https") and bool(rest.split("/", 1)[0])


def find(entries: Sequence[FeedEntry], key: str) -> FeedEntry | None:
    """The feed named ``key``, else the one whose URL is ``key``."""
    for entry in entries:
        if entry.feed.name == key:
            return entry
    for entry in entries:
        if entry.feed.url == key:
            return entry
    return None


# --------------------------------------------------------------------------- discovery

class _AlternateLinks(HTMLParser):
    """The ``<link rel="alternate" type="application/rss+xml|atom+xml" href>`` of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str | None]] = []  # (href, title)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "link":
            return
        found = {name.lower(): value or "" for name, value in attrs}
        rel = found.get("rel", "").lower().split()
        kind = found.get("type", "").split(";", 1)[0].strip().lower()
        if "alternate" in rel and kind in FEED_TYPES and found.get("href", "").strip():
            self.links.append((found["href"].strip(), found.get("title") or None))

    handle_startendtag = handle_starttag


def feed_links(page: bytes, base_url: str, content_type: str | None = None) -> list[str]:
    """The absolute URLs of the feeds a web page announces, in page order, each once."""
    charset = "utf-8"
    if content_type and "charset=" in content_type.lower():
        charset = content_type.lower().split("charset=", 1)[1].split(";", 1)[0].strip(" \"'")
    try:
        text = page[:_HTML_SCAN].decode(charset, "replace")
    except LookupError:  # an unknown charset
        text = page[:_HTML_SCAN].decode("utf-8", "replace")
    parser = _AlternateLinks()
    parser.feed(text)
    parser.close()
    urls: list[str] = []
    for href, _title in parser.links:
        url = urljoin(base_url, href)
        if url.split(":", 1)[0].lower() in ("http", "https") and url not in urls:
            urls.append(url)
    return urls


@dataclass(frozen=True)
class Discovered:
    url: str  # the feed's URL
    title: str | None  # the feed's own title
    page: str | None = None  # the web page it was found on, when the URL given was a page
    entries: int = 0


def discover(url: str, fetcher: Fetcher) -> Discovered:
    """The feed at ``url``, or the first feed the web page at ``url`` announces through
    ``<link rel="alternate">``. Raises ``FetchError`` / ``ParseError`` when there is none."""
    from .parse import parse_feed

    result = fetcher.fetch(url)
    try:
        parsed = parse_feed(result.body, url=result.url, content_type=result.content_type,
                            content_location=result.content_location)
        return Discovered(url, parsed.title, entries=len(parsed.entries))
    except ParseError as error:
        if "HTML page" not in str(error):
            raise
    links = feed_links(result.body, result.url, result.content_type)
    if not links:
        raise ParseError(f"not a feed: an HTML page that announces no feed (no <link "
                         f"rel=\"alternate\" type=\"{FEED_TYPES[0]}\"> or atom+xml)")
    feed = fetcher.fetch(links[0])
    parsed = parse_feed(feed.body, url=feed.url, content_type=feed.content_type,
                        content_location=feed.content_location)
    return Discovered(links[0], parsed.title, page=url, entries=len(parsed.entries))


# --------------------------------------------------------------------------- OPML 2.0

def read_opml(data: bytes, source: str) -> list[tuple[str, str]]:
    """``(name, xmlUrl)`` of every feed outline of an OPML document, categories included, in
    document order. Documents that declare entities are refused (expat would expand them)."""
    if b"<!entity" in data.lower():
        raise OPMLError(f"{source}: an entity declaration; refusing to expand it")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise OPMLError(f"{source}: not valid XML: {error}") from None
    if root.tag != "opml" or root.find("body") is None:
        raise OPMLError(f"{source}: not an OPML document (expected <opml><body>)")
    feeds: list[tuple[str, str]] = []
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or "").strip()
        if url:
            name = (outline.get("title") or outline.get("text") or url).strip() or url
            feeds.append((name, url))
    return feeds


def write_opml(entries: Iterable[FeedEntry], *, now: datetime,
               title: str = "ceasefire-monitor feeds") -> bytes:
    """An OPML 2.0 document (UTF-8, with its XML declaration) of the feeds."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(now)
    body = ET.SubElement(root, "body")
    for entry in entries:
        ET.SubElement(body, "outline", type="rss", text=entry.feed.name, title=entry.feed.name,
                      xmlUrl=entry.feed.url)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
