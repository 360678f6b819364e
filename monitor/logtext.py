"""What the orchestrator's log lines say of a delay and of an alert.

In: a number of seconds, an outbox row. Out: text. ``human_duration`` says a backoff or an age
as ``45s``, ``12m`` or ``2.5h``; ``alert_title`` names an alert in a debug line. (The line per
poll cycle is counted by the orchestrator's own ``Tally``, from its reports.)
"""

from __future__ import annotations

from typing import Any


def alert_title(alert: Any) -> str:
    data = alert.payload.get("data", {}) if isinstance(alert.payload, dict) else {}
    item = data.get("item") if isinstance(data, dict) else None
    feed = data.get("feed") if isinstance(data, dict) else None
    if isinstance(item, dict):
        return f"[{alert.storyline_id}] {str(item.get('title') or '')[:120]}"
    if isinstance(feed, dict):
        return f"{alert.kind} {feed.get('name')}"
    return alert.kind


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
