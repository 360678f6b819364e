"""What every handler needs, in one object on ``app.state.desk``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import jinja2
from starlette.requests import Request

from ..config import MonitorConfig
from ..store import Store


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Desk:
    """What every handler needs: the config, the store, the templates, the signing key (derived
    from ``[web] token``; None: no token, the desk is read-only) and a clock."""

    config: MonitorConfig
    store: Store
    templates: jinja2.Environment
    clock: Callable[[], datetime] = utcnow
    started: datetime = field(default_factory=utcnow)

    @property
    def token(self) -> str | None:
        return self.config.web.token

    @property
    def key(self) -> bytes | None:
        if not self.token:
            return None
        return hashlib.sha256(b"ceasefire-monitor web desk\0" + self.token.encode()).digest()


def desk_of(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk
