"""What people read of an alert: an outbox ``Alert`` in, strings out.

In: an ``Alert`` whose ``payload`` is final (a match, a story update, a digest, a feed down or
recovered; the bodies of earlier releases too). Out: ``subject_of`` (a subject, a title),
``text_part`` (the text/plain body; Apprise's body too), ``html_part`` (the HTML body: every
value escaped, only http(s) links), ``console_line`` (the console's line); ``one_line`` makes
any value safe for a header or a terminal; ``alert_kind`` what an alert is (its payload's type,
as the subject and Apprise's notice type read it).

Pure: no I/O. The underscored helpers are this module's own.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..models import Alert
from ..payload import DIGEST, FEED_DOWN, FEED_RECOVERED, STORY_UPDATED

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(value: Any, limit: int | None = None) -> str:
    """A string safe for a header or a terminal: control characters (CR, LF, ESC...) become spaces."""
    text = "" if value is None else str(value)
    text = _CONTROL.sub(" ", text).strip()
    text = re.sub(r" {2,}", " ", text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _http_link(url: Any) -> str | None:
    """``url`` if it is an absolute http(s) URL, else ``None`` (never render javascript: etc.)."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if _CONTROL.search(url) or " " in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def _published(value: Any) -> str:
    """``2026-11-26 06:58 UTC`` from an ISO 8601 string; the raw text when unparseable."""
    if not value:
        return ""
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return one_line(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _score(value: Any) -> str:
    """Every score one way: 0-100 with one decimal (93.3, 100.0)."""
    try:
        return f"{float(value):.1f}"
    except (TypeError, ValueError):
        return one_line(value)


def _data(alert: Alert) -> dict[str, Any]:
    data = alert.payload.get("data") if isinstance(alert.payload, dict) else None
    return data if isinstance(data, dict) else {}


def alert_kind(alert: Alert) -> str:
    kind = alert.payload.get("type") if isinstance(alert.payload, dict) else None
    if isinstance(kind, str) and kind:
        return kind
    return alert.kind  # the store writes the same type into the row


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _listed(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The storylines an alert is for (``data.storylines``); a body of an earlier release has
    one ``data.storyline``, with its score and terms beside it in ``data``."""
    listed = [s for s in data.get("storylines") or () if isinstance(s, dict)]
    if listed:
        return listed
    return [{**_dict(data.get("storyline")), "score": data.get("score"),
             "decided_by": data.get("decided_by"), "words": data.get("words"),
             "matched_terms": data.get("matched_terms")}]


def _reasons(data: Mapping[str, Any], alert: Alert) -> list[str]:
    """Per storyline: who decided, the score, the words that weighed most, each once:
    ``ceasefire-talks: model, score 98.0: holds, truce``. Bodies of earlier releases (no
    ``decided_by``) read as the rules' decision with their matched terms."""
    reasons = []
    for storyline in _listed(data):
        words = [w for w in storyline.get("words") or () if isinstance(w, str)]
        if not words:
            words = [str(t.get("found")) for t in storyline.get("matched_terms") or ()
                     if isinstance(t, dict)]
        unique = list(dict.fromkeys(one_line(w) for w in words))
        label = one_line(storyline.get("id") or alert.storyline_id or "?")
        who = one_line(storyline.get("decided_by") or "rules")
        reasons.append(f"{label}: {who}, score {_score(storyline.get('score'))}"
                       + (f": {', '.join(unique)}" if unique else ""))
    return reasons


def _storylines(data: Mapping[str, Any], alert: Alert, key: str = "name",
                missing: str = "alert") -> str:
    """Every storyline the alert is for (``_listed``), by ``key`` (name or id), joined by " + "."""
    other = "id" if key == "name" else "name"
    labels = [one_line(s.get(key) or s.get(other) or "") for s in _listed(data)]
    return " + ".join(label for label in labels if label) or one_line(alert.storyline_id or missing)


def _update_line(data: Mapping[str, Any]) -> str:
    return f"now reported by {one_line(data.get('outlets'))} outlets"


def _other_sources(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    item = _dict(data.get("item"))
    others = []
    for source in data.get("sources") or ():
        if not isinstance(source, dict):
            continue
        if source.get("link") and source.get("link") == item.get("link"):
            continue  # the item itself
        others.append(source)
    return others


def _groups(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A digest's storyline groups (``payload.digest_payload``), each with a list of stories."""
    groups = [g for g in data.get("storylines") or () if isinstance(g, dict)]
    for group in groups:
        group["stories"] = [s for s in group.get("stories") or () if isinstance(s, dict)]
    return groups


def _digest_lines(data: Mapping[str, Any]) -> list[str]:
    """A digest as readable text: per storyline, its stories newest first, each with its
    headline, outlets and link (email, Apprise, console)."""
    lines = [f"{one_line(data.get('count'))} stories since {_published(data.get('since'))}:"]
    for group in _groups(data):
        storyline = _dict(group.get("storyline"))
        lines.extend(["", f"{one_line(storyline.get('name') or storyline.get('id') or 'Other')}:"])
        for story in group["stories"]:
            mark = " (update)" if story.get("update") else ""
            lines.append(f"- {one_line(story.get('headline')) or '(no title)'}{mark}")
            outlets = ", ".join(one_line(o) for o in story.get("outlets") or ())
            when = _published(story.get("published"))
            lines.append("  " + " — ".join(p for p in (outlets, when) if p))
            if story.get("link"):
                lines.append(f"  {one_line(story.get('link'))}")
    notices = [f for f in data.get("feeds") or () if isinstance(f, dict)]
    if notices:
        lines.extend(["", "Feeds:"])
        for notice in notices:
            state = "down" if notice.get("type") == FEED_DOWN else "recovered"
            error = f": {one_line(notice.get('last_error'), 200)}" if notice.get("last_error") else ""
            lines.append(f"- {one_line(notice.get('name'))} {state} "
                         f"({_published(notice.get('at'))}){error}")
    return lines


def _digest_html(data: Mapping[str, Any]) -> list[str]:
    e = html.escape
    rows = [f"<p>{e(one_line(data.get('count')))} stories since "
            f"{e(_published(data.get('since')))}</p>"]
    for group in _groups(data):
        storyline = _dict(group.get("storyline"))
        rows.append(f"<h2>{e(str(storyline.get('name') or storyline.get('id') or 'Other'))}</h2><ul>")
        for story in group["stories"]:
            outlets = ", ".join(str(o) for o in story.get("outlets") or ())
            mark = " (update)" if story.get("update") else ""
            rows.append(f"<li>{_a(story.get('link'), story.get('headline') or '(no title)')}"
                        f"{e(mark)}<br>{e(outlets)} {e(_published(story.get('published')))}</li>")
        rows.append("</ul>")
    notices = [f for f in data.get("feeds") or () if isinstance(f, dict)]
    if notices:
        rows.append("<h2>Feeds</h2><ul>")
        for notice in notices:
            state = "down" if notice.get("type") == FEED_DOWN else "recovered"
            error = f": {e(str(notice.get('last_error')))}" if notice.get("last_error") else ""
            rows.append(f"<li>{e(str(notice.get('name') or '?'))} {state} "
                        f"({e(_published(notice.get('at')))}){error}</li>")
        rows.append("</ul>")
    return rows


def subject_of(alert: Alert) -> str:
    """``[<storyline name>] <headline>``, ``[feed down] <feed name>`` or ``[feed recovered] <name>``."""
    data = _data(alert)
    kind = alert_kind(alert)
    if kind == DIGEST:
        names = [one_line(_dict(g.get("storyline")).get("name")) for g in _groups(data)]
        feeds = len(data.get("feeds") or ())
        notices = f"; {feeds} feed notice(s)" if feeds else ""
        return one_line(f"[digest] {one_line(data.get('count'))} stories{notices}: "
                         f"{', '.join(n for n in names if n)}", 250)
    if kind in (FEED_DOWN, FEED_RECOVERED):
        feed = _dict(data.get("feed"))
        label = "feed down" if kind == FEED_DOWN else "feed recovered"
        return one_line(f"[{label}] {feed.get('name') or feed.get('url') or '?'}", 250)
    item = _dict(data.get("item"))
    title = one_line(item.get("title")) or "(no title)"
    if kind == STORY_UPDATED:
        return one_line(f"[{_storylines(data, alert)}] {_update_line(data)}: {title}", 250)
    return one_line(f"[{_storylines(data, alert)}] {title}", 250)


def text_part(alert: Alert) -> str:
    data = _data(alert)
    kind = alert_kind(alert)
    lines: list[str] = []
    if kind == DIGEST:
        lines.extend(_digest_lines(data))
    elif kind in (FEED_DOWN, FEED_RECOVERED):
        feed = _dict(data.get("feed"))
        state = "is failing" if kind == FEED_DOWN else "works again"
        lines.append(f"The feed {feed.get('name') or '?'} {state}.")
        lines.append("")
        lines.append(f"URL: {feed.get('url') or ''}")
        if kind == FEED_DOWN:
            lines.append(f"Consecutive errors: {data.get('consecutive_errors', '?')}")
            if data.get("last_error"):
                lines.append(f"Last error: {data.get('last_error')}")
    else:
        item = _dict(data.get("item"))
        if kind == STORY_UPDATED:
            lines.extend([f"This story is {_update_line(data)}. The latest report:", ""])
        lines.append(str(item.get("title") or "(no title)"))
        lines.append("")
        if item.get("link"):
            lines.append(f"Link: {item.get('link')}")
        source = item.get("source") or ""
        if source:
            lines.append(f"Source: {source}")
        if item.get("published"):
            lines.append(f"Published: {_published(item.get('published'))}")
        lines.append(f"Storyline: {_storylines(data, alert)}")
        if kind != STORY_UPDATED:
            lines.extend(f"Why: {reason}" for reason in _reasons(data, alert))
        if item.get("summary"):
            lines.extend(["", str(item.get("summary"))])
        others = _other_sources(data)
        if others:
            lines.extend(["", "Also reported by:"])
            for other in others:
                link = f" <{other.get('link')}>" if other.get("link") else ""
                lines.append(f"- {other.get('source') or '?'}: {other.get('title') or ''}{link}")
    lines.extend(["", "-- ", f"ceasefire-monitor alert {alert.uid}"])
    return "\n".join(lines) + "\n"


def _a(url: Any, text: Any) -> str:
    """An escaped link when ``url`` is http(s); otherwise the escaped text and the URL as text."""
    label = html.escape(str(text if text not in (None, "") else url or ""))
    link = _http_link(url)
    if link:
        return f'<a href="{html.escape(link, quote=True)}">{label}</a>'
    if url and str(url) != str(text):
        return f"{label} ({html.escape(str(url))})"
    return label


def html_part(alert: Alert) -> str:
    data = _data(alert)
    kind = alert_kind(alert)
    e = html.escape
    rows: list[str] = []
    if kind == DIGEST:
        rows.extend(_digest_html(data))
    elif kind in (FEED_DOWN, FEED_RECOVERED):
        feed = _dict(data.get("feed"))
        state = "is failing" if kind == FEED_DOWN else "works again"
        rows.append(f"<p>The feed <b>{e(str(feed.get('name') or '?'))}</b> {state}.</p><ul>")
        rows.append(f"<li>URL: {_a(feed.get('url'), feed.get('url'))}</li>")
        if kind == FEED_DOWN:
            rows.append(f"<li>Consecutive errors: {e(str(data.get('consecutive_errors', '?')))}</li>")
            if data.get("last_error"):
                rows.append(f"<li>Last error: {e(str(data.get('last_error')))}</li>")
        rows.append("</ul>")
    else:
        item = _dict(data.get("item"))
        if kind == STORY_UPDATED:
            rows.append(f"<p>This story is {e(_update_line(data))}. The latest report:</p>")
        rows.append(f"<h2>{_a(item.get('link'), item.get('title') or '(no title)')}</h2><ul>")
        if item.get("source"):
            rows.append(f"<li>Source: {e(str(item.get('source')))}</li>")
        if item.get("published"):
            rows.append(f"<li>Published: {e(_published(item.get('published')))}</li>")
        rows.append(f"<li>Storyline: {e(_storylines(data, alert))}</li>")
        if kind != STORY_UPDATED:
            rows.extend(f"<li>Why: {e(reason)}</li>" for reason in _reasons(data, alert))
        rows.append("</ul>")
        if item.get("summary"):
            rows.append(f"<p>{e(str(item.get('summary')))}</p>")
        others = _other_sources(data)
        if others:
            rows.append("<p>Also reported by:</p><ul>")
            for other in others:
                rows.append(f"<li>{e(str(other.get('source') or '?'))}: "
                            f"{_a(other.get('link'), other.get('title') or other.get('link'))}</li>")
            rows.append("</ul>")
    rows.append(f'<p style="color:#777;font-size:small">ceasefire-monitor alert {e(alert.uid)}</p>')
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n"
            + "\n".join(rows) + "\n</body></html>\n")


def console_line(alert: Alert) -> str:
    """One line, e.g. ``ALERT [cairo-talks] Headline — Al Jazeera 2026-11-26 06:58 UTC
    https://... (score 96: cairo~Cairo, truce~truce)``. Control characters are removed.
    """
    data = _data(alert)
    kind = alert_kind(alert)
    if kind == DIGEST:  # several lines: a digest is a list of stories
        lines = _digest_lines(data)
        return f"DIGEST {one_line(alert.channel)}: " + "\n  ".join(lines)
    if kind in (FEED_DOWN, FEED_RECOVERED):
        feed = _dict(data.get("feed"))
        if kind == FEED_DOWN:
            line = (f"FEED DOWN [{one_line(feed.get('name'))}] {one_line(feed.get('url'))} "
                    f"— {one_line(data.get('consecutive_errors'))} consecutive errors")
            if data.get("last_error"):
                line += f": {one_line(data.get('last_error'), 200)}"
            return line
        return f"FEED RECOVERED [{one_line(feed.get('name'))}] {one_line(feed.get('url'))}"
    item = _dict(data.get("item"))
    label = _storylines(data, alert, key="id", missing="?")
    if kind == STORY_UPDATED:
        return (f"UPDATE [{label}] story {one_line(data.get('story_id'))} {_update_line(data)}: "
                f"{one_line(item.get('title')) or '(no title)'}")
    parts = [f"ALERT [{label}] {one_line(item.get('title')) or '(no title)'}"]
    where = " ".join(p for p in (one_line(item.get("source")), _published(item.get("published"))) if p)
    if where:
        parts.append(f"— {where}")
    if item.get("link"):
        parts.append(one_line(item.get("link")))
    parts.append(f"({'; '.join(_reasons(data, alert))})")
    return " ".join(parts)
