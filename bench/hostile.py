"""The cost of one poll of a hostile body: ``monitor run --once`` on one feed that serves ~10 MB
of something that is not a feed (plain text, an HTML page, tag soup, binary, JSON, XML that is
not RSS or Atom), next to a real feed, each in a process of its own with a new database.

For each: the CPU time (user + system, ``wait4``'s rusage of that one child), the peak RSS of the
monitor's process (its own ``VmHWM`` as it exits: rusage's ``ru_maxrss`` would count the pages of
this process, which built the body, at the fork) and the error it recorded on the feed.

    python bench/hostile.py               # every body, 10 MB
    python bench/hostile.py --size 4      # 4 MB bodies
    python bench/hostile.py --only text html
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
REAL_FEED = HERE.parent / "tests" / "data" / "feeds" / "bbc_news_frontpage_2024-08-08.xml"
_WORDS = ("truce talks in Cairo hostages released Gaza ceasefire mediators Qatar Egypt the of and "
          "a to delegation negotiations aid convoy crossing Rafah").split()


def _text(size: int, rng: random.Random) -> bytes:
    lines = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 16))) + ".\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def _repeat(unit: bytes, size: int, head: bytes = b"", tail: bytes = b"") -> bytes:
    return head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail


_RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
_END = b"</channel></rss>"

def _big_real_feed(size: int, rng: random.Random) -> bytes:
    """The real feed's items copied until ``size``, each copy with its own guid, link and title."""
    body = REAL_FEED.read_bytes()
    start, end = body.index(b"<item>"), body.rindex(b"</item>") + len(b"</item>")
    items, copies = body[start:end], []
    for n in range(max(1, size // (end - start))):
        copies.append(items.replace(b"</guid>", b"-%d</guid>" % n).replace(b"</title>", b" %d</title>" % n)
                      .replace(b"</link>", b"?copy=%d</link>" % n))
    return body[:start] + b"".join(copies) + body[end:]


BODIES: dict[str, tuple[str, Callable[[int, random.Random], bytes]]] = {
    "real feed": ("application/rss+xml", lambda size, rng: REAL_FEED.read_bytes()),
    "real items": ("application/rss+xml", _big_real_feed),
    "text": ("text/plain", _text),
    "text as xml": ("application/rss+xml", _text),
    "html": ("text/html", lambda size, rng: _repeat(
        b"<div class='c'><p>Truce talks in <b>Cairo</b> &amp; hostages</p></div>\n", size,
        b"<!doctype html><html><body>", b"</body></html>")),
    "html as rss": ("application/rss+xml", lambda size, rng: _repeat(
        b"<div class='c'><p>Truce talks in <b>Cairo</b> &amp; hostages</p></div>\n", size,
        b"<html><body>", b"</body></html>")),
    "tag soup": ("application/rss+xml", lambda size, rng: _repeat(b"<x>", size)),
    "binary": ("application/octet-stream", lambda size, rng: rng.randbytes(size)),
    "json": ("application/json", lambda size, rng: json.dumps(
        [{"title": "Truce talks", "n": n} for n in range(size // 30)]).encode()[:size]),
    "xml, not a feed": ("application/xml", lambda size, rng: _repeat(
        b"<url><loc>https://example.org/a</loc></url>\n", size,
        b'<?xml version="1.0"?><urlset>', b"</urlset>")),
    "rss head, text": ("application/rss+xml", lambda size, rng: _RSS + b"<item><title>"
                       + _text(size, rng)),
    "rss, error then text": ("application/rss+xml", lambda size, rng: _RSS + b"<item><title>A & B"
                             + _text(size, rng) + b"</title></item>" + _END),
    "rss, huge title": ("application/rss+xml", lambda size, rng: _RSS + b"<item><title>"
                        + _text(size, rng) + b"</title><dc:date>x</dc:date></item>" + _END),
    "rss, tag soup": ("application/rss+xml", lambda size, rng: _repeat(b"<x>", size, _RSS)),
    "rss, flat markup": ("application/rss+xml", lambda size, rng: _repeat(b"<x/>", size, _RSS, _END)),
    "rss, deep markup": ("application/rss+xml", lambda size, rng: _RSS + b"<x>" * (size // 7)
                         + b"</x>" * (size // 7) + _END),
    "rss, markup in title": ("application/rss+xml", lambda size, rng: _repeat(
        b"<b>x</b>", size, _RSS + b"<item><title>", b"</title></item>" + _END)),
    "rss, error then markup": ("application/rss+xml", lambda size, rng: _repeat(
        b"<b>x</b>", size, _RSS + b"<item><title>A & B", b"</title></item>" + _END)),
    "rss, tiny items": ("application/rss+xml", lambda size, rng: _repeat(
        b"<item><title>x</title></item>", size, _RSS, _END)),
}


# `monitor ARGS...` that writes its peak RSS (kB) to the file given first, as it exits.
_PEAK = """
import atexit, sys
from pathlib import Path

def peak():
    status = Path("/proc/self/status").read_text()
    kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    Path(out).write_text(kb)

out = sys.argv.pop(1)
atexit.register(peak)
from monitor.cli import main
main()
"""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    body = b""
    content_type = ""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", self.server.content_type)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def measure(kind: str, size: int, work: Path) -> dict[str, object]:
    content_type, make = BODIES[kind]
    server = _Server(("127.0.0.1", 0), _Handler)
    server.body, server.content_type = make(size, random.Random(1)), content_type
    threading.Thread(target=server.serve_forever, daemon=True).start()
    database = work / f"{kind.replace(' ', '_').replace(',', '')}.db"
    config = work / "monitor.toml"
    config.write_text(f'[monitor]\ndatabase = "{database}"\n\n[[feeds]]\nname = "hostile"\n'
                      f'url = "http://127.0.0.1:{server.server_address[1]}/feed"\n\n'
                      '[[storylines]]\nid = "truce"\nall = [["truce", "ceasefire"], ["talks"]]\n')
    peak_file = work / "peak"
    process = subprocess.Popen([sys.executable, "-c", _PEAK, str(peak_file), "--config", str(config),
                                "run", "--once"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               cwd=work)  # not this folder: python -c would import ./monitor first
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    peak_kb = int(peak_file.read_text())
    server.shutdown()
    server.server_close()
    conn = sqlite3.connect(database)
    error, code = conn.execute("SELECT last_error, last_error_code FROM feeds").fetchone()
    items = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    conn.close()
    return {"body": kind, "bytes": len(server.body), "exit": process.returncode,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(peak_kb / 1024, 1), "items": items,
            "error": f"{error} [{code}]" if error else "-"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=10.0, help="MB per hostile body (default 10)")
    parser.add_argument("--only", nargs="*", choices=sorted(BODIES), help="only these bodies")
    args = parser.parse_args()
    size = int(args.size * 1_000_000)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        for kind in args.only or BODIES:
            row = measure(kind, size, Path(tmp))
            rows.append(row)
            print(f"{row['body']:<20} {row['bytes']:>10,} B  exit {row['exit']}  cpu {row['cpu_s']:6.2f} s  "
                  f"peak RSS {row['peak_rss_mb']:6.1f} MB  items {row['items']:>3}  {row['error']}",
                  flush=True)


if __name__ == "__main__":
    main()
