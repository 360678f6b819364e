"""Alert channels: one outbox ``Alert`` in, one delivery attempt out.

A channel is told to deliver an alert whose ``payload`` (the JSON body built by the
store) is final. ``deliver`` returns on success and otherwise raises exactly one of

* ``DeliveryRetryable`` — try again later (timeouts, refused connections, HTTP
  408/429/5xx, SMTP 4xx); ``retry_after`` holds the receiver's ``Retry-After``
  in seconds when it gave one;
* ``DeliveryPermanent`` — retrying cannot help (other HTTP 4xx, redirects, SMTP 5xx);
* ``ChannelGone`` — the receiver asked us to stop (webhook 410).

Channels are synchronous and may be called from a thread of their own; one
channel object is used by one dispatcher thread at a time. No message raised or
logged here contains a secret (webhook secret, SMTP password, Apprise URLs).

Channels:

* ``WebhookChannel`` — Standard Webhooks: ``webhook-id`` (the alert's stable
  ``uid``), ``webhook-timestamp`` (this attempt, Unix seconds) and
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``.
* ``EmailChannel`` — a text/plain + text/html message over SMTP (SSL or STARTTLS).
* ``AppriseChannel`` — any service Apprise knows (Slack, Telegram, Matrix, ...).
* ``ConsoleChannel`` — one line per alert on a stream.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import inspect
import json
import logging
import re
import ssl as ssl_module
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TextIO, runtime_checkable
from urllib.parse import urlsplit

import httpx

from .config import DEFAULT_USER_AGENT, ChannelConfig
from .errors import ChannelGone, ConfigError, DeliveryPermanent, DeliveryRetryable
from .fetch import parse_retry_after  # one parser of Retry-After for feeds and receivers
from .models import Alert
from .payload import DIGEST, FEED_DOWN, FEED_RECOVERED, STORY_UPDATED

if TYPE_CHECKING:  # smtplib and email are imported by the email channel when it sends
    import smtplib
    from email.message import EmailMessage

__all__ = [
    "AppriseChannel",
    "Channel",
    "ConsoleChannel",
    "EmailChannel",
    "WebhookChannel",
    "build_email",
    "console_line",
    "encode_body",
    "make_channel",
    "parse_retry_after",
    "sign",
    "subject_of",
]

log = logging.getLogger(__name__)

_RESPONSE_SNIPPET = 200  # characters of a refusing receiver's answer kept in the error
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@runtime_checkable
class Channel(Protocol):
    """What the dispatcher needs from an alert channel."""

    name: str

    def deliver(self, alert: Alert) -> None:
        """Deliver once; raise ``DeliveryRetryable`` / ``DeliveryPermanent`` / ``ChannelGone``."""

    def close(self) -> None:
        """Release connections. Idempotent."""


def make_channel(config: ChannelConfig, *, user_agent: str = DEFAULT_USER_AGENT,
                 console_stream: TextIO | None = None) -> Channel:
    """Build the channel an ``[[alerts]]`` entry describes.

    Raises ``ConfigError`` (without secrets in its message) for an entry that can
    never work, e.g. a webhook secret that is not base64 or an Apprise URL that
    Apprise does not understand.
    """
    if config.type == "webhook":
        if not config.url:
            raise ConfigError(f"alert channel {config.name!r}: a webhook needs a url")
        return WebhookChannel(config.name, config.url, secret=config.secret,
                              timeout=config.timeout, user_agent=user_agent)
    if config.type == "email":
        if not config.host or not config.sender or not config.to:
            raise ConfigError(f"alert channel {config.name!r}: email needs host, sender and to")
        return EmailChannel(config.name, host=config.host, port=config.port,
                            sender=config.sender, to=config.to, starttls=config.starttls,
                            ssl=config.ssl, username=config.username, password=config.password,
                            timeout=config.timeout, user_agent=user_agent)
    if config.type == "apprise":
        return AppriseChannel(config.name, config.urls, timeout=config.timeout,
                              user_agent=user_agent)
    if config.type == "console":
        return ConsoleChannel(config.name, stream=console_stream)
    raise ConfigError(f"alert channel {config.name!r}: unknown type {config.type!r}")


# --------------------------------------------------------------------------- payload helpers

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


def _one_line(value: Any, limit: int | None = None) -> str:
    """A string safe for a header or a terminal: control characters (CR, LF, ESC...) become spaces."""
    text = "" if value is None else str(value)
    text = _CONTROL.sub(" ", text).strip()
    text = re.sub(r" {2,}", " ", text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _origin(url: str) -> str:
    """scheme://host[:port] only: paths and query strings of webhook URLs often hold tokens."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{port}"


