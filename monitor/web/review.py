"""``/review/{storyline}``: the items whose verdict would teach the storyline most, one at a
time, with the verdict buttons; a verdict takes one click and the next item appears. JSON twin:
``/api/v1/review/{storyline}`` (the queue, most uncertain first).

Uncertain: the decision nearest its cut. A storyline decided by its model file: the model's
probability nearest its threshold. Decided by its rules: a match with the lowest score
(borderline) or an item it did not match with the highest score (a near miss). Items the desk
already judged for the storyline leave the queue.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from .desk import Desk, desk_of
from .render import page
from .stories import _fields
from .storylines import storyline_of

CANDIDATES = 300  # newest items looked at
WINDOW = timedelta(days=14)
SHOWN = 20


def queue(desk: Desk, storyline_id: str) -> dict[str, Any]:
    storyline = storyline_of(desk, storyline_id)
    matcher, models = desk.deciders()
    model = models.get(storyline.id)
    out = []
    for item in desk.store.review_candidates(storyline.id, since=desk.clock() - WINDOW, limit=CANDIDATES):
        explanation = next(e for e in matcher.explain(item["title"], item["summary"])
                           if e.storyline_id == storyline.id)
        if model is not None:
            probability = model.probability(item["title"], item["summary"], explanation)
            item["probability"] = round(probability, 4)
            uncertainty = abs(probability - model.threshold)
        else:
            uncertainty = explanation.score / 100 if item["matched"] else 1 - explanation.score / 100
        item.update(matched=bool(item["matched"]), score=round(explanation.score, 1),
                    uncertainty=round(uncertainty, 4), explanation=explanation.render())
        out.append(item)
    out.sort(key=lambda i: (i["uncertainty"], -i["item_id"]))
    return {"storyline": {"id": storyline.id, "name": storyline.name,
                          "decided_by": "model" if model is not None else "rules"},
            "queue": out[:SHOWN], "left": len(out),
            "examples": desk.store.feedback_counts().get(storyline.id, {})}


def review_page(request: Request) -> Response:
    data = queue(desk_of(request), request.path_params["storyline"])
    return page(request, "review.html", **data)


def api_review(request: Request) -> Response:
    return JSONResponse(queue(desk_of(request), request.path_params["storyline"]))


def _record(desk: Desk, storyline_id: str, fields: dict[str, str]) -> dict[str, Any]:
    from starlette.exceptions import HTTPException

    storyline = storyline_of(desk, storyline_id)
    item, verdict = fields.get("item", ""), fields.get("verdict", "")
    if verdict not in ("right", "wrong"):
        raise HTTPException(400, "verdict: expected 'right' or 'wrong'")
    if not item.isdigit():
        raise HTTPException(400, "item: expected a stored item's id")
    try:
        return desk.store.record_feedback(item, storyline.id, right=verdict == "right", now=desk.clock())
    except KeyError:
        raise HTTPException(404, f"no stored item {item}") from None


async def post_review(request: Request) -> Response:
    storyline = request.path_params["storyline"]
    await run_in_threadpool(_record, desk_of(request), storyline, await _fields(request))
    return RedirectResponse(f"/review/{storyline}", status_code=303)  # the next item

