"""The benchmark (issue 5): the monitor against the floors and its peers on one feed farm.

    python bench/run.py                      # 1,000 feeds of 50 real items, 3 rounds
    python bench/run.py --feeds 300 --stream # the issue's reference farm: the 22,898-item stream
    python bench/run.py --quick              # a couple of minutes: 200 feeds, 1 round, 100k max

It installs what it lacks (nginx and newsboat from Debian; rss2email into its own venv under
bench/out/), builds the farm under bench/out/farm/, serves it with nginx on 127.0.0.1 and prints
a table of medians. Every cycle is a whole process, start-up included. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
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
import peers  # noqa: E402
from receiver import MARKER, Receiver  # noqa: E402

# -P: the monitor as installed (pip install .), never the source tree of the current directory
MONITOR = [sys.executable, "-P", "-m", "monitor"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.platform()}, "
            f"Python {platform.python_version()}; monitor {monitor_build()}")


def monitor_build() -> str:
    """Whether the monitor that runs has its hot modules compiled (setup.py) or plain Python."""
    found = subprocess.run([*MONITOR[:-2], "-c", "import monitor.match as m; print(m.__file__)"],
                           capture_output=True, text=True).stdout.strip()
    return "compiled with mypyc" if found.endswith(".so") else f"plain Python ({found or '?'})"


# --------------------------------------------------------------------------- the cycles

class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = args.out.resolve()
        self.results: dict[str, list] = {}
        self.notes: list[str] = []

    def record(self, key: str, value: object) -> None:
        self.results.setdefault(key, []).append(value)

    def monitor_config(self, name: str, urls: list[str], **options: object) -> Path:
        path = self.out / f"{name}.toml"
        path.write_text(bench_config.monitor_toml(urls, database=str(self.out / f"{name}.db"),
                                                  **options))
        return path

    def fresh_db(self, name: str) -> None:
        for path in self.out.glob(f"{name}.db*"):
            path.unlink()

    def monitor_once(self, config: Path, label: str, *, memory: bool = False) -> measure.Run:
        result = measure.run([*MONITOR, "--config", str(config), "run", "--once"], memory=memory)
        if result.returncode:
            raise RuntimeError(f"monitor {label} failed: {result.stderr[-2000:]}")
        return result

    def update_feeds(self, farm: bench_farm.Farm, round_no: int, feeds: list[int],
                     per_feed: int = 2) -> dict[str, float]:
        """Add ``per_feed`` new real items, published now, to each of ``feeds``; returns the
        moment each went live, by the marker added to its title."""
        live: dict[str, float] = {}
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for position, index in enumerate(feeds):
            new = []
            for k in range(per_feed):
                base = farm.spare[(round_no * 997 + position * per_feed + k) % len(farm.spare)]
                base = dict(base, link=base.get("link") or "https://example.org/spare")
                link = f"{base['link']}{'&' if '?' in base['link'] else '?'}bench={round_no}-{index}-{k}"
                new.append(dict(base, link=link, guid=f"{base['guid']}/{round_no}-{index}-{k}",
                                published=now, title=f"{base['title']} [{round_no}.{index}.{k}]"))
            farm.add_items(index, new)
            stamp = time.time()
            for item in new:
                live[MARKER.findall(item["title"])[-1]] = stamp
        return live

    def run(self) -> None:
        args = self.args
        self.out.mkdir(parents=True, exist_ok=True)
        log("checking nginx, newsboat and rss2email")
        peers.ensure_debian({"nginx": "nginx-light", "newsboat": "newsboat"})
        peer_bin = peers.ensure_peers_venv(HERE / "out") if not args.no_peers else None
        self.versions = peers.versions(peer_bin) if peer_bin else {}
        log(f"building the farm: {'the stream over ' if args.stream else ''}{args.feeds} feeds")
        farm = bench_farm.build(self.out / "farm", args.feeds, args.per_feed, stream_only=args.stream)
        originals = [list(items) for items in farm.feeds]
        self.farm_items = farm.items
        self.farm_bytes = sum(farm.path(i).stat().st_size for i in range(farm.count))
        with bench_farm.Nginx(self.out / "farm", self.out) as nginx:
            urls = [nginx.url(i) for i in range(farm.count)]
            urls_file = self.out / "urls.txt"
            urls_file.write_text("\n".join(urls) + "\n")
            cfg = self.monitor_config("monitor", urls)
            updated = list(range(0, farm.count, 20))[: max(1, farm.count // 20)]  # 5 %
            for round_no in range(args.rounds):
                log(f"round {round_no + 1}/{args.rounds}")
                for index in range(farm.count):  # every round starts from the same farm
                    if farm.feeds[index] != originals[index]:
                        farm.feeds[index] = list(originals[index])
                        farm.write(index)
                self.fresh_db("monitor")
                cold = self.monitor_once(cfg, "cold")
                self.record("monitor cold", cold)
                log(f"  monitor cold {cold.wall:.2f} s")
                self.record("monitor warm", self.monitor_once(cfg, "warm"))
                self.update_feeds(farm, round_no, updated)
                self.record("monitor update", self.monitor_once(cfg, "update"))
                for index in updated:
                    farm.feeds[index] = list(originals[index])
                    farm.write(index)
                self.floors_and_peers(urls, urls_file, peer_bin)
            # peak memory on a cold cycle of its own: sampling /proc slows what it watches
            self.fresh_db("monitor")
            self.memory_run = self.monitor_once(cfg, "cold (memory)", memory=True)
            log(f"  monitor cold, memory sampled: {self.memory_run.wall:.2f} s, "
                f"peak {self.memory_run.peak_pss_mb:.0f} MB PSS")
            self.throughput(cfg)
            if not args.no_latency:
                self.latency(farm, nginx, urls, updated)
        self.scale(cfg, urls)

    def floors_and_peers(self, urls: list[str], urls_file: Path, peer_bin: Path | None) -> None:
        for kind in ("httpx", "feedparser"):
            work = self.out / f"floor-{kind}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            for cycle in ("cold", "warm"):
                result = measure.run(peers.floor_cmd(kind, work, urls_file))
                self.record(f"{kind} {cycle}", result)
        if peer_bin is None:
            return
        work = self.out / "rss2email"
        peers.rss2email_setup(work, urls, peer_bin)
        for cycle in ("cold", "warm"):
            self.record(f"rss2email {cycle}", measure.run(peers.rss2email_cmd(work, peer_bin)))
        work = self.out / "newsboat"
        peers.newsboat_setup(work, urls, self.args.newsboat_threads)
        env = {**os.environ, **peers.newsboat_env(work)}
        for cycle in ("cold", "warm"):
            self.record(f"newsboat {cycle}", measure.run(peers.newsboat_cmd(work), env=env))
        log(f"  peers: rss2email cold {self.results['rss2email cold'][-1].wall:.2f} s, "
            f"newsboat cold {self.results['newsboat cold'][-1].wall:.2f} s")

    def throughput(self, cfg: Path) -> None:
        log("pipeline throughput without the network (one core)")
        result = measure.run([sys.executable, str(HERE / "throughput.py"), str(cfg),
                              str(self.out / "farm"), str(self.out / "throughput.db")])
        if result.returncode:
            raise RuntimeError(result.stderr[-2000:])
        self.throughput_result = json.loads(result.stdout.strip().splitlines()[-1])

    def latency(self, farm: bench_farm.Farm, nginx: bench_farm.Nginx, urls: list[str],
                updated: list[int]) -> None:
        """The daemon polls the farm every ``--interval``; 5 % of its feeds gain items; the time
        from each new item going live to its webhook arriving at a local receiver."""
        count = min(len(urls), self.args.latency_feeds)
        chosen = [i for i in updated if i < count] or [0]
        receiver = Receiver()
        try:
            cfg = self.monitor_config("daemon", urls[:count], interval=self.args.interval,
                                      webhook=receiver.url)
            self.fresh_db("daemon")
            self.monitor_once(cfg, "daemon pre-fill")
            log(f"latency: daemon on {count} feeds, interval {self.args.interval}")
            daemon_log = (self.out / "daemon.log").open("w")
            daemon = subprocess.Popen([*MONITOR, "--config", str(cfg), "run"],
                                      stdout=daemon_log, stderr=subprocess.STDOUT)
            interval = bench_config.seconds(self.args.interval)
            try:
                time.sleep(min(count * 0.2, 5) + 3)  # the daemon spreads its first polls over 5 s
                live = self.update_feeds(farm, 99, chosen)
                deadline = time.time() + interval * 1.1 + 15
                while time.time() < deadline and len(receiver.arrivals) < len(live):
                    time.sleep(0.1)
            finally:
                measure.stop(daemon, 30)
                daemon_log.close()
            latencies = sorted(receiver.arrivals[mark] - stamp for mark, stamp in live.items()
                               if mark in receiver.arrivals)
            self.latency_result = {"feeds": count, "interval": interval, "published": len(live),
                                   "arrived": len(latencies), "latencies": latencies}
        finally:
            receiver.close()
            for index in chosen:
                farm.feeds[index] = [i for i in farm.feeds[index] if "bench=99-" not in i["link"]]
                farm.write(index)

    def scale(self, cfg: Path, urls: list[str]) -> None:
        self.scale_results = {}
        for size in self.args.scale:
            log(f"scale: {size:,} items stored")
            result = measure.run([sys.executable, str(HERE / "scale.py"), str(cfg),
                                  str(self.out / "scale.db"), str(size), str(self.args.measure)])
            if result.returncode:
                raise RuntimeError(result.stderr[-2000:])
            data = json.loads(result.stdout.strip().splitlines()[-1])
            self.scale_results[size] = data
        if self.args.scale and not self.args.no_rss_at_scale:
            biggest = max(self.args.scale)
            log(f"peak memory: a cold cycle of {len(urls)} feeds on the {biggest:,}-item database")
            target = self.out / "monitor-big.db"
            for path in self.out.glob("monitor-big.db*"):
                path.unlink()
            shutil.copy(self.out / "scale.db", target)
            with bench_farm.Nginx(self.out / "farm", self.out) as nginx:
                big_urls = [nginx.url(i) for i in range(len(urls))]
                big = self.out / "monitor-big.toml"
                big.write_text(bench_config.monitor_toml(big_urls, database=str(target)))
                self.big_run = (biggest, self.monitor_once(big, "cold at scale", memory=True))


# --------------------------------------------------------------------------- the table

def report(bench: Bench) -> str:
    r, args = bench.results, bench.args
    med = {key: measure.median([run.wall for run in runs]) for key, runs in r.items()}
    items = bench.farm_items
    lines = [f"# ceasefire-monitor benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
             f"machine: {machine()}",
             f"farm: {args.feeds} feeds, {items:,} real items "
             f"({'the 22,898-item stream' if args.stream else f'{args.per_feed} per feed'}), "
             f"{bench.farm_bytes / 1e6:.1f} MB, nginx on 127.0.0.1 (ETag/Last-Modified by nginx); "
             f"monitor with 20 storylines; medians of {args.rounds} round(s), whole processes",
             ""]
    if bench.versions:
        lines.append("peers: " + "; ".join(f"{k} {v}" for k, v in bench.versions.items()))
        lines.append("")

    def row(name: str, value: str, note: str = "") -> None:
        lines.append(f"| {name} | {value} | {note} |")

    lines += ["| measure | monitor | vs floors and peers (ratio = their time / the monitor's) |",
              "|---|---|---|"]
    cold = med["monitor cold"]
    pss, rss = bench.memory_run.peak_pss_mb, bench.memory_run.peak_rss_mb

    def ratio(key: str, base: float) -> str:
        return f"{key.split()[0]} {med[key]:.2f} s = {med[key] / base:.2f}x" if key in med else ""

    row("cold cycle (all 200)", f"{cold:.2f} s, {items / cold:,.0f} items/s; peak {pss:.0f} MB "
        f"PSS (largest process {rss:.0f} MB RSS) on a run of its own, sampled every 10 ms "
        f"({bench.memory_run.wall:.2f} s)",
        "; ".join(filter(None, [ratio("rss2email cold", cold), ratio("newsboat cold", cold),
                                ratio("feedparser cold", cold), ratio("httpx cold", cold)])))
    warm = med["monitor warm"]
    row("warm cycle (all 304)", f"{warm:.2f} s",
        "; ".join(filter(None, [ratio("rss2email warm", warm), ratio("newsboat warm", warm),
                                ratio("httpx warm", warm)])))
    update = med["monitor update"]
    row("update cycle (5 % of feeds +2 items)", f"{update:.2f} s", "")
    latency = getattr(bench, "latency_result", None)
    if latency:
        values = latency["latencies"]
        text = (f"median {measure.median(values):.2f} s, max {max(values):.2f} s"
                if values else "no webhook arrived")
        row("new item -> webhook (daemon)", text,
            f"{latency['arrived']}/{latency['published']} items alerted; daemon on "
            f"{latency['feeds']} feeds, interval {latency['interval']:.0f} s: target <= "
            f"{latency['interval'] + 2:.0f} s")
    tp = getattr(bench, "throughput_result", None)
    if tp:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in tp["stages"].items())
        row("pipeline, no network, one core", f"{tp['items_per_s']:,.0f} items/s",
            f"{tp['items']:,} items in {tp['seconds']:.2f} s; seconds per stage: {stages}")
    for size, data in getattr(bench, "scale_results", {}).items():
        us = data["per_item_us"]
        row(f"match + dedup per item, {size:,} stored", f"{us['total']:.0f} us",
            f"match {us['match']:.0f}, fingerprint {us['fingerprint']:.0f}, dedup+store "
            f"{us['dedup_store']:.0f} us; DB {data['db_mb_per_million']:.0f} MB per million items")
    sizes = sorted(getattr(bench, "scale_results", {}))
    if len(sizes) >= 2:
        first, last = (bench.scale_results[s]["per_item_us"]["total"] for s in (sizes[0], sizes[-1]))
        row(f"scale ratio {sizes[-1]:,} / {sizes[0]:,}", f"{last / first:.2f}x", "target <= 2x")
    big = getattr(bench, "big_run", None)
    if big:
        size, run = big
        row(f"cold cycle on {size:,} stored items", f"{run.wall:.2f} s, peak {run.peak_pss_mb:.0f} MB "
            f"PSS (largest process {run.peak_rss_mb:.0f} MB RSS)", "target <= 200 MB")
    lines.append("")
    lines.append("targets (issue 5): cold >= 3x faster than rss2email and >= 1.5x than newsboat; "
                 "warm <= 2x the bare httpx loop; new item -> webhook <= interval + 2 s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, help="feeds in the farm (default 1000; 300 with --stream)")
    parser.add_argument("--per-feed", type=int, default=50)
    parser.add_argument("--stream", action="store_true",
                        help="the farm holds exactly the 22,898-item stream (the issue's reference)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", default="10000,100000,1000000",
                        help="stored items for the scale measure, comma-separated ('' skips)")
    parser.add_argument("--measure", type=int, default=2000, help="items measured at each scale")
    parser.add_argument("--interval", default="10s", help="the daemon's poll interval (latency)")
    parser.add_argument("--latency-feeds", type=int, default=100,
                        help="feeds of the daemon in the latency run (it ramps up 0.2 s per feed)")
    parser.add_argument("--newsboat-threads", type=int, default=8)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--no-rss-at-scale", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="200 feeds, 1 round, scale 10k and 100k: a couple of minutes")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    if args.quick:
        args.feeds = args.feeds or 200
        args.rounds = 1
        args.scale = "10000,100000" if args.scale == "10000,100000,1000000" else args.scale
        args.measure = min(args.measure, 1000)
        args.latency_feeds = min(args.latency_feeds, 40)
    args.feeds = args.feeds or (300 if args.stream else 1000)
    args.scale = [int(s) for s in re.split(r"[,\s]+", args.scale) if s]
    bench = Bench(args)
    bench.run()
    table = report(bench)
    print(table)
    (bench.out / "results.md").write_text(table + "\n")
    log(f"table written to {bench.out / 'results.md'}")


if __name__ == "__main__":
    main()
