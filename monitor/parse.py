"""Parse: the bytes of one fetched feed in, a ``ParsedFeed`` of ``RawEntry`` out.

RSS 0.9x/1.0/2.0 and Atom via feedparser; plain well-formed UTF-8 RSS 2.0 and Atom take a
fast path (``fastparse``, the C ElementTree parser) that gives the same values. Strings are
returned as the feed had them (HTML and entities allowed); ``normalise`` turns them into
plain text. feedparser's HTML sanitiser and relative-URI rewriting of HTML content are switched off: they cost
time and we throw the markup away. Links with a scheme other than http/https
(``javascript:``, ``data:``...) are dropped here already.

Entries with no title, no summary and no link are skipped. An ill-formed ("bozo") feed
of at most ``MAX_LENIENT`` bytes that still yields entries is used, and the parser's complaint
is kept in ``ParsedFeed.bozo``. A document with no entries and a fatal problem raises
``ParseError``; a valid feed without entries gives an empty ``ParsedFeed``.

What is plainly no feed (text, JSON, an HTML page, a sitemap...) is refused by ``sniff`` before
any parser runs; what looks like a feed but would cost feedparser too much (more than
``MAX_ELEMENTS`` elements or ``MAX_ENTRIES`` entries, nesting deeper than ``MAX_DEPTH``, one text
longer than ``MAX_TEXT``) is refused after a C scan (``_too_costly``), so that one poll of a
hostile 10 MB body stays within ~0.4 s of CPU and ~80 MB (``bench/hostile.py``). Both raise
``ParseError``: the feed backs off as any failing feed does.

Inputs and outputs are plain bytes/str/dataclasses, so ``parse_feed`` can run in a
process pool.

Safety: feedparser strips the DOCTYPE (keeping only simple internal entities) before
the SAX parser sees the document, never fetches external entities, and the expat
bundled with Python (>= 2.4) refuses exponential entity expansion ("billion laughs").
"""

from __future__ import annotations

import io
import logging
import pyexpat
import re
import time
from datetime import UTC, datetime
from typing import Any

import feedparser

from . import fastparse
from .errors import ParseError
from .models import ParsedFeed, RawEntry
from .sniff import not_a_feed

log = logging.getLogger(__name__)

MAX_TITLE = 1_000
MAX_SUMMARY = 20_000
MAX_LINK = 4_000
MAX_GUID = 4_000
_MAX_BOZO = 300
# What a feed may hold before it is refused unparsed: bounds on one poll's CPU and memory (see
# _too_costly). A real feed of 10 MB has ~100,000 elements, nested less than 20 deep.
MAX_ELEMENTS = 200_000
MAX_DEPTH = 100
MAX_ENTRIES = 10_000  # a news feed has tens; 10,000 real items peak at ~90 MB in one poll
MAX_TEXT = 2 * 2**20  # characters of text in one element (a title, a summary)
MAX_LENIENT = 2 * 2**20  # bytes of a document that is not well-formed XML

# Non-fatal complaints: the document was parsed as a feed, only its encoding or
# content type was unexpected.
_HARMLESS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
_HTML_START = re.compile(rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b",
                         re.IGNORECASE | re.DOTALL)
# An internal DTD subset may declare entities; only tiny ones survive (see _defuse).
_ELEMENT_START = re.compile(rb"<[A-Za-z_]")
_ENTITY_DECL = re.compile(rb"<!ENTITY\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.IGNORECASE)
_SMALL_ENTITY = re.compile(
    rb"<!ENTITY\s+[A-Za-z_][\w.-]*\s+([\"'])(?:[^\"'&%<]{0,12}|&#x?[0-9a-fA-F]{1,6};)\1\s*>$")
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):")
_CONTROL = re.compile(r"[\x00-\x20]")


