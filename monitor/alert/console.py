"""The console channel: an ``Alert`` in, its line (``render.console_line``) on a stream out."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from ..errors import DeliveryRetryable
from ..models import Alert
from .render import console_line


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
