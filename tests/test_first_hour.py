"""Issue 15, "commands that do what they say, and exits that tell the truth": what a new user
meets in the first hour, over real configs, real SQLite files and feeds on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from defaults import default_storylines
from faultkit import STORYLINES, Kit, headline, webhook
from feedserver import FeedServer, rss
from receivers import TEST_SECRET, WebhookReceiver, free_port

from monitor.cli import cli
from monitor.config import packaged_default_path

DATA = Path(__file__).parent / "data"
LABELS, ITEMS = str(DATA / "labels_sample.jsonl"), str(DATA / "items_sample.jsonl")
UNSET = "MONITOR_TEST_NEVER_SET_SECRET"


def _cli(*args: str, env: dict[str, str | None] | None = None):
    return CliRunner().invoke(cli, list(args), env={UNSET: None, **(env or {})})


def _config(tmp_path: Path, *, feeds: str = "", storylines: str = STORYLINES, alerts: str = "") -> Path:
    config = tmp_path / "monitor.toml"
    config.write_text(f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n{feeds}\n{alerts}\n{storylines}')
    return config


# --------------------------------------------------------------------------- delivery secrets

SECRET_CHANNELS = f"""
[[alerts]]
type = "webhook"
url = "http://127.0.0.1:9/hook"
secret = "${{{UNSET}}}"

[[alerts]]
type = "email"
host = "127.0.0.1"
sender = "m@example.org"
to = ["desk@example.org"]
username = "desk"
password = "${{{UNSET}}}"
"""


def test_read_commands_do_not_need_the_delivery_secrets(tmp_path):
    config = str(_config(tmp_path, alerts=SECRET_CHANNELS))
    created = _cli("--config", config, "run", "--once", env={UNSET: TEST_SECRET})
    assert created.exit_code == 0, created.output  # no feeds: nothing to deliver, but a database
    for args in (["storylines"], ["feeds"], ["matches"], ["alerts"], ["check", "Truce talks in Cairo"],
                 ["eval", LABELS, "--items", ITEMS]):
        result = _cli("--config", config, *args)
        assert result.exit_code == 0, (args, result.output)
        assert UNSET not in result.output, args
    # run delivers: it still needs them, and says which
    result = _cli("--config", config, "run", "--once")
    assert result.exit_code == 2
    assert f"alerts[0].secret: environment variable {UNSET} is not set" in result.output


# --------------------------------------------------------------------------- packaged models

def test_a_copied_default_config_finds_the_packaged_models(tmp_path):
    copy = tmp_path / "my.toml"
    shutil.copy(packaged_default_path(), copy)
    assert 'model = "builtin:ceasefire-talks"' in copy.read_text()
    result = _cli("--config", str(copy), "--db", str(tmp_path / "m.db"), "check", "--json",
                  "Hamas delegation arrives in Cairo for truce talks")
    assert result.exit_code == 0, result.output
    decided = {row["storyline"]: row for row in json.loads(result.output)}
    assert "learned" in decided["ceasefire-talks"] and "learned" in decided["captive-releases"]
    # and run --once with it, on a local feed instead of the outlets'
    with FeedServer() as server:
        server.set_feed("/f.xml", rss([{"title": "Hamas delegation in Cairo for truce talks",
                                        "link": "https://news.example/1", "guid": "1",
                                        "published": datetime.now(UTC) - timedelta(minutes=3)}]))
        text = copy.read_text()
        start, end = text.index("[[feeds]]"), text.index("# ------", text.index("[[feeds]]"))
        copy.write_text(text[:start] + f'[[feeds]]\nname = "local"\nurl = "{server.url("/f.xml")}"\n\n'
                        + text[end:])
        result = _cli("--config", str(copy), "--db", str(tmp_path / "m.db"), "run", "--once")
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("ALERT [")]
    assert "ceasefire-talks" in line  # one alert naming every storyline of the item


def test_an_unknown_packaged_model_names_the_known_ones(tmp_path):
    storylines = STORYLINES.replace('name = "Cairo track"', 'name = "Cairo track"\nmodel = "builtin:cairo"')
    result = _cli("--config", str(_config(tmp_path, storylines=storylines)), "storylines")
    assert result.exit_code == 2
    assert "storylines[1].model: expected a model file, or one of the packaged models: " \
           "builtin:captive-releases, builtin:ceasefire-talks, got a string 'builtin:cairo'" in result.output


# --------------------------------------------------------------------------- the database file

@pytest.mark.parametrize("args", [["matches"], ["storylines"], ["feeds"], ["alerts"],
                                  ["alerts", "retry", "--failed"], ["alerts", "enable", "console"],
                                  ["feedback", "1", "--storyline", "cairo", "right"]])
def test_commands_other_than_run_never_create_a_database(tmp_path, args):
    typo = tmp_path / "typo.db"
    result = _cli("--config", str(_config(tmp_path)), "--db", str(typo), *args)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"Error: {typo}: no such database ('monitor run' creates it; " \
                                    "--db or the config's database chooses it)"
    assert not typo.exists()


def test_run_and_learn_create_the_database(tmp_path):
    config = str(_config(tmp_path, storylines=default_storylines()))
    learned = _cli("--config", config, "--db", str(tmp_path / "a.db"), "learn", LABELS, "--items", ITEMS)
    assert learned.exit_code == 0, learned.output
    ran = _cli("--config", config, "--db", str(tmp_path / "b.db"), "run", "--once")
    assert ran.exit_code == 0, ran.output
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()


def _as_a_user_who_cannot_write(command: list[str]) -> list[str]:
    """root writes to read-only files: drop the capabilities that let it (util-linux setpriv)."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only file would be written anyway")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--", *command]