def _http_link(url: Any) -> str | None:
    """``url`` if it is an absolute http(s) URL, else ``None`` (never render javascript: etc.)."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if _CONTROL.search(url) or " " in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def _published(value: Any) -> str:
    """``2026-11-26 06:58 UTC`` from an ISO 8601 string; the raw text when unparseable."""
    if not value:
        return ""
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return _one_line(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _score(value: Any) -> str:
    """Every score one way: 0-100 with one decimal (93.3, 100.0)."""
    try:
        return f"{float(value):.1f}"
    except (TypeError, ValueError):
        return _one_line(value)


def _data(alert: Alert) -> dict[str, Any]:
    data = alert.payload.get("data") if isinstance(alert.payload, dict) else None
    return data if isinstance(data, dict) else {}


def _kind(alert: Alert) -> str:
    kind = alert.payload.get("type") if isinstance(alert.payload, dict) else None
    if isinstance(kind, str) and kind:
        return kind
    return alert.kind  # the store writes the same type into the row


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _listed(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The storylines an alert is for (``data.storylines``); a body of an earlier release has
    one ``data.storyline``, with its score and terms beside it in ``data``."""
    listed = [s for s in data.get("storylines") or () if isinstance(s, dict)]
    if listed:
        return listed
    return [{**_dict(data.get("storyline")), "score": data.get("score"),
             "decided_by": data.get("decided_by"), "words": data.get("words"),
             "matched_terms": data.get("matched_terms")}]


def _reasons(data: Mapping[str, Any], alert: Alert) -> list[str]:
    """Per storyline: who decided, the score, the words that weighed most, each once:
    ``ceasefire-talks: model, score 98.0: holds, truce``. Bodies of earlier releases (no
    ``decided_by``) read as the rules' decision with their matched terms."""
    reasons = []
    for storyline in _listed(data):
        words = [w for w in storyline.get("words") or () if isinstance(w, str)]
        if not words:
            words = [str(t.get("found")) for t in storyline.get("matched_terms") or ()
                     if isinstance(t, dict)]
        unique = list(dict.fromkeys(_one_line(w) for w in words))
        label = _one_line(storyline.get("id") or alert.storyline_id or "?")
        who = _one_line(storyline.get("decided_by") or "rules")
        reasons.append(f"{label}: {who}, score {_score(storyline.get('score'))}"
                       + (f": {', '.join(unique)}" if unique else ""))
    return reasons


def _storylines(data: Mapping[str, Any], alert: Alert, key: str = "name",
                missing: str = "alert") -> str:
    """Every storyline the alert is for (``_listed``), by ``key`` (name or id), joined by " + "."""
    other = "id" if key == "name" else "name"
    labels = [_one_line(s.get(key) or s.get(other) or "") for s in _listed(data)]
    return " + ".join(label for label in labels if label) or _one_line(alert.storyline_id or missing)


def _update_line(data: Mapping[str, Any]) -> str:
    return f"now reported by {_one_line(data.get('outlets'))} outlets"


