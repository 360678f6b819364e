"""Commands an operator runs to check a set-up: `alerts test`, `config check`; and what `run`
logs. Real receivers on 127.0.0.1, real SQLite files, the CLI through click's runner."""

from __future__ import annotations

import json
import logging
import tomllib
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from defaults import default_storylines
from feedserver import FeedServer, rss
from receivers import TEST_SECRET, SMTPReceiver, WebhookReceiver

from monitor.cli import cli
from monitor.config import load_config


def write_config(tmp_path, alerts: str, feeds: str = "") -> str:
    path = tmp_path / "monitor.toml"
    path.write_text(f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n\n{feeds}\n'
                    + default_storylines() + "\n" + alerts)
    return str(path)


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


def test_alerts_test_sends_a_marked_test_and_says_what_the_webhook_answered(tmp_path):
    with WebhookReceiver() as hook:
        config = write_config(tmp_path, f'[[alerts]]\ntype = "webhook"\nname = "desk"\nurl = "{hook.url}"\n'
                                        f'secret = "{TEST_SECRET}"\n')
        result = invoke("--config", config, "alerts", "test", "desk")
        assert result.exit_code == 0, result.output
        assert "desk: test alert delivered; the receiver answered HTTP 200" in result.output
        (received,) = hook.wait_for(1)
        assert received["verified"]
        body = json.loads(received["body"])
        assert body["type"] == "monitor.test" and body["data"]["test"] is True
        assert body["data"]["item"]["title"].startswith("TEST ALERT")
        hook.set_mode("500")
        result = invoke("--config", config, "alerts", "test", "desk")
        assert result.exit_code == 1 and "NOT delivered" in result.output and "HTTP 500" in result.output
    # nothing was written to the outbox: not even a database was created
    result = invoke("--config", config, "alerts", "--json")
    assert result.exit_code == 2 and "no such database" in result.output


def test_alerts_test_by_email_and_on_the_console(tmp_path):
    with SMTPReceiver() as smtp:
        config = write_config(tmp_path, f'[[alerts]]\ntype = "email"\nhost = "127.0.0.1"\n'
                                        f'port = {smtp.port}\nstarttls = false\nsender = "m@example.org"\n'
                                        'to = ["desk@example.org"]\n')
        result = invoke("--config", config, "alerts", "test", "email-0")
        assert result.exit_code == 0, result.output
        assert "accepted the message for 1 of 1 recipient(s)" in result.output
        (message,) = smtp.wait_for(1)
        assert "TEST ALERT" in message["Subject"]
    console = write_config(tmp_path, "")
    result = invoke("--config", console, "alerts", "test", "console")
    assert result.exit_code == 0 and "ALERT [test] TEST ALERT from ceasefire-monitor" in result.output
    result = invoke("--config", console, "alerts", "test", "nope")
    assert result.exit_code == 1 and "no channel 'nope'" in result.output


def test_config_check_prints_the_effective_config_with_secrets_masked(tmp_path):
    config = write_config(
        tmp_path,
        '[[alerts]]\ntype = "webhook"\nurl = "https://hook.example/in?token=abc123"\n'
        'secret = "${HOOK_SECRET}"\n\n'
        '[[alerts]]\ntype = "email"\nhost = "smtp.example.org"\nsender = "m@example.org"\n'
        'to = ["d@example.org"]\n'
        'username = "monitor"\npassword = "${SMTP_PASSWORD}"\n\n'
        '[[alerts]]\ntype = "apprise"\nurls = ["tgram://123456:SECRETTOKEN/987"]\n',
        feeds='[[feeds]]\nname = "A"\nurl = "https://a.example/rss"\ninterval = "3m"\n')
    env = {"HOOK_SECRET": TEST_SECRET, "SMTP_PASSWORD": "hunter2-password"}
    result = invoke("config", "check", "--config", config, env=env)
    assert result.exit_code == 0, result.output
    out = result.output
    for secret in (TEST_SECRET, "hunter2-password", "SECRETTOKEN", "abc123"):
        assert secret not in out
    assert "valid" in out.splitlines()[0]
    effective = tomllib.loads(out.split("\n", 2)[2])  # TOML after the first line and a blank one
    assert effective["monitor"]["poll_interval"] == "5m" and effective["monitor"]["fetch_workers"] == 8
    assert effective["feeds"] == [{"name": "A", "url": "https://a.example/rss", "interval": "3m"}]
    webhook, email, apprise = effective["alerts"]
    assert webhook["secret"] == "***" and webhook["url"] == "https://hook.example/in?token=***"
    assert email["password"] == "***" and email["username"] == "monitor"
    assert apprise["urls"] == ["tgram://***"]
    # the masked config reads back as a config, which is the same but for the secrets
    (tmp_path / "again.toml").write_text(out.split("\n", 2)[2].replace('"***"', f'"{TEST_SECRET}"', 1))
    again = load_config(tmp_path / "again.toml", environ={})
    original = load_config(config, environ=env)
    assert again.storylines == original.storylines and again.poll_interval == original.poll_interval
    data = json.loads(invoke("config", "check", "--config", config, "--json", env=env).output)
    assert data["alerts"][0]["secret"] == "***"


