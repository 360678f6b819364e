"""Measuring and teaching the storylines: ``eval`` (precision and recall on labelled items),
``review`` (the items worth judging), ``feedback`` (the desk's verdict on one), ``learn``
(labelled files as training examples in the database) and ``train`` (model files from them).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ..config import MonitorConfig
from .common import (
    Context,
    check_storyline,
    cli,
    emit,
    fails_cleanly,
    how_decided,
    json_option,
    pass_context,
    to_the_minute,
)


def warn_unknown_storylines(config: MonitorConfig, labels: str, rows: Sequence[dict[str, Any]]) -> None:
    """A labels file that names storylines the config does not have: say so (they are ignored)."""
    configured = {s.id for s in config.storylines}
    unknown = sorted({s for row in rows for s in row["storylines"]} - configured)
    if unknown:
        click.echo(f"warning: {labels} names storylines that are not in {config.source}, ignored: "
                   f"{', '.join(unknown)}", err=True)


@cli.command(name="eval")
@click.argument("labels", type=click.Path(dir_okay=False))
@click.option("--items", "items_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL of items (id, title, summary) the labels refer to.")
@json_option
@click.option("--errors", is_flag=True, help="List false positives and misses with explanations.")
@click.option("--learned", is_flag=True,
              help="Also measure the learned layer trained on these labels: k-fold CV over the tune "
                   "part, and trained on the tune part, tested on the held-out part.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20),
              help="Folds for --learned.")
@click.option("--train", "train_paths", multiple=True, type=click.Path(dir_okay=False),
              metavar="LABELS",
              help="With --learned: train on these labelled files (repeatable; their items also "
                   "in --items) and test on every item of LABELS, instead of the held-out fifth.")
@click.option("--skip-unsure", is_flag=True,
              help="Leave labels marked \"unsure\" (borderline under the rubric) out of the scoring and "
                   "the error list, as TDT left out borderline judgements; the report says how many. "
                   "Default: every label is scored. --learned still trains on them.")
@click.option("--rules", "rules_only", is_flag=True,
              help="Decide with the rules alone, not with the storylines' model files.")
@click.option("--from-db", is_flag=True,
              help="Decide with the models the daemon trains from the database's examples "
                   "(storylines with learned = true): what `monitor run` would record. Not a fair "
                   "test when those examples include these items.")
@pass_context
@fails_cleanly
def eval_command(obj: Context, labels: str, items_path: str, as_json: bool, errors: bool,
                 learned: bool, folds: int, train_paths: tuple[str, ...], rules_only: bool,
                 from_db: bool, skip_unsure: bool) -> None:
    """Measure the storylines on labelled items: precision, recall, F1 and C_det.

    Example: monitor eval labels/sample/labels.jsonl --items labels/sample/items.jsonl --rules

    Labels marked "unsure" are scored like the others unless --skip-unsure leaves them out.
    """
    from ..evaluate import evaluate, evaluate_learned, load_items, load_labels
    from ..match import Matcher

    if train_paths and not learned:
        raise click.UsageError("--train needs --learned (it trains the learned layer)")
    if rules_only and from_db:
        raise click.UsageError("--rules and --from-db: choose one")
    label_rows, items = load_labels(Path(labels)), load_items(Path(items_path))
    warn_unknown_storylines(obj.config, labels, label_rows)
    train = {path: load_labels(Path(path)) for path in train_paths} or None
    matcher = Matcher(obj.config.storylines)
    models: dict[str, Any] = {}
    if from_db:
        from ..deciders import learned_models

        with obj.store() as store:
            models = learned_models(obj.config, store, matcher)
    elif not rules_only:
        from ..deciders import shipped_models

        models = shipped_models(obj.config)
    from ..deciders import decider

    report = evaluate(decider(matcher, models), label_rows, items, skip_unsure=skip_unsure)
    report.decided_by = {s.id: (f"model: {models[s.id].trained_on or 'trained on stored examples'}"
                                if s.id in models else "rules") for s in obj.config.storylines}
    if learned:
        with _progress("training and testing the learned layer", as_json) as progress:
            report.learned = evaluate_learned(matcher, label_rows, items, k=folds,
                                              skip_unsure=skip_unsure, train=train, progress=progress)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        if models:
            click.echo(f"decided as 'monitor run' does{' with this database' if from_db else ''}: "
                       + "; ".join(f"{sid} by its {how}" for sid, how in report.decided_by.items()
                                   if how != "rules")
                       + "; the others by their rules (--rules: the rules alone). A model is no "
                         "fair test on items it was trained on.\n")
        click.echo(report.render(errors=errors))
        if report.learned is not None:
            click.echo("")
            click.echo(report.learned.render())


@contextmanager
def _progress(label: str, as_json: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr for a long command, only on a terminal: never with --json, nor
    when the output or stderr is piped or redirected. Yields ``update(done, total)`` or None."""
    if as_json or not (sys.stdout.isatty() and sys.stderr.isatty()):
        yield None
        return
    bar: Any = None
    shown = [0]

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True)
            bar.__enter__()
        bar.update(done - shown[0])
        shown[0] = done

    try:
        yield update
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