def _other_sources(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    item = _dict(data.get("item"))
    others = []
    for source in data.get("sources") or ():
        if not isinstance(source, dict):
            continue
        if source.get("link") and source.get("link") == item.get("link"):
            continue  # the item itself
        others.append(source)
    return others


def _groups(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A digest's storyline groups (``payload.digest_payload``), each with a list of stories."""
    groups = [g for g in data.get("storylines") or () if isinstance(g, dict)]
    for group in groups:
        group["stories"] = [s for s in group.get("stories") or () if isinstance(s, dict)]
    return groups


def _digest_lines(data: Mapping[str, Any]) -> list[str]:
    """A digest as readable text: per storyline, its stories newest first, each with its
    headline, outlets and link (email, Apprise, console)."""
    lines = [f"{_one_line(data.get('count'))} stories since {_published(data.get('since'))}:"]
    for group in _groups(data):
        storyline = _dict(group.get("storyline"))
        lines.extend(["", f"{_one_line(storyline.get('name') or storyline.get('id') or 'Other')}:"])
        for story in group["stories"]:
            mark = " (update)" if story.get("update") else ""
            lines.append(f"- {_one_line(story.get('headline')) or '(no title)'}{mark}")
            outlets = ", ".join(_one_line(o) for o in story.get("outlets") or ())
            when = _published(story.get("published"))
            lines.append("  " + " — ".join(p for p in (outlets, when) if p))
            if story.get("link"):
                lines.append(f"  {_one_line(story.get('link'))}")
    notices = [f for f in data.get("feeds") or () if isinstance(f, dict)]
    if notices:
        lines.extend(["", "Feeds:"])
        for notice in notices:
            state = "down" if notice.get("type") == FEED_DOWN else "recovered"
            error = f": {_one_line(notice.get('last_error'), 200)}" if notice.get("last_error") else ""
            lines.append(f"- {_one_line(notice.get('name'))} {state} "
                         f"({_published(notice.get('at'))}){error}")
    return lines


def _digest_html(data: Mapping[str, Any]) -> list[str]:
    e = html.escape
    rows = [f"<p>{e(_one_line(data.get('count')))} stories since "
            f"{e(_published(data.get('since')))}</p>"]
    for group in _groups(data):
        storyline = _dict(group.get("storyline"))
        rows.append(f"<h2>{e(str(storyline.get('name') or storyline.get('id') or 'Other'))}</h2><ul>")
        for story in group["stories"]:
            outlets = ", ".join(str(o) for o in story.get("outlets") or ())
            mark = " (update)" if story.get("update") else ""
            rows.append(f"<li>{_a(story.get('link'), story.get('headline') or '(no title)')}"
                        f"{e(mark)}<br>{e(outlets)} {e(_published(story.get('published')))}</li>")
        rows.append("</ul>")
    notices = [f for f in data.get("feeds") or () if isinstance(f, dict)]
    if notices:
        rows.append("<h2>Feeds</h2><ul>")
        for notice in notices:
            state = "down" if notice.get("type") == FEED_DOWN else "recovered"
            error = f": {e(str(notice.get('last_error')))}" if notice.get("last_error") else ""
            rows.append(f"<li>{e(str(notice.get('name') or '?'))} {state} "
                        f"({e(_published(notice.get('at')))}){error}</li>")
        rows.append("</ul>")
    return rows


def subject_of(alert: Alert) -> str:
    """``[<storyline name>] <headline>``, ``[feed down] <feed name>`` or ``[feed recovered] <name>``."""
    data = _data(alert)
    kind = _kind(alert)
    if kind == DIGEST:
        names = [_one_line(_dict(g.get("storyline")).get("name")) for g in _groups(data)]
        feeds = len(data.get("feeds") or ())
        notices = f"; {feeds} feed notice(s)" if feeds else ""
        return _one_line(f"[digest] {_one_line(data.get('count'))} stories{notices}: "
                         f"{', '.join(n for n in names if n)}", 250)
    if kind in (FEED_DOWN, FEED_RECOVERED):
        feed = _dict(data.get("feed"))
        label = "feed down" if kind == FEED_DOWN else "feed recovered"
        return _one_line(f"[{label}] {feed.get('name') or feed.get('url') or '?'}", 250)
    item = _dict(data.get("item"))
    title = _one_line(item.get("title")) or "(no title)"
    if kind == STORY_UPDATED:
        return _one_line(f"[{_storylines(data, alert)}] {_update_line(data)}: {title}", 250)
    return _one_line(f"[{_storylines(data, alert)}] {title}", 250)


# --------------------------------------------------------------------------- webhook

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
    return _one_line(text, _RESPONSE_SNIPPET)


def _transport_reason(error: httpx.TransportError) -> str:
    cause: BaseException | None = error
    while cause is not None:  # the OS error says most: "Connection refused", "Name or service not known"
        if isinstance(cause, OSError) and (cause.strerror or cause.args):
            return f"{type(error).__name__}: {_one_line(cause.strerror or cause.args[-1], 200)}"
        cause = cause.__cause__ or cause.__context__
    return f"{type(error).__name__}: {_one_line(error, 200) or 'connection failed'}"


# --------------------------------------------------------------------------- email

def _text_part(alert: Alert) -> str:
    data = _data(alert)
    kind = _kind(alert)
    lines: list[str] = []
    if kind == DIGEST:
        lines.extend(_digest_lines(data))
    elif kind in (FEED_DOWN, FEED_RECOVERED):
        feed = _dict(data.get("feed"))
        state = "is failing" if kind == FEED_DOWN else "works again"
        lines.append(f"The feed {feed.get('name') or '?'} {state}.")
        lines.append("")
        lines.append(f"URL: {feed.get('url') or ''}")
        if kind == FEED_DOWN:
            lines.append(f"Consecutive errors: {data.get('consecutive_errors', '?')}")
            if data.get("last_error"):
                lines.append(f"Last error: {data.get('last_error')}")
    else:
        item = _dict(data.get("item"))
        if kind == STORY_UPDATED:
            lines.extend([f"This story is {_update_line(data)}. The latest report:", ""])
        lines.append(str(item.get("title") or "(no title)"))
        lines.append("")
        if item.get("link"):
            lines.append(f"Link: {item.get('link')}")
        source = item.get("source") or ""
        if source:
            lines.append(f"Source: {source}")
        if item.get("published"):
            lines.append(f"Published: {_published(item.get('published'))}")
        lines.append(f"Storyline: {_storylines(data, alert)}")
        if kind != STORY_UPDATED:
            lines.extend(f"Why: {reason}" for reason in _reasons(data, alert))
        if item.get("summary"):
            lines.extend(["", str(item.get("summary"))])
        others = _other_sources(data)
        if others:
            lines.extend(["", "Also reported by:"])
            for other in others:
                link = f" <{other.get('link')}>" if other.get("link") else ""
                lines.append(f"- {other.get('source') or '?'}: {other.get('title') or ''}{link}")
    lines.extend(["", "-- ", f"ceasefire-monitor alert {alert.uid}"])
    return "\n".join(lines) + "\n"


def _a(url: Any, text: Any) -> str:
    """An escaped link when ``url`` is http(s); otherwise the escaped text and the URL as text."""
    label = html.escape(str(text if text not in (None, "") else url or ""))
    link = _http_link(url)
    if link:
        return f'<a href="{html.escape(link, quote=True)}">{label}</a>'
    if url and str(url) != str(text):
        return f"{label} ({html.escape(str(url))})"
    return label


def _html_part(alert: Alert) -> str:
    data = _data(alert)
    kind = _kind(alert)
    e = html.escape
    rows: list[str] = []
    if kind == DIGEST:
        rows.extend(_digest_html(data))
    elif kind in (FEED_DOWN, FEED_RECOVERED):
        feed = _dict(data.get("feed"))
        state = "is failing" if kind == FEED_DOWN else "works again"
        rows.append(f"<p>The feed <b>{e(str(feed.get('name') or '?'))}</b> {state}.</p><ul>")
        rows.append(f"<li>URL: {_a(feed.get('url'), feed.get('url'))}</li>")
        if kind == FEED_DOWN:
            rows.append(f"<li>Consecutive errors: {e(str(data.get('consecutive_errors', '?')))}</li>")
            if data.get("last_error"):
                rows.append(f"<li>Last error: {e(str(data.get('last_error')))}</li>")
        rows.append("</ul>")
    else:
        item = _dict(data.get("item"))
        if kind == STORY_UPDATED:
            rows.append(f"<p>This story is {e(_update_line(data))}. The latest report:</p>")
        rows.append(f"<h2>{_a(item.get('link'), item.get('title') or '(no title)')}</h2><ul>")
        if item.get("source"):
            rows.append(f"<li>Source: {e(str(item.get('source')))}</li>")
        if item.get("published"):
            rows.append(f"<li>Published: {e(_published(item.get('published')))}</li>")
        rows.append(f"<li>Storyline: {e(_storylines(data, alert))}</li>")
        if kind != STORY_UPDATED:
            rows.extend(f"<li>Why: {e(reason)}</li>" for reason in _reasons(data, alert))
        rows.append("</ul>")
        if item.get("summary"):
            rows.append(f"<p>{e(str(item.get('summary')))}</p>")
        others = _other_sources(data)
        if others:
            rows.append("<p>Also reported by:</p><ul>")
            for other in others:
                rows.append(f"<li>{e(str(other.get('source') or '?'))}: "
                            f"{_a(other.get('link'), other.get('title') or other.get('link'))}</li>")
            rows.append("</ul>")
    rows.append(f'<p style="color:#777;font-size:small">ceasefire-monitor alert {e(alert.uid)}</p>')
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n"
            + "\n".join(rows) + "\n</body></html>\n")


def _message_id(uid: str, sender: str) -> str:
    local = re.sub(r"[^A-Za-z0-9._-]", "-", uid) or "alert"
    domain = sender.rsplit("@", 1)[-1] if "@" in sender else ""
    domain = re.sub(r"[^A-Za-z0-9.-]", "", domain).strip(".") or "ceasefire-monitor.invalid"
    return f"<{local}@{domain}>"


def _created(alert: Alert) -> datetime:
    stamp = alert.payload.get("timestamp") if isinstance(alert.payload, dict) else None
    if isinstance(stamp, str):
        try:
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            return when if when.tzinfo else when.replace(tzinfo=UTC)
        except ValueError:
            pass
    created = alert.created_at
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def build_email(alert: Alert, *, sender: str, to: Sequence[str],
                user_agent: str = DEFAULT_USER_AGENT) -> EmailMessage:
    """The message for ``alert``: text/plain with a text/html alternative.

    ``Message-ID`` is ``<uid@sender-domain>`` and ``Date`` the alert's creation time,
    so a re-sent alert is the same message to the receiver.
    """
    from email.message import EmailMessage
    from email.utils import format_datetime

    message = EmailMessage()
    message["Subject"] = subject_of(alert)
    message["From"] = _one_line(sender)
    message["To"] = ", ".join(_one_line(address) for address in to)
    message["Date"] = format_datetime(_created(alert).astimezone(UTC))
    message["Message-ID"] = _message_id(alert.uid, sender)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message["X-Mailer"] = _one_line(user_agent, 200)
    message["X-Ceasefire-Alert"] = _one_line(alert.uid, 200)
    message.set_content(_text_part(alert))
    message.add_alternative(_html_part(alert), subtype="html")
    return message


class EmailChannel:
    """Send each alert as one email over SMTP.

    ``ssl`` connects with implicit TLS (port 465); otherwise STARTTLS is required
    when ``starttls`` (a server that does not offer it is a permanent error).
    SMTP 4xx, refused connections and timeouts are retryable; SMTP 5xx is permanent
    and keeps the server's reply.
    """

    def __init__(self, name: str, *, host: str, port: int = 587, sender: str,
                 to: Sequence[str], starttls: bool = True, ssl: bool = False,
                 username: str | None = None, password: str | None = None,
                 timeout: float = 10.0, user_agent: str = DEFAULT_USER_AGENT,
                 ssl_context: ssl_module.SSLContext | None = None) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.sender = _one_line(sender)
        self.to = tuple(_one_line(address) for address in to)
        self.starttls = starttls
        self.ssl = ssl
        self.username = username
        self._password = password
        self.timeout = timeout
        self.user_agent = user_agent
        self._ssl_context = ssl_context
        self._where = f"email {name!r} ({host}:{port})"
        self.last_answer: str | None = None  # what the server said to the last delivery

    def __repr__(self) -> str:
        return f"EmailChannel({self.name!r}, {self.host!r}, {self.port})"

    def _context(self) -> ssl_module.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl_module.create_default_context()
        return self._ssl_context

    def _scrub(self, text: str) -> str:
        if self._password:
            text = text.replace(self._password, "***")
        return _one_line(text, 300)

    def deliver(self, alert: Alert) -> None:
        import smtplib

        message = build_email(alert, sender=self.sender, to=self.to, user_agent=self.user_agent)
        try:
            self._send(message)
        except smtplib.SMTPRecipientsRefused as error:
            replies = list(error.recipients.values())
            reason = "; ".join(f"{code} {_decode(text)}" for code, text in replies)
            transient = all(400 <= code < 500 for code, _ in replies)
            kind = DeliveryRetryable if transient else DeliveryPermanent
            raise kind(f"{self._where}: every recipient was refused: {self._scrub(reason)}") from None
        except smtplib.SMTPResponseException as error:
            reply = self._scrub(f"{error.smtp_code} {_decode(error.smtp_error)}")
            if isinstance(error, smtplib.SMTPAuthenticationError):
                raise DeliveryPermanent(f"{self._where}: login refused: {reply}") from None
            if 400 <= error.smtp_code < 500:
                raise DeliveryRetryable(f"{self._where}: the server answered {reply}") from None
            raise DeliveryPermanent(f"{self._where}: the server answered {reply}") from None
        except smtplib.SMTPServerDisconnected as error:
            raise DeliveryRetryable(f"{self._where}: the server closed the connection "
                                    f"({self._scrub(str(error))})") from None
        except smtplib.SMTPNotSupportedError as error:
            raise DeliveryPermanent(f"{self._where}: {self._scrub(str(error))}") from None
        except smtplib.SMTPException as error:  # e.g. "No suitable authentication method found"
            raise DeliveryPermanent(f"{self._where}: {self._scrub(str(error))}") from None
        except TimeoutError:
            raise DeliveryRetryable(f"{self._where}: timed out after {self.timeout:g}s") from None
        except OSError as error:  # refused, reset, DNS, TLS handshake
            reason = error.strerror or str(error) or type(error).__name__
            raise DeliveryRetryable(f"{self._where}: {type(error).__name__}: "
                                    f"{self._scrub(reason)}") from None
        log.debug("delivered", extra={"channel": self.name, "alert_uid": alert.uid})

    def _send(self, message: EmailMessage) -> None:
        import smtplib

        if self.ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                  context=self._context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            if not self.ssl and self.starttls:
                if not smtp.has_extn("starttls"):
                    raise DeliveryPermanent(
                        f"{self._where}: the server does not offer STARTTLS; use ssl = true, "
                        "or starttls = false only for a trusted local relay")
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self._password or "")
            refused = smtp.send_message(message, from_addr=self.sender, to_addrs=list(self.to))
            self.last_answer = (f"{self.host}:{self.port} accepted the message for "
                                f"{len(self.to) - len(refused)} of {len(self.to)} recipient(s)")
            if refused:  # accepted for some: retrying would send duplicates to the others
                log.warning("some recipients refused", extra={
                    "channel": self.name,
                    "refused": ", ".join(f"{a} ({c})" for a, (c, _) in refused.items())})

    def close(self) -> None:
        """Nothing to release: one SMTP connection per delivery."""


