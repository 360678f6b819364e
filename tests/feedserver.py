"""A real HTTP server on 127.0.0.1 that serves feeds to tests, with hostile options.

    from feedserver import FeedServer, rss   # tests/ is on sys.path (no __init__.py)

    with FeedServer() as server:
        server.set_feed("/news.xml", rss([{"title": "Truce talks resume", "link": "https://e.x/1"}]))
        url = server.url("/news.xml")          # http://127.0.0.1:<port>/news.xml
        ...                                    # fetch it
        assert server.hits["/news.xml"] == 1

Routes are matched on the path without the query string. ``set_feed`` serves a body with
an ETag and a Last-Modified and answers 304 to a matching If-None-Match /
If-Modified-Since; ``set_response`` serves any status, headers and body;
``set_redirect`` answers with a redirect; ``set_handler`` hands the raw
``BaseHTTPRequestHandler`` to a function for anything hostile (trickle, hang, reset).
Hostile handlers that wait should wait on ``server.closing`` so that ``close`` ends them.
Routes can be replaced at any time (the feed "changes"). Every request counts in
``server.hits[path]`` (404s included) and is appended to ``server.requests`` as
``(path, headers)``. Errors of handlers when clients disconnect are silent.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from xml.sax.saxutils import escape

Handler = Callable[[BaseHTTPRequestHandler], None]

RSS_TYPE = "application/rss+xml; charset=utf-8"
DEFAULT_LAST_MODIFIED = "Thu, 08 Aug 2024 19:20:58 GMT"


@dataclass
class _Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    conditional: bool = False  # honour If-None-Match / If-Modified-Since
    handler: Handler | None = None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the default 5 drops SYNs (1 s retransmits) under concurrent tests
    owner: FeedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-answer (size caps, timeouts) are what the tests do on purpose.
        pass


class _RequestHandler(BaseHTTPRequestHandler):
    server: _QuietServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def _serve(self, *, send_body: bool) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        with owner.lock:
            owner.hits[path] += 1
            owner.requests.append((path, dict(self.headers.items())))
            route = owner.routes.get(path)
        if route is None:
            self._answer(404, b"not found\n", {"Content-Type": "text/plain"}, send_body)
            return
        if route.handler is not None:
            route.handler(self)
            return
        if route.conditional and route.status == 200 and self._not_modified(route.headers):
            headers = {k: v for k, v in route.headers.items() if k.lower() in ("etag", "last-modified")}
            self._answer(304, b"", headers, send_body=False)
            return
        self._answer(route.status, route.body, route.headers, send_body)

    def _not_modified(self, headers: Mapping[str, str]) -> bool:
        etag = headers.get("ETag")
        sent_etag = self.headers.get("If-None-Match")
        if sent_etag is not None:  # RFC 9110 13.1.3: If-None-Match wins over If-Modified-Since
            return etag is not None and etag in [t.strip() for t in sent_etag.split(",")]
        modified = headers.get("Last-Modified")
        since = self.headers.get("If-Modified-Since")
        if modified and since:
            try:
                return parsedate_to_datetime(modified) <= parsedate_to_datetime(since)
            except (TypeError, ValueError):
                return False
        return False

    def _answer(self, status: int, body: bytes, headers: Mapping[str, str], send_body: bool) -> None:
        self.send_response(status)
        names = {k.lower() for k in headers}
        for name, value in headers.items():
            self.send_header(name, value)
        if "content-length" not in names and status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body and status not in (204, 304):
            self.wfile.write(body)


class FeedServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 (a free port) whose routes the test sets."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.routes: dict[str, _Route] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.closing = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), _RequestHandler)
        self._server.owner = self
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"feedserver-{self.port}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ lifecycle

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.port}{path if path.startswith('/') else '/' + path}"

    def close(self) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ routes

    def set_feed(self, path: str, body: bytes, content_type: str = RSS_TYPE, *, etag: bool | str = True,
                 last_modified: bool | str = True, headers: Mapping[str, str] | None = None) -> None:
        """Serve ``body`` at ``path`` with 200, answering 304 to matching conditional requests.

        ``etag=True`` derives a quoted ETag from the body; a string is used as given; False
        sends none. ``last_modified`` likewise (True: a fixed date in 2024).
        """
        route_headers = {"Content-Type": content_type}
        if etag:
            route_headers["ETag"] = etag if isinstance(etag, str) else \
                '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if last_modified:
            route_headers["Last-Modified"] = last_modified if isinstance(last_modified, str) \
                else DEFAULT_LAST_MODIFIED
        route_headers.update(headers or {})
        self._set(path, _Route(200, body, route_headers, conditional=True))

    def set_response(self, path: str, status: int, body: bytes = b"",
                     headers: Mapping[str, str] | None = None) -> None:
        """Serve exactly this status, headers and body at ``path`` (e.g. 503 with Retry-After)."""
        self._set(path, _Route(status, body, dict(headers or {})))

    def set_redirect(self, path: str, location: str, status: int = 302) -> None:
        """Redirect ``path`` to ``location`` (absolute, relative, or another scheme)."""
        self._set(path, _Route(status, b"", {"Location": location}))

    def set_handler(self, path: str, fn: Handler) -> None:
        """Let ``fn(handler)`` answer requests for ``path`` itself: write to ``handler.wfile``,
        read ``handler.headers``, close ``handler.connection``... Exceptions are swallowed."""
        self._set(path, _Route(handler=fn))

    def remove(self, path: str) -> None:
        with self.lock:
            self.routes.pop(path, None)

    def _set(self, path: str, route: _Route) -> None:
        with self.lock:
            self.routes[path] = route


# --------------------------------------------------------------------------- documents

def rss(items: Iterable[Mapping[str, Any]], *, title: str = "Test feed",
        link: str = "https://example.com/", description: str = "A feed for tests") -> bytes:
    """An RSS 2.0 document (UTF-8 bytes) with one ``<item>`` per dict.

    Keys, all optional: ``title``, ``link``, ``summary`` (a string that may hold HTML; it is
    escaped as feeds do), ``published`` (a ``datetime``; naive means UTC; or a preformatted
    string), ``guid`` (``isPermaLink="false"``), ``extra`` (raw XML inserted into the item).
    """
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0">\n<channel>\n',
             f"<title>{escape(title)}</title>\n<link>{escape(link)}</link>\n",
             f"<description>{escape(description)}</description>\n"]
    for item in items:
        parts.append("<item>\n")
        if item.get("title") is not None:
            parts.append(f"<title>{escape(str(item['title']))}</title>\n")
        if item.get("link") is not None:
            parts.append(f"<link>{escape(str(item['link']))}</link>\n")
        if item.get("summary") is not None:
            parts.append(f"<description>{escape(str(item['summary']))}</description>\n")
        if item.get("guid") is not None:
            parts.append(f'<guid isPermaLink="false">{escape(str(item["guid"]))}</guid>\n')
        published = item.get("published")
        if isinstance(published, datetime):
            if published.tzinfo is None:
                published = published.replace(tzinfo=UTC)
            parts.append(f"<pubDate>{format_datetime(published.astimezone(UTC), usegmt=True)}</pubDate>\n")
        elif published is not None:
            parts.append(f"<pubDate>{escape(str(published))}</pubDate>\n")
        if item.get("extra"):
            parts.append(str(item["extra"]) + "\n")
        parts.append("</item>\n")
    parts.append("</channel>\n</rss>\n")
    return "".join(parts).encode("utf-8")