def parse_feed(body: bytes, *, url: str, content_type: str | None = None,
               content_location: str | None = None) -> ParsedFeed:
    """Parse ``body`` fetched from ``url`` (the final URL, after redirects).

    ``content_type`` (with its charset) and ``content_location`` are the response's
    headers; they guide the encoding and the base URL of relative links.

    Raises ``ParseError`` when ``body`` is empty, an HTML page, or malformed with no entries.
    """
    if not body or body.isspace():
        raise ParseError("not a feed: empty document")
    refused = not_a_feed(body)  # before any parser: what is plainly no feed costs nothing
    if refused is not None:
        raise ParseError(f"not a feed: {refused}{_shown(content_type)}")
    # Without a Content-Type feedparser complains; XML rules (BOM, declaration, UTF-8) apply.
    headers = {"content-location": content_location or url,
               "content-type": content_type or "application/xml"}
    started = time.perf_counter()
    # The fast path builds the whole tree (~90 bytes an element; an element has one or two '<')
    # before it counts the entries: past the bounds, _too_costly's scan refuses it unbuilt.
    fast = fastparse.parse(body, base=headers["content-location"], content_type=content_type) if (
        body.count(b"<") <= 2 * MAX_ELEMENTS
        and body.count(b"<item") + body.count(b"<entry") <= MAX_ENTRIES) else None
    if fast is not None:  # plain RSS 2.0 / Atom: the same values as feedparser, much faster
        title, raw_entries = fast
        if len(raw_entries) > MAX_ENTRIES:
            raise ParseError(f"refused: more than {MAX_ENTRIES:,} entries")
        entries = tuple(entry for entry in (_fast_entry(*raw) for raw in raw_entries)
                        if entry.title or entry.summary or entry.link)
        log.debug("parsed %s (fast path): %d entries in %.3f s", url, len(entries),
                  time.perf_counter() - started, extra={"feed_url": url})
        return ParsedFeed(title=_clip(title, MAX_TITLE) if title else None, entries=entries)
    body = _defuse(body)
    too_costly = _too_costly(body)
    if too_costly is not None:
        raise ParseError(f"refused: {too_costly}")
    try:
        result = feedparser.parse(io.BytesIO(body), response_headers=headers,
                                  sanitize_html=False, resolve_relative_uris=False)
    except Exception as error:  # feedparser is meant not to raise; never let a feed crash us
        log.warning("feedparser crashed on %s: %r", url, error, extra={"feed_url": url})
        raise ParseError(f"cannot parse: {type(error).__name__}: {_short(str(error))}") from None
    bozo = _bozo_message(result)
    entries = tuple(entry for entry in map(_entry, result.get("entries", ()))
                    if entry.title or entry.summary or entry.link)
    log.debug("parsed %s: %d entries in %.3f s", url, len(entries), time.perf_counter() - started,
              extra={"feed_url": url})
    if not entries:
        fatal = result.get("bozo") and not isinstance(result.get("bozo_exception"), _HARMLESS)
        if not result.get("version") or fatal:
            raise ParseError(_failure(body, content_type, bozo, bool(result.get("version"))))
    title = result.get("feed", {}).get("title")
    return ParsedFeed(title=_clip(title, MAX_TITLE) if title else None, entries=entries, bozo=bozo)


def _too_costly(body: bytes) -> str | None:
    """Why feedparser must not be given ``body``, or None.

    feedparser's cost grows with what a document holds, not with its size: 10 MB that looks like
    a feed but is markup cost it ~5 s of CPU a megabyte and, nested or inside a title, 50-100 MB
    of memory a megabyte; a 10 MB text node ~70 MB. A C scan (expat: ~5 % of feedparser's time)
    counts elements, nesting, entries and the longest text first, and stops at the first bound
    passed. A document that is not well-formed is read again by feedparser's lenient parser,
    from the start, at ~20 times the cost of a well-formed one: only up to ``MAX_LENIENT``."""
    scan = _Scan()
    parser = pyexpat.ParserCreate()
    parser.StartElementHandler = scan.start
    parser.EndElementHandler = scan.end
    parser.CharacterDataHandler = scan.text
    try:
        parser.Parse(body, True)
    except _Refused as refused:
        return str(refused)
    except pyexpat.ExpatError as error:
        if len(body) > MAX_LENIENT:
            return (f"not well-formed XML ({pyexpat.ErrorString(error.code)} at line {error.lineno}), "
                    f"and {_size(len(body))} is too large to be read leniently (at most "
                    f"{_size(MAX_LENIENT)})")
        after = body.count(b"<", max(parser.CurrentByteIndex, 0))
        if scan.elements + after > MAX_ELEMENTS:
            return f"more than {MAX_ELEMENTS:,} elements"
    except (ValueError, LookupError):  # an encoding expat does not know: feedparser decodes it
        if body.count(b"<") > MAX_ELEMENTS:
            return f"more than {MAX_ELEMENTS:,} elements"
    return None


_ENTRY_NAMES = frozenset({"item", "entry"})


class _Refused(Exception):
    pass


