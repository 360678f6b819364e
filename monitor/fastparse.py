"""The fast path of parse: plain, well-formed UTF-8 RSS 2.0 and Atom 1.0 read with the C
ElementTree parser, giving exactly what feedparser gives for the fields we use.

In: the bytes of a feed, its base URL and Content-Type. Out: ``(feed title, entries)`` where
each entry is ``(guid, title, link, summary, published struct_time)``, the values feedparser
would put in ``id``, ``title``, ``link``, ``summary`` (or the first ``content``) and
``published_parsed`` / ``updated_parsed``; or None for anything this path does not know, and
then the caller uses feedparser.

"Anything it does not know" is deliberately wide: a DOCTYPE, ``xml:base``, an encoding other
than UTF-8, an XML error, an RSS version other than 2.0 or 0.9x, an entry child element outside
the short lists below (``dc:date``, ``media:title`` and friends change feedparser's fields),
an element twice, markup inside a text element, XHTML content, a date feedparser's own date
parser rejects. feedparser's post-processing of each value is replayed: whitespace strip,
relative-URI resolution of links and permalink guids, the UTF-8-read-as-Latin-1 repair, the
cp1252 mapping of C1 controls, and the ``&amp;`` repair of RSS links.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

from feedparser.datetimes import _parse_date
from feedparser.mixin import _cp1252

from .normalise import join_url

_C1_CONTROLS = re.compile("[\x80-\x9f]")  # the keys of feedparser's _cp1252 table
Entry = tuple[str | None, str, str | None, str, time.struct_time | None]

_DC = "{http://purl.org/dc/elements/1.1/}"
_MEDIA = "{http://search.yahoo.com/mrss/}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
_ATOM = "{http://www.w3.org/2005/Atom}"
# Item children that feedparser maps onto none of our fields.
_RSS_IGNORED = frozenset({
    "author", "category", "comments", "enclosure", "source", f"{_DC}creator", f"{_DC}subject",
    f"{_MEDIA}thumbnail", f"{_MEDIA}content", f"{_MEDIA}credit", f"{_MEDIA}keywords",
})
_ATOM_IGNORED = frozenset({f"{_ATOM}author", f"{_ATOM}category", f"{_ATOM}contributor",
                           f"{_ATOM}rights"})
_PERSON_TAGS = frozenset({f"{_ATOM}author", f"{_ATOM}contributor"})
_PERSON = frozenset({f"{_ATOM}name", f"{_ATOM}email", f"{_ATOM}uri"})
_HTML_TYPES = frozenset({"", "text", "html", "text/html", "text/plain"})
_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_URIFIXER = re.compile("^([A-Za-z][A-Za-z0-9+-.]*://)(/*)(.*?)")
_LINK_ENTITY = re.compile("&([A-Za-z0-9_]+);")
_UTF8 = frozenset({"utf-8", "utf8"})


class _Unknown(Exception):
    """A shape this path leaves to feedparser."""


def parse(body: bytes, *, base: str, content_type: str | None
          ) -> tuple[str | None, list[Entry]] | None:
    head = body[:1024]
    if body.startswith((b"\xfe\xff", b"\xff\xfe")) or b"<!DOCTYPE" in head.upper() or (
            b"xml:base" in body):
        return None
    declared = _ENCODING.match(head.lstrip(b"\xef\xbb\xbf"))
    if declared and declared.group(1).decode().lower() not in _UTF8:
        return None
    charset = _charset(content_type)
    if charset and charset not in _UTF8:
        return None
    try:
        root = ET.fromstring(body)
        if root.tag == "rss" and root.get("version", "") in ("2.0", "0.91", "0.92"):
            return _rss(root, base)
        if root.tag == f"{_ATOM}feed":
            return _atom(root, base)
    except (ET.ParseError, _Unknown, ValueError, UnicodeError):
        return None
    return None


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'").lower()
    return None


def _fix(value: str) -> str:
    """feedparser's last steps for every text value of a UTF-8 document."""
    if value.isascii():  # both steps leave ASCII as it is; most values are ASCII
        return value
    try:
        value = value.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    # str.translate looks up every character in the dict: only when there is one to change
    return value.translate(_cp1252) if _C1_CONTROLS.search(value) else value


def _text(element: ET.Element) -> str:
    if len(element):  # markup inside: feedparser rebuilds it; not our job
        raise _Unknown
    return (element.text or "").strip()


def _join(base: str, uri: str) -> str:
    uri = _URIFIXER.sub(r"\1\3", uri)
    try:
        return join_url(base, uri)
    except ValueError:
        return ""


