"""Feeds added, paused, imported and exported on the command line, on top of the config's:
a real feed server on 127.0.0.1, a real SQLite file, the CLI through click's runner."""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from feedserver import FeedServer, rss

from monitor.cli import cli
from monitor.subscriptions import feed_links

NOW = datetime.now(UTC)


def items(prefix: str, n: int = 2) -> bytes:
    return rss([{"title": f"{prefix} item {i}", "link": f"https://news.example/{prefix}/{i}",
                 "guid": f"{prefix}-{i}", "published": NOW - timedelta(minutes=5 + i),
                 "summary": "Nothing about the talks."} for i in range(n)], title=f"{prefix} news")


class Setup:
    def __init__(self, tmp_path, server: FeedServer) -> None:
        self.server = server
        self.tmp_path = tmp_path
        self.config = tmp_path / "monitor.toml"
        self.db = tmp_path / "m.db"
        server.set_feed("/config.xml", items("config"))
        from defaults import default_storylines

        self.config.write_text(f'[monitor]\ndatabase = "{self.db}"\n\n[[feeds]]\nname = "Configured"\n'
                               f'url = "{server.url("/config.xml")}"\n\n' + default_storylines())
        self.runner = CliRunner()
        from monitor.store import SQLiteStore

        SQLiteStore(self.db, create=True).close()  # the database of a monitor that has run once

    def run(self, *args: str, code: int = 0) -> str:
        result = self.runner.invoke(cli, ["--config", str(self.config), *args])
        assert result.exit_code == code, result.output
        return result.output

    def feeds(self) -> dict[str, dict]:
        return {row["name"]: row for row in json.loads(self.run("feeds", "--json"))}


@pytest.fixture
def setup(tmp_path):
    with FeedServer() as server:
        yield Setup(tmp_path, server)


def test_v_shows_what_any_command_does(setup):
    for path in ("/quiet.xml", "/told.xml"):
        setup.server.set_feed(path, items(path.strip("/.xml")))
    assert "fetched" not in setup.run("feeds", "add", setup.server.url("/quiet.xml"))
    url = setup.server.url("/told.xml")
    out = setup.run("-v", "feeds", "add", url)  # the fetch of the new feed, as run -v logs it
    assert f"DEBUG   fetched {url}: HTTP 200" in out


def test_an_added_feed_is_polled_by_run_once_on_top_of_the_config(setup):
    setup.server.set_feed("/extra.xml", items("extra", 3))
    out = setup.run("feeds", "add", setup.server.url("/extra.xml"), "--interval", "2m")
    assert "added 'extra news'" in out and "3 entries" in out and "every 2m" in out
    rows = setup.feeds()
    assert rows["extra news"]["from"] == "added" and rows["extra news"]["interval"] == 120
    assert rows["Configured"]["from"] == "config"
    out = setup.run("run", "--once")
    assert "polling 2 feeds: the config's and those added" in out
    rows = setup.feeds()
    assert rows["extra news"]["items_seen"] == 3 and rows["extra news"]["health"] == "ok"
    assert rows["Configured"]["items_seen"] == 2
    # again: by URL or by name, an added feed is refused twice; so is a config feed's URL
    setup.run("feeds", "add", setup.server.url("/extra.xml"), "--name", "Other", code=1)
    assert "already a feed" in setup.run("feeds", "add", setup.server.url("/config.xml"), code=1)


def test_a_web_page_url_adds_the_feed_it_announces(setup):
    setup.server.set_feed("/news/rss.xml", items("page"))
    setup.server.set_response("/", 200, b"<!doctype html><html><head><title>Site</title>"
                              b'<link rel="stylesheet" href="/s.css">'
                              b'<link rel="alternate" type="application/rss+xml" title="All" '
                              b'href="news/rss.xml"></head><body>News</body></html>',
                              headers={"Content-Type": "text/html; charset=utf-8"})
    out = setup.run("feeds", "add", setup.server.url("/"), "--name", "The site")
    assert f"announced by {setup.server.url('/')}" in out
    assert setup.feeds()["The site"]["url"] == setup.server.url("/news/rss.xml")


def test_a_web_page_without_a_feed_link_is_refused_with_a_reason(setup):
    setup.server.set_response("/plain", 200, b"<html><head><title>x</title></head><body>hi</body></html>",
                              headers={"Content-Type": "text/html"})
    result = setup.runner.invoke(cli, ["--config", str(setup.config), "feeds", "add",
                                       setup.server.url("/plain")])
    assert result.exit_code == 2 and "announces no feed" in result.output
    assert "Configured" in setup.feeds() and len(setup.feeds()) == 1


def test_feed_links_of_a_page():
    page = (b'<html><head><link rel="alternate" type="application/atom+xml" href="/atom">'
            b'<LINK REL="Alternate feed" TYPE="application/rss+xml; charset=utf-8" HREF="https://b.example/r"/>'
            b'<link rel="alternate" type="text/html" href="/fr">'
            b'<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">'
            b'<link rel="alternate" type="application/rss+xml" href="/atom"></head></html>')
    assert feed_links(page, "https://a.example/x/") == ["https://a.example/atom", "https://b.example/r"]


