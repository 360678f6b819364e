"""The effective config, for ``monitor config check``: a validated ``MonitorConfig`` in, the
plain values it holds out (defaults filled in, secrets masked), as a dict or as TOML that
``load_config`` reads back.

Masked: webhook secrets, SMTP passwords, Apprise URLs past their scheme (they carry tokens), a
password or query string in a URL. A value written as ``${VAR}`` is shown as that reference.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .config import ChannelConfig, MonitorConfig, StorylineConfig

MASK = "***"
_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_DURATIONS = {"poll_interval", "alert_max_age", "fetch_timeout", "dedup_window", "backoff_max",
              "delivery_max_age", "delivery_retry_base", "delivery_retry_max", "interval", "timeout"}


def mask(value: str | None) -> str | None:
    """``***`` for a secret, unless it is a ``${VAR}`` reference (not the secret itself)."""
    if not value:
        return value
    return value if _REFERENCE.match(value) else MASK


def mask_url(url: str, *, keep_path: bool = True) -> str:
    """A URL without its password and query values (or, ``keep_path=False``, all but its scheme)."""
    if _REFERENCE.match(url):
        return url
    parts = urlsplit(url)
    if not keep_path:
        return f"{parts.scheme}://{MASK}" if parts.scheme else MASK
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}:{MASK}@{host}" if ":" in user else netloc
    query = "&".join(f"{pair.split('=', 1)[0]}={MASK}" for pair in parts.query.split("&") if pair)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def effective_config(config: MonitorConfig) -> dict[str, Any]:
    """The config as plain TOML-ready values, with the keys the config file uses."""
    settings: dict[str, Any] = {}
    for f in fields(MonitorConfig):
        if f.name in ("feeds", "storylines", "channels", "web", "source"):
            continue
        value = getattr(config, f.name)
        if f.name == "max_body_bytes":
            settings["max_body_size"] = value
        elif f.name == "database":
            from .store import describe

            settings[f.name] = describe(value)
        elif f.name in _DURATIONS:
            settings[f.name] = duration(value)
        else:
            settings[f.name] = value
    web = {key: value for key, value in (("listen", config.web.listen),
                                         ("token", mask(config.web.token))) if value}
    return {
        "monitor": settings,
        **({"web": web} if web else {}),
        "feeds": [{"name": f.name, "url": mask_url(f.url), "interval": duration(f.interval)}
                  for f in config.feeds],
        "storylines": [_storyline(s) for s in config.storylines],
        "alerts": [_channel(c) for c in config.channels] or [{"type": "console", "name": "console"}],
    }


def _storyline(storyline: StorylineConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(StorylineConfig):
        value = getattr(storyline, f.name)
        if f.name in ("model", "refines") and not value:
            continue
        out[f.name] = [list(v) for v in value] if f.name == "all" else (
            list(value) if isinstance(value, tuple) else value)
    return out


def _channel(channel: ChannelConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"type": channel.type, "name": channel.name}
    if channel.storylines is not None:
        out["storylines"] = list(channel.storylines)
    if channel.type == "webhook":
        out["url"] = mask_url(channel.url or "")
        if channel.secret:
            out["secret"] = mask(channel.secret)
    elif channel.type == "email":
        out.update(host=channel.host, port=channel.port, starttls=channel.starttls, ssl=channel.ssl,
                   sender=channel.sender, to=list(channel.to))
        if channel.username:
            out["username"] = channel.username
        if channel.password:
            out["password"] = mask(channel.password)
    elif channel.type == "apprise":
        out["urls"] = [mask_url(u, keep_path=False) for u in channel.urls]
    out["timeout"] = duration(channel.timeout)
    policy = channel.policy
    out["mode"] = policy.mode
    if policy.digest is not None:
        out["digest"] = policy.digest.text
    out["timezone"] = policy.timezone
    if policy.quiet_hours is not None:
        out["quiet_hours"] = policy.quiet_hours.text
    if policy.max_per_hour is not None:
        out["max_per_hour"] = policy.max_per_hour
    if policy.min_score:
        out["min_score"] = int(policy.min_score)
    return out


def render_toml(effective: dict[str, Any]) -> str:
    """``effective_config``'s dict as TOML: strings and lists through ``json.dumps`` (their TOML
    forms are the same), tables in the order the config file uses."""
    lines = ["[monitor]"]
    lines += [f"{key} = {_value(value)}" for key, value in effective["monitor"].items()]
    if effective.get("web"):
        lines += ["", "[web]"] + [f"{key} = {_value(value)}" for key, value in effective["web"].items()]
    for section in ("feeds", "storylines", "alerts"):
        for table in effective[section]:
            lines += ["", f"[[{section}]]"]
            lines += [f"{key} = {_value(value)}" for key, value in table.items() if value is not None]
    return "\n".join(lines)


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
