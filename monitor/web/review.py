"""``/review/{storyline}``: the items whose verdict would teach the storyline most, one at a
time, with the verdict buttons; a verdict takes one click and the next item appears. JSON twin:
``/api/v1/review/{storyline}`` (the queue, most uncertain first).

The same queue as ``monitor review`` (``monitor.review.review``, ranked by ``review_queue``),
over the items first seen in the last 14 days: the candidates of the storyline's learned layer
(its first group found), where its model and its rules disagree first, then the decisions
nearest their cut (a model's probability nearest its threshold; with the rules deciding, near
misses and matches found only in the summary). Items the desk already judged for the storyline
leave the queue.
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
    """The queue of ``monitor review`` (``monitor.review.review``: one candidate query, one ranking),
    over the items first seen in the last ``WINDOW``, decided as the daemon last saved its
    learned layer (never trained here)."""
    from ..deciders import saved_models
    from ..review import review

    storyline = storyline_of(desk, storyline_id)
    matcher, shipped = desk.deciders()
    models = saved_models(desk.config, desk.store, matcher, shipped)
    model = models.get(storyline.id)
    rows = review(desk.config, desk.store, storyline.id, limit=None, scan=CANDIDATES,
                  since=desk.clock() - WINDOW, matcher=matcher, models=models)
    index = next(i for i, s in enumerate(matcher.storylines) if s.id == storyline.id)
    for row in rows[:SHOWN]:
        explanation = matcher.explain(row["title"], row["summary"])[index]
        row.update(matched=row["decision"] == "match", score=round(explanation.score, 1),
                   uncertainty=row["margin"], explanation=explanation.render())
    decided_by = "rules" if model is None else (
        "rules" if model.on_rules and model.stands_aside else
        "rules + desk" if model.on_rules else "model")
    return {"storyline": {"id": storyline.id, "name": storyline.name, "decided_by": decided_by},
            "queue": rows[:SHOWN], "left": len(rows),
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

