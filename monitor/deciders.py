"""What decides each storyline: its rules, the model file it ships with (``monitor train``), or
a model trained on the desk's examples (``learned = true``); and the matcher deciding with them.

In: a ``MonitorConfig`` and, for the desk's models, the ``Store`` that holds their examples and
the models saved from them. Out: the models per storyline id (``shipped_models``;
``learned_models``, which trains and saves those whose examples changed; ``saved_models``,
which never trains), the matcher that decides with them (``decider``, ``config_matcher``) and
what each learned layer does (``desk_notes``). ``monitor.learn`` trains and applies the models
(imported only when a storyline has one); this module finds them for the orchestrator, the
commands and the web desk.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:  # the rules and the learned layer: imported by the functions that use them
    from .config import MonitorConfig
    from .learn import LearnedMatcher, Model
    from .match import Matcher
    from .store import Store

log = logging.getLogger(__name__)


def config_matcher(config: MonitorConfig) -> Matcher | LearnedMatcher:
    """What decides with this config and no database: the rules, and the storylines' model
    files (as ``monitor eval`` without ``--from-db``; the benchmarks time it)."""
    from .match import Matcher

    matcher = Matcher(config.storylines)
    return decider(matcher, shipped_models(config))


def decider(matcher: Matcher, models: dict[str, Model]) -> Matcher | LearnedMatcher:
    """The rules, with ``models`` deciding their storylines (the learned layer is imported only
    when there is a model)."""
    if not models:
        return matcher
    from .learn import LearnedMatcher

    return LearnedMatcher(matcher, models)


def shipped_models(config: MonitorConfig) -> dict[str, Model]:
    """The models of the storylines with a ``model`` file (``monitor train``), each checked
    against the rules it was trained with: a storyline whose rules changed since keeps its rules
    (a warning says so), as features of other rules no longer mean what the model learned."""
    wanted = [s for s in config.storylines if s.model]
    if not wanted:
        return {}
    from .learn import Model, rules_fingerprint

    models: dict[str, Model] = {}
    for storyline in wanted:
        try:
            model = Model.from_json(Path(storyline.model).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"storyline {storyline.id}: model {storyline.model}: "
                              f"cannot load it: {error}") from None
        if model.rules != rules_fingerprint(storyline):
            log.warning("%s: the model %s was trained with other rules for this storyline (edited "
                        "since?); the rules alone decide (retrain it with 'monitor train')",
                        storyline.id, storyline.model)
            continue
        models[storyline.id] = model
    return models


def learned_models(config: MonitorConfig, store: Store, matcher: Matcher) -> dict[str, Model]:
    """The models that decide, per storyline: for ``learned = true``, one trained on the examples
    in the store (``monitor learn``, ``monitor feedback``), fine-tuned from the storyline's
    ``model`` file when it has one: the saved model when neither the examples, the rules nor the
    model file changed since it was trained, else trained now and saved. A storyline without
    such a model uses its ``model`` file if it has one; the others keep their rules."""
    shipped = shipped_models(config)
    models = _store_models(config, store, matcher, shipped)
    for storyline_id, model in shipped.items():
        if storyline_id not in models:
            models[storyline_id] = model
            log.info("%s: decided by the model %s (%s), threshold %.2f", storyline_id,
                     Path(config.storyline(storyline_id).model).name,
                     model.trained_on or f"{model.examples} examples", model.threshold)
    return models


def saved_models(config: MonitorConfig, store: Store, matcher: Matcher,
                 shipped: dict[str, Model]) -> dict[str, Model]:
    """The models that decide as ``learned_models`` would, without training any (the web desk's
    pages never write): the saved model of a ``learned = true`` storyline when it was trained on
    the examples and rules stored now, else its model file (in ``shipped``) or its rules, until
    the daemon has trained it."""
    return {**shipped, **_store_models(config, store, matcher, shipped, train=False)}


def _store_models(config: MonitorConfig, store: Store, matcher: Matcher,
                  shipped: dict[str, Model], *, train: bool = True) -> dict[str, Model]:
    wanted = [s for s in config.storylines if s.learned]
    if not wanted:
        return {}
    from .learn import Model, build_models, examples_fingerprint

    started = time.monotonic()
    stored = {s.id: store.feedback_examples(s.id) for s in wanted}
    prints = {s.id: examples_fingerprint(s, stored[s.id], s.learned_threshold, shipped.get(s.id))
              for s in wanted}
    models: dict[str, Model] = {}
    for storyline in wanted:
        saved = store.saved_model(storyline.id, prints[storyline.id])
        if saved is not None:
            models[storyline.id] = Model.from_json(saved)
    todo = {sid: rows for sid, rows in stored.items() if sid not in models}
    if not train:
        return models
    if todo:
        trained = build_models(matcher, todo, thresholds={s.id: s.learned_threshold for s in wanted},
                               starts=shipped)
        for sid, trained_model in trained.items():
            store.save_model(sid, prints[sid], trained_model.to_json(), now=datetime.now(UTC))
        models.update(trained)
    for storyline in wanted:
        model = models.get(storyline.id)
        if model is None:
            log.warning("%s: learned = true but too few examples stored (%d); %s "
                        "(add some with 'monitor learn' or 'monitor feedback')", storyline.id,
                        len(stored[storyline.id]),
                        "its model file decides" if storyline.model else "rules alone")
        else:
            log.info("%s: learned layer %s on %d candidate examples (%d positive)%s, threshold %.2f%s",
                     storyline.id, "trained" if storyline.id in todo else "loaded, trained",
                     model.examples, model.positives,
                     ", on top of its model file" if storyline.id in shipped else "",
                     model.threshold, f"; {model.note}" if model.note else "")
    log.info("learned layer ready in %.2fs", time.monotonic() - started)
    return models



def desk_notes(config: MonitorConfig, store: Store) -> dict[str, str]:
    """Per storyline with ``learned = true``: what its learned layer does, as last trained (read,
    never trained here): the note of ``learn.desk_fit`` ("learns: ..." or "stands aside: ..."),
    or why there is none yet."""
    wanted = [s for s in config.storylines if s.learned]
    if not wanted:
        return {}
    from .learn import Model, examples_fingerprint

    shipped = shipped_models(config)
    notes = {}
    for storyline in wanted:
        stored = store.feedback_examples(storyline.id)
        if not stored:
            notes[storyline.id] = "no verdicts yet"
            continue
        saved = store.saved_model(storyline.id, examples_fingerprint(
            storyline, stored, storyline.learned_threshold, shipped.get(storyline.id)))
        if saved is None:
            notes[storyline.id] = (f"{len(stored)} example(s), not trained on yet (the daemon trains "
                                   "at start and when verdicts change)")
            continue
        model = Model.from_json(saved)
        notes[storyline.id] = model.note or (f"model trained on {model.examples} candidate examples "
                                             f"({model.positives} positive)")
    return notes