def test_a_read_only_database_is_one_clear_line_and_exit_2(tmp_path):
    with FeedServer() as server:
        server.set_feed("/f.xml", rss([headline(__import__("random").Random(1), 1)]))
        kit = Kit(tmp_path)
        kit.write(feeds=[("f", server.url("/f.xml"))])
        kit.run_once()
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{kit.db}{suffix}").exists():
                Path(f"{kit.db}{suffix}").chmod(0o444)
        try:
            for args in (["run", "--once"], ["run"]):
                result = subprocess.run(_as_a_user_who_cannot_write(kit.command(*args)), capture_output=True,
                                        text=True, env=kit.env, cwd=tmp_path, timeout=60)
                assert result.returncode == 2, (args, result.stderr)
                assert "Traceback" not in result.stderr
                errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
                assert errors == [f"Error: {kit.db}: the database is read-only (attempt to write a "
                                  "readonly database): the monitor must be able to write to the file "
                                  "and its folder"], result.stderr
        finally:
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{kit.db}{suffix}").exists():
                    Path(f"{kit.db}{suffix}").chmod(0o644)


# --------------------------------------------------------------------------- run --once's exit code

def test_run_once_exits_3_when_a_feed_failed_or_alerts_are_left_undelivered(tmp_path):
    import random

    with FeedServer() as server, WebhookReceiver() as hook:
        server.set_feed("/good.xml", rss([headline(random.Random(2), n) for n in range(3)]))
        server.set_response("/broken.xml", 500, b"oops")
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("good", server.url("/good.xml"))], channels=webhook(hook.url))
        assert kit.cli("run", "--once").returncode == 0  # everything polled and delivered

        kit.write(feeds=[("good", server.url("/good.xml")), ("broken", server.url("/broken.xml"))],
                  channels=webhook(hook.url))
        failed = kit.cli("run", "--once")
        assert failed.returncode == 3, failed.stderr
        assert "incomplete (exit code 3): 1 feed(s) failed, 0 alert(s) left undelivered" in failed.stderr

        server.set_feed("/good.xml", rss([headline(random.Random(3), n) for n in range(10, 13)]))
        kit.write(feeds=[("good", server.url("/good.xml"))],
                  channels=webhook(f"http://127.0.0.1:{free_port()}/down"))  # the receiver is down
        down = kit.cli("run", "--once")
        assert down.returncode == 3, down.stderr
        assert re.search(r"incomplete \(exit code 3\): 0 feed\(s\) failed, [1-9]\d* alert\(s\) left "
                         r"undelivered", down.stderr), down.stderr


def test_the_readme_documents_exit_code_3():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "3 `run --once` left something undone" in readme


def test_run_warns_when_the_config_has_no_feeds(tmp_path):
    kit = Kit(tmp_path)
    kit.write(feeds=[])
    result = kit.cli("run", "--once")
    assert result.returncode == 0
    assert f"no [[feeds]] in {kit.config}: there is nothing to poll" in result.stderr


# --------------------------------------------------------------------------- labels

def test_labels_naming_unknown_storylines_are_a_warning(tmp_path):
    config = str(_config(tmp_path, storylines=default_storylines()))
    result = CliRunner().invoke(cli, ["--config", config, "eval", LABELS, "--items", ITEMS])
    assert result.exit_code == 0
    assert "not in" not in result.output  # every storyline of the sample is configured
    only_two = str(_config(tmp_path))  # the fault tests' truce-talks and cairo
    result = CliRunner().invoke(cli, ["--config", only_two, "eval", LABELS, "--items", ITEMS])
    assert result.exit_code == 0
    assert (f"warning: {LABELS} names storylines that are not in {only_two}, ignored: cairo-talks, "
            "captive-releases, ceasefire-talks") in result.output


