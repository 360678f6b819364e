"""monitor.policy: when a channel is told. Tables of cases, daylight-saving days included."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.policy import (
    ChannelPolicy,
    Hold,
    hold,
    next_digest,
    parse_quiet_hours,
    parse_schedule,
    quiet_until,
)

JERUSALEM = ZoneInfo("Asia/Jerusalem")
LONDON = ZoneInfo("Europe/London")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("text, every, at, weekday", [
    ("every 1h", 3600, None, None),
    ("every 20s", 20, None, None),
    ("every 90m", 5400, None, None),
    ("every 1d", 86400, None, None),
    ("daily 07:00", 0, "07:00", None),
    ("daily 7:05", 0, "07:05", None),
    ("weekly mon 07:00", 0, "07:00", 0),
    ("weekly Sunday 18:30", 0, "18:30", 6),
])
def test_schedules_parse(text, every, at, weekday):
    schedule = parse_schedule(text)
    assert schedule.every == every
    assert (schedule.at.strftime("%H:%M") if schedule.at else None) == at
    assert schedule.weekday == weekday


@pytest.mark.parametrize("text", ["", "hourly", "every", "every 0h", "every 1w", "daily",
                                  "daily 24:00", "daily 7", "daily 07:60", "weekly 07:00",
                                  "weekly xyz 07:00", "weekly mon", 7])
def test_bad_schedules_are_refused(text):
    with pytest.raises(ValueError):
        parse_schedule(text)


@pytest.mark.parametrize("text", ["22:00", "22:00-22:00", "25:00-06:00", "22:00-06:30-07:00", ""])
def test_bad_quiet_hours_are_refused(text):
    with pytest.raises(ValueError):
        parse_quiet_hours(text)


# (schedule, zone, after, next due): ordinary days and the days the clocks change.
# Israel 2026: clocks go forward Fri 27 March 02:00 -> 03:00, back Sun 25 October 02:00 -> 01:00.
# UK 2026: forward Sun 29 March 01:00 -> 02:00, back Sun 25 October 02:00 -> 01:00.
NEXT = [
    ("daily 07:00", JERUSALEM, utc(2026, 12, 5, 4, 0), utc(2026, 12, 5, 5, 0)),  # winter: UTC+2
    ("daily 07:00", JERUSALEM, utc(2026, 12, 5, 5, 0), utc(2026, 12, 6, 5, 0)),  # strictly after
    ("daily 07:00", JERUSALEM, utc(2026, 7, 1, 3, 0), utc(2026, 7, 1, 4, 0)),  # summer: UTC+3
    ("daily 07:00", JERUSALEM, utc(2026, 3, 26, 6, 0), utc(2026, 3, 27, 4, 0)),  # forward day
    ("daily 07:00", JERUSALEM, utc(2026, 10, 24, 6, 0), utc(2026, 10, 25, 5, 0)),  # back day
    ("daily 02:30", JERUSALEM, utc(2026, 3, 26, 12, 0), utc(2026, 3, 27, 0, 30)),  # skipped time
    ("daily 01:30", JERUSALEM, utc(2026, 10, 24, 12, 0), utc(2026, 10, 24, 22, 30)),  # twice: 1st
    ("daily 01:30", JERUSALEM, utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 23, 30)),  # not the 2nd
    ("daily 01:30", LONDON, utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 1, 30)),  # skipped time
    ("daily 01:30", LONDON, utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30)),  # twice: 1st
    ("daily 01:30", LONDON, utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)),  # not the 2nd
    ("daily 07:00", LONDON, utc(2026, 10, 24, 7, 0), utc(2026, 10, 25, 7, 0)),  # GMT again
    ("weekly mon 07:00", LONDON, utc(2026, 12, 5, 12, 0), utc(2026, 12, 7, 7, 0)),  # Saturday
    ("weekly mon 07:00", LONDON, utc(2026, 12, 7, 7, 0), utc(2026, 12, 14, 7, 0)),
    ("weekly sat 07:00", JERUSALEM, utc(2026, 12, 5, 4, 0), utc(2026, 12, 5, 5, 0)),
    ("every 1h", JERUSALEM, utc(2026, 12, 5, 4, 10), utc(2026, 12, 5, 5, 0)),
    ("every 1h", JERUSALEM, utc(2026, 12, 5, 5, 0), utc(2026, 12, 5, 6, 0)),
    ("every 20s", LONDON, utc(2026, 12, 5, 5, 0, 7), utc(2026, 12, 5, 5, 0, 20)),
]


@pytest.mark.parametrize("text, zone, after, due", NEXT)
def test_next_digest(text, zone, after, due):
    assert next_digest(parse_schedule(text), zone, after) == due


@pytest.mark.parametrize("zone", [JERUSALEM, LONDON], ids=str)
@pytest.mark.parametrize("at", ["00:00", "01:30", "02:30", "07:00", "23:59"])
def test_a_daily_digest_is_due_once_every_local_day_of_a_year(zone, at):
    """Both daylight-saving days included: one digest per local date, never two, never none."""
    schedule = parse_schedule(f"daily {at}")
    due = utc(2026, 1, 1)
    days: Counter[date] = Counter()
    while due < utc(2027, 1, 1):
        later = next_digest(schedule, zone, due)
        assert later > due
        due = later
        days[due.astimezone(zone).date()] += 1
    first, last = min(days), max(days)
    assert set(days.values()) == {1}
    assert len(days) == (last - first).days + 1 >= 365


# (quiet hours, zone, now, end of the quiet hours or None)
QUIET = [
    ("22:00-06:30", JERUSALEM, utc(2026, 12, 5, 21, 0), utc(2026, 12, 6, 4, 30)),  # 23:00 local
    ("22:00-06:30", JERUSALEM, utc(2026, 12, 5, 3, 0), utc(2026, 12, 5, 4, 30)),  # 05:00 local
    ("22:00-06:30", JERUSALEM, utc(2026, 12, 5, 20, 0), utc(2026, 12, 6, 4, 30)),  # 22:00: in
    ("22:00-06:30", JERUSALEM, utc(2026, 12, 5, 4, 30), None),  # 06:30: out
    ("22:00-06:30", JERUSALEM, utc(2026, 12, 5, 10, 0), None),
    ("12:00-13:00", LONDON, utc(2026, 12, 5, 12, 30), utc(2026, 12, 5, 13, 0)),
    ("12:00-13:00", LONDON, utc(2026, 7, 5, 12, 30), None),  # 13:30 BST
    ("12:00-13:00", LONDON, utc(2026, 7, 5, 11, 30), utc(2026, 7, 5, 12, 0)),  # 12:30 BST
    ("22:00-06:30", LONDON, utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 5, 30)),  # night of the change
]


@pytest.mark.parametrize("text, zone, now, end", QUIET)
def test_quiet_hours(text, zone, now, end):
    assert quiet_until(parse_quiet_hours(text), zone, now) == end


DIGEST = ChannelPolicy(mode="digest", digest=parse_schedule("daily 07:00"), timezone="Asia/Jerusalem")
QUIET_CAPPED = ChannelPolicy(quiet_hours=parse_quiet_hours("22:00-06:30"), timezone="Europe/London",
                             max_per_hour=20, min_score=80)
NOON = utc(2026, 12, 5, 12, 0)

HOLDS = [
    (ChannelPolicy(), NOON, 10, 10_000, None),  # the default never holds
    (DIGEST, NOON, 100, 0, Hold(utc(2026, 12, 6, 5, 0), "digest")),
    (QUIET_CAPPED, NOON, 90, 0, None),
    (QUIET_CAPPED, NOON, 90, 19, None),
    (QUIET_CAPPED, NOON, 90, 20, Hold(utc(2026, 12, 5, 13, 0), "max_per_hour")),
    (QUIET_CAPPED, NOON, 79, 0, Hold(utc(2026, 12, 5, 13, 0), "min_score")),
    (QUIET_CAPPED, utc(2026, 12, 5, 23, 0), 100, 0, Hold(utc(2026, 12, 6, 6, 30), "quiet_hours")),
    (ChannelPolicy(max_per_hour=5, digest=parse_schedule("daily 07:00"), timezone="Europe/London"),
     NOON, 90, 5, Hold(utc(2026, 12, 6, 7, 0), "max_per_hour")),
    # a capped alert at 21:30 would wait for the 22:00 digest: in quiet hours, so until they end
    (QUIET_CAPPED, utc(2026, 12, 5, 21, 30), 90, 20, Hold(utc(2026, 12, 6, 6, 30), "max_per_hour")),
    (QUIET_CAPPED, utc(2026, 12, 5, 21, 30), 50, 0, Hold(utc(2026, 12, 6, 6, 30), "min_score")),
]


@pytest.mark.parametrize("policy, now, score, recent, expected", HOLDS)
def test_hold(policy, now, score, recent, expected):
    assert hold(policy, now=now, score=score, recent=recent) == expected
    assert policy.holds == (expected is not None or policy != ChannelPolicy())


def test_a_held_alert_is_due_after_it_was_queued():
    policy = ChannelPolicy(mode="digest", digest=parse_schedule("every 1h"))
    now = NOON
    for _ in range(500):
        now += timedelta(minutes=7)
        decided = hold(policy, now=now, score=0, recent=0)
        assert decided is not None and now < decided.until <= now + timedelta(hours=1)
