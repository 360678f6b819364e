"""Setting up: ``migrate`` (an SQLite database copied into PostgreSQL) and ``config check``
(a config validated, and shown with its defaults filled in).
"""

from __future__ import annotations

import json
import sys

import click

from ..config import find_config, load_config
from .common import Context, cli, emit, fails_cleanly, json_option, pass_context


@cli.command()
@click.option("--to", "to_url", required=True, metavar="postgresql://USER@HOST:PORT/DB",
              help="The PostgreSQL database to copy into: empty (its tables are created here).")
@json_option
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
    from ..store import SQLiteStore, describe, is_postgres, open_store
    from ..store.copy import copy_database
    from ..store.postgres import PostgresStore

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


@cli.group(name="config")
def config_group() -> None:
    """Check the config.

    Example: monitor config check --config my.toml
    """


@config_group.command(name="check")
@click.option("--config", "config_path", metavar="PATH",
              help="The config file to check (default: the one `monitor` would use).")
@json_option
@pass_context
@fails_cleanly
def config_check(obj: Context, config_path: str | None, as_json: bool) -> None:
    """Validate a config (its models and alert channels too, without sending anything) and print
    the effective config, defaults filled in and secrets masked. Exit 2 when it is wrong.

    Example: monitor config check --config my.toml
    """
    from ..alert import make_channel
    from ..deciders import shipped_models
    from ..effective import effective_config, render_toml
    from ..pipeline import effective_channels

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
