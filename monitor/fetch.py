"""Fetch: a feed URL (and the ETag / Last-Modified we remember) in, a ``FetchResult`` out.

One ``Fetcher`` wraps one sync ``httpx.Client`` and is shared by the orchestrator's
thread pool (``fetch`` is thread-safe). Each fetch:

* accepts only http/https URLs, also for every redirect target (``FeedRefusedURL``);
* sends a conditional GET (If-None-Match / If-Modified-Since); a 304 gives
  ``FetchResult(status=304, body=b"")`` with the validators we sent unless the server
  sent new ones;
* follows at most ``max_redirects`` redirects itself; a loop or too many hops raise
  ``FeedRedirectLoop``; ``FetchResult.url`` is the final URL;
* decompresses gzip/deflate itself, in pieces of at most 64 KiB, and stops as soon as the
  decoded body exceeds ``max_body_bytes`` (``FeedTooLarge``): a gzip bomb never costs more
  than about the cap in memory;
* is cut at ``total_timeout`` of wall time (``FeedTimeout``): every connect/read/write
  waits at most the time left, and a watchdog timer shuts the socket down at the
  deadline, so neither a server that never answers nor one that trickles a byte a
  second (headers or body) can hold a worker longer. The DNS lookup is the one step no
  timeout covers (it is the system resolver's);
* turns every failure into a ``FetchError`` subclass (see ``monitor.errors``) with a short
  human message. No httpx exception escapes; the original is kept as ``__cause__``.

``backoff_delay`` and ``jittered`` compute when to poll next.
"""

from __future__ import annotations

import email.utils
import functools
import heapq
import logging
import math
import os
import random
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

import httpx

from .errors import (
    FeedConnectError,
    FeedHTTPStatus,
    FeedRedirectLoop,
    FeedRefusedURL,
    FeedTimeout,
    FeedTooLarge,
    FetchError,
)
from .models import FetchResult

log = logging.getLogger(__name__)

ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
ACCEPT_ENCODING = "gzip, deflate"
_SCHEMES = ("http", "https")
_REDIRECTS = (301, 302, 303, 307, 308)
_PIECE = 64 * 1024  # largest piece of decoded body produced at once


