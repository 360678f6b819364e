"""The command line: a thin shell over the library. Each command loads the config, opens
the store and calls one library function; printing is all it adds.

Exit codes: 0 ok, 1 a command-level failure (e.g. nothing to retry), 2 bad config,
bad database or bad input files, 3 ``run --once`` ran but left something undone (a feed failed,
alerts left undelivered).
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .config import MonitorConfig, StorylineConfig, find_config, load_config
from .errors import MonitorError

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("monitor")

EXIT_INCOMPLETE = 3  # run --once: a feed failed or alerts were left undelivered


class RedactSecrets(logging.Filter):
    """Replace configured secrets in every log record: a belt to the braces of never
    formatting them into messages in the first place."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def setup_logging(verbosity: int, default: int = logging.WARNING) -> logging.Handler:
    level = logging.DEBUG if verbosity >= 1 else default
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                           "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbosity < 2 else logging.DEBUG)
    # Apprise logs whole service URLs, tokens included, at DEBUG: never let it.
    logging.getLogger("apprise").setLevel(logging.WARNING)
    # A delivery job still busy with a slow receiver is skipped by design, every second.
    logging.getLogger("apscheduler.scheduler").addFilter(
        lambda record: "maximum number of running instances" not in record.getMessage())
    return handler


class Context:
    def __init__(self, config_path: str | None, db: str | None, verbose: int) -> None:
        self.config_path = config_path
        self.db = db
        self.verbose = verbose
        self._config: MonitorConfig | None = None

    @property
    def config(self) -> MonitorConfig:
        """The config as the commands that deliver nothing read it: a channel's ${VAR} that is not
        set does not stop them (``run`` reads ``delivery_config``)."""
        if self._config is None:
            self._config = load_config(find_config(self.config_path), database=self.db, deliver=False)
        return self._config

    def delivery_config(self) -> MonitorConfig:
        """The config with every channel's ${VAR} resolved: what ``run`` delivers with."""
        return load_config(find_config(self.config_path), database=self.db)

    def store(self, *, create: bool = False) -> Store:
        """The database; a missing one is an error unless ``create`` (``run``, ``learn``)."""
        # Imported here: start-up time matters for every command, and not all need the store.
        from .store import Store

        return Store(self.config.database, create=create)


def fails_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into one line on stderr and exit code 2, never a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MonitorError as error:
            click.echo(f"Error: {error}", err=True)
            sys.exit(2)

    return wrapper


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH",
              help="Config file. Default: $MONITOR_CONFIG, else ./config/monitor.toml, "
                   "else the built-in default.")
@click.option("--db", metavar="PATH", help="Database file (overrides the config; also $MONITOR_DB).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv: also HTTP).")
@click.version_option(package_name="ceasefire-monitor")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, db: str | None, verbose: int) -> None:
    """Watch news feeds for storylines of the Gaza ceasefire talks, and alert.

    Example: monitor run --once
    """
    ctx.obj = Context(config_path, db, verbose)


# --------------------------------------------------------------------------- run

@cli.command()
@click.option("--once", is_flag=True, help="Poll every feed once, deliver what is due, exit.")
@pass_context
@fails_cleanly
def run(obj: Context, once: bool) -> None:
    """Run the monitor: poll the feeds on schedule, match, store and alert.

    With --once the exit code is 0 when every feed was polled and every alert delivered, and 3
    when a feed failed or alerts were left undelivered (they are retried by the next run).

    Example: monitor --config config/monitor.toml run
    """
    handler = setup_logging(obj.verbose, default=logging.INFO)
    config = obj.delivery_config()
    handler.addFilter(RedactSecrets(config.secrets))
    log.info("config %s; database %s; %d feeds, %d storylines", config.source, config.database,
             len(config.feeds), len(config.storylines))
    if not config.feeds:
        log.warning("no [[feeds]] in %s: there is nothing to poll", config.source)
    # Until the daemon's event loop takes SIGTERM over, it stops us like Ctrl-C: an open
    # transaction rolls back and we exit 0, as a stop during start-up should.
    signal.signal(signal.SIGTERM, _interrupt)
    _tune_process()
    try:
        _run(obj, config, once)
    except KeyboardInterrupt:
        log.info("stopped")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


_M_ARENA_MAX = -8  # mallopt parameter, glibc's malloc.h