@pytest.mark.parametrize("toml, why", [
    ('[monitor]\npoll_interval = "often"\n', "monitor.poll_interval"),
    ('[[alerts]]\ntype = "webhook"\nurl = "https://h.example/"\nsecret = "whsec_!!notbase64"\n', "secret"),
    ('[[alerts]]\ntype = "apprise"\nurls = ["nosuchservice://x"]\n', "urls[0]"),
])
def test_config_check_exits_2_on_a_wrong_config(tmp_path, toml, why):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    result = invoke("config", "check", "--config", str(path))
    assert result.exit_code == 2 and why in result.output and "Traceback" not in result.output


def test_config_check_takes_the_global_config_option_too(tmp_path):
    config = write_config(tmp_path, "")
    result = invoke("--config", config, "config", "check")
    assert result.exit_code == 0 and config in result.output.splitlines()[0]


def test_run_once_logs_one_line_per_channel_and_the_alerts_under_v(tmp_path):
    now = datetime.now(UTC)
    with FeedServer() as server:
        server.set_feed("/f.xml", rss([
            {"title": f"Hamas delegation arrives in Cairo for truce talks, round {i}",
             "link": f"https://news.example/{i}", "guid": str(i), "published": now - timedelta(minutes=5),
             "summary": f"Egypt's mediators host talks on a ceasefire; topic {i} " + "word " * i}
            for i in range(3)]))
        config = write_config(tmp_path, "", feeds=f'[[feeds]]\nname = "Local"\n'
                                                   f'url = "{server.url("/f.xml")}"\n')
        result = invoke("--config", config, "run", "--once")
        assert result.exit_code == 0, result.output
        sent = [line for line in result.output.splitlines() if "alert(s) sent" in line]
        assert len(sent) == 1 and "console:" in sent[0], result.output
        assert "msg_" not in result.output
        server.set_feed("/f.xml", rss([
            {"title": "Gaza hostages freed as the truce holds", "link": "https://news.example/x",
             "guid": "x", "published": now - timedelta(minutes=1), "summary": "Hostages released."}]))
        verbose = invoke("--config", config, "-v", "run", "--once")
        assert verbose.exit_code == 0
        assert "sent on console: [" in verbose.output  # each alert, with its title, under -v


def test_v_shows_the_monitors_debug_lines_without_third_party_noise():
    from monitor.cli import setup_logging

    handler = setup_logging(1)
    def record(name: str, level: int) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, "m", None, None)

    assert handler.filter(record("monitor.pipeline", logging.DEBUG))
    assert not handler.filter(record("tzlocal", logging.DEBUG))
    assert not handler.filter(record("asyncio", logging.INFO))
    assert handler.filter(record("apscheduler.scheduler", logging.WARNING))
    assert setup_logging(2).filter(record("tzlocal", logging.DEBUG))  # -vv: everything


def test_the_daemon_logs_a_line_per_cycle_even_when_nothing_changed(tmp_path, caplog):
    from apscheduler.executors.pool import ThreadPoolExecutor

    from monitor.daemon import build_scheduler
    from monitor.pipeline import Monitor
    from monitor.store import SQLiteStore

    with FeedServer() as server:
        server.set_feed("/f.xml", rss([{"title": "Bronze statue unveiled", "link": "https://n.example/1",
                                         "guid": "1"}]))
        config = load_config(write_config(tmp_path, "", feeds=f'[[feeds]]\nname = "Local"\n'
                                                               f'url = "{server.url("/f.xml")}"\n'))
        with SQLiteStore(config.database) as store:
            monitor = Monitor(config, store)
            scheduler = build_scheduler(monitor, ThreadPoolExecutor(2))
            summary = scheduler.get_job("summary")
            assert summary.trigger.interval == timedelta(seconds=config.poll_interval)
            caplog.set_level(logging.INFO, logger="monitor")
            summary.func()
            assert "last 5m: nothing polled or delivered" in caplog.text
            monitor.poll_all()
            monitor.poll_all()  # a 304
            summary.func()
            assert ("last 5m: 2 poll(s): 1 unchanged, 0 failed, 1 new item(s); 0 alert(s) queued"
                    in caplog.text)
            monitor.close()


def test_health_says_whether_the_monitor_is_polling(tmp_path):
    with FeedServer() as server:
        server.set_feed("/f.xml", rss([{"title": "Bronze statue unveiled", "link": "https://n.example/1",
                                         "guid": "1"}]))
        config = write_config(tmp_path, "", feeds=f'[[feeds]]\nname = "Local"\n'
                                                   f'url = "{server.url("/f.xml")}"\n')
        result = invoke("--config", config, "health")
        assert result.exit_code == 1 and "no database" in result.output
        assert invoke("--config", config, "run", "--once").exit_code == 0
        result = invoke("--config", config, "health")
        assert result.exit_code == 0 and result.output.startswith("healthy: a feed was fetched")
        import time

        time.sleep(1.1)
        result = invoke("--config", config, "health", "--max-age", "1s")
        assert result.exit_code == 1 and "no feed fetched in the last 1s (last: " in result.output


def test_run_says_whether_the_matcher_is_compiled(tmp_path):
    import monitor.match

    config = write_config(tmp_path, "")
    result = invoke("--config", config, "run", "--once")
    assert result.exit_code == 0
    if monitor.match.__file__.endswith(".py"):
        assert ("WARNING the matcher runs as plain Python, not compiled with mypyc (~30 % slower"
                in result.output)
    else:
        assert "matcher compiled with mypyc" in result.output
