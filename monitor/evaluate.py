"""Evaluate: labelled items in, per-storyline precision, recall, F1 and detection cost out.

Labels are JSON lines ``{"id": ..., "storylines": [...], "unsure": false}``; items are JSON lines with at
least ``id``, ``title`` and ``summary`` (HTML allowed). Each item's title and summary go through the same
``html_to_text`` as the pipeline before matching, so the numbers agree with what ``monitor run`` records.

The labelled set is split for honest tuning: an item is *held out* when
``int(sha1(id).hexdigest(), 16) % 5 == 0`` (about a fifth). Tune on the rest, look at the held-out
numbers, never at the held-out errors. Every metric is reported for ``tune``, ``held-out`` and ``all``.

Labels marked ``"unsure": true`` (borderline under the rubric) are scored like any other by default.
With ``skip_unsure`` (``monitor eval --skip-unsure``) they are left out of the scoring and of the error
list, as TDT evaluations left out their borderline ("BRIEF") judgements; the report says how many were
left out of each part. The learned layer still trains on them: only the scoring changes.

The detection cost is the TDT normalised cost with C_miss = 1, C_fa = 0.1, P_target = 0.02:
``C_det = P_miss + 0.1 * 0.98 / (1 * 0.02) * P_fa = P_miss + 4.9 * P_fa``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import StorylineConfig
from .errors import MonitorError
from .match import Matcher

if TYPE_CHECKING:
    from .learn import Example, LearnedMatcher, Model

try:  # the pipeline's normaliser; the fallback only exists for a tree where it has not landed
    from .normalise import html_to_text
except ImportError:  # pragma: no cover
    import html as _html
    import re as _re

    def html_to_text(value: str) -> str:
        text = value or ""
        for _ in range(3):
            text = _re.sub(r"<[^>]*>", " ", text)
            decoded = _html.unescape(text)
            if decoded == text:
                break
            text = decoded
        return _re.sub(r"\s+", " ", _re.sub(r"<[^>]*>", " ", text)).strip()


__all__ = ["PARTS", "Counts", "DataError", "ErrorCase", "EvalReport", "LearnedReport", "c_det", "evaluate",
           "evaluate_learned", "held_out",
           "load_items", "load_labels", "run_eval"]

PARTS = ("tune", "held-out", "all")
C_FA_FACTOR = 0.1 * (1 - 0.02) / (1.0 * 0.02)  # 4.9


class DataError(MonitorError):
    """A labels or items file is not what ``monitor eval`` expects (file, line and what was expected)."""

    code = "eval.data"


def held_out(item_id: str) -> bool:
    """True for the fixed fifth of labelled items kept aside from tuning."""
    return int(hashlib.sha1(item_id.encode("utf-8")).hexdigest(), 16) % 5 == 0


def c_det(p_miss: float, p_fa: float) -> float:
    """``P_miss + 4.9 * P_fa``."""
    return p_miss + C_FA_FACTOR * p_fa


# --------------------------------------------------------------------------- loading


def _json_lines(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid UTF-8") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: expected one JSON object per line: {error.msg} "
                            f"(column {error.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        rows.append((number, row))
    return rows


def load_labels(path: str | Path) -> list[dict[str, Any]]:
    """``[{"id", "storylines", "unsure"}]`` from a labels file; duplicate ids are an error."""
    labels = []
    seen: dict[str, int] = {}
    for number, row in _json_lines(path):
        where = f"{path}:{number}"
        if not isinstance(row.get("id"), str) or not row["id"]:
            raise DataError(f"{where}: expected an \"id\" string")
        stories = row.get("storylines")
        if not isinstance(stories, list) or not all(isinstance(s, str) for s in stories):
            raise DataError(f"{where}: expected \"storylines\": a list of storyline ids (may be empty)")
        unsure = row.get("unsure", False)
        if not isinstance(unsure, bool):
            raise DataError(f"{where}: expected \"unsure\": true or false")
        if row["id"] in seen:
            raise DataError(f"{where}: duplicate id {row['id']!r} (first on line {seen[row['id']]})")
        seen[row["id"]] = number
        labels.append({"id": row["id"], "storylines": list(stories), "unsure": unsure})
    if not labels:
        raise DataError(f"{path}: no labels in the file (one JSON object a line: id, storylines)")
    return labels


def load_items(path: str | Path) -> dict[str, dict[str, Any]]:
    """Items by id; each needs ``id`` and ``title`` strings and a ``summary`` string or null."""
    items: dict[str, dict[str, Any]] = {}
    for number, row in _json_lines(path):
        where = f"{path}:{number}"
        if not isinstance(row.get("id"), str) or not row["id"]:
            raise DataError(f"{where}: expected an \"id\" string")
        if not isinstance(row.get("title"), str):
            raise DataError(f"{where}: expected a \"title\" string")
        if row.get("summary") is not None and not isinstance(row["summary"], str):
            raise DataError(f"{where}: expected \"summary\": a string or null")
        items[row["id"]] = row
    return items


# --------------------------------------------------------------------------- metrics


@dataclass
class Counts:
    """The confusion counts of one storyline on one part, and the measures derived from them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def p_miss(self) -> float:
        return self.fn / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def p_fa(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def c_det(self) -> float:
        return c_det(self.p_miss, self.p_fa)

    def to_dict(self) -> dict[str, Any]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
                "precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4), "p_miss": round(self.p_miss, 4), "p_fa": round(self.p_fa, 4),
                "c_det": round(self.c_det, 4)}


