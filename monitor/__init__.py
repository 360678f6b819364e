"""ceasefire-monitor: watch news feeds for storylines of the Gaza ceasefire talks and alert.

The pipeline, one module per stage: fetch → parse → normalise → match → dedup → store → alert,
run by ``pipeline`` (the orchestrator); ``daemon`` and ``cli`` are thin shells over it.

The public surface is re-exported here and imported lazily, so that ``monitor --help``
and ``monitor run --once`` on unchanged feeds pay only for what they use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "MonitorConfig": "config", "FeedConfig": "config", "StorylineConfig": "config",
    "ChannelConfig": "config", "load_config": "config", "find_config": "config",
    "Monitor": "pipeline", "FeedReport": "pipeline", "DispatchReport": "pipeline",
    "Store": "store", "Matcher": "match", "Fetcher": "fetch", "parse_feed": "parse",
    "normalise_entry": "normalise", "fingerprint": "dedup", "make_channel": "alert",
    "MonitorError": "errors", "ConfigError": "errors", "StoreError": "errors",
    "FeedError": "errors", "FetchError": "errors", "ParseError": "errors",
    "DeliveryError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'monitor' has no attribute {name!r}")
