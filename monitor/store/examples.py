"""The desk's examples for the learned layer: verdicts on stored items (``monitor feedback``,
the web desk's buttons), imported label files (``monitor learn``), and the models trained on
them, kept while their examples and rules are unchanged.

In: verdicts and labelled rows. Out: the examples of a storyline, counts, saved models.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .base import Queries
from .values import iso


class Examples(Queries):
    """The examples side of ``Store`` (schema step 0003)."""

    def record_feedback(self, item: str, storyline: str, *, right: bool,
                        now: datetime) -> dict[str, Any]:
        """Record the desk's verdict on the monitor's decision for ``item`` (a stored item id, or
        its link) and ``storyline``: the decision was right or wrong. The label stored is what the
        item truly is: matched and right, or not matched and wrong, is a positive.
        Raises ``KeyError`` when no such item is stored."""

        def operation() -> dict[str, Any]:
            row = None
            if item.isdigit():
                row = self._exec("SELECT id, title, summary FROM items WHERE id = ?",
                                 [int(item)]).fetchone()
            if row is None:
                row = self._exec("SELECT id, title, summary FROM items WHERE url = ? LIMIT 1",
                                 [item]).fetchone()
            if row is None:
                raise KeyError(item)
            item_id, title, summary = row
            matched = self._exec("SELECT 1 FROM matches WHERE item_id = ? AND storyline_id = ?",
                                 [item_id, storyline]).fetchone() is not None
            label = matched == right
            self._exec(
                "INSERT INTO feedback (storyline_id, example_key, item_id, title, summary, label, "
                "verdict, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'desk', ?) "
                "ON CONFLICT (storyline_id, example_key) DO UPDATE SET label = excluded.label, "
                "verdict = excluded.verdict, source = excluded.source, "
                "created_at = excluded.created_at",
                [storyline, f"item:{item_id}", item_id, title, summary, int(label),
                 "right" if right else "wrong", iso(now)])
            return {"item_id": item_id, "title": title, "storyline": storyline, "matched": matched,
                    "verdict": "right" if right else "wrong", "label": label}

        return self._write(operation)

    def import_examples(self, rows: Iterable[tuple[str, str, str, str, bool]], *, source: str,
                        now: datetime) -> int:
        """Store labelled examples ``(key, title, summary, storyline, label)`` from a file; an
        example already stored under the same key and storyline is replaced. Returns the count."""
        values = [(storyline, f"label:{key}", title, summary, int(label), source, iso(now))
                  for key, title, summary, storyline, label in rows]

        def operation() -> int:
            self._exec_many(
                "INSERT INTO feedback (storyline_id, example_key, title, summary, label, source, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (storyline_id, example_key) DO UPDATE SET title = excluded.title, "
                "summary = excluded.summary, label = excluded.label, verdict = NULL, "
                "source = excluded.source, created_at = excluded.created_at", values)
            return len(values)

        return self._write(operation)

    def feedback_examples(self, storyline: str) -> list[tuple[str, str, str, bool]]:
        """The stored examples of a storyline: ``(key, title, summary, label)``, oldest first."""
        rows = self._read("SELECT example_key, title, summary, label FROM feedback "
                          "WHERE storyline_id = ? ORDER BY id", [storyline])
        return [(r["example_key"], r["title"], r["summary"], bool(r["label"])) for r in rows]

    def feedback_counts(self) -> dict[str, dict[str, int]]:
        """Per storyline: examples stored, positives, and how many are desk verdicts."""
        rows = self._read("SELECT storyline_id, COUNT(*) AS examples, SUM(label) AS positives, "
                          "SUM(CASE WHEN source = 'desk' THEN 1 ELSE 0 END) AS desk FROM feedback "
                          "GROUP BY storyline_id")
        return {r["storyline_id"]: {"examples": r["examples"], "positives": r["positives"] or 0,
                                    "desk": r["desk"] or 0} for r in rows}

    def review_items(self, *, limit: int = 2000) -> list[dict[str, Any]]:
        """The newest stored items, for ``monitor review`` to rank: ``item_id``, ``title``,
        ``summary``, ``link``, ``source``, ``published``, newest first."""
        rows = self._read("SELECT id AS item_id, title, summary, url AS link, source, published "
                          "FROM items ORDER BY published DESC, id DESC LIMIT ?", [limit])
        return [dict(r) for r in rows]

    def saved_model(self, storyline: str, fingerprint: str) -> str | None:
        """The JSON of the model last trained for ``storyline`` if it was trained on examples and
        rules with this fingerprint; else None."""
        rows = self._read("SELECT model FROM learned_models WHERE storyline_id = ? AND "
                          "fingerprint = ?", [storyline, fingerprint])
        return rows[0]["model"] if rows else None

    def save_model(self, storyline: str, fingerprint: str, model: str, *, now: datetime) -> None:
        self._write(lambda: self._exec(
            "INSERT INTO learned_models (storyline_id, fingerprint, model, trained_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (storyline_id) DO UPDATE SET "
            "fingerprint = excluded.fingerprint, model = excluded.model, "
            "trained_at = excluded.trained_at", [storyline, fingerprint, model, iso(now)]))
