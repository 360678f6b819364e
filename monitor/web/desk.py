"""What every handler needs, in one object on ``app.state.desk``."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import jinja2
from starlette.requests import Request

from ..config import MonitorConfig
from ..store import Store

if TYPE_CHECKING:
    from ..learn import Model
    from ..match import Matcher


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
    _deciders: tuple[Matcher, dict[str, Model]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def deciders(self) -> tuple[Matcher, dict[str, Model]]:
        """The storylines' rules and their model files, loaded once (for the review queue's
        scores; models trained from the desk's examples are the daemon's, not loaded here)."""
        with self._lock:
            if self._deciders is None:
                from ..deciders import shipped_models
                from ..match import Matcher

                self._deciders = (Matcher(self.config.storylines), shipped_models(self.config))
            return self._deciders

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