def _tune_process() -> None:
    """Settings for a long-running monitor process (the parse workers inherit them by fork)."""
    # A poll allocates many short-lived objects (entries, words, rows) beside long-lived caches:
    # at the default threshold (700) a young collection ran every few items, ~8 % of the parse
    # workers' time. Every 20,000 allocations instead; cycles are still collected.
    gc.set_threshold(20_000, 10, 10)
    # glibc gives each thread that allocates its own malloc arena and keeps what is freed in it:
    # with the polling threads writing to SQLite in turn, the cold cycle of the stream farm held
    # 98 MB resident against 72 MB with two arenas, at the same speed (MALLOC_ARENA_MAX=2).
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to limit


def _run(obj: Context, config: MonitorConfig, once: bool) -> None:
    from .pipeline import Monitor
    from .store import Store

    with Store(config.database) as store:  # the one command that creates the database
        monitor = Monitor(config, store)
        try:
            if once:
                feeds, deliveries = monitor.run_once()
                failed = [f for f in feeds if f.outcome == "error"]
                log.info("polled %d feeds (%d failed); %d new items, %d alerts queued; "
                         "%d alerts sent", len(feeds), len(failed),
                         sum(f.stored.new_items for f in feeds),
                         sum(f.stored.new_alerts for f in feeds),
                         sum(d.sent for d in deliveries))
                undelivered = store.alert_counts().get("pending", 0)
                failed_alerts = sum(d.failed for d in deliveries)
                if failed or undelivered or failed_alerts:
                    log.warning("incomplete (exit code %d): %d feed(s) failed, %d alert(s) left "
                                "undelivered, %d alert(s) failed for good in this run",
                                EXIT_INCOMPLETE, len(failed), undelivered, failed_alerts)
                    sys.exit(EXIT_INCOMPLETE)
            else:
                from .daemon import run_forever

                run_forever(monitor)
        finally:
            monitor.close()


# --------------------------------------------------------------------------- read models

def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool,
         headers: Sequence[str] | None = None) -> None:
    if as_json:
        click.echo(json.dumps(list(rows), indent=2, ensure_ascii=False, default=str))
        return
    if not rows:
        click.echo("(none)")
        return
    from tabulate import tabulate

    table = [[_cell(row.get(c)) for c in columns] for row in rows]
    click.echo(tabulate(table, headers=list(headers or columns), tablefmt="simple"))


def check_storyline(config: MonitorConfig, storyline: str) -> None:
    if storyline not in {s.id for s in config.storylines}:
        raise click.BadParameter(f"no storyline {storyline!r} in {config.source}",
                                 param_hint="--storyline")


def _decided_by(storyline: StorylineConfig, models: dict[str, Any]) -> str:
    """What decides a storyline, as ``monitor storylines`` shows it: ``model`` (its model file,
    ``models`` from ``pipeline.shipped_models``) or ``rules``, ``+ desk`` when ``learned = true``
    (the database's examples train or correct it)."""
    return ("model" if storyline.id in models else "rules") + (" + desk" if storyline.learned else "")


def warn_unknown_storylines(config: MonitorConfig, labels: str, rows: Sequence[dict[str, Any]]) -> None:
    """A labels file that names storylines the config does not have: say so (they are ignored)."""
    configured = {s.id for s in config.storylines}
    unknown = sorted({s for row in rows for s in row["storylines"]} - configured)
    if unknown:
        click.echo(f"warning: {labels} names storylines that are not in {config.source}, ignored: "
                   f"{', '.join(unknown)}", err=True)


