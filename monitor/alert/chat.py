"""The Apprise channel: an ``Alert`` in, one notification per Apprise URL out.

In: an alert whose ``payload`` is final. Out: its subject as the title and its text body
(``render``) sent to every Apprise URL (Slack, Telegram, Matrix, ...) that has not taken this
alert yet; a failed URL is retryable. URLs are never in a message or a log line: they hold
tokens. ``apprise`` (slow to import) is imported only when such a channel is built.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from ..config import DEFAULT_USER_AGENT
from ..errors import ConfigError, DeliveryRetryable
from ..models import Alert
from ..payload import FEED_DOWN, FEED_RECOVERED
from .render import alert_kind, subject_of, text_part

log = logging.getLogger(__name__)


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
        body = text_part(alert)
        kind = alert_kind(alert)
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
