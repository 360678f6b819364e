"""Scale: the per-item cost of match + dedup with N items already stored, and the database size.

    python bench/scale.py CONFIG DB N [MEASURE]

The database is the monitor's own (``Store`` creates the schema), filled in bulk:
N - 5,000 synthetic items (real titles and summaries from the news data, their own URLs,
uniformly random LSH band keys and shingle sets as distinct texts have, published at 50,000
items a day up to the end of the stream), plus the last 5,000 items of the real stream with
their real matches and fingerprints. The synthetic stories all have band keys, as if every
stored item had matched a storyline (the monitor keys only matched items): the story index at
its largest, and the database at its largest per item. Then MEASURE real items of the same
weeks (``items.jsonl``, talks and release news: many have near-duplicates in the stream) go
through match, fingerprint (of those that matched, as the pipeline does) and ``record_poll``
(the three dedup layers and the inserts), in polls of 50. Prints one JSON line.
"""

from __future__ import annotations

import gzip
import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

DATA = Path("/work/shared/data/news")
PER_DAY = 50_000
REAL = 5_000


def main() -> None:
    config_path, db, total = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    measure = int(sys.argv[4]) if len(sys.argv) > 4 else 2_000
    from monitor.config import load_config
    from monitor.deciders import config_matcher
    from monitor.dedup import NUM_BANDS, fingerprint, pack_shingles
    from monitor.models import RawEntry
    from monitor.normalise import normalise_entry
    from monitor.store import AlertPolicy, NewEntry, SQLiteStore

    for path in db.parent.glob(db.name + "*"):
        path.unlink()
    config = load_config(config_path, database=str(db))
    with gzip.open(DATA / "stream_2023-10-07_2023-12-31_7outlets.jsonl.gz", "rt") as handle:
        stream = [json.loads(line) for line in handle]
    others = [json.loads(line) for line in (DATA / "items.jsonl").open()]
    real = stream[-REAL:]
    end = max(datetime.fromisoformat(i["published"]).timestamp() for i in real if i["published"])
    rng = random.Random(7)
    built = time.perf_counter()
    store = SQLiteStore(db)
    conn = store.db.conn
    # the keys are gathered unordered, then written to the WITHOUT ROWID story_keys in key order
    conn.execute("CREATE TEMP TABLE bulk_keys (key INTEGER, published REAL, story_id INTEGER)")
    synthetic = max(0, total - REAL)
    span = synthetic / PER_DAY * 86400
    batch = 20_000
    conn.execute("BEGIN")
    for start in range(0, synthetic, batch):
        stories, keys, items, entries = [], [], [], []
        for n in range(start, min(synthetic, start + batch)):
            text = stream[n % len(stream)]
            published = end - span + span * n / max(1, synthetic)
            shingles = frozenset(rng.getrandbits(32) for _ in range(24))
            story_id = n + 1
            stories.append((story_id, story_id, published, pack_shingles(shingles)))
            keys += [(rng.getrandbits(32) | (band << 32), published, story_id)
                     for band in range(NUM_BANDS)]
            when = datetime.fromtimestamp(published, UTC).isoformat(timespec="seconds")
            items.append((story_id, "synthetic", text["source"], f"s{n}",
                          f"https://synthetic.example/{n}", text["title"], text["summary"] or "",
                          when, 1, when, story_id))
            entries.append(("synthetic", f"s{n}", story_id))
        conn.executemany("INSERT INTO stories (id, first_item_id, published, shingles) "
                         "VALUES (?, ?, ?, ?)", stories)
        conn.executemany("INSERT INTO bulk_keys (key, published, story_id) VALUES (?, ?, ?)", keys)
        conn.executemany("INSERT INTO items (id, feed_url, source, guid, url, title, summary, "
                         "published, published_known, first_seen, story_id) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", items)
        conn.executemany("INSERT INTO entries (feed_url, guid, item_id) VALUES (?, ?, ?)", entries)
    conn.execute("INSERT INTO story_keys (key, published, story_id) "
                 "SELECT key, published, story_id FROM bulk_keys ORDER BY key, published, story_id")
    conn.execute("DROP TABLE bulk_keys")
    conn.execute("COMMIT")
    now = datetime.now(UTC)
    policy = AlertPolicy(channels=(), storyline_names={}, alert_after=now, alert_undated=False,
                         dedup_window=config.dedup_window)
    matcher = config_matcher(config)  # the rules and the shipped models, as the pipeline

    def entries_of(rows: list[dict], feed: str) -> list:
        out = []
        for row in rows:
            raw = RawEntry(guid=row["id"], title=row["title"], link=row["link"],
                           summary=row["summary"] or "", published=row["published"])
            out.append(normalise_entry(raw, feed_url=feed, source=row["source"], first_seen=now))
        return out

    for start in range(0, len(real), 500):  # the real stream, with real fingerprints
        items = entries_of(real[start:start + 500], "real-stream")
        matched = [tuple(matcher.match(i.title, i.summary)) for i in items]
        store.record_poll("real-stream", [NewEntry(i, fingerprint(i.title, i.summary), m)
                                          for i, m in zip(items, matched, strict=True)],
                          now=now, status=200, next_poll_at=now, policy=policy)
    build_seconds = time.perf_counter() - built
    store.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size
    wanted = [i for i in others if i["id"].startswith("rl23") and i.get("kw_hint") != "unrelated"]
    wanted = (wanted * (measure // max(1, len(wanted)) + 1))[:measure]
    items = entries_of(wanted, "measure")
    clock = time.perf_counter
    t_match = t_print = t_store = 0.0
    for start in range(0, len(items), 50):
        chunk = items[start:start + 50]
        t0 = clock()
        matches = [tuple(matcher.match(i.title, i.summary)) for i in chunk]
        t1 = clock()
        prints = [fingerprint(i.title, i.summary) if m else None
                  for i, m in zip(chunk, matches, strict=True)]
        t2 = clock()
        outcome = store.record_poll(f"measure-{start}", [NewEntry(i, f, m) for i, f, m in
                                                         zip(chunk, prints, matches, strict=True)],
                                    now=now, status=200, next_poll_at=now, policy=policy)
        t3 = clock()
        t_match, t_print, t_store = t_match + t1 - t0, t_print + t2 - t1, t_store + t3 - t2
        del outcome
    stored = store.counts()["items"]
    store.close()
    n = len(items)
    print(json.dumps({
        "stored": stored - n, "build_seconds": build_seconds, "db_bytes": size,
        "db_mb_per_million": size / max(1, stored - n) * 1e6 / 1e6,
        "per_item_us": {"match": t_match / n * 1e6, "fingerprint": t_print / n * 1e6,
                        "dedup_store": t_store / n * 1e6,
                        "total": (t_match + t_print + t_store) / n * 1e6},
    }))


if __name__ == "__main__":
    main()
