"""Alert bodies: what a webhook receives, and what email, chat and console render.

In: stored rows (item, storyline, match hits, story sources, feed health).
Out: a JSON-ready dict ``{"type", "timestamp", "data"}``. Pure: no I/O.

The body is built once, when the outbox row is written, and stored with it, so every
retry of one alert sends the same bytes under the same ``webhook-id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

MATCH = "storyline.match"
STORY_UPDATED = "story.updated"
FEED_DOWN = "feed.down"
FEED_RECOVERED = "feed.recovered"


def _item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": item["title"],
        "link": item["url"],
        "summary": item["summary"],
        "published": item["published"],
        "source": item["source"],
        "feed_url": item["feed_url"],
    }


def _terms(hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The hits, one entry per word found (terms that found the same word are one entry:
    "hostage / hostages" → 'hostages'), scores to one decimal."""
    by_word: dict[str, dict[str, Any]] = {}
    for hit in hits:
        entry = by_word.get(hit["found"].lower())
        if entry is None:
            by_word[hit["found"].lower()] = {"term": hit["term"], "found": hit["found"],
                                             "score": round(hit["score"], 1)}
        else:
            if hit["term"] not in entry["term"].split(" / "):
                entry["term"] += " / " + hit["term"]
            entry["score"] = max(entry["score"], round(hit["score"], 1))
    return list(by_word.values())


def _why(storyline: dict[str, Any]) -> dict[str, Any]:
    """Who decided (``rules``, ``model`` or ``refines <id>``) and the words that weighed most,
    each once: a model's evidence, else the words the rules found."""
    terms = _terms(storyline["hits"])
    words = list(storyline.get("evidence") or ()) or [t["found"] for t in terms]
    return {"decided_by": storyline.get("decided_by", "rules"), "words": words}


def match_payload(*, timestamp: datetime, item: dict[str, Any], storylines: list[dict[str, Any]],
                  story_id: int, sources: list[dict[str, Any]]) -> dict[str, Any]:
    """The first report of a story on a channel. ``storylines``: every storyline of the item
    the channel takes (``id``, ``name``, ``score``, ``hits``), the first also as ``storyline``,
    ``score`` and ``matched_terms`` (the body of earlier releases)."""
    first = storylines[0]
    return {
        "type": MATCH,
        "timestamp": timestamp.isoformat(),
        "data": {
            "storyline": {"id": first["id"], "name": first["name"]},
            "storylines": [{"id": s["id"], "name": s["name"], "score": round(s["score"], 1), **_why(s),
                            "matched_terms": _terms(s["hits"])} for s in storylines],
            "item": _item(item),
            "score": round(first["score"], 1),
            **_why(first),
            "matched_terms": _terms(first["hits"]),
            "story_id": story_id,
            "sources": sources,
        },
    }


def update_payload(*, timestamp: datetime, story_id: int, outlets: int, item: dict[str, Any],
                   storylines: list[dict[str, str]], sources: list[dict[str, Any]]) -> dict[str, Any]:
    """A story that alerted has reached ``outlets`` outlets; ``item`` is the report that
    brought it there."""
    return {
        "type": STORY_UPDATED,
        "timestamp": timestamp.isoformat(),
        "data": {
            "story_id": story_id,
            "outlets": outlets,
            "storyline": storylines[0] if storylines else None,
            "storylines": storylines,
            "item": _item(item),
            "sources": sources,
        },
    }


def feed_payload(*, kind: str, timestamp: datetime, feed_name: str, feed_url: str,
                 consecutive_errors: int, last_error: str | None) -> dict[str, Any]:
    return {
        "type": kind,
        "timestamp": timestamp.isoformat(),
        "data": {
            "feed": {"name": feed_name, "url": feed_url},
            "consecutive_errors": consecutive_errors,
            "last_error": last_error,
        },
    }


DIGEST = "digest"


def digest_payload(*, timestamp: datetime, channel: str, alerts: list[tuple[str, dict[str, Any]]],
                   sources: dict[int, list[dict[str, Any]]], since: datetime) -> dict[str, Any]:
    """One message for the alerts a channel held (``alerts``: their kinds and bodies, oldest
    first): the stories grouped by storyline (a story under the first storyline it alerted for,
    so never twice), the groups and their stories newest first; each story with its headline,
    link, outlets (``sources``: as they are now) and whether it is an update of a story already
    told. ``count`` stories in all, held since ``since``; ``feeds``: the feed health notices
    held (feed down, recovered), oldest first."""
    stories: dict[int, dict[str, Any]] = {}
    storyline_of: dict[int, dict[str, Any]] = {}
    feeds: list[dict[str, Any]] = []
    for kind, body in alerts:
        data = body.get("data") or {}
        if kind in (FEED_DOWN, FEED_RECOVERED):
            feed = data.get("feed") or {}
            feeds.append({"type": kind, "name": feed.get("name"), "url": feed.get("url"),
                          "at": body.get("timestamp"), "last_error": data.get("last_error")})
            continue
        story_id = data.get("story_id")
        if not isinstance(story_id, int) or story_id in stories:
            continue  # a held update of a story this digest tells already
        item = data.get("item") or {}
        told = sources.get(story_id) or data.get("sources") or []
        stories[story_id] = {
            "story_id": story_id,
            "headline": item.get("title"),
            "link": item.get("link"),
            "source": item.get("source"),
            "published": item.get("published"),
            "summary": item.get("summary"),
            "score": data.get("score"),
            "storylines": [s.get("id") for s in data.get("storylines") or [] if isinstance(s, dict)],
            "outlets": sorted({s.get("source") for s in told if s.get("source")}),
            "sources": told,
            "update": kind == STORY_UPDATED,
        }
        storyline_of[story_id] = data.get("storyline") or {"id": None, "name": "Other"}
    groups: dict[Any, dict[str, Any]] = {}
    for story_id, story in stories.items():
        storyline = storyline_of[story_id]
        group = groups.setdefault(storyline.get("id"), {"storyline": storyline, "stories": []})
        group["stories"].append(story)
    for group in groups.values():
        group["stories"].sort(key=lambda s: (str(s["published"] or ""), s["story_id"]), reverse=True)
    ordered = sorted(groups.values(), key=lambda g: (str(g["stories"][0]["published"] or ""),
                                                     g["stories"][0]["story_id"]), reverse=True)
    return {
        "type": DIGEST,
        "timestamp": timestamp.isoformat(),
        "data": {"channel": channel, "since": since.isoformat(), "until": timestamp.isoformat(),
                 "count": len(stories), "storylines": ordered, "feeds": feeds},
    }
