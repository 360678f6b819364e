"""The read commands of the CLI over a real database filled by a real poll."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from feedserver import FeedServer, rss

from monitor.cli import cli


@pytest.fixture
def filled(tmp_path):
    now = datetime.now(UTC)
    with FeedServer() as server:
        server.set_feed("/f.xml", rss([
            {"title": "Hamas delegation arrives in Cairo for truce talks with Egyptian mediators",
             "link": "https://news.example/1", "guid": "1", "published": now - timedelta(minutes=5),
             "summary": "Egypt's intelligence chief hosts the talks on a ceasefire and hostage deal."},
            {"title": "Bronze Shakira statue unveiled in Colombia", "link": "https://news.example/2",
             "guid": "2", "published": now - timedelta(minutes=6), "summary": "A 6.5-metre statue."},
        ]))
        config = tmp_path / "monitor.toml"
        from defaults import default_storylines

        storylines = default_storylines()
        config.write_text(f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n\n'
                          f'[[feeds]]\nname = "Local"\nurl = "{server.url("/f.xml")}"\n\n'
                          + storylines)
        runner = CliRunner()
        result = runner.invoke(cli, ["--config", str(config), "run", "--once"])
        assert result.exit_code == 0, result.output
        # the console channel is the default: one alert naming both storylines of the item
        [line] = [line for line in result.output.splitlines() if line.startswith("ALERT [")]
        assert "cairo-talks" in line and "ceasefire-talks" in line
        yield runner, config


def invoke(filled, *args):
    runner, config = filled
    result = runner.invoke(cli, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_matches_json(filled):
    rows = json.loads(invoke(filled, "matches", "--json"))
    assert {r["storyline"] for r in rows} >= {"cairo-talks", "ceasefire-talks"}
    assert all(r["title"].startswith("Hamas delegation") for r in rows)
    assert all(r["alerted"] for r in rows)
    only = json.loads(invoke(filled, "matches", "--storyline", "cairo-talks", "--json"))
    assert [r["storyline"] for r in only] == ["cairo-talks"]


def test_storylines_counts(filled):
    rows = {r["id"]: r for r in json.loads(invoke(filled, "storylines", "--json"))}
    assert rows["cairo-talks"]["matches_total"] == 1 and rows["cairo-talks"]["matches_24h"] == 1
    assert rows["captive-releases"]["matches_total"] == 0
    table = invoke(filled, "storylines")
    assert "cairo-talks" in table and "Cairo" in table
    # which decide by a shipped model, which by their rules
    assert {sid: r["decided_by"] for sid, r in rows.items()} == {
        "ceasefire-talks": "model", "cairo-talks": "rules, or through ceasefire-talks",
        "captive-releases": "model",
        "humanitarian-pause": "rules"}


def test_feeds_health(filled):
    (feed,) = json.loads(invoke(filled, "feeds", "--json"))
    assert feed["health"] == "ok" and feed["items_seen"] == 2 and feed["last_status"] == 200


def test_alerts_list(filled):
    rows = json.loads(invoke(filled, "alerts", "--json"))
    assert rows and {r["status"] for r in rows} == {"sent"} and {r["channel"] for r in rows} == {"console"}


def test_check_explains(filled):
    out = invoke(filled, "check", "Haniyeh leads Hamas delegation to Cairo for ceasefire talks")
    assert "cairo-talks" in out and "Cairo" in out
    rows = json.loads(invoke(filled, "check", "Bronze Shakira statue unveiled", "--json"))
    assert len(rows) == 4 and [r["matched"] for r in rows] == [False] * 4


def test_check_explains_a_match_through_the_refined_storyline(filled):
    # cairo-talks' own rules fail (Egypt and the truce are in different fields); ceasefire-talks
    # (its model) matches and an Egypt word is found: the shipped cairo-talks refines it
    args = ("check", "Spy chiefs meet Qatari PM to discuss building on Gaza truce",
            "--summary", "Egypt sent an envoy.")
    out = invoke(filled, *args)
    assert "cairo-talks (Cairo track): no match" in out
    assert ("[  ok] refines ceasefire-talks: ceasefire-talks matched and all[0] found: "
            "a match through ceasefire-talks") in out
    rows = {r["storyline"]: r for r in json.loads(invoke(filled, *args, "--json"))}
    assert rows["cairo-talks"]["refines"] == {
        "storyline": "ceasefire-talks", "matched": True,
        "why": "ceasefire-talks matched and all[0] found: a match through ceasefire-talks"}
    assert not rows["cairo-talks"]["matched"] and rows["ceasefire-talks"]["learned"]["matched"]
    assert "refines" not in rows["ceasefire-talks"]


def test_unknown_storyline_is_a_usage_error(filled):
    runner, config = filled
    result = runner.invoke(cli, ["--config", str(config), "matches", "--storyline", "nope"])
    assert result.exit_code == 2 and "no storyline 'nope'" in result.output


def test_foreign_database_exits_2(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"GIF89a not a database")
    result = CliRunner().invoke(cli, ["--db", str(bad), "feeds"])
    assert result.exit_code == 2
    assert f"Error: {bad}: not an SQLite database" in result.output
    assert bad.read_bytes() == b"GIF89a not a database"


def test_a_cycle_in_which_nothing_changed_never_loads_the_matcher(tmp_path):
    """run --once builds the matcher (imports rapidfuzz, loads the model files) on the first
    changed feed only: a cycle of 304s, the most common one, is spared ~70 ms."""
    import subprocess
    import sys

    from defaults import default_storylines

    code = ("import sys; from monitor.cli import cli\n"
            "try:\n    cli(sys.argv[1:], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('monitor.match', 'monitor.learn', 'rapidfuzz') if m in sys.modules))")
    with FeedServer() as server:
        server.set_feed("/f.xml", rss([
            {"title": "Hamas delegation arrives in Cairo for truce talks", "link": "https://news.example/1",
             "guid": "1", "published": datetime.now(UTC) - timedelta(minutes=5), "summary": "Talks."}]))
        config = tmp_path / "monitor.toml"
        config.write_text(f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n\n'
                          f'[[feeds]]\nname = "Local"\nurl = "{server.url("/f.xml")}"\n\n'
                          + default_storylines())
        loaded = []
        for _cycle in ("cold", "warm"):
            run = subprocess.run([sys.executable, "-c", code, "--config", str(config), "run", "--once"],
                                 capture_output=True, text=True, check=True, cwd=tmp_path)
            loaded.append(run.stdout.strip().splitlines()[-1])
    assert loaded == ["['monitor.learn', 'monitor.match', 'rapidfuzz']", "[]"]