class _Scan:
    """Counts for ``_too_costly``; raises ``_Refused`` as soon as a bound is passed."""

    def __init__(self) -> None:
        self.elements = self.depth = self.entries = self.run = 0

    def start(self, name: str, attributes: Any) -> None:
        self.elements += 1
        self.depth += 1
        self.run = 0
        if name.rpartition(":")[2] in _ENTRY_NAMES:
            self.entries += 1
            if self.entries > MAX_ENTRIES:
                raise _Refused(f"more than {MAX_ENTRIES:,} entries")
        if self.depth > MAX_DEPTH:
            raise _Refused(f"elements nested more than {MAX_DEPTH} deep")
        if self.elements > MAX_ELEMENTS:
            raise _Refused(f"more than {MAX_ELEMENTS:,} elements")

    def end(self, name: str) -> None:
        self.depth -= 1
        self.run = 0

    def text(self, data: str) -> None:
        self.run += len(data)
        if self.run > MAX_TEXT:
            raise _Refused(f"a text of more than {_size(MAX_TEXT)} in one element")


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def _defuse(body: bytes) -> bytes:
    """``body`` without entity declarations other than tiny ones (``<!ENTITY nbsp "&#160;">``).

    expat refuses exponential and quadratic entity expansion, but when the strict parse
    fails feedparser re-parses with its loose parser, expanding the declared entities
    itself without any limit: a 100 KB document declaring one 50 KB entity used 20,000
    times took 27 s and 3 GB. Entities whose value is longer than 12 characters, refers to
    other entities, or is external are removed (their references stay as literal text).
    """
    found = _ELEMENT_START.search(body)
    end = found.start() if found else len(body)
    head = body[:end]
    if b"<!entity" not in head.lower():
        return body
    head = _ENTITY_DECL.sub(lambda m: m.group(0) if _SMALL_ENTITY.match(m.group(0)) else b"", head)
    return head + body[end:]


def _bozo_message(result: Any) -> str | None:
    if not result.get("bozo"):
        return None
    error = result.get("bozo_exception")
    message = str(error) if error is not None else "ill-formed feed"
    if isinstance(error, _HARMLESS):
        return _short(message)
    return _short(f"malformed XML: {message}")


def _shown(content_type: str | None) -> str:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return f" ({kind})" if kind else ""


def _failure(body: bytes, content_type: str | None, bozo: str | None, is_feed: bool) -> str:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    shown = _shown(content_type)
    if kind in ("text/html", "application/xhtml+xml") or _HTML_START.match(body[:4096]):
        return f"not a feed: HTML page{shown}"
    if bozo and bozo.startswith("malformed XML"):
        return bozo
    if is_feed:
        return f"no entries and {bozo}" if bozo else "no entries"
    return f"not a feed: no RSS or Atom document found{shown}"


def _entry(raw: Any) -> RawEntry:
    summary = raw.get("summary") or raw.get("description") or ""
    if not summary:
        for content in raw.get("content") or ():
            value = content.get("value")
            if value:
                summary = value
                break
    guid = raw.get("id") or None
    return RawEntry(
        guid=_clip(guid.strip(), MAX_GUID) if guid and guid.strip() else None,
        title=_clip(raw.get("title") or "", MAX_TITLE),
        link=_safe_link(raw.get("link")),
        summary=_clip(summary, MAX_SUMMARY),
        # dict.get: FeedParserDict's own get maps the keys onto each other with a warning
        published=_iso(dict.get(raw, "published_parsed") or dict.get(raw, "updated_parsed")),
    )


def _fast_entry(guid: str | None, title: str, link: str | None, summary: str,
                published: time.struct_time | None) -> RawEntry:
    return RawEntry(
        guid=_clip(guid.strip(), MAX_GUID) if guid and guid.strip() else None,
        title=_clip(title, MAX_TITLE),
        link=_safe_link(link),
        summary=_clip(summary, MAX_SUMMARY),
        published=_iso(published),
    )


def _safe_link(link: str | None) -> str | None:
    """The link, unless it is empty, absurdly long or has a scheme other than http(s)."""
    if not link or len(link) > MAX_LINK:
        return None
    link = link.strip()
    scheme = _SCHEME.match(_CONTROL.sub("", link))
    if scheme and scheme.group(1).lower() not in ("http", "https"):
        return None
    return link or None


def _iso(parsed: time.struct_time | None) -> str | None:
    """ISO 8601 UTC from feedparser's struct_time (which is UTC), else None."""
    if not parsed:
        return None
    try:
        return datetime(*parsed[:6], tzinfo=UTC).isoformat()
    except (TypeError, ValueError, OverflowError):
        return None


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit]


def _short(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= _MAX_BOZO else message[: _MAX_BOZO - 3] + "..."
