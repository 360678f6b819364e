"""A webhook receiver on 127.0.0.1 for the benchmarks: when each item's alert arrived (by the
``[a.b.c]`` marker the benchmark puts in its title), how many times each webhook-id was
acknowledged, and, while ``failing`` is set, a 503 with Retry-After instead of an answer."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARKER = re.compile(r"\[(\d+\.\d+\.\d+)\]")


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}  # marker -> first acknowledged arrival
        self.acknowledged: Counter[str] = Counter()  # webhook-id -> times acknowledged
        self.refused = 0
        self.failing = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                arrived = time.time()
                if receiver.failing:
                    receiver.refused += 1
                    self.send_response(503)
                    self.send_header("Retry-After", "5")
                    self.end_headers()
                    return
                try:
                    title = json.loads(body)["data"]["item"]["title"]
                except (ValueError, KeyError, TypeError):
                    title = ""
                for marker in MARKER.findall(title):
                    receiver.arrivals.setdefault(marker, arrived)
                receiver.acknowledged[self.headers.get("webhook-id", "")] += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
