"""How many alerts a desk gets per development: story clustering replayed on labelled days.

In: ``labels/developments-*.jsonl`` (items of busy days, each with the development it reports,
labelled by hand; see labels/DEVELOPMENTS.md) and the shared news data for the items' text.
Out: a table per clustering mode:

- **alerts**: alerts on one channel that takes every storyline; **redundant**: alerts beyond
  the first for one development (what a desk reads twice); **alerts / development**;
- **mixed stories**: stories holding items of two developments (a merge hides news);
- B-cubed precision and recall of stories against developments (items with a development).

Modes: ``events`` (this release: copies, then events), ``copies`` (the MinHash layer alone, as
the release before, which alerted once per storyline and story), and ``per item`` (Miniflux and
rss2email: per-feed dedup only, one alert per matched item).

Each item goes through the real store (an SQLite file in a temp dir) in order of publication,
matched by the packaged config's matcher, one poll per item, exactly as the daemon records it.

Example: python bench/stories.py --labels labels/developments-2026-12-05.jsonl --data ../shared/data
(``--repeats``: what a desk read twice, and why each repeat did not join.)
(``--split tune`` / ``--split test``: the items of odd / even days only, each replayed alone.)
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from monitor.config import ChannelConfig, FeedConfig, load_config, packaged_default_path
from monitor.deciders import config_matcher
from monitor.dedup import fingerprint
from monitor.models import Item
from monitor.normalise import html_to_text
from monitor.store import AlertPolicy, NewEntry, SQLiteStore
from monitor.stories import RESERVED, Event, StoryProfile, _apart, bar_for, event_of, similarity

ROOT = Path(__file__).resolve().parent.parent


def texts(data: Path, wanted: set[str]) -> dict[str, dict]:
    found = {}
    with (data / "news" / "items.jsonl").open() as handle:
        for line in handle:
            row = json.loads(line)
            if row["id"] in wanted:
                found[row["id"]] = row
    with gzip.open(data / "news" / "stream_2023-10-07_2023-12-31_7outlets.jsonl.gz", "rt") as handle:
        for line in handle:
            row = json.loads(line)
            if row["id"] in wanted:
                found[row["id"]] = row
    return found


def split_of(published: str) -> str:
    """Tune or test, by day: odd date ordinals tune, even ones test (so a constant chosen on
    the tune days is measured on days it was not chosen on)."""
    return "tune" if date.fromisoformat(published[:10]).toordinal() % 2 else "test"


def replay(labelled: list[dict], raw: dict[str, dict], mode: str, matcher) -> dict[str, dict]:
    """Record each item through a fresh store; return item id -> {story, alerted}."""
    channel = ChannelConfig(type="console", name="desk")
    policy = AlertPolicy(channels=(channel,), storyline_names={},
                         alert_after=datetime(2000, 1, 1, tzinfo=UTC), event_stories=mode == "events")
    result: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder, SQLiteStore(Path(folder) / "replay.db") as store:
        feeds = sorted({row["source"] for row in labelled})
        urls = {source: f"https://feeds.example/{n}.xml" for n, source in enumerate(feeds)}
        store.sync_feeds([FeedConfig(name=source, url=url, interval=300.0) for source, url in urls.items()])
        store.sync_channels([channel])
        for row in labelled:
            source = raw[row["id"]]
            title = html_to_text(source["title"])
            summary = html_to_text(source.get("summary") or "")
            published = datetime.fromisoformat(row["published"])
            item = Item(feed_url=urls[row["source"]], source=row["source"], guid=row["id"],
                        url=source.get("link"), title=title, summary=summary, published=published)
            matches = tuple(matcher.match(title, summary))
            entry = NewEntry(item=item, matches=matches,
                             fingerprint=fingerprint(title, summary) if matches else None,
                             event=event_of(title, summary) if matches else None)
            store.record_poll(item.feed_url, [entry], now=published, status=200,
                              next_poll_at=published + timedelta(minutes=5), policy=policy)
        rows = store._read("SELECT i.guid, i.story_id, (SELECT COUNT(*) FROM alerts a "
                           "WHERE a.item_id = i.id) AS alerts, (SELECT group_concat(storyline_id) "
                           "FROM matches m WHERE m.item_id = i.id) AS storylines FROM items i")
        for r in rows:
            result[r["guid"]] = {"story": r["story_id"], "alerts": r["alerts"],
                                 "storylines": (r["storylines"] or "").split(",")}
    return result


def score(labelled: list[dict], outcome: dict[str, dict], mode: str) -> dict[str, float]:
    matched = [row for row in labelled if outcome[row["id"]]["storylines"] != [""]]
    if mode == "per item":
        alerts = {row["id"]: 1 for row in matched}
        story = {row["id"]: row["id"] for row in matched}
    elif mode == "copies":  # the release before: one alert per (storyline, story)
        first: dict[tuple[str, int], str] = {}
        for row in matched:
            for storyline in outcome[row["id"]]["storylines"]:
                first.setdefault((storyline, outcome[row["id"]]["story"]), row["id"])
        counted = Counter(first.values())
        alerts = {row["id"]: counted.get(row["id"], 0) for row in matched}
        story = {row["id"]: outcome[row["id"]]["story"] for row in matched}
    else:
        alerts = {row["id"]: outcome[row["id"]]["alerts"] for row in matched}
        story = {row["id"]: outcome[row["id"]]["story"] for row in matched}
    developed = [row for row in matched if row["development"]]
    per_development: Counter[str] = Counter()
    for row in developed:
        per_development[row["development"]] += alerts[row["id"]]
    by_story: dict[object, set[str]] = defaultdict(set)
    for row in developed:
        by_story[story[row["id"]]].add(row["development"])
    mixed = sum(1 for developments in by_story.values() if len(developments) > 1)
    precision, recall = [], []
    by_development: dict[str, set[str]] = defaultdict(set)
    members: dict[object, set[str]] = defaultdict(set)
    for row in developed:
        by_development[row["development"]].add(row["id"])
        members[story[row["id"]]].add(row["id"])
    for row in developed:
        same_story = members[story[row["id"]]]
        same_development = by_development[row["development"]]
        both = len(same_story & same_development)
        precision.append(both / len(same_story))
        recall.append(both / len(same_development))
    developments = len(by_development)
    total = sum(alerts.values())
    alerted_developments = sum(1 for d in by_development if per_development[d] > 0)
    return {"items": len(matched), "developments": developments,
            "alerts": total,
            "redundant": sum(max(0, n - 1) for n in per_development.values()),
            "missed": developments - alerted_developments,
            "per development": sum(per_development.values()) / developments if developments else 0,
            "mixed stories": mixed, "B3 precision": statistics.fmean(precision) if precision else 0,
            "B3 recall": statistics.fmean(recall) if recall else 0}


def print_repeats(labelled: list[dict], raw: dict[str, dict], outcome: dict[str, dict]) -> None:
    """Each development with more than one alert: its alerts, and for each after the first what
    kept it out of the first one's story (``stories._apart``'s reason, else its similarity under
    the bar), the story rebuilt from its items up to then."""
    def event(row: dict) -> Event:
        source = raw[row["id"]]
        return event_of(html_to_text(source["title"]), html_to_text(source.get("summary") or ""))

    def at(row: dict) -> float:
        return datetime.fromisoformat(row["published"]).timestamp()

    matched = [row for row in labelled if outcome[row["id"]]["storylines"] != [""]]
    by_development: dict[str, list[dict]] = defaultdict(list)
    for row in matched:
        if row["development"]:
            by_development[row["development"]].append(row)
    reasons: Counter[str] = Counter()
    for development, rows in by_development.items():
        alerted = [row for row in rows if outcome[row["id"]]["alerts"]]
        if len(alerted) < 2:
            continue
        print(f"REPEATED: {development} ({len(alerted)} alerts)")
        first_story = outcome[alerted[0]["id"]]["story"]
        print(f"   {alerted[0]['published'][:16]} {alerted[0]['title'][:90]}")
        for row in alerted[1:]:
            members = [m for m in matched if outcome[m["id"]]["story"] == first_story
                       and at(m) <= at(row)]
            profile = StoryProfile.start(first_story, event(members[0]), at(members[0]),
                                         members[0]["source"], set())
            for member in members[1:]:
                profile.add(event(member), at(member), member["source"], set())
            item = event(row)
            why = _apart(item, profile, at(row))
            if why is None:
                score, _ = similarity(item, profile, at(row))
                why = f"similarity {score:.2f} < {bar_for(item, profile, at(row)):.2f}"
            kind = "sources only" if why.startswith("a story") else why.split()[0]
            reasons[kind + (" (unsure)" if row.get("unsure") else "")] += 1
            print(f"   {row['published'][:16]} {row['title'][:90]}\n{'':20}{item.stage} / "
                  f"{profile.stage}: {why}{' (unsure)' if row.get('unsure') else ''}")
    print("repeats by what kept them apart: " + ", ".join(f"{why} {n}" for why, n in reasons.most_common()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=Path, action="append")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--mixes", action="store_true", help="print the mixed stories")
    parser.add_argument("--repeats", action="store_true",
                        help="print each development that alerted more than once, and why each "
                             "later alert did not join the story of the first")
    parser.add_argument("--on-topic", action="store_true", help="leave out items labelled offtopic")
    parser.add_argument("--split", choices=("all", "tune", "test"), default="all",
                        help="tune: items published on odd days (date ordinal), test: even days; "
                             "each replayed on its own")
    parser.add_argument("--mode", action="append", choices=("per item", "copies", "events"),
                        help="the modes to run (default: all three)")
    args = parser.parse_args()
    paths = args.labels or sorted((ROOT / "labels").glob("developments-*.jsonl"))
    labelled = [json.loads(line) for path in paths for line in path.read_text().splitlines()]
    labelled = [row for row in labelled
                if not RESERVED[0] <= row["published"][:10] <= RESERVED[1]]
    if args.on_topic:
        labelled = [row for row in labelled if not row.get("offtopic")]
    if args.split != "all":
        labelled = [row for row in labelled if split_of(row["published"]) == args.split]
    labelled.sort(key=lambda row: (row["published"], row["id"]))
    raw = texts(args.data, {row["id"] for row in labelled})
    labelled = [row for row in labelled if row["id"] in raw]
    matcher = config_matcher(load_config(packaged_default_path(), environ={}))
    print(f"{len(labelled)} labelled items, {len({r['development'] for r in labelled if r['development']})} "
          f"developments ({', '.join(str(p.name) for p in paths)})")
    header = ("mode", "alerts", "redundant", "alerts/dev", "missed", "mixed stories", "B3 P", "B3 R",
              "seconds", "CPU ms/item")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for mode in args.mode or ("per item", "copies", "events"):
        started, cpu = time.perf_counter(), time.process_time()
        outcome = replay(labelled, raw, "copies" if mode == "per item" else mode, matcher)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        s = score(labelled, outcome, mode)
        print(f"| {mode} | {s['alerts']} | {s['redundant']} | {s['per development']:.2f} | {s['missed']} "
              f"| {s['mixed stories']} | {s['B3 precision']:.3f} | {s['B3 recall']:.3f} | {seconds:.2f} "
              f"| {1000 * cpu / len(labelled):.2f} |")
        if args.repeats and mode == "events":
            print_repeats(labelled, raw, outcome)
        if args.mixes and mode == "events":
            by_story: dict[int, list[dict]] = defaultdict(list)
            for row in labelled:
                if row["development"] and outcome[row["id"]]["storylines"] != [""]:
                    by_story[outcome[row["id"]]["story"]].append(row)
            for rows in by_story.values():
                if len({r["development"] for r in rows}) > 1:
                    print("MIXED:")
                    for r in rows:
                        print(f"   {r['published'][:16]} {r['development'][:40]:40} {r['kind'][:4]} "
                              f"{r['title'][:80]}")


if __name__ == "__main__":
    main()
