"""The command line: a thin shell over the library. Each command loads the config, opens
the store and calls one library function; printing is all it adds.

Exit codes: 0 ok, 1 a command-level failure (e.g. nothing to retry), 2 bad config,
bad database or bad input files, 3 ``run --once`` ran but left something undone (a feed failed,
alerts left undelivered).
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .config import MonitorConfig, StorylineConfig, find_config, load_config
from .errors import MonitorError

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("monitor")

EXIT_INCOMPLETE = 3  # run --once: a feed failed or alerts were left undelivered


class RedactSecrets(logging.Filter):
    """Replace configured secrets in every log record: a belt to the braces of never
    formatting them into messages in the first place."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def ours_or_warning(record: logging.LogRecord) -> bool:
    """The monitor's own records, and other libraries' warnings and errors: -v shows the
    monitor's debug lines without third-party debug noise (tzlocal, asyncio...); -vv shows all."""
    return (record.levelno >= logging.WARNING or record.name == "monitor"
            or record.name.startswith("monitor."))


def setup_logging(verbosity: int, default: int = logging.WARNING) -> logging.Handler:
    level = logging.DEBUG if verbosity >= 1 else default
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                           "%Y-%m-%d %H:%M:%S"))
    if verbosity < 2:
        handler.addFilter(ours_or_warning)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbosity < 2 else logging.DEBUG)
    # Apprise logs whole service URLs, tokens included, at DEBUG: never let it.
    logging.getLogger("apprise").setLevel(logging.WARNING)
    # A delivery job still busy with a slow receiver is skipped by design, every second.
    logging.getLogger("apscheduler.scheduler").addFilter(
        lambda record: "maximum number of running instances" not in record.getMessage())
    return handler


class Context:
    def __init__(self, config_path: str | None, db: str | None, verbose: int) -> None:
        self.config_path = config_path
        self.db = db
        self.verbose = verbose
        self._config: MonitorConfig | None = None

    @property
    def config(self) -> MonitorConfig:
        """The config as the commands that deliver nothing read it: a channel's ${VAR} that is not
        set does not stop them (``run`` reads ``delivery_config``)."""
        if self._config is None:
            self._config = load_config(find_config(self.config_path), database=self.db, deliver=False)
        return self._config

    def delivery_config(self) -> MonitorConfig:
        """The config with every channel's ${VAR} resolved: what ``run`` delivers with."""
        return load_config(find_config(self.config_path), database=self.db)

    def store(self, *, create: bool = False) -> Store:
        """The database; a missing one is an error unless ``create`` (``run``, ``learn``)."""
        # Imported here: start-up time matters for every command, and not all need the store.
        from .store import open_store

        return open_store(self.config.database, create=create)


def fails_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into one line on stderr and exit code 2, never a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MonitorError as error:
            click.echo(f"Error: {error}", err=True)
            sys.exit(2)

    return wrapper


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH",
              help="Config file. Default: $MONITOR_CONFIG, else ./config/monitor.toml, "
                   "else the built-in default.")
@click.option("--db", metavar="PATH|URL",
              help="Database file, or a postgresql:// URL (overrides the config; also $MONITOR_DB).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv: also HTTP).")
@click.version_option(package_name="ceasefire-monitor")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, db: str | None, verbose: int) -> None:
    """Watch news feeds for storylines of the Gaza ceasefire talks, and alert.

    Example: monitor run --once
    """
    ctx.obj = Context(config_path, db, verbose)


# --------------------------------------------------------------------------- run

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
    from .store import describe

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
    from .config import parse_duration

    try:
        limit = parse_duration(max_age)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--max-age") from None
    config = obj.config
    if config.web.listen:
        ready, reason = desk_ready(*config.web.host_port)
        click.echo(f"{'healthy' if ready else 'unhealthy'}: {reason}")
        sys.exit(0 if ready else 1)
    from .errors import StoreError
    from .store import may_exist

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
                   + (f" (last: {_minute(last.isoformat())} UTC)" if last else " (none ever)"))
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
    from .pipeline import Monitor
    from .store import is_postgres, open_store

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
                from .daemon import run_forever

                web = None
                if config.web.listen:  # the desk in a thread of this process, stopped with it
                    from .web.server import Background

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
    from .config import split_listen

    if listen is not None:
        try:
            split_listen(listen)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--listen") from None
    handler = setup_logging(obj.verbose, default=logging.INFO)
    config = obj.config
    handler.addFilter(RedactSecrets(config.secrets))
    from .web.server import serve

    serve(config, listen)


# --------------------------------------------------------------------------- read models

def _ago(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """A ``--since`` duration (30s, 5m, 2h, 7d) as the moment that long ago."""
    if value is None:
        return None
    from .config import parse_duration

    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool,
         headers: Sequence[str] | None = None, widths: dict[str, int] | None = None) -> None:
    """Rows as JSON, or as a table of ``columns``: a string longer than its column's width in
    ``widths`` (default 70; ``widths={}``: none) is cut with "..."."""
    if as_json:
        click.echo(json.dumps(list(rows), indent=2, ensure_ascii=False, default=str))
        return
    if not rows:
        click.echo("(none)")
        return
    from tabulate import tabulate

    limits = {c: 70 for c in columns} if widths is None else widths
    table = [[_cell(row.get(c), limits.get(c)) for c in columns] for row in rows]
    click.echo(tabulate(table, headers=list(headers or columns), tablefmt="simple"))


def _minute(value: str | None) -> str | None:
    """An ISO time as ``2026-11-26 06:58`` (UTC), or None."""
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def check_storyline(config: MonitorConfig, storyline: str) -> None:
    if storyline not in {s.id for s in config.storylines}:
        raise click.BadParameter(f"no storyline {storyline!r} in {config.source}",
                                 param_hint="--storyline")


def _decided_by(storyline: StorylineConfig, models: dict[str, Any]) -> str:
    """What decides a storyline, as ``monitor storylines`` shows it: ``model`` (its model file,
    ``models`` from ``deciders.shipped_models``) or ``rules``, ``+ desk`` when ``learned = true``
    (the database's examples train or correct it)."""
    return ("model" if storyline.id in models else "rules") + (" + desk" if storyline.learned else "")


def warn_unknown_storylines(config: MonitorConfig, labels: str, rows: Sequence[dict[str, Any]]) -> None:
    """A labels file that names storylines the config does not have: say so (they are ignored)."""
    configured = {s.id for s in config.storylines}
    unknown = sorted({s for row in rows for s in row["storylines"]} - configured)
    if unknown:
        click.echo(f"warning: {labels} names storylines that are not in {config.source}, ignored: "
                   f"{', '.join(unknown)}", err=True)