@cli.command("review")
@click.argument("storyline")
@click.option("--limit", default=20, show_default=True, help="How many items to list.")
@click.option("--scan", default=2000, show_default=True, help="How many of the newest stored items to rank.")
@json_option
@pass_context
@fails_cleanly
def review_command(obj: Context, storyline: str, limit: int, scan: int, as_json: bool) -> None:
    """List the stored items whose verdict would teach STORYLINE most, borderline first.

    Among the items where the rules found a term of the storyline's first group: those where
    its model and its rules disagree, then those whose probability is nearest the cut (with the
    rules deciding: near misses and matches found only in the summary). Items already judged
    are left out. Judge them with `monitor feedback ITEM --storyline ID right|wrong`.

    Example: monitor review rafah-crossing --limit 10
    """
    from ..review import review

    check_storyline(obj.config, storyline)
    with obj.store() as store:
        rows = review(obj.config, store, storyline, limit=limit, scan=scan)
    if as_json:
        emit(rows, [], True)
        return
    for row in rows:
        row["published"] = to_the_minute(row["published"])
    emit(rows, ["item_id", "decision", "probability", "why", "title"], False,
         ["item", "decision", "p", "why", "title"], widths={"why": 34, "title": 60})


@cli.command()
@click.argument("item")
@click.argument("verdict", type=click.Choice(["right", "wrong"]))
@click.option("--storyline", metavar="ID", required=True, help="The storyline the verdict is about.")
@json_option
@pass_context
@fails_cleanly
def feedback(obj: Context, item: str, verdict: str, storyline: str, as_json: bool) -> None:
    """Record a desk's verdict on the monitor's decision for a stored item.

    ITEM is the item id (`item_id` in `monitor matches --json`) or its link. "right": the monitor
    decided well (matched and it belongs, or not matched and it does not); "wrong": the opposite.
    The verdict becomes a training example of the storyline's learned layer (`learned = true`):
    a running daemon retrains within a minute, off its polls; `monitor review` lists the items
    worth judging.

    Example: monitor feedback 42 --storyline captive-releases wrong
    """
    check_storyline(obj.config, storyline)
    with obj.store() as store:
        try:
            result = store.record_feedback(item, storyline, right=verdict == "right",
                                           now=datetime.now(UTC))
        except KeyError:
            click.echo(f"Error: no stored item {item!r} (give its id or link; see monitor matches "
                       "--json)", err=True)
            sys.exit(1)
        totals = store.feedback_counts().get(storyline, {})
    used = obj.config.storyline(storyline).learned
    if as_json:
        click.echo(json.dumps(dict(result, examples=totals, used=used), ensure_ascii=False))
        return
    decided = "matched" if result["matched"] else "did not match"
    truth = "belongs to" if result["label"] else "does not belong to"
    click.echo(f"recorded: the monitor {decided} item {result['item_id']} and was {verdict}: it "
               f"{truth} {storyline}. ({result['title'][:70]})")
    click.echo(f"{storyline}: {totals.get('examples', 0)} examples stored "
               f"({totals.get('positives', 0)} positive, {totals.get('desk', 0)} from the desk)")
    if not used:
        click.echo(f"note: {storyline} has learned = false in {obj.config.source}: the verdict is "
                   "stored but has no effect on its decisions until learned = true (then from the "
                   "next start of monitor run)")


@cli.command()
@click.argument("labels", type=click.Path(dir_okay=False))
@click.option("--items", "items_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL of items (id, title, summary) the labels refer to.")
@click.option("--part", type=click.Choice(["all", "tune", "held-out"]), default="all",
              show_default=True, help="Import only this part (held-out: sha1(id) % 5 == 0).")
@json_option
@pass_context
@fails_cleanly
def learn(obj: Context, labels: str, items_path: str, part: str, as_json: bool) -> None:
    """Import a labelled file as training examples of the learned layer.

    Every configured storyline that the labels mention gets one example per item (positive when
    the item's "storylines" list it). The text is normalised as the pipeline does.

    Example: monitor learn labels/sample/labels.jsonl --items labels/sample/items.jsonl
    """
    from ..deciders import shipped_models
    from ..evaluate import held_out, html_to_text, load_items, load_labels

    label_rows, items = load_labels(Path(labels)), load_items(Path(items_path))
    warn_unknown_storylines(obj.config, labels, label_rows)
    configured = [s.id for s in obj.config.storylines]
    mentioned = {s for row in label_rows for s in row["storylines"]}
    storylines = [s for s in configured if s in mentioned]
    examples = []
    for row in label_rows:
        if part != "all" and held_out(row["id"]) != (part == "held-out"):
            continue
        item = items.get(row["id"])
        if item is None:
            continue
        title = html_to_text(item.get("title") or "")
        summary = html_to_text(item.get("summary") or "")
        for storyline in storylines:
            examples.append((row["id"], title, summary, storyline, storyline in row["storylines"]))
    with obj.store(create=True) as store:  # examples may come before the first run
        count = store.import_examples(examples, source=f"labels:{Path(labels).name}",
                                      now=datetime.now(UTC))
        totals = store.feedback_counts()
    models = shipped_models(obj.config)
    rows: list[dict[str, Any]] = []
    for storyline_id in storylines:
        config_storyline = obj.config.storyline(storyline_id)
        t = totals.get(storyline_id, {})
        rows.append({"storyline": storyline_id, "examples": t.get("examples", 0),
                     "positives": t.get("positives", 0),
                     "decided_by": how_decided(config_storyline, models),
                     "used": config_storyline.learned})
    if as_json:
        click.echo(json.dumps({"imported": count, "labels": labels, "part": part, "storylines": rows},
                              indent=2, ensure_ascii=False))
        return
    click.echo(f"imported {count} examples from {labels} ({part})")
    for row in rows:
        if row["decided_by"].startswith("model"):
            decides, effect = "its model decides", "they correct its model"
        else:
            decides, effect = "its rules decide", "a model is trained on them"
        note = (f"learned = true: {effect} from the next start of monitor run" if row["used"] else
                f"learned = false in the config: {decides}, and these examples are not used until "
                "learned = true")
        click.echo(f"  {row['storyline']}: {row['examples']} examples, {row['positives']} positive "
                   f"({note})")


