"""``/``: the storylines (matches and stories in the last 24 hours and 7 days, by when their
items were published, a bar per day, the last story), the feeds failing and the alerts pending
or failed. JSON twin: ``/api/v1/storylines``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..store import iso
from .desk import Desk, desk_of
from .feeds import feed_rows
from .render import page

DAYS = 7


def per_day(now: datetime, matches: list[str], stories: list[str], days: int = DAYS) -> list[dict[str, Any]]:
    """Counts per UTC day, oldest first, the last ``days`` days (today included)."""
    out = []
    for back in range(days - 1, -1, -1):
        day = (now - timedelta(days=back)).date().isoformat()
        out.append({"day": day, "matches": sum(1 for m in matches if m[:10] == day),
                    "stories": sum(1 for s in stories if s[:10] == day)})
    return out


def storylines(desk: Desk) -> list[dict[str, Any]]:
    now = desk.clock()
    activity = desk.store.storyline_activity(since=now - timedelta(days=DAYS))
    day_ago = iso(now - timedelta(hours=24))
    out = []
    for storyline in desk.config.storylines:
        matches = [m["published"] for m in activity["matches"] if m["storyline"] == storyline.id]
        stories = [s["first"] for s in activity["stories"] if s["storyline"] == storyline.id]
        last = desk.store.stories(since=datetime.fromtimestamp(0, now.tzinfo), storyline=storyline.id,
                                  limit=1)
        out.append({
            "id": storyline.id, "name": storyline.name, "description": storyline.description,
            "decided_by": "model" if storyline.learned or storyline.model else "rules",
            "matches_24h": sum(1 for m in matches if m >= day_ago), "matches_7d": len(matches),
            "stories_24h": sum(1 for s in stories if s >= day_ago), "stories_7d": len(stories),
            "per_day": per_day(now, matches, stories),
            "last_story": ({k: last[0][k] for k in ("story_id", "headline", "first_seen", "outlets")}
                           if last else None),
        })
    return out


def overview(desk: Desk) -> dict[str, Any]:
    return {
        "storylines": storylines(desk),
        "failing_feeds": [f for f in feed_rows(desk) if f["state"] in ("failing", "down")],
        "alerts": [a for status in ("failed", "pending")
                   for a in desk.store.alerts(status=status, limit=20)],
    }


def index(request: Request) -> Response:
    return page(request, "index.html", **overview(desk_of(request)))


def api_storylines(request: Request) -> Response:
    return JSONResponse(overview(desk_of(request)))