def _cell(value: Any, width: int | None = 70) -> Any:
    if value is None:
        return "-"
    if isinstance(value, str) and width is not None and len(value) > width:
        return value[:width - 3] + "..."
    return value


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--wide", is_flag=True, help="Also the name, the terms and the desk's note, untruncated.")
@click.pass_context
@fails_cleanly
def storylines(ctx: click.Context, as_json: bool, wide: bool) -> None:
    """List the tracked storylines and their matches.

    Example: monitor storylines --wide
    """
    if ctx.invoked_subcommand is not None:
        return
    _list_storylines(ctx.obj, as_json, wide)


@storylines.command("draft")
@click.argument("storyline_id", metavar="ID")
@click.option("--name", required=True, help="The storyline's name, as the desk says it.")
@click.option("--description", default="", help="A sentence on what belongs to it.")
@click.option("--example", "examples", multiple=True, metavar="HEADLINE",
              help="A headline that belongs to it (repeatable).")
@click.option("--since", default="30d", show_default=True, callback=_ago,
              help="Read the items stored in this last while.")
@click.option("--limit", default=10, show_default=True,
              help="How many matched and borderline items to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def storylines_draft(obj: Context, storyline_id: str, name: str, description: str,
                     examples: tuple[str, ...], since: datetime, limit: int, as_json: bool) -> None:
    """Propose a storyline from a name, a description and examples, read off the stored items.

    Prints the TOML to paste into the config (groups of terms, the words around the editor's
    own that the stored items use, vetoes for names that hold its core word but are another
    subject), then the stored items it would have matched and the borderline ones it would not.

    Example: monitor storylines draft hezbollah-front --name "Hezbollah front" --example "Hezbollah
    fires rockets at northern Israel" --description "Fighting on the Israel-Lebanon border"
    """
    from .draft import draft

    with obj.store() as store:
        rows = store.review_items(limit=20_000)
    items = [(str(r["item_id"]), r["title"], r["summary"]) for r in rows
             if r["published"] and datetime.fromisoformat(r["published"]) >= since]
    try:
        proposal = draft(storyline_id, name, description, examples, items, limit=limit)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--name") from None
    if as_json:
        click.echo(json.dumps(proposal.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(f"# drafted from {len(items)} stored item(s); where each term comes from:")
    for term, why in proposal.why.items():
        click.echo(f"#   {term}: {why}")
    click.echo(proposal.toml)
    shown = [("would have matched", proposal.matched, proposal.totals[0]),
             ("borderline, not matched", proposal.borderline, proposal.totals[1])]
    if proposal.near:
        shown.append((f"would not have matched with near = {proposal.near}", proposal.dropped,
                      proposal.dropped_total))
    for title, found, total in shown:
        first = f", the first {len(found)}" if total > len(found) else ""
        click.echo(f"{title}: {total} stored item(s){first}")
        for row in found:
            why = f"  ({row['why']})" if "why" in row else ""
            click.echo(f"  {row['item_id']:>7}  {row['title'][:90]}{why}")


def _list_storylines(obj: Context, as_json: bool, wide: bool) -> None:
    from .deciders import desk_notes, shipped_models

    config = obj.config
    with obj.store() as store:
        stats = store.storyline_stats(now=datetime.now(UTC))
        notes = desk_notes(config, store)
    models = shipped_models(config)  # a model file that no longer fits its rules is not counted
    rows = []
    for storyline in config.storylines:
        s = stats.get(storyline.id, {})
        decided_by = _decided_by(storyline, models)
        desk = notes.get(storyline.id, "")
        if storyline.learned and desk.startswith(("learns", "stands aside")):
            decided_by += f" ({desk.split(':', 1)[0]})"
        if storyline.refines:
            decided_by += f", or through {storyline.refines}"
        rows.append({
            "id": storyline.id, "name": storyline.name, "decided_by": decided_by, "desk": desk,
            "all": [list(g) for g in storyline.all], "any": list(storyline.any),
            "none": list(storyline.none), "threshold": storyline.threshold,
            "terms": " + ".join("|".join(g) for g in storyline.all)
                     + (f" + any({'|'.join(storyline.any)})" if storyline.any else ""),
            "matches_24h": s.get("last_24h", 0), "matches_total": s.get("total", 0),
            "last_match": s.get("last_match"),
        })
    if as_json:
        emit(rows, [], True)
        return
    for row in rows:
        row["last"] = _minute(row["last_match"])
    if wide:
        emit(rows, ["id", "name", "decided_by", "matches_24h", "matches_total", "last", "terms", "desk"],
             False, ["id", "name", "decided by", "24h", "total", "last match (UTC)", "terms", "desk"],
             widths={})
    else:  # fits 100 columns
        emit(rows, ["id", "decided_by", "matches_24h", "matches_total", "last"], False,
             ["id", "decided by", "24h", "total", "last match (UTC)"], widths={"id": 24, "decided_by": 40})


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--wide", is_flag=True, help="Also the URL, interval and last error, untruncated.")
@click.pass_context
def feeds(ctx: click.Context, as_json: bool, wide: bool) -> None:
    """List the feeds and their health: the config's and those added with `feeds add`.

    Example: monitor feeds --wide
    """
    if ctx.invoked_subcommand is not None:
        return
    obj: Context = ctx.obj

    @fails_cleanly
    def show() -> None:
        from .subscriptions import all_feeds

        config = obj.config
        with obj.store() as store:
            store.sync_feeds(config.feeds)
            entries = all_feeds(config, store)
            states = {s.url: s for s in store.feed_states()}
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        for entry in entries:
            feed, s = entry.feed, states[entry.feed.url]
            healthy = s.last_fetch_at is not None and s.consecutive_errors == 0
            health = ("paused" if entry.paused else "ok" if healthy
                      else "never fetched" if s.last_fetch_at is None else "failing")
            rows.append({
                "name": feed.name, "url": feed.url, "interval": feed.interval, "from": entry.origin,
                "paused_at": entry.paused_at, "health": health,
                "last_fetch": s.last_fetch_at.isoformat() if s.last_fetch_at else None,
                "last_success": s.last_success_at.isoformat() if s.last_success_at else None,
                "last_status": s.last_status, "consecutive_errors": s.consecutive_errors,
                "last_error": s.last_error, "last_error_code": s.last_error_code,
                "items_seen": s.items_seen,
                "next_poll": s.next_poll_at.isoformat() if s.next_poll_at else None,
                "held_by": s.holder(now),  # the instance polling it now (several on one database)
            })
        if as_json:
            emit(rows, [], True)
            return
        for row in rows:
            row["fetched"], row["every"] = _minute(row["last_fetch"]), _duration(row["interval"])
        held = ["held_by"] if any(row["held_by"] for row in rows) else []
        if wide:
            emit(rows, ["name", "from", "health", "fetched", "last_status", "consecutive_errors",
                        "items_seen", "every", *held, "url", "last_error"], False,
                 ["feed", "from", "health", "last fetch (UTC)", "status", "errors", "items", "every",
                  *(["held by"] if held else []), "url", "last error"], widths={})
        else:
            emit(rows, ["name", "from", "health", "fetched", "last_status", "consecutive_errors",
                        "items_seen", *held], False,
                 ["feed", "from", "health", "last fetch (UTC)", "status", "errors", "items",
                  *(["held by"] if held else [])], widths={"name": 30})

    show()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@fails_cleanly
def instances(obj: Context, as_json: bool) -> None:
    """List the `monitor run` instances alive on this database and the feeds each holds now.

    Alive: a heartbeat within two leases. Several instances share a PostgreSQL database and
    claim its feeds; an SQLite database has one at a time, which holds no lease.

    Example: monitor --db postgresql://monitor@db:5432/monitor instances --json
    """
    from .daemon import LEASE_SECONDS

    with obj.store() as store:
        rows = store.instances(now=datetime.now(UTC), alive_within=2 * LEASE_SECONDS)
    if as_json:
        emit(rows, [], True)
        return
    for row in rows:
        row["started"], row["heartbeat"] = _minute(row["started_at"]), row["heartbeat_at"][11:19]
        row["held"] = len(row["feeds"])
        row["delivers"] = ", ".join(row["channels"])
    emit(rows, ["id", "host", "pid", "started", "heartbeat", "held", "delivers"], False,
         ["instance", "host", "pid", "started (UTC)", "last heartbeat", "feeds held", "delivers"])


def _feed_entry(obj: Context, store: Store, key: str) -> Any:
    """The feed named (or with the URL) ``key``, or exit 1 saying there is none."""
    from .subscriptions import all_feeds, find

    store.sync_feeds(obj.config.feeds)
    entry = find(all_feeds(obj.config, store), key)
    if entry is None:
        click.echo(f"Error: no feed {key!r} (see monitor feeds)", err=True)
        sys.exit(1)
    return entry


@feeds.command(name="add")
@click.argument("url")
@click.option("--name", metavar="NAME", help="Its name. Default: the feed's own title.")
@click.option("--interval", metavar="DURATION",
              help="How often to poll it (30s, 5m, 2h). Default: the config's poll_interval.")
@pass_context
@fails_cleanly
def feeds_add(obj: Context, url: str, name: str | None, interval: str | None) -> None:
    """Add a feed, kept in the database and polled on top of the config's feeds.

    URL may be a web page: the feed it announces (<link rel="alternate"
    type="application/rss+xml">, or atom+xml) is added. The feed is fetched once to check it.

    Example: monitor feeds add https://www.aljazeera.com/ --name "Al Jazeera" --interval 5m
    """
    from .config import parse_duration
    from .fetch import Fetcher
    from .subscriptions import all_feeds, discover

    seconds = None
    if interval is not None:
        try:
            seconds = parse_duration(interval)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--interval") from None
        if seconds < 1:
            raise click.BadParameter("at least 1s", param_hint="--interval")
    config = obj.config
    with Fetcher(user_agent=config.user_agent, max_body_bytes=config.max_body_bytes,
                 total_timeout=config.fetch_timeout) as fetcher:
        found = discover(url, fetcher)
    name = name or found.title or found.url
    with obj.store(create=True) as store:  # a feed may be added before the first run
        store.sync_feeds(config.feeds)
        for entry in all_feeds(config, store):
            if entry.feed.url == found.url:
                click.echo(f"Error: {found.url} is already a feed ({entry.feed.name!r}, from the "
                           f"{entry.origin})", err=True)
                sys.exit(1)
            if entry.feed.name == name:
                click.echo(f"Error: a feed is already named {name!r} (choose another with --name)",
                           err=True)
                sys.exit(1)
        store.add_feed(found.url, name, seconds, now=datetime.now(UTC))
    via = f" (announced by {found.page})" if found.page else ""
    click.echo(f"added {name!r}: {found.url}{via}, {found.entries} entries now, polled every "
               f"{_duration(seconds or config.poll_interval)}")


@feeds.command(name="remove")
@click.argument("name")
@pass_context
@fails_cleanly
def feeds_remove(obj: Context, name: str) -> None:
    """Remove a feed added with `feeds add` (its stored items stay). The config's feeds are
    removed from the config.

    Example: monitor feeds remove "Al Jazeera"
    """
    from .subscriptions import CONFIG

    with obj.store() as store:
        entry = _feed_entry(obj, store, name)
        if entry.origin == CONFIG:
            click.echo(f"Error: {entry.feed.name!r} is listed in {obj.config.source}: remove it "
                       "there, or pause it (monitor feeds pause)", err=True)
            sys.exit(1)
        store.remove_feed(entry.feed.url)
    click.echo(f"removed {entry.feed.name!r} ({entry.feed.url})")


@feeds.command(name="pause")
@click.argument("name")
@pass_context
@fails_cleanly
def feeds_pause(obj: Context, name: str) -> None:
    """Stop polling a feed (the config's or an added one) until `feeds resume`.

    Example: monitor feeds pause "Al Jazeera"
    """
    with obj.store() as store:
        entry = _feed_entry(obj, store, name)
        changed = store.pause_feed(entry.feed.url, now=datetime.now(UTC))
    click.echo(f"{entry.feed.name!r} {'paused' if changed else 'was paused already'}")


@feeds.command(name="resume")
@click.argument("name")
@pass_context
@fails_cleanly
def feeds_resume(obj: Context, name: str) -> None:
    """Poll a paused feed again.

    Example: monitor feeds resume "Al Jazeera"
    """
    with obj.store() as store:
        entry = _feed_entry(obj, store, name)
        changed = store.pause_feed(entry.feed.url, now=None)
    click.echo(f"{entry.feed.name!r} {'resumed' if changed else 'was not paused'}")


@feeds.command(name="import")
@click.argument("path", metavar="FILE.opml", type=click.Path(dir_okay=False))
@pass_context
@fails_cleanly
def feeds_import(obj: Context, path: str) -> None:
    """Add the feeds of an OPML file (from another feed reader) that are not feeds already.

    Example: monitor feeds import subscriptions.opml
    """
    from .subscriptions import all_feeds, is_http_url, read_opml

    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise click.BadParameter(f"cannot read {path}: {error.strerror}", param_hint="FILE.opml") from None
    found = read_opml(data, path)
    config = obj.config
    added, known, refused = [], 0, []
    now = datetime.now(UTC)
    with obj.store(create=True) as store:  # feeds may be imported before the first run
        store.sync_feeds(config.feeds)
        entries = all_feeds(config, store)
        urls = {e.feed.url for e in entries}
        names = {e.feed.name for e in entries}
        for name, url in found:
            if not is_http_url(url):
                refused.append(url)
                continue
            if url in urls:
                known += 1
                continue
            unique, n = name, 2
            while unique in names:
                unique, n = f"{name} ({n})", n + 1
            store.add_feed(url, unique, None, now=now)
            urls.add(url)
            names.add(unique)
            added.append(unique)
    click.echo(f"imported {len(added)} feed(s) from {path}; {known} already there"
               + (f"; {len(refused)} refused (not http/https): {', '.join(refused[:3])}" if refused else ""))


@feeds.command(name="export")
@pass_context
@fails_cleanly
def feeds_export(obj: Context) -> None:
    """Print every feed, the config's and the added ones, as OPML 2.0 (for another reader).

    Example: monitor feeds export > feeds.opml
    """
    from .subscriptions import all_feeds, write_opml

    with obj.store() as store:
        store.sync_feeds(obj.config.feeds)
        entries = all_feeds(obj.config, store)
    click.echo(write_opml(entries, now=datetime.now(UTC)).decode("utf-8"), nl=False)


@cli.command()
@click.option("--storyline", metavar="ID", help="Only this storyline.")
@click.option("--since", metavar="DURATION", callback=_ago,
              help="Only items published in the last DURATION (30m, 24h, 7d).")
@click.option("--search", metavar="WORDS", help="Only items whose title or summary has every one of WORDS.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def matches(obj: Context, storyline: str | None, since: datetime | None, search: str | None,
            limit: int, as_json: bool) -> None:
    """List recent matches, newest first, with the item id that `monitor feedback` takes.

    Example: monitor matches --since 24h --search "Rafah crossing"
    """
    if storyline is not None:
        check_storyline(obj.config, storyline)
    words = search.split() if search else []
    with obj.store() as store:
        rows = store.matches(storyline=storyline, limit=limit, since=since, words=words)
    if as_json:
        emit(rows, [], True)
        return
    for row in rows:
        row["when"] = _minute(row["published"])
        row["item"] = (_cell(row["title"], 60) + "\n" + (row["link"] or "(no link)"))
        row["sent"] = "yes" if row["alerted"] else "no"
    emit(rows, ["item_id", "when", "storyline", "score", "sent", "item"], False,
         ["item id", "published (UTC)", "storyline", "score", "alerted", "title / link"], widths={})


@cli.command()
@click.option("--storyline", metavar="ID", help="Only stories with an item of this storyline.")
@click.option("--since", default="24h", show_default=True, callback=_ago,
              help="Stories first reported this long ago or later (30s, 5m, 2h, 7d).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def stories(obj: Context, storyline: str | None, since: datetime, limit: int, as_json: bool) -> None:
    """List the stories (one per development), newest first: the outlets that reported each,
    where it alerted, and why each later report joined it.

    Example: monitor stories --storyline captive-releases --since 2d
    """
    if storyline is not None:
        check_storyline(obj.config, storyline)
    with obj.store() as store:
        rows = store.stories(since=since, storyline=storyline, limit=limit)
    if as_json:
        emit(rows, [], as_json=True)
        return
    if not rows:
        click.echo("(none)")
        return
    for story in rows:
        where = ", ".join(f"{a['channel']} ({a['status']})" for a in story["alerted"])
        if not where:
            where = "not alerted" if story["alerts"] else "not alerted: no development reported"
        click.echo(f"story {story['story_id']}  {story['first_seen']}  {story['outlets']} outlet(s)  "
                   f"[{', '.join(story['storylines'])}]  stage: {story['stage'] or 'none'}  "
                   f"alerted: {where}")
        click.echo(f"  {story['headline']}")
        for item in story["items"]:
            click.echo(f"    {item['published']}  {item['source']}: {item['title']}  "
                       f"(item {item['item_id']})")
            why = item["joined"]
            if why:
                click.echo(f"      joined: {_why(why)}")
        click.echo("")


def _why(why: dict[str, Any]) -> str:
    if why.get("by") == "copy":
        return "near-duplicate text (syndicated copy)"
    parts = [f"score {why.get('similarity')}: {round(100 * why.get('coverage', 0))} % of its word "
             f"weight in the story"]
    for key, label in (("shared_words", "words"), ("shared_names", "names"),
                       ("shared_counts", "counts")):
        if why.get(key):
            parts.append(f"{label}: {', '.join(why[key])}")
    if why.get("kind") and why["kind"] != "report":
        parts.append(f"as a {why['kind']}")
    return "; ".join(parts)


@cli.command()
@click.argument("text")
@click.option("--summary", default="", help="Summary text, scored as the body of the item.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def check(obj: Context, text: str, summary: str, as_json: bool) -> None:
    """Score a text against every storyline and explain the decision.

    TEXT is scored as a headline; it may hold HTML, which is stripped as the pipeline does.

    Example: monitor check "Hamas delegation in Cairo for truce talks"
    """
    from .match import Matcher
    from .normalise import html_to_text

    title, body = html_to_text(text), html_to_text(summary)
    if not title.strip():
        raise click.BadParameter("an empty text has no words to score; give a headline",
                                 param_hint="TEXT")
    matcher = Matcher(obj.config.storylines)
    explanations = matcher.explain(title, body)
    models = {}
    from .store import may_exist

    if any(s.learned for s in obj.config.storylines) and may_exist(obj.config.database):
        from .deciders import learned_models  # the models the daemon would use

        with obj.store() as store:
            models = learned_models(obj.config, store, matcher)
    elif any(s.model for s in obj.config.storylines):  # no database: no examples yet
        from .deciders import shipped_models

        models = shipped_models(obj.config)
    matched: set[str] = set()
    if matcher.refines:  # a refining storyline's decision depends on the others' final ones
        from .deciders import decider

        matched = {m.storyline_id for m in decider(matcher, models).match(title, body)}
    if as_json:
        out = []
        for e in explanations:
            row = e.to_dict()
            model = models.get(e.storyline_id)
            if model is not None:
                p = model.probability(title, body, e)
                row["learned"] = {"probability": round(p, 4), "threshold": model.threshold,
                                  "matched": p >= model.threshold,
                                  "top_features": [c.to_dict() for c in model.explain(title, body, e)]}
            if (refinement := matcher.refinement(e, matched)) is not None:
                row["refines"] = {"storyline": matcher.refines[e.storyline_id],
                                  "matched": e.storyline_id in matched, "why": refinement[1]}
            out.append(row)
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        blocks = []
        for e in explanations:
            model = models.get(e.storyline_id)
            line = matcher.refinement_line(e, matched)
            blocks.append(e.render() + ("\n" + model.render(title, body, e) if model else "")
                          + ("\n" + line if line else ""))
        click.echo("\n\n".join(blocks))


@cli.command(name="eval")
@click.argument("labels", type=click.Path(dir_okay=False))
@click.option("--items", "items_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL of items (id, title, summary) the labels refer to.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--errors", is_flag=True, help="List false positives and misses with explanations.")
@click.option("--learned", is_flag=True,
              help="Also measure the learned layer trained on these labels: k-fold CV over the tune "
                   "part, and trained on the tune part, tested on the held-out part.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20),
              help="Folds for --learned.")
@click.option("--train", "train_paths", multiple=True, type=click.Path(dir_okay=False),
              metavar="LABELS",
              help="With --learned: train on these labelled files (repeatable; their items also "
                   "in --items) and test on every item of LABELS, instead of the held-out fifth.")
@click.option("--skip-unsure", is_flag=True,
              help="Leave labels marked \"unsure\" (borderline under the rubric) out of the scoring and "
                   "the error list, as TDT left out borderline judgements; the report says how many. "
                   "Default: every label is scored. --learned still trains on them.")
@click.option("--rules", "rules_only", is_flag=True,
              help="Decide with the rules alone, not with the storylines' model files.")
@click.option("--from-db", is_flag=True,
              help="Decide with the models the daemon trains from the database's examples "
                   "(storylines with learned = true): what `monitor run` would record. Not a fair "
                   "test when those examples include these items.")
@pass_context
@fails_cleanly
def eval_command(obj: Context, labels: str, items_path: str, as_json: bool, errors: bool,
                 learned: bool, folds: int, train_paths: tuple[str, ...], rules_only: bool,
                 from_db: bool, skip_unsure: bool) -> None:
    """Measure the storylines on labelled items: precision, recall, F1 and C_det.

    Example: monitor eval labels/sample/labels.jsonl --items labels/sample/items.jsonl --rules

    Labels marked "unsure" are scored like the others unless --skip-unsure leaves them out.
    """
    from .evaluate import evaluate, evaluate_learned, load_items, load_labels
    from .match import Matcher

    if train_paths and not learned:
        raise click.UsageError("--train needs --learned (it trains the learned layer)")
    if rules_only and from_db:
        raise click.UsageError("--rules and --from-db: choose one")
    label_rows, items = load_labels(Path(labels)), load_items(Path(items_path))
    warn_unknown_storylines(obj.config, labels, label_rows)
    train = {path: load_labels(Path(path)) for path in train_paths} or None
    matcher = Matcher(obj.config.storylines)
    models: dict[str, Any] = {}
    if from_db:
        from .deciders import learned_models

        with obj.store() as store:
            models = learned_models(obj.config, store, matcher)
    elif not rules_only:
        from .deciders import shipped_models

        models = shipped_models(obj.config)
    from .deciders import decider

    report = evaluate(decider(matcher, models), label_rows, items, skip_unsure=skip_unsure)
    report.decided_by = {s.id: (f"model: {models[s.id].trained_on or 'trained on stored examples'}"
                                if s.id in models else "rules") for s in obj.config.storylines}
    if learned:
        with _progress("training and testing the learned layer", as_json) as progress:
            report.learned = evaluate_learned(matcher, label_rows, items, k=folds,
                                              skip_unsure=skip_unsure, train=train, progress=progress)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        if models:
            click.echo(f"decided as 'monitor run' does{' with this database' if from_db else ''}: "
                       + "; ".join(f"{sid} by its {how}" for sid, how in report.decided_by.items()
                                   if how != "rules")
                       + "; the others by their rules (--rules: the rules alone). A model is no "
                         "fair test on items it was trained on.\n")
        click.echo(report.render(errors=errors))
        if report.learned is not None:
            click.echo("")
            click.echo(report.learned.render())


@contextmanager
def _progress(label: str, as_json: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr for a long command, only on a terminal: never with --json, nor
    when the output or stderr is piped or redirected. Yields ``update(done, total)`` or None."""
    if as_json or not (sys.stdout.isatty() and sys.stderr.isatty()):
        yield None
        return
    bar: Any = None
    shown = [0]

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True)
            bar.__enter__()
        bar.update(done - shown[0])
        shown[0] = done

    try:
        yield update
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


@cli.command("review")
@click.argument("storyline")
@click.option("--limit", default=20, show_default=True, help="How many items to list.")
@click.option("--scan", default=2000, show_default=True, help="How many of the newest stored items to rank.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def review_command(obj: Context, storyline: str, limit: int, scan: int, as_json: bool) -> None:
    """List the stored items whose verdict would teach STORYLINE most, borderline first.

    Among the items where the rules found a term of the storyline's first group: those where
    its model and its rules disagree, then those whose probability is nearest the cut (with the
    rules deciding: near misses and matches found only in the summary). Items already judged
    are left out. Judge them with `monitor feedback ITEM --storyline ID right|wrong`.

    Example: monitor review rafah-crossing --limit 10
    """
    from .review import review

    check_storyline(obj.config, storyline)
    with obj.store() as store:
        rows = review(obj.config, store, storyline, limit=limit, scan=scan)
    if as_json:
        emit(rows, [], True)
        return
    for row in rows:
        row["published"] = _minute(row["published"])
    emit(rows, ["item_id", "decision", "probability", "why", "title"], False,
         ["item", "decision", "p", "why", "title"], widths={"why": 34, "title": 60})


@cli.command()
@click.argument("item")
@click.argument("verdict", type=click.Choice(["right", "wrong"]))
@click.option("--storyline", metavar="ID", required=True, help="The storyline the verdict is about.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def feedback(obj: Context, item: str, verdict: str, storyline: str, as_json: bool) -> None:
    """Record a desk's verdict on the monitor's decision for a stored item.

    ITEM is the item id (`item_id` in `monitor matches --json`) or its link. "right": the monitor
    decided well (matched and it belongs, or not matched and it does not); "wrong": the opposite.
    The verdict becomes a training example of the storyline's learned layer (`learned = true`):
    a running daemon retrains within a minute, off its polls; `monitor review` lists the items
    worth judging.

    Example: monitor feedback 42 --storyline captive-releases wrong
    """
    check_storyline(obj.config, storyline)
    with obj.store() as store:
        try:
            result = store.record_feedback(item, storyline, right=verdict == "right",
                                           now=datetime.now(UTC))
        except KeyError:
            click.echo(f"Error: no stored item {item!r} (give its id or link; see monitor matches "
                       "--json)", err=True)
            sys.exit(1)
        totals = store.feedback_counts().get(storyline, {})
    used = obj.config.storyline(storyline).learned
    if as_json:
        click.echo(json.dumps(dict(result, examples=totals, used=used), ensure_ascii=False))
        return
    decided = "matched" if result["matched"] else "did not match"
    truth = "belongs to" if result["label"] else "does not belong to"
    click.echo(f"recorded: the monitor {decided} item {result['item_id']} and was {verdict}: it "
               f"{truth} {storyline}. ({result['title'][:70]})")
    click.echo(f"{storyline}: {totals.get('examples', 0)} examples stored "
               f"({totals.get('positives', 0)} positive, {totals.get('desk', 0)} from the desk)")
    if not used:
        click.echo(f"note: {storyline} has learned = false in {obj.config.source}: the verdict is "
                   "stored but has no effect on its decisions until learned = true (then from the "
                   "next start of monitor run)")


@cli.command()
@click.argument("labels", type=click.Path(dir_okay=False))
@click.option("--items", "items_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL of items (id, title, summary) the labels refer to.")
@click.option("--part", type=click.Choice(["all", "tune", "held-out"]), default="all",
              show_default=True, help="Import only this part (held-out: sha1(id) % 5 == 0).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def learn(obj: Context, labels: str, items_path: str, part: str, as_json: bool) -> None:
    """Import a labelled file as training examples of the learned layer.

    Every configured storyline that the labels mention gets one example per item (positive when
    the item's "storylines" list it). The text is normalised as the pipeline does.

    Example: monitor learn labels/sample/labels.jsonl --items labels/sample/items.jsonl
    """
    from .deciders import shipped_models
    from .evaluate import held_out, html_to_text, load_items, load_labels

    label_rows, items = load_labels(Path(labels)), load_items(Path(items_path))
    warn_unknown_storylines(obj.config, labels, label_rows)
    configured = [s.id for s in obj.config.storylines]
    mentioned = {s for row in label_rows for s in row["storylines"]}
    storylines = [s for s in configured if s in mentioned]
    examples = []
    for row in label_rows:
        if part != "all" and held_out(row["id"]) != (part == "held-out"):
            continue
        item = items.get(row["id"])
        if item is None:
            continue
        title = html_to_text(item.get("title") or "")
        summary = html_to_text(item.get("summary") or "")
        for storyline in storylines:
            examples.append((row["id"], title, summary, storyline, storyline in row["storylines"]))
    with obj.store(create=True) as store:  # examples may come before the first run
        count = store.import_examples(examples, source=f"labels:{Path(labels).name}",
                                      now=datetime.now(UTC))
        totals = store.feedback_counts()
    models = shipped_models(obj.config)
    rows: list[dict[str, Any]] = []
    for storyline_id in storylines:
        config_storyline = obj.config.storyline(storyline_id)
        t = totals.get(storyline_id, {})
        rows.append({"storyline": storyline_id, "examples": t.get("examples", 0),
                     "positives": t.get("positives", 0),
                     "decided_by": _decided_by(config_storyline, models),
                     "used": config_storyline.learned})
    if as_json:
        click.echo(json.dumps({"imported": count, "labels": labels, "part": part, "storylines": rows},
                              indent=2, ensure_ascii=False))
        return
    click.echo(f"imported {count} examples from {labels} ({part})")
    for row in rows:
        if row["decided_by"].startswith("model"):
            decides, effect = "its model decides", "they correct its model"
        else:
            decides, effect = "its rules decide", "a model is trained on them"
        note = (f"learned = true: {effect} from the next start of monitor run" if row["used"] else
                f"learned = false in the config: {decides}, and these examples are not used until "
                "learned = true")
        click.echo(f"  {row['storyline']}: {row['examples']} examples, {row['positives']} positive "
                   f"({note})")


@cli.command(name="train")
@click.argument("labels", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--items", "items_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL of items (id, title, summary) the labels refer to.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the model files (<storyline>.json).")
@click.option("--storyline", "only", multiple=True, metavar="ID",
              help="Train only this storyline (repeatable). Default: every configured storyline "
                   "the labels mention.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def train_command(obj: Context, labels: tuple[str, ...], items_path: str, out_dir: str,
                  only: tuple[str, ...], as_json: bool) -> None:
    """Train the learned layer on labelled files and write a model file per storyline.

    A storyline's `model = "FILE"` in the config makes the model decide it (with `learned = true`,
    corrected by the desk's own examples). The model records the rules it was trained with: edit
    the storyline's rules and it stands aside until trained again. Measure before you ship:
    `monitor eval OTHER.jsonl --items ITEMS --learned --train LABELS`.

    Example: monitor train labels/sample/labels.jsonl --items labels/sample/items.jsonl --out my-models
    """
    from .evaluate import DataError, html_to_text, load_items, load_labels
    from .learn import MIN_EXAMPLES, build_models, rules_fingerprint
    from .match import Matcher

    items = load_items(Path(items_path))
    rows: dict[str, dict[str, Any]] = {}
    for path in labels:
        for row in load_labels(Path(path)):
            if row["id"] in rows:
                raise DataError(f"{path}: id {row['id']!r} is labelled in two files")
            if row["id"] not in items:
                raise DataError(f"{path}: id {row['id']!r} is not in {items_path}")
            rows[row["id"]] = row
        warn_unknown_storylines(obj.config, path, list(rows.values()))
    mentioned = {s for row in rows.values() for s in row["storylines"]}
    configured = {s.id for s in obj.config.storylines}
    unknown = [s for s in only if s not in configured]
    if unknown:
        raise click.BadParameter(f"no storyline {unknown[0]!r} in the config", param_hint="--storyline")
    storylines = [s for s in obj.config.storylines if s.id in (set(only) or mentioned)]
    if not storylines:
        raise DataError("no configured storyline is labelled in these files")
    texts = {key: (html_to_text(items[key].get("title") or ""), html_to_text(items[key].get("summary") or ""))
             for key in rows}
    stored = {s.id: [(key, *texts[key], s.id in row["storylines"]) for key, row in rows.items()]
              for s in storylines}
    models = build_models(Matcher(obj.config.storylines), stored,
                          thresholds={s.id: s.learned_threshold for s in storylines}, few=0)
    names = ", ".join(Path(p).name for p in labels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: list[dict[str, Any]] = []
    for storyline in storylines:
        positives = sum(1 for *_text, label in stored[storyline.id] if label)
        model = models.get(storyline.id)
        if model is None:
            report.append({"storyline": storyline.id, "path": None, "positive_items": positives})
            if not as_json:
                click.echo(f"{storyline.id}: fewer than {MIN_EXAMPLES} positive or negative candidate "
                           f"examples ({positives} positive items); no model written")
            continue
        model.rules = rules_fingerprint(storyline)
        model.trained_on = f"{len(rows)} labelled items of {names} ({positives} positive)"
        model_path = out / f"{storyline.id}.json"
        model_path.write_text(model.to_json() + "\n", encoding="utf-8")
        report.append({"storyline": storyline.id, "path": str(model_path), "positive_items": positives,
                       "examples": model.examples, "positives": model.positives,
                       "threshold": model.threshold,
                       "threshold_from": "config" if storyline.learned_threshold else "cross-validation"})
        if not as_json:
            click.echo(f"{storyline.id}: {model_path} ({model.examples} candidate examples, "
                       f"{model.positives} positive, threshold {model.threshold:.2f} by cross-validation"
                       f"{'' if not storyline.learned_threshold else ' (set in the config)'})")
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))


# --------------------------------------------------------------------------- the outbox

@cli.group(invoke_without_command=True)
@click.option("--status", type=click.Choice(["pending", "sent", "failed", "held", "digested"]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def alerts(ctx: click.Context, status: str | None, limit: int, as_json: bool) -> None:
    """List the outbox: alerts with their status, attempts and last error; then per channel its
    mode, the alerts it holds and when its next digest goes out.

    Example: monitor alerts --status failed
    """
    if ctx.invoked_subcommand is not None:
        return
    obj: Context = ctx.obj

    @fails_cleanly
    def show() -> None:
        with obj.store() as store:
            rows = store.alerts(status=status, limit=limit)
            channels = store.channels()
            held = store.held_summary()
        emit(rows, ["id", "created_at", "channel", "kind", "storyline_id", "status", "attempts",
                    "last_error", "title"], as_json)
        if not as_json:
            for line in policy_lines(obj.config, held, datetime.now(UTC)):
                click.echo(line)
            for channel in channels:
                if channel["disabled_at"]:
                    click.echo(f"channel {channel['name']} DISABLED since {channel['disabled_at']}: "
                               f"{channel['disabled_reason']} (monitor alerts enable "
                               f"{channel['name']})")

    show()


def policy_lines(config: MonitorConfig, held: dict[str, dict[str, Any]], now: datetime) -> list[str]:
    """Per channel: its mode, how many alerts it holds, and when its next digest goes out (in
    its timezone and in UTC)."""
    from .pipeline import effective_channels
    from .policy import DIGEST, next_digest

    lines = []
    for channel in effective_channels(config):
        policy = channel.policy
        state = held.get(channel.name, {"held": 0, "due": None})
        if not policy.holds and not state["held"]:
            lines.append(f"channel {channel.name}: instant")
            continue
        terms = [policy.mode + (f" ({policy.schedule.text})" if policy.mode == DIGEST else "")]
        if policy.quiet_hours:
            terms.append(f"quiet {policy.quiet_hours.text}")
        if policy.max_per_hour is not None:
            terms.append(f"at most {policy.max_per_hour}/h")
        if policy.min_score:
            terms.append(f"instant from score {policy.min_score:g}")
        due = state["due"] or (next_digest(policy.schedule, policy.tz, now)
                               if policy.mode == DIGEST else None)
        when = ""
        if due is not None:
            local = due.astimezone(policy.tz)
            when = (f"; next digest {local:%Y-%m-%d %H:%M} {policy.timezone} "
                    f"({due.astimezone(UTC):%H:%M} UTC)")
        lines.append(f"channel {channel.name}: {', '.join(terms)}; {state['held']} held{when}")
    return lines


@alerts.command(name="flush")
@click.argument("channel")
@pass_context
@fails_cleanly
def alerts_flush(obj: Context, channel: str) -> None:
    """Send what a channel holds now: one digest of every alert it holds, delivered at once
    (and retried as any alert if the receiver fails). Exit 1 when it holds nothing.

    Example: monitor alerts flush desk-mail
    """
    from .pipeline import Monitor, effective_channels

    names = [c.name for c in effective_channels(obj.config)]
    if channel not in names:
        click.echo(f"Error: no channel {channel!r} in {obj.config.source} (channels: "
                   f"{', '.join(names)})", err=True)
        sys.exit(1)
    with obj.store() as store:
        monitor = Monitor(obj.config, store)
        try:
            count = monitor.write_digest(channel, everything=True)
            target = next(c for c in monitor.channels if c.name == channel)
            report = monitor.dispatch(target)
        finally:
            monitor.close()
    if not count:
        click.echo(f"{channel}: nothing held")
        sys.exit(1)
    click.echo(f"{channel}: digest of {count} stories and feed notices queued; "
               f"{report.sent} message(s) sent"
               + (f", {report.retrying} to retry" if report.retrying else ""))


@alerts.command(name="retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--failed", is_flag=True, help="Requeue every failed alert.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def alerts_retry(obj: Context, ids: tuple[int, ...], failed: bool, as_json: bool) -> None:
    """Requeue alerts by id, or every failed one.

    Example: monitor alerts retry --failed
    """
    if not ids and not failed:
        raise click.UsageError("give alert ids or --failed")
    with obj.store() as store:
        count = store.retry_alerts(ids, failed=failed)
    click.echo(json.dumps({"requeued": count}) if as_json else f"requeued {count} alert(s)")
    if not count:
        sys.exit(1)


@alerts.command(name="enable")
@click.argument("channel")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def alerts_enable(obj: Context, channel: str, as_json: bool) -> None:
    """Re-enable a channel that was disabled (e.g. after a webhook answered 410).

    Example: monitor alerts enable webhook-0
    """
    with obj.store() as store:
        if not store.enable_channel(channel):
            if as_json:
                click.echo(json.dumps({"channel": channel, "enabled": False}))
            click.echo(f"no channel {channel!r}", err=True)
            sys.exit(1)
    click.echo(json.dumps({"channel": channel, "enabled": True}) if as_json
               else f"channel {channel} enabled")


@alerts.command(name="test")
@click.argument("channel")
@pass_context
@fails_cleanly
def alerts_test(obj: Context, channel: str) -> None:
    """Send a test alert, clearly marked as one, through one channel now, and say what the
    receiver answered. Nothing is written to the outbox. Exit 1 when it was not delivered.

    Example: monitor alerts test webhook-0
    """
    from .alert import make_channel
    from .errors import DeliveryError
    from .models import Alert
    from .pipeline import effective_channels

    config = obj.delivery_config()  # this one delivers: its ${VAR} secrets are needed
    configs = {c.name: c for c in effective_channels(config)}
    if channel not in configs:
        click.echo(f"Error: no channel {channel!r} in {obj.config.source} (channels: "
                   f"{', '.join(configs)})", err=True)
        sys.exit(1)
    now = datetime.now(UTC)
    alert = Alert(id=0, uid=f"msg_test_{now.strftime('%Y%m%dT%H%M%S')}", channel=channel,
                  kind=TEST_ALERT, storyline_id="test", story_id=None, created_at=now,
                  payload=test_payload(now))
    target = make_channel(configs[channel], user_agent=config.user_agent)
    try:
        target.deliver(alert)
    except DeliveryError as error:
        click.echo(f"{channel}: NOT delivered: {error}", err=True)
        sys.exit(1)
    finally:
        target.close()
    answer = getattr(target, "last_answer", None)
    click.echo(f"{channel}: test alert delivered" + (f"; the receiver answered {answer}" if answer else ""))


TEST_ALERT = "monitor.test"


def test_payload(now: datetime) -> dict[str, Any]:
    """A test alert's body: shaped as a match, typed ``monitor.test``, its title saying so."""
    return {
        "type": TEST_ALERT, "timestamp": now.isoformat(),
        "data": {
            "test": True,
            "storyline": {"id": "test", "name": "TEST (ceasefire-monitor)"},
            "item": {"title": "TEST ALERT from ceasefire-monitor: this channel works, nothing happened",
                     "link": None, "summary": "Sent by 'monitor alerts test'. Not news; no action needed.",
                     "published": now.isoformat(), "source": "ceasefire-monitor", "feed_url": None},
            "score": None, "matched_terms": [], "story_id": None, "sources": [],
        },
    }


# --------------------------------------------------------------------------- the database

@cli.command()
@click.option("--to", "to_url", required=True, metavar="postgresql://USER@HOST:PORT/DB",
              help="The PostgreSQL database to copy into: empty (its tables are created here).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def migrate(obj: Context, to_url: str, as_json: bool) -> None:
    """Copy the SQLite database (--db, $MONITOR_DB or the config's) into an empty PostgreSQL
    database: items, stories, matches, the outbox with its statuses, feeds with their state,
    channels, feedback and learned models. Prints the rows of each table on both sides; exit 1
    when they differ, 2 when the target is not empty or cannot be reached. The SQLite file is
    left as it is (but for pending schema steps, applied as 'monitor run' would).

    Example: monitor --db monitor.db migrate --to postgresql://monitor@db.example:5432/monitor
    """
    from .store import SQLiteStore, describe, is_postgres, open_store
    from .store.copy import copy_database
    from .store.postgres import PostgresStore

    if not is_postgres(to_url):
        raise click.BadParameter("a postgresql:// URL, e.g. postgresql://monitor@localhost:5432/monitor",
                                 param_hint="--to")
    database = obj.config.database
    if is_postgres(database):
        click.echo(f"Error: the database to copy from is {describe(database)}: 'monitor migrate' "
                   "copies an SQLite file (name it with --db)", err=True)
        sys.exit(2)
    with open_store(database, create=False) as source, open_store(to_url) as target:
        assert isinstance(source, SQLiteStore) and isinstance(target, PostgresStore)
        if not as_json:
            click.echo(f"copying {source.location} into {target.location}", err=True)
        report = copy_database(source, target, progress=None if as_json else lambda table, rows:
                               click.echo(f"  {table}: {rows:,} rows", err=True))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        rows = [{"table": c.table, "sqlite": f"{c.source:,}", "postgresql": f"{c.target:,}",
                 "check": "ok" if c.equal else "DIFFERENT"} for c in report.tables]
        emit(rows, ["table", "sqlite", "postgresql", "check"], False)
        click.echo(f"{'copied' if report.ok else 'copied, but the counts differ'} in "
                   f"{report.seconds:.1f} s; next alert id {report.sequences.get('alerts', 1)}, "
                   f"next feedback id {report.sequences.get('feedback', 1)}. Point the monitor at "
                   "it with --db, $MONITOR_DB or the config's database")
    if not report.ok:
        sys.exit(1)


# --------------------------------------------------------------------------- the config

@cli.group(name="config")
def config_group() -> None:
    """Check the config.

    Example: monitor config check --config my.toml
    """


@config_group.command(name="check")
@click.option("--config", "config_path", metavar="PATH",
              help="The config file to check (default: the one `monitor` would use).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def config_check(obj: Context, config_path: str | None, as_json: bool) -> None:
    """Validate a config (its models and alert channels too, without sending anything) and print
    the effective config, defaults filled in and secrets masked. Exit 2 when it is wrong.

    Example: monitor config check --config my.toml
    """
    from .alert import make_channel
    from .deciders import shipped_models
    from .effective import effective_config, render_toml
    from .pipeline import effective_channels

    path = find_config(config_path or obj.config_path)
    config = load_config(path, database=obj.db)
    shipped_models(config)  # a model file that cannot be loaded
    for channel in effective_channels(config):  # a webhook secret that is not base64, an Apprise URL
        make_channel(channel, user_agent=config.user_agent).close()
    effective = effective_config(config)
    if as_json:
        click.echo(json.dumps(effective, indent=2, ensure_ascii=False))
        return
    click.echo(f"# {path}: valid. The effective config (defaults filled in, secrets masked):\n")
    click.echo(render_toml(effective))


def main() -> None:
    cli(prog_name="monitor")
