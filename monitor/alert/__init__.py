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

Channels, one module each:

* ``webhook.WebhookChannel`` — Standard Webhooks: ``webhook-id`` (the alert's stable
  ``uid``), ``webhook-timestamp`` (this attempt, Unix seconds) and
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``.
* ``smtp.EmailChannel`` — a text/plain + text/html message over SMTP (SSL or STARTTLS).
* ``chat.AppriseChannel`` — any service Apprise knows (Slack, Telegram, Matrix, ...).
* ``console.ConsoleChannel`` — one line per alert on a stream.

``render`` is what people read of an alert (subject, text, HTML, console line), shared by
email, Apprise and the console; pure, no I/O. This module holds the ``Channel`` protocol and
``make_channel``, which builds the channel an ``[[alerts]]`` entry describes.
"""

from __future__ import annotations

from typing import Protocol, TextIO, runtime_checkable

from ..config import DEFAULT_USER_AGENT, ChannelConfig
from ..errors import ConfigError
from ..fetch import parse_retry_after  # one parser of Retry-After for feeds and receivers
from ..models import Alert
from .chat import AppriseChannel
from .console import ConsoleChannel
from .render import console_line, subject_of
from .smtp import EmailChannel, build_email
from .webhook import WebhookChannel, encode_body, sign

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
