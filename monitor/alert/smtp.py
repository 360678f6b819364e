"""The email channel: an ``Alert`` in, one email over SMTP out.

In: an alert whose ``payload`` is final. Out: a text/plain message with a text/html
alternative (``build_email``: subject, text and HTML from ``render``; ``Message-ID`` and
``Date`` fixed by the alert, so a re-sent alert is the same message), sent over SMTP with
implicit TLS or STARTTLS (``EmailChannel``); the server's replies become a return or one of
the package's delivery errors, never with the password in them. ``smtplib`` and ``email`` are
imported when a message is built or sent.
"""

from __future__ import annotations

import logging
import re
import ssl as ssl_module
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..config import DEFAULT_USER_AGENT
from ..errors import DeliveryPermanent, DeliveryRetryable
from ..models import Alert
from .render import html_part, one_line, subject_of, text_part

if TYPE_CHECKING:  # smtplib and email are imported by the email channel when it sends
    import smtplib
    from email.message import EmailMessage

log = logging.getLogger(__name__)


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
    message["From"] = one_line(sender)
    message["To"] = ", ".join(one_line(address) for address in to)
    message["Date"] = format_datetime(_created(alert).astimezone(UTC))
    message["Message-ID"] = _message_id(alert.uid, sender)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message["X-Mailer"] = one_line(user_agent, 200)
    message["X-Ceasefire-Alert"] = one_line(alert.uid, 200)
    message.set_content(text_part(alert))
    message.add_alternative(html_part(alert), subtype="html")
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
        self.sender = one_line(sender)
        self.to = tuple(one_line(address) for address in to)
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
        return one_line(text, 300)

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
