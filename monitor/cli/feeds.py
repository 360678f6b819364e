"""The feeds: ``feeds`` (their health) and its ``add``, ``remove``, ``pause``, ``resume``,
``import`` and ``export`` (OPML), and ``instances`` (the ``monitor run`` processes sharing a
database, and the feeds each holds).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import Context, cli, emit, fails_cleanly, json_option, pass_context, to_the_minute

if TYPE_CHECKING:
    from ..store import Store


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@cli.group(invoke_without_command=True)
@json_option
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
        from ..subscriptions import all_feeds

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
            row["fetched"], row["every"] = to_the_minute(row["last_fetch"]), _duration(row["interval"])
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
@json_option
@click.pass_obj
@fails_cleanly
def instances(obj: Context, as_json: bool) -> None:
    """List the `monitor run` instances alive on this database and the feeds each holds now.

    Alive: a heartbeat within two leases. Several instances share a PostgreSQL database and
    claim its feeds; an SQLite database has one at a time, which holds no lease.

    Example: monitor --db postgresql://monitor@db:5432/monitor instances --json
    """
    from ..daemon import LEASE_SECONDS

    with obj.store() as store:
        rows = store.instances(now=datetime.now(UTC), alive_within=2 * LEASE_SECONDS)
    if as_json:
        emit(rows, [], True)
        return
    for row in rows:
        row["started"], row["heartbeat"] = to_the_minute(row["started_at"]), row["heartbeat_at"][11:19]
        row["held"] = len(row["feeds"])
        row["delivers"] = ", ".join(row["channels"])
    emit(rows, ["id", "host", "pid", "started", "heartbeat", "held", "delivers"], False,
         ["instance", "host", "pid", "started (UTC)", "last heartbeat", "feeds held", "delivers"])


def _feed_entry(obj: Context, store: Store, key: str) -> Any:
    """The feed named (or with the URL) ``key``, or exit 1 saying there is none."""
    from ..subscriptions import all_feeds, find

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
    from ..config import parse_duration
    from ..fetch import Fetcher
    from ..subscriptions import all_feeds, discover

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
    from ..subscriptions import CONFIG

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
    from ..subscriptions import all_feeds, is_http_url, read_opml

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
    from ..subscriptions import all_feeds, write_opml

    with obj.store() as store:
        store.sync_feeds(obj.config.feeds)
        entries = all_feeds(obj.config, store)
    click.echo(write_opml(entries, now=datetime.now(UTC)).decode("utf-8"), nl=False)
