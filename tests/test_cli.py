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
    assert "cairo-talks" in table and "rules, or through ceasefire-talks" in table
    assert max(map(len, table.splitlines())) <= 100  # an 80-100 column terminal
    wide = invoke(filled, "storylines", "--wide")  # the name and the terms, untruncated
    assert "Cairo truce talks" in wide or "Cairo track" in wide
    assert "Cairo|Egypt" in wide and "…" not in wide and "..." not in wide
    # which decide by a shipped model, which by their rules
    assert {sid: r["decided_by"] for sid, r in rows.items()} == {
        "ceasefire-talks": "model", "cairo-talks": "rules, or through ceasefire-talks",
        "captive-releases": "model"}


def test_feeds_health(filled):
    (feed,) = json.loads(invoke(filled, "feeds", "--json"))
    assert feed["health"] == "ok" and feed["items_seen"] == 2 and feed["last_status"] == 200
    assert feed["from"] == "config" and feed["paused_at"] is None


def test_feeds_table_fits_100_columns_and_wide_has_the_rest(filled):
    _runner, config = filled
    long_name = "Agence France-Presse Middle East and North Africa wire, English edition"
    text = config.read_text().replace('name = "Local"', f'name = "{long_name}"')
    config.write_text(text)
    table = invoke(filled, "feeds")
    assert max(map(len, table.splitlines())) <= 100
    assert "Agence France-Presse" in table and " ok " in table
    wide = invoke(filled, "feeds", "--wide")
    assert long_name in wide and "http://127.0.0.1:" in wide and "5m" in wide


def test_matches_table_shows_the_item_id_and_the_link(filled):
    rows = json.loads(invoke(filled, "matches", "--json"))
    table = invoke(filled, "matches")
    assert "https://news.example/1" in table
    header = table.splitlines()[0]
    assert header.split()[:2] == ["item", "id"]
    assert any(line.split()[0] == str(rows[0]["item_id"]) for line in table.splitlines()[2:])
    # the id shown is the one feedback takes
    runner, config = filled
    result = runner.invoke(cli, ["--config", str(config), "feedback", str(rows[0]["item_id"]),
                                 "--storyline", rows[0]["storyline"], "right"])
    assert result.exit_code == 0 and "recorded" in result.output


def test_matches_since_and_search(filled):
    assert len(json.loads(invoke(filled, "matches", "--since", "1h", "--json"))) >= 2
    # the matched item was published 5 minutes ago
    assert json.loads(invoke(filled, "matches", "--since", "2m", "--json")) == []
    found = json.loads(invoke(filled, "matches", "--search", "egyptian MEDIATORS", "--json"))
    assert found and all("Egyptian mediators" in r["title"] for r in found)
    # every word, in the title or the summary ("intelligence" is in the summary only)
    assert json.loads(invoke(filled, "matches", "--search", "intelligence cairo", "--json"))
    assert json.loads(invoke(filled, "matches", "--search", "intelligence football", "--json")) == []
    assert json.loads(invoke(filled, "matches", "--search", "100%", "--json")) == []  # no wildcard
    runner, config = filled
    bad = runner.invoke(cli, ["--config", str(config), "matches", "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.output


def test_alerts_list(filled):
    rows = json.loads(invoke(filled, "alerts", "--json"))
    assert rows and {r["status"] for r in rows} == {"sent"} and {r["channel"] for r in rows} == {"console"}


def test_check_explains(filled):
    out = invoke(filled, "check", "Haniyeh leads Hamas delegation to Cairo for ceasefire talks")
    assert "cairo-talks" in out and "Cairo" in out
    rows = json.loads(invoke(filled, "check", "Bronze Shakira statue unveiled", "--json"))
    assert len(rows) == 3 and [r["matched"] for r in rows] == [False] * 3


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