class Fetcher:
    """Fetches feeds over one shared ``httpx.Client``. Thread-safe; close it when done.

    >>> with Fetcher(user_agent="ceasefire-monitor/0.1") as fetcher:  # doctest: +SKIP
    ...     result = fetcher.fetch("https://feeds.bbci.co.uk/news/rss.xml", etag='"abc"')
    """

    def __init__(self, *, user_agent: str, max_body_bytes: int = 10 * 1024 * 1024,
                 total_timeout: float = 30.0, connect_timeout: float = 10.0,
                 max_redirects: int = 5, trust_env: bool = True) -> None:
        self.user_agent = user_agent
        self.max_body_bytes = max_body_bytes
        self.total_timeout = total_timeout
        self.connect_timeout = connect_timeout
        self.max_redirects = max_redirects
        self._client = httpx.Client(
            headers={"User-Agent": user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING},
            timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
            follow_redirects=False,
            # No keep-alive: feeds are polled minutes apart, and a fresh connection per request
            # lets the watchdog see every socket (see _Watchdog).
            limits=httpx.Limits(max_keepalive_connections=0),
            trust_env=trust_env,
        )

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ fetching

    def fetch(self, url: str, *, etag: str | None = None,
              last_modified: str | None = None) -> FetchResult:
        """GET ``url``: a 200 ``FetchResult`` with the body, or a 304 one without.

        Raises a ``FetchError`` subclass for anything else: ``FeedRefusedURL``,
        ``FeedTimeout``, ``FeedConnectError``, ``FeedTooLarge``, ``FeedHTTPStatus``
        (``.status``, and ``.retry_after`` in seconds on 429/503), ``FeedRedirectLoop``.
        """
        started = time.monotonic()
        deadline = started + self.total_timeout
        watch = _Watchdog(deadline)
        try:
            result = self._fetch(url, etag, last_modified, started, deadline, watch)
        except FetchError:
            raise
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError, UnicodeError,
                zlib.error) as error:
            raise self._translate(error, deadline, watch.fired) from error
        finally:
            watch.stop()
        log.debug("fetched %s: HTTP %d, %d bytes in %.3f s", url, result.status, len(result.body),
                  result.elapsed, extra={"feed_url": url})
        return result

    def _fetch(self, url: str, etag: str | None, last_modified: str | None, started: float,
               deadline: float, watch: _Watchdog) -> FetchResult:
        current = _http_url(url)
        visited = {str(current)}
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        for _ in range(self.max_redirects + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FeedTimeout(self._timeout_message())
            timeout = httpx.Timeout(remaining, connect=min(self.connect_timeout, remaining))
            request = self._client.build_request("GET", current, headers=headers, timeout=timeout,
                                                 extensions={"trace": watch.trace})
            response = self._client.send(request, stream=True, follow_redirects=False)
            watch.attach(response.extensions.get("network_stream"))
            try:
                status = response.status_code
                if status in _REDIRECTS and response.headers.get("location"):
                    target = _redirect_target(current, response.headers["location"])
                    if str(target) in visited:
                        raise FeedRedirectLoop(f"redirect loop at {_shorten(str(target))}")
                    visited.add(str(target))
                    current = target
                    continue
                if status == 304:
                    return FetchResult(
                        url=str(current), status=304, body=b"",
                        etag=response.headers.get("etag") or etag,
                        last_modified=response.headers.get("last-modified") or last_modified,
                        content_type=response.headers.get("content-type"),
                        content_location=response.headers.get("content-location"),
                        elapsed=time.monotonic() - started,
                    )
                if not 200 <= status < 300:
                    raise _status_error(response)
                body = self._read_body(response, deadline)
                if watch.fired:  # a body without a length "ends" when the watchdog cuts it
                    raise FeedTimeout(self._timeout_message())
                return FetchResult(
                    url=str(current), status=status, body=body,
                    etag=response.headers.get("etag"),
                    last_modified=response.headers.get("last-modified"),
                    content_type=response.headers.get("content-type"),
                    content_location=response.headers.get("content-location"),
                    elapsed=time.monotonic() - started,
                )
            finally:
                watch.detach()
                response.close()
        raise FeedRedirectLoop(f"more than {self.max_redirects} redirects")

    def _read_body(self, response: httpx.Response, deadline: float) -> bytes:
        cap = self.max_body_bytes
        encodings = [e.strip().lower() for e in response.headers.get("content-encoding", "").split(",")]
        encodings = [e for e in encodings if e and e != "identity"]
        length = response.headers.get("content-length", "")
        if not encodings and length.isdigit() and int(length) > cap:
            raise FeedTooLarge(f"body larger than {_size(cap)}")
        decoder = _Decoder(encodings)
        body = bytearray()
        for raw in response.iter_raw():
            if time.monotonic() >= deadline:
                raise FeedTimeout(self._timeout_message())
            for piece in decoder.decode(raw):
                body += piece
                if len(body) > cap:
                    raise FeedTooLarge(f"body larger than {_size(cap)}")
        return bytes(body)

    def _timeout_message(self) -> str:
        return f"no complete response within {self.total_timeout:g} s"

    def _translate(self, error: Exception, deadline: float, watchdog_fired: bool) -> FetchError:
        """Our error for a failure of httpx, the socket or the decoder."""
        text = str(error).lower()
        if watchdog_fired or time.monotonic() >= deadline:
            return FeedTimeout(self._timeout_message())
        if isinstance(error, httpx.ConnectTimeout):
            return FeedTimeout(f"could not connect within {self.connect_timeout:g} s")
        if isinstance(error, httpx.TimeoutException):
            return FeedTimeout(f"no response within {self.total_timeout:g} s")
        if isinstance(error, httpx.UnsupportedProtocol | httpx.InvalidURL | UnicodeError):
            return FeedRefusedURL(f"invalid or unsupported URL: {_shorten(str(error), 80)}")
        if isinstance(error, zlib.error):
            return FeedConnectError("corrupt compressed body")
        if isinstance(error, httpx.ConnectError):
            if "refused" in text:
                return FeedConnectError("connection refused")
            if any(s in text for s in ("name or service", "nodename", "getaddrinfo", "name resolution",
                                       "no address", "temporary failure in name")):
                return FeedConnectError(f"DNS lookup failed for {_host_of(error)} "
                                        "(no network, or no such host)")
            if "ssl" in text or "certificate" in text or "tls" in text:
                return FeedConnectError(f"TLS error: {_shorten(str(error), 120)}")
            return FeedConnectError(f"cannot connect: {_shorten(str(error), 120)}")
        if isinstance(error, httpx.RemoteProtocolError):
            if "peer closed" in text or "incomplete" in text:
                return FeedConnectError("connection closed before the body was complete")
            if "without sending" in text or "disconnected" in text:
                return FeedConnectError("server closed the connection without a response")
            return FeedConnectError(f"HTTP protocol error: {_shorten(str(error), 120)}")
        if "reset" in text:
            return FeedConnectError("connection reset")
        return FeedConnectError(f"network error: {_shorten(str(error) or type(error).__name__, 120)}")


# --------------------------------------------------------------------------- helpers

class _Watchdog:
    """Shuts the socket of the fetch in flight down at the deadline.

    httpx's timeouts apply to each read, so a server sending a byte now and then (in the
    headers or the body) never trips them; shutting the socket down wakes the blocked read.
    The socket is learnt from httpcore's ``trace`` extension when the connection is made
    (keep-alive is off, so every request makes one) and from the response's
    ``network_stream``. ``detach``/``stop`` run before a connection is released, so a late
    timer never touches a socket that someone else uses.
    """

    def __init__(self, deadline: float) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._done = False
        self.fired = False
        _alarms.add(deadline, self)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self.attach(info.get("return_value"))

    def attach(self, stream: Any) -> None:
        try:
            sock = stream.get_extra_info("socket") if stream is not None else None
        except Exception:  # a transport without a socket
            sock = None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            if self._done:
                return
            self._socket = sock
            if self.fired:  # the deadline passed while connecting
                _shutdown(sock)

    def detach(self) -> None:
        with self._lock:
            self._socket = None

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            if self._socket is not None:
                _shutdown(self._socket)

    def stop(self) -> None:
        with self._lock:
            self._done = True
            self._socket = None


class _Alarms:
    """One thread for the deadlines of all fetches (a timer thread per fetch cost 0.5 ms to
    start: 0.1 s of a 200-feed cycle of 304s). A heap of deadlines; stopped watchdogs stay
    in it until their deadline passes and are skipped then."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watchdog]] = []
        self._count = 0
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, deadline: float, watchdog: _Watchdog) -> None:
        with self._cond:
            if self._thread is None or self._pid != os.getpid():  # none yet, or forked
                self._heap.clear()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="fetch-watchdog",
                                                daemon=True)
                self._thread.start()
            self._count += 1
            heapq.heappush(self._heap, (deadline, self._count, watchdog))
            if self._heap[0][2] is watchdog:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _deadline, _n, watchdog = heapq.heappop(self._heap)
            watchdog._fire()


_alarms = _Alarms()


def _shutdown(sock: socket.socket) -> None:
    try:  # the base class method: never touch an SSLSocket's state from another thread
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Decoder:
    """Decodes a gzip/deflate body in bounded pieces (``Accept-Encoding: gzip, deflate``)."""

    def __init__(self, encodings: list[str]) -> None:
        if len(encodings) > 1:
            raise FeedConnectError(f"unsupported Content-Encoding: {', '.join(encodings)}")
        self.kind = encodings[0] if encodings else "identity"
        if self.kind in ("gzip", "x-gzip"):
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.kind == "deflate":
            self._obj = zlib.decompressobj()
            self._first = True
        elif self.kind != "identity":
            raise FeedConnectError(f"unsupported Content-Encoding: {self.kind}")

    def decode(self, data: bytes) -> Iterator[bytes]:
        if self.kind == "identity":
            if data:
                yield data
            return
        if self.kind == "deflate" and self._first and data:
            self._first = False
            try:  # "deflate" should be zlib-wrapped; some servers send raw deflate
                zlib.decompressobj().decompress(data[:2])
            except zlib.error:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        while data:
            piece = self._obj.decompress(data, _PIECE)
            if piece:
                yield piece
            data = self._obj.unconsumed_tail
            if self._obj.eof:
                rest = self._obj.unused_data.lstrip(b"\0")
                if self.kind == "deflate" or not rest:
                    return
                self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)  # another gzip member
                data = rest


@functools.lru_cache(maxsize=4096)  # the same feed URLs every cycle; httpx.URL is immutable
def _http_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, UnicodeError) as error:
        raise FeedRefusedURL(f"invalid URL: {_shorten(str(error), 80)}") from error
    if parsed.scheme not in _SCHEMES:
        raise FeedRefusedURL(f"only http and https URLs are fetched, not {parsed.scheme or 'no'} scheme")
    if not parsed.host:
        raise FeedRefusedURL("URL has no host")
    return parsed


def _redirect_target(current: httpx.URL, location: str) -> httpx.URL:
    try:
        target = current.join(location.strip())
    except (httpx.InvalidURL, UnicodeError) as error:
        raise FeedRefusedURL(f"redirect to an invalid URL: {_shorten(location, 80)}") from error
    if target.scheme not in _SCHEMES:
        raise FeedRefusedURL(f"redirect to a {target.scheme or 'schemeless'}: URL refused")
    if not target.host:
        raise FeedRefusedURL("redirect to a URL without a host")
    return target


def _status_error(response: httpx.Response) -> FeedHTTPStatus:
    status = response.status_code
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
    message = f"HTTP {status} {phrase}".rstrip()
    return FeedHTTPStatus(message, status=status, retry_after=retry_after)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date), else None.

    >>> parse_retry_after("120")
    120.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT",
    ...                   now=datetime(2015, 10, 21, 7, 27, tzinfo=UTC))
    60.0
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(consecutive_errors: int, interval: float, *, retry_after: float | None = None,
                  cap: float = 6 * 3600, rng: random.Random | None = None) -> float:
    """Seconds before the next poll of a feed that failed ``consecutive_errors`` times in a row.

    "Equal jitter" on an exponential base: with ``base = min(cap, interval * 2**(n-1))`` the
    delay is uniform in ``[base/2, base]``, then raised to at least ``interval`` (a failing
    feed is never polled more often than a healthy one) and to at least ``retry_after``.
    ``retry_after`` is honoured only up to ``cap``: ``cap`` is the longest silence we accept
    (a hostile ``Retry-After: 31536000`` must not stop a feed for a year). When ``interval``
    itself exceeds ``cap``, the result is ``interval``. ``consecutive_errors < 1`` gives the
    normal ``jittered(interval)``.

    >>> backoff_delay(1, 300.0, rng=random.Random(1))
    300.0
    >>> 600.0 <= backoff_delay(3, 300.0, rng=random.Random(1)) <= 1200.0
    True
    """
    if consecutive_errors < 1:
        return jittered(interval, rng)
    exponent = min(consecutive_errors - 1, 64)
    base = min(cap, interval * math.pow(2.0, exponent))
    delay = (rng.uniform if rng is not None else random.uniform)(base / 2.0, base)
    delay = max(delay, interval)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, cap))
    return delay


def jittered(interval: float, rng: random.Random | None = None) -> float:
    """``interval`` ±10%, so feeds added together do not stay in lock-step."""
    return interval * (rng.uniform if rng is not None else random.uniform)(0.9, 1.1)


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor:
            value = n / factor
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _host_of(error: httpx.RequestError) -> str:
    try:
        return error.request.url.host
    except RuntimeError:  # httpx raises when the error carries no request
        return "the host"
