"""What the alert policies (issue 18) do to a desk's week: the news stream replayed on a clock.

In: a week (``--start``, ``--days``) of the 22,898-item stream of ``../shared/data/news``,
matched by the packaged config's matcher, recorded through the real store (an SQLite file in a
temp dir) one poll per item at its publication time, and delivered by the real dispatcher
(``Monitor.dispatch_all``, once a simulated minute) to three channels that record what they
are given:

- ``instant``: the default, one message per story;
- ``morning``: ``mode = "digest"``, ``digest = "daily 07:00"``, ``timezone = "Asia/Jerusalem"``;
- ``night-desk``: instant, ``quiet_hours = "22:00-06:30"`` (Jerusalem), ``max_per_hour = 3``.

Out: per channel, messages (instant, digests), the most in one hour and in one day, messages
in quiet hours; and the check that every story that alerted is in exactly one message of every
channel (exit 1 if not).

Example: python bench/digests.py --start 2023-10-07 --days 7
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from monitor.config import FeedConfig, load_config, packaged_storylines_toml
from monitor.dedup import fingerprint
from monitor.models import Alert, Item
from monitor.normalise import html_to_text
from monitor.pipeline import Monitor
from monitor.store import NewEntry, SQLiteStore
from monitor.stories import event_of

ROOT = Path(__file__).resolve().parent.parent
JERUSALEM = ZoneInfo("Asia/Jerusalem")
CHANNELS = """
[[alerts]]
type = "console"
name = "instant"

[[alerts]]
type = "console"
name = "morning"
mode = "digest"
digest = "daily 07:00"
timezone = "Asia/Jerusalem"

[[alerts]]
type = "console"
name = "night-desk"
quiet_hours = "22:00-06:30"
timezone = "Asia/Jerusalem"
max_per_hour = 3
"""


class Recorder:
    """A channel that keeps what it is given, with the (simulated) time."""

    def __init__(self, name: str, clock: list[datetime]) -> None:
        self.name = name
        self.clock = clock
        self.messages: list[tuple[datetime, Alert]] = []

    def deliver(self, alert: Alert) -> None:
        self.messages.append((self.clock[0], alert))

    def close(self) -> None:
        pass


def stories_of(alert: Alert) -> list[int]:
    data = alert.payload["data"]
    if alert.kind == "digest":
        return [s["story_id"] for g in data["storylines"] for s in g["stories"] if not s["update"]]
    return [data["story_id"]] if alert.kind == "storyline.match" else []


def main() -> int:
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--start", default="2023-10-07")
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    end = start + timedelta(days=args.days)
    reserved = (datetime(2023, 11, 22, tzinfo=UTC), datetime(2023, 12, 3, tzinfo=UTC))
    if start < reserved[1] and end > reserved[0]:
        parser.error("the stream's 2023-11-22 .. 2023-12-02 is kept for an independent check: "
                     "choose a week outside it")
    rows = []
    with gzip.open(args.data / "news" / "stream_2023-10-07_2023-12-31_7outlets.jsonl.gz", "rt") as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("published") and start <= datetime.fromisoformat(row["published"]) < end:
                rows.append(row)
    rows.sort(key=lambda r: (r["published"], r["id"]))
    with tempfile.TemporaryDirectory() as folder:
        config_path = Path(folder) / "monitor.toml"
        config_path.write_text(f'[monitor]\ndatabase = "{folder}/replay.db"\n'
                               + CHANNELS + packaged_storylines_toml())
        config = load_config(config_path, environ={})
        clock = [start]
        channels = [Recorder(c.name, clock) for c in config.channels]
        started = time.perf_counter()
        with SQLiteStore(config.database) as store:
            sources = sorted({r["source"] for r in rows})
            urls = {s: f"https://feeds.example/{n}.xml" for n, s in enumerate(sources)}
            store.sync_feeds([FeedConfig(name=s, url=u, interval=300.0) for s, u in urls.items()])
            monitor = Monitor(config, store, channels=channels, clock=lambda: clock[0])
            matcher = monitor.matcher
            policy = monitor.policy(first_poll=False)
            queue = list(rows)
            while clock[0] < end + timedelta(days=1):  # a day more: the last digests go out
                while queue and datetime.fromisoformat(queue[0]["published"]) <= clock[0]:
                    row = queue.pop(0)
                    title, summary = html_to_text(row["title"]), html_to_text(row.get("summary") or "")
                    item = Item(feed_url=urls[row["source"]], source=row["source"], guid=row["id"],
                                url=row.get("link"), title=title, summary=summary,
                                published=datetime.fromisoformat(row["published"]))
                    matches = tuple(matcher.match(title, summary))
                    entry = NewEntry(item=item, matches=matches,
                                     fingerprint=fingerprint(title, summary) if matches else None,
                                     event=event_of(title, summary) if matches else None)
                    if clock[0] - policy.alert_after > timedelta(hours=1):
                        policy = monitor.policy(first_poll=False)
                    store.record_poll(item.feed_url, [entry], now=clock[0], status=200,
                                      next_poll_at=clock[0] + timedelta(minutes=5), policy=policy)
                monitor.dispatch_all()
                clock[0] += timedelta(minutes=1)
            alerted = {r["story_id"] for r in store._read(
                "SELECT DISTINCT story_id FROM alerts WHERE kind = 'storyline.match'")}
        seconds = time.perf_counter() - started
    print(f"{len(rows)} stream items from {args.start}, {args.days} days; {len(alerted)} stories "
          f"alerted; replayed in {seconds:.1f} s\n")
    header = ("channel", "messages", "instant", "digests", "most in 1 h", "most in 1 day",
              "in 22:00-06:30", "stories once")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    ok = True
    for channel in channels:
        told = Counter(s for _at, alert in channel.messages for s in stories_of(alert))
        once = set(told) == alerted and set(told.values()) == {1}
        ok &= once
        times = [at for at, _alert in channel.messages]
        hourly = max((sum(1 for t in times if at - timedelta(hours=1) < t <= at) for at in times),
                     default=0)
        daily = Counter(at.astimezone(JERUSALEM).date() for at in times)
        quiet = sum(1 for at in times
                    if not "06:30" <= at.astimezone(JERUSALEM).strftime("%H:%M") < "22:00")
        digests = sum(1 for _at, alert in channel.messages if alert.kind == "digest")
        print(f"| {channel.name} | {len(times)} | {len(times) - digests} | {digests} | {hourly} "
              f"| {max(daily.values(), default=0)} | {quiet} | {'yes' if once else 'NO'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
