"""What the monitor matched and why: ``matches`` (the matched items), ``stories`` (the
developments they form, and why each later report joined one) and ``check`` (how a text is
scored against every storyline).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from .common import (
    Context,
    check_storyline,
    cli,
    emit,
    fails_cleanly,
    json_option,
    pass_context,
    since_datetime,
    table_cell,
    to_the_minute,
)


@cli.command()
@click.option("--storyline", metavar="ID", help="Only this storyline.")
@click.option("--since", metavar="DURATION", callback=since_datetime,
              help="Only items published in the last DURATION (30m, 24h, 7d).")
@click.option("--search", metavar="WORDS", help="Only items whose title or summary has every one of WORDS.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000))
@json_option
@pass_context
@fails_cleanly
def matches(obj: Context, storyline: str | None, since: datetime | None, search: str | None,
            limit: int, as_json: bool) -> None:
    """List recent matches, newest first, with the item id that `monitor feedback` takes.

    Example: monitor matches --since 24h --search "Rafah crossing"
    """
    if storyline is not None:
        check_storyline(obj.config, storyline)
    words = search.split() if search else []
    with obj.store() as store:
        rows = store.matches(storyline=storyline, limit=limit, since=since, words=words)
    if as_json:
        emit(rows, [], True)
        return
    for row in rows:
        row["when"] = to_the_minute(row["published"])
        row["item"] = (table_cell(row["title"], 60) + "\n" + (row["link"] or "(no link)"))
        row["sent"] = "yes" if row["alerted"] else "no"
    emit(rows, ["item_id", "when", "storyline", "score", "sent", "item"], False,
         ["item id", "published (UTC)", "storyline", "score", "alerted", "title / link"], widths={})


@cli.command()
@click.option("--storyline", metavar="ID", help="Only stories with an item of this storyline.")
@click.option("--since", default="24h", show_default=True, callback=since_datetime,
              help="Stories first reported this long ago or later (30s, 5m, 2h, 7d).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@json_option
@pass_context
@fails_cleanly
def stories(obj: Context, storyline: str | None, since: datetime, limit: int, as_json: bool) -> None:
    """List the stories (one per development), newest first: the outlets that reported each,
    where it alerted, and why each later report joined it.

    Example: monitor stories --storyline captive-releases --since 2d
    """
    if storyline is not None:
        check_storyline(obj.config, storyline)
    with obj.store() as store:
        rows = store.stories(since=since, storyline=storyline, limit=limit)
    if as_json:
        emit(rows, [], as_json=True)
        return
    if not rows:
        click.echo("(none)")
        return
    for story in rows:
        where = ", ".join(f"{a['channel']} ({a['status']})" for a in story["alerted"])
        if not where:
            where = "not alerted" if story["alerts"] else "not alerted: no development reported"
        click.echo(f"story {story['story_id']}  {story['first_seen']}  {story['outlets']} outlet(s)  "
                   f"[{', '.join(story['storylines'])}]  stage: {story['stage'] or 'none'}  "
                   f"alerted: {where}")
        click.echo(f"  {story['headline']}")
        for item in story["items"]:
            click.echo(f"    {item['published']}  {item['source']}: {item['title']}  "
                       f"(item {item['item_id']})")
            why = item["joined"]
            if why:
                click.echo(f"      joined: {_why(why)}")
        click.echo("")


def _why(why: dict[str, Any]) -> str:
    if why.get("by") == "copy":
        return "near-duplicate text (syndicated copy)"
    parts = [f"score {why.get('similarity')}: {round(100 * why.get('coverage', 0))} % of its word "
             f"weight in the story"]
    for key, label in (("shared_words", "words"), ("shared_names", "names"),
                       ("shared_counts", "counts")):
        if why.get(key):
            parts.append(f"{label}: {', '.join(why[key])}")
    if why.get("kind") and why["kind"] != "report":
        parts.append(f"as a {why['kind']}")
    return "; ".join(parts)


@cli.command()
@click.argument("text")
@click.option("--summary", default="", help="Summary text, scored as the body of the item.")
@json_option
@pass_context
@fails_cleanly
def check(obj: Context, text: str, summary: str, as_json: bool) -> None:
    """Score a text against every storyline and explain the decision.

    TEXT is scored as a headline; it may hold HTML, which is stripped as the pipeline does.

    Example: monitor check "Hamas delegation in Cairo for truce talks"
    """
    from ..match import Matcher
    from ..normalise import html_to_text

    title, body = html_to_text(text), html_to_text(summary)
    if not title.strip():
        raise click.BadParameter("an empty text has no words to score; give a headline",
                                 param_hint="TEXT")
    matcher = Matcher(obj.config.storylines)
    explanations = matcher.explain(title, body)
    models = {}
    from ..store import may_exist

    if any(s.learned for s in obj.config.storylines) and may_exist(obj.config.database):
        from ..deciders import learned_models  # the models the daemon would use

        with obj.store() as store:
            models = learned_models(obj.config, store, matcher)
    elif any(s.model for s in obj.config.storylines):  # no database: no examples yet
        from ..deciders import shipped_models

        models = shipped_models(obj.config)
    matched: set[str] = set()
    if matcher.refines:  # a refining storyline's decision depends on the others' final ones
        from ..deciders import decider

        matched = {m.storyline_id for m in decider(matcher, models).match(title, body)}
    if as_json:
        out = []
        for e in explanations:
            row = e.to_dict()
            model = models.get(e.storyline_id)
            if model is not None:
                p = model.probability(title, body, e)
                row["learned"] = {"probability": round(p, 4), "threshold": model.threshold,
                                  "matched": p >= model.threshold,
                                  "top_features": [c.to_dict() for c in model.explain(title, body, e)]}
            if (refinement := matcher.refinement(e, matched)) is not None:
                row["refines"] = {"storyline": matcher.refines[e.storyline_id],
                                  "matched": e.storyline_id in matched, "why": refinement[1]}
            out.append(row)
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        blocks = []
        for e in explanations:
            model = models.get(e.storyline_id)
            line = matcher.refinement_line(e, matched)
            blocks.append(e.render() + ("\n" + model.render(title, body, e) if model else "")
                          + ("\n" + line if line else ""))
        click.echo("\n\n".join(blocks))
