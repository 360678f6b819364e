"""Review: stored items in, the ones whose verdict would teach a storyline most out, first.

A desk teaches a storyline by judging the monitor's decisions (``monitor feedback``); a verdict
on a decision the monitor was sure of teaches little. This module ranks a storyline's candidates
(items where the rules found a term of its first group: the only ones the learned layer can
move, ``monitor.learn.is_candidate``) by how near their decision is to the cut:

* **disagreements**: the model and the rules decide differently (first);
* **near the threshold**: the model's probability closest to its threshold;
* with the rules deciding (no model, or one that stands aside): **near misses** (some groups
  found, a hit dropped by a context word, a veto) and **weak matches** (matched, but only in the
  summary), by the rules' reading: ``rules_probability``.

``review_queue`` is pure: no I/O. ``review`` reads the candidates from the store and ranks them
with it: the one queue of ``monitor review`` and of the web desk's review page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .deciders import learned_models
from .learn import Model, headline_key, is_candidate
from .match import NON_GROUP_RULES, Explanation, Matcher

if TYPE_CHECKING:
    from .config import MonitorConfig
    from .store import Store

__all__ = ["ReviewItem", "review", "review_queue", "rules_probability"]


@dataclass(frozen=True)
class ReviewItem:
    """One candidate of the queue: what the monitor decides and how near the cut it is."""

    key: str  # the stored item's id
    title: str
    decision: bool  # what the monitor decides now
    probability: float  # the model's, or the rules' reading (``rules_probability``)
    threshold: float
    rules: bool  # what the rules alone decide
    why: str
    margin: float  # distance to the cut; disagreements sort first whatever it is

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.key, "title": self.title,
                "decision": "match" if self.decision else "no match",
                "probability": round(self.probability, 4), "threshold": round(self.threshold, 4),
                "rules": "match" if self.rules else "no match", "why": self.why,
                "margin": round(self.margin, 4)}


def rules_probability(explanation: Explanation) -> float:
    """The rules' decision read as a probability: half the share of the storyline's groups that
    found a term (a title hit counts 1, a summary hit 0.6, a hit dropped by a context word 0.5),
    plus 0.5 when the rules match. A match with every group in the title reads 1.0, one found
    only in the summary 0.8; a miss with one of two groups found in the title 0.25."""
    groups = [g for g in explanation.groups if g.rule not in NON_GROUP_RULES and g.rule != "any"]
    groups = groups or [g for g in explanation.groups if g.rule == "any"]
    if not groups:
        return 1.0 if explanation.matched else 0.0
    found = 0.0
    for group in groups:
        if group.hits:
            found += 1.0 if any(h.field == "title" for h in group.hits) else 0.6
        elif group.discarded:
            found += 0.5
    share = found / len(groups)
    if explanation.vetoes:
        share *= 0.5
    return round(0.5 * share + (0.5 if explanation.matched else 0.0), 4)


def _why(explanation: Explanation, decision: bool, model_decides: bool) -> str:
    if model_decides and decision != explanation.matched:
        return "the model and the rules disagree"
    if model_decides:
        return "near the model's threshold"
    if explanation.matched:
        return "a match of the rules"
    return f"a near miss: {explanation.decision}"


def review_queue(matcher: Matcher, storyline_id: str, items: Iterable[tuple[str, str, str]], *,
                 model: Model | None = None, judged: Iterable[str] = (),
                 limit: int | None = None) -> list[ReviewItem]:
    """The candidates among ``items`` (``(key, title, summary)``, normalised text), borderline
    first: disagreements between ``model`` and the rules, then by the distance of the
    probability to the cut. Items already judged (their key, or the same headline) are left out,
    and of several items with one headline only the first is listed."""
    judged_keys = set(judged)
    seen: set[str] = set()
    if model is not None:
        seen |= set(model.overrides)
    decides = model is not None and not model.stands_aside
    index = next((i for i, s in enumerate(matcher.storylines) if s.id == storyline_id), None)
    if index is None:
        raise KeyError(storyline_id)
    out = []
    for key, title, summary in items:
        if key in judged_keys:
            continue
        explanation = matcher.explain(title, summary)[index]
        if not is_candidate(explanation):
            continue
        head = headline_key(title)
        if head in seen:
            continue
        seen.add(head)
        p, cut = rules_probability(explanation), 0.5
        decision = explanation.matched
        if decides:
            assert model is not None
            learned = model.probability(title, summary, explanation)
            decision = learned >= model.threshold
            if not model.on_rules or decision != explanation.matched:  # else the rules decide
                p, cut = learned, model.threshold
        why = _why(explanation, decision, decides)
        margin = abs(p - cut)
        out.append(ReviewItem(key, title, decision, p, cut, explanation.matched, why, margin))
    out.sort(key=lambda r: (r.decision == r.rules, r.margin, r.key))
    return out[:limit] if limit is not None else out


def review(config: MonitorConfig, store: Store, storyline_id: str, *, limit: int | None = 20,
           scan: int = 2000, since: datetime | None = None, matcher: Matcher | None = None,
           models: dict[str, Model] | None = None) -> list[dict[str, Any]]:
    """The review queue of ``monitor review`` and of the web desk's review page, one query for
    both: of the ``scan`` newest stored items (first seen since ``since``, when given) on which
    the desk gave no verdict for ``storyline_id`` (``Store.review_candidates``), the ``limit``
    (None: all) whose verdict would teach the storyline most (``review_queue``:
    the candidates of its learned layer, disagreements between its model and its rules first,
    then nearest the cut). Each row: the stored item (``item_id``, ``title``, ``summary``,
    ``link``, ``source``, ``published``, ``story_id``), what the monitor decides now
    (``decision``, ``probability``, ``threshold``), what the rules alone decide (``rules``),
    ``why`` and ``margin``. Decided by ``models`` when given, else as the daemon decides (its
    learned layer trained or loaded as at its start)."""
    if matcher is None:
        matcher = Matcher(config.storylines)
    if models is None:
        models = learned_models(config, store, matcher)
    items = store.review_candidates(storyline_id, since=since or _EVER, limit=scan)
    queue = review_queue(matcher, storyline_id, ((str(r["item_id"]), r["title"], r["summary"])
                                                 for r in items),
                         model=models.get(storyline_id), limit=limit)
    by_id = {str(r["item_id"]): r for r in items}
    rows = []
    for entry in queue:
        item = by_id[entry.key]
        rows.append({**entry.to_dict(), "item_id": item["item_id"], "summary": item["summary"],
                     "link": item["link"], "source": item["source"], "published": item["published"],
                     "story_id": item["story_id"]})
    return rows


_EVER = datetime(1970, 1, 1, tzinfo=UTC)  # review: no window, every stored item
