"""Soak: the daemon for a long while on a farm whose feeds keep changing. Does it stay flat?

    python bench/soak.py                       # 200 feeds, 30 minutes, interval 10 s
    python bench/soak.py --minutes 120 --feeds 500

A long-running service fails slowly: memory that creeps up poll after poll, file descriptors or
threads that leak, a database that grows faster than the news, an outbox that drifts from what
the receiver saw. This runs the installed daemon (``monitor run``) against nginx on 127.0.0.1
serving ``--feeds`` real feeds; every ``--update-every`` seconds 5 % of the feeds gain two real
items, and for ``--outage`` minutes in the middle the webhook receiver answers 503. It samples the
daemon every ``--sample`` seconds (PSS of its process tree, RSS, open descriptors, threads,
database size) and, at the end, checks the outbox against the receiver: every alert the daemon
marked sent was received and acknowledged exactly once, none is left behind.

It prints a table of samples and a verdict line per check; it asserts nothing (the machine is
shared), the numbers are for reading.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import farm as bench_farm  # noqa: E402
import measure  # noqa: E402
import monitor_config as bench_config  # noqa: E402
from receiver import Receiver  # noqa: E402

MONITOR = [sys.executable, "-P", "-m", "monitor"]  # the monitor as installed, not this tree


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sample(pid: int, database: Path) -> dict[str, float]:
    pss_kb, _largest = measure._memory(pid)
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    size = sum(p.stat().st_size for p in database.parent.glob(database.name + "*"))
    return {"pss_mb": pss_kb / 1024, "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
            "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": int(fields["Threads"]),
            "db_mb": size / 2**20}


def counts(database: Path) -> tuple[dict[str, int], set[str]]:
    """(items stored and alerts by status, the webhook-ids of the alerts marked sent)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        items = db.execute("select count(*) from items").fetchone()[0]
        status = dict(db.execute("select status, count(*) from alerts group by status").fetchall())
        uids = {row[0] for row in db.execute("select uid from alerts where status = 'sent'")}
    return {"items": items, **{f"alerts {k}": v for k, v in status.items()}}, uids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", default="10s", help="the daemon's poll_interval")
    parser.add_argument("--update-every", type=float, default=15.0, help="seconds between feed updates")
    parser.add_argument("--outage", type=float, default=2.0, help="minutes the receiver answers 503")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "soak")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("soak.db*"):
        old.unlink()
    database = out / "soak.db"
    log(f"building the farm: {args.feeds} feeds")
    farm = bench_farm.build(out / "farm", args.feeds, 20)
    receiver = Receiver()
    rows: list[dict[str, float]] = []
    with bench_farm.Nginx(out / "farm", out) as nginx:
        cfg = out / "soak.toml"
        cfg.write_text(bench_config.monitor_toml([nginx.url(i) for i in range(farm.count)],
                                                 database=str(database), interval=args.interval,
                                                 webhook=receiver.url))
        daemon_log = (out / "daemon.log").open("w")
        daemon = subprocess.Popen([*MONITOR, "--config", str(cfg), "run"], stdout=daemon_log,
                                  stderr=subprocess.STDOUT)
        started = time.monotonic()
        end = started + args.minutes * 60
        outage_from = started + (args.minutes - args.outage) * 30  # centred on the middle
        outage_to = outage_from + args.outage * 60
        next_update = started + 20  # after the first cycle
        next_sample = started + 5
        tick = 0
        published = 0
        log(f"daemon {daemon.pid} on {farm.count} feeds for {args.minutes:g} min; receiver down "
            f"from minute {(outage_from - started) / 60:.1f} to {(outage_to - started) / 60:.1f}")
        try:
            while time.monotonic() < end:
                now = time.monotonic()
                receiver.failing = outage_from <= now < outage_to
                if daemon.poll() is not None:
                    raise SystemExit(f"the daemon exited with {daemon.returncode}; see {out / 'daemon.log'}")
                if now >= next_update:
                    tick += 1
                    chosen = range(tick % 20, farm.count, 20)
                    stamp = datetime.now(UTC).isoformat(timespec="seconds")
                    for position, index in enumerate(chosen):
                        new = []
                        for k in range(2):
                            base = farm.spare[(tick * 997 + position * 2 + k) % len(farm.spare)]
                            link = (base.get("link") or "https://example.org/spare")
                            link = f"{link}{'&' if '?' in link else '?'}soak={tick}-{index}-{k}"
                            new.append(dict(base, link=link, guid=f"{base['guid']}/soak-{tick}-{index}-{k}",
                                            published=stamp, title=f"{base['title']} [{tick}.{index}.{k}]"))
                        # keep feeds at their size: a feed shows its newest items, as real ones do
                        farm.feeds[index] = (new + farm.feeds[index])[:20]
                        farm.write(index)
                        published += len(new)
                    next_update += args.update_every
                if now >= next_sample:
                    row = {"minute": (now - started) / 60, **sample(daemon.pid, database),
                           "acknowledged": float(sum(receiver.acknowledged.values()))}
                    rows.append(row)
                    log("  ".join(f"{k} {v:.1f}" for k, v in row.items()))
                    next_sample += args.sample
                time.sleep(0.2)
            # let the last alerts go out before stopping
            drain_until = time.monotonic() + 60
            while time.monotonic() < drain_until:
                state, _sent = counts(database)
                if not state.get("alerts pending"):
                    break
                time.sleep(1)
        finally:
            measure.stop(daemon, 60)
            daemon_log.close()
            receiver.close()
    state, sent_uids = counts(database)
    print(report(args, rows, state, sent_uids, receiver, published, daemon.returncode))


