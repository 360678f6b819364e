"""Serving the desk with uvicorn: alone (``monitor web``), or in a thread of ``monitor run``
(``[web] listen``), where the daemon keeps SIGINT/SIGTERM and stops the server on its way out."""

from __future__ import annotations

import logging
import signal
import threading

import uvicorn

from ..config import MonitorConfig
from ..errors import ConfigError
from .app import create_app

log = logging.getLogger(__name__)


def server(config: MonitorConfig, listen: str | None = None) -> uvicorn.Server:
    from ..config import split_listen

    host, port = split_listen(listen) if listen else config.web.host_port
    settings = uvicorn.Config(create_app(config), host=host, port=port, log_level="warning",
                              access_log=False, lifespan="on", server_header=False)
    return uvicorn.Server(settings)


def serve(config: MonitorConfig, listen: str | None = None) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn's own handlers, in the main thread), then return:
    a stop asked for is a clean exit (uvicorn raises the signal again once it has shut down, to
    the handlers it found, which here ignore it)."""
    web = server(config, listen)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: None)
    log.info("web desk on http://%s:%d/%s", web.config.host, web.config.port,
             "" if config.web.token else " (read-only: no [web] token)")
    web.run()


class Background:
    """The desk in a thread of this process: ``start`` returns once it listens (or raises)."""

    def __init__(self, config: MonitorConfig) -> None:
        self.server = server(config)
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        waited = 0.0
        while not self.server.started and self.thread.is_alive() and waited < timeout:
            self.thread.join(0.05)
            waited += 0.05
        if not self.server.started:
            self.stop()
            raise ConfigError(f"web.listen: the web desk cannot listen on {self.server.config.host}:"
                               f"{self.server.config.port}")
        log.info("web desk on http://%s:%d/", self.server.config.host, self.server.config.port)

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)
