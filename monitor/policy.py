"""Alert policies: when a channel is told (issue 18). Pure: no I/O, no clock of its own.

In: a channel's policy (``ChannelPolicy``: mode, digest schedule, timezone, quiet hours, cap,
score floor) and the facts of one moment (now, the story's score, how many alerts the channel
got instantly in the last hour). Out: whether a new alert goes out now or is held, and until
when (``hold``); when the next digest of a schedule is due (``next_digest``).

Times in and out are aware datetimes in UTC; wall-clock times (``daily 07:00``, quiet hours)
are read in the channel's timezone, so a daily digest is due once per local day whatever the
clocks do: a time that does not exist on the day the clocks go forward (02:30 in a gap) is
taken as that wall time in the offset before the change (one hour later on the new clocks); a
time that happens twice when they go back is its first occurrence.

    >>> policy = ChannelPolicy(mode="digest", digest=parse_schedule("daily 07:00"),
    ...                        timezone="Asia/Jerusalem")
    >>> hold(policy, now=datetime(2026, 12, 5, 8, 0, tzinfo=UTC), score=90, recent=0)
    Hold(until=datetime.datetime(2026, 12, 6, 5, 0, tzinfo=datetime.timezone.utc), reason='digest')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

INSTANT = "instant"
DIGEST = "digest"
MODES = (INSTANT, DIGEST)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_EVERY = re.compile(r"^every\s+(\d+)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Schedule:
    """When a channel's digest goes out: ``every 1h`` (on the hour: whole multiples of the
    period since the Unix epoch, UTC), ``daily HH:MM`` or ``weekly mon HH:MM`` (local time)."""

    text: str
    every: float = 0.0  # seconds, for "every"
    at: time | None = None  # for "daily" and "weekly"
    weekday: int | None = None  # 0 = Monday, for "weekly"


@dataclass(frozen=True)
class QuietHours:
    """``22:00-06:30``: a window of local wall time, across midnight when start > end."""

    start: time
    end: time

    @property
    def text(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


DEFAULT_SCHEDULE_TEXT = "every 1h"


@dataclass(frozen=True)
class ChannelPolicy:
    """A channel's terms. The default (instant, nothing else) never holds anything."""

    mode: str = INSTANT
    digest: Schedule | None = None  # None: DEFAULT_SCHEDULE_TEXT (an instant channel's holds)
    timezone: str = "UTC"
    quiet_hours: QuietHours | None = None
    max_per_hour: int | None = None
    min_score: float = 0.0

    @property
    def schedule(self) -> Schedule:
        return self.digest or parse_schedule(DEFAULT_SCHEDULE_TEXT)

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def holds(self) -> bool:
        """Whether any alert of this channel can be held (else: no question to ask)."""
        return (self.mode == DIGEST or self.quiet_hours is not None
                or self.max_per_hour is not None or self.min_score > 0)


@dataclass(frozen=True)
class Hold:
    """A held alert: it goes out in the channel's digest due at ``until``, because of ``reason``
    (``digest``, ``quiet_hours``, ``min_score``, ``max_per_hour``)."""

    until: datetime
    reason: str


# --------------------------------------------------------------------------- parsing

def parse_clock(text: str) -> time:
    """``"07:00"`` -> 07:00. Raises ValueError."""
    found = _CLOCK.match(text.strip()) if isinstance(text, str) else None
    if not found:
        raise ValueError("a time of day as HH:MM (00:00 to 23:59)")
    return time(int(found.group(1)), int(found.group(2)))


def parse_schedule(text: str) -> Schedule:
    """``every 1h`` | ``daily HH:MM`` | ``weekly mon HH:MM``. Raises ValueError."""
    expected = "'every 1h' (s, m, h or d), 'daily HH:MM' or 'weekly mon HH:MM'"
    if not isinstance(text, str):
        raise ValueError(expected)
    words = text.strip().lower().split()
    if not words:
        raise ValueError(expected)
    if words[0] == "every":
        found = _EVERY.match(" ".join(words))
        if not found or int(found.group(1)) == 0:
            raise ValueError(expected)
        return Schedule(text=text.strip(), every=float(int(found.group(1)) * _UNITS[found.group(2)]))
    if words[0] == "daily" and len(words) == 2:
        return Schedule(text=text.strip(), at=parse_clock(words[1]))
    if words[0] == "weekly" and len(words) == 3 and words[1][:3] in WEEKDAYS:
        return Schedule(text=text.strip(), at=parse_clock(words[2]),
                        weekday=WEEKDAYS.index(words[1][:3]))
    raise ValueError(expected)


