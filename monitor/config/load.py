"""Finding and loading: a path (or none) in, a validated ``MonitorConfig`` out.

In: ``--config``, ``$MONITOR_CONFIG``, or nothing (``find_config`` picks the file), then that
file's path, the environment (for ``${VAR}``) and ``--db`` / ``$MONITOR_DB``. Out: the frozen
``MonitorConfig`` of ``values``, or one ``ConfigError`` naming the file (unreadable, not UTF-8,
not TOML) or, from ``reader``, the key and what was expected.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .packaged import packaged_default_path
from .reader import Reader
from .values import MonitorConfig


def find_config(cli_path: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """``--config``, else ``$MONITOR_CONFIG``, else ``./config/monitor.toml``, else the packaged default."""
    environ = os.environ if environ is None else environ
    if cli_path:
        return Path(cli_path)
    if environ.get("MONITOR_CONFIG"):
        return Path(environ["MONITOR_CONFIG"])
    local = Path("config/monitor.toml")
    if local.is_file():
        return local
    return packaged_default_path()


def load_config(path: str | Path, environ: Mapping[str, str] | None = None,
                database: str | None = None, *, deliver: bool = True) -> MonitorConfig:
    """Read and validate ``path``. ``database`` (from ``--db`` / ``$MONITOR_DB``) overrides the file.

    ``deliver=False`` is for the commands that deliver nothing (they list, score, evaluate): an
    alert channel's ``${VAR}`` that is not set is then left as written instead of being an error,
    so that reading the database never needs the delivery secrets. Such a config must not be
    given to the alert channels."""
    environ = os.environ if environ is None else environ
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not valid UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    config = Reader(str(path), environ, deliver=deliver).monitor_config(data)
    database = database or environ.get("MONITOR_DB")
    if database:
        config = _replace(config, database=database)
    return config


def _replace(config: MonitorConfig, **changes: Any) -> MonitorConfig:
    from dataclasses import replace

    return replace(config, **changes)
