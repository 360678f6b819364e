"""The validation of a config file: its parsed TOML in, the ``MonitorConfig`` it describes out.

In: the tables ``tomllib`` made of the file, the file's name (for the messages and for model
files relative to it) and the environment (for ``${VAR}``). Out: a ``MonitorConfig``, or the
first mistake as one ``ConfigError``: the file, the key (``feeds[2].url``), what was expected
and what was found. Unknown keys are errors. ``Reader`` is used by ``load`` only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..policy import (
    DIGEST,
    MODES,
    ChannelPolicy,
    check_timezone,
    parse_quiet_hours,
    parse_schedule,
)
from .packaged import BUILTIN, packaged_models_path
from .values import (
    MODEL_FORMAT,
    ChannelConfig,
    FeedConfig,
    MonitorConfig,
    StorylineConfig,
    WebConfig,
    parse_duration,
    split_listen,
)

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_STORYLINE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class Reader:
    """Walks the parsed TOML, checking each key; errors name the file and the key path."""

    def __init__(self, source: str, environ: Mapping[str, str], *, deliver: bool = True) -> None:
        self.source = source
        self.environ = environ
        self.deliver = deliver
        self.in_channels = False  # reading [[alerts]]: see expand

    def fail(self, where: str, expected: str, got: Any = None) -> ConfigError:
        suffix = "" if got is None else f", got {_describe(got)}"
        return ConfigError(f"{self.source}: {where}: expected {expected}{suffix}")

    def table(self, value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "a table", value)
        unknown = sorted(set(value) - allowed)
        if unknown:
            key = f"{where}.{unknown[0]}" if where else unknown[0]
            raise ConfigError(
                f"{self.source}: {key}: unknown key; expected one of: {', '.join(sorted(allowed))}"
            )
        return value

    def string(self, value: Any, where: str, *, secret: bool = False) -> str:
        if not isinstance(value, str):
            raise self.fail(where, "a string", value)
        return self.expand(value, where)

    def expand(self, value: str, where: str) -> str:
        def substitute(found: re.Match[str]) -> str:
            name = found.group(1)
            if name not in self.environ:
                if self.in_channels and not self.deliver:
                    return found.group(0)  # not needed: nothing is delivered
                raise ConfigError(
                    f"{self.source}: {where}: environment variable {name} is not set"
                )
            return self.environ[name]

        return _ENV.sub(substitute, value)

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(where, "a list of strings", value)
        return tuple(self.string(v, f"{where}[{i}]") for i, v in enumerate(value))

    def integer(self, value: Any, where: str, low: int | None = None,
                high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, "an integer", value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(where, f"an integer from {low} to {high}", value)
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, "true or false", value)
        return value

    def fraction(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
            raise self.fail(where, "a number from 0 to 1 (0: chosen by cross-validation)", value)
        return float(value)

    def duration(self, value: Any, where: str, minimum: float = 0.0) -> float:
        try:
            seconds = parse_duration(value)
        except (ValueError, TypeError) as error:
            raise self.fail(where, str(error), value) from None
        if seconds < minimum:
            raise self.fail(where, f"at least {minimum:g} seconds", value)
        return seconds

    def http_url(self, value: Any, where: str) -> str:
        url = self.string(value, where)
        if self.unresolved(url):
            return url
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme not in ("http", "https") or "//" not in url or len(url.split("//", 1)[1]) == 0:
            raise self.fail(where, "an http:// or https:// URL", url)
        return url

    def unresolved(self, value: str) -> bool:
        """A channel's value that names a variable not set, read by a command that delivers
        nothing: it is not checked further."""
        return self.in_channels and not self.deliver and _ENV.search(value) is not None

    # -- sections

    def monitor_config(self, data: dict[str, Any]) -> MonitorConfig:
        self.table(data, "", {"monitor", "feeds", "storylines", "alerts", "web"})
        section = self.table(data.get("monitor", {}), "monitor", {
            "database", "poll_interval", "alert_max_age", "user_agent", "max_body_size",
            "fetch_timeout", "fetch_workers", "dedup_window", "backoff_max",
            "feed_down_after", "delivery_max_age", "delivery_retry_base", "delivery_retry_max",
            "stories",
        })
        defaults = MonitorConfig()
        settings: dict[str, Any] = {}
        if "database" in section:
            settings["database"] = self.string(section["database"], "monitor.database")
        for key in ("poll_interval", "alert_max_age", "fetch_timeout", "dedup_window",
                    "backoff_max", "delivery_max_age", "delivery_retry_base",
                    "delivery_retry_max"):
            if key in section:
                minimum = 1.0 if key in ("poll_interval", "fetch_timeout") else 0.0
                settings[key] = self.duration(section[key], f"monitor.{key}", minimum)
        if "user_agent" in section:
            settings["user_agent"] = self.string(section["user_agent"], "monitor.user_agent")
        if "max_body_size" in section:
            settings["max_body_bytes"] = self.size(section["max_body_size"], "monitor.max_body_size")
        if "stories" in section:
            if section["stories"] not in ("events", "copies"):
                raise self.fail("monitor.stories", "'events' (reports of one development are one "
                                "story) or 'copies' (only syndicated copies are)", section["stories"])
            settings["stories"] = section["stories"]
        if "fetch_workers" in section:
            settings["fetch_workers"] = self.integer(section["fetch_workers"],
                                                     "monitor.fetch_workers", 1, 64)
        if "feed_down_after" in section:
            settings["feed_down_after"] = self.integer(section["feed_down_after"],
                                                       "monitor.feed_down_after", 1, 10_000)
        poll_interval = settings.get("poll_interval", defaults.poll_interval)
        feeds = self.feeds(data.get("feeds", []), poll_interval)
        storylines = self.storylines(data.get("storylines", []))
        self.in_channels = True
        channels = self.channels(data.get("alerts", []), {s.id for s in storylines})
        self.in_channels = False
        # [web] is read strictly: an unset token must never be left as literal text
        web = self.web(data.get("web", {}))
        return MonitorConfig(**settings, feeds=feeds, storylines=storylines, channels=channels,
                             web=web, source=self.source)

    def web(self, value: Any) -> WebConfig:
        section = self.table(value, "web", {"listen", "token"})
        listen = None
        if "listen" in section:
            listen = self.string(section["listen"], "web.listen")
            try:
                split_listen(listen)
            except ValueError as error:
                raise self.fail("web.listen", str(error), listen) from None
        token = None
        if "token" in section:
            token = self.string(section["token"], "web.token")
            if len(token) < 16:
                raise ConfigError(f"{self.source}: web.token: expected a token of at least 16 "
                                  "characters (e.g. from `openssl rand -hex 32`)")
        return WebConfig(listen=listen, token=token)

    def size(self, value: Any, where: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, str):
            found = re.match(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$", value, re.I)
            if found:
                unit = (found.group(2) or "B").lower()
                factor = {"b": 1, "kib": 1024, "kb": 1000, "mib": 1024**2, "mb": 1000**2,
                          "gib": 1024**3, "gb": 1000**3}[unit]
                return int(found.group(1)) * factor
        raise self.fail(where, "a size such as 10MiB or a number of bytes", value)

    def list_of_tables(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"a list of tables ([[{where}]])", value)
        return value

    def feeds(self, value: Any, default_interval: float) -> tuple[FeedConfig, ...]:
        feeds = []
        seen: set[str] = set()
        for i, raw in enumerate(self.list_of_tables(value, "feeds")):
            where = f"feeds[{i}]"
            raw = self.table(raw, where, {"name", "url", "interval"})
            if "url" not in raw:
                raise self.fail(f"{where}.url", "the feed's URL (a required key)")
            url = self.http_url(raw["url"], f"{where}.url")
            if url in seen:
                raise ConfigError(f"{self.source}: {where}.url: duplicate feed URL {url}")
            seen.add(url)
            name = self.string(raw["name"], f"{where}.name") if "name" in raw else url
            interval = (self.duration(raw["interval"], f"{where}.interval", 1.0)
                        if "interval" in raw else default_interval)
            feeds.append(FeedConfig(name=name, url=url, interval=interval))
        return tuple(feeds)

    def storylines(self, value: Any) -> tuple[StorylineConfig, ...]:
        storylines = []
        seen: set[str] = set()
        for i, raw in enumerate(self.list_of_tables(value, "storylines")):
            where = f"storylines[{i}]"
            raw = self.table(raw, where, {"id", "name", "description", "all", "any", "none",
                                          "threshold", "near", "not_near", "not_near_window",
                                          "title_weight", "min_score", "learned",
                                          "learned_threshold", "model", "refines",
                                          "model_candidates"})
            if "id" not in raw:
                raise self.fail(f"{where}.id", "a storyline id (a required key)")
            storyline_id = self.string(raw["id"], f"{where}.id")
            if not _STORYLINE_ID.match(storyline_id):
                raise self.fail(f"{where}.id", "lowercase letters, digits, '-' and '_'",
                                storyline_id)
            if storyline_id in seen:
                raise ConfigError(
                    f"{self.source}: {where}.id: duplicate storyline id {storyline_id!r}"
                )
            seen.add(storyline_id)
            groups_raw = raw.get("all", [])
            if not isinstance(groups_raw, list):
                raise self.fail(f"{where}.all", "a list of term groups", groups_raw)
            groups = tuple(self.terms(g, f"{where}.all[{j}]") for j, g in enumerate(groups_raw))
            any_terms = self.terms(raw.get("any", []), f"{where}.any", allow_empty=True)
            if not groups and not any_terms:
                raise self.fail(f"{where}.all", "at least one term group in 'all' or terms in 'any'")
            title_weight = raw.get("title_weight", 1.25)
            if (isinstance(title_weight, bool) or not isinstance(title_weight, int | float)
                    or not 1.0 <= title_weight <= 10.0):
                raise self.fail(f"{where}.title_weight", "a number from 1 to 10", title_weight)
            storylines.append(StorylineConfig(
                id=storyline_id,
                name=self.string(raw.get("name", storyline_id), f"{where}.name"),
                description=self.string(raw.get("description", ""), f"{where}.description"),
                all=groups,
                any=any_terms,
                none=self.terms(raw.get("none", []), f"{where}.none", allow_empty=True),
                threshold=self.integer(raw.get("threshold", 90), f"{where}.threshold", 0, 100),
                near=self.integer(raw.get("near", 0), f"{where}.near", 0, 1000),
                not_near=self.terms(raw.get("not_near", []), f"{where}.not_near", allow_empty=True),
                not_near_window=self.integer(raw.get("not_near_window", 3),
                                             f"{where}.not_near_window", 1, 50),
                title_weight=float(title_weight),
                min_score=self.integer(raw.get("min_score", 0), f"{where}.min_score", 0, 100),
                learned=self.boolean(raw.get("learned", False), f"{where}.learned"),
                learned_threshold=self.fraction(raw.get("learned_threshold", 0.0),
                                                f"{where}.learned_threshold"),
                model=self.model_file(raw["model"], f"{where}.model", storyline_id)
                if "model" in raw else "",
                refines=self.string(raw["refines"], f"{where}.refines") if "refines" in raw else "",
                model_candidates=self.terms(raw.get("model_candidates", []), f"{where}.model_candidates",
                                            allow_empty=True),
            ))
        by_id = {s.id: s for s in storylines}
        for i, storyline in enumerate(storylines):
            if not storyline.refines:
                continue
            where = f"storylines[{i}].refines"
            refined = by_id.get(storyline.refines)
            if refined is None or refined.id == storyline.id:
                raise self.fail(where, "the id of another storyline", storyline.refines)
            if refined.refines:
                raise self.fail(where, f"a storyline that refines none ({refined.id!r} refines "
                                f"{refined.refines!r})")
        return tuple(storylines)

    def model_file(self, value: Any, where: str, storyline_id: str) -> str:
        """A model file (relative to the config file's folder, symlinks followed; or
        ``builtin:NAME``, a model packaged with the monitor): readable, a learned model, of this
        storyline. Whether it fits the storyline's rules is checked where
        it is used (``monitor.deciders.shipped_models``)."""
        import json

        name = self.string(value, where)
        if name.startswith(BUILTIN):
            path = packaged_models_path() / f"{name[len(BUILTIN):]}.json"
            if not path.is_file():
                known = ", ".join(f"{BUILTIN}{p.stem}" for p in sorted(packaged_models_path().glob("*.json")))
                raise self.fail(where, f"a model file, or one of the packaged models: {known}", name)
        else:
            path = (Path(self.source).resolve().parent / name).resolve()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"{self.source}: {where}: cannot read {path}: "
                              f"{error.strerror or error}") from None
        except ValueError as error:
            raise ConfigError(f"{self.source}: {where}: {path} is not valid JSON: {error}") from None
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise ConfigError(f"{self.source}: {where}: {path} is not a learned model "
                              f"(expected \"format\": \"{MODEL_FORMAT}\"; made by 'monitor train')")
        if data.get("storyline") != storyline_id:
            raise ConfigError(f"{self.source}: {where}: {path} is the model of storyline "
                              f"{data.get('storyline')!r}, not {storyline_id!r}")
        return str(path)

    def terms(self, value: Any, where: str, allow_empty: bool = False) -> tuple[str, ...]:
        terms = self.strings(value, where)
        if not terms and not allow_empty:
            raise self.fail(where, "a non-empty list of terms", value)
        for j, term in enumerate(terms):
            if not term.strip():
                raise self.fail(f"{where}[{j}]", "a non-empty term", term)
        return terms

    def channels(self, value: Any, storyline_ids: set[str]) -> tuple[ChannelConfig, ...]:
        channels = []
        names: set[str] = set()
        common = {"type", "name", "storylines", "timeout", "updates", "mode", "digest", "timezone",
                  "quiet_hours", "max_per_hour", "min_score"}
        allowed = {
            "webhook": common | {"url", "secret"},
            "email": common | {"host", "port", "starttls", "ssl", "username", "password",
                               "sender", "to"},
            "apprise": common | {"urls"},
            "console": common,
        }
        for i, raw in enumerate(self.list_of_tables(value, "alerts")):
            where = f"alerts[{i}]"
            if not isinstance(raw, dict):
                raise self.fail(where, "a table", raw)
            kind = raw.get("type")
            if kind not in allowed:
                raise self.fail(f"{where}.type", "one of webhook, email, apprise, console", kind)
            raw = self.table(raw, where, allowed[kind])
            name = self.string(raw["name"], f"{where}.name") if "name" in raw else f"{kind}-{i}"
            if name in names:
                raise ConfigError(f"{self.source}: {where}.name: duplicate alert channel {name!r}")
            names.add(name)
            storylines = None
            if "storylines" in raw:
                storylines = self.strings(raw["storylines"], f"{where}.storylines")
                for j, sid in enumerate(storylines):
                    if sid not in storyline_ids:
                        raise self.fail(f"{where}.storylines[{j}]",
                                        "the id of a configured storyline", sid)
            options: dict[str, Any] = {"type": kind, "name": name, "storylines": storylines}
            if "timeout" in raw:
                options["timeout"] = self.duration(raw["timeout"], f"{where}.timeout", 0.1)
            if "updates" in raw:
                updates = raw["updates"]
                count = updates.removeprefix("sources:") if isinstance(updates, str) else ""
                if not (updates.startswith("sources:") and count.isdigit() and int(count) >= 2):
                    raise self.fail(f"{where}.updates",
                                    "'sources:N' with N >= 2 (a story.updated alert when a "
                                    "story reaches N outlets)", updates)
                options["updates_at_sources"] = int(count)
            options["policy"] = self.channel_policy(raw, where)
            if kind == "webhook":
                if "url" not in raw:
                    raise self.fail(f"{where}.url", "the webhook URL (a required key)")
                options["url"] = self.http_url(raw["url"], f"{where}.url")
                if "secret" in raw:
                    secret = self.string(raw["secret"], f"{where}.secret")
                    if not secret.startswith("whsec_") and not self.unresolved(secret):
                        raise ConfigError(f"{self.source}: {where}.secret: expected a "
                                          "Standard Webhooks secret starting with 'whsec_'")
                    options["secret"] = secret
            elif kind == "email":
                for key in ("host", "sender"):
                    if key not in raw:
                        raise self.fail(f"{where}.{key}", f"the {key} (a required key)")
                options["host"] = self.string(raw["host"], f"{where}.host")
                options["sender"] = self.string(raw["sender"], f"{where}.sender")
                options["to"] = self.strings(raw.get("to", []), f"{where}.to")
                if not options["to"]:
                    raise self.fail(f"{where}.to", "at least one recipient address")
                if "port" in raw:
                    options["port"] = self.integer(raw["port"], f"{where}.port", 1, 65535)
                for key in ("starttls", "ssl"):
                    if key in raw:
                        options[key] = self.boolean(raw[key], f"{where}.{key}")
                for key in ("username", "password"):
                    if key in raw:
                        options[key] = self.string(raw[key], f"{where}.{key}")
            elif kind == "apprise":
                options["urls"] = self.strings(raw.get("urls", []), f"{where}.urls")
                if not options["urls"]:
                    raise self.fail(f"{where}.urls", "at least one Apprise URL")
            channels.append(ChannelConfig(**options))
        return tuple(channels)

    def channel_policy(self, raw: dict[str, Any], where: str) -> ChannelPolicy:
        """An ``[[alerts]]`` entry's terms (issue 18): each mistake names its key."""
        mode = raw.get("mode", "instant")
        if mode not in MODES:
            raise self.fail(f"{where}.mode", "'instant' (each alert when it is queued) or "
                            "'digest' (one message per period)", mode)
        options: dict[str, Any] = {"mode": mode}
        if "digest" in raw:
            try:
                options["digest"] = parse_schedule(raw["digest"])
            except ValueError as error:
                raise self.fail(f"{where}.digest", str(error), raw["digest"]) from None
        elif mode == DIGEST:
            raise self.fail(f"{where}.digest", "when a digest channel's digest goes out, e.g. "
                            "'daily 07:00' (a required key with mode = 'digest')")
        if "timezone" in raw:
            try:
                options["timezone"] = check_timezone(raw["timezone"])
            except ValueError as error:
                raise self.fail(f"{where}.timezone", str(error), raw["timezone"]) from None
        if "quiet_hours" in raw:
            if mode == DIGEST:
                raise ConfigError(f"{self.source}: {where}.quiet_hours: a digest channel has no "
                                  "quiet hours (it is told only when its digest is due)")
            try:
                options["quiet_hours"] = parse_quiet_hours(raw["quiet_hours"])
            except ValueError as error:
                raise self.fail(f"{where}.quiet_hours", str(error), raw["quiet_hours"]) from None
        if "max_per_hour" in raw:
            options["max_per_hour"] = self.integer(raw["max_per_hour"], f"{where}.max_per_hour",
                                                   1, 100_000)
        if "min_score" in raw:
            options["min_score"] = float(self.integer(raw["min_score"], f"{where}.min_score", 0, 100))
        return ChannelPolicy(**options)


def _describe(value: Any) -> str:
    kind = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{kind} {shown}" if not isinstance(value, dict | list) else kind
