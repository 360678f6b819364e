"""Templates (Jinja2, autoescaped: feed text is hostile) and the filters they use."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from .security import wants_json


def http_url(value: Any) -> str | None:
    """``value`` when it is an http:// or https:// URL with a host, else None: a feed's
    ``javascript:`` or ``data:`` link is shown as text, never made a link."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    return value.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def minute(value: Any) -> str:
    """An ISO time (or datetime) as ``2024-08-08 19:20`` (UTC), or an empty string."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        value = value.isoformat()
    text = str(value).replace("T", " ")
    return text[:16]


def terms(hits: Any) -> str:
    """A match's terms as found in the text (``Store.matches``' ``matched_terms``), each once."""
    found = []
    for hit in hits or ():
        word = (hit.get("found") or hit.get("term")) if isinstance(hit, dict) else hit
        if word:
            found.append(str(word))
    return ", ".join(dict.fromkeys(found))


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("monitor.web", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["http_url"] = http_url
    env.filters["minute"] = minute
    env.filters["terms"] = terms
    return env


def page(request: Request, template: str, *, http_status: int = 200, **context: Any) -> HTMLResponse:
    """Render one template with what every page shows (who may write, the CSRF token)."""
    desk = request.app.state.desk
    state = request.state
    html = desk.templates.get_template(template).render(
        request=request, path=request.url.path, can_write=getattr(state, "can_write", False),
        csrf=getattr(state, "csrf", ""), read_only=getattr(state, "read_only", True), **context)
    return HTMLResponse(html, status_code=http_status)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if wants_json(request):
        return JSONResponse({"error": error.detail}, status_code=error.status_code)
    return page(request, "error.html", http_status=error.status_code, status_code=error.status_code,
                detail=error.detail)


ERROR_HANDLERS: dict[Any, Any] = {HTTPException: _http_error}