@dataclass(frozen=True)
class ErrorCase:
    part: str  # "tune" or "held-out"
    storyline_id: str
    kind: str  # "false positive" or "miss"
    item_id: str
    title: str
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "storyline": self.storyline_id, "kind": self.kind,
                "id": self.item_id, "title": self.title, "explanation": self.explanation}


@dataclass
class EvalReport:
    storylines: tuple[str, ...]
    counts: dict[str, dict[str, Counts]]  # part -> storyline -> counts
    sizes: dict[str, int]  # part -> labelled items
    errors: list[ErrorCase] = field(default_factory=list)
    unlabelled: tuple[str, ...] = ()  # configured storylines no label mentions (not evaluated)
    seconds: float = 0.0  # time spent matching
    predicted: dict[str, list[str]] = field(default_factory=dict)  # storyline -> ids it matched
    learned: LearnedReport | None = None  # ``monitor eval --learned``
    unsure_left_out: dict[str, int] | None = None  # part -> unsure items not scored (``skip_unsure``)
    decided_by: dict[str, str] = field(default_factory=dict)  # storyline -> "rules" or its model

    def render(self, errors: bool = False) -> str:
        head = (f"{'storyline':<18} {'part':<8} {'items':>5} {'pos':>4} {'TP':>4} {'FP':>4} {'FN':>4} "
                f"{'TN':>4}  {'prec':>5} {'recall':>6} {'F1':>5} {'C_det':>6}")
        lines = [head, "-" * len(head)]
        for storyline in self.storylines:
            for part in PARTS:
                c = self.counts[part][storyline]
                lines.append(
                    f"{storyline:<18} {part:<8} {self.sizes[part]:>5} {c.tp + c.fn:>4} {c.tp:>4} {c.fp:>4} "
                    f"{c.fn:>4} {c.tn:>4}  {c.precision:>5.3f} {c.recall:>6.3f} {c.f1:>5.3f} {c.c_det:>6.3f}")
        total = self.sizes["all"]
        rate = total / self.seconds if self.seconds > 0 else 0.0
        lines.append("")
        lines.append(f"held-out: id-hash fifth (sha1(id) % 5 == 0); C_det = P_miss + 4.9 * P_fa; "
                     f"{total} items matched in {self.seconds:.2f}s ({rate:,.0f} items/s)")
        if self.unsure_left_out is not None:
            lines.append(_unsure_line(self.unsure_left_out))
        if self.unlabelled:
            lines.append("not evaluated (no labels): " + ", ".join(self.unlabelled))
        if errors:
            for part in ("tune", "held-out"):
                cases = [e for e in self.errors if e.part == part]
                lines.append("")
                lines.append(f"== errors, {part}: {len(cases)}")
                for case in cases:
                    lines.append(f"-- {case.kind.upper()} {case.storyline_id} {case.item_id}: {case.title}")
                    lines.extend("   " + line for line in case.explanation.splitlines())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": "held-out when int(sha1(id), 16) % 5 == 0",
            "sizes": dict(self.sizes),
            "storylines": {s: {part: self.counts[part][s].to_dict() for part in PARTS}
                           for s in self.storylines},
            "unlabelled": list(self.unlabelled),
            "decided_by": dict(self.decided_by),
            "errors": [e.to_dict() for e in self.errors],
            "seconds": round(self.seconds, 4),
            "predicted": {s: sorted(ids) for s, ids in self.predicted.items()},
            **({"unsure_left_out": dict(self.unsure_left_out)} if self.unsure_left_out is not None else {}),
            **({"learned": self.learned.to_dict()} if self.learned else {}),
        }


