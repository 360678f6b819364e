"""The feed farm: real news items written out as RSS 2.0 and Atom files, and nginx serving them.

In: the real items of ``../shared/data/news/`` (the 22,898-item stream, then ``items.jsonl``).
Out: ``<out>/farm/f0000.xml ...`` (N feeds), a ``urls.txt`` list, and an nginx on 127.0.0.1
that answers conditional GETs itself (ETag and Last-Modified from the file).

Feeds look like the outlets' own: items of one outlet, newest first, ``<guid>``, RFC 822
``<pubDate>``, HTML-escaped ``<description>`` as the outlet published it, ``dc:creator`` and
``media:thumbnail``. One feed in five is Atom.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "news"
if not DATA.exists():  # a checkout elsewhere: /work/shared
    DATA = Path("/work/shared/data/news")
STREAM = DATA / "stream_2023-10-07_2023-12-31_7outlets.jsonl.gz"
ITEMS = DATA / "items.jsonl"


def load_items() -> tuple[list[dict], list[dict]]:
    """(the stream, the other real items); each sorted by outlet, then date."""
    with gzip.open(STREAM, "rt", encoding="utf-8") as handle:
        stream = [json.loads(line) for line in handle]
    with ITEMS.open(encoding="utf-8") as handle:
        others = [json.loads(line) for line in handle]
    key = lambda item: (item["source"], item.get("published") or "")  # noqa: E731
    return sorted(stream, key=key), sorted(others, key=key)


def _when(item: dict) -> datetime:
    value = item.get("published")
    if value:
        try:
            moment = datetime.fromisoformat(value)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime(2023, 10, 7, tzinfo=UTC)


def rss(title: str, items: list[dict]) -> str:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:media="http://search.yahoo.com/mrss/" xmlns:atom="http://www.w3.org/2005/Atom">\n'
        f"<channel><title>{escape(title)}</title><link>https://example.org/</link>\n"
        f"<description>{escape(title)} (benchmark farm)</description><language>en</language>\n"
    ]
    for item in items:
        link = item.get("link") or ""
        parts.append(
            "<item>"
            f"<title>{escape(item.get('title') or '')}</title>"
            f"<link>{escape(link)}</link>"
            f'<guid isPermaLink="false">{escape(item["guid"])}</guid>'
            f"<description>{escape(item.get('summary') or '')}</description>"
            f"<pubDate>{format_datetime(_when(item))}</pubDate>"
            f"<dc:creator>{escape(item.get('source') or '')}</dc:creator>"
            f'<media:thumbnail width="240" height="135" url="https://example.org/img/'
            f'{hashlib.sha1(link.encode()).hexdigest()[:10]}.jpg"/>'
            "</item>\n")
    parts.append("</channel></rss>\n")
    return "".join(parts)


def atom(title: str, items: list[dict]) -> str:
    updated = max((_when(i) for i in items), default=datetime(2023, 10, 7, tzinfo=UTC))
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n'
        f"<title>{escape(title)}</title><id>urn:bench:{escape(title)}</id>"
        f'<link href="https://example.org/"/><updated>{updated.isoformat()}</updated>\n'
    ]
    for item in items:
        parts.append(
            "<entry>"
            f"<title>{escape(item.get('title') or '')}</title>"
            f'<link rel="alternate" href="{escape(item.get("link") or "", {chr(34): "&quot;"})}"/>'
            f"<id>{escape(item['guid'])}</id>"
            f"<updated>{_when(item).isoformat()}</updated>"
            f'<summary type="html">{escape(item.get("summary") or "")}</summary>'
            f"<author><name>{escape(item.get('source') or '')}</name></author>"
            "</entry>\n")
    parts.append("</feed>\n")
    return "".join(parts)


@dataclass
class Farm:
    root: Path
    feeds: list[list[dict]]  # the items of each feed, newest first
    spare: list[dict]  # real items not in any feed, for update cycles

    @property
    def count(self) -> int:
        return len(self.feeds)

    @property
    def items(self) -> int:
        return sum(len(f) for f in self.feeds)

    def path(self, index: int) -> Path:
        return self.root / f"f{index:04d}.xml"

    def write(self, index: int) -> None:
        items = self.feeds[index]
        name = f"farm feed {index:04d} ({items[0]['source'] if items else 'empty'})"
        text = atom(name, items) if index % 5 == 4 else rss(name, items)
        tmp = self.path(index).with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path(index))  # nginx serves the old or the new file, never half

    def add_items(self, index: int, items: list[dict]) -> None:
        self.feeds[index] = items + self.feeds[index]
        self.write(index)


def build(root: Path, feeds: int, per_feed: int = 50, *, stream_only: bool = False) -> Farm:
    """``feeds`` feeds of ``per_feed`` items each (``stream_only``: the whole stream spread over
    ``feeds`` feeds). When the real items run out they are used again in further feeds, with
    their own guid and the same link: the same article in several feeds, as outlets do."""
    stream, others = load_items()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    if stream_only:
        pool, spare = stream, others
    else:
        pool, spare = stream + others, others[::-1]
    chunks: list[list[dict]] = []
    cursor = 0
    for index in range(feeds):
        size = (len(pool) * (index + 1) // feeds - len(pool) * index // feeds) if stream_only else per_feed
        chunk = []
        for _ in range(size):
            item = dict(pool[cursor % len(pool)])
            item["guid"] = f"{item['id']}/{cursor // len(pool)}" if cursor >= len(pool) else item["id"]
            chunk.append(item)
            cursor += 1
        chunk.sort(key=_when, reverse=True)
        chunks.append(chunk)
    # Spare items for update cycles: news of the talks and releases, which the storylines alert on.
    spare = [i for i in spare if i.get("kw_hint", "").startswith(("talks", "release")) and i.get("link")]
    farm = Farm(root, chunks, [dict(i, guid=f"spare-{i['id']}") for i in spare])
    for index in range(feeds):
        farm.write(index)
    (root.parent / "urls.txt").write_text("", encoding="utf-8")
    return farm


# --------------------------------------------------------------------------- nginx

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
user root;
pid {out}/nginx.pid;
error_log {out}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {out}/nginx-tmp;
    proxy_temp_path {out}/nginx-tmp;
    fastcgi_temp_path {out}/nginx-tmp;
    uwsgi_temp_path {out}/nginx-tmp;
    scgi_temp_path {out}/nginx-tmp;
    types {{ application/rss+xml xml; }}
    sendfile on;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        etag on;
        if_modified_since exact;
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Nginx:
    """nginx serving ``root`` on 127.0.0.1 (one worker: the other core is the client's)."""

    def __init__(self, root: Path, out: Path) -> None:
        self.root, self.out = root, out
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.port}/f{index:04d}.xml"

    def __enter__(self) -> Nginx:
        (self.out / "nginx-tmp").mkdir(parents=True, exist_ok=True)
        conf = self.out / "nginx.conf"
        conf.write_text(NGINX_CONF.format(out=self.out, port=self.port, root=self.root))
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen([binary, "-c", str(conf), "-p", str(self.out)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not start; see {self.out / 'nginx-error.log'}")

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