def _date(value: str) -> time.struct_time | None:
    parsed = _parse_date(value) if value else None
    if value and parsed is None:
        raise _Unknown  # feedparser may find something we cannot tell; let it decide
    return parsed


def _rss(root: ET.Element, base: str) -> tuple[str | None, list[Entry]]:
    channels = [c for c in root if c.tag == "channel"]
    if len(channels) != 1 or len(root) != 1:
        raise _Unknown
    title = None
    entries: list[Entry] = []
    for child in channels[0]:
        if child.tag == "title":
            if title is not None:
                raise _Unknown
            title = _fix(_text(child))
        elif child.tag.endswith("}title"):  # dc:title and friends: feedparser's feed title
            raise _Unknown
        elif child.tag == "item":
            entries.append(_rss_item(child, base))
    return title, entries


def _rss_item(item: ET.Element, base: str) -> Entry:
    seen: set[str] = set()
    guid = link = None
    permalink = True
    title = ""
    summary = content = None
    published = None
    for child in item:
        tag = child.tag
        if tag in _RSS_IGNORED:
            if len(child):  # an <image> in a <category> has a <title> and a <link> too
                raise _Unknown
            continue
        if tag in seen or child.attrib.keys() - {"isPermaLink"}:
            raise _Unknown
        seen.add(tag)
        if tag == "title":
            title = _fix(_text(child))
        elif tag == "link":
            value = _text(child)
            if value:
                value = _join(base, value)
            value = _fix(value).replace("&amp;", "&")
            link = _LINK_ENTITY.sub(r"&\g<1>", value)
        elif tag == "guid":
            permalink = child.get("isPermaLink", "true") == "true"
            value = _text(child)
            if value and permalink:
                value = _join(base, value)
            guid = _fix(value)
        elif tag == "description":
            summary = _fix(_text(child))
        elif tag == f"{_CONTENT}encoded":
            content = _fix(_text(child))
        elif tag == "pubDate":
            published = _date(_text(child))
        else:
            raise _Unknown
    if link is None and permalink and guid is not None:
        link = guid
    if summary is None:
        summary = content or ""
    elif not summary and content:
        summary = content
    return guid, title, link, summary, published


def _atom(root: ET.Element, base: str) -> tuple[str | None, list[Entry]]:
    title = None
    entries: list[Entry] = []
    for child in root:
        if child.tag == f"{_ATOM}title":
            if title is not None or child.get("type", "text") not in _HTML_TYPES:
                raise _Unknown
            title = _fix(_text(child))
        elif child.tag == f"{_ATOM}entry":
            entries.append(_atom_entry(child, base))
    return title, entries


def _atom_entry(entry: ET.Element, base: str) -> Entry:
    seen: set[str] = set()
    guid = link = None
    title = ""
    summary = content = None
    published = updated = None
    for child in entry:
        tag = child.tag
        if tag in _ATOM_IGNORED:
            if any(grandchild.tag not in _PERSON for grandchild in child) or (
                    len(child) and tag not in _PERSON_TAGS):
                raise _Unknown
            continue
        if tag == f"{_ATOM}link":
            href = child.get("href")
            if href is None or len(child):  # feedparser reads its text as the link
                raise _Unknown
            if child.get("rel", "alternate") != "alternate":
                continue
            if link is not None or child.get("type", "text/html") not in ("text/html",
                                                                          "application/xhtml+xml"):
                raise _Unknown
            link = _fix(_join(base, href.strip()) if href.strip() else "")
            continue
        if tag in seen:
            raise _Unknown
        seen.add(tag)
        if tag == f"{_ATOM}title":
            if child.get("type", "text") not in _HTML_TYPES:
                raise _Unknown
            title = _fix(_text(child))
        elif tag == f"{_ATOM}id":
            value = _text(child)
            guid = _fix(_join(base, value) if value else value)
        elif tag in (f"{_ATOM}summary", f"{_ATOM}content"):
            if child.get("type", "text") not in _HTML_TYPES or "src" in child.attrib:
                raise _Unknown
            if tag == f"{_ATOM}summary":
                summary = _fix(_text(child))
            else:
                content = _fix(_text(child))
        elif tag == f"{_ATOM}published":
            published = _date(_text(child))
        elif tag == f"{_ATOM}updated":
            updated = _date(_text(child))
        else:
            raise _Unknown
    if link is None and guid is not None:
        link = guid
    if summary is None:
        summary = content or ""
    elif not summary and content:
        summary = content
    return guid, title, link, summary, published or updated
