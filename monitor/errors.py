"""The error hierarchy of ceasefire-monitor.

Every error the monitor raises on purpose derives from ``MonitorError`` and has a
stable ``code``: the codes are stored on feeds and alerts and shown by the CLI, so
they never change once released. ``str(error)`` is the human message; it must
never contain a secret (webhook secrets, SMTP passwords).

    MonitorError
    ├── ConfigError                 config.invalid      bad TOML, unknown key, wrong type, missing env var
    ├── StoreError                  store.error         the database cannot be opened or is not ours
    ├── FeedError                   feed.error          one feed failed (stored on the feed)
    │   ├── FetchError              fetch.error
    │   │   ├── FeedTimeout         fetch.timeout       connect/read timeout or the total time cap
    │   │   ├── FeedConnectError    fetch.connect       DNS failure, refused, reset, TLS
    │   │   ├── FeedTooLarge        fetch.too_large     body over the size cap (after decompression)
    │   │   ├── FeedHTTPStatus      fetch.http_status   a non-2xx/304 status (``status`` kept)
    │   │   ├── FeedRedirectLoop    fetch.redirects     too many redirects
    │   │   └── FeedRefusedURL      fetch.refused_url   a scheme other than http/https
    │   └── ParseError              parse.error         not a feed at all / no entries and a fatal parse error
    └── DeliveryError               delivery.error      an alert channel failed for one alert
        ├── DeliveryRetryable       delivery.retry      try again later (5xx, timeout, refused, SMTP 4xx)
        ├── DeliveryPermanent       delivery.permanent  never succeeds (SMTP 5xx, 4xx other than 408/429)
        └── ChannelGone             delivery.gone       the receiver asked us to stop (webhook 410)
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error ceasefire-monitor raises on purpose."""

    code = "monitor.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(MonitorError):
    """The configuration is wrong. ``where`` names the file and key."""

    code = "config.invalid"


class StoreError(MonitorError):
    """The database cannot be used (corrupt, foreign, newer schema)."""

    code = "store.error"


class LeaseLost(StoreError):
    """A poll's results arrived after its feed's lease had passed to another instance (its
    fencing token is no longer current): nothing of the poll is stored; the other instance's
    poll counts."""

    code = "store.lease_lost"


class FeedError(MonitorError):
    """A failure of one feed. Caught per feed and stored on it."""

    code = "feed.error"


class FetchError(FeedError):
    code = "fetch.error"

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class FeedTimeout(FetchError):
    code = "fetch.timeout"


class FeedConnectError(FetchError):
    code = "fetch.connect"


class FeedTooLarge(FetchError):
    code = "fetch.too_large"


class FeedHTTPStatus(FetchError):
    code = "fetch.http_status"


class FeedRedirectLoop(FetchError):
    code = "fetch.redirects"


class FeedRefusedURL(FetchError):
    code = "fetch.refused_url"


class ParseError(FeedError):
    code = "parse.error"


class DeliveryError(MonitorError):
    """One alert could not be delivered on one channel."""

    code = "delivery.error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryRetryable(DeliveryError):
    code = "delivery.retry"


class DeliveryPermanent(DeliveryError):
    code = "delivery.permanent"


class ChannelGone(DeliveryError):
    code = "delivery.gone"
