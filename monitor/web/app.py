"""The ASGI application: a ``MonitorConfig`` (and a ``Store``) in, a Starlette app out."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from starlette.applications import Starlette
from starlette.middleware import Middleware

from ..config import MonitorConfig
from ..store import Store, open_store
from . import render, routes
from .desk import Desk, utcnow
from .security import Security


def create_app(config: MonitorConfig, store: Store | None = None, *,
               clock: Callable[[], datetime] = utcnow) -> Starlette:
    """The desk's app. Without ``store`` it opens its own on ``config.database`` (a connection of
    its own: a slow page never holds the lock the daemon's polls and deliveries take) and closes
    it on shutdown."""
    own = store is None
    desk = Desk(config=config, store=store or open_store(config.database), templates=render.environment(),
                clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if own:
                desk.store.close()

    app = Starlette(routes=routes.ROUTES, middleware=[Middleware(Security, desk=desk)],
                    exception_handlers=render.ERROR_HANDLERS, lifespan=lifespan)
    app.state.desk = desk
    return app