def test_pause_and_resume_any_feed(setup, caplog):
    setup.server.set_feed("/extra.xml", items("extra"))
    setup.run("feeds", "add", setup.server.url("/extra.xml"), "--name", "Extra")
    assert "'Configured' paused" in setup.run("feeds", "pause", "Configured")
    assert "paused already" in setup.run("feeds", "pause", "Configured")
    setup.run("feeds", "pause", setup.server.url("/extra.xml"))  # by URL too
    hits = dict(setup.server.hits)
    setup.run("run", "--once")
    assert setup.server.hits == hits  # neither was polled
    rows = setup.feeds()
    assert rows["Configured"]["health"] == "paused" and rows["Extra"]["paused_at"]
    setup.run("feeds", "resume", "Configured")
    setup.run("run", "--once")
    assert setup.server.hits["/config.xml"] == hits.get("/config.xml", 0) + 1
    assert setup.server.hits["/extra.xml"] == hits["/extra.xml"]
    assert "no feed 'Nope'" in setup.run("feeds", "pause", "Nope", code=1)


def test_remove_an_added_feed_but_not_a_configured_one(setup):
    setup.server.set_feed("/extra.xml", items("extra"))
    setup.run("feeds", "add", setup.server.url("/extra.xml"), "--name", "Extra")
    out = setup.run("feeds", "remove", "Configured", code=1)
    assert "is listed in" in out and "pause it" in out
    assert "removed 'Extra'" in setup.run("feeds", "remove", "Extra")
    assert list(setup.feeds()) == ["Configured"]


OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><head><title>My reader</title></head><body>
  <outline text="World"><outline type="rss" text="Extra &amp; more" xmlUrl="{extra}"/>
    <outline type="rss" text="Configured again" xmlUrl="{config}"/></outline>
  <outline type="rss" title="Local file" xmlUrl="file:///etc/passwd"/>
  <outline type="rss" text="Configured" xmlUrl="{other}"/>
</body></opml>"""


def test_import_then_export_opml(setup, tmp_path):
    opml = tmp_path / "in.opml"
    opml.write_text(OPML.format(extra=setup.server.url("/extra.xml"), config=setup.server.url("/config.xml"),
                                other=setup.server.url("/other.xml")))
    out = setup.run("feeds", "import", str(opml))
    assert "imported 2 feed(s)" in out and "1 already there" in out and "1 refused" in out
    rows = setup.feeds()
    assert rows["Extra & more"]["url"] == setup.server.url("/extra.xml")
    assert rows["Configured (2)"]["url"] == setup.server.url("/other.xml")  # names stay unique
    exported = setup.run("feeds", "export")
    root = ET.fromstring(exported.encode())
    assert root.tag == "opml" and root.get("version") == "2.0"
    outlines = [(o.get("text"), o.get("xmlUrl")) for o in root.iter("outline")]
    assert outlines == [("Configured", setup.server.url("/config.xml")),
                        ("Extra & more", setup.server.url("/extra.xml")),
                        ("Configured (2)", setup.server.url("/other.xml"))]
    # what another monitor imports from it is the same list
    again = tmp_path / "out.opml"
    again.write_text(exported)
    result = setup.runner.invoke(cli, ["--db", str(tmp_path / "other.db"), "--config", str(setup.config),
                                       "feeds", "import", str(again)])
    assert result.exit_code == 0 and "imported 2 feed(s)" in result.output


def test_a_doctype_without_entities_is_read(setup, tmp_path):
    path = tmp_path / "doctype.opml"
    path.write_bytes(b'<?xml version="1.0"?>\n<!DOCTYPE opml>\n<opml version="1.0"><head/><body>'
                     b'<outline text="A" xmlUrl="https://a.example/rss"/></body></opml>')
    assert "imported 1 feed(s)" in setup.run("feeds", "import", str(path))


@pytest.mark.parametrize("body, why", [
    (b"<opml><body><outline xmlUrl='http://a.example/'>", "not valid XML"),
    (b"<rss><channel/></rss>", "not an OPML document"),
    (b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa">]><opml version="2.0"><body>'
     b'<outline xmlUrl="http://a.example/&a;"/></body></opml>', "entity declaration"),
])
def test_a_bad_opml_file_exits_2_and_adds_nothing(setup, tmp_path, body, why):
    path = tmp_path / "bad.opml"
    path.write_bytes(body)
    out = setup.run("feeds", "import", str(path), code=2)
    assert why in out and list(setup.feeds()) == ["Configured"]


def test_the_daemon_picks_up_feeds_added_and_paused_while_it_runs(setup, caplog):
    from apscheduler.executors.pool import ThreadPoolExecutor

    from monitor.config import load_config
    from monitor.daemon import build_scheduler
    from monitor.pipeline import Monitor
    from monitor.store import SQLiteStore

    setup.server.set_feed("/extra.xml", items("extra"))
    config = load_config(setup.config)
    with SQLiteStore(setup.db) as store:
        monitor = Monitor(config, store)
        scheduler = build_scheduler(monitor, ThreadPoolExecutor(2))
        assert scheduler.get_job(f"feed:{setup.server.url('/config.xml')}")
        setup.run("feeds", "add", setup.server.url("/extra.xml"), "--name", "Extra")
        setup.run("feeds", "pause", "Configured")
        caplog.set_level(logging.INFO, logger="monitor")
        scheduler.get_job("feeds:reload").func()
        assert scheduler.get_job(f"feed:{setup.server.url('/extra.xml')}")
        assert scheduler.get_job(f"feed:{setup.server.url('/config.xml')}") is None
        assert "Extra: polled from now on, every 5m" in caplog.text
        assert "Configured: no longer polled" in caplog.text
        monitor.close()
