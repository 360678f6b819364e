"""The monitor end to end, as a user runs it: the real CLI in a subprocess, a real feed
server, a real webhook receiver (verifying Standard Webhooks signatures with the reference
package), a real SMTP server and a real SQLite file. Items are real news items
(tests/data/e2e_items.jsonl, copied from the labelled dev set with their labels)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from feedserver import FeedServer, rss
from receivers import TEST_SECRET, SMTPReceiver, WebhookReceiver, wait_until

DATA = Path(__file__).parent / "data"
ITEMS = [json.loads(line) for line in (DATA / "e2e_items.jsonl").read_text().splitlines()]
RELEVANT = [i for i in ITEMS if i["storylines"]]
IRRELEVANT = [i for i in ITEMS if not i["storylines"]]
NOW = datetime.now(UTC)


def feed_items(items, *, offset_minutes=0, suffix=""):
    return [{"title": i["title"] + suffix,
             "link": f"https://syndicated.example/{i['id']}" if suffix else i["link"],
             "summary": i["summary"], "guid": i["id"] + suffix,
             "published": NOW - timedelta(minutes=offset_minutes + n)} for n, i in enumerate(items)]


class Deployment:
    """A config on disk pointing at local servers, and a way to run the CLI against it."""

    def __init__(self, tmp_path: Path, feeds: FeedServer, hook: WebhookReceiver,
                 smtp: SMTPReceiver) -> None:
        self.tmp_path, self.feeds, self.hook, self.smtp = tmp_path, feeds, hook, smtp
        self.db = tmp_path / "monitor.db"
        self.config = tmp_path / "monitor.toml"
        self.env = {**os.environ, "HOOK_SECRET": TEST_SECRET, "SMTP_PASSWORD": "s3cret-pw-xyz"}
        self.env.pop("MONITOR_CONFIG", None)
        self.env.pop("MONITOR_DB", None)
        self.write_config()

    def write_config(self, extra_feeds: str = "", interval: str = "1m") -> None:
        self.config.write_text(f"""
[monitor]
database = "{self.db}"
poll_interval = "{interval}"
alert_max_age = "48h"
delivery_retry_base = "0s"
feed_down_after = 10

[[feeds]]
name = "Outlet A"
url = "{self.feeds.url('/a.xml')}"

[[feeds]]
name = "Outlet B"
url = "{self.feeds.url('/b.xml')}"

[[feeds]]
name = "Garbage"
url = "{self.feeds.url('/garbage.xml')}"
{extra_feeds}
[[alerts]]
type = "webhook"
name = "desk-hook"
url = "{self.hook.url}"
secret = "${{HOOK_SECRET}}"

