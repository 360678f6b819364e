"""Alert bodies: what a webhook receives, and what email, chat and console render.

In: stored rows (item, storyline, match hits, story sources, feed health).
Out: a JSON-ready dict ``{"type", "timestamp", "data"}``. Pure: no I/O.

The body is built once, when the outbox row is written, and stored with it, so every
retry of one alert sends the same bytes under the same ``webhook-id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

MATCH = "storyline.match"
FEED_DOWN = "feed.down"
FEED_RECOVERED = "feed.recovered"


def match_payload(*, timestamp: datetime, storyline_id: str, storyline_name: str,
                  item: dict[str, Any], score: float, hits: list[dict[str, Any]], story_id: int,
                  sources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": MATCH,
        "timestamp": timestamp.isoformat(),
        "data": {
            "storyline": {"id": storyline_id, "name": storyline_name},
            "item": {
                "title": item["title"],
                "link": item["url"],
                "summary": item["summary"],
                "published": item["published"],
                "source": item["source"],
                "feed_url": item["feed_url"],
            },
            "score": round(score, 1),
            "matched_terms": [
                {"term": h["term"], "found": h["found"], "score": round(h["score"], 1)} for h in hits
            ],
            "story_id": story_id,
            "sources": sources,
        },
    }


def feed_payload(*, kind: str, timestamp: datetime, feed_name: str, feed_url: str,
                 consecutive_errors: int, last_error: str | None) -> dict[str, Any]:
    return {
        "type": kind,
        "timestamp": timestamp.isoformat(),
        "data": {
            "feed": {"name": feed_name, "url": feed_url},
            "consecutive_errors": consecutive_errors,
            "last_error": last_error,
        },
    }
