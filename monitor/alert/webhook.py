"""The webhook channel: an ``Alert`` in, one signed POST of its payload out.

In: an alert whose ``payload`` is final. Out: the payload's exact bytes (``encode_body``,
identical across retries) POSTed with the Standard Webhooks headers ``webhook-id`` (the
alert's stable ``uid``), ``webhook-timestamp`` (this attempt, Unix seconds) and, with a
secret, ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` (``sign``);
the receiver's answer becomes a return or one of the package's delivery errors
(``WebhookChannel``). Messages name the URL's origin only: paths often hold tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..config import DEFAULT_USER_AGENT
from ..errors import ChannelGone, ConfigError, DeliveryPermanent, DeliveryRetryable
from ..fetch import parse_retry_after  # one parser of Retry-After for feeds and receivers
from ..models import Alert
from .render import one_line

log = logging.getLogger(__name__)

_RESPONSE_SNIPPET = 200  # characters of a refusing receiver's answer kept in the error


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes POSTed: compact, UTF-8, key order kept (identical across retries)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False,
                      sort_keys=False).encode("utf-8")


def sign(key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The Standard Webhooks ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def _secret_key(secret: str, channel: str) -> bytes:
    """The HMAC key: the base64 part of ``whsec_<base64>`` decoded (as the reference library does)."""
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "==")  # tolerate missing padding, like the reference
    except (binascii.Error, ValueError):
        raise ConfigError(f"alert channel {channel!r}: the webhook secret is not valid base64 "
                          "after 'whsec_'") from None
    if not key:
        raise ConfigError(f"alert channel {channel!r}: the webhook secret is empty")
    return key


def _origin(url: str) -> str:
    """scheme://host[:port] only: paths and query strings of webhook URLs often hold tokens."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{port}"


class WebhookChannel:
    """POST the payload to a URL, signed per the Standard Webhooks spec.

    Outcomes: 2xx delivered; 410 ``ChannelGone``; 408, 429, 5xx, timeouts and
    connection errors ``DeliveryRetryable`` (with ``Retry-After``); redirects and
    other statuses ``DeliveryPermanent``. Redirects are never followed.
    """

    def __init__(self, name: str, url: str, *, secret: str | None = None, timeout: float = 10.0,
                 user_agent: str = DEFAULT_USER_AGENT,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.url = url
        self.timeout = timeout
        self.user_agent = user_agent
        self._key = _secret_key(secret, name) if secret else None
        self._clock = clock
        self._where = f"webhook {name!r} ({_origin(url)})"
        self.last_answer: str | None = None  # the receiver's answer to the last delivery
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False,
                                    headers={"user-agent": user_agent})

    def __repr__(self) -> str:
        return f"WebhookChannel({self.name!r}, {_origin(self.url)!r}, signed={self._key is not None})"

    def headers_for(self, alert: Alert, body: bytes, timestamp: int) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "user-agent": self.user_agent,
            "webhook-id": alert.uid,
            "webhook-timestamp": str(timestamp),
        }
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, alert.uid, timestamp, body)
        return headers

    def deliver(self, alert: Alert) -> None:
        body = encode_body(alert.payload)
        headers = self.headers_for(alert, body, int(self._clock()))
        started = time.monotonic()
        try:
            with self._client.stream("POST", self.url, content=body, headers=headers) as response:
                status = response.status_code
                snippet = _read_snippet(response)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                location = response.headers.get("location")
        except httpx.TimeoutException as error:
            raise DeliveryRetryable(f"{self._where}: timed out after {self.timeout:g}s "
                                    f"({type(error).__name__})") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise DeliveryPermanent(f"{self._where}: the URL cannot be used (only http/https)") from None
        except httpx.TransportError as error:
            raise DeliveryRetryable(f"{self._where}: {_transport_reason(error)}") from None
        elapsed = time.monotonic() - started
        self.last_answer = f"HTTP {status}" + (f": {snippet}" if snippet else "")
        if 200 <= status < 300:
            log.debug("delivered", extra={"channel": self.name, "alert_uid": alert.uid,
                                          "status": status, "elapsed": round(elapsed, 3)})
            return
        answer = f"{self._where}: the receiver answered HTTP {status}"
        if snippet:
            answer += f": {snippet}"
        if status == 410:
            raise ChannelGone(f"{answer} (410 Gone: the receiver asked us to stop sending)")
        if status in (408, 429) or status >= 500:
            raise DeliveryRetryable(answer, retry_after=retry_after)
        if 300 <= status < 400:
            target = f" to {_origin(location)}" if location else ""
            raise DeliveryPermanent(f"{self._where}: the receiver answered HTTP {status}, a redirect"
                                    f"{target}; redirects are not followed: configure the final URL")
        raise DeliveryPermanent(answer)

    def close(self) -> None:
        self._client.close()


def _read_snippet(response: httpx.Response) -> str:
    """The first few hundred characters of a response body, one line (never the whole body)."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= 4 * _RESPONSE_SNIPPET:
                break
    except httpx.HTTPError:
        pass
    text = b"".join(chunks).decode("utf-8", "replace")
    return one_line(text, _RESPONSE_SNIPPET)


def _transport_reason(error: httpx.TransportError) -> str:
    cause: BaseException | None = error
    while cause is not None:  # the OS error says most: "Connection refused", "Name or service not known"
        if isinstance(cause, OSError) and (cause.strerror or cause.args):
            return f"{type(error).__name__}: {one_line(cause.strerror or cause.args[-1], 200)}"
        cause = cause.__cause__ or cause.__context__
    return f"{type(error).__name__}: {one_line(error, 200) or 'connection failed'}"
