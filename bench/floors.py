"""The floors, as whole processes: a bare sequential httpx ``Client`` conditional-GET loop over
the farm, and the same loop plus a bare ``feedparser.parse`` of every body on one core.

    python bench/floors.py httpx|feedparser URLS_FILE STATE_FILE

The ETag / Last-Modified of each URL are kept in STATE_FILE, so a second run sends
conditional requests (the warm cycle). Prints one JSON line: statuses and entries.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    kind, urls_file, state_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    import httpx

    parse = None
    if kind == "feedparser":
        import feedparser

        parse = feedparser.parse
    urls = urls_file.read_text().split()
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    counts: dict[str, int] = {}
    entries = 0
    with httpx.Client(timeout=30) as client:
        for url in urls:
            headers = {}
            etag, modified = state.get(url, (None, None))
            if etag:
                headers["If-None-Match"] = etag
            if modified:
                headers["If-Modified-Since"] = modified
            response = client.get(url, headers=headers)
            counts[str(response.status_code)] = counts.get(str(response.status_code), 0) + 1
            if response.status_code == 200:
                state[url] = (response.headers.get("etag"), response.headers.get("last-modified"))
                if parse is not None:
                    entries += len(parse(response.content)["entries"])
    state_file.write_text(json.dumps(state))
    print(json.dumps({"statuses": counts, "entries": entries}))


if __name__ == "__main__":
    main()
