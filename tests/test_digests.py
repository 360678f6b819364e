"""Alert policies end to end (issue 18): digests, quiet hours, caps.

Real parts: a feed server, a Standard Webhooks receiver and an SMTP server on 127.0.0.1, the
SQLite file, the CLI as a subprocess. Long paths (a week) run on a simulated clock: the
``Monitor`` is given one, and its polls and deliveries are driven step by step as the daemon's
jobs would run them.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from faultkit import Kit, email, headline, webhook
from feedserver import FeedServer, rss
from receivers import TEST_SECRET, SMTPReceiver, WebhookReceiver

from monitor.alert import build_email, console_line, subject_of
from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.models import Alert
from monitor.payload import digest_payload
from monitor.pipeline import Monitor
from monitor.store import SQLiteStore

LONDON = ZoneInfo("Europe/London")
REPORT = re.compile(r"\breport (\d+)\b")


class World:
    """One feed that gains items on a simulated clock, the monitor polling and delivering."""

    def __init__(self, tmp_path, server: FeedServer, channels: str, start: datetime,
                 settings: str = "") -> None:
        self.server = server
        self.kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        self.kit.write(feeds=[("wire", server.url("/wire.xml"))], channels=channels,
                       settings=settings)
        self.now = [start]
        self.rng = random.Random(18)
        self.items: list[dict] = []
        self.server.set_feed("/wire.xml", rss([]))
        self.open()

    def open(self) -> None:
        config = load_config(self.kit.config, environ=self.kit.env)
        self.store = SQLiteStore(self.kit.db)
        self.monitor = Monitor(config, self.store, clock=lambda: self.now[0],
                               rng=random.Random(18))

    def close(self) -> None:
        self.monitor.close()
        self.store.close()

    def publish(self, count: int = 1) -> None:
        for _ in range(count):
            item = headline(self.rng, len(self.items))
            item["published"] = self.now[0]
            self.items.append(item)
        self.server.set_feed("/wire.xml", rss(self.items[-150:]))

    def step(self) -> None:
        self.monitor.poll_all()
        self.monitor.dispatch_all()

    def channel(self, name: str):
        return next(c for c in self.monitor.channels if c.name == name)

    def stories(self) -> set[int]:
        return {r["story_id"] for r in self.kit.rows("SELECT DISTINCT story_id FROM matches")}


def hook_stories(messages: list[dict]) -> list[int]:
    """The story ids each webhook message tells (a match: one; a digest: its stories)."""
    told = []
    for body in messages:
        data = body["data"]
        if body["type"] == "digest":
            told += [s["story_id"] for g in data["storylines"] for s in g["stories"]]
        else:
            told.append(data["story_id"])
    return told


def mail_reports(message) -> list[int]:
    return [int(n) for n in REPORT.findall(message.get_body(("plain",)).get_content())]


def test_a_week_of_daily_digests_quiet_hours_and_a_cap(tmp_path):
    """A simulated week across the night the clocks go back in Israel and the UK (25 October
    2026), a story every 20 minutes: the digest channel gets one digest per local day at 07:00
    Jerusalem time (04:00 UTC in summer time, 05:00 after), the email channel nothing instantly
    in its quiet hours (London) nor more than 2 in an hour; every story is in exactly one
    message per channel."""
    start = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
    with FeedServer() as server, WebhookReceiver() as hook, SMTPReceiver() as smtp:
        world = World(tmp_path, server, webhook(hook.url, extra='mode = "digest"\n'
                      'digest = "daily 07:00"\ntimezone = "Asia/Jerusalem"')
                      + email(smtp.port, extra='quiet_hours = "22:00-06:30"\n'
                              'timezone = "Europe/London"\nmax_per_hour = 2'), start)
        try:
            while world.now[0] < start + timedelta(days=7):
                world.publish()
                world.step()
                world.now[0] += timedelta(minutes=20)
            held = {r["channel"]: r["n"] for r in world.kit.rows(
                "SELECT channel, COUNT(*) AS n FROM alerts WHERE status = 'held' GROUP BY channel")}
            digests = [m["json"] for m in hook.received if m["json"]["type"] == "digest"]
            mails = list(smtp.messages)
            # what is held at the end of the week goes out with a flush
            assert world.monitor.write_digest("hook", everything=True) == held["hook"] > 0
            assert world.monitor.dispatch(world.channel("hook")).sent == 1
            if held.get("mail"):
                world.monitor.write_digest("mail", everything=True)
                world.monitor.dispatch(world.channel("mail"))
            stories = world.stories()
        finally:
            world.close()
    assert len(world.items) == 7 * 72 == len(stories)
    assert all(m["verified"] and m["status"] == 200 for m in hook.received)
    # one digest a local day, at 07:00 in Jerusalem, the day the clocks change included
    assert [d["data"]["until"] for d in digests] == [
        f"2026-10-{day}T0{4 if day < 25 else 5}:00:00+00:00" for day in range(21, 28)]
    assert all(d["data"]["count"] > 0 for d in digests)
    told = hook_stories(m["json"] for m in hook.received)
    assert len(told) == len(set(told)) and set(told) == stories  # never twice, never missing
    assert len({m["id"] for m in hook.received}) == len(hook.received) == 8
    # the email channel: each story once; nothing instant in quiet hours; at most 2 an hour
    reports = Counter(n for message in smtp.messages for n in mail_reports(message))
    assert set(reports.values()) == {1} and len(reports) == len(stories)
    instant = [datetime.fromisoformat(str(m["Date"].datetime)) for m in mails
               if not m["Subject"].startswith("[digest]")]
    digest_mails = [m for m in mails if m["Subject"].startswith("[digest]")]
    assert instant and digest_mails
    for sent in instant:
        assert sum(1 for other in instant if sent - timedelta(hours=1) < other <= sent) <= 2
    sent_at = [m["Date"].datetime.astimezone(LONDON).strftime("%H:%M") for m in mails]
    assert all("06:30" <= local < "22:00" for local in sent_at), sorted(sent_at)
    # quiet nights end with one digest at 06:30 London time (the first look at the outbox after)
    mornings = [m for m, local in zip(mails, sent_at, strict=True)
                if "06:30" <= local < "06:50" and m in digest_mails]
    assert len(mornings) == 7
    print(f"\na simulated week, {len(stories)} stories: {len(digests)} daily digests on the webhook; "
          f"{len(instant)} instant emails and {len(digest_mails)} email digests "
          f"({len(mornings)} at the end of quiet hours)")


def test_the_cap_holds_a_burst_of_100_stories_and_flush_sends_them(tmp_path):
    """100 stories at once on a channel capped at 20 an hour: 20 go out, 80 wait; `monitor
    alerts` says so; `monitor alerts flush` sends them as one digest (then has nothing)."""
    # five past the last hour: the next hourly digest is 55 minutes away
    now = datetime.now(UTC).replace(minute=5, second=0, microsecond=0) - timedelta(hours=1)
    with FeedServer() as server, WebhookReceiver() as hook:
        world = World(tmp_path, server, webhook(hook.url, extra="max_per_hour = 20"), now)
        try:
            world.publish(100)
            world.step()
            assert len(hook.received) == 20
            world.now[0] += timedelta(minutes=30)
            world.publish()  # the cap counts the last hour: still held
            world.step()
            assert len(hook.received) == 20
        finally:
            world.close()
        shown = world.kit.cli("alerts")
        assert shown.returncode == 0, shown.stderr
        assert "channel hook: instant, at most 20/h; 81 held; next digest" in shown.stdout
        held = world.kit.json("alerts", "--status", "held", "--limit", "1000")
        assert len(held) == 81
        flushed = world.kit.cli("alerts", "flush", "hook")
        assert flushed.returncode == 0, flushed.stderr
        assert "hook: digest of 81 stories and feed notices queued; 1 message(s) sent" in flushed.stdout
        again = world.kit.cli("alerts", "flush", "hook")
        assert again.returncode == 1 and "nothing held" in again.stdout
        assert world.kit.cli("alerts", "flush", "nope").returncode == 1
    assert len(hook.received) == 21
    digest = hook.received[-1]["json"]
    assert digest["type"] == "digest" and digest["data"]["count"] == 81
    told = hook_stories(m["json"] for m in hook.received)
    assert len(told) == len(set(told)) == 101
    rows = world.kit.rows("SELECT status, COUNT(*) AS n FROM alerts GROUP BY status")
    assert {r["status"]: r["n"] for r in rows} == {"sent": 21, "digested": 81}


def test_a_digest_that_fails_is_resent_with_the_same_id_after_a_crash(tmp_path):
    """The digest is one outbox row: a 500, then the process gone (store closed without
    anything else written), then a new process: the same digest with the same webhook-id."""
    start = datetime(2026, 12, 5, 10, 5, tzinfo=UTC)
    with FeedServer() as server, WebhookReceiver() as hook:
        world = World(tmp_path, server, webhook(hook.url, extra='mode = "digest"\n'
                                                'digest = "every 1h"'), start)
        try:
            world.publish(3)
            world.step()
            assert hook.received == []  # held until 11:00
            world.now[0] = datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
            hook.queue(500)
            report = world.monitor.dispatch(world.channel("hook"))
            assert report.retrying == 1
        finally:
            world.close()  # the process dies
        world.now[0] += timedelta(minutes=10)
        world.open()
        try:
            assert world.monitor.write_digest("hook") == 0  # already written: nothing held
            assert world.monitor.dispatch(world.channel("hook")).sent == 1
        finally:
            world.close()
    assert [m["status"] for m in hook.received] == [500, 200]
    assert hook.received[0]["id"] == hook.received[1]["id"]
    assert hook.received[0]["body"] == hook.received[1]["body"]
    assert hook.received[1]["json"]["data"]["count"] == 3
    rows = world.kit.rows("SELECT id, kind, status, digest_id FROM alerts ORDER BY id")
    digest_id = rows[-1]["id"]
    assert [r["kind"] for r in rows] == ["storyline.match"] * 3 + ["digest"]
    assert [(r["status"], r["digest_id"]) for r in rows[:3]] == [("digested", digest_id)] * 3


def test_nothing_held_writes_no_digest(tmp_path):
    start = datetime(2026, 12, 5, 10, 5, tzinfo=UTC)
    with FeedServer() as server, WebhookReceiver() as hook:
        world = World(tmp_path, server, webhook(hook.url, extra='mode = "digest"\n'
                                                'digest = "every 1h"'), start)
        try:
            for _ in range(5):
                world.step()
                world.now[0] += timedelta(hours=1)
        finally:
            world.close()
    assert hook.received == []
    assert world.kit.rows("SELECT COUNT(*) AS n FROM alerts")[0]["n"] == 0


@pytest.mark.parametrize("keys, where", [
    ('mode = "weekly"', "alerts[0].mode"),
    ('mode = "digest"', "alerts[0].digest"),
    ('digest = "daily 25:00"', "alerts[0].digest"),
    ('digest = "hourly"', "alerts[0].digest"),
    ('timezone = "Mars/Olympus"', "alerts[0].timezone"),
    ('mode = "digest"\ndigest = "daily 07:00"\nquiet_hours = "22:00-06:30"', "alerts[0].quiet_hours"),
    ('quiet_hours = "22:00"', "alerts[0].quiet_hours"),
    ("max_per_hour = 0", "alerts[0].max_per_hour"),
    ('max_per_hour = "20"', "alerts[0].max_per_hour"),
    ("min_score = 101", "alerts[0].min_score"),
])
def test_config_errors_name_the_key(tmp_path, keys, where):
    kit = Kit(tmp_path)
    kit.write(feeds=[("a", "http://127.0.0.1:9/a.xml")], channels=f"""