# --------------------------------------------------------------------------- evaluation


def _unsure_line(left_out: dict[str, int]) -> str:
    return (f"unsure labels left out of the scoring (--skip-unsure): {left_out.get('all', 0)} items "
            f"({left_out.get('tune', 0)} tune, {left_out.get('held-out', 0)} held-out)")


def evaluate(matcher: Matcher | LearnedMatcher, labels: Sequence[dict[str, Any]],
             items: dict[str, dict[str, Any]], *,
             normalise: Callable[[str], str] = html_to_text, skip_unsure: bool = False) -> EvalReport:
    """Run ``matcher`` over the labelled items and count, per storyline and part; with
    ``skip_unsure``, items labelled ``unsure`` are not scored (``EvalReport.unsure_left_out``)."""
    configured = [s.id for s in matcher.storylines]
    labelled = {s for label in labels for s in label["storylines"]}
    storylines = tuple(s for s in configured if s in labelled)
    unlabelled = tuple(s for s in configured if s not in labelled)
    missing = [label["id"] for label in labels if label["id"] not in items]
    if missing:
        raise DataError(f"{len(missing)} labelled id(s) not found in the items, e.g. {missing[0]!r}")
    counts = {part: {s: Counts() for s in storylines} for part in PARTS}
    sizes = dict.fromkeys(PARTS, 0)
    errors: list[ErrorCase] = []
    seconds = 0.0
    predicted_ids: dict[str, list[str]] = {s: [] for s in storylines}
    left_out = dict.fromkeys(PARTS, 0) if skip_unsure else None
    for label in labels:
        part = "held-out" if held_out(label["id"]) else "tune"
        if left_out is not None and label["unsure"]:
            left_out[part] += 1
            left_out["all"] += 1
            continue
        item = items[label["id"]]
        title = normalise(item.get("title") or "")
        summary = normalise(item.get("summary") or "")
        started = time.perf_counter()
        found = {m.storyline_id for m in matcher.match(title, summary)}
        seconds += time.perf_counter() - started
        sizes[part] += 1
        sizes["all"] += 1
        truth = set(label["storylines"])
        explanations = None
        for storyline in storylines:
            predicted, actual = storyline in found, storyline in truth
            if predicted:
                predicted_ids[storyline].append(label["id"])
            for p in (part, "all"):
                c = counts[p][storyline]
                if predicted and actual:
                    c.tp += 1
                elif predicted:
                    c.fp += 1
                elif actual:
                    c.fn += 1
                else:
                    c.tn += 1
            if predicted != actual:
                if explanations is None:
                    explanations = {e.storyline_id: e for e in matcher.explain(title, summary)}
                explanation = explanations[storyline]
                text = explanation.render()
                rules = matcher if isinstance(matcher, Matcher) else matcher.matcher
                model = None if isinstance(matcher, Matcher) else matcher.models.get(storyline)
                if model is not None:  # the model decided: show its reasoning too
                    text += "\n" + model.render(title, summary, explanation)
                if line := rules.refinement_line(explanation, found):
                    text += "\n" + line
                errors.append(ErrorCase(part, storyline, "false positive" if predicted else "miss",
                                        label["id"], title, text))
    return EvalReport(storylines, counts, sizes, errors, unlabelled, seconds, predicted_ids,
                      unsure_left_out=left_out)


def run_eval(storylines: Sequence[StorylineConfig], labels_path: str | Path,
             items_path: str | Path, *, skip_unsure: bool = False) -> EvalReport:
    """What ``monitor eval LABELS --items ITEMS`` prints: load both files, match, count."""
    return evaluate(Matcher(storylines), load_labels(labels_path), load_items(items_path),
                    skip_unsure=skip_unsure)


# --------------------------------------------------------------------------- the learned layer

