"""The fast parse path gives exactly what feedparser gives, or steps aside.

Every document is parsed twice through ``parse_feed``: once as shipped (fast path when it
applies) and once with the fast path switched off (feedparser). The results must be equal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import fastparse, parse
from monitor.errors import ParseError

DATA = Path(__file__).parent / "data" / "feeds"
SHARED = Path("/work/shared/data/feeds/feedparser-corpus/wellformed")
URL = "http://example.org/news/feed.xml"


def _both(body: bytes, monkeypatch: pytest.MonkeyPatch, content_type: str | None = None):
    def run():
        try:
            return parse.parse_feed(body, url=URL, content_type=content_type)
        except ParseError as error:
            return ("error", str(error))

    fast = run()
    with monkeypatch.context() as patch:
        patch.setattr(fastparse, "parse", lambda *a, **k: None)
        slow = run()
    return fast, slow


def _documents() -> list[Path]:
    files = sorted(DATA.glob("*.xml")) + sorted((DATA / "corpus").glob("*.xml"))
    files += sorted((DATA.parent / "hostile").glob("**/*.xml"))
    for group in ("rss", "atom10", "atom"):
        if (SHARED / group).is_dir():
            files += sorted((SHARED / group).glob("*.xml"))
    return files


def test_same_values_as_feedparser_on_real_and_corpus_feeds(monkeypatch):
    fast_used = 0
    documents = _documents()
    for path in documents:
        body = path.read_bytes()
        if fastparse.parse(body, base=URL, content_type=None) is not None:
            fast_used += 1
        fast, slow = _both(body, monkeypatch)
        assert fast == slow, path.name
    assert fast_used >= 3  # the real feeds at least take the fast path


CASES = {
    "relative permalink guid becomes the link": (
        b'<rss version="2.0"><channel><title>T</title><item><title>A</title>'
        b"<guid>/story/1</guid></item></channel></rss>"),
    "guid that is no permalink is not a link": (
        b'<rss version="2.0"><channel><item><title>A</title>'
        b'<guid isPermaLink="false">abc-1</guid><link>https://x.org/a?b=1&amp;amp;c=2</link>'
        b"</item></channel></rss>"),
    "utf-8 read as latin-1 and cp1252 controls": (
        '<rss version="2.0"><channel><item><title>CafÃ© \x93quoted\x94</title>'
        "<description>&lt;p&gt;Talks &amp;amp; truce&lt;/p&gt;</description>"
        "<pubDate>Sat, 07 Oct 2023 06:30:00 EST</pubDate></item></channel></rss>").encode(),
    "content:encoded without a description": (
        b'<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        b"<item><title>A</title><description></description>"
        b"<content:encoded><![CDATA[<p>Body</p>]]></content:encoded></item></channel></rss>"),
    "dc:date is left to feedparser": (
        b'<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><item>'
        b"<title>A</title><dc:date>2023-10-07T06:30:00Z</dc:date></item></channel></rss>"),
    "atom with id, alternate link and html summary": (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title type="html">F &amp;amp; G</title>'
        b'<entry><id>tag:x.org,2023:1</id><title type="html">A &lt;b&gt;b&lt;/b&gt;</title>'
        b'<link rel="enclosure" href="http://x.org/a.mp3"/><link href="/rel/a"/>'
        b"<updated>2023-10-07T06:30:00+02:00</updated><summary type='html'>&lt;i&gt;s&lt;/i&gt;"
        b"</summary></entry></feed>"),
    "atom xhtml content is left to feedparser": (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id><title>A</title>'
        b'<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>x</p></div>'
        b"</content></entry></feed>"),
    "undefined entity": (
        b'<rss version="2.0"><channel><item><title>A&nbsp;B</title></item></channel></rss>'),
    "latin-1 document": (
        '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><item>'
        "<title>Caf\xe9</title></item></channel></rss>").encode("latin-1"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_values_as_feedparser_on_tricky_cases(name, monkeypatch):
    fast, slow = _both(CASES[name], monkeypatch)
    assert fast == slow


def test_declines_what_it_does_not_know():
    assert fastparse.parse(CASES["dc:date is left to feedparser"], base=URL, content_type=None) is None
    assert fastparse.parse(CASES["latin-1 document"], base=URL, content_type=None) is None
    assert fastparse.parse(CASES["undefined entity"], base=URL, content_type=None) is None
    body = CASES["relative permalink guid becomes the link"]
    assert fastparse.parse(body, base=URL, content_type="text/xml; charset=iso-8859-1") is None
    title, entries = fastparse.parse(body, base=URL, content_type="application/rss+xml")
    assert title == "T" and entries[0][2] == "http://example.org/story/1"