def _cell(value: Any) -> Any:
    if value is None:
        return "-"
    if isinstance(value, str) and len(value) > 70:
        return value[:67] + "..."
    return value


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def storylines(obj: Context, as_json: bool) -> None:
    """List the tracked storylines and their matches.

    Example: monitor storylines --json
    """
    from .pipeline import shipped_models

    config = obj.config
    with obj.store() as store:
        stats = store.storyline_stats(now=datetime.now(UTC))
    models = shipped_models(config)  # a model file that no longer fits its rules is not counted
    rows = []
    for storyline in config.storylines:
        s = stats.get(storyline.id, {})
        decided_by = _decided_by(storyline, models)
        if storyline.refines:
            decided_by += f", or through {storyline.refines}"
        rows.append({
            "id": storyline.id, "name": storyline.name, "decided_by": decided_by,
            "all": [list(g) for g in storyline.all], "any": list(storyline.any),
            "none": list(storyline.none), "threshold": storyline.threshold,
            "terms": " + ".join("|".join(g) for g in storyline.all)
                     + (f" + any({'|'.join(storyline.any)})" if storyline.any else ""),
            "matches_24h": s.get("last_24h", 0), "matches_total": s.get("total", 0),
            "last_match": s.get("last_match"),
        })
    emit(rows, ["id", "name", "decided_by", "terms", "matches_24h", "matches_total", "last_match"],
         as_json, ["id", "name", "decided by", "terms", "24h", "total", "last match"])


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def feeds(obj: Context, as_json: bool) -> None:
    """List the feeds and their health.

    Example: monitor feeds
    """
    config = obj.config
    with obj.store() as store:
        store.sync_feeds(config.feeds)
        states = {s.url: s for s in store.feed_states()}
    rows = []
    for feed in config.feeds:
        s = states[feed.url]
        healthy = s.last_fetch_at is not None and s.consecutive_errors == 0
        rows.append({
            "name": feed.name, "url": feed.url, "interval": feed.interval,
            "health": "ok" if healthy else ("never fetched" if s.last_fetch_at is None else "failing"),
            "last_fetch": s.last_fetch_at.isoformat() if s.last_fetch_at else None,
            "last_success": s.last_success_at.isoformat() if s.last_success_at else None,
            "last_status": s.last_status, "consecutive_errors": s.consecutive_errors,
            "last_error": s.last_error, "last_error_code": s.last_error_code,
            "items_seen": s.items_seen,
            "next_poll": s.next_poll_at.isoformat() if s.next_poll_at else None,
        })
    emit(rows, ["name", "health", "last_fetch", "last_status", "consecutive_errors", "last_error",
                "items_seen"], as_json,
         ["feed", "health", "last fetch", "status", "errors", "last error", "items"])


