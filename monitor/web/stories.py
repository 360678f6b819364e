"""``/stories/{id}``: every item of a story (source, time, link), why each joined it and
what each matched, and the verdict buttons (right / wrong per storyline) that record the desk's
verdict as ``monitor feedback`` does. JSON twins: ``/api/v1/stories/{id}`` and
``POST /api/v1/stories/{id}/verdicts``."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from . import forms
from .desk import Desk, desk_of
from .render import page


def story_id_of(request: Request) -> int:
    raw = request.path_params["story"]
    if not raw.isdigit():
        raise HTTPException(404, "no such story")
    return int(raw)


def story(desk: Desk, story_id: int) -> dict[str, Any]:
    found = desk.store.story_detail(story_id)
    if found is None:
        raise HTTPException(404, f"no story {story_id}")
    found["verdict_storylines"] = [{"id": s.id, "name": s.name} for s in desk.config.storylines]
    matcher, _models = desk.deciders()
    for item in found["items"]:  # what `monitor check` says of it, by the rules
        item["explanation"] = "\n\n".join(e.render() for e in matcher.explain(item["title"], item["summary"]))
    found["examples"] = desk.store.feedback_counts()
    return found


def story_page(request: Request) -> Response:
    return page(request, "story.html", story=story(desk_of(request), story_id_of(request)))


def api_story(request: Request) -> Response:
    return JSONResponse(story(desk_of(request), story_id_of(request)))


def record_verdict(desk: Desk, story_id: int, fields: dict[str, str]) -> dict[str, Any]:
    """The checks ``monitor feedback`` makes, then ``Store.record_feedback``; the item must be
    one of this story's."""
    storyline, verdict, item = fields.get("storyline", ""), fields.get("verdict", ""), fields.get("item", "")
    if storyline not in {s.id for s in desk.config.storylines}:
        raise HTTPException(400, f"storyline: expected the id of a configured storyline, got {storyline!r}")
    if verdict not in ("right", "wrong"):
        raise HTTPException(400, "verdict: expected 'right' or 'wrong'")
    found = desk.store.story_detail(story_id)
    if found is None:
        raise HTTPException(404, f"no story {story_id}")
    if not item.isdigit() or int(item) not in {i["item_id"] for i in found["items"]}:
        raise HTTPException(400, f"item: expected the id of an item of story {story_id}")
    result = desk.store.record_feedback(item, storyline, right=verdict == "right", now=desk.clock())
    result["examples"] = desk.store.feedback_counts().get(storyline, {})
    return result


async def _fields(request: Request) -> dict[str, str]:
    try:
        return await forms.fields(request)
    except forms.FormError as error:
        raise HTTPException(400, str(error)) from None


async def post_verdict(request: Request) -> Response:
    desk, story_id = desk_of(request), story_id_of(request)
    result = await run_in_threadpool(record_verdict, desk, story_id, await _fields(request))
    if request.headers.get("hx-request"):  # htmx: the item's verdict cell, swapped in place
        item = next(i for i in (await run_in_threadpool(story, desk, story_id))["items"]
                    if i["item_id"] == result["item_id"])
        return page(request, "_verdicts.html", item=item, story_id=story_id,
                    verdict_storylines=[{"id": s.id, "name": s.name} for s in desk.config.storylines],
                    recorded=result)
    return RedirectResponse(f"/stories/{story_id}#item-{result['item_id']}", status_code=303)


async def api_post_verdict(request: Request) -> Response:
    desk, story_id = desk_of(request), story_id_of(request)
    result = await run_in_threadpool(record_verdict, desk, story_id, await _fields(request))
    return JSONResponse(result)
