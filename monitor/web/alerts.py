"""``/alerts``: the outbox (pending, sent, failed, with the last error) and the channels, with
the retry and re-enable buttons of ``monitor alerts retry`` and ``monitor alerts enable``.
JSON twins under ``/api/v1/alerts`` and ``/api/v1/channels``."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from .desk import Desk, desk_of
from .render import page

STATUSES = ("pending", "sent", "failed")


def status_of(request: Request) -> str | None:
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise HTTPException(400, f"status: expected one of {', '.join(STATUSES)}")
    return status


def outbox(desk: Desk, status: str | None) -> dict[str, Any]:
    return {"alerts": desk.store.alerts(status=status, limit=200), "channels": desk.store.channels(),
            "status": status}


def alerts_page(request: Request) -> Response:
    return page(request, "alerts.html", **outbox(desk_of(request), status_of(request)))


def api_alerts(request: Request) -> Response:
    return JSONResponse(outbox(desk_of(request), status_of(request)))


def _retry(desk: Desk, alert: str) -> int:
    if alert == "failed":
        return desk.store.retry_alerts(failed=True, now=desk.clock())
    if not alert.isdigit():
        raise HTTPException(404, "no such alert")
    return desk.store.retry_alerts([int(alert)], now=desk.clock())


def _enable(desk: Desk, channel: str) -> bool:
    if not desk.store.enable_channel(channel):
        raise HTTPException(404, f"no channel {channel!r}")
    return True


async def retry(request: Request) -> Response:
    await run_in_threadpool(_retry, desk_of(request), request.path_params["alert"])
    return RedirectResponse("/alerts", status_code=303)


async def enable(request: Request) -> Response:
    await run_in_threadpool(_enable, desk_of(request), request.path_params["channel"])
    return RedirectResponse("/alerts", status_code=303)


async def api_retry(request: Request) -> Response:
    count = await run_in_threadpool(_retry, desk_of(request), request.path_params["alert"])
    return JSONResponse({"requeued": count})


async def api_enable(request: Request) -> Response:
    await run_in_threadpool(_enable, desk_of(request), request.path_params["channel"])
    return JSONResponse({"enabled": request.path_params["channel"]})
