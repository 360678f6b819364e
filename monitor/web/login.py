"""``/login``: the token, given once, becomes a signed session cookie (HttpOnly,
SameSite=Strict, Secure over https); ``/logout`` forgets it."""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from . import forms
from .desk import desk_of
from .render import page
from .security import COOKIE, SESSION_SECONDS, session_cookie

WRONG_TOKEN_DELAY = 1.0  # seconds


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path of this site only (never ``//host`` or a URL)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def login_form(request: Request) -> Response:
    return page(request, "login.html", next=safe_next(request.query_params.get("next")), error=None)


async def login(request: Request) -> Response:
    desk = desk_of(request)
    try:
        fields = await forms.fields(request)
    except forms.FormError:
        fields = {}
    target = safe_next(fields.get("next"))
    if desk.key is None:
        return page(request, "login.html", http_status=403, next=target,
                    error="This desk is read-only: no [web] token is configured.")
    given = fields.get("token", "")
    if not desk.token or not hmac.compare_digest(given.encode(), desk.token.encode()):
        await asyncio.sleep(WRONG_TOKEN_DELAY)  # guesses, slowed down
        return page(request, "login.html", http_status=401, next=target, error="Wrong token.")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, session_cookie(desk.key), max_age=SESSION_SECONDS, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
