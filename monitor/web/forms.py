"""Reading what a form or an API call posted: url-encoded fields or a JSON object, as strings
(Miniflux's ``internal/ui/form``). No multipart: the desk's forms post nothing else."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from starlette.requests import Request

MAX_BYTES = 64 * 1024


class FormError(ValueError):
    """The request's body is not a form or object we read."""


async def fields(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_BYTES:
        raise FormError("request body too large")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise FormError("not valid JSON") from None
        if not isinstance(data, dict):
            raise FormError("expected a JSON object")
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str | int)}
    if kind in ("application/x-www-form-urlencoded", ""):
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    raise FormError(f"unsupported content type {kind!r}")
