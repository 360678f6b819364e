"""What the orchestrator's log lines say: the line per poll cycle, a delay, an alert.

In: the reports of polls and deliveries (``pipeline.FeedReport``, ``pipeline.DispatchReport``),
a number of seconds, an outbox row. Out: text. ``Tally`` counts what the polls and deliveries
did since it was last taken (``Monitor.cycle_summary``, the daemon's line per cycle);
``human_duration`` says a backoff or an age as ``45s``, ``12m`` or ``2.5h``; ``alert_title``
names an alert in a debug line.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the orchestrator's reports: read here, never built
    from .pipeline import DispatchReport, FeedReport


def alert_title(alert: Any) -> str:
    data = alert.payload.get("data", {}) if isinstance(alert.payload, dict) else {}
    item = data.get("item") if isinstance(data, dict) else None
    feed = data.get("feed") if isinstance(data, dict) else None
    if isinstance(item, dict):
        return f"[{alert.storyline_id}] {str(item.get('title') or '')[:120]}"
    if isinstance(feed, dict):
        return f"{alert.kind} {feed.get('name')}"
    return alert.kind


class Tally:
    """What the polls and deliveries did since it was last taken: the daemon's line per cycle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.polls = self.failed = self.not_modified = self.new_items = self.queued = 0
        self.sent = self.retrying = self.given_up = 0

    def poll(self, report: FeedReport) -> None:
        with self._lock:
            self.polls += 1
            self.failed += report.outcome == "error"
            self.not_modified += report.outcome in ("not_modified", "unchanged")
            self.new_items += report.stored.new_items
            self.queued += report.stored.new_alerts

    def dispatch(self, report: DispatchReport) -> None:
        with self._lock:
            self.sent += report.sent
            self.retrying += report.retrying
            self.given_up += report.failed

    def take(self) -> str | None:
        with self._lock:
            if not (self.polls or self.sent or self.retrying or self.given_up):
                return None
            line = (f"{self.polls} poll(s): {self.not_modified} unchanged, {self.failed} failed, "
                    f"{self.new_items} new item(s); {self.queued} alert(s) queued, {self.sent} sent"
                    + (f", {self.retrying} to retry" if self.retrying else "")
                    + (f", {self.given_up} failed" if self.given_up else ""))
            self._reset()
            return line


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
