"""Pipeline throughput without the network, on one core: the farm's bodies read from disk go
through parse -> normalise -> match -> dedup (fingerprint + the store's three layers) -> store,
as ``Monitor._poll`` runs them. Prints one JSON line with items/s and seconds per stage.

    python bench/throughput.py CONFIG FARM_DIR DB
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path


def main() -> None:
    config_path, farm, db = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    from monitor.config import load_config
    from monitor.dedup import fingerprint
    try:
        from monitor.stories import event_of
    except ImportError:  # a release before event-level stories: fingerprints only
        def event_of(title, summary):
            return None
    from monitor.deciders import config_matcher
    from monitor.normalise import normalise_entry
    from monitor.parse import parse_feed
    from monitor.store import AlertPolicy, NewEntry, SQLiteStore

    for path in db.parent.glob(db.name + "*"):
        path.unlink()
    config = load_config(config_path, database=str(db))
    bodies = [(feed, (farm / f"f{i:04d}.xml").read_bytes()) for i, feed in enumerate(config.feeds)]
    now = datetime.now(UTC)
    seconds = dict.fromkeys(("parse", "normalise", "match", "fingerprint", "store"), 0.0)
    clock = time.perf_counter
    started = clock()
    matcher = config_matcher(config)  # the rules and the shipped models, as the pipeline
    items_total = 0
    with SQLiteStore(db) as store:
        store.sync_feeds(config.feeds)
        policy = AlertPolicy(channels=(), storyline_names={}, alert_after=now, alert_undated=False,
                             dedup_window=config.dedup_window)
        for feed, body in bodies:
            t0 = clock()
            parsed = parse_feed(body, url=feed.url)
            t1 = clock()
            items = [normalise_entry(e, feed_url=feed.url, source=feed.name, first_seen=now)
                     for e in parsed.entries]
            t2 = clock()
            matches = [tuple(matcher.match(i.title, i.summary)) for i in items]
            t3 = clock()
            prints = [fingerprint(i.title, i.summary) if m else None  # as the pipeline does
                      for i, m in zip(items, matches, strict=True)]
            events = [event_of(i.title, i.summary) if m else None
                      for i, m in zip(items, matches, strict=True)]
            t4 = clock()
            store.record_poll(feed.url, [NewEntry(i, f, m, event=e) for i, f, m, e in zip(
                items, prints, matches, events, strict=True)],
                              now=now, status=200, next_poll_at=now, policy=policy)
            t5 = clock()
            for key, value in zip(seconds, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                seconds[key] += value
            items_total += len(items)
    wall = clock() - started
    print(json.dumps({"items": items_total, "seconds": wall, "items_per_s": items_total / wall,
                      "stages": seconds}))


if __name__ == "__main__":
    main()
