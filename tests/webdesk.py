"""A deployment for the web desk's tests: feeds on 127.0.0.1, a real ``monitor run --once``.

    kit = build_deployment(tmp_path)   # a faultkit.Kit whose database the run filled
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from faultkit import Kit, headline, webhook
from feedserver import FeedServer, rss
from receivers import TEST_SECRET, WebhookReceiver, free_port

TOKEN = "desk-token-0123456789abcdef"
HOSTILE = {"title": "Truce talks in Cairo &lt;script&gt;window.pwned = 1&lt;/script&gt; "
                    "&lt;img src=x onerror=alert(1)&gt; hostile",
           "summary": "Delegation met. <script>alert('x')</script><a href=\"javascript:alert(1)\">click</a>",
           "link": "https://news.example/hostile", "guid": "hostile", "published": datetime.now(UTC)}


STORED_HOSTILE = "Truce <script>window.pwned = 1</script> <img src=x onerror=alert(1)> hostile"


def web_settings(token: bool) -> str:
    return '[web]\ntoken = "${MONITOR_WEB_TOKEN}"\n' if token else ""


def build_deployment(tmp_path: Path) -> Kit:
    """Three feeds (one a copy of another's first item, one broken), a webhook that answers
    and one that is down; one ``monitor run --once``."""
    rng = random.Random(17)
    items = [headline(rng, n) for n in range(3)]
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set_feed("/a.xml", rss([*items, HOSTILE], title="Outlet A"))
        server.set_feed("/b.xml", rss([dict(items[0], guid="b-0", link="https://other.example/0")],
                                      title="Outlet B"))
        server.set_response("/broken.xml", status=500, body=b"down")
        kit = Kit(tmp_path, secrets={"HOOK_SECRET": TEST_SECRET, "MONITOR_WEB_TOKEN": TOKEN})
        dead = f"http://127.0.0.1:{free_port()}/hook"
        kit.write(feeds=[("A", server.url("/a.xml")), ("B", server.url("/b.xml")),
                      ("Broken", server.url("/broken.xml"))],
                  channels=webhook(hook.url) + webhook(dead, name="dead"),
                  settings=web_settings(True).replace("[web]", "\n[web]"))
        kit.run_once()
    # The pipeline strips markup from what it stores; the desk must not count on it: the hostile
    # item's title and link become what a careless writer could have stored.
    conn = sqlite3.connect(kit.db)
    conn.execute("UPDATE items SET title = ?, url = 'javascript:alert(1)' WHERE guid = 'hostile' OR "
                 "title LIKE '%hostile%'", [STORED_HOSTILE])
    conn.commit()
    conn.close()
    return kit


