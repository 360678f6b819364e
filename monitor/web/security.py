"""Who may write, once, as middleware (Miniflux's ``auth.go`` and ``csrf_middleware.go``).

* Reads are open: the desk shows what the feeds published, nothing secret.
* Writes (any method but GET, HEAD, OPTIONS) need the ``[web] token``: as
  ``Authorization: Bearer <token>`` (the API), or through the login page, which sets a signed,
  HttpOnly, SameSite=Strict session cookie; a write with the cookie must also carry the session's
  CSRF token (the form field ``csrf`` or the header ``X-CSRF-Token``).
* Without a configured token every write is refused: the desk is read-only and says so.

Every answer carries headers that keep hostile feed text inert even if it got past the
templates' escaping: a Content-Security-Policy that runs only our own script file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

if TYPE_CHECKING:
    from .desk import Desk

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "desk_session"
SESSION_SECONDS = 30 * 86400
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
MAX_FORM_BYTES = 64 * 1024
HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; "
                                 b"img-src 'self'; connect-src 'self'; form-action 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def sign(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def session_cookie(key: bytes, *, now: float | None = None) -> str:
    """A new session: ``nonce.expiry.signature``."""
    nonce = secrets.token_hex(16)
    expiry = int((now or time.time()) + SESSION_SECONDS)
    return f"{nonce}.{expiry}.{sign(key, f'session:{nonce}.{expiry}')}"


def session_nonce(key: bytes, cookie: str | None, *, now: float | None = None) -> str | None:
    """The nonce of a valid, unexpired session cookie, else None."""
    if not cookie or cookie.count(".") != 2:
        return None
    nonce, expiry, signature = cookie.split(".")
    if not hmac.compare_digest(signature, sign(key, f"session:{nonce}.{expiry}")):
        return None
    if not expiry.isdigit() or int(expiry) < (now or time.time()):
        return None
    return nonce


def csrf_token(key: bytes, nonce: str) -> str:
    return sign(key, f"csrf:{nonce}")


def bearer_ok(desk: Desk, header: str | None) -> bool:
    if not desk.token or not header or not header.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), desk.token.encode())


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def refusal(request: Request, status: int, reason: str) -> Response:
    if wants_json(request):
        return JSONResponse({"error": reason}, status_code=status)
    return PlainTextResponse(reason, status_code=status)


class Security:
    """Pure ASGI middleware: sets ``request.state.can_write`` and ``request.state.csrf`` for the
    handlers and templates, refuses writes that lack the token or the CSRF token, and adds the
    security headers to every answer."""

    def __init__(self, app: ASGIApp, desk: Desk) -> None:
        self.app = app
        self.desk = desk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        request = Request(scope)
        key = self.desk.key
        nonce = session_nonce(key, request.cookies.get(COOKIE)) if key else None
        bearer = bearer_ok(self.desk, request.headers.get("authorization"))
        state = scope.setdefault("state", {})
        state["can_write"] = bool(nonce or bearer)
        state["csrf"] = csrf_token(key, nonce) if key and nonce else ""
        state["read_only"] = key is None
        if request.method not in SAFE_METHODS and request.url.path != "/login":
            if key is None:
                refused = refusal(request, 403, "read-only: this desk has no [web] token configured, "
                                                "so nothing can be changed from the web")
            elif bearer:
                refused = None
            elif nonce is None:
                refused = refusal(request, 401, "log in first (/login), or send Authorization: Bearer")
            else:
                body = await _body(receive)
                if body is None:
                    refused = refusal(request, 413, "request body too large")
                else:
                    given = request.headers.get("x-csrf-token") or _form_field(request, body, "csrf")
                    if not given or not hmac.compare_digest(given, state["csrf"]):
                        refused = refusal(request, 403, "CSRF token missing or wrong: reload the page")
                    else:
                        refused = None
                        receive = _replay(body)
            if refused is not None:
                await refused(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


async def _body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _form_field(request: Request, body: bytes, name: str) -> str | None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        values = parse_qs(body.decode("utf-8", "replace")).get(name)
        return values[0] if values else None
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            return None
        value = data.get(name) if isinstance(data, dict) else None
        return value if isinstance(value, str) else None
    return None
