"""monitor.normalise: tables of cases (pure functions, no I/O)."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.models import RawEntry
from monitor.normalise import canonical_url, html_to_text, join_url, normalise_entry

FEED = "https://feeds.example.com/world/rss.xml"
NOW = datetime(2024, 8, 8, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(("url", "base", "expected"), [
    ("https://www.bbc.com/news/articles/cz074vyvjzvo", None, "https://www.bbc.com/news/articles/cz074vyvjzvo"),
    ("HTTPS://WWW.BBC.COM/News/Articles", None, "https://www.bbc.com/News/Articles"),  # path case kept
    ("http://example.com:80/a", None, "http://example.com/a"),
    ("https://example.com:443/a", None, "https://example.com/a"),
    ("https://example.com:8443/a", None, "https://example.com:8443/a"),
    ("http://example.com", None, "http://example.com/"),
    ("https://example.com/a#comments", None, "https://example.com/a"),
    ("https://example.com/a?utm_source=rss&utm_medium=feed&id=7&UTM_Campaign=x", None,
     "https://example.com/a?id=7"),
    ("https://example.com/a?b=2&fbclid=abc&a=1&gclid=1&mc_cid=2&mc_eid=3", None, "https://example.com/a?b=2&a=1"),
    ("https://www.bbc.co.uk/news/world-1?at_medium=RSS&at_campaign=KARANGA", None,
     "https://www.bbc.co.uk/news/world-1"),
    ("https://www.nytimes.com/2024/08/08/world/x.html?smid=url-share&partner=rss&emc=rss", None,
     "https://www.nytimes.com/2024/08/08/world/x.html"),
    ("https://edition.cnn.com/x?iid=ob_lockedrail&CMP=twt&ocid=rss&cmpid=1&ref=rss&rss=1&taid=2", None,
     "https://edition.cnn.com/x"),
    ("https://example.com/search?q=gaza%20ceasefire&page=2", None, "https://example.com/search?q=gaza%20ceasefire&page=2"),
    ("https://example.com/a?", None, "https://example.com/a"),
    ("/story/1?utm_source=rss", FEED, "https://feeds.example.com/story/1"),
    ("story/2", FEED, "https://feeds.example.com/world/story/2"),
    ("//cdn.example.com/x", FEED, "https://cdn.example.com/x"),
    ("  https://example.com/padded  ", None, "https://example.com/padded"),
    ("https://user:pw@Example.com/a", None, "https://example.com/a"),
    ("http://[2001:DB8::1]:80/a", None, "http://[2001:db8::1]/a"),
    ("javascript:alert(1)", None, None),
    ("JavaScript:alert(1)", FEED, None),
    (" java\tscript:alert(1)", FEED, None),
    ("data:text/html,<script>alert(1)</script>", FEED, None),
    ("file:///etc/passwd", None, None),
    ("ftp://example.com/x", None, None),
    ("mailto:desk@example.com", FEED, None),
    ("/relative-without-base", None, None),
    ("https://example.com:notaport/", None, None),
    ("https:///no-host", None, None),
    ("", FEED, None),
    (None, FEED, None),
])
def test_canonical_url(url: str | None, base: str | None, expected: str | None) -> None:
    assert canonical_url(url, base) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("Plain title", "Plain title"),
    ("Hamas &amp; Israel", "Hamas & Israel"),
    ("Biden&amp;#039;s plan", "Biden's plan"),  # double-encoded
    ("It&amp;amp;#8217;s late", "It\u2019s late"),  # triple-encoded
    ("&lt;b&gt;Breaking&lt;/b&gt; news", "Breaking news"),  # escaped markup
    ("&amp;amp;lt;b&amp;amp;gt;Breaking&amp;amp;lt;/b&amp;amp;gt; news", "Breaking news"),  # 3x
    ("It&amp;amp;amp;#8217;s late", "It&#8217;s late"),  # decoded 3 times at most
    ("<p>Talks in <b>Cairo</b> resume</p><p>Next day</p>", "Talks in Cairo resume Next day"),
    ("<div><ul><li>one</li><li>two</li></ul></div>", "one two"),
    ("word<br>word<br/>word", "word word word"),
    ("Cai<b>ro</b>", "Cairo"),  # inline tags join
    ("<script>alert('x')</script>Safe <style>p{color:red}</style>text", "Safe text"),
    ("<SCRIPT type='text/javascript'>var a = '<p>';</SCRIPT>after", "after"),
    ("<script>never closed", ""),
    ("<!-- a comment --> visible", "visible"),
    ("<![CDATA[ inside ]]>", "inside"),
    ("a < b and c > d", "a < b and c > d"),
    ("I <3 peace", "I <3 peace"),
    ("5 &lt; 6", "5 < 6"),
    ("  lots \n\t of\u00a0 space  ", "lots of space"),
    ("zero\u200bwidth", "zerowidth"),
    ('<a href="https://x.example/?a=1&amp;b=2">link</a> text', "link text"),
    ("<img src=x onerror=alert(1)>caption", "caption"),
    ("a <b c d <p>e</p>", "a <b c d e"),  # unclosed mid-text: kept as text
    ("truncated <a href='https://exa", "truncated"),
    ("&nbsp;&mdash;&hellip;", "\u2014\u2026"),
    ("&unknown; entity", "&unknown; entity"),
    ("", ""),
])
def test_html_to_text(value: str, expected: str) -> None:
    assert html_to_text(value) == expected


def test_html_to_text_is_fast() -> None:
    summary = ("<p>Negotiators from <a href='https://example.com/?a=1&amp;b=2'>Qatar</a> and "
               "<b>Egypt</b> met on Thursday &amp;#8212; talks resume.</p>") * 5
    started = time.perf_counter()
    for _ in range(10_000):
        html_to_text(summary)
    assert time.perf_counter() - started < 5  # ~0.3 s measured


def test_html_to_text_huge_input() -> None:
    started = time.perf_counter()
    assert html_to_text("<" * 20_000 + " b" * 20_000).endswith("b b")
    assert html_to_text("<" * 20_000 + "b" * 20_000) == "<" * 19_999  # "<bbb..." is an open tag
    assert html_to_text("<a " * 10_000) == ("<a " * 9_999).strip()
    assert html_to_text("x <a href='y' " + "z" * 50_000) == "x"  # truncated summary
    assert time.perf_counter() - started < 2


def entry(**changes: object) -> RawEntry:
    values: dict[str, object] = {
        "guid": "urn:1", "title": "<b>Truce</b> talks", "link": "/story/1?utm_source=rss",
        "summary": "Mediators &amp;amp; envoys", "published": "2024-08-08T15:39:03+00:00",
    }
    values.update(changes)
    return RawEntry(**values)  # type: ignore[arg-type]


def normalise(raw: RawEntry, first_seen: datetime = NOW):
    return normalise_entry(raw, feed_url=FEED, source="Example News", first_seen=first_seen)


def test_normalise_entry() -> None:
    item = normalise(entry())
    assert item.feed_url == FEED and item.source == "Example News"
    assert item.guid == "urn:1"
    assert item.url == "https://feeds.example.com/story/1"
    assert item.title == "Truce talks" and item.summary == "Mediators & envoys"
    assert item.published == datetime(2024, 8, 8, 15, 39, 3, tzinfo=UTC)
    assert item.published.tzinfo is not None and item.published_known


@pytest.mark.parametrize(("published", "expected", "known"), [
    ("2024-08-08T15:39:03+00:00", datetime(2024, 8, 8, 15, 39, 3, tzinfo=UTC), True),
    ("2024-08-08T17:39:03+02:00", datetime(2024, 8, 8, 15, 39, 3, tzinfo=UTC), True),
    ("2024-08-08T15:39:03Z", datetime(2024, 8, 8, 15, 39, 3, tzinfo=UTC), True),
    ("2024-08-08T15:39:03", datetime(2024, 8, 8, 15, 39, 3, tzinfo=UTC), True),  # naive: UTC
    ("2024-08-09T19:00:00+00:00", datetime(2024, 8, 9, 19, tzinfo=UTC), True),  # < 1 day ahead: kept
    ("2024-08-09T20:00:00+00:00", datetime(2024, 8, 9, 20, tzinfo=UTC), True),  # exactly 1 day: kept
    ("2024-08-09T20:00:01+00:00", NOW, False),  # > 1 day in the future: clamped
    ("2024-08-10T00:00:00+00:00", NOW, False),
    ("2099-01-01T00:00:00+00:00", NOW, False),
    ("1999-12-31T23:59:59+00:00", datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), True),
    (None, NOW, False),
    ("", NOW, False),
    ("not a date", NOW, False),
])
def test_published(published: str | None, expected: datetime, known: bool) -> None:
    item = normalise(entry(published=published))
    assert item.published == expected
    assert item.published.utcoffset() == timedelta(0)
    assert item.published_known is known


def test_first_seen_in_another_zone_or_naive() -> None:
    plus2 = timezone(timedelta(hours=2))
    item = normalise(entry(published=None), first_seen=datetime(2024, 8, 8, 22, tzinfo=plus2))
    assert item.published == NOW and item.published.tzinfo == UTC
    item = normalise(entry(published=None), first_seen=datetime(2024, 8, 8, 20))
    assert item.published == NOW


def test_guid_fallbacks() -> None:
    assert normalise(entry(guid="  urn:2  ")).guid == "urn:2"
    assert normalise(entry(guid=None)).guid == "https://feeds.example.com/story/1"
    assert normalise(entry(guid="")).guid == "https://feeds.example.com/story/1"
    no_link = normalise(entry(guid=None, link="javascript:alert(1)"))
    assert no_link.url is None
    digest = hashlib.sha1(b"Truce talks\nMediators & envoys").hexdigest()
    assert no_link.guid == f"sha1:{digest}"
    # the same text in other markup gives the same hash
    assert normalise(entry(guid=None, link=None, title="Truce   talks",
                           summary="Mediators &amp; envoys")).guid == no_link.guid
    long = normalise(entry(guid="x" * 5000)).guid
    assert long.startswith("sha1:") and len(long) == 45


_EDGE_URLS = [
    "http://a.com", "http://a.com/", "http://a.com?", "http://a.com/x?", "http://a.com/x#", "http://a.com/x?#y",
    "http://a.com/x?a#", "http://a.com/x;p", "http://a.com/x;", "http://[::1]/x", "http://a.com/ x",
    "http://a.com/x\t", "http:///x", "http://", "https://a.com/x?y=1#z", "HTTP://a.com/x", "http://a.com/x/../y",
    "http://a.com//x", "http://a.com/x?y=1?z", "http://a.com/x#y#z", "http://a.com:80/x", "http://a.com:bad/x",
    "http://\u00e9.com/x", "http://a.com/\x7f", "http://a.com/x?q=a;b", "https://a.com/%20x", "http://user@a.com/x",
    "/relative/path", "relative", "//proto.relative/x", "mailto:x@y.z", "javascript:alert(1)", "",
]


def test_join_url_is_urljoin_with_a_shortcut() -> None:
    """The shortcut for plain absolute links must never change what urljoin gives."""
    from urllib.parse import urljoin

    data = Path(__file__).parent / "data"
    urls = set(_EDGE_URLS)
    for name in ("e2e_items.jsonl", "items_sample.jsonl"):
        for line in (data / name).read_text().splitlines():
            urls.update(v for k, v in json.loads(line).items() if k in ("link", "url", "guid") and v)
    shortcut = 0
    bases = ["http://b.org/feed", "https://b.org/f/", "", "http://b.org/?x#y"]
    for base, url in itertools.product(bases, urls):
        try:
            expected = urljoin(base, url)
        except ValueError:
            expected = "ValueError"
        try:
            got = join_url(base, url)
        except ValueError:
            got = "ValueError"
        assert got == expected, (base, url)
        shortcut += got == url and url.startswith("http")
    assert len(urls) > 60 and shortcut > 100  # real links took the shortcut and were checked


# --------------------------------------------------------------------------- one article, one URL

@pytest.mark.parametrize("link", [
    "https://example.com/a?utm_source=rss&&id=7",
    "https://example.com/a?id=7&&utm_source=rss",
    "https://example.com/a?&id=7",
    "https://example.com/a?id=7&",
    "https://example.com/a?&&id=7&&",
])
def test_an_empty_parameter_in_a_link_gives_the_same_canonical_url(link: str) -> None:
    """Feeds write "&&" where a tracking parameter was cut out: the article is still the one at
    ``?id=7``, or URL dedup would take it for a new one."""
    assert canonical_url(link) == canonical_url("https://example.com/a?id=7") == "https://example.com/a?id=7"


@pytest.mark.parametrize("link", [
    "https://example.com/a\u200b",  # a zero-width space pasted into the link
    "https://exa\u200dmple.com/a",
    "\ufeffhttps://example.com/a",  # a byte-order mark before the link
    "https://example.com/\u2060a",
    "https://example.com/a\x00",
])
def test_invisible_characters_in_a_link_do_not_make_another_url(link: str) -> None:
    assert canonical_url(link) == "https://example.com/a"
    item = normalise(entry(link=link, guid=None))
    assert item.url == "https://example.com/a" and item.guid == "https://example.com/a"


def test_a_long_guid_is_kept_up_to_512_characters_then_hashed() -> None:
    """Ids up to 512 characters are stored as the feed gave them; a longer one is hashed (the
    same hash for the same id, so the entry is still known on the next poll)."""
    assert normalise(entry(guid="g" * 512)).guid == "g" * 512
    hashed = normalise(entry(guid="g" * 513)).guid
    assert hashed == "sha1:" + hashlib.sha1(b"g" * 513).hexdigest()
    assert normalise(entry(guid="g" * 513)).guid == hashed != normalise(entry(guid="g" * 514)).guid