@cli.command(name="train")
@click.argument("labels", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--items", "items_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL of items (id, title, summary) the labels refer to.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the model files (<storyline>.json).")
@click.option("--storyline", "only", multiple=True, metavar="ID",
              help="Train only this storyline (repeatable). Default: every configured storyline "
                   "the labels mention.")
@json_option
@pass_context
@fails_cleanly
def train_command(obj: Context, labels: tuple[str, ...], items_path: str, out_dir: str,
                  only: tuple[str, ...], as_json: bool) -> None:
    """Train the learned layer on labelled files and write a model file per storyline.

    A storyline's `model = "FILE"` in the config makes the model decide it (with `learned = true`,
    corrected by the desk's own examples). The model records the rules it was trained with: edit
    the storyline's rules and it stands aside until trained again. Measure before you ship:
    `monitor eval OTHER.jsonl --items ITEMS --learned --train LABELS`.

    Example: monitor train labels/sample/labels.jsonl --items labels/sample/items.jsonl --out my-models
    """
    from ..evaluate import DataError, html_to_text, load_items, load_labels
    from ..learn import MIN_EXAMPLES, build_models, rules_fingerprint
    from ..match import Matcher

    items = load_items(Path(items_path))
    rows: dict[str, dict[str, Any]] = {}
    for path in labels:
        for row in load_labels(Path(path)):
            if row["id"] in rows:
                raise DataError(f"{path}: id {row['id']!r} is labelled in two files")
            if row["id"] not in items:
                raise DataError(f"{path}: id {row['id']!r} is not in {items_path}")
            rows[row["id"]] = row
        warn_unknown_storylines(obj.config, path, list(rows.values()))
    mentioned = {s for row in rows.values() for s in row["storylines"]}
    configured = {s.id for s in obj.config.storylines}
    unknown = [s for s in only if s not in configured]
    if unknown:
        raise click.BadParameter(f"no storyline {unknown[0]!r} in the config", param_hint="--storyline")
    storylines = [s for s in obj.config.storylines if s.id in (set(only) or mentioned)]
    if not storylines:
        raise DataError("no configured storyline is labelled in these files")
    texts = {key: (html_to_text(items[key].get("title") or ""), html_to_text(items[key].get("summary") or ""))
             for key in rows}
    stored = {s.id: [(key, *texts[key], s.id in row["storylines"]) for key, row in rows.items()]
              for s in storylines}
    models = build_models(Matcher(obj.config.storylines), stored,
                          thresholds={s.id: s.learned_threshold for s in storylines}, few=0)
    names = ", ".join(Path(p).name for p in labels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: list[dict[str, Any]] = []
    for storyline in storylines:
        positives = sum(1 for *_text, label in stored[storyline.id] if label)
        model = models.get(storyline.id)
        if model is None:
            report.append({"storyline": storyline.id, "path": None, "positive_items": positives})
            if not as_json:
                click.echo(f"{storyline.id}: fewer than {MIN_EXAMPLES} positive or negative candidate "
                           f"examples ({positives} positive items); no model written")
            continue
        model.rules = rules_fingerprint(storyline)
        model.trained_on = f"{len(rows)} labelled items of {names} ({positives} positive)"
        model_path = out / f"{storyline.id}.json"
        model_path.write_text(model.to_json() + "\n", encoding="utf-8")
        report.append({"storyline": storyline.id, "path": str(model_path), "positive_items": positives,
                       "examples": model.examples, "positives": model.positives,
                       "threshold": model.threshold,
                       "threshold_from": "config" if storyline.learned_threshold else "cross-validation"})
        if not as_json:
            click.echo(f"{storyline.id}: {model_path} ({model.examples} candidate examples, "
                       f"{model.positives} positive, threshold {model.threshold:.2f} by cross-validation"
                       f"{'' if not storyline.learned_threshold else ' (set in the config)'})")
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