[[alerts]]
type = "email"
name = "desk-mail"
host = "127.0.0.1"
port = {self.smtp.port}
starttls = false
sender = "monitor@example.org"
to = ["desk@example.org"]
""" + _storylines())

    def cli(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "monitor", "--config", str(self.config), *args],
                              capture_output=True, text=True, env=self.env, cwd=self.tmp_path,
                              timeout=timeout)

    def run_once(self) -> subprocess.CompletedProcess:
        result = self.cli("run", "--once")
        assert result.returncode == 3, result.stderr  # the garbage feed fails every time
        assert "incomplete (exit code 3): " in result.stderr
        assert "Traceback" not in result.stderr
        return result

    def json(self, *args: str):
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def _storylines() -> str:
    # The shipped storylines and their models: the end-to-end behaviour is that of the default config.
    from defaults import default_storylines

    return default_storylines()


@pytest.fixture
def deployment(tmp_path):
    with FeedServer() as feeds, WebhookReceiver() as hook, SMTPReceiver() as smtp:
        feeds.set_feed("/a.xml", rss(feed_items(ITEMS[::2]), title="Outlet A"))
        # Outlet B carries the other half, plus Outlet A's first relevant story syndicated.
        feeds.set_feed("/b.xml", rss(feed_items(ITEMS[1::2]) + feed_items(RELEVANT[:1], suffix=" - Outlet B"),
                                     title="Outlet B"))
        feeds.set_response("/garbage.xml", 200, b"<html><body>\x00\xff\xfe not a feed <<<",
                           headers={"content-type": "text/html"})
        yield Deployment(tmp_path, feeds, hook, smtp)


def alerts_by_story(received):
    stories = {}
    for request in received:
        stories.setdefault(request["json"]["data"]["story_id"], set()).add(request["id"])
    return stories


def test_relevant_items_alert_once_irrelevant_never(deployment):
    result = deployment.run_once()
    received = deployment.hook.received
    assert received, result.stderr
    assert all(r["verified"] for r in received), [r["error"] for r in received]
    assert all(r["json"]["type"] == "storyline.match" for r in received)
    # One alert per story on the channel, never two, naming every storyline the item matched.
    pairs = alerts_by_story(received)
    assert all(len(ids) == 1 for ids in pairs.values())
    assert len(pairs) == len(received)
    alerted_titles = {r["json"]["data"]["item"]["title"] for r in received}
    irrelevant_titles = {i["title"] for i in IRRELEVANT}
    assert not alerted_titles & irrelevant_titles
    # Every relevant item is matched for its labelled storylines, and every story alerts.
    matches = deployment.json("matches", "--limit", "1000")
    assert not {m["title"] for m in matches} & irrelevant_titles
    for item in RELEVANT:
        matched = {m["storyline"] for m in matches if m["title"] == item["title"]}
        assert set(item["storylines"]) <= matched, item["title"]
    for request in received:
        data = request["json"]["data"]
        matched = {m["storyline"] for m in matches if m["title"] == data["item"]["title"]}
        assert {s["id"] for s in data["storylines"]} == matched
        assert data["storyline"]["id"] in matched
    # Every story of matched items alerted once, unless it is only live blogs and explainers
    # that report no development of their own (monitor stories says why).
    stories = deployment.json("stories", "--since", "30d")
    alerted = {s["story_id"] for s in stories if s["alerted"]}
    assert alerted == set(pairs)
    assert all(s["alerted"] or not s["alerts"] for s in stories)
    for m in matches:
        assert {"storyline", "title", "link", "source", "published", "score", "story_id",
                "alerted"} <= set(m)
    # Email got the same alerts.
    mails = deployment.smtp.wait_for(len(received), timeout=5)
    assert len(mails) == len(received)
    assert any(item["title"] in mail["subject"] for mail in mails for item in RELEVANT)
    # The log says per feed what the poll brought.
    a = len(ITEMS[::2])
    assert f"Outlet A: {a} entries, {a} new items, " in result.stderr, result.stderr
    # and per channel what it delivered, in one line (each alert only under -v)
    assert f"desk-hook: {len(received)} alert(s) sent" in result.stderr, result.stderr
    assert f"desk-mail: {len(mails)} alert(s) sent" in result.stderr, result.stderr
    assert not any(f"alert {request['id']} sent" in result.stderr for request in received)


def test_syndicated_story_alerts_once(deployment):
    deployment.run_once()
    first = RELEVANT[0]
    copies = [m for m in deployment.json("matches", "--limit", "1000")
              if m["title"] in (first["title"], first["title"] + " - Outlet B")]
    assert {m["source"] for m in copies} == {"Outlet A", "Outlet B"}
    assert len({m["story_id"] for m in copies}) == 1
    alerted = [r for r in deployment.hook.received
               if r["json"]["data"]["story_id"] == copies[0]["story_id"]]
    assert len(alerted) == 1  # one alert for the story on the webhook, naming its storylines
    assert {s["id"] for s in alerted[0]["json"]["data"]["storylines"]} == {
        m["storyline"] for m in copies}
    assert len({m["title"] for m in copies if m["alerted"]}) == 1


def test_second_run_and_restart_alert_nothing_new(deployment):
    deployment.run_once()
    count = len(deployment.hook.received)
    assert count
    deployment.run_once()  # the feeds answer 304 to our conditional GET
    assert len(deployment.hook.received) == count
    conditional = [h for path, h in deployment.feeds.requests if path == "/a.xml"][-1]
    assert "If-None-Match" in conditional or "if-none-match" in {k.lower() for k in conditional}
    # A site that ignores ETag serves the same body again, then one new relevant item.
    deployment.feeds.set_feed("/a.xml", rss(feed_items(ITEMS[::2]), title="Outlet A"), etag=False)
    deployment.run_once()
    assert len(deployment.hook.received) == count, deployment.hook.received[count:]
    fresh = {"title": "Hamas delegation arrives in Cairo for truce talks with Egyptian mediators",
             "link": "https://news.example/cairo-delegation", "guid": "fresh-1",
             "summary": "Egypt's intelligence chief will host the delegation to discuss a ceasefire "
                        "proposal and a hostage deal.", "published": datetime.now(UTC)}
    deployment.feeds.set_feed("/a.xml", rss([fresh, *feed_items(ITEMS[::2])], title="Outlet A"),
                              etag=False)
    deployment.run_once()
    new = deployment.hook.received[count:]
    assert new and {r["json"]["data"]["item"]["title"] for r in new} == {fresh["title"]}
    assert len(new) == 1  # one alert on the webhook for an item of two storylines
    assert {s["id"] for s in new[0]["json"]["data"]["storylines"]} >= {"ceasefire-talks",
                                                                         "cairo-talks"}


def test_webhook_outage_then_recovery_delivers_with_same_ids(deployment):
    deployment.hook.set_mode("500")
    deployment.run_once()
    failed = list(deployment.hook.received)
    assert failed and all(r["status"] == 500 for r in failed)
    # In order: the channel stops at its first failure and backs off as a whole.
    assert len(failed) == 1
    pending = deployment.json("alerts", "--status", "pending")
    hook_pending = [a for a in pending if a["channel"] == "desk-hook"]
    assert hook_pending and any("500" in (a["last_error"] or "") for a in hook_pending)
    # Email is another channel: the webhook outage did not hold it up.
    assert deployment.smtp.messages
    deployment.hook.set_mode("ok")
    deployment.run_once()
    delivered = [r for r in deployment.hook.received if r["status"] == 200]
    assert len(delivered) == len(hook_pending)
    assert delivered[0]["id"] == failed[0]["id"]  # the retry carries the same webhook-id
    assert delivered[0]["body"] == failed[0]["body"]
    assert not [a for a in deployment.json("alerts", "--status", "pending")
                if a["channel"] == "desk-hook"]


def test_garbage_feed_is_unhealthy_while_others_go_on(deployment):
    deployment.run_once()
    feeds = {f["name"]: f for f in deployment.json("feeds")}
    assert feeds["Garbage"]["health"] == "failing"
    assert feeds["Garbage"]["consecutive_errors"] == 1
    assert feeds["Garbage"]["last_error_code"] == "parse.error"
    assert feeds["Garbage"]["last_error"]
    for name in ("Outlet A", "Outlet B"):
        assert feeds[name]["health"] == "ok" and feeds[name]["items_seen"] > 0
        assert feeds[name]["last_status"] == 200
    assert deployment.hook.received


def test_unreachable_feed_is_logged_and_run_continues(deployment):
    deployment.write_config(extra_feeds=f"""