LEARNED_ROWS = (
    ("rules", "tune", "rules, on the part they were tuned on (optimistic)"),
    ("learned", "tune-cv", "learned, k-fold cross-validation over the tune part (nested: each fold's "
                           "threshold chosen by CV inside its training folds)"),
    ("rules", "held-out", "rules, on the held-out fifth"),
    ("learned", "held-out", "learned, trained on the whole tune part (threshold by CV on it), "
                            "tested on the held-out fifth"),
)
# With training files (``monitor eval LABELS --learned --train FILE``), "tune" is every item of the
# training files and "held-out" every item of LABELS.
TRAIN_FILE_ROWS = (
    ("rules", "tune", "rules, on the training files"),
    ("learned", "tune-cv", "learned, k-fold cross-validation over the training files (nested: each "
                           "fold's threshold chosen by CV inside its training folds)"),
    ("rules", "held-out", "rules, on every item of the labels file"),
    ("learned", "held-out", "learned, trained on the training files (threshold by CV on them), "
                            "tested on every item of the labels file"),
)


@dataclass
class LearnedReport:
    """Rules alone vs the learned layer (``monitor.learn``), never trained and tested on the same
    items: ``counts[(method, part)][storyline]``."""

    storylines: tuple[str, ...]
    counts: dict[tuple[str, str], dict[str, Counts]]
    thresholds: dict[str, float]  # of the models trained on the whole tune part
    k: int
    left_out: int  # tune items sharing a headline with a held-out item, not trained on
    seconds: float = 0.0
    predicted: dict[str, list[str]] = field(default_factory=dict)  # held-out ids the model matched
    unsure_left_out: dict[str, int] | None = None  # part -> unsure items not scored (still trained on)
    train_files: tuple[str, ...] = ()  # --train: "tune" is these files, "held-out" all of LABELS

    @property
    def rows(self) -> tuple[tuple[str, str, str], ...]:
        return TRAIN_FILE_ROWS if self.train_files else LEARNED_ROWS

    def render(self) -> str:
        head = (f"{'storyline':<18} {'method':<8} {'part':<8} {'pos':>4} {'TP':>4} {'FP':>4} "
                f"{'FN':>4} {'TN':>4}  {'prec':>5} {'recall':>6} {'F1':>5} {'C_det':>6}")
        lines = ["learned layer vs rules (never trained and tested on the same items)", head,
                 "-" * len(head)]
        for storyline in self.storylines:
            for method, part, _what in self.rows:
                c = self.counts[(method, part)][storyline]
                lines.append(
                    f"{storyline:<18} {method:<8} {part:<8} {c.tp + c.fn:>4} {c.tp:>4} {c.fp:>4} "
                    f"{c.fn:>4} {c.tn:>4}  {c.precision:>5.3f} {c.recall:>6.3f} {c.f1:>5.3f} "
                    f"{c.c_det:>6.3f}")
        lines.append("")
        for method, part, what in self.rows:
            lines.append(f"{method} {part}: {what}")
        if self.train_files:
            lines.append("training files: " + ", ".join(self.train_files))
        lines.append(f"folds: {self.k}, by sha1(id) // 5 % {self.k}, items with the same headline in "
                     f"one fold; {self.left_out} tune item(s) sharing a headline with a held-out item "
                     "left out of training")
        if self.unsure_left_out is not None:
            lines.append(_unsure_line(self.unsure_left_out) + "; still trained on")
        lines.append("thresholds (trained on tune): " + ", ".join(
            f"{s} {t:.2f}" for s, t in self.thresholds.items()) + f"; {self.seconds:.1f}s")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": {f"{method} {part}": what for method, part, what in self.rows},
            "storylines": {s: {f"{m} {p}": self.counts[(m, p)][s].to_dict()
                               for m, p, _w in self.rows} for s in self.storylines},
            "train_files": list(self.train_files),
            "thresholds": dict(self.thresholds), "folds": self.k, "left_out": self.left_out,
            "predicted_held_out": {s: sorted(ids) for s, ids in self.predicted.items()},
            "seconds": round(self.seconds, 2),
            **({"unsure_left_out": dict(self.unsure_left_out)} if self.unsure_left_out is not None else {}),
        }


def _count(counts: Counts, predicted: bool, actual: bool) -> None:
    if predicted and actual:
        counts.tp += 1
    elif predicted:
        counts.fp += 1
    elif actual:
        counts.fn += 1
    else:
        counts.tn += 1


