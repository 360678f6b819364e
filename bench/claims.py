"""How many feeds one PostgreSQL database can hand out: the lease claim of issue 16, measured.

In: a PostgreSQL server (``--dsn``, default ``postgresql://postgres@127.0.0.1:5432/postgres``).
Out: per number of claiming processes, claims per second and the claim query's latency
(median, p99), on a ``feeds`` table of ``--feeds`` rows that are all due.

Each process loops: claim up to ``--batch`` due feeds (``FOR UPDATE SKIP LOCKED``, a lease and a
fencing token), then finish each claimed feed (its next poll in 5 minutes, the lease released)
only while its token is current, as a poll's results would commit. The benchmark creates its
own database (a random name) and drops it after.

The design measured (the store's PostgreSQL half will use it):

    claim:  UPDATE feeds SET lease_owner = %s, lease_until = now() + lease, fence = fence + 1
            WHERE id IN (SELECT id FROM feeds WHERE next_poll_at <= now()
                         AND (lease_until IS NULL OR lease_until < now())
                         ORDER BY next_poll_at LIMIT %s FOR UPDATE SKIP LOCKED)
            RETURNING id, fence
    finish: UPDATE feeds SET next_poll_at = now() + interval, lease_owner = NULL,
            lease_until = NULL WHERE id = %s AND fence = %s

Example: python bench/claims.py --feeds 100000 --processes 1,2,4
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
import uuid

SCHEMA = """
CREATE TABLE feeds (
    id BIGSERIAL PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    next_poll_at TIMESTAMPTZ NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    fence BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX feeds_due ON feeds (next_poll_at);
"""
CLAIM = """
UPDATE feeds SET lease_owner = %s, lease_until = now() + interval '2 minutes', fence = fence + 1
WHERE id IN (SELECT id FROM feeds WHERE next_poll_at <= now()
             AND (lease_until IS NULL OR lease_until < now())
             ORDER BY next_poll_at LIMIT %s FOR UPDATE SKIP LOCKED)
RETURNING id, fence
"""
FINISH = """
UPDATE feeds SET next_poll_at = now() + interval '5 minutes', lease_owner = NULL, lease_until = NULL
WHERE id = %s AND fence = %s
"""


def worker(dsn: str, batch: int, seconds: float, results: multiprocessing.Queue) -> None:
    import psycopg

    owner = f"bench-{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    claimed = finished = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            rows = conn.execute(CLAIM, (owner, batch)).fetchall()
            latencies.append(time.perf_counter() - started)
            if not rows:
                break
            claimed += len(rows)
            with conn.transaction():
                for feed_id, fence in rows:
                    finished += conn.execute(FINISH, (feed_id, fence)).rowcount
    results.put((claimed, finished, latencies))


def run(dsn: str, processes: int, batch: int, seconds: float) -> dict[str, float]:
    results: multiprocessing.Queue = multiprocessing.Queue()
    started = time.perf_counter()
    workers = [multiprocessing.Process(target=worker, args=(dsn, batch, seconds, results))
               for _ in range(processes)]
    for process in workers:
        process.start()
    outcomes = [results.get() for _ in workers]
    for process in workers:
        process.join()
    wall = time.perf_counter() - started
    claimed = sum(o[0] for o in outcomes)
    latencies = sorted(x for o in outcomes for x in o[2])
    return {"claimed": claimed, "finished": sum(o[1] for o in outcomes), "seconds": wall,
            "per_second": claimed / wall, "median_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))]}


def main() -> None:
    import psycopg

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--feeds", type=int, default=100_000)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--batch", type=int, default=16, help="feeds claimed at once")
    parser.add_argument("--seconds", type=float, default=20.0, help="longest run per setting")
    args = parser.parse_args()
    name = f"bench_claims_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsn = args.dsn.rsplit("/", 1)[0] + "/" + name
    try:
        print(f"{args.feeds:,} feeds, all due; claims of {args.batch}; each setting at most "
              f"{args.seconds:.0f} s or until every feed is claimed")
        print("| processes | claimed | finished (token current) | claims/s | claim median ms "
              "| claim p99 ms |")
        print("|---|---|---|---|---|---|")
        for processes in (int(p) for p in args.processes.split(",")):
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("DROP TABLE IF EXISTS feeds")
                conn.execute(SCHEMA)
                conn.execute("INSERT INTO feeds (url, next_poll_at) SELECT 'https://feeds.example/' "
                             "|| g, now() - (g || ' seconds')::interval FROM generate_series(1, %s) g",
                             (args.feeds,))
                conn.execute("ANALYZE feeds")
            r = run(dsn, processes, args.batch, args.seconds)
            print(f"| {processes} | {r['claimed']:,} | {r['finished']:,} | {r['per_second']:,.0f} | "
                  f"{r['median_ms']:.2f} | {r['p99_ms']:.2f} |", flush=True)
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
