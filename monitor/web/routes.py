"""The one table of routes: every page, its JSON twin, every action, and the operations'
endpoints. A page family's handlers live in a module of their own."""

from __future__ import annotations

from importlib import resources

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import alerts, atom, dashboard, feeds, login, ops, review, stories, storylines

STATIC = str(resources.files("monitor.web") / "static")
POST = ["POST"]

ROUTES: list[BaseRoute] = [
    # pages
    Route("/", dashboard.index),
    Route("/storylines/{storyline}.atom", atom.storyline_stories),
    Route("/storylines/{storyline}", storylines.storyline_page),
    Route("/stories.atom", atom.all_stories),
    Route("/stories/{story}", stories.story_page),
    Route("/feeds", feeds.feeds_page),
    Route("/review/{storyline}", review.review_page),
    Route("/alerts", alerts.alerts_page),
    Route("/login", login.login_form),
    # actions (writes: the token, and the CSRF token with a session; see security.py)
    Route("/login", login.login, methods=POST),
    Route("/logout", login.logout, methods=POST),
    Route("/stories/{story}/verdict", stories.post_verdict, methods=POST),
    Route("/review/{storyline}", review.post_review, methods=POST),
    Route("/alerts/{alert}/retry", alerts.retry, methods=POST),
    Route("/channels/{channel}/enable", alerts.enable, methods=POST),
    # the JSON twins
    Route("/api/v1/storylines", dashboard.api_storylines),
    Route("/api/v1/storylines/{storyline}", storylines.api_storyline),
    Route("/api/v1/stories/{story}", stories.api_story),
    Route("/api/v1/stories/{story}/verdicts", stories.api_post_verdict, methods=POST),
    Route("/api/v1/review/{storyline}", review.api_review),
    Route("/api/v1/feeds", feeds.api_feeds),
    Route("/api/v1/alerts", alerts.api_alerts),
    Route("/api/v1/alerts/{alert}/retry", alerts.api_retry, methods=POST),
    Route("/api/v1/channels/{channel}/enable", alerts.api_enable, methods=POST),
    # operations
    Route("/metrics", ops.metrics),
    Route("/healthz", ops.healthz),
    Route("/readyz", ops.readyz),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]