[[alerts]]
type = "console"
{keys}
""")
    with pytest.raises(ConfigError) as error:
        load_config(kit.config, environ=kit.env)
    assert f": {where}: " in str(error.value)
    if where.endswith("timezone"):  # and the CLI: one line, exit 2
        result = kit.cli("config", "check")
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and where in result.stderr


def test_the_effective_config_shows_the_policy_and_reads_back(tmp_path):
    kit = Kit(tmp_path)
    kit.write(feeds=[("a", "http://127.0.0.1:9/a.xml")], channels="""
[[alerts]]
type = "console"
mode = "digest"
digest = "weekly mon 07:00"
timezone = "Asia/Jerusalem"
""")
    result = kit.cli("config", "check")
    assert result.returncode == 0, result.stderr
    assert 'digest = "weekly mon 07:00"' in result.stdout
    (tmp_path / "again.toml").write_text(result.stdout)
    again = load_config(tmp_path / "again.toml")
    assert again.channels[0].policy == load_config(kit.config).channels[0].policy
    from monitor.store import SQLiteStore

    SQLiteStore(kit.db, create=True).close()  # the database of a monitor that has run once
    shown = kit.cli("alerts")
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"channel console-0: digest \(weekly mon 07:00\); 0 held; next digest "
                     r"\d{4}-\d\d-\d\d 07:00 Asia/Jerusalem \(0[45]:00 UTC\)", shown.stdout), shown.stdout


def _digest_alert() -> Alert:
    now = datetime(2026, 12, 5, 5, 0, tzinfo=UTC)

    def body(story_id: int, title: str, storyline: str, published: str) -> dict:
        return {"type": "storyline.match", "timestamp": now.isoformat(), "data": {
            "storyline": {"id": storyline, "name": storyline.title()},
            "storylines": [{"id": storyline, "name": storyline.title()}],
            "item": {"title": title, "link": f"https://news.example/{story_id}",
                     "source": "Wire", "published": published, "summary": "..."},
            "story_id": story_id, "score": 95, "sources": []}}

    payload = digest_payload(timestamp=now, channel="desk", since=now - timedelta(hours=24), alerts=[
        ("storyline.match", body(1, "Older <b>talks</b> & more", "cairo", "2026-12-04T08:00:00+00:00")),
        ("storyline.match", body(2, "Hostage <script>alert(1)</script> deal", "hostages",
                                 "2026-12-04T20:00:00+00:00")),
        ("storyline.match", body(3, "Newer talks", "cairo", "2026-12-04T10:00:00+00:00")),
        ("story.updated", body(1, "Older talks, update", "cairo", "2026-12-04T11:00:00+00:00")),
        ("feed.down", {"type": "feed.down", "timestamp": "2026-12-04T23:00:00+00:00", "data": {
            "feed": {"name": "Wire <i>", "url": "https://wire.example/rss"},
            "consecutive_errors": 5, "last_error": "HTTP 500"}}),
    ], sources={1: [{"source": "Wire"}, {"source": "Agency"}], 2: [{"source": "Wire"}]})
    return Alert(id=9, uid="msg_digest", channel="desk", kind="digest", storyline_id=None,
                 story_id=None, created_at=now, payload=payload)


def test_a_digest_groups_by_storyline_newest_first_and_renders_escaped():
    alert = _digest_alert()
    data = alert.payload["data"]
    assert data["count"] == 3  # the update of story 1 is not told twice
    assert [g["storyline"]["id"] for g in data["storylines"]] == ["hostages", "cairo"]
    assert [s["story_id"] for s in data["storylines"][1]["stories"]] == [3, 1]
    assert data["storylines"][1]["stories"][1]["outlets"] == ["Agency", "Wire"]
    assert subject_of(alert) == "[digest] 3 stories; 1 feed notice(s): Hostages, Cairo"
    message = build_email(alert, sender="m@example.org", to=["desk@example.org"])
    text = message.get_body(("plain",)).get_content()
    assert text.index("Hostage <script>") < text.index("Newer talks") < text.index("Older <b>talks")
    assert "Agency, Wire" in text and "https://news.example/3" in text
    assert "Feeds:\n- Wire <i> down (2026-12-04 23:00 UTC): HTTP 500" in text
    page = message.get_body(("html",)).get_content()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<a href="https://news.example/2">' in page and "Wire &lt;i&gt; down" in page
    line = console_line(alert)
    assert line.startswith("DIGEST desk: 3 stories since 2026-12-04 05:00 UTC")
    assert "\x1b" not in line and "Newer talks" in line


def test_real_clock_a_digest_every_20s_outlives_a_sigkill_and_quiet_hours_end_in_a_digest(tmp_path):
    """`monitor run` on the real clock: a webhook channel with a digest every 20 s whose
    receiver hangs; the daemon is SIGKILLed during the digest's delivery and started again: the
    same digest arrives with the same webhook-id. An email channel whose quiet hours cover this
    minute gets nothing until they end, then one digest."""
    import time

    now = datetime.now(UTC)
    if now.second > 40:  # the quiet minute must still have 20 s to go when the poll lands
        time.sleep(61 - now.second)
        now = datetime.now(UTC)
    local = now.astimezone(LONDON)
    quiet = f"{local:%H:%M}-{local + timedelta(minutes=1):%H:%M}"
    quiet_end = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
    rng = random.Random(20)
    with FeedServer() as server, WebhookReceiver(hang_seconds=60) as hook, SMTPReceiver() as smtp:
        server.set_feed("/a.xml", rss([headline(rng, n) for n in range(3)]))
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("a", server.url("/a.xml"))], channels=webhook(
            hook.url, extra='mode = "digest"\ndigest = "every 20s"\ntimeout = "50s"') + email(
            smtp.port, extra=f'quiet_hours = "{quiet}"\ntimezone = "Europe/London"'))
        hook.set_mode("hang")
        with kit.start() as daemon:
            hook.wait_for(1, timeout=40)
            daemon.kill()  # SIGKILL while the digest is being delivered
        hook.set_mode("ok")
        with kit.start() as daemon:
            hook.wait_for(2, timeout=40)
            mails = smtp.wait_for(1, timeout=90)
            time.sleep(1.5)  # nothing else comes
            assert daemon.stop() == 0
    assert len(hook.received) == 2
    first, second = hook.received
    assert first["id"] == second["id"] and first["body"] == second["body"] and second["verified"]
    assert second["json"]["type"] == "digest" and second["json"]["data"]["count"] == 3
    assert len(mails) == 1 and mails[0]["Subject"].startswith("[digest] 3 stories")
    assert mails[0]["Date"].datetime >= quiet_end.astimezone(UTC)
    rows = kit.rows("SELECT channel, kind, status FROM alerts ORDER BY id")
    assert Counter((r["channel"], r["kind"], r["status"]) for r in rows) == Counter({
        ("hook", "storyline.match", "digested"): 3, ("mail", "storyline.match", "digested"): 3,
        ("hook", "digest", "sent"): 1, ("mail", "digest", "sent"): 1})


def test_two_processes_writing_one_digest_write_it_once(tmp_path):
    """`monitor alerts flush` while the daemon writes the same digest: both read the held rows,
    the second write finds them digested and writes nothing (one transaction each)."""
    start = datetime(2026, 12, 5, 10, 5, tzinfo=UTC)
    with FeedServer() as server, WebhookReceiver() as hook:
        world = World(tmp_path, server, webhook(hook.url, extra='mode = "digest"\n'
                                                'digest = "daily 07:00"'), start)
        try:
            world.publish(4)
            world.monitor.poll_all()
            with SQLiteStore(world.kit.db) as other:
                mine = world.store.held_alerts("hook", due_by=None)
                theirs = other.held_alerts("hook", due_by=None)
                assert [a.id for a in mine] == [a.id for a in theirs] and len(mine) == 4
                body = {"type": "digest", "data": {"count": 4}}
                first = other.write_digest("hook", body, [a.id for a in theirs], now=start)
                assert first is not None
                assert world.store.write_digest("hook", body, [a.id for a in mine], now=start) is None
                assert world.store.write_digest("hook", body, [], now=start) is None
        finally:
            world.close()
    rows = world.kit.rows("SELECT kind, status, digest_id FROM alerts ORDER BY id")
    assert [r["kind"] for r in rows] == ["storyline.match"] * 4 + ["digest"]
    assert {(r["status"], r["digest_id"]) for r in rows[:4]} == {("digested", first)}


def test_a_feed_down_in_quiet_hours_waits_for_their_end(tmp_path):
    """Feed health alerts wait too: a feed that fails at 23:00 (London) is in the digest at
    06:30, under Feeds, with its error; nothing is sent before."""
    start = datetime(2026, 12, 5, 23, 0, tzinfo=UTC)
    with FeedServer() as server, WebhookReceiver() as hook:
        world = World(tmp_path, server, webhook(hook.url, extra='quiet_hours = "22:00-06:30"\n'
                      'timezone = "Europe/London"'), start, settings="feed_down_after = 1")
        try:
            server.set_response("/wire.xml", 500, b"down")
            while world.now[0] < datetime(2026, 12, 6, 7, 0, tzinfo=UTC):
                world.step()
                world.now[0] += timedelta(minutes=30)
                if world.now[0] < datetime(2026, 12, 6, 6, 30, tzinfo=UTC):
                    assert hook.received == []
        finally:
            world.close()
    assert len(hook.received) == 1
    digest = hook.received[0]["json"]
    assert digest["type"] == "digest" and digest["timestamp"].startswith("2026-12-06T06:30")
    assert digest["data"]["count"] == 0
    assert [(f["type"], f["name"]) for f in digest["data"]["feeds"]] == [("feed.down", "wire")]
    assert "500" in digest["data"]["feeds"][0]["last_error"]


# --------------------------------------------------------------------------- the pure policy

def test_every_counts_seconds_minutes_hours_and_days():
    from monitor.policy import parse_schedule

    assert [parse_schedule(f"every {text}").every for text in ("90s", "2m", "3h", "1d")] \
        == [90.0, 120.0, 10800.0, 86400.0]


def test_a_weekly_digest_takes_a_weekday_written_in_full_and_waits_for_it():
    from monitor.policy import next_digest, parse_schedule

    weekly = parse_schedule("weekly Monday 07:00")
    assert weekly.weekday == 0
    london = ZoneInfo("Europe/London")
    wednesday_noon = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert next_digest(weekly, london, wednesday_noon) == datetime(2026, 12, 7, 7, 0, tzinfo=UTC)


def test_a_digest_is_due_strictly_after_the_time_asked_about():
    from monitor.policy import next_digest, parse_schedule

    daily = parse_schedule("daily 07:00")
    seven = datetime(2026, 12, 5, 7, 0, tzinfo=UTC)
    assert next_digest(daily, ZoneInfo("UTC"), seven) == seven + timedelta(days=1)
    assert next_digest(daily, ZoneInfo("UTC"), seven - timedelta(seconds=1)) == seven


def test_min_score_lets_a_story_at_the_bar_through_and_holds_one_below():
    from monitor.policy import ChannelPolicy, hold

    policy = ChannelPolicy(min_score=80.0)
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert hold(policy, now=now, score=80.0, recent=0) is None
    held = hold(policy, now=now, score=79.9, recent=0)
    assert held is not None and held.reason == "min_score"


def test_quiet_hours_that_are_not_text_are_a_clear_error():
    from monitor.policy import parse_quiet_hours

    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        parse_quiet_hours(2200)  # type: ignore[arg-type]  # a TOML number, not "22:00-06:30"