def _decode(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


# --------------------------------------------------------------------------- apprise

class AppriseChannel:
    """Notify every Apprise URL. A URL that failed is retried; one that succeeded is not
    notified again for the same alert (remembered in memory for recent alerts).
    """

    _REMEMBER = 1000  # alerts whose per-URL successes are remembered

    def __init__(self, name: str, urls: Sequence[str], *, timeout: float = 10.0,
                 user_agent: str = DEFAULT_USER_AGENT) -> None:
        import apprise  # slow to import: only when an Apprise channel is configured

        self.name = name
        self.timeout = timeout
        self._apprise = apprise
        self._targets: list[Any] = []
        asset = apprise.AppriseAsset(app_id="ceasefire-monitor", app_desc=user_agent)
        for i, url in enumerate(urls):
            target = apprise.Apprise(asset=asset)
            if not target.add(url):
                raise ConfigError(f"alert channel {name!r}: urls[{i}] is not a URL Apprise "
                                  "understands (the URL is not shown: it may hold a token)")
            self._targets.append(target)
        if not self._targets:
            raise ConfigError(f"alert channel {name!r}: no Apprise URL")
        self._done: OrderedDict[str, set[int]] = OrderedDict()
        self._lock = threading.Lock()
        # Apprise >= 2 limits a whole notify() call with timeout=; older versions lack it.
        self._timeout_kw = ("timeout" in inspect.signature(apprise.Apprise.notify).parameters)

    def __repr__(self) -> str:
        return f"AppriseChannel({self.name!r}, {len(self._targets)} urls)"

    def deliver(self, alert: Alert) -> None:
        title = subject_of(alert)
        body = _text_part(alert)
        kind = _kind(alert)
        notify_type = (self._apprise.NotifyType.FAILURE if kind == FEED_DOWN
                       else self._apprise.NotifyType.SUCCESS if kind == FEED_RECOVERED
                       else self._apprise.NotifyType.INFO)
        with self._lock:
            done = set(self._done.get(alert.uid, set()))
        failed: list[int] = []
        for i, target in enumerate(self._targets):
            if i in done:
                continue
            options: dict[str, Any] = {"timeout": self.timeout} if self._timeout_kw else {}
            try:
                ok = bool(target.notify(title=title, body=body, notify_type=notify_type,
                                        body_format=self._apprise.NotifyFormat.TEXT, **options))
            except Exception as error:  # a plugin bug must not take the dispatcher down
                # the type only: the text may hold the URL and its token
                log.warning("apprise raised", extra={"channel": self.name, "url_index": i,
                                                     "error_type": type(error).__name__})
                ok = False
            if ok:
                done.add(i)
            else:
                failed.append(i)
        with self._lock:
            if failed:
                self._done[alert.uid] = done
                self._done.move_to_end(alert.uid)
                while len(self._done) > self._REMEMBER:
                    self._done.popitem(last=False)
            else:
                self._done.pop(alert.uid, None)
        if failed:
            which = ", ".join(f"urls[{i}]" for i in failed)
            raise DeliveryRetryable(f"apprise {self.name!r}: apprise could not notify {which} "
                                    f"({len(failed)} of {len(self._targets)})")

    def close(self) -> None:
        self._targets = []


# --------------------------------------------------------------------------- console

def console_line(alert: Alert) -> str:
    """One line, e.g. ``ALERT [cairo-talks] Headline — Al Jazeera 2026-11-26 06:58 UTC
    https://... (score 96: cairo~Cairo, truce~truce)``. Control characters are removed.
    """
    data = _data(alert)
    kind = _kind(alert)
    if kind == DIGEST:  # several lines: a digest is a list of stories
        lines = _digest_lines(data)
        return f"DIGEST {_one_line(alert.channel)}: " + "\n  ".join(lines)
    if kind in (FEED_DOWN, FEED_RECOVERED):
        feed = _dict(data.get("feed"))
        if kind == FEED_DOWN:
            line = (f"FEED DOWN [{_one_line(feed.get('name'))}] {_one_line(feed.get('url'))} "
                    f"— {_one_line(data.get('consecutive_errors'))} consecutive errors")
            if data.get("last_error"):
                line += f": {_one_line(data.get('last_error'), 200)}"
            return line
        return f"FEED RECOVERED [{_one_line(feed.get('name'))}] {_one_line(feed.get('url'))}"
    item = _dict(data.get("item"))
    label = _storylines(data, alert, key="id", missing="?")
    if kind == STORY_UPDATED:
        return (f"UPDATE [{label}] story {_one_line(data.get('story_id'))} {_update_line(data)}: "
                f"{_one_line(item.get('title')) or '(no title)'}")
    parts = [f"ALERT [{label}] {_one_line(item.get('title')) or '(no title)'}"]
    where = " ".join(p for p in (_one_line(item.get("source")), _published(item.get("published"))) if p)
    if where:
        parts.append(f"— {where}")
    if item.get("link"):
        parts.append(_one_line(item.get("link")))
    parts.append(f"({'; '.join(_reasons(data, alert))})")
    return " ".join(parts)


class ConsoleChannel:
    """Print one line per alert to ``stream`` (default: ``sys.stdout`` at delivery time)."""

    def __init__(self, name: str = "console", stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream
        self._lock = threading.Lock()

    def deliver(self, alert: Alert) -> None:
        line = console_line(alert)
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            with self._lock:
                stream.write(line + "\n")
                stream.flush()
        except (OSError, ValueError) as error:  # closed pipe / closed file
            raise DeliveryRetryable(f"console {self.name!r}: cannot write: "
                                    f"{type(error).__name__}") from None

    def close(self) -> None:
        """The stream belongs to the caller: not closed here."""