@cli.command()
@click.option("--storyline", metavar="ID", help="Only this storyline.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def matches(obj: Context, storyline: str | None, limit: int, as_json: bool) -> None:
    """List recent matches, newest first.

    Example: monitor matches --storyline cairo-talks --limit 5
    """
    if storyline is not None:
        check_storyline(obj.config, storyline)
    with obj.store() as store:
        rows = store.matches(storyline=storyline, limit=limit)
    emit(rows, ["published", "storyline", "score", "alerted", "source", "title"], as_json)


@cli.command()
@click.argument("text")
@click.option("--summary", default="", help="Summary text, scored as the body of the item.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def check(obj: Context, text: str, summary: str, as_json: bool) -> None:
    """Score a text against every storyline and explain the decision.

    TEXT is scored as a headline; it may hold HTML, which is stripped as the pipeline does.

    Example: monitor check "Hamas delegation in Cairo for truce talks"
    """
    from .match import Matcher
    from .normalise import html_to_text

    title, body = html_to_text(text), html_to_text(summary)
    if not title.strip():
        raise click.BadParameter("an empty text has no words to score; give a headline",
                                 param_hint="TEXT")
    matcher = Matcher(obj.config.storylines)
    explanations = matcher.explain(title, body)
    models = {}
    if any(s.learned for s in obj.config.storylines) and Path(obj.config.database).exists():
        from .pipeline import learned_models  # the models the daemon would use

        with obj.store() as store:
            models = learned_models(obj.config, store, matcher)
    elif any(s.model for s in obj.config.storylines):  # no database: no examples yet
        from .pipeline import shipped_models

        models = shipped_models(obj.config)
    matched: set[str] = set()
    if matcher.refines:  # a refining storyline's decision depends on the others' final ones
        from .pipeline import decider

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


@cli.command(name="eval")
@click.argument("labels", type=click.Path(dir_okay=False))
@click.option("--items", "items_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL of items (id, title, summary) the labels refer to.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
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

    Example: monitor eval ../shared/data/labels/dev.jsonl --items ../shared/data/news/items.jsonl --learned

    Labels marked "unsure" are scored like the others unless --skip-unsure leaves them out.
    """
    from .evaluate import evaluate, evaluate_learned, load_items, load_labels
    from .match import Matcher

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
        from .pipeline import learned_models

        with obj.store() as store:
            models = learned_models(obj.config, store, matcher)
    elif not rules_only:
        from .pipeline import shipped_models

        models = shipped_models(obj.config)
    from .pipeline import decider

    report = evaluate(decider(matcher, models), label_rows, items, skip_unsure=skip_unsure)
    report.decided_by = {s.id: (f"model: {models[s.id].trained_on or 'trained on stored examples'}"
                                if s.id in models else "rules") for s in obj.config.storylines}
    if learned:
        report.learned = evaluate_learned(matcher, label_rows, items, k=folds, skip_unsure=skip_unsure,
                                          train=train)
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


@cli.command()
@click.argument("item")
@click.argument("verdict", type=click.Choice(["right", "wrong"]))
@click.option("--storyline", metavar="ID", required=True, help="The storyline the verdict is about.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def feedback(obj: Context, item: str, verdict: str, storyline: str, as_json: bool) -> None:
    """Record a desk's verdict on the monitor's decision for a stored item.

    ITEM is the item id (`item_id` in `monitor matches --json`) or its link. "right": the monitor
    decided well (matched and it belongs, or not matched and it does not); "wrong": the opposite.
    The verdict becomes a training example of the storyline's learned layer (`learned = true`),
    used from the next start of `monitor run`.

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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def learn(obj: Context, labels: str, items_path: str, part: str, as_json: bool) -> None:
    """Import a labelled file as training examples of the learned layer.

    Every configured storyline that the labels mention gets one example per item (positive when
    the item's "storylines" list it). The text is normalised as the pipeline does.

    Example: monitor learn ../shared/data/labels/dev.jsonl --items ../shared/data/news/items.jsonl
    """
    from .evaluate import held_out, html_to_text, load_items, load_labels
    from .pipeline import shipped_models

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
                     "decided_by": _decided_by(config_storyline, models),
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def train_command(obj: Context, labels: tuple[str, ...], items_path: str, out_dir: str,
                  only: tuple[str, ...], as_json: bool) -> None:
    """Train the learned layer on labelled files and write a model file per storyline.

    A storyline's `model = "FILE"` in the config makes the model decide it (with `learned = true`,
    corrected by the desk's own examples). The model records the rules it was trained with: edit
    the storyline's rules and it stands aside until trained again. Measure before you ship:
    `monitor eval OTHER.jsonl --items ITEMS --learned --train LABELS`.

    Example: monitor train ../shared/data/labels/dev.jsonl labels/fresh-2026-11-26.jsonl
    --items ../shared/data/news/items.jsonl --out config/models
    """
    from .evaluate import DataError, html_to_text, load_items, load_labels
    from .learn import MIN_EXAMPLES, build_models, rules_fingerprint
    from .match import Matcher

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
                          thresholds={s.id: s.learned_threshold for s in storylines})
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


# --------------------------------------------------------------------------- the outbox

@cli.group(invoke_without_command=True)
@click.option("--status", type=click.Choice(["pending", "sent", "failed"]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def alerts(ctx: click.Context, status: str | None, limit: int, as_json: bool) -> None:
    """List the outbox: alerts with their status, attempts and last error.

    Example: monitor alerts --status failed
    """
    if ctx.invoked_subcommand is not None:
        return
    obj: Context = ctx.obj

    @fails_cleanly
    def show() -> None:
        with obj.store() as store:
            rows = store.alerts(status=status, limit=limit)
            channels = store.channels()
        emit(rows, ["id", "created_at", "channel", "kind", "storyline_id", "status", "attempts",
                    "last_error", "title"], as_json)
        if not as_json:
            for channel in channels:
                if channel["disabled_at"]:
                    click.echo(f"channel {channel['name']} DISABLED since {channel['disabled_at']}: "
                               f"{channel['disabled_reason']} (monitor alerts enable "
                               f"{channel['name']})")

    show()


@alerts.command(name="retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--failed", is_flag=True, help="Requeue every failed alert.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def alerts_retry(obj: Context, ids: tuple[int, ...], failed: bool, as_json: bool) -> None:
    """Requeue alerts by id, or every failed one.

    Example: monitor alerts retry --failed
    """
    if not ids and not failed:
        raise click.UsageError("give alert ids or --failed")
    with obj.store() as store:
        count = store.retry_alerts(ids, failed=failed)
    click.echo(json.dumps({"requeued": count}) if as_json else f"requeued {count} alert(s)")
    if not count:
        sys.exit(1)


@alerts.command(name="enable")
@click.argument("channel")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@fails_cleanly
def alerts_enable(obj: Context, channel: str, as_json: bool) -> None:
    """Re-enable a channel that was disabled (e.g. after a webhook answered 410).

    Example: monitor alerts enable webhook-0
    """
    with obj.store() as store:
        if not store.enable_channel(channel):
            if as_json:
                click.echo(json.dumps({"channel": channel, "enabled": False}))
            click.echo(f"no channel {channel!r}", err=True)
            sys.exit(1)
    click.echo(json.dumps({"channel": channel, "enabled": True}) if as_json
               else f"channel {channel} enabled")


def main() -> None:
    cli(prog_name="monitor")
