"""The store's read models: what the CLI and the web desk show (matches, stories, the outbox,
the desk's examples, figures for the metrics page).

In: the questions of ``monitor matches`` / ``stories`` / ``alerts`` and the web pages. Out:
rows as dicts. The SQL here runs unchanged on both engines; where they differ (a list
aggregate, case-insensitive LIKE, the seconds between two stored times, full-text search)
the backend says how (``Dialect`` attributes, ``search_matches``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ..payload import DIGEST, MATCH
from .base import Queries
from .values import iso


class ReadModels(Queries):
    """The read side of ``Store``: every method is one or a few SELECTs through ``_read``."""

    LIST_AGG = "group_concat"  # (text, separator) -> the values joined
    LIKE = "LIKE"  # case-insensitive for ASCII in SQLite; PostgreSQL says ILIKE

    def _seconds_between(self, later: str, earlier: str) -> str:
        """SQL for the seconds from ``earlier`` to ``later`` (two stored ISO times)."""
        raise NotImplementedError

    # -- read models for the CLI

    def channels(self) -> list[dict[str, Any]]:
        return self._read("SELECT * FROM channels ORDER BY name")

    def alert_counts(self) -> dict[str, int]:
        """Alerts in the outbox by status (pending, sent, failed)."""
        return {r["status"]: r["n"] for r in self._read(
            "SELECT status, COUNT(*) AS n FROM alerts GROUP BY status")}

    def alerts(self, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        rows = self._read(
            f"SELECT id, uid, channel, kind, storyline_id, story_id, status, attempts, last_error, "
            f"created_at, last_attempt_at, sent_at, failed_at, queued_at, payload FROM alerts {where} "
            f"ORDER BY id DESC LIMIT ?", [*params, limit])
        for row in rows:
            payload = json.loads(row.pop("payload"))
            data = payload.get("data", {})
            row["title"] = data.get("item", {}).get("title") or data.get("feed", {}).get("name") or (
                f"digest of {data.get('count')} stories" if payload.get("type") == DIGEST else None)
        return rows

    def matches(self, *, storyline: str | None = None, limit: int = 20, since: datetime | None = None,
                words: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Matches, newest item first: of ``storyline``, of items published at or after ``since``,
        whose title or summary holds every one of ``words`` (case-insensitive)."""
        clauses, params = match_filters(storyline, since, words, like=self.LIKE)
        return self._matches_where(clauses, params, limit)

    def _matches_where(self, clauses: Sequence[str], params: Sequence[Any],
                       limit: int) -> list[dict[str, Any]]:
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(
            f"SELECT m.storyline_id AS storyline, i.title, i.url AS link, i.source, i.published, "
            f"m.score, m.story_id, m.hits, m.created_at, i.id AS item_id, "
            f"EXISTS (SELECT 1 FROM alerts a WHERE a.item_id = i.id AND a.kind = '{MATCH}') "
            f"AS alerted, (SELECT {self.LIST_AGG}(o.storyline_id, ' ') FROM matches o "
            f"WHERE o.item_id = i.id) AS storylines "
            f"FROM matches m JOIN items i ON i.id = m.item_id {where} "
            f"ORDER BY i.published DESC, i.id DESC LIMIT ?", [*params, limit])
        for row in rows:
            row["alerted"] = bool(row["alerted"])
            row["storylines"] = sorted(row["storylines"].split())  # every storyline of the item
            row["matched_terms"] = json.loads(row.pop("hits"))
        return rows

    def stories(self, *, since: datetime, storyline: str | None = None,
                limit: int = 50) -> list[dict[str, Any]]:
        """The stories of matched items first reported since ``since``, newest first: their
        items (with why each joined), outlets, storylines, and where they alerted."""
        where = ""
        params: list[Any] = [since.timestamp()]
        if storyline:
            where = " AND EXISTS (SELECT 1 FROM matches m WHERE m.story_id = s.id AND m.storyline_id = ?)"
            params.append(storyline)
        stories = self._read(
            f"SELECT s.id AS story_id, s.published, s.profile FROM stories s WHERE s.profile IS NOT NULL "
            f"AND s.published >= ?{where} ORDER BY s.published DESC, s.id DESC LIMIT ?",
            [*params, limit])
        if not stories:
            return []
        ids = [story["story_id"] for story in stories]
        marks = ",".join("?" * len(ids))
        items: dict[int, list[dict[str, Any]]] = {}
        for row in self._read(
                f"SELECT i.story_id, i.id AS item_id, i.source, i.title, i.url AS link, i.published, "
                f"i.joined, (SELECT {self.LIST_AGG}(m.storyline_id, ' ') FROM matches m "
                f"WHERE m.item_id = i.id) AS storylines FROM items i WHERE i.story_id IN ({marks}) "
                f"ORDER BY i.published, i.id", ids):
            why = json.loads(row.pop("joined")) if row["joined"] else None
            row["storylines"] = sorted((row["storylines"] or "").split())
            row["joined"] = why if why and why.get("by") != "new" else None
            row["alerts"] = not (why and why.get("alerts") is False)
            items.setdefault(row.pop("story_id"), []).append(row)
        alerts: dict[int, list[dict[str, Any]]] = {}
        for row in self._read(
                f"SELECT story_id, channel, kind, status, item_id, created_at, sent_at FROM alerts "
                f"WHERE story_id IN ({marks}) ORDER BY id", ids):
            alerts.setdefault(row.pop("story_id"), []).append(row)
        out = []
        for story in stories:
            story_items = items.get(story["story_id"], [])
            if not story_items:
                continue
            first = min(story_items, key=lambda i: (i["published"], i["item_id"]))
            out.append({
                "story_id": story["story_id"], "first_seen": first["published"],
                "headline": first["title"], "outlets": len({i["source"] for i in story_items}),
                "storylines": sorted({s for i in story_items for s in i["storylines"]}),
                # what its first report says happened (released, agreed, denied...): a report of
                # another stage is another development
                "stage": json.loads(story["profile"]).get("stage"),
                "alerts": first["alerts"],
                "alerted": [a for a in alerts.get(story["story_id"], []) if a["kind"] == MATCH],
                "updates": [a for a in alerts.get(story["story_id"], []) if a["kind"] != MATCH],
                "items": story_items})
        return out

    def storyline_stats(self, *, now: datetime) -> dict[str, dict[str, Any]]:
        rows = self._read(
            "SELECT storyline_id, COUNT(*) AS total, "
            "SUM(CASE WHEN created_at >= ? THEN 1 ELSE 0 END) AS last_24h, MAX(created_at) AS last_match "
            "FROM matches GROUP BY storyline_id", [iso(now - timedelta(hours=24))])
        return {r["storyline_id"]: {"total": r["total"], "last_24h": r["last_24h"] or 0,
                                    "last_match": r["last_match"]} for r in rows}

    def counts(self) -> dict[str, int]:
        return {table: self._read(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]
                for table in ("items", "stories", "matches", "alerts", "entries")}

    # -- read models for the web desk

    def storyline_activity(self, *, since: datetime) -> dict[str, list[dict[str, Any]]]:
        """What each storyline matched that was published since ``since``: its matches
        (storyline, published) and its stories (storyline, story_id, first: when the story's
        first item of the storyline was published)."""
        matches = self._read("SELECT m.storyline_id AS storyline, i.published FROM matches m "
                             "JOIN items i ON i.id = m.item_id WHERE i.published >= ? "
                             "ORDER BY i.published", [iso(since)])
        stories = self._read("SELECT m.storyline_id AS storyline, m.story_id, MIN(i.published) AS first "
                             "FROM matches m JOIN items i ON i.id = m.item_id "
                             "GROUP BY m.storyline_id, m.story_id HAVING MIN(i.published) >= ? "
                             "ORDER BY first",
                             [iso(since)])
        return {"matches": matches, "stories": stories}

    def story_detail(self, story_id: int) -> dict[str, Any] | None:
        """One story, matched or not: its items oldest first, each with its summary, why it
        joined, its matches (score, terms) and the desk's verdicts; and the story's alerts."""
        items = self._read(
            "SELECT id AS item_id, source, feed_url, title, summary, url AS link, published, "
            "first_seen, joined FROM items WHERE story_id = ? ORDER BY published, id", [story_id])
        if not items:
            return None
        ids = [item["item_id"] for item in items]
        marks = ",".join("?" * len(ids))
        matches: dict[int, list[dict[str, Any]]] = {}
        for row in self._read(f"SELECT item_id, storyline_id AS storyline, score, hits FROM matches "
                              f"WHERE item_id IN ({marks}) ORDER BY storyline_id", ids):
            row["matched_terms"] = json.loads(row.pop("hits"))
            matches.setdefault(row.pop("item_id"), []).append(row)
        verdicts: dict[int, dict[str, str]] = {}
        for row in self._read(f"SELECT item_id, storyline_id, verdict FROM feedback WHERE item_id "
                              f"IN ({marks}) AND verdict IS NOT NULL", ids):
            verdicts.setdefault(row["item_id"], {})[row["storyline_id"]] = row["verdict"]
        for item in items:
            why = json.loads(item.pop("joined")) if item["joined"] else None
            item["joined"] = why if why and why.get("by") != "new" else None
            item["matches"] = matches.get(item["item_id"], [])
            item["verdicts"] = verdicts.get(item["item_id"], {})
        alerts = self._read("SELECT id, channel, kind, status, item_id, created_at, sent_at FROM alerts "
                            "WHERE story_id = ? ORDER BY id", [story_id])
        return {"story_id": story_id, "headline": items[0]["title"], "first_seen": items[0]["published"],
                "outlets": len({item["source"] for item in items}),
                "storylines": sorted({m["storyline"] for item in items for m in item["matches"]}),
                "items": items, "alerts": alerts}

    def storyline_totals(self) -> dict[str, dict[str, int]]:
        """Per storyline: matches and stories stored."""
        rows = self._read("SELECT storyline_id, COUNT(*) AS matches, COUNT(DISTINCT story_id) AS stories "
                          "FROM matches GROUP BY storyline_id")
        return {r["storyline_id"]: {"matches": r["matches"], "stories": r["stories"]} for r in rows}

    def delivery_latencies(self, bounds: Sequence[float]) -> dict[str, Any]:
        """Of the match alerts sent: how many took at most each of ``bounds`` seconds from the
        item's first sight to the receiver's acknowledgement (cumulative), their count and sum."""
        latency = self._seconds_between("a.sent_at", "i.first_seen")
        buckets = ", ".join(f"SUM(CASE WHEN {latency} <= ? THEN 1 ELSE 0 END) AS b{n}"
                            for n in range(len(bounds)))
        row = self._read(f"SELECT COUNT(*) AS count, COALESCE(SUM({latency}), 0) AS total, {buckets} "
                         f"FROM alerts a JOIN items i ON i.id = a.item_id WHERE a.status = 'sent' "
                         f"AND a.kind = '{MATCH}'", list(bounds))[0]
        return {"count": row["count"], "sum": row["total"],
                "buckets": [row[f"b{n}"] or 0 for n in range(len(bounds))]}

    def review_candidates(self, storyline: str, *, since: datetime, limit: int) -> list[dict[str, Any]]:
        """Items first seen since ``since``, newest first, on which the desk gave no verdict for
        ``storyline``: each with its text, story, and whether the monitor matched it there."""
        return self._read(
            "SELECT i.id AS item_id, i.title, i.summary, i.source, i.url AS link, i.published, "
            "i.story_id, EXISTS (SELECT 1 FROM matches m WHERE m.item_id = i.id AND "
            "m.storyline_id = :storyline) AS matched FROM items i WHERE i.first_seen >= :since "
            "AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.storyline_id = :storyline AND "
            "f.example_key = 'item:' || i.id) ORDER BY i.first_seen DESC, i.id DESC LIMIT :limit",
            {"storyline": storyline, "since": iso(since), "limit": limit})

    def outbox_summary(self) -> list[dict[str, Any]]:
        """Alerts per channel and status, with the oldest one's time (queued again: from then)."""
        return self._read("SELECT channel, status, COUNT(*) AS count, "
                          "MIN(COALESCE(queued_at, created_at)) AS oldest FROM alerts "
                          "GROUP BY channel, status ORDER BY channel, status")


def match_filters(storyline: str | None, since: datetime | None, words: Sequence[str], *,
                  like: str = "LIKE") -> tuple[list[str], list[Any]]:
    """The WHERE clauses of ``Store.matches``: a word is looked for with LIKE, its wildcards escaped."""
    clauses: list[str] = []
    params: list[Any] = []
    if storyline:
        clauses.append("m.storyline_id = ?")
        params.append(storyline)
    if since is not None:
        clauses.append("i.published >= ?")
        params.append(iso(since))
    for word in words:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(f"(i.title {like} ? ESCAPE '\\' OR i.summary {like} ? ESCAPE '\\')")
        params.extend([pattern, pattern])
    return clauses, params
