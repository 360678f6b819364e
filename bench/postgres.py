"""The 1,000-feed farm on PostgreSQL next to SQLite (issue 16): cold and warm cycles, and where
a PostgreSQL poll's time goes.

    python bench/postgres.py                       # 1,000 feeds of 50 items, 3 rounds (~3 min)
    python bench/postgres.py --feeds 200 --rounds 1

In: a PostgreSQL server (``--dsn``, default ``postgresql://postgres@127.0.0.1:5432/postgres``;
the benchmark creates a database of its own per round, a random name, and drops it after), and
the farm of ``bench/run.py`` (``bench/farm.py``: real items, nginx on 127.0.0.1).
Out: a table of medians (``<out>/postgres.md``): per backend the cold cycle (a new database,
every feed 200) and the warm cycle (again, every feed 304), whole processes (``python -P -m
monitor --config … run --once``, start-up included), and the ratio PostgreSQL / SQLite; then a
profile of one cold cycle per backend, run in-process with the store's methods timed:

- ``record_poll``: calls, seconds in all, median and p99 per call, statements per call (each
  one a round trip to the server on PostgreSQL);
- PostgreSQL only: how long each poll waits for ``record_poll``'s advisory lock and how long
  it holds it (from the lock granted to the commit): the lock serialises story decisions
  across instances, so 1 / hold time is how many polls with new items a database records per
  second, whatever the number of instances.

The rounds alternate which backend goes first. ``--synchronous-commit off`` sets that on the
benchmark's databases (``ALTER DATABASE``): a commit no longer waits for its WAL to reach the
disk, which is where much of a poll's time under the lock goes; ``--rounds 0``: the profiles
alone. Everything is written under ``--out``
(default ``bench/out/postgres``, gitignored).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import farm as bench_farm  # noqa: E402
import measure  # noqa: E402
import monitor_config as bench_config  # noqa: E402

MONITOR = [sys.executable, "-P", "-m", "monitor"]
DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def database_url(dsn: str, name: str) -> str:
    return dsn.rsplit("/", 1)[0] + "/" + name


class Databases:
    """PostgreSQL databases made for the benchmark, dropped at the end."""

    def __init__(self, dsn: str, settings: dict[str, str] | None = None) -> None:
        self.dsn = dsn
        self.settings = settings or {}  # ALTER DATABASE ... SET: what the server does per commit
        self.made: list[str] = []

    def fresh(self) -> str:
        import psycopg

        name = f"bench_pg_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.dsn, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
            for setting, value in self.settings.items():
                admin.execute(f"ALTER DATABASE {name} SET {setting} = {value}")
        self.made.append(name)
        return database_url(self.dsn, name)

    def empty(self, backend: str, folder: Path, name: str) -> str:
        """An empty database of ``backend``: a new PostgreSQL one, or the SQLite file
        ``folder/name.db`` (its earlier copy and journal removed)."""
        if backend != "sqlite":
            return self.fresh()
        for path in folder.glob(f"{name}.db*"):
            path.unlink()
        return str(folder / f"{name}.db")

    def drop_all(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as admin:
            for name in self.made:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.made.clear()


def write_config(out: Path, name: str, urls: list[str], database: str) -> Path:
    path = out / f"{name}.toml"
    path.write_text(bench_config.monitor_toml(urls, database=database))
    return path


def once(config: Path, label: str) -> float:
    result = measure.run([*MONITOR, "--config", str(config), "run", "--once"])
    if result.returncode:
        raise RuntimeError(f"{label} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.wall


# --------------------------------------------------------------------------- the profile

def profile_child(config: str, stats_path: str) -> None:
    """Run ``monitor run --once`` in this process with the store's poll recording timed."""
    from monitor.store import sqlite as sqlite_backend
    from monitor.store.core import Store

    local = threading.local()
    polls: list[dict[str, float]] = []
    statements: dict[str, list] = {}  # PostgreSQL: SQL (its start) -> [calls, seconds] under the lock
    lock = threading.Lock()
    record_poll = Store.record_poll

    def timed_record_poll(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        local.statements, local.granted, local.asked = 0, None, None
        started = time.perf_counter()
        try:
            return record_poll(self, *args, **kwargs)
        finally:
            ended = time.perf_counter()
            granted, local.granted = local.granted, None
            row = {"seconds": ended - started, "statements": local.statements}
            if granted is not None:
                row["lock_wait"] = granted - local.asked
                row["lock_hold"] = ended - granted
            with lock:
                polls.append(row)

    Store.record_poll = timed_record_poll  # type: ignore[method-assign]
    try:
        from monitor.store import postgres as pg_backend
    except ImportError:
        pg_backend = None
    if pg_backend is not None:
        execute, executemany = pg_backend.PgTx.execute, pg_backend.PgTx.executemany
        before_poll = pg_backend.PostgresStore._before_poll

        def timed(method):  # type: ignore[no-untyped-def]
            def run(self, sql, *args, **kwargs):  # type: ignore[no-untyped-def]
                local.statements = getattr(local, "statements", 0) + 1
                started = time.perf_counter()
                try:
                    return method(self, sql, *args, **kwargs)
                finally:
                    if getattr(local, "granted", None) is not None:  # inside record_poll's lock
                        key = " ".join(sql.split())[:60]
                        with lock:
                            spent = statements.setdefault(key, [0, 0.0])
                            spent[0] += 1
                            spent[1] += time.perf_counter() - started
            return run

        counted_execute, counted_executemany = timed(execute), timed(executemany)

        def timed_before_poll(self, entries):  # type: ignore[no-untyped-def]
            if not any(entry.matches for entry in entries):
                return  # no story to decide: no lock taken (PostgresStore._before_poll)
            local.asked = time.perf_counter()
            before_poll(self, entries)  # the advisory lock, then the poll's number
            local.granted = time.perf_counter()

        pg_backend.PgTx.execute = counted_execute  # type: ignore[method-assign]
        pg_backend.PgTx.executemany = counted_executemany  # type: ignore[method-assign]
        pg_backend.PostgresStore._before_poll = timed_before_poll  # type: ignore[method-assign]
    # SQLite: the connection is a C type; count the statements through the Tx the batch gets
    sqlite_tx = sqlite_backend.SQLiteStore._tx

    class CountingConnection:
        def __init__(self, conn):  # type: ignore[no-untyped-def]
            self.conn = conn

        def execute(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            local.statements = getattr(local, "statements", 0) + 1
            return self.conn.execute(*args, **kwargs)

        def executemany(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            local.statements = getattr(local, "statements", 0) + 1
            return self.conn.executemany(*args, **kwargs)

        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(self.conn, name)

    sqlite_backend.SQLiteStore._tx = lambda self: CountingConnection(sqlite_tx(self))  # type: ignore[method-assign]

    from monitor.cli import cli

    started = time.perf_counter()
    code = 0
    try:
        cli.main(["--config", config, "run", "--once"], prog_name="monitor", standalone_mode=False)
    except SystemExit as stop:
        code = int(stop.code or 0)
    wall = time.perf_counter() - started
    Path(stats_path).write_text(json.dumps({"wall": wall, "code": code, "polls": polls,
                                                "statements": statements}))


def summarise(stats: dict) -> dict[str, float]:
    polls = [p for p in stats["polls"]]
    seconds = sorted(p["seconds"] for p in polls)
    out = {"wall": stats["wall"], "polls": len(polls), "record_s": sum(seconds),
           "median_ms": 1000 * statistics.median(seconds),
           "p99_ms": 1000 * seconds[int(0.99 * (len(seconds) - 1))],
           "statements": statistics.mean(p["statements"] for p in polls)}
    holds = sorted(p["lock_hold"] for p in polls if "lock_hold" in p)
    if holds:
        waits = sorted(p["lock_wait"] for p in polls if "lock_wait" in p)
        top = sorted(stats["statements"].items(), key=lambda kv: -kv[1][1])[:6]
        out["top"] = [(sql, calls, round(spent, 3)) for sql, (calls, spent) in top]
        out.update(hold_median_ms=1000 * statistics.median(holds),
                   hold_p99_ms=1000 * holds[int(0.99 * (len(holds) - 1))],
                   hold_s=sum(holds), wait_median_ms=1000 * statistics.median(waits))
    return out


def profile(config: Path, out: Path, label: str) -> dict[str, float]:
    stats_path = out / f"profile-{label}.json"
    result = subprocess.run([sys.executable, "-P", str(Path(__file__).resolve()), "--profile-child",
                             str(config), str(stats_path)], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"profile {label} failed: {result.stderr[-2000:]}")
    stats = json.loads(stats_path.read_text())
    if stats["code"]:
        raise RuntimeError(f"profile {label}: monitor exited {stats['code']}")
    return summarise(stats)


# --------------------------------------------------------------------------- the run

def add_news(farm: bench_farm.Farm, per_feed: int = 2) -> int:
    """One feed in 20 gains ``per_feed`` new real items (talks and releases news), published
    now, as in ``bench/run.py``'s update cycle: the steady state of a running monitor, where a
    changed feed brings a couple of items. Returns how many feeds changed."""
    from datetime import UTC, datetime

    now = datetime.now(UTC).isoformat(timespec="seconds")
    changed = list(range(0, farm.count, 20))
    for position, index in enumerate(changed):
        new = []
        for k in range(per_feed):
            base = farm.spare[(position * per_feed + k) % len(farm.spare)]
            link = base.get("link") or "https://example.org/spare"  # a query, not a fragment:
            link = f"{link}{'&' if '?' in link else '?'}pg={index}-{k}"  # canonical URLs keep it
            new.append(dict(base, link=link, guid=f"{base['guid']}/pg-{index}-{k}", published=now,
                            title=f"{base['title']} [{index}.{k}]"))
        farm.add_items(index, new)
    return len(changed)



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=DSN)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--per-feed", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--synchronous-commit", choices=["on", "off"], default=None,
                        help="set on the benchmark's databases (default: the server's setting). "
                             "off: a commit returns before its WAL reaches the disk (a server crash "
                             "may lose the last ~0.6 s of commits, never corrupts), as SQLite's "
                             "synchronous=NORMAL does in WAL mode for an OS crash")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "postgres")
    parser.add_argument("--profile-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile_child:
        profile_child(*args.profile_child)
        return
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log(f"building the farm: {args.feeds} feeds of {args.per_feed} items")
    farm = bench_farm.build(out / "farm", args.feeds, args.per_feed)
    databases = Databases(args.dsn, {"synchronous_commit": args.synchronous_commit}
                          if args.synchronous_commit else None)
    times: dict[str, list[float]] = {}
    profiles: dict[str, dict[str, float]] = {}
    try:
        with bench_farm.Nginx(out / "farm", out) as nginx:
            urls = [nginx.url(i) for i in range(farm.count)]
            for round_no in range(args.rounds):
                order = ["sqlite", "postgresql"] if round_no % 2 == 0 else ["postgresql", "sqlite"]
                for backend in order:
                    config = write_config(out, backend, urls, databases.empty(backend, out, "sqlite"))
                    for cycle in ("cold", "warm"):
                        wall = once(config, f"{backend} {cycle}")
                        times.setdefault(f"{backend} {cycle}", []).append(wall)
                        log(f"round {round_no + 1}: {backend} {cycle} {wall:.2f} s")
                databases.drop_all()
            if not args.no_profile:
                for backend in ("sqlite", "postgresql"):
                    config = write_config(out, f"profile-{backend}", urls,
                                          databases.empty(backend, out, "profile"))
                    profiles[f"{backend} cold"] = profile(config, out, f"{backend}-cold")
                    log(f"profile {backend} cold: {profiles[f'{backend} cold']}")
                    originals = [list(items) for items in farm.feeds]
                    updated = add_news(farm)
                    profiles[f"{backend} update"] = profile(config, out, f"{backend}-update")
                    log(f"profile {backend} update ({updated} feeds +2 items): "
                        f"{profiles[f'{backend} update']}")
                    for index, items in enumerate(originals):  # the farm as it was
                        if farm.feeds[index] != items:
                            farm.feeds[index] = items
                            farm.write(index)
    finally:
        databases.drop_all()
    text = report(args, farm.items, times, profiles)
    (out / "postgres.md").write_text(text)
    print(text)


def report(args: argparse.Namespace, items: int, times: dict[str, list[float]],
           profiles: dict[str, dict[str, float]]) -> str:
    med = {key: statistics.median(values) for key, values in times.items()}
    commit = (f"; PostgreSQL databases with synchronous_commit = {args.synchronous_commit}"
              if args.synchronous_commit else "; PostgreSQL as configured (synchronous_commit on)")
    lines = [f"{args.feeds:,} feeds of {args.per_feed} items ({items:,} items), medians of "
             f"{args.rounds} round(s), whole processes (`run --once`, start-up included){commit}", "",
             "| cycle | SQLite | PostgreSQL | PostgreSQL / SQLite | rounds SQLite | rounds PostgreSQL |",
             "|---|---|---|---|---|---|"]
    for cycle in ("cold", "warm") if times else ():  # --rounds 0: the profiles alone
        lite, pg = med[f"sqlite {cycle}"], med[f"postgresql {cycle}"]
        lines.append(f"| {cycle} | {lite:.2f} s | {pg:.2f} s | {pg / lite:.2f}x | "
                     f"{', '.join(f'{v:.2f}' for v in times[f'sqlite {cycle}'])} | "
                     f"{', '.join(f'{v:.2f}' for v in times[f'postgresql {cycle}'])} |")
    if profiles:  # keys: "<backend> <cycle>"
        lines += ["", "In-process cycles, `record_poll` timed (and on PostgreSQL its advisory lock): "
                  "cold (a new database, every feed 200), then update (one feed in 20 gains 2 new "
                  "items, the rest 304):", "",
                  "| backend, cycle | wall | record_poll calls | in record_poll | per call median / p99 "
                  "| statements per call | lock wait median | lock held median / p99 | lock held in all |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for backend, p in profiles.items():
            lock = ("| {wait_median_ms:.2f} ms | {hold_median_ms:.2f} / {hold_p99_ms:.2f} ms | "
                    "{hold_s:.2f} s |".format(**p) if "hold_s" in p else "| - | - | - |")
            lines.append(f"| {backend} | {p['wall']:.2f} s | {p['polls']:,} | {p['record_s']:.2f} s | "
                         f"{p['median_ms']:.2f} / {p['p99_ms']:.2f} ms | {p['statements']:.1f} " + lock)
        for backend, p in profiles.items():
            if p.get("top"):
                lines += ["", f"Where the lock is held ({backend}): the statements run under it, by time "
                          "(statement start, calls, seconds in all, round trips included):", ""]
                lines += [f"- `{sql}`: {calls:,} calls, {spent:.2f} s" for sql, calls, spent in p["top"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
