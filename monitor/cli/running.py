"""Running the monitor: ``run`` (the daemon, or one cycle with --once, and the process
settings it starts with), ``web`` (the desk alone) and ``health`` (is a running monitor healthy).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import signal
import sys
from datetime import UTC, datetime
from typing import Any

import click

from ..config import MonitorConfig
from .common import Context, RedactSecrets, cli, fails_cleanly, pass_context, setup_logging, to_the_minute

log = logging.getLogger("monitor")

EXIT_INCOMPLETE = 3  # run --once: a feed failed or alerts were left undelivered


@cli.command()
@click.option("--once", is_flag=True, help="Poll every feed once, deliver what is due, exit.")
@pass_context
@fails_cleanly
def run(obj: Context, once: bool) -> None:
    """Run the monitor: poll the feeds on schedule, match, store and alert.

    With --once the exit code is 0 when every feed was polled and every alert delivered, and 3
    when a feed failed or alerts were left undelivered (they are retried by the next run).

    Example: monitor --config config/monitor.toml run
    """
    handler = setup_logging(obj.verbose, default=logging.INFO)
    config = obj.delivery_config()
    handler.addFilter(RedactSecrets(config.secrets))
    from ..store import describe

    log.info("config %s; database %s; %d feeds, %d storylines", config.source,
             describe(config.database), len(config.feeds), len(config.storylines))
    if compiled():
        log.info("matcher compiled with mypyc")
    else:
        log.warning("the matcher runs as plain Python, not compiled with mypyc (~30 % slower to "
                    "match; see the README's Quick start)")
    if not config.feeds:
        log.warning("no [[feeds]] in %s: there is nothing to poll", config.source)
    # Until the daemon's event loop takes SIGTERM over, it stops us like Ctrl-C: an open
    # transaction rolls back and we exit 0, as a stop during start-up should.
    signal.signal(signal.SIGTERM, _interrupt)
    _tune_process()
    try:
        _run(obj, config, once)
    except KeyboardInterrupt:
        log.info("stopped")


def compiled() -> bool:
    """Whether the matcher's modules are mypyc's C extensions (found, not imported: a cycle of
    304s never imports the matcher)."""
    from importlib.util import find_spec

    spec = find_spec("monitor.match")
    return bool(spec and spec.origin and not spec.origin.endswith(".py"))


@cli.command()
@click.option("--max-age", default="15m", show_default=True, metavar="DURATION",
              help="Without [web] listen: unhealthy when no feed was fetched for this long.")
@pass_context
@fails_cleanly
def health(obj: Context, max_age: str) -> None:
    """Exit 0 when the monitor is healthy, else 1 with the reason: for Docker's HEALTHCHECK, a
    cron job or a supervisor. With [web] listen in the config, asks the desk's /readyz on the
    loopback (the database answers, no feed overdue, the outbox not stuck); without, healthy
    when a feed was fetched in the last --max-age.

    Example: monitor health --max-age 15m
    """
    from ..config import parse_duration

    try:
        limit = parse_duration(max_age)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--max-age") from None
    config = obj.config
    if config.web.listen:
        ready, reason = desk_ready(*config.web.host_port)
        click.echo(f"{'healthy' if ready else 'unhealthy'}: {reason}")
        sys.exit(0 if ready else 1)
    from ..errors import StoreError
    from ..store import may_exist

    if not may_exist(config.database):
        click.echo(f"unhealthy: no database at {config.database} (not started yet?)")
        sys.exit(1)
    try:  # PostgreSQL: a server that does not answer, or no monitor database there yet
        with obj.store() as store:
            fetched = [s.last_fetch_at for s in store.feed_states() if s.last_fetch_at]
    except StoreError as error:
        click.echo(f"unhealthy: {error}")
        sys.exit(1)
    last = max(fetched) if fetched else None
    age = (datetime.now(UTC) - last).total_seconds() if last else None
    if age is None or age > limit:
        click.echo(f"unhealthy: no feed fetched in the last {max_age}"
                   + (f" (last: {to_the_minute(last.isoformat())} UTC)" if last else " (none ever)"))
        sys.exit(1)
    click.echo(f"healthy: a feed was fetched {age:.0f}s ago")


HEALTH_TIMEOUT = 5.0  # seconds: Docker's HEALTHCHECK gives the command 10


def desk_ready(host: str, port: int, *, timeout: float = HEALTH_TIMEOUT) -> tuple[bool, str]:
    """GET the web desk's /readyz on the loopback (a desk listening on every address is asked
    on 127.0.0.1 or ::1): (True, why) on 200, else (False, the desk's reason or why it did not
    answer)."""
    import httpx

    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/readyz"
    try:
        answer = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as error:
        return False, f"the web desk does not answer at {url}: {str(error) or type(error).__name__}"
    try:
        reason = str(answer.json().get("reason"))
    except (ValueError, AttributeError):
        reason = answer.text[:200]
    if answer.status_code == 200:
        return True, f"{url}: {reason}"
    return False, f"{url} answered {answer.status_code}: {reason}"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


_M_ARENA_MAX = -8  # mallopt parameter, glibc's malloc.h


def _tune_process() -> None:
    """Settings for a long-running monitor process (the parse workers inherit them by fork)."""
    # A poll allocates many short-lived objects (entries, words, rows) beside long-lived caches:
    # at the default threshold (700) a young collection ran every few items, ~8 % of the parse
    # workers' time. Every 20,000 allocations instead; cycles are still collected.
    gc.set_threshold(20_000, 10, 10)
    # glibc gives each thread that allocates its own malloc arena and keeps what is freed in it:
    # with the polling threads writing to SQLite in turn, the cold cycle of the stream farm held
    # 98 MB resident against 72 MB with two arenas, at the same speed (MALLOC_ARENA_MAX=2).
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to limit


START_WAIT = 300.0  # seconds `monitor run` waits for an unreachable PostgreSQL at start


def _run(obj: Context, config: MonitorConfig, once: bool) -> None:
    from ..pipeline import Monitor
    from ..store import is_postgres, open_store

    # The daemon waits for a PostgreSQL server that does not answer yet (restarting, or
    # started after it): one of several instances must not die of the database's restart.
    wait: dict[str, Any] = {} if once or not is_postgres(config.database) else {
        "connect_wait": START_WAIT}
    with open_store(config.database, **wait) as store:  # the one command that creates it
        monitor = Monitor(config, store)
        if [f.url for f in monitor.feeds] != [f.url for f in config.feeds]:
            log.info("polling %d feeds: the config's and those added with 'monitor feeds add', "
                     "less the paused (monitor feeds)", len(monitor.feeds))
        try:
            if once:
                feeds, deliveries = monitor.run_once()
                failed = [f for f in feeds if f.outcome == "error"]
                log.info("polled %d feeds (%d failed); %d new items, %d alerts queued; "
                         "%d alerts sent", len(feeds), len(failed),
                         sum(f.stored.new_items for f in feeds),
                         sum(f.stored.new_alerts for f in feeds),
                         sum(d.sent for d in deliveries))
                undelivered = store.alert_counts().get("pending", 0)
                failed_alerts = sum(d.failed for d in deliveries)
                if failed or undelivered or failed_alerts:
                    log.warning("incomplete (exit code %d): %d feed(s) failed, %d alert(s) left "
                                "undelivered, %d alert(s) failed for good in this run",
                                EXIT_INCOMPLETE, len(failed), undelivered, failed_alerts)
                    sys.exit(EXIT_INCOMPLETE)
            else:
                from ..daemon import run_forever

                web = None
                if config.web.listen:  # the desk in a thread of this process, stopped with it
                    from ..web.server import Background

                    web = Background(config)
                    web.start()
                try:
                    run_forever(monitor)
                finally:
                    if web is not None:
                        web.stop()
        finally:
            monitor.close()


@cli.command()
@click.option("--listen", metavar="HOST:PORT",
              help="Where to listen. Default: [web] listen in the config, else 127.0.0.1:8080.")
@pass_context
@fails_cleanly
def web(obj: Context, listen: str | None) -> None:
    """Serve the web desk alone, against the config's database: pages, their JSON twins under
    /api/v1/, Atom feeds, /metrics, /healthz and /readyz. Writes (verdicts, retries) need the
    [web] token; without one the desk is read-only. `monitor run` serves it too when the config
    has [web] listen.

    Example: monitor web --listen 127.0.0.1:8080
    """
    from ..config import split_listen

    if listen is not None:
        try:
            split_listen(listen)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--listen") from None
    handler = setup_logging(obj.verbose, default=logging.INFO)
    config = obj.config
    handler.addFilter(RedactSecrets(config.secrets))
    from ..web.server import serve

    serve(config, listen)
