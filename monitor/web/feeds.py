"""``/feeds``: the health of every feed polled (last fetch, status, error and its code, next
poll, items seen). JSON twin: ``/api/v1/feeds``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..subscriptions import all_feeds
from .desk import Desk, desk_of
from .render import page


def feed_state(consecutive_errors: int, down_after: int, paused: bool, fetched: bool) -> str:
    if paused:
        return "paused"
    if not fetched:
        return "never_polled"
    if consecutive_errors >= down_after:
        return "down"
    return "failing" if consecutive_errors else "ok"


def feed_rows(desk: Desk) -> list[dict[str, Any]]:
    """Every feed of the config or added on the command line, with its state as stored."""
    states = {s.url: s for s in desk.store.feed_states()}
    rows = []
    for entry in all_feeds(desk.config, desk.store):
        feed = entry.feed
        state = states.get(feed.url)
        row: dict[str, Any] = {"name": feed.name, "url": feed.url, "interval": feed.interval,
                               "paused": bool(entry.paused)}
        for key in ("last_fetch_at", "last_success_at", "next_poll_at"):
            value = getattr(state, key) if state else None
            row[key] = value.isoformat() if value else None
        row.update(last_status=state.last_status if state else None,
                   last_error=state.last_error if state else None,
                   last_error_code=state.last_error_code if state else None,
                   consecutive_errors=state.consecutive_errors if state else 0,
                   items_seen=state.items_seen if state else 0)
        row["state"] = feed_state(row["consecutive_errors"], desk.config.feed_down_after,
                                  row["paused"], row["last_fetch_at"] is not None)
        rows.append(row)
    return rows


def feeds_page(request: Request) -> Response:
    return page(request, "feeds.html", feeds=feed_rows(desk_of(request)))


def api_feeds(request: Request) -> Response:
    return JSONResponse({"feeds": feed_rows(desk_of(request))})
