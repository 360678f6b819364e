"""The web desk through its ASGI app (Starlette's TestClient, over httpx), on a real SQLite
database filled by a real ``monitor run --once`` over feeds served on 127.0.0.1."""

from __future__ import annotations

import json
import random
import re
import sqlite3
from datetime import UTC, datetime, timedelta

import feedparser
import pytest
from faultkit import Kit, headline
from feedserver import FeedServer, rss
from prometheus_client.parser import text_string_to_metric_families
from receivers import free_port
from starlette.testclient import TestClient
from webdesk import STORED_HOSTILE, TOKEN, build_deployment

from monitor.config import load_config
from monitor.web import create_app
from monitor.web.render import http_url


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    return build_deployment(tmp_path_factory.mktemp("desk"))


def client_for(kit: Kit, *, token: bool = True) -> TestClient:
    config = load_config(kit.config, environ=kit.env)
    if not token:
        from dataclasses import replace

        from monitor.config import WebConfig

        config = replace(config, web=WebConfig())
    return TestClient(create_app(config), base_url="http://desk.test")


@pytest.fixture
def client(deployment):
    with client_for(deployment) as client:
        yield client


def login(client: TestClient) -> str:
    answer = client.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/alerts")
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)


def test_the_dashboard_and_its_twin_show_the_storylines(client, deployment):
    data = client.get("/api/v1/storylines").json()
    by_id = {s["id"]: s for s in data["storylines"]}
    stored = deployment.rows("SELECT storyline_id, COUNT(*) AS n FROM matches GROUP BY storyline_id")
    for row in stored:
        assert by_id[row["storyline_id"]]["matches_24h"] == row["n"]
        assert by_id[row["storyline_id"]]["matches_7d"] == row["n"]
        assert sum(d["matches"] for d in by_id[row["storyline_id"]]["per_day"]) == row["n"]
    assert [f["name"] for f in data["failing_feeds"]] == ["Broken"]
    assert {a["channel"] for a in data["alerts"]} == {"dead"}
    page = client.get("/")
    assert page.status_code == 200
    assert "<svg" in page.text and "Truce talks" in page.text and "Broken" in page.text
    assert "read-only" not in page.text and "Log in" in page.text


def test_a_storyline_page_lists_its_stories_newest_first(client, deployment):
    api = client.get("/api/v1/storylines/cairo").json()
    ids = [s["story_id"] for s in api["stories"]]
    expected = deployment.json("stories", "--storyline", "cairo", "--since", "30d")
    assert ids == [s["story_id"] for s in expected]
    page = client.get("/storylines/cairo")
    assert page.status_code == 200
    for story in expected:
        assert f'href="/stories/{story["story_id"]}"' in page.text
    found = client.get("/api/v1/storylines/cairo", params={"q": "hostile"}).json()["found"]
    assert len(found) == 1
    assert client.get("/storylines/nope").status_code == 404
    assert client.get("/storylines/cairo", params={"page": "x"}).status_code == 400


def test_a_story_shows_its_items_sources_and_why(client, deployment):
    copies = deployment.rows("SELECT story_id FROM items GROUP BY story_id HAVING COUNT(*) = 2")
    story_id = copies[0]["story_id"]
    story = client.get(f"/api/v1/stories/{story_id}").json()
    assert {i["source"] for i in story["items"]} == {"A", "B"}
    assert story["items"][1]["joined"]["by"] == "copy"
    assert {m["storyline"] for m in story["items"][0]["matches"]} == {"truce-talks", "cairo"}
    page = client.get(f"/stories/{story_id}").text
    assert "near-duplicate text" in page and "<td>B</td>" in page
    assert "<summary>monitor check</summary>" in page and "cairo (Cairo track): MATCH" in page
    assert "Log in" in page and 'name="verdict"' not in page  # no buttons before logging in
    assert client.get("/stories/999999").status_code == 404


