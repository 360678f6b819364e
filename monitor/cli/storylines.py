"""The storylines: ``storylines`` (what decides each, and its matches) and ``storylines draft``
(a new storyline proposed from a name and examples, read off the stored items).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from .common import (
    Context,
    cli,
    emit,
    fails_cleanly,
    how_decided,
    json_option,
    pass_context,
    since_datetime,
    to_the_minute,
)


@cli.group(invoke_without_command=True)
@json_option
@click.option("--wide", is_flag=True, help="Also the name, the terms and the desk's note, untruncated.")
@click.pass_context
@fails_cleanly
def storylines(ctx: click.Context, as_json: bool, wide: bool) -> None:
    """List the tracked storylines and their matches.

    Example: monitor storylines --wide
    """
    if ctx.invoked_subcommand is not None:
        return
    _list_storylines(ctx.obj, as_json, wide)


@storylines.command("draft")
@click.argument("storyline_id", metavar="ID")
@click.option("--name", required=True, help="The storyline's name, as the desk says it.")
@click.option("--description", default="", help="A sentence on what belongs to it.")
@click.option("--example", "examples", multiple=True, metavar="HEADLINE",
              help="A headline that belongs to it (repeatable).")
@click.option("--since", default="30d", show_default=True, callback=since_datetime,
              help="Read the items stored in this last while.")
@click.option("--limit", default=10, show_default=True,
              help="How many matched and borderline items to show.")
@json_option
@pass_context
@fails_cleanly
def storylines_draft(obj: Context, storyline_id: str, name: str, description: str,
                     examples: tuple[str, ...], since: datetime, limit: int, as_json: bool) -> None:
    """Propose a storyline from a name, a description and examples, read off the stored items.

    Prints the TOML to paste into the config (groups of terms, the words around the editor's
    own that the stored items use, vetoes for names that hold its core word but are another
    subject), then the stored items it would have matched and the borderline ones it would not.

    Example: monitor storylines draft hezbollah-front --name "Hezbollah front" --example "Hezbollah
    fires rockets at northern Israel" --description "Fighting on the Israel-Lebanon border"
    """
    from ..draft import draft

    with obj.store() as store:
        rows = store.review_items(limit=20_000)
    items = [(str(r["item_id"]), r["title"], r["summary"]) for r in rows
             if r["published"] and datetime.fromisoformat(r["published"]) >= since]
    try:
        proposal = draft(storyline_id, name, description, examples, items, limit=limit)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--name") from None
    if as_json:
        click.echo(json.dumps(proposal.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(f"# drafted from {len(items)} stored item(s); where each term comes from:")
    for term, why in proposal.why.items():
        click.echo(f"#   {term}: {why}")
    click.echo(proposal.toml)
    shown = [("would have matched", proposal.matched, proposal.totals[0]),
             ("borderline, not matched", proposal.borderline, proposal.totals[1])]
    if proposal.near:
        shown.append((f"would not have matched with near = {proposal.near}", proposal.dropped,
                      proposal.dropped_total))
    for title, found, total in shown:
        first = f", the first {len(found)}" if total > len(found) else ""
        click.echo(f"{title}: {total} stored item(s){first}")
        for row in found:
            why = f"  ({row['why']})" if "why" in row else ""
            click.echo(f"  {row['item_id']:>7}  {row['title'][:90]}{why}")


def _list_storylines(obj: Context, as_json: bool, wide: bool) -> None:
    from ..deciders import desk_notes, shipped_models

    config = obj.config
    with obj.store() as store:
        stats = store.storyline_stats(now=datetime.now(UTC))
        notes = desk_notes(config, store)
    models = shipped_models(config)  # a model file that no longer fits its rules is not counted
    rows = []
    for storyline in config.storylines:
        s = stats.get(storyline.id, {})
        decided_by = how_decided(storyline, models)
        desk = notes.get(storyline.id, "")
        if storyline.learned and desk.startswith(("learns", "stands aside")):
            decided_by += f" ({desk.split(':', 1)[0]})"
        if storyline.refines:
            decided_by += f", or through {storyline.refines}"
        rows.append({
            "id": storyline.id, "name": storyline.name, "decided_by": decided_by, "desk": desk,
            "all": [list(g) for g in storyline.all], "any": list(storyline.any),
            "none": list(storyline.none), "threshold": storyline.threshold,
            "terms": " + ".join("|".join(g) for g in storyline.all)
                     + (f" + any({'|'.join(storyline.any)})" if storyline.any else ""),
            "matches_24h": s.get("last_24h", 0), "matches_total": s.get("total", 0),
            "last_match": s.get("last_match"),
        })
    if as_json:
        emit(rows, [], True)
        return
    for row in rows:
        row["last"] = to_the_minute(row["last_match"])
    if wide:
        emit(rows, ["id", "name", "decided_by", "matches_24h", "matches_total", "last", "terms", "desk"],
             False, ["id", "name", "decided by", "24h", "total", "last match (UTC)", "terms", "desk"],
             widths={})
    else:  # fits 100 columns
        emit(rows, ["id", "decided_by", "matches_24h", "matches_total", "last"], False,
             ["id", "decided by", "24h", "total", "last match (UTC)"], widths={"id": 24, "decided_by": 40})
