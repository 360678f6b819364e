"""The config's values: what a validated config file becomes, and the small parsers they share.

In: nothing read here; ``reader`` builds these objects (``load`` calls it), and the rest of the
monitor receives them. Out: the frozen ``MonitorConfig`` and its parts (``FeedConfig``,
``StorylineConfig``, ``ChannelConfig``, ``WebConfig``); ``parse_duration`` (``"5m"`` -> 300.0)
and ``split_listen`` (``"HOST:PORT"`` -> (host, port)), which the command line uses too;
``database_password`` and ``is_database_url`` (what a ``database`` value is, and the secret it
may hold); the constants other modules share (``DEFAULT_USER_AGENT``, ``MODEL_FORMAT``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ..policy import ChannelPolicy

# The format of monitor.learn's model files: defined here, as config imports no pipeline stage.
MODEL_FORMAT = "ceasefire-monitor/learned-model/1"

DEFAULT_USER_AGENT = "ceasefire-monitor/0.1 (+https://github.com/ceasefire-monitor)"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: str | int | float) -> float:
    """Seconds from ``"30s"``, ``"5m"``, ``"2h"``, ``"7d"`` or a bare number of seconds.

    >>> parse_duration("5m")
    300.0
    """
    if isinstance(value, bool):
        raise ValueError("a duration such as 30s, 5m, 2h or 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        found = _DURATION.match(value)
        if not found:
            raise ValueError("a duration such as 30s, 5m, 2h or 7d")
        seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if seconds < 0:
        raise ValueError("a duration that is not negative")
    return seconds


@dataclass(frozen=True)
class FeedConfig:
    name: str
    url: str
    interval: float  # seconds


@dataclass(frozen=True)
class StorylineConfig:
    id: str
    name: str
    description: str = ""
    all: tuple[tuple[str, ...], ...] = ()
    any: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    threshold: int = 90
    # Optional context rules (issue 3): terms that must be near each other, title weight, etc.
    near: int = 0  # if > 0: the groups of ``all`` must match within this many words of each other
    not_near: tuple[str, ...] = ()  # context vetoes: a hit with one of these close by does not count
    not_near_window: int = 3  # "close by": within this many words, in the same sentence
    title_weight: float = 1.25  # a hit in the title counts this much more than one in the summary
    min_score: int = 0  # the storyline score (0-100, see monitor.match) a match needs
    # The learned layer (monitor.learn): when true and examples are stored (``monitor learn``,
    # ``monitor feedback``), a model trained on them decides; else the rules alone.
    learned: bool = False
    learned_threshold: float = 0.0  # the model's probability cut; 0: chosen by cross-validation
    # A model trained elsewhere (``monitor train``) that decides this storyline (with
    # ``learned = true``, corrected by the desk's examples): the absolute path of its JSON file.
    model: str = ""
    # A storyline that narrows another (the Cairo track of the ceasefire talks): it also matches
    # what that storyline matches (by its rules or its model) when its own first group is found
    # (not dropped by a not_near word) and no ``none`` term vetoes it.
    refines: str = ""
    # Terms that also make an item a candidate of the storyline's model (besides a term of its
    # first group): the model scores it, told by a feature that only these terms brought it.
    model_candidates: tuple[str, ...] = ()

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(t for group in self.all for t in group) + self.any


@dataclass(frozen=True)
class ChannelConfig:
    """One ``[[alerts]]`` entry. ``name`` is unique and stable: outbox rows refer to it."""

    type: str  # webhook | email | apprise | console
    name: str
    storylines: tuple[str, ...] | None = None  # None: every storyline
    # webhook
    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    # email
    host: str | None = None
    port: int = 587
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str | None = None
    to: tuple[str, ...] = ()
    # apprise
    urls: tuple[str, ...] = field(default=(), repr=False)
    # every channel
    timeout: float = 10.0
    updates_at_sources: int | None = None  # updates = "sources:N": story.updated at N outlets
    # when the channel is told (monitor.policy): mode, digest, timezone, quiet hours, caps
    policy: ChannelPolicy = field(default_factory=ChannelPolicy)

    def wants(self, storyline_id: str) -> bool:
        return self.storylines is None or storyline_id in self.storylines

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be logged or printed."""
        found = [s for s in (self.secret, self.password) if s]
        found.extend(self.urls)  # apprise URLs usually carry tokens
        return tuple(found)


@dataclass(frozen=True)
class WebConfig:
    """The ``[web]`` section: where the web desk listens (None: not served by ``monitor run``)
    and the token that allows writes (None: the desk is read-only)."""

    listen: str | None = None  # "HOST:PORT"
    token: str | None = field(default=None, repr=False)

    @property
    def host_port(self) -> tuple[str, int]:
        return split_listen(self.listen or DEFAULT_LISTEN)


DEFAULT_LISTEN = "127.0.0.1:8080"


def split_listen(value: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``[::1]:8080`` for IPv6; ``:8080`` for the loopback) as (host, port).

    >>> split_listen("0.0.0.0:8080")
    ('0.0.0.0', 8080)
    """
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("HOST:PORT, such as 127.0.0.1:8080")
    host = host.strip("[]") or "127.0.0.1"
    if any(c.isspace() or c in "/@" for c in host):
        raise ValueError("HOST:PORT, such as 127.0.0.1:8080")
    return host, int(port)


@dataclass(frozen=True)
class MonitorConfig:
    database: str = "monitor.db"
    poll_interval: float = 300.0
    alert_max_age: float = 48 * 3600.0
    user_agent: str = DEFAULT_USER_AGENT
    max_body_bytes: int = 10 * 1024 * 1024
    fetch_timeout: float = 30.0  # total wall time per fetch, body included
    fetch_workers: int = 8
    dedup_window: float = 72 * 3600.0
    stories: str = "events"  # "copies": only syndicated copies of an item join its story
    backoff_max: float = 6 * 3600.0
    feed_down_after: int = 5  # consecutive failures before one "feed down" alert
    delivery_max_age: float = 24 * 3600.0  # give an alert up after this long
    delivery_retry_base: float = 2.0  # first retry of a failing channel after about this long
    delivery_retry_max: float = 600.0  # and never waits longer than this between attempts
    feeds: tuple[FeedConfig, ...] = ()
    storylines: tuple[StorylineConfig, ...] = ()
    channels: tuple[ChannelConfig, ...] = ()
    web: WebConfig = WebConfig()
    source: str = "<defaults>"

    def storyline(self, storyline_id: str) -> StorylineConfig:
        for storyline in self.storylines:
            if storyline.id == storyline_id:
                return storyline
        raise KeyError(storyline_id)

    @property
    def secrets(self) -> tuple[str, ...]:
        found = tuple(s for channel in self.channels for s in channel.secrets)
        password = database_password(self.database)  # as written, and percent-decoded
        return (found + ((self.web.token,) if self.web.token else ())
                + ((password, unquote(password)) if password else ()))


def database_password(database: str) -> str | None:
    """The password in a ``postgresql://user:password@host/db`` URL (None for a path): one
    of the secrets that never reach a log line."""
    if not is_database_url(database):
        return None
    try:
        password = urlsplit(database).password
    except ValueError:
        return None
    return password or None


def is_database_url(database: str) -> bool:
    """A PostgreSQL URL rather than an SQLite file's path (``store.is_postgres``)."""
    return database.startswith(("postgresql://", "postgres://"))