def report(args: argparse.Namespace, rows: list[dict[str, float]], state: dict[str, int],
           sent_uids: set[str], receiver: Receiver, published: int, returncode: int) -> str:
    lines = [f"# soak: {args.feeds} feeds, {args.minutes:g} min, interval {args.interval}, "
             f"{published:,} items published, receiver down {args.outage:g} min "
             f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)", "",
             "| minute | PSS tree MB | RSS MB | fds | threads | DB MB | acknowledged |",
             "|---|---|---|---|---|---|---|"]
    step = max(1, len(rows) // 12)
    for row in rows[::step] + ([rows[-1]] if rows and (len(rows) - 1) % step else []):
        lines.append(f"| {row['minute']:.1f} | {row['pss_mb']:.0f} | {row['rss_mb']:.0f} | "
                     f"{row['fds']:.0f} | {row['threads']:.0f} | {row['db_mb']:.1f} | "
                     f"{row['acknowledged']:.0f} |")
    lines.append("")
    if len(rows) >= 4:
        half = rows[len(rows) // 2:]
        hours = (half[-1]["minute"] - half[0]["minute"]) / 60 or 1
        for key in ("pss_mb", "rss_mb", "fds", "threads"):
            lines.append(f"- {key}: {half[0][key]:.1f} at minute {half[0]['minute']:.0f} -> "
                         f"{half[-1][key]:.1f} at the end ({(half[-1][key] - half[0][key]) / hours:+.1f}/h, "
                         f"max {max(r[key] for r in rows):.1f})")
    twice = sum(1 for n in receiver.acknowledged.values() if n > 1)
    missing = len(sent_uids - set(receiver.acknowledged))
    unknown = len(set(receiver.acknowledged) - sent_uids)
    stored = state.pop("items")
    lines += [f"- database: {stored:,} items; outbox: {json.dumps(state)}",
              f"- receiver: {sum(receiver.acknowledged.values())} acknowledged, {receiver.refused} "
              f"refused during the outage",
              f"- alerts marked sent but never acknowledged: {missing}; acknowledged twice: {twice}; "
              f"acknowledged but not marked sent: {unknown}",
              f"- daemon exit status on SIGTERM: {returncode}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