[[feeds]]
name = "Down"
url = "http://127.0.0.1:{_closed_port()}/feed.xml"
""")
    result = deployment.run_once()
    assert "Down:" in result.stderr and "fetch.connect" in result.stderr
    assert deployment.hook.received
    assert TEST_SECRET not in result.stderr and "s3cret-pw-xyz" not in result.stderr


def test_daemon_alerts_new_item_within_interval_and_stops_on_sigterm(deployment):
    deployment.write_config(interval="2s")
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(deployment.config), "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=deployment.env,
        cwd=deployment.tmp_path)
    try:
        assert wait_until(lambda: len(deployment.hook.received) > 0, timeout=30)
        assert wait_until(lambda: deployment.feeds.hits["/a.xml"] >= 2, timeout=30)
        count = len(deployment.hook.received)
        fresh = {"title": "Israel and Hamas agree to extend Gaza truce by two days, Qatar says",
                 "link": "https://news.example/extension", "guid": "fresh-2",
                 "summary": "Qatari mediators said the truce would be extended and more hostages "
                            "released.", "published": datetime.now(UTC)}
        served_at = time.monotonic()
        deployment.feeds.set_feed("/a.xml", rss([fresh, *feed_items(ITEMS[::2])]))
        assert wait_until(lambda: any(r["json"]["data"]["item"]["title"] == fresh["title"]
                                      for r in deployment.hook.received[count:]), timeout=30)
        latency = time.monotonic() - served_at
        # The feed's interval (2 s, jittered by 10 %) plus 2 s, with slack for a loaded machine.
        assert latency < 2.2 + 2 + 3, latency
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        assert "stopped" in stderr and "Traceback" not in stderr
    finally:
        if process.poll() is None:
            process.kill()


def _closed_port() -> int:
    from receivers import free_port

    return free_port()
