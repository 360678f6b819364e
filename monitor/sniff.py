"""Sniff: the bytes of a fetched body in, the reason it is not a feed out (or None: it may be one).

Looks only at the start of the body (``WINDOW`` bytes), before any parser runs, so that what is
plainly not a feed (plain text, JSON, binary data, an HTML page, an XML document of another kind
such as a sitemap) is refused in microseconds whatever its size: feedparser's lenient parser
took 8-11 s of CPU and ~200 MB for a 10 MB HTML page, and minutes and gigabytes for 10 MB of
tag soup.

What may be a feed: after an optional BOM, whitespace, an XML declaration, comments, processing
instructions and a DOCTYPE, the first element is ``rss``, ``feed``, ``RDF`` (RSS 0.90
and 1.0, any prefix) or ``channel`` (CDF). A body that starts with something else is still
given a chance when a feed's root element appears later in the window (a feed after a PHP
warning). The encoding of the window is found as XML 1.0 appendix F says (BOM, else the byte
pattern of ``<?``), so that UTF-16 and UTF-32 feeds pass too.
"""

from __future__ import annotations

import re

WINDOW = 64 * 1024  # bytes of the body looked at

_FEED_ROOTS = frozenset({"rss", "feed", "rdf", "channel"})
_NAME = re.compile(r"<([A-Za-z_][\w.:-]*)")
_DOCTYPE = re.compile(r"<!DOCTYPE[^\[>]*(?:\[.*?\]\s*)?>", re.IGNORECASE | re.DOTALL)
_FEED_ROOT_ANYWHERE = re.compile(r"<(?:[\w.-]+:)?(?:rss|feed|RDF)[\s>/]")
_BOMS = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
         (b"\xef\xbb\xbf", "utf-8"), (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"))
_PATTERNS = ((b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
             (b"\x00<", "utf-16-be"), (b"<\x00", "utf-16-le"),  # with or without "<?xml"
             (b"\x4c\x6f\xa7\x94", "cp037"))


def not_a_feed(body: bytes) -> str | None:
    """Why ``body`` is not a feed (``"HTML page"``, ``"plain text"``...), or None when it may be."""
    head = _decode(body[:WINDOW])
    at = 0
    while True:
        while at < len(head) and head[at].isspace():
            at += 1
        if at >= len(head):
            # only prologue in the window: a short body goes to the parser (which says what is
            # wrong with it); a long one is no feed that we know of
            return None if len(body) <= WINDOW else "no element in the first 64 KiB"
        if head.startswith("<?", at):
            end, closing = head.find("?>", at), "?>"
        elif head.startswith("<!--", at):
            end, closing = head.find("-->", at + 4), "-->"
        elif head[at:at + 9].upper() == "<!DOCTYPE":
            doctype = _DOCTYPE.match(head, at)  # even "html": the root element decides
            if doctype is None:
                end, closing = -1, ">"
            else:
                at = doctype.end()
                continue
        elif (name := _NAME.match(head, at)) is not None:
            root = name.group(1)
            local = root.rsplit(":", 1)[-1].lower()
            if local in _FEED_ROOTS:
                return None
            if local == "html":
                return "HTML page"
            return f"an XML document whose root element is <{root[:40]}>"
        else:
            if _FEED_ROOT_ANYWHERE.search(head, at):
                return None
            return _kind(head[at:at + 512])
        if end < 0:  # a prologue part that does not end in the window
            return None if len(body) <= WINDOW else "no element in the first 64 KiB"
        at = end + len(closing)


def _decode(head: bytes) -> str:
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return head[len(bom):].decode(encoding, errors="replace")
    for pattern, encoding in _PATTERNS:
        if head.startswith(pattern):
            return head.decode(encoding, errors="replace")
    # ASCII-compatible encodings (UTF-8, Latin-1, Windows-125x...): the markup is ASCII
    return head.decode("latin-1")


def _kind(start: str) -> str:
    if start[:1] in ("{", "["):
        return "JSON or other data, no XML markup"
    if start.startswith("<"):
        return "no XML element at the start"
    printable = sum(1 for c in start if c.isprintable() or c in "\t\r\n")
    if printable < 0.9 * len(start):
        return "binary data, no XML markup"
    return "plain text, no XML markup"