def parse_quiet_hours(text: str) -> QuietHours:
    """``"22:00-06:30"``. Raises ValueError."""
    if not isinstance(text, str) or text.count("-") != 1:
        raise ValueError("a window of local time as HH:MM-HH:MM, e.g. 22:00-06:30")
    start, end = (parse_clock(part) for part in text.split("-"))
    if start == end:
        raise ValueError("a window of local time as HH:MM-HH:MM whose start and end differ")
    return QuietHours(start, end)


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA timezone zoneinfo knows. Raises ValueError."""
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
        raise ValueError("an IANA timezone name such as Europe/London")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("an IANA timezone name such as Europe/London") from None
    return name


# --------------------------------------------------------------------------- decisions

def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall time ``at`` on ``day`` in ``tz``: in a gap, the wall time read in
    the offset before the change; when it happens twice, the first (fold 0 both ways)."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def next_digest(schedule: Schedule, tz: ZoneInfo, after: datetime) -> datetime:
    """The first time the digest is due strictly after ``after``."""
    if schedule.every:
        step = schedule.every
        return datetime.fromtimestamp((after.timestamp() // step + 1) * step, UTC)
    assert schedule.at is not None
    today = after.astimezone(tz).date()
    for offset in range(9):  # a weekly schedule meets its weekday within 8 local days
        day = today + timedelta(days=offset)
        if schedule.weekday is not None and day.weekday() != schedule.weekday:
            continue
        due = local_instant(day, schedule.at, tz)
        if due > after:
            return due
    raise AssertionError("unreachable: a schedule is due within 9 days")


def quiet_until(quiet: QuietHours, tz: ZoneInfo, now: datetime) -> datetime | None:
    """When the quiet hours that ``now`` falls in end, or None when it falls in none."""
    local = now.astimezone(tz)
    wall = local.time().replace(tzinfo=None)
    today = local.date()
    if quiet.start < quiet.end:  # within one day
        inside, end_day = quiet.start <= wall < quiet.end, today
    elif wall >= quiet.start:  # across midnight, before it
        inside, end_day = True, today + timedelta(days=1)
    else:
        inside, end_day = wall < quiet.end, today
    if not inside:
        return None
    return max(local_instant(end_day, quiet.end, tz), now)


def hold(policy: ChannelPolicy, *, now: datetime, score: float, recent: int) -> Hold | None:
    """Whether a new alert of a story scoring ``score`` waits, on a channel that sent (or
    queued to send) ``recent`` alerts instantly in the hour before ``now``; None: it goes now.

    A digest channel holds everything until its next digest; an instant channel holds during
    its quiet hours (until they end), below ``min_score`` and past ``max_per_hour`` (until its
    next digest: ``digest``, by default every hour; if that falls in its quiet hours, until
    they end)."""
    if policy.mode == DIGEST:
        return Hold(next_digest(policy.schedule, policy.tz, now), DIGEST)
    if policy.quiet_hours is not None:
        end = quiet_until(policy.quiet_hours, policy.tz, now)
        if end is not None:
            return Hold(end, "quiet_hours")
    if policy.min_score and score < policy.min_score:
        return Hold(_digest_after(policy, now), "min_score")
    if policy.max_per_hour is not None and recent >= policy.max_per_hour:
        return Hold(_digest_after(policy, now), "max_per_hour")
    return None


def _digest_after(policy: ChannelPolicy, now: datetime) -> datetime:
    """An instant channel's next digest, or the end of its quiet hours if it falls in them."""
    due = next_digest(policy.schedule, policy.tz, now)
    if policy.quiet_hours is not None:
        return quiet_until(policy.quiet_hours, policy.tz, due) or due
    return due