def test_an_empty_labels_file_is_an_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    config = str(_config(tmp_path, storylines=default_storylines()))
    for args in (["eval", str(empty), "--items", ITEMS], ["learn", str(empty), "--items", ITEMS],
                 ["train", str(empty), "--items", ITEMS, "--out", str(tmp_path / "out")]):
        result = _cli("--config", config, *args)
        assert result.exit_code == 2, (args, result.output)
        assert f"{empty}: no labels in the file" in result.output


# --------------------------------------------------------------------------- learn, feedback

def test_learn_says_what_decides_each_storyline_and_whether_the_examples_count(tmp_path):
    config = str(_config(tmp_path, storylines=default_storylines(learned=("cairo-talks",))))
    result = _cli("--config", config, "learn", LABELS, "--items", ITEMS)
    assert result.exit_code == 0, result.output
    lines = {line.split(":")[0].strip(): line for line in result.output.splitlines()[1:]}
    assert lines["ceasefire-talks"].endswith("(learned = false in the config: its model decides, and "
                                             "these examples are not used until learned = true)")
    assert "its rules decide" not in lines["captive-releases"]
    assert lines["cairo-talks"].endswith("(learned = true: a model is trained on them from the next "
                                         "start of monitor run)")
    report = json.loads(_cli("--config", config, "learn", LABELS, "--items", ITEMS, "--json").output)
    assert report["imported"] == 84  # 28 items, 3 storylines
    rows = {row["storyline"]: row for row in report["storylines"]}
    assert rows["ceasefire-talks"]["decided_by"] == "model" and rows["ceasefire-talks"]["used"] is False
    assert rows["cairo-talks"]["decided_by"] == "rules + desk" and rows["cairo-talks"]["used"] is True


def test_feedback_on_a_storyline_without_the_learned_layer_says_it_has_no_effect(tmp_path):
    import random

    with FeedServer() as server:
        server.set_feed("/f.xml", rss([headline(random.Random(4), 1)]))
        storylines = STORYLINES.replace('name = "Cairo track"', 'name = "Cairo track"\nlearned = true')
        config = str(_config(tmp_path, storylines=storylines,
                             feeds=f'[[feeds]]\nname = "f"\nurl = "{server.url("/f.xml")}"\n'))
        assert _cli("--config", config, "run", "--once").exit_code == 0
    (row,) = json.loads(_cli("--config", config, "matches", "--json", "--storyline", "cairo").output)
    off = _cli("--config", config, "feedback", str(row["item_id"]), "--storyline", "truce-talks", "wrong")
    assert off.exit_code == 0, off.output
    assert "note: truce-talks has learned = false" in off.output and "no effect" in off.output
    on = _cli("--config", config, "feedback", str(row["item_id"]), "--storyline", "cairo", "right")
    assert on.exit_code == 0 and "note:" not in on.output
    as_json = _cli("--config", config, "feedback", str(row["item_id"]), "--storyline", "truce-talks",
                   "right", "--json")
    assert json.loads(as_json.output)["used"] is False


# --------------------------------------------------------------------------- --json, check ""

def test_json_on_train_and_the_outbox_commands(tmp_path):
    config = str(_config(tmp_path, storylines=default_storylines()))
    trained = _cli("--config", config, "train", LABELS, "--items", ITEMS, "--out", str(tmp_path / "models"),
                   "--storyline", "ceasefire-talks", "--json")
    assert trained.exit_code == 0, trained.output
    (row,) = json.loads(trained.output)
    assert row["storyline"] == "ceasefire-talks" and Path(row["path"]).is_file()
    assert row["threshold_from"] == "cross-validation" and 0 < row["threshold"] < 1
    assert _cli("--config", config, "run", "--once").exit_code == 0  # a database with a console channel
    retry = _cli("--config", config, "alerts", "retry", "--failed", "--json")
    assert retry.exit_code == 1 and json.loads(retry.output) == {"requeued": 0}
    enable = _cli("--config", config, "alerts", "enable", "console", "--json")
    assert enable.exit_code == 0 and json.loads(enable.output) == {"channel": "console", "enabled": True}


@pytest.mark.parametrize("text", ["", "   ", "<b></b>"])
def test_check_refuses_an_empty_text(tmp_path, text):
    result = _cli("--config", str(_config(tmp_path)), "check", text)
    assert result.exit_code == 2
    assert "an empty text has no words to score" in result.output


def test_check_runs_without_a_database(tmp_path):
    result = _cli("--config", str(_config(tmp_path)), "check", "Truce talks in Cairo")
    assert result.exit_code == 0 and not (tmp_path / "m.db").exists()
    # with the learned layer on: no database, no examples: the model files decide
    config = str(_config(tmp_path, storylines=default_storylines(learned=("ceasefire-talks",))))
    result = _cli("--config", config, "check", "--json", "Hamas delegation in Cairo for truce talks")
    assert result.exit_code == 0, result.output
    assert {row["storyline"]: "learned" in row for row in json.loads(result.output)}["ceasefire-talks"]
    assert not (tmp_path / "m.db").exists()

