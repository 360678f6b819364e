"""monitor.fetch against a real HTTP server on 127.0.0.1, including hostile ones."""

from __future__ import annotations

import gzip
import random
import socket
import struct
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler

import pytest
from feedserver import FeedServer, rss

from monitor.errors import (
    FeedConnectError,
    FeedHTTPStatus,
    FeedRedirectLoop,
    FeedRefusedURL,
    FeedTimeout,
    FeedTooLarge,
    FetchError,
)
from monitor.fetch import ACCEPT, Fetcher, backoff_delay, jittered, parse_retry_after

FEED = rss([{"title": "Ceasefire talks resume in Cairo", "link": "https://example.com/a",
             "summary": "Negotiators met.", "published": datetime(2024, 8, 8, 12, tzinfo=UTC)}])


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as feed_server:
        yield feed_server


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(user_agent="ceasefire-monitor-tests/1", trust_env=False) as client:
        yield client


def small_fetcher(**options: float) -> Fetcher:
    return Fetcher(user_agent="ceasefire-monitor-tests/1", trust_env=False, **options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- conditional GET

def test_200_then_304_with_etag(server: FeedServer, fetcher: Fetcher) -> None:
    server.set_feed("/feed.xml", FEED, last_modified=False)
    first = fetcher.fetch(server.url("/feed.xml"))
    assert first.status == 200 and first.body == FEED and not first.not_modified
    assert first.etag and first.etag.startswith('"')
    assert first.content_type == "application/rss+xml; charset=utf-8"
    assert first.url == server.url("/feed.xml")
    assert first.elapsed > 0

    second = fetcher.fetch(server.url("/feed.xml"), etag=first.etag)
    assert second.status == 304 and second.not_modified and second.body == b""
    assert second.etag == first.etag
    assert server.hits["/feed.xml"] == 2
    _, headers = server.requests[-1]
    assert headers["If-None-Match"] == first.etag
    assert headers["Accept"] == ACCEPT
    assert headers["Accept-Encoding"] == "gzip, deflate"
    assert headers["User-Agent"] == "ceasefire-monitor-tests/1"

    server.set_feed("/feed.xml", FEED + b"<!-- changed -->", last_modified=False)
    third = fetcher.fetch(server.url("/feed.xml"), etag=first.etag)
    assert third.status == 200 and third.etag != first.etag


def test_last_modified(server: FeedServer, fetcher: Fetcher) -> None:
    server.set_feed("/feed.xml", FEED, etag=False, last_modified="Thu, 08 Aug 2024 19:20:58 GMT")
    first = fetcher.fetch(server.url("/feed.xml"))
    assert first.status == 200 and first.etag is None
    assert first.last_modified == "Thu, 08 Aug 2024 19:20:58 GMT"
    second = fetcher.fetch(server.url("/feed.xml"), last_modified=first.last_modified)
    assert second.status == 304
    assert second.last_modified == first.last_modified  # kept although the 304 may omit it
    assert server.requests[-1][1]["If-Modified-Since"] == first.last_modified


def test_304_without_validators_keeps_ours(server: FeedServer, fetcher: Fetcher) -> None:
    server.set_response("/bare304", 304)
    result = fetcher.fetch(server.url("/bare304"), etag='"v1"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    assert result.status == 304
    assert result.etag == '"v1"' and result.last_modified == "Mon, 01 Jan 2024 00:00:00 GMT"


def test_gzip_body_is_decoded(server: FeedServer, fetcher: Fetcher) -> None:
    server.set_response("/gz", 200, gzip.compress(FEED), {"Content-Encoding": "gzip"})
    assert fetcher.fetch(server.url("/gz")).body == FEED
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    server.set_response("/raw-deflate", 200, raw_deflate.compress(FEED) + raw_deflate.flush(),
                        {"Content-Encoding": "deflate"})
    assert fetcher.fetch(server.url("/raw-deflate")).body == FEED
    server.set_response("/deflate", 200, zlib.compress(FEED), {"Content-Encoding": "deflate"})
    assert fetcher.fetch(server.url("/deflate")).body == FEED


def test_a_long_deflate_body_arriving_in_many_pieces_is_decoded(server: FeedServer,
                                                                  fetcher: Fetcher) -> None:
    """Raw or zlib-wrapped is decided on the first piece only; the later pieces of a long body
    are the same stream."""
    rng = random.Random(4)
    words = ["truce", "talks", "Cairo", "Doha", "hostage", "release", "envoy", "delegation"]
    body = rss([{"title": " ".join(rng.choices(words, k=12)) + f" {n}", "link": f"https://x.example/{n}",
                 "summary": " ".join(rng.choices(words, k=20)) + f" {rng.getrandbits(1200):x}"}
                for n in range(600)])
    compressed = zlib.compress(body)
    assert len(compressed) > 100_000  # several reads of the socket
    server.set_response("/long", 200, compressed, {"Content-Encoding": "deflate"})
    assert fetcher.fetch(server.url("/long")).body == body


def test_a_gzip_body_of_several_members_is_read_whole(server: FeedServer, fetcher: Fetcher) -> None:
    """gzip allows members one after another (a CDN that compresses in pieces): all of them are
    the body, padding between them included."""
    half = len(FEED) // 2
    body = gzip.compress(FEED[:half]) + b"\x00\x00" + gzip.compress(FEED[half:])
    server.set_response("/members", 200, body, {"Content-Encoding": "gzip"})
    assert fetcher.fetch(server.url("/members")).body == FEED


def test_bytes_after_the_end_of_a_deflate_stream_are_ignored(server: FeedServer,
                                                                fetcher: Fetcher) -> None:
    """Some servers pad a deflate body; the stream's own end is the end of the feed (only gzip
    has further members)."""
    server.set_response("/padded", 200, zlib.compress(FEED) + b"\r\n\x00junk",
                        {"Content-Encoding": "deflate"})
    assert fetcher.fetch(server.url("/padded")).body == FEED


def test_the_size_cap_counts_the_decoded_body_not_the_compressed_one(server: FeedServer) -> None:
    """A body under the cap is read even when its gzip form (incompressible data) is over it."""
    body = random.Random(6).randbytes(990)
    packed = gzip.compress(body)
    assert len(packed) > 1000
    server.set_response("/packed", 200, packed, {"Content-Encoding": "gzip"})
    server.set_response("/exact", 200, b"x" * 1000)
    server.set_response("/over", 200, b"x" * 1001)
    with small_fetcher(max_body_bytes=1000) as fetcher:
        assert fetcher.fetch(server.url("/packed")).body == body
        assert fetcher.fetch(server.url("/exact")).body == b"x" * 1000  # the cap itself is allowed
        with pytest.raises(FeedTooLarge):
            fetcher.fetch(server.url("/over"))


def test_unsupported_encoding_and_corrupt_gzip(server: FeedServer, fetcher: Fetcher) -> None:
    server.set_response("/br", 200, b"\x0b\x01\x80hello\x03", {"Content-Encoding": "br"})
    with pytest.raises(FeedConnectError, match="unsupported Content-Encoding: br"):
        fetcher.fetch(server.url("/br"))
    server.set_response("/bad-gz", 200, b"\x1f\x8b\x08\x00garbage-garbage", {"Content-Encoding": "gzip"})
    with pytest.raises(FeedConnectError, match="corrupt"):
        fetcher.fetch(server.url("/bad-gz"))


def test_identity_encoding_is_no_encoding(server: FeedServer, fetcher: Fetcher) -> None:
    server.set_response("/plain", 200, FEED, {"Content-Encoding": "identity"})
    assert fetcher.fetch(server.url("/plain")).body == FEED
    server.set_response("/gz-after-identity", 200, gzip.compress(FEED),
                        {"Content-Encoding": "identity, gzip"})
    assert fetcher.fetch(server.url("/gz-after-identity")).body == FEED


def test_https_to_a_plain_http_server_is_a_tls_error(server: FeedServer, fetcher: Fetcher) -> None:
    """A feed configured as https on a server that speaks plain HTTP: the desk reads "TLS
    error", not a bare connection failure."""
    server.set_feed("/a.xml", FEED)
    with pytest.raises(FeedConnectError, match=r"^TLS error: ") as caught:
        fetcher.fetch(server.url("/a.xml").replace("http://", "https://"))
    assert caught.value.code == "fetch.connect"


# --------------------------------------------------------------------------- status errors

@pytest.mark.parametrize("status", [300, 305, 399])
def test_a_3xx_that_is_no_redirect_is_an_error_not_a_feed(server: FeedServer, fetcher: Fetcher,
                                                          status: int) -> None:
    """Only 2xx bodies are feeds: a 3xx that is neither a redirect nor 304 is an HTTP error."""
    server.set_response("/odd.xml", status, FEED)
    with pytest.raises(FeedHTTPStatus) as caught:
        fetcher.fetch(server.url("/odd.xml"))
    assert caught.value.status == status


def test_404(server: FeedServer, fetcher: Fetcher) -> None:
    with pytest.raises(FeedHTTPStatus) as caught:
        fetcher.fetch(server.url("/missing.xml"))
    assert caught.value.status == 404
    assert str(caught.value) == "HTTP 404 Not Found"
    assert caught.value.retry_after is None
    assert caught.value.code == "fetch.http_status"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds(server: FeedServer, fetcher: Fetcher, status: int) -> None:
    server.set_response("/busy", status, b"slow down", {"Retry-After": "120"})
    with pytest.raises(FeedHTTPStatus) as caught:
        fetcher.fetch(server.url("/busy"))
    assert caught.value.status == status and caught.value.retry_after == 120.0
    assert str(caught.value).startswith(f"HTTP {status} ")


def test_retry_after_http_date(server: FeedServer, fetcher: Fetcher) -> None:
    when = datetime.now(UTC) + timedelta(seconds=600)
    server.set_response("/busy", 503, b"", {"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(FeedHTTPStatus) as caught:
        fetcher.fetch(server.url("/busy"))
    assert caught.value.retry_after is not None
    assert 590 <= caught.value.retry_after <= 601
    assert str(caught.value) == "HTTP 503 Service Unavailable"


@pytest.mark.parametrize(("value", "expected"), [
    ("0", 0.0), ("  30 ", 30.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
    ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0), ("soon", None), ("-5", None), ("", None), (None, None),
    ("Wed, 21 Oct 2015 07:28:00 -0000", 60.0),  # "-0000": UTC, zone not said
    ("Wed, 21 Oct 2015 09:28:00 +0200", 60.0),
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=datetime(2015, 10, 21, 7, 27, tzinfo=UTC)) == expected


# --------------------------------------------------------------------------- connection errors

def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused(fetcher: Fetcher) -> None:
    with pytest.raises(FeedConnectError) as caught:
        fetcher.fetch(f"http://127.0.0.1:{closed_port()}/feed.xml")
    assert str(caught.value) == "connection refused"
    assert caught.value.code == "fetch.connect"


def reset_mid_body(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                        b"Content-Length: 100000\r\n\r\n<rss><channel><item>")
    handler.wfile.flush()
    # SO_LINGER 0: close() sends an RST instead of a FIN
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.rfile.close()  # the makefile() reference would keep the socket open
    handler.connection.close()


def test_reset_mid_body(server: FeedServer, fetcher: Fetcher) -> None:
    server.set_handler("/reset", reset_mid_body)
    with pytest.raises(FeedConnectError) as caught:
        fetcher.fetch(server.url("/reset"))
    assert "connection" in str(caught.value)


def test_closed_before_body_complete(server: FeedServer, fetcher: Fetcher) -> None:
    def short_body(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n<rss>")
        handler.wfile.flush()
        handler.close_connection = True

    server.set_handler("/short", short_body)
    with pytest.raises(FeedConnectError, match="closed before the body was complete"):
        fetcher.fetch(server.url("/short"))


def test_garbage_response_is_a_connect_error(server: FeedServer, fetcher: Fetcher) -> None:
    def garbage(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        handler.close_connection = True

    server.set_handler("/garbage", garbage)
    with pytest.raises(FeedConnectError):
        fetcher.fetch(server.url("/garbage"))


def test_a_server_that_closes_without_answering_says_so(server: FeedServer, fetcher: Fetcher) -> None:
    def hang_up(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True  # reads the request, answers nothing

    server.set_handler("/silent-close", hang_up)
    with pytest.raises(FeedConnectError, match=r"^server closed the connection without a response$"):
        fetcher.fetch(server.url("/silent-close"))


# --------------------------------------------------------------------------- size cap

def test_body_over_cap(server: FeedServer) -> None:
    server.set_response("/big", 200, b"x" * 5_000_000, {"Content-Type": "application/rss+xml"})
    with small_fetcher(max_body_bytes=1024 * 1024) as fetcher, \
            pytest.raises(FeedTooLarge, match="body larger than 1 MiB"):
        fetcher.fetch(server.url("/big"))


def test_body_over_cap_without_content_length(server: FeedServer) -> None:
    def chunked(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"y" * 65536
        for _ in range(40):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.write(b"0\r\n\r\n")

    server.set_handler("/chunked", chunked)
    with small_fetcher(max_body_bytes=1024 * 1024) as fetcher, pytest.raises(FeedTooLarge):
        fetcher.fetch(server.url("/chunked"))


def test_gzip_bomb_is_stopped_without_memory_blowup(server: FeedServer) -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1024 * 1024)
    bomb = b"".join(compressor.compress(block) for _ in range(100)) + compressor.flush()
    assert len(bomb) < 200_000  # 100 MiB of zeros in ~100 KB
    server.set_response("/bomb", 200, bomb, {"Content-Encoding": "gzip",
                                             "Content-Type": "application/rss+xml"})
    with small_fetcher(max_body_bytes=1024 * 1024) as fetcher:
        tracemalloc.start()
        try:
            with pytest.raises(FeedTooLarge):
                fetcher.fetch(server.url("/bomb"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes while decoding a bomb with a 1 MiB cap"


# --------------------------------------------------------------------------- time cap

def trickle(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                        b"Content-Length: 10000\r\n\r\n")
    handler.wfile.flush()
    for _ in range(10000):
        handler.wfile.write(b"<")
        handler.wfile.flush()
        if handler.server.owner.closing.wait(0.2):  # type: ignore[attr-defined]
            return


def test_trickling_body_is_cut_by_total_timeout(server: FeedServer) -> None:
    server.set_handler("/trickle", trickle)
    with small_fetcher(total_timeout=1.5) as fetcher:
        started = time.monotonic()
        with pytest.raises(FeedTimeout) as caught:
            fetcher.fetch(server.url("/trickle"))
        elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 2.0
    assert str(caught.value) == "no complete response within 1.5 s"
    assert caught.value.code == "fetch.timeout"


def test_trickling_headers_are_cut_by_total_timeout(server: FeedServer) -> None:
    def slow_headers(handler: BaseHTTPRequestHandler) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            if handler.server.owner.closing.wait(0.1):  # type: ignore[attr-defined]
                return

    server.set_handler("/slow-headers", slow_headers)
    with small_fetcher(total_timeout=1.0) as fetcher:
        started = time.monotonic()
        with pytest.raises(FeedTimeout):
            fetcher.fetch(server.url("/slow-headers"))
        assert time.monotonic() - started < 1.5


def test_concurrent_trickling_fetches_are_each_cut_at_their_own_deadline(server: FeedServer) -> None:
    """The daemon fetches in several threads: every fetch keeps its deadline, whatever the
    others (later ones with earlier deadlines included) do meanwhile."""
    from concurrent.futures import ThreadPoolExecutor

    def slow_headers(handler: BaseHTTPRequestHandler) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            if handler.server.owner.closing.wait(0.1):  # type: ignore[attr-defined]
                return

    server.set_handler("/slow-headers", slow_headers)

    def fetch(timeout: float) -> float:
        with small_fetcher(total_timeout=timeout) as fetcher:
            started = time.monotonic()
            with pytest.raises(FeedTimeout):
                fetcher.fetch(server.url("/slow-headers"))
            return time.monotonic() - started

    with ThreadPoolExecutor(4) as pool:
        slow = [pool.submit(fetch, 2.0) for _ in range(2)]
        time.sleep(0.3)
        fast = [pool.submit(fetch, 0.5)]  # later, but due first
        spans = [f.result() for f in slow + fast]
    assert all(span < 2.6 for span in spans[:2]), spans
    assert all(span < 1.1 for span in spans[2:]), spans


def test_trickling_body_without_length_is_a_timeout_not_a_short_feed(server: FeedServer) -> None:
    def close_delimited(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        for _ in range(100):
            handler.wfile.write(b"<")
            handler.wfile.flush()
            if handler.server.owner.closing.wait(0.1):  # type: ignore[attr-defined]
                return

    server.set_handler("/no-length", close_delimited)
    with small_fetcher(total_timeout=1.0) as fetcher, pytest.raises(FeedTimeout):
        fetcher.fetch(server.url("/no-length"))


def test_accept_and_never_answer_is_cut_by_total_timeout(server: FeedServer) -> None:
    server.set_handler("/hang", lambda handler: handler.server.owner.closing.wait(30))  # type: ignore[attr-defined]
    with small_fetcher(total_timeout=1.0, connect_timeout=5.0) as fetcher:
        started = time.monotonic()
        with pytest.raises(FeedTimeout):
            fetcher.fetch(server.url("/hang"))
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.5


def test_listening_socket_that_never_accepts() -> None:
    # A full backlog: connect() itself hangs (or the server never reads). Either way: a timeout.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with small_fetcher(total_timeout=1.0, connect_timeout=0.5) as fetcher:
            started = time.monotonic()
            with pytest.raises(FeedTimeout):
                fetcher.fetch(f"http://127.0.0.1:{port}/")
            assert time.monotonic() - started < 1.5


# --------------------------------------------------------------------------- redirects and schemes

def test_redirect_followed_and_final_url(server: FeedServer, fetcher: Fetcher) -> None:
    server.set_feed("/new.xml", FEED)
    server.set_redirect("/old.xml", "/moved", status=301)
    server.set_redirect("/moved", server.url("/new.xml"), status=307)
    result = fetcher.fetch(server.url("/old.xml"))
    assert result.status == 200 and result.body == FEED
    assert result.url == server.url("/new.xml")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_moved_feed_is_followed_whatever_the_redirect_status(server: FeedServer, fetcher: Fetcher,
                                                               status: int) -> None:
    """A feed moved with any of the five redirect statuses (308 is how many CDNs say "moved
    for good") is followed to its new address."""
    server.set_feed("/new.xml", FEED)
    server.set_redirect("/old.xml", server.url("/new.xml"), status=status)
    result = fetcher.fetch(server.url("/old.xml"))
    assert result.status == 200 and result.body == FEED and result.url == server.url("/new.xml")


def test_redirect_loop(server: FeedServer, fetcher: Fetcher) -> None:
    server.set_redirect("/a", "/b")
    server.set_redirect("/b", "/a")
    with pytest.raises(FeedRedirectLoop, match="redirect loop"):
        fetcher.fetch(server.url("/a"))
    assert server.hits["/a"] == 1 and server.hits["/b"] == 1


def test_exactly_max_redirects_are_followed_one_more_is_refused(server: FeedServer) -> None:
    server.set_feed("/r3", FEED)
    for i in range(3):
        server.set_redirect(f"/r{i}", f"/r{i + 1}")
    with small_fetcher(max_redirects=3) as fetcher:
        assert fetcher.fetch(server.url("/r0")).body == FEED
        server.set_redirect("/s0", "/r0")
        with pytest.raises(FeedRedirectLoop, match="more than 3 redirects"):
            fetcher.fetch(server.url("/s0"))


def test_five_redirects_are_followed_by_default_not_six(server: FeedServer, fetcher: Fetcher) -> None:
    server.set_feed("/d5", FEED)
    for i in range(5):
        server.set_redirect(f"/d{i}", f"/d{i + 1}")
    assert fetcher.fetch(server.url("/d0")).body == FEED
    server.set_redirect("/e0", "/d0")
    with pytest.raises(FeedRedirectLoop, match="more than 5 redirects"):
        fetcher.fetch(server.url("/e0"))


def test_too_many_redirects(server: FeedServer) -> None:
    for i in range(10):
        server.set_redirect(f"/r{i}", f"/r{i + 1}")
    with small_fetcher(max_redirects=3) as fetcher, \
            pytest.raises(FeedRedirectLoop, match="more than 3 redirects"):
        fetcher.fetch(server.url("/r0"))


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://example.com/feed.xml",
                                      "javascript:alert(1)", "gopher://127.0.0.1/"])
def test_redirect_to_another_scheme_is_refused(server: FeedServer, fetcher: Fetcher, location: str) -> None:
    server.set_redirect("/evil", location)
    with pytest.raises(FeedRefusedURL) as caught:
        fetcher.fetch(server.url("/evil"))
    assert caught.value.code == "fetch.refused_url"


@pytest.mark.parametrize("url", ["ftp://example.com/feed.xml", "file:///etc/passwd", "feed.xml",
                                 "javascript:alert(1)", "http://", "http://[::1/feed"])
def test_refused_urls(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(FeedRefusedURL):
        fetcher.fetch(url)


def test_fetcher_is_thread_safe(server: FeedServer, fetcher: Fetcher) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for i in range(20):
        server.set_feed(f"/f{i}.xml", rss([{"title": f"item {i}"}]))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: fetcher.fetch(server.url(f"/f{i}.xml")), range(20)))
    assert [f"item {i}".encode() in r.body for i, r in enumerate(results)] == [True] * 20


def test_every_error_is_a_fetch_error(server: FeedServer, fetcher: Fetcher) -> None:
    """No raw httpx exception escapes, whatever the server does."""
    def half_status_line(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 2")
        handler.close_connection = True

    def empty(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True

    def bad_chunk(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n")
        handler.close_connection = True

    for name, fn in [("half", half_status_line), ("empty", empty), ("badchunk", bad_chunk),
                     ("reset", reset_mid_body)]:
        server.set_handler(f"/{name}", fn)
        with pytest.raises(FetchError) as caught:
            fetcher.fetch(server.url(f"/{name}"))
        assert type(caught.value).__module__ == "monitor.errors", name
        assert len(str(caught.value)) < 200


# --------------------------------------------------------------------------- backoff

def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, 300.0, cap=6 * 3600, rng=rng) for n in range(1, 20)]
    for n, delay in enumerate(delays, start=1):
        base = min(6 * 3600, 300.0 * 2 ** (n - 1))
        assert max(300.0, base / 2) <= delay <= max(300.0, base)
    assert delays[0] == 300.0  # the first failure: the normal interval
    assert all(d <= 6 * 3600 for d in delays)
    assert delays[-1] >= 3 * 3600  # near the cap after many failures
    # the lower bound grows: the minimum over many draws is monotonic in n
    lows = [min(backoff_delay(n, 60.0, rng=random.Random(s)) for s in range(50)) for n in range(1, 9)]
    assert lows == sorted(lows)


def test_backoff_never_below_interval_and_huge_counts() -> None:
    rng = random.Random(1)
    for n in (1, 2, 3, 10, 10_000):
        assert backoff_delay(n, 900.0, rng=rng) >= 900.0
    assert backoff_delay(10_000, 60.0, cap=3600, rng=rng) <= 3600
    assert backoff_delay(5, 7200.0, cap=3600, rng=rng) == 7200.0  # interval above the cap wins


def test_backoff_honours_retry_after() -> None:
    rng = random.Random(3)
    assert backoff_delay(1, 60.0, retry_after=1800.0, rng=rng) == 1800.0
    assert backoff_delay(2, 60.0, retry_after=5.0, rng=rng) >= 60.0
    # a hostile Retry-After of a year is limited to the cap
    assert backoff_delay(1, 60.0, retry_after=365 * 86400.0, cap=6 * 3600, rng=rng) == 6 * 3600
    assert backoff_delay(1, 60.0, retry_after=365 * 86400.0, rng=rng) == 6 * 3600  # the default cap


def test_backoff_seeded_rng_is_reproducible() -> None:
    first = [backoff_delay(n, 120.0, rng=random.Random(42)) for n in range(1, 8)]
    second = [backoff_delay(n, 120.0, rng=random.Random(42)) for n in range(1, 8)]
    assert first == second
    assert backoff_delay(0, 300.0, rng=random.Random(1)) == jittered(300.0, random.Random(1))


def test_jittered_within_ten_percent() -> None:
    rng = random.Random(5)
    values = [jittered(300.0, rng) for _ in range(1000)]
    assert all(270.0 <= v <= 330.0 for v in values)
    assert max(values) - min(values) > 40  # it does spread
