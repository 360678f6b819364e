"""What every command shares: the ``monitor`` group itself (``cli``, its --config, --db and -v),
the ``Context`` the commands get (config and store, both loaded when first asked for),
``fails_cleanly`` (our errors as one line and exit code 2), the logging of the long-running
commands (``setup_logging``, ``RedactSecrets``) and the output helpers (``emit`` and its cells,
times shown to the minute, ``--since`` durations).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import TYPE_CHECKING, Any

import click

from ..config import MonitorConfig, StorylineConfig, find_config, load_config
from ..errors import MonitorError

if TYPE_CHECKING:
    from ..store import Store


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
    # Apprise logs whole service URLs, tokens included, at DEBUG: never let it. Nor urllib3
    # (under Apprise), whose DEBUG request line is the service URL's path, where chat services
    # keep their tokens ("POST /bot<token>/sendMessage", "/services/T.../B.../<token>").
    logging.getLogger("apprise").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # A delivery job still busy with a slow receiver is skipped by design, every second.
    logging.getLogger("apscheduler.scheduler").addFilter(
        lambda record: "maximum number of running instances" not in record.getMessage())
    return handler


class Context:
    def __init__(self, config_path: str | None, db: str | None, verbose: int,
                 log_handler: logging.Handler | None = None) -> None:
        self.config_path = config_path
        self.db = db
        self.verbose = verbose
        self.log_handler = log_handler  # -v on any command (``run`` and ``web`` set up their own)
        self._config: MonitorConfig | None = None

    @property
    def config(self) -> MonitorConfig:
        """The config as the commands that deliver nothing read it: a channel's ${VAR} that is not
        set does not stop them (``run`` reads ``delivery_config``)."""
        if self._config is None:
            self._config = self._redacting(
                load_config(find_config(self.config_path), database=self.db, deliver=False))
        return self._config

    def delivery_config(self) -> MonitorConfig:
        """The config with every channel's ${VAR} resolved: what ``run`` delivers with."""
        return self._redacting(load_config(find_config(self.config_path), database=self.db))

    def _redacting(self, config: MonitorConfig) -> MonitorConfig:
        """The config, its secrets kept out of what -v logs from now on."""
        if self.log_handler is not None:
            self.log_handler.addFilter(RedactSecrets(config.secrets))
        return config

    def store(self, *, create: bool = False) -> Store:
        """The database; a missing one is an error unless ``create`` (``run``, ``learn``)."""
        # Imported here: start-up time matters for every command, and not all need the store.
        from ..store import open_store

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
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


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
    # -v: the library's debug lines on any command (``run`` and ``web`` log INFO without it)
    ctx.obj = Context(config_path, db, verbose, setup_logging(verbose) if verbose else None)


def since_datetime(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """A ``--since`` duration (30s, 5m, 2h, 7d) as the moment that long ago."""
    if value is None:
        return None
    from ..config import parse_duration

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
    table = [[table_cell(row.get(c), limits.get(c)) for c in columns] for row in rows]
    click.echo(tabulate(table, headers=list(headers or columns), tablefmt="simple"))


def to_the_minute(value: str | None) -> str | None:
    """An ISO time as ``2026-11-26 06:58`` (UTC), or None."""
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def check_storyline(config: MonitorConfig, storyline: str) -> None:
    if storyline not in {s.id for s in config.storylines}:
        raise click.BadParameter(f"no storyline {storyline!r} in {config.source}",
                                 param_hint="--storyline")


def how_decided(storyline: StorylineConfig, models: dict[str, Any]) -> str:
    """What decides a storyline, as ``monitor storylines`` shows it: ``model`` (its model file,
    ``models`` from ``deciders.shipped_models``) or ``rules``, ``+ desk`` when ``learned = true``
    (the database's examples train or correct it)."""
    return ("model" if storyline.id in models else "rules") + (" + desk" if storyline.learned else "")


def table_cell(value: Any, width: int | None = 70) -> Any:
    if value is None:
        return "-"
    if isinstance(value, str) and width is not None and len(value) > width:
        return value[:width - 3] + "..."
    return value