def evaluate_learned(matcher: Matcher, labels: Sequence[dict[str, Any]],
                     items: dict[str, dict[str, Any]], *, k: int = 5,
                     normalise: Callable[[str], str] = html_to_text,
                     skip_unsure: bool = False,
                     train: Mapping[str, Sequence[dict[str, Any]]] | None = None,
                     progress: Callable[[int, int], None] | None = None) -> LearnedReport:
    """The learned layer measured honestly next to the rules, per storyline: nested k-fold CV
    over the tune part, and trained on the tune part then tested on the held-out part. With
    ``skip_unsure``, items labelled ``unsure`` are trained on as usual but not scored.

    ``train`` (``{file name: labels}``) replaces the id-hash split: the tune part is every item of
    those labels (an id also in ``labels`` is left out of them) and the held-out part every item
    of ``labels``: a model trained on one labelled set, tested on another.

    ``progress(done, total)`` is called after each step (the matching, then each model fitted)."""
    from .learn import _headline, cross_val_scores, examples_for, fit, folds

    started = time.perf_counter()
    tested: set[str] | None = None
    if train is not None:
        tested = {label["id"] for label in labels}
        training_labels = [label for rows in train.values() for label in rows
                           if label["id"] not in tested]
        if len({label["id"] for label in training_labels}) != len(training_labels):
            raise DataError("an id is labelled in two training files")
        labels = [*training_labels, *labels]

    def is_held_out(key: str) -> bool:
        return held_out(key) if tested is None else key in tested

    configured = [s.id for s in matcher.storylines]
    labelled = {s for label in labels for s in label["storylines"]}
    storylines = tuple(s for s in configured if s in labelled)
    missing = [label["id"] for label in labels if label["id"] not in items]
    if missing:
        raise DataError(f"{len(missing)} labelled id(s) not found in the items, e.g. {missing[0]!r}")
    rows = []
    unsure = {label["id"] for label in labels if label["unsure"]} if skip_unsure else set()
    left_out_unsure = None
    if skip_unsure:
        left_out_unsure = {"tune": sum(1 for i in unsure if not is_held_out(i)),
                           "held-out": sum(1 for i in unsure if is_held_out(i)), "all": len(unsure)}
    for label in labels:
        item = items[label["id"]]
        truth = set(label["storylines"])
        rows.append((label["id"], normalise(item.get("title") or ""), normalise(item.get("summary") or ""),
                     {s: s in truth for s in storylines}))
    total, done = 1 + len(storylines) * (k + 1), [0]

    def step() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    def fit_step(training: Sequence[Example]) -> Model:
        model = fit(training, k=k)
        step()
        return model

    examples = examples_for(matcher, rows)
    step()
    counts = {(m, p): {s: Counts() for s in storylines} for m, p, _w in LEARNED_ROWS}
    thresholds: dict[str, float] = {}
    predicted: dict[str, list[str]] = {}
    left_out = 0
    for storyline in storylines:
        found = examples.get(storyline, [])
        tune = [e for e in found if not is_held_out(e.key)]
        test = [e for e in found if is_held_out(e.key)]
        for part, part_examples in (("tune", tune), ("held-out", test)):
            for e in part_examples:
                if e.key not in unsure:
                    _count(counts[("rules", part)][storyline], e.explanation.matched, e.label)
        # nested CV: each outer fold's model is fitted (threshold by inner CV) on the other folds
        scores, models = cross_val_scores(tune, k=k, fitter=fit_step)
        for e, score, fold in zip(tune, scores, folds(tune, k), strict=True):
            if e.key in unsure:
                continue
            _count(counts[("learned", "tune-cv")][storyline], score >= models[fold].threshold, e.label)
        test_heads = {_headline(e.title) for e in test}
        training = [e for e in tune if _headline(e.title) not in test_heads]
        left_out = len(tune) - len(training)
        model = fit_step(training)
        thresholds[storyline] = model.threshold
        predicted[storyline] = []
        for e in test:
            decided = model.decide(e.title, e.summary, e.explanation)
            if e.key not in unsure:
                _count(counts[("learned", "held-out")][storyline], decided, e.label)
            if decided:
                predicted[storyline].append(e.key)
    return LearnedReport(storylines, counts, thresholds, k, left_out,
                         time.perf_counter() - started, predicted, left_out_unsure,
                         tuple(train or ()))