def test_hostile_feed_text_is_shown_inert(client, deployment):
    row = deployment.rows("SELECT story_id, title FROM items WHERE title LIKE '%hostile%'")[0]
    assert row["title"] == STORED_HOSTILE
    page = client.get(f"/stories/{row['story_id']}")
    assert "<script>window" not in page.text and "&lt;script&gt;window.pwned" in page.text
    assert "<img src=x" not in page.text and "href=\"javascript:" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for path in ("/", "/storylines/cairo"):
        assert "<script>window" not in client.get(path).text
    assert http_url("javascript:alert(1)") is None and http_url(" data:text/html,x") is None
    assert http_url("https://e.x/a") == "https://e.x/a"


def test_verdicts_need_the_token_and_the_csrf_token(client, deployment):
    item = deployment.rows("SELECT i.id, i.story_id FROM items i JOIN matches m ON m.item_id = i.id "
                           "WHERE m.storyline_id = 'cairo' LIMIT 1")[0]
    form = {"item": str(item["id"]), "storyline": "cairo", "verdict": "wrong"}
    url = f"/stories/{item['story_id']}/verdict"
    assert client.post(url, data=form).status_code == 401  # no session, no bearer
    csrf = login(client)
    assert client.post(url, data={**form, "csrf": "0" * 64}).status_code == 403
    assert client.post(url, data=form).status_code == 403
    assert not deployment.rows("SELECT * FROM feedback")
    answer = client.post(url, data={**form, "csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    stored = deployment.rows("SELECT item_id, storyline_id, verdict, label FROM feedback")
    assert stored == [{"item_id": item["id"], "storyline_id": "cairo", "verdict": "wrong", "label": 0}]
    page = client.get(f"/stories/{item['story_id']}").text
    assert "desk: wrong" in page and 'name="verdict"' in page
    # htmx: the verdicts of the item come back alone, counted
    partial = client.post(url, data={**form, "verdict": "right", "csrf": csrf},
                          headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "<html" not in partial.text
    assert "recorded: right" in partial.text
    # the API: the bearer token, no CSRF token
    api = f"/api/v1/stories/{item['story_id']}/verdicts"
    fresh = TestClient(client.app, base_url="http://desk.test")
    wrong = {"Authorization": "Bearer wrong-token-xxxxxxxx"}
    assert fresh.post(api, json=form, headers=wrong).status_code == 401
    done = fresh.post(api, json=form, headers={"Authorization": f"Bearer {TOKEN}"})
    assert done.status_code == 200 and done.json()["verdict"] == "wrong"
    assert deployment.rows("SELECT verdict FROM feedback") == [{"verdict": "wrong"}]
    assert fresh.post(api, json={**form, "storyline": "nope"},
                      headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 400


def test_without_a_token_the_desk_is_read_only_and_says_so(deployment):
    with client_for(deployment, token=False) as client:
        assert "read-only" in client.get("/").text
        assert client.post("/alerts/failed/retry").status_code == 403
        assert client.post("/api/v1/alerts/failed/retry",
                           headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 403
        assert client.post("/login", data={"token": TOKEN}).status_code == 403


def test_alerts_page_retries_and_enables(client, deployment):
    data = client.get("/api/v1/alerts").json()
    assert {a["channel"] for a in data["alerts"]} == {"hook", "dead"}
    assert {c["name"] for c in data["channels"]} == {"hook", "dead"}
    csrf = login(client)
    sent = deployment.rows("SELECT id FROM alerts WHERE status = 'sent' LIMIT 1")[0]["id"]
    answer = client.post(f"/alerts/{sent}/retry", data={"csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    assert deployment.rows("SELECT status FROM alerts WHERE id = ?", [sent]) == [{"status": "pending"}]
    conn = sqlite3.connect(deployment.db)
    conn.execute("UPDATE channels SET disabled_at = '2024-01-01T00:00:00+00:00', disabled_reason = 'gone' "
                 "WHERE name = 'dead'")
    conn.commit()
    conn.close()
    assert "disabled since" in client.get("/alerts").text
    answer = client.post("/channels/dead/enable", data={"csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    assert deployment.rows("SELECT disabled_at FROM channels WHERE name = 'dead'") == [{"disabled_at": None}]
    assert client.post("/channels/nope/enable", data={"csrf": csrf}).status_code == 404


def test_feeds_page_shows_every_feed_and_its_error(client):
    feeds = {f["name"]: f for f in client.get("/api/v1/feeds").json()["feeds"]}
    assert feeds["A"]["state"] == "ok" and feeds["A"]["items_seen"] >= 4
    assert feeds["Broken"]["state"] == "failing" and feeds["Broken"]["last_status"] == 500
    assert feeds["Broken"]["last_error_code"] in client.get("/feeds").text


def test_atom_feeds_read_by_feedparser_match_monitor_stories(client, deployment):
    expected = deployment.json("stories", "--since", "30d")
    parsed = feedparser.parse(client.get("/stories.atom").content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert [e.id for e in parsed.entries] == [f"urn:ceasefire-monitor:story:{s['story_id']}"
                                              for s in expected]
    assert [e.title for e in parsed.entries if "hostile" not in e.title] == [
        s["headline"] for s in expected if "hostile" not in s["headline"]]
    assert parsed.entries[0].link == f"http://desk.test/stories/{expected[0]['story_id']}"
    cairo = feedparser.parse(client.get("/storylines/cairo.atom").content)
    assert cairo.bozo == 0 and cairo.feed.title == "ceasefire-monitor: Cairo track"
    assert len(cairo.entries) == len(deployment.json("stories", "--storyline", "cairo", "--since", "30d"))
    assert client.get("/storylines/nope.atom").status_code == 404


def test_metrics_agree_with_the_database(client, deployment):
    text = client.get("/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    items = deployment.rows("SELECT COUNT(*) AS n FROM items")[0]["n"]
    assert samples[("monitor_items_stored", ())] == items
    for row in deployment.rows("SELECT storyline_id, COUNT(*) AS n, COUNT(DISTINCT story_id) AS s "
                               "FROM matches GROUP BY storyline_id"):
        assert samples[("monitor_matches", (("storyline", row["storyline_id"]),))] == row["n"]
        assert samples[("monitor_stories", (("storyline", row["storyline_id"]),))] == row["s"]
    for row in deployment.rows("SELECT channel, status, COUNT(*) AS n FROM alerts GROUP BY 1, 2"):
        labels = (("channel", row["channel"]), ("status", row["status"]))
        assert samples[("monitor_alerts", labels)] == row["n"]
    pending = deployment.rows("SELECT COUNT(*) AS n FROM alerts WHERE status = 'pending'")[0]["n"]
    assert samples[("monitor_outbox_pending", ())] == pending
    sent = deployment.rows("SELECT COUNT(*) AS n FROM alerts WHERE status = 'sent' "
                           "AND kind = 'storyline.match'")[0]["n"]
    assert sent and samples[("monitor_delivery_latency_seconds_count", ())] == sent
    assert samples[("monitor_delivery_latency_seconds_bucket", (("le", "+Inf"),))] == sent
    assert samples[("monitor_delivery_latency_seconds_bucket", (("le", "3600.0"),))] == sent
    assert samples[("monitor_feeds", (("state", "failing"),))] == 1
    assert samples[("monitor_feeds", (("state", "ok"),))] == 2


def test_health_and_readiness(client, deployment):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"]["ok"]
    # an hour later, with no poll since: every feed is overdue (the interval is a minute)
    app = client.app
    desk = app.state.desk
    later = datetime.now(UTC) + timedelta(hours=1)
    desk.clock = lambda: later
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "overdue" in answer.json()["reason"] and "A" in answer.json()["checks"]["feeds"]["reason"]


# --------------------------------------------------------------------------- serving

def test_the_web_section_of_the_config_is_checked(tmp_path):
    from monitor.errors import ConfigError

    path = tmp_path / "monitor.toml"
    for text, error in (('[web]\nport = 80\n', "web.port: unknown key"),
                        ('[web]\nlisten = "localhost"\n', "web.listen: expected HOST:PORT"),
                        ('[web]\nlisten = "127.0.0.1:99999"\n', "web.listen: expected HOST:PORT"),
                        ('[web]\ntoken = "short"\n', "web.token: expected a token of at least 16"),
                        ('[web]\ntoken = "${NO_SUCH_VAR}"\n', "NO_SUCH_VAR is not set")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(error)):
            load_config(path, environ={})
    path.write_text('[web]\nlisten = "0.0.0.0:9000"\ntoken = "${T}"\n')
    config = load_config(path, environ={"T": TOKEN})
    assert config.web.host_port == ("0.0.0.0", 9000) and config.web.token == TOKEN
    assert TOKEN in config.secrets and TOKEN not in repr(config)
    path.write_text("")
    assert load_config(path, environ={}).web.listen is None


def _get(url: str) -> int:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_monitor_run_serves_the_desk_in_its_own_process_and_sigterm_stops_both(tmp_path):
    with FeedServer() as server:
        server.set_feed("/a.xml", rss([headline(random.Random(1), 1)], title="Outlet A"))
        kit = Kit(tmp_path, secrets={"MONITOR_WEB_TOKEN": TOKEN})
        port = free_port()
        kit.write(feeds=[("A", server.url("/a.xml"))],
                  settings=f'\n[web]\nlisten = "127.0.0.1:{port}"\ntoken = "${{MONITOR_WEB_TOKEN}}"\n')
        from receivers import wait_until

        with kit.start() as daemon:
            assert wait_until(lambda: _get(f"http://127.0.0.1:{port}/healthz") == 200, timeout=30), \
                daemon.output()
            assert wait_until(lambda: kit.rows("SELECT COUNT(*) AS n FROM items")[0]["n"] == 1, timeout=30)
            assert _get(f"http://127.0.0.1:{port}/readyz") == 200
            assert daemon.stop() == 0, daemon.output()
            assert _get(f"http://127.0.0.1:{port}/healthz") == 0  # the desk stopped with the daemon
            assert TOKEN not in daemon.output()


def test_monitor_web_serves_the_database_alone(deployment):
    import subprocess

    port = free_port()
    process = subprocess.Popen(deployment.command("web", "--listen", f"127.0.0.1:{port}"), env=deployment.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        from receivers import wait_until

        assert wait_until(lambda: _get(f"http://127.0.0.1:{port}/") == 200, timeout=30)
        assert _get(f"http://127.0.0.1:{port}/api/v1/feeds") == 200
        polls = _scrape(port)  # no pipeline in this process: no polls counted
        assert polls[("monitor_poll_duration_seconds_count", ())] == 0
        assert not [key for key in polls if key[0] == "monitor_polls_total"]
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    bad = deployment.cli("web", "--listen", "nowhere")
    assert bad.returncode == 2 and "--listen" in bad.stderr


def test_config_check_shows_the_web_section_with_its_token_masked(deployment):
    result = deployment.cli("config", "check")
    assert result.returncode == 0, result.stderr
    assert "[web]" in result.stdout and 'token = "***"' in result.stdout
    assert TOKEN not in result.stdout + result.stderr


def test_the_review_queue_puts_uncertain_decisions_first_and_advances(client, deployment):
    data = client.get("/api/v1/review/truce-talks").json()
    queue = data["queue"]
    judged = {r["item_id"] for r in deployment.rows(
        "SELECT item_id FROM feedback WHERE storyline_id = 'truce-talks'")}
    stored = {r["id"] for r in deployment.rows("SELECT id FROM items")}
    # one queue: the page lists what `monitor review` lists, in its order (the learned layer's
    # candidates: item 1 names no truce word), disagreements first, then nearest the cut
    listed = deployment.cli("review", "truce-talks", "--json", "--limit", "100")
    assert listed.returncode == 0, listed.stderr
    assert [i["item_id"] for i in queue] == [r["item_id"] for r in json.loads(listed.stdout)]
    assert {i["item_id"] for i in queue} < stored - judged and 1 not in {i["item_id"] for i in queue}
    order = [(i["decision"] == i["rules"], i["uncertainty"]) for i in queue]
    assert order == sorted(order) and len(queue) == data["left"] >= 2
    assert all(i["explanation"].startswith("truce-talks") for i in queue)
    page = client.get("/review/truce-talks")
    assert f'data-item="{queue[0]["item_id"]}"' in page.text and 'name="verdict"' not in page.text
    csrf = login(client)
    answer = client.post("/review/truce-talks", data={"item": str(queue[0]["item_id"]), "verdict": "right",
                                                      "csrf": csrf})
    assert answer.status_code == 200 and answer.url.path == "/review/truce-talks"  # followed: the next
    assert f'data-item="{queue[1]["item_id"]}"' in answer.text
    stored = deployment.rows("SELECT verdict, source FROM feedback WHERE storyline_id = 'truce-talks' "
                             "AND item_id = ?", [queue[0]["item_id"]])
    assert stored == [{"verdict": "right", "source": "desk"}]
    after = client.get("/api/v1/review/truce-talks").json()
    assert after["left"] == data["left"] - 1
    nowhere = client.post("/review/nope", data={"item": "1", "verdict": "right", "csrf": csrf})
    assert nowhere.status_code == 404


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_the_polls_of_monitor_run_by_outcome(tmp_path):
    """Polls are counted where they happen, in the daemon, and its desk's /metrics shows them:
    a feed that changed (ok), one that answers 304 (not_modified), one that answers 500."""
    from receivers import wait_until

    rng = random.Random(5)
    with FeedServer() as server:
        server.set_feed("/a.xml", rss([headline(rng, 1)], title="Outlet A"))
        server.set_feed("/b.xml", rss([headline(rng, 2)], title="Outlet B"))
        server.set_response("/broken.xml", status=500, body=b"down")
        kit = Kit(tmp_path)
        kit.write(feeds=[("A", server.url("/a.xml")), ("B", server.url("/b.xml"))], interval="1h")
        kit.run_once()  # A and B keep their ETags: B answers the daemon 304
        server.set_feed("/a.xml", rss([headline(rng, 3)], title="Outlet A"))  # A changed
        port = free_port()
        kit.write(feeds=[("A", server.url("/a.xml")), ("B", server.url("/b.xml")),
                         ("Broken", server.url("/broken.xml"))], interval="1h",
                  settings=f'\n[web]\nlisten = "127.0.0.1:{port}"\n')
        before = dict(server.hits)
        with kit.start() as daemon:
            assert wait_until(lambda: _get(f"http://127.0.0.1:{port}/healthz") == 200, timeout=30), \
                daemon.output()
            assert wait_until(lambda: _scrape(port).get(("monitor_poll_duration_seconds_count", ())) == 3,
                              timeout=30), daemon.output()
            samples = _scrape(port)
            daemon.stop()
    made = {path: server.hits[path] - before.get(path, 0) for path in ("/a.xml", "/b.xml", "/broken.xml")}
    assert made == {"/a.xml": 1, "/b.xml": 1, "/broken.xml": 1}
    polls = {labels: value for (name, labels), value in samples.items() if name == "monitor_polls_total"}
    assert polls == {(("error_code", ""), ("outcome", "ok")): 1,
                     (("error_code", ""), ("outcome", "not_modified")): 1,
                     (("error_code", "fetch.http_status"), ("outcome", "failed")): 1}
    assert samples[("monitor_poll_duration_seconds_bucket", (("le", "+Inf"),))] == 3
    assert samples[("monitor_poll_duration_seconds_bucket", (("le", "60.0"),))] == 3
    assert 0 < samples[("monitor_poll_duration_seconds_sum", ())] < 60
    assert kit.rows("SELECT last_status FROM feeds ORDER BY name") == [
        {"last_status": 200}, {"last_status": 304}, {"last_status": 500}]


DROP_FTS = ("DROP TABLE items_fts; DROP TRIGGER items_fts_insert; DROP TRIGGER items_fts_delete; "
            "DROP TRIGGER items_fts_update;")


def test_the_storyline_search_finds_items_through_fts5_by_a_word_and_a_prefix(client, deployment, tmp_path):
    item = deployment.rows("SELECT i.id, i.summary FROM items i JOIN matches m ON m.item_id = i.id "
                           "WHERE m.storyline_id = 'cairo' AND i.summary LIKE '%met over%' LIMIT 1")[0]
    word = item["summary"].split("met over ")[1].split()[0]  # a word of the summary alone
    assert len(word) >= 5

    def found(q: str, c: TestClient = client) -> tuple[set[int], str]:
        data = c.get("/api/v1/storylines/cairo", params={"q": q}).json()
        return {m["item_id"] for m in data["found"]}, data["search_by"]

    by_word, by_start = found(word), found(word[:4].upper())  # a word; the start of a word
    assert item["id"] in by_word[0] and by_word[1] == "fts5"
    assert by_start == by_word
    assert item["id"] not in found(word[1:])[0]  # not the middle of one, as LIKE would
    assert found('"') == (set(), "fts5") and found("a OR b*")[1] == "fts5"  # no FTS5 syntax
    page = client.get("/storylines/cairo", params={"q": word[:4]}).text
    assert 'href="/stories/' in page and "Matched items with" in page
    counts = deployment.rows("SELECT (SELECT COUNT(*) FROM items_fts) AS indexed, "
                             "(SELECT COUNT(*) FROM items) AS stored")[0]
    assert counts["indexed"] == counts["stored"]

    # a database at 0008: the step fills the index from the items already stored
    import shutil

    from monitor.store import SQLiteStore

    old = tmp_path / "old.db"
    shutil.copy(deployment.db, old)
    conn = sqlite3.connect(old)
    conn.executescript(f"{DROP_FTS} DELETE FROM _sqlite_migrations WHERE name = '0009_items_fts';")
    conn.close()
    with SQLiteStore(old) as store:
        assert "0009_items_fts" in store.schema_steps()
        rows, how = store.search_matches(word[:4], storyline="cairo")
        assert ({r["item_id"] for r in rows}, how) == by_word
    # without the index (an SQLite without FTS5): every word anywhere, with LIKE
    conn = sqlite3.connect(old)
    conn.executescript(DROP_FTS)
    conn.close()
    with SQLiteStore(old) as store:
        rows, how = store.search_matches(word[1:], storyline="cairo")
        assert item["id"] in {r["item_id"] for r in rows} and how == "words"


def test_monitor_health_asks_the_desks_readyz_when_it_listens_else_looks_at_the_last_fetch(tmp_path):
    from monitor.web.server import Background

    with FeedServer() as server:
        server.set_feed("/a.xml", rss([headline(random.Random(3), 1)], title="Outlet A"))
        kit = Kit(tmp_path)
        kit.write(feeds=[("A", server.url("/a.xml"))])
        kit.run_once()
    # no [web] listen: a feed fetched in the last --max-age
    result = kit.cli("health")
    assert result.returncode == 0 and "healthy: a feed was fetched" in result.stdout, result.stderr
    assert kit.cli("health", "--max-age", "0s").returncode == 1
    port = free_port()
    kit.write(feeds=[("A", server.url("/a.xml"))], settings=f'\n[web]\nlisten = "127.0.0.1:{port}"\n')
    result = kit.cli("health")  # nothing listens there
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith(f"unhealthy: the web desk does not answer at http://127.0.0.1:{port}/readyz")
    desk = Background(load_config(kit.config, environ=kit.env))
    desk.start()
    try:
        result = kit.cli("health", "--max-age", "0s")  # the desk decides, not the last fetch
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout == f"healthy: http://127.0.0.1:{port}/readyz: ready\n"
        conn = sqlite3.connect(kit.db)  # an alert waiting for an hour: the outbox is stuck
        conn.execute("UPDATE alerts SET status = 'pending', queued_at = NULL, created_at = ?",
                     [(datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")])
        conn.commit()
        conn.close()
        result = kit.cli("health")
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stdout.startswith(f"unhealthy: http://127.0.0.1:{port}/readyz answered 503: outbox "
                                        "alerts pending for more than 15 minutes on: console"), result.stdout
    finally:
        desk.stop()


def test_a_slow_page_never_delays_a_poll_or_a_delivery(tmp_path):
    """The desk as ``monitor run`` serves it (``Background``, a thread beside the daemon's
    scheduler, ``daemon.serve``): a page whose read blocks inside the desk's own database
    connection, holding its store's lock and an open read of the items, while a new item is
    published. The feed is polled on time and the item's alert delivered, the page still held."""
    import asyncio
    import os
    import signal
    import threading
    import time

    import httpx
    from faultkit import webhook
    from receivers import TEST_SECRET, WebhookReceiver, wait_until

    from monitor import daemon
    from monitor.pipeline import Monitor
    from monitor.store import SQLiteStore
    from monitor.web.server import Background

    with FeedServer() as server, WebhookReceiver() as hook:
        server.set_feed("/a.xml", rss([], title="Outlet A"))
        kit = Kit(tmp_path, secrets={"HOOK_SECRET": TEST_SECRET})
        port = free_port()
        kit.write(feeds=[("A", server.url("/a.xml"))], channels=webhook(hook.url), interval="1s",
                  settings=f'\n[web]\nlisten = "127.0.0.1:{port}"\n')
        config = load_config(kit.config, environ=kit.env)
        store = SQLiteStore(config.database)
        monitor = Monitor(config, store)
        web = Background(config)
        web.start()
        desk = web.server.config.app.state.desk
        held, release, served = threading.Event(), threading.Event(), threading.Event()

        def hold() -> int:
            held.set()
            release.wait(60)
            return 1

        desk.store.db.conn.create_function("held_page", 0, hold)
        activity = desk.store.storyline_activity

        def slow_activity(**kwargs):  # the dashboard's first read, made slow
            desk.store._read("SELECT held_page() AS held, COUNT(*) AS n FROM items")
            return activity(**kwargs)

        desk.store.storyline_activity = slow_activity
        seen: dict[str, object] = {}
        errors: list[BaseException] = []

        def page() -> None:
            seen["page"] = httpx.get(f"http://127.0.0.1:{port}/", timeout=90).status_code

        def watch() -> None:
            reader = threading.Thread(target=page)
            try:
                assert wait_until(lambda: server.hits["/a.xml"] >= 1, timeout=30), "never polled"
                reader.start()
                assert held.wait(30), "the page never reached its read"
                polls = server.hits["/a.xml"]
                published = time.monotonic()
                server.set_feed("/a.xml", rss([headline(random.Random(9), 1)], title="Outlet A"))
                received = hook.wait_for(1, timeout=15)
                seen["alert_after"] = time.monotonic() - published
                seen["title"] = received[0]["json"]["data"]["item"]["title"]
                time.sleep(2.5)
                seen["polls_while_held"] = server.hits["/a.xml"] - polls
                seen["still_held"] = reader.is_alive() and "page" not in seen
            except BaseException as error:
                errors.append(error)
            finally:
                release.set()
                if reader.is_alive() or reader.ident:
                    reader.join(60)
                if not served.is_set():  # the daemon's way out (its handler is set while it serves)
                    os.kill(os.getpid(), signal.SIGTERM)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            asyncio.run(daemon.serve(monitor))
        finally:
            served.set()
            watcher.join(90)
            web.stop()
            monitor.close()
            store.close()
    if errors:
        raise errors[0]
    assert seen["still_held"], seen
    assert seen["alert_after"] < 6, seen  # polled every second, delivered at once
    assert seen["polls_while_held"] >= 2, seen
    assert str(seen["title"]).startswith("Truce talks in Cairo")
    assert seen["page"] == 200  # and the page, once its read was let go
