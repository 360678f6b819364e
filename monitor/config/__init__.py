"""Configuration: a TOML file in, frozen and validated ``MonitorConfig`` out.

Every mistake becomes one ``ConfigError`` whose message names the file, the key
(``feeds[2].url``) and what was expected. Unknown keys are errors, never silently
dropped. ``${VAR}`` in a string is read from the environment; a missing variable is
an error. The config object is passed down explicitly; nothing reads it globally.

One module per job:

* ``values`` — what a config becomes: ``MonitorConfig`` and its parts (``FeedConfig``,
  ``StorylineConfig``, ``ChannelConfig``, ``WebConfig``), ``parse_duration``,
  ``split_listen`` and the helpers on a ``database`` value.
* ``load`` — ``find_config`` (``--config``, ``$MONITOR_CONFIG``, ``./config/monitor.toml``
  or the packaged default) and ``load_config`` (read, parse, validate, ``--db``).
* ``reader`` — the validation: ``Reader`` walks the parsed TOML key by key, expands
  ``${VAR}`` and turns each mistake into its message.
* ``packaged`` — where the packaged default config and model files are
  (``monitor/default_config/``, package data of ``monitor``).

This module re-exports their public names, so ``from monitor.config import ...`` is the one
way in.
"""

from __future__ import annotations

from .load import find_config, load_config
from .packaged import BUILTIN, packaged_default_path, packaged_models_path, packaged_storylines_toml
from .values import (
    DEFAULT_LISTEN,
    DEFAULT_USER_AGENT,
    MODEL_FORMAT,
    ChannelConfig,
    FeedConfig,
    MonitorConfig,
    StorylineConfig,
    WebConfig,
    database_password,
    is_database_url,
    parse_duration,
    split_listen,
)

__all__ = [
    "BUILTIN",
    "DEFAULT_LISTEN",
    "DEFAULT_USER_AGENT",
    "MODEL_FORMAT",
    "ChannelConfig",
    "FeedConfig",
    "MonitorConfig",
    "StorylineConfig",
    "WebConfig",
    "database_password",
    "find_config",
    "is_database_url",
    "load_config",
    "packaged_default_path",
    "packaged_models_path",
    "packaged_storylines_toml",
    "parse_duration",
    "split_listen",
]
