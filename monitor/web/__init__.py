"""The web desk: server-rendered pages, their JSON twins under ``/api/v1/``, Atom feeds of the
stories, Prometheus metrics and health checks, over the same store read models as the CLI.

A thin shell, laid out as Miniflux's web UI is:

* ``routes.py``: the one table of routes;
* a module per page family (``dashboard``, ``storylines``, ``stories``, ``feeds``, ``alerts``,
  ``ops``), each handler reading the request, asking the store, rendering one template
  (``templates/``) or its JSON twin;
* ``security.py``: the cross-cutting rules, once, as middleware (who may write, CSRF, headers);
  ``login.py`` its page; ``forms.py`` the reading of posted forms;
* ``atom.py``: Atom feeds built with ``xml.etree``; ``render.py``: templates and filters;
* ``server.py``: uvicorn, alone (``monitor web``) or in a thread of ``monitor run``.

htmx (``static/htmx.min.js``, vendored: no CDN, it works offline) only makes the pages nicer;
every page and button works without JavaScript.
"""

from __future__ import annotations

from .app import create_app
from .desk import Desk

__all__ = ["Desk", "create_app"]
