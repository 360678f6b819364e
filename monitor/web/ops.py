"""``/metrics`` (Prometheus text format, through ``prometheus-client``), ``/healthz`` (the
process answers) and ``/readyz`` (the database answers, no feed overdue by more than two
intervals, the outbox not stuck): 200 or 503 with a JSON reason. No token needed; nothing
secret in them.

The metrics are read from the database at each scrape (a collector of gauges), so that
``monitor web`` on a second machine shows what the daemon did; the polls by outcome and their
durations are counted in the process that polls (``monitor.metrics``): served by ``monitor run``
they are its polls, served by ``monitor web`` alone there are none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..metrics import POLLS
from ..subscriptions import polled_feeds
from .desk import Desk, desk_of
from .feeds import feed_rows

FEED_STATES = ("ok", "failing", "down", "paused", "never_polled")
LATENCY_BOUNDS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
STUCK_AFTER = 15 * 60.0  # seconds: an alert pending this long on an enabled channel is stuck


def _age(now: datetime, value: str | None) -> float:
    return max(0.0, (now - datetime.fromisoformat(value)).total_seconds()) if value else 0.0


class DeskCollector(Collector):
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        store, now = self.desk.store, self.desk.clock()
        feeds = GaugeMetricFamily("monitor_feeds", "Feeds by state", labels=["state"])
        states = Counter(row["state"] for row in feed_rows(self.desk))
        for state in FEED_STATES:
            feeds.add_metric([state], states.get(state, 0))
        yield feeds
        counts = store.counts()
        yield GaugeMetricFamily("monitor_items_stored", "Items stored", value=counts["items"])
        totals = store.storyline_totals()
        matches = GaugeMetricFamily("monitor_matches", "Matches stored, by storyline", labels=["storyline"])
        stories = GaugeMetricFamily("monitor_stories", "Stories with a match of the storyline",
                                    labels=["storyline"])
        for storyline in self.desk.config.storylines:
            total = totals.get(storyline.id, {})
            matches.add_metric([storyline.id], total.get("matches", 0))
            stories.add_metric([storyline.id], total.get("stories", 0))
        yield matches
        yield stories
        outbox = store.outbox_summary()
        alerts = GaugeMetricFamily("monitor_alerts", "Alerts in the outbox, by channel and status",
                                   labels=["channel", "status"])
        for row in outbox:
            alerts.add_metric([row["channel"], row["status"]], row["count"])
        yield alerts
        pending = [row for row in outbox if row["status"] == "pending"]
        yield GaugeMetricFamily("monitor_outbox_pending", "Alerts waiting to be delivered",
                                value=sum(row["count"] for row in pending))
        oldest = min((row["oldest"] for row in pending), default=None)
        yield GaugeMetricFamily("monitor_outbox_oldest_pending_age_seconds",
                                "Age of the oldest alert waiting to be delivered (0: none)",
                                value=_age(now, oldest))
        latencies = store.delivery_latencies(LATENCY_BOUNDS)
        buckets = [(floatToGoString(bound), count)
                   for bound, count in zip(LATENCY_BOUNDS, latencies["buckets"], strict=True)]
        yield HistogramMetricFamily(
            "monitor_delivery_latency_seconds", "Match alerts sent: from the item's first sight to sent",
            buckets=[*buckets, ("+Inf", latencies["count"])], sum_value=latencies["sum"])


def metrics(request: Request) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeskCollector(desk_of(request)))
    registry.register(POLLS)  # this process's polls: none when `monitor web` serves alone
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def readiness(desk: Desk) -> dict[str, Any]:
    """The checks of ``/readyz``, each ``{"ok": bool, "reason": str}``."""
    now = desk.clock()
    checks: dict[str, dict[str, Any]] = {}
    try:
        desk.store.counts()
        checks["database"] = {"ok": True, "reason": "answers"}
    except Exception as error:  # any failure of the database is the answer
        checks["database"] = {"ok": False, "reason": f"does not answer: {error}"}
        return checks
    states = {s.url: s for s in desk.store.feed_states()}
    overdue = []
    for feed in polled_feeds(desk.config, desk.store):
        state = states.get(feed.url)
        last = state.last_fetch_at if state and state.last_fetch_at else None
        due = (last or desk.started) + timedelta(seconds=feed.interval)
        if state and state.next_poll_at and state.consecutive_errors and state.next_poll_at > due:
            due = state.next_poll_at  # backing off after failures, on purpose
        if (now - due).total_seconds() > feed.interval:
            overdue.append(feed.name)
    checks["feeds"] = ({"ok": False, "reason": f"overdue by more than two intervals: {', '.join(overdue)}"}
                       if overdue else {"ok": True, "reason": "none overdue"})
    disabled = {c["name"] for c in desk.store.channels() if c["disabled_at"]}
    stuck = [row["channel"] for row in desk.store.outbox_summary()
             if row["status"] == "pending" and row["channel"] not in disabled
             and _age(now, row["oldest"]) > STUCK_AFTER]
    checks["outbox"] = ({"ok": False, "reason": f"alerts pending for more than {STUCK_AFTER / 60:g} minutes "
                                                f"on: {', '.join(stuck)}"}
                        if stuck else {"ok": True, "reason": "not stuck"})
    return checks


def readyz(request: Request) -> Response:
    checks = readiness(desk_of(request))
    ready = all(check["ok"] for check in checks.values())
    reason = "; ".join(f"{name} {check['reason']}" for name, check in checks.items() if not check["ok"])
    return JSONResponse({"ready": ready, "reason": reason or "ready", "checks": checks},
                        status_code=200 if ready else 503)
