"""``/storylines/{id}``: a storyline's stories, newest first, a page at a time, its bars per
day, and a search over its matched items (SQLite FTS5: every word, or a word's start; without
FTS5 every word anywhere). JSON twin: ``/api/v1/storylines/{id}``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..config import StorylineConfig
from .dashboard import storylines
from .desk import Desk, desk_of
from .render import page

PAGE_SIZE = 25
MAX_PAGE = 400
EPOCH = datetime.fromtimestamp(0, UTC)


def storyline_of(desk: Desk, storyline_id: str) -> StorylineConfig:
    try:
        return desk.config.storyline(storyline_id)
    except KeyError:
        raise HTTPException(404, f"no storyline {storyline_id!r}") from None


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise HTTPException(400, f"page: expected a number from 1 to {MAX_PAGE}")
    return int(raw)


def storyline_stories(desk: Desk, storyline_id: str, number: int, search: str) -> dict[str, Any]:
    storyline = storyline_of(desk, storyline_id)
    # Store.stories (the read model `monitor stories` uses) pages by its limit: one more than
    # this page's end tells whether a next page exists.
    rows = desk.store.stories(since=EPOCH, storyline=storyline.id, limit=number * PAGE_SIZE + 1)
    stories = rows[(number - 1) * PAGE_SIZE:number * PAGE_SIZE]
    summary = next(s for s in storylines(desk) if s["id"] == storyline.id)
    found, search_by = (desk.store.search_matches(search, storyline=storyline.id, limit=50)
                        if search.strip() else (None, None))
    return {"storyline": summary, "stories": stories, "page": number,
            "next_page": number + 1 if len(rows) > number * PAGE_SIZE else None,
            "previous_page": number - 1 if number > 1 else None,
            "search": search, "found": found, "search_by": search_by}


def storyline_page(request: Request) -> Response:
    data = storyline_stories(desk_of(request), request.path_params["storyline"], page_number(request),
                             request.query_params.get("q", ""))
    return page(request, "storyline.html", **data)


def api_storyline(request: Request) -> Response:
    return JSONResponse(storyline_stories(desk_of(request), request.path_params["storyline"],
                                          page_number(request), request.query_params.get("q", "")))
