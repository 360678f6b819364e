"""Learn: labelled examples in, a per-storyline probability model on top of the rules out.

The fuzzy rules (``monitor.match``) stay the explainable first stage. This module learns, per
storyline, how much to trust what they found, from labelled examples (imported label files and
the desk's ``monitor feedback`` verdicts), so that a desk can correct the monitor without editing
terms. Pure: no I/O, no clock, no globals; deterministic (seeded shuffles).

Features of one item for one storyline (names are readable; ``Model.explain`` lists them):

* from the rule explanation: ``rule:matched``, ``rule:score``, ``rule:vetoed``, ``rule:missing``,
  ``rule:near-failed``; per group (``all[0]``, ``all[1]``, ``any``): ``<group>:hit``, its best
  fuzzy score, ``<group>:title`` (a hit in the title), ``<group>~released`` (the words it hit as
  written, unstemmed: "released" is not "release"), ``<group>:dropped`` (a hit discarded by a
  ``not_near`` context word), and which term hit (``<group>=ceasefire``); ``dropped-by=calls``,
  ``veto=Hezbollah``; proximity of the first two groups (``gap<=3``, ``gap<=8``, ``gap>8``,
  ``gap:fields``);
* from the text: word unigrams and bigrams of the title (``t:truce``, ``t:truce_talk``) and,
  weighted by ``SUMMARY_WEIGHT``, of the summary (``s:...``); words are folded and stemmed as the
  matcher does. Names are hashed into ``2 ** DIM_BITS`` weights, so a model has a fixed size.

The model is L2-regularised logistic regression, trained by AdaGrad SGD over sparse features in
pure Python (a few thousand examples train in well under a second), positives weighted up to
balance the classes (capped). Only *candidates* are scored: items where the rules found a term of
the storyline's first group (``all[0]``, its core concept: truce words, Egypt words, captive
words; a hit or a hit dropped by a context word), or one of its ``model_candidates`` (then the
feature ``candidate:model_candidates`` says so). Anything else never matches, so the model
cannot fire on text without the storyline's core words, and the monitor spends the model's
time only on those (about one stream item in ten; every other group as gate, "Israel" or
"Hamas" included, made half the stream candidates and the model 2.5x the rules' cost).

The decision threshold is chosen by cross-validation (``fit``): out-of-fold probabilities over
folds by id hash, the threshold with the best F1 (ties: the lower detection cost). Items whose
normalised headline is the same always share a fold, so no text is trained and tested on.

A desk's few verdicts (fewer than ``FEW`` candidate examples) train no model (``desk_fit``):
the rules, or the storyline's model file, stay the prior; each judged item is decided as judged,
and the items most similar to a judged one as it was judged, only as far as leave-one-out on the
verdicts shows right more often than chance. A model trained on 27 verdicts alone had made an
editor's storyline worse (issue 19; ``bench/editor.py``: F1 0.85 -> 0.25 after 10 verdicts).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import MODEL_FORMAT
from .match import NON_GROUP_RULES, Explanation, Matcher, fold_word, rules_match, stem
from .models import Match

__all__ = ["Contribution", "Example", "LearnedMatcher", "Model", "choose_threshold", "cross_val_scores",
           "desk_fit", "features", "fit", "fold_of", "headline_key", "is_candidate", "prior_model",
           "rule_features", "rules_fingerprint", "similarity_vector", "text_features", "text_vector",
           "train"]

DIM_BITS = 18
SUMMARY_WEIGHT = 0.5
MAX_POSITIVE_WEIGHT = 4.0
L2 = 1e-3
EPOCHS = 12
LEARNING_RATE = 0.3
TEXT_WEIGHT = 0.25  # scales every word feature (the rule features have value ~1); chosen by CV on tune
SETTLED = 0.02  # SGD skips examples whose error is below this (the speed of later epochs)
MIN_EXAMPLES = 2  # per class: below this a storyline keeps its rules
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


# --------------------------------------------------------------------------- features


_TOKENS: dict[str, str] = {}  # word as written -> folded and stemmed: news repeats its words


def _text_words(text: str) -> list[str]:
    tokens = _TOKENS
    out = []
    for word in _WORD.findall(text):
        token = tokens.get(word)
        if token is None:
            if len(tokens) >= 1 << 17:
                tokens.clear()  # bounded: a long-running daemon meets ever new words
            token = tokens[word] = stem(fold_word(word))
        out.append(token)
    return out


GATE = "first-group+model_candidates"  # what is_candidate asks (in a model's rules fingerprint)


def is_candidate(explanation: Explanation) -> bool:
    """True when the rules found a term of the storyline's first group (``all[0]``, or ``any``
    when it has no ``all``), kept or dropped by a context word, or one of its
    ``model_candidates``."""
    return _first_group_found(explanation) or _candidate_terms_found(explanation)


def _first_group_found(explanation: Explanation) -> bool:
    first = explanation.groups[0] if explanation.groups else None
    return first is not None and first.rule not in NON_GROUP_RULES and bool(
        first.hits or first.discarded)


def _candidate_terms_found(explanation: Explanation) -> bool:
    last = explanation.groups[-1] if explanation.groups else None  # model_candidates come last
    return last is not None and last.rule == "model_candidates" and bool(last.hits)


def features(title: str, summary: str, explanation: Explanation) -> dict[str, float]:
    """The named features of one item for one storyline (see the module docstring)."""
    return {**rule_features(explanation), **text_features(title, summary)}


def rule_features(explanation: Explanation) -> dict[str, float]:
    """The features read from the rules' explanation (named apart from the text's ``t:``/``s:``)."""
    out: dict[str, float] = {}
    out["rule:matched"] = 1.0 if explanation.matched else 0.0
    out["rule:score"] = explanation.score / 100.0
    if explanation.vetoes:
        out["rule:vetoed"] = 1.0
        for hit in explanation.vetoes:
            out[f"veto={hit.term}"] = 1.0
    if explanation.decision.startswith("the groups are never within"):
        out["rule:near-failed"] = 1.0
    if not _first_group_found(explanation) and _candidate_terms_found(explanation):
        out["candidate:model_candidates"] = 1.0  # scored only because of those terms
    groups = [g for g in explanation.groups if g.rule not in NON_GROUP_RULES]
    missing = 0
    for group in groups:
        name = group.rule
        if group.hits:
            out[f"{name}:hit"] = 1.0
            out[f"{name}:best"] = max(h.score for h in group.hits) / 100.0
            if any(h.field == "title" for h in group.hits):
                out[f"{name}:title"] = 1.0
            for hit in group.hits:
                out[f"{name}={hit.term.lower()}"] = 1.0
                # the words as written: "released" (it happened) is not "release" (it may)
                out[f"{name}~{'_'.join(fold_word(w) for w in _WORD.findall(hit.found))}"] = 1.0
        else:
            missing += 1
        if group.discarded:
            out[f"{name}:dropped"] = 1.0
            for _hit, why in group.discarded:
                blocker = why.split(" within ", 1)[0].strip("'\"").lower()
                out[f"dropped-by={blocker}"] = 1.0
    if missing:
        out["rule:missing"] = float(missing)
    gap = _gap(groups)
    if gap is not None:
        out[gap] = 1.0
    return out


def text_features(title: str, summary: str) -> dict[str, float]:
    """The word and word-pair features of the title and (weighted less) the summary: the same
    for every storyline, so ``text_vector`` computes them once per item."""
    out: dict[str, float] = {}
    for prefix, text, weight in (("t", title, TEXT_WEIGHT), ("s", summary, TEXT_WEIGHT * SUMMARY_WEIGHT)):
        words = _text_words(text)
        for i, word in enumerate(words):
            out[f"{prefix}:{word}"] = weight
            if i:
                out[f"{prefix}:{words[i - 1]}_{word}"] = weight
    return out


def text_vector(title: str, summary: str) -> list[tuple[int, float]]:
    """``text_features`` hashed: pass it to ``Model.probability`` for every model of one item."""
    return _vector(text_features(title, summary))


def _gap(groups: Sequence[Any]) -> str | None:
    """Proximity of the first two groups' hits: the closest pair in one field, bucketed."""
    hit_groups = [g.hits for g in groups if g.hits]
    if len(groups) < 2 or len(hit_groups) < 2:
        return None
    first, second = groups[0].hits, groups[1].hits
    if not first or not second:
        return None
    gaps = [abs(a.position - b.position) for a in first for b in second if a.field == b.field]
    if not gaps:
        return "gap:fields"
    best = min(gaps)
    return "gap<=3" if best <= 3 else "gap<=8" if best <= 8 else "gap>8"


def _index(name: str) -> int:
    return zlib.crc32(name.encode("utf-8")) & ((1 << DIM_BITS) - 1)


def _vector(named: dict[str, float]) -> list[tuple[int, float]]:
    merged: dict[int, float] = {}
    for name, value in named.items():
        if value:
            index = _index(name)
            merged[index] = merged.get(index, 0.0) + value
    return list(merged.items())


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Example:
    """One labelled item for one storyline, with the rules' explanation of it."""

    key: str  # a stable id: the label id, or the stored item id
    title: str
    summary: str
    explanation: Explanation
    label: bool
    vector: tuple[tuple[int, ...], tuple[float, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pairs = _vector(features(self.title, self.summary, self.explanation)) if is_candidate(
            self.explanation) else []
        object.__setattr__(self, "vector", (tuple(i for i, _v in pairs), tuple(v for _i, v in pairs)))


@dataclass(frozen=True)
class Contribution:
    feature: str
    value: float
    weight: float

    @property
    def contribution(self) -> float:
        return self.value * self.weight

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "value": round(self.value, 3), "weight": round(self.weight, 4),
                "contribution": round(self.contribution, 4)}


@dataclass
class Model:
    """A logistic model for one storyline. ``probability`` is 0 for non-candidates."""

    storyline_id: str
    bias: float = 0.0
    weights: dict[int, float] = field(default_factory=dict)  # sparse: hashed index -> weight
    threshold: float = 0.5
    examples: int = 0
    positives: int = 0
    dim_bits: int = DIM_BITS
    rules: str = ""  # rules_fingerprint() of the storyline it was trained with ("" if not recorded)
    trained_on: str = ""  # what it was trained on, for people (a model file says it)
    # The desk's layer (``desk_fit``): the judged items' verdicts by headline key (``headline_key``),
    # whether the rules (or the model file) still decide every other item, and why.
    overrides: dict[str, bool] = field(default_factory=dict)
    neighbours: list[tuple[bool, dict[int, float]]] = field(default_factory=list)  # verdicts
    reach: float = 0.0  # the similarity from which a verdict decides an item (0: none does)
    stands_aside: bool = False
    on_rules: bool = False  # desk_fit on the rules (no model file): they decide what no verdict reaches
    note: str = ""

    def override(self, title: str) -> bool | None:
        """The desk's verdict on an item with this headline, if it judged one."""
        return self.overrides.get(headline_key(title)) if self.overrides else None

    def probability(self, title: str, summary: str, explanation: Explanation,
                    text: list[tuple[int, float]] | None = None) -> float:
        """P(the item belongs to the storyline); ``text`` is ``text_vector(title, summary)`` when
        the caller has it already (one item, several models)."""
        if not is_candidate(explanation):
            return 0.0
        if self.overrides and (judged := self.override(title)) is not None:
            return 1.0 if judged else 0.0
        weights = self.weights
        if text is None:
            text = text_vector(title, summary)
        z = self.bias
        for index, value in _vector(rule_features(explanation)):
            z += value * weights.get(index, 0.0)
        for index, value in text:
            z += value * weights.get(index, 0.0)
        p = _sigmoid(z)
        if self.reach and self.neighbours:  # a verdict on a similar item decides it (desk_fit)
            s, label = _nearest(similarity_vector(title, summary), self.neighbours)
            if s >= self.reach and label != (p >= self.threshold):
                t = self.threshold
                return t + (1.0 - t) * s if label else t * (1.0 - s)
        return p

    def desk_reason(self, title: str, summary: str, explanation: Explanation) -> str | None:
        """Why the desk's layer decides this item, if it does (``desk_fit``)."""
        if not is_candidate(explanation):
            return None
        if self.overrides and (judged := self.override(title)) is not None:
            return f"decided as the desk judged this item ({'a match' if judged else 'not a match'})"
        if self.reach and self.neighbours:
            s, label = _nearest(similarity_vector(title, summary), self.neighbours)
            before = Model(self.storyline_id, bias=self.bias, weights=self.weights, threshold=self.threshold)
            if s >= self.reach and label != before.decide(title, summary, explanation):
                return (f"decided as the desk judged a similar item (similarity {s:.2f}, reach "
                        f"{self.reach:.2f}: {'a match' if label else 'not a match'})")
        return None

    def decide(self, title: str, summary: str, explanation: Explanation) -> bool:
        return self.probability(title, summary, explanation) >= self.threshold

    def explain(self, title: str, summary: str, explanation: Explanation, *,
                top: int = 8) -> list[Contribution]:
        """The features that moved this item's probability most, largest first."""
        if not is_candidate(explanation):
            return []
        found = [Contribution(name, value, self.weights.get(_index(name), 0.0))
                 for name, value in features(title, summary, explanation).items() if value]
        found = [c for c in found if c.weight]
        found.sort(key=lambda c: -abs(c.contribution))
        return found[:top]

    def render(self, title: str, summary: str, explanation: Explanation, *, top: int = 6) -> str:
        """Two or three lines for ``monitor check``: probability, decision, what moved it."""
        if not is_candidate(explanation):
            return "  learned: no term of the first group found, not scored (no match)"
        p = self.probability(title, summary, explanation)
        verdict = "MATCH" if p >= self.threshold else "no match"
        rules = "match" if explanation.matched else "no match"
        moved = "" if (p >= self.threshold) == explanation.matched else " — the model overrules the rules"
        lines = [f"  learned: probability {p:.2f} (threshold {self.threshold:.2f}) → {verdict}; "
                 f"rules alone: {rules}{moved}"]
        parts = [f"{c.feature} {c.contribution:+.2f}" for c in self.explain(title, summary, explanation,
                                                                         top=top)]
        if (desk := self.desk_reason(title, summary, explanation)) is not None:
            lines.append(f"  {desk}")
            parts = []
        elif self.note:
            lines.append(f"  desk: {self.note}")
        if parts:
            lines.append("  top features: " + ", ".join(parts) + f"; bias {self.bias:+.2f}")
        lines.append(f"  trained on {self.examples} candidate examples ({self.positives} positive)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = {"format": MODEL_FORMAT, "storyline": self.storyline_id, "bias": self.bias,
               "threshold": self.threshold, "examples": self.examples, "positives": self.positives,
               "dim_bits": self.dim_bits, "rules": self.rules, "trained_on": self.trained_on,
               "weights": {str(i): w for i, w in sorted(self.weights.items())}}
        if self.overrides or self.stands_aside or self.note:  # the desk's layer (desk_fit)
            out.update(overrides=dict(sorted(self.overrides.items())), stands_aside=self.stands_aside,
                       on_rules=self.on_rules, note=self.note, reach=self.reach,
                       neighbours=[[label, {str(i): w for i, w in sorted(v.items())}]
                                   for label, v in self.neighbours])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Model:
        if data.get("format") != MODEL_FORMAT:
            raise ValueError(f"not a learned model of format {MODEL_FORMAT!r}")
        if data.get("dim_bits") != DIM_BITS:
            raise ValueError(f"a model with {data.get('dim_bits')}-bit feature hashing; expected {DIM_BITS}")
        return cls(storyline_id=data["storyline"], bias=float(data["bias"]),
                   weights={int(i): float(w) for i, w in data["weights"].items()},
                   threshold=float(data["threshold"]), examples=int(data["examples"]),
                   positives=int(data["positives"]), rules=str(data.get("rules", "")),
                   trained_on=str(data.get("trained_on", "")),
                   overrides={str(k): bool(v) for k, v in data.get("overrides", {}).items()},
                   stands_aside=bool(data.get("stands_aside", False)), note=str(data.get("note", "")),
                   on_rules=bool(data.get("on_rules", False)),
                   reach=float(data.get("reach", 0.0)),
                   neighbours=[(bool(label), {int(i): float(w) for i, w in v.items()})
                               for label, v in data.get("neighbours", [])])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Model:
        return cls.from_dict(json.loads(text))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def train(examples: Sequence[Example], *, storyline_id: str | None = None, l2: float | None = None,
          epochs: int | None = None, learning_rate: float | None = None, seed: int = 0,
          threshold: float = 0.5, start: Model | None = None) -> Model:
    """Fit the logistic model on the candidates among ``examples`` (AdaGrad SGD, L2). With
    ``start``, correct that model instead (``_fine_tune``)."""
    l2 = L2 if l2 is None else l2
    epochs = EPOCHS if epochs is None else epochs
    learning_rate = LEARNING_RATE if learning_rate is None else learning_rate
    sid = storyline_id or (examples[0].explanation.storyline_id if examples else "")
    rows = [(e.vector[0], e.vector[1], 1.0 if e.label else 0.0)
            for e in examples if is_candidate(e.explanation)]
    positives = sum(1 for _i, _v, y in rows if y)
    negatives = len(rows) - positives
    model = Model(sid, threshold=threshold, examples=len(rows), positives=positives)
    if start is not None:
        return _fine_tune(model, start, [e for e in examples if is_candidate(e.explanation)], seed)
    if not rows:
        return model
    if not positives or not negatives:  # one class only: a constant
        model.bias = 4.0 if positives else -4.0
        return model
    positive_weight = min(MAX_POSITIVE_WEIGHT, max(1.0, negatives / positives))
    size = 1 << DIM_BITS
    weights = [0.0] * size
    squares = [1e-8] * size
    bias, bias_square = math.log(positives / negatives), 1.0
    order = list(range(len(rows)))
    rng = random.Random(seed)
    exp, sqrt = math.exp, math.sqrt
    for _epoch in range(epochs):
        rng.shuffle(order)
        for r in order:
            indices, values, y = rows[r]
            z = bias
            for index, value in zip(indices, values, strict=True):
                z += value * weights[index]
            p = 1.0 / (1.0 + exp(-z)) if z >= -30 else 0.0
            if -SETTLED < p - y < SETTLED:
                continue  # confidently right already: the update would be negligible
            g = (p - y) * (positive_weight if y else 1.0)
            bias_square += g * g
            bias -= learning_rate * g / sqrt(bias_square)
            for index, value in zip(indices, values, strict=True):
                w = weights[index]
                grad = g * value + l2 * w
                s = squares[index] + grad * grad
                squares[index] = s
                weights[index] = w - learning_rate * grad / sqrt(s)
    model.bias = bias
    model.weights = {i: round(w, 6) for i, w in enumerate(weights) if abs(w) > 1e-6}
    return model


FINE_TUNE_RATE = 0.05  # per step, per word feature: small, so that a verdict moves its own words
FINE_TUNE_MARGIN = 0.1  # a corrected example is settled this far past the threshold
FINE_TUNE_STEPS = 200


def _fine_tune(model: Model, start: Model, examples: Sequence[Example], seed: int) -> Model:
    """``start`` corrected by ``examples``: only the weights of their words move, and only until
    each example is decided right with a margin; the bias and the rule features stay as
    ``start`` learned them from its thousands of examples. A handful of desk verdicts thus fixes
    those items and their like, not every decision that shares "hostages" or a rule hit."""
    weights = dict(start.weights)
    threshold = start.threshold
    rows = []
    for e in examples:
        fixed = start.bias + sum(v * weights.get(i, 0.0) for i, v in _vector(rule_features(e.explanation)))
        rows.append((fixed, text_vector(e.title, e.summary), e.label))
    rng = random.Random(seed)
    for _step in range(FINE_TUNE_STEPS):
        moved = False
        rng.shuffle(rows)
        for fixed, text, label in rows:
            z = fixed + sum(v * weights.get(i, 0.0) for i, v in text)
            p = _sigmoid(z)
            if (p >= threshold + FINE_TUNE_MARGIN) if label else (p <= threshold - FINE_TUNE_MARGIN):
                continue
            moved = True
            step = -FINE_TUNE_RATE if label else FINE_TUNE_RATE  # the same small step for each word
            for index, _value in text:
                weights[index] = weights.get(index, 0.0) - step
        if not moved:
            break
    model.bias, model.weights = start.bias, {i: round(w, 6) for i, w in weights.items() if abs(w) > 1e-6}
    return model


# --------------------------------------------------------------------------- cross-validation


def _headline(title: str) -> str:
    return " ".join(_text_words(title))


def headline_key(title: str) -> str:
    """What a model keeps of a judged item: a hash of its folded, stemmed headline (no text), so
    that a verdict also decides the syndicated copies of the item judged."""
    return hashlib.sha1(_headline(title).encode("utf-8")).hexdigest()[:16]


def fold_of(key: str, k: int) -> int:
    """The fold of an id: its sha1 hash, divided by 5 first so that it is independent of the
    held-out fifth (``sha1 % 5 == 0``) that ``monitor eval`` keeps aside."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) // 5 % k


def folds(examples: Sequence[Example], k: int) -> list[int]:
    """A fold per example, by id hash; examples with the same headline share the fold of the
    smallest id among them, so the same text is never on both sides."""
    first: dict[str, str] = {}
    for e in examples:
        head = _headline(e.title) or e.key
        if head not in first or e.key < first[head]:
            first[head] = e.key
    return [fold_of(first[_headline(e.title) or e.key], k) for e in examples]


def cross_val_scores(examples: Sequence[Example], *, k: int = 5,
                     fitter: Callable[[Sequence[Example]], Model] | None = None
                     ) -> tuple[list[float], list[Model]]:
    """Out-of-fold probabilities (in the order of ``examples``) and the k fold models.

    ``fitter`` trains on the other folds (default ``train``); an example is only ever scored by
    a model that never saw it, nor any example with the same headline."""
    fitter = fitter or train
    assigned = folds(examples, k)
    scores = [0.0] * len(examples)
    models = []
    for fold in range(k):
        training = [e for e, f in zip(examples, assigned, strict=True) if f != fold]
        model = fitter(training)
        models.append(model)
        for i, (e, f) in enumerate(zip(examples, assigned, strict=True)):
            if f == fold:
                scores[i] = model.probability(e.title, e.summary, e.explanation)
    return scores, models


def choose_threshold(scores: Sequence[float], labels: Sequence[bool], *,
                     default: float = 0.5) -> float:
    """The threshold with the best F1 over these scores (ties: lower C_det, then nearer 0.5)."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return default
    best: tuple[float, float, float] | None = None
    chosen = default
    candidates = sorted({round(s, 4) for s in scores if s > 0.0})
    for t in candidates:
        tp = sum(1 for s, y in zip(scores, labels, strict=True) if y and s >= t)
        fp = sum(1 for s, y in zip(scores, labels, strict=True) if not y and s >= t)
        fn = positives - tp
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        cost = fn / positives + 4.9 * fp / negatives
        key = (f1, -cost, -abs(t - 0.5))
        if best is None or key > best:
            best, chosen = key, t
    # the midpoint to the next lower score: a margin on both sides of the chosen cut
    lower = [s for s in candidates if s < chosen]
    return round((chosen + lower[-1]) / 2, 4) if lower else chosen


def fit(examples: Sequence[Example], *, k: int = 5, threshold: float | None = None,
        start: Model | None = None) -> Model:
    """Train on every example; the threshold is ``threshold`` if given, else chosen by k-fold
    cross-validation over ``examples`` (never on the examples a fold model was trained on).
    With ``start`` (fine-tuning), the threshold is ``start``'s unless ``threshold`` is given: a
    desk's few verdicts correct the model, they are too few to choose a cut."""
    model = train(examples, start=start)
    if start is not None:
        model.threshold = start.threshold if threshold is None else threshold
        model.rules = start.rules
        model.trained_on = (f"{start.trained_on or 'a model file'}; then {model.examples} stored "
                            "candidate examples")
        return model
    if threshold is not None:
        model.threshold = threshold
        return model
    if model.positives >= MIN_EXAMPLES and model.examples - model.positives >= MIN_EXAMPLES:
        scores, _models = cross_val_scores(examples, k=k)
        model.threshold = choose_threshold(scores, [e.label for e in examples])
    return model


# --------------------------------------------------------------------------- the desk's verdicts


FEW = 100  # fewer candidate examples than this (a desk's verdicts): the rules stay the prior
REACHES = tuple(round(0.9 - 0.05 * i, 2) for i in range(13))  # 0.9 .. 0.3: what CV picks from


def prior_model(storyline_id: str, strength: float = 2.0) -> Model:
    """The rules as a model: probability ``sigmoid(strength)`` for a candidate the rules match,
    ``sigmoid(-strength)`` for one they do not; threshold 0.5, so it decides exactly as the rules.
    The base of ``desk_fit`` for a storyline without a model file."""
    return Model(storyline_id, bias=-strength, weights={_index("rule:matched"): 2.0 * strength},
                 threshold=0.5)


def similarity_vector(title: str, summary: str) -> dict[int, float]:
    """An item's content words (``monitor.stories.words``: stop words out), each weighted by how
    rare it is in news (IDF; a summary word half), hashed (no text is kept), unit length: the
    dot product of two is their cosine similarity."""
    from .stories import idf, words

    weights: dict[str, float] = {}
    for word in words(summary):
        weights[word] = 0.5 * idf(word)
    for word in words(title):
        weights[word] = idf(word)
    norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
    out: dict[int, float] = {}
    for word, w in weights.items():
        index = _index(word)
        out[index] = out.get(index, 0.0) + round(w / norm, 5)
    return out


def _cosine(a: dict[int, float], b: dict[int, float]) -> float:
    if len(b) < len(a):
        a, b = b, a
    return sum(v * b.get(i, 0.0) for i, v in a.items())


def _nearest(vector: dict[int, float], neighbours: Sequence[tuple[bool, dict[int, float]]]
             ) -> tuple[float, bool]:
    best, label = 0.0, False
    for judged, other in neighbours:
        s = _cosine(vector, other)
        if s > best:
            best, label = s, judged
    return best, label


SURE = 1.645  # one-sided 95 %: how sure leave-one-out must be that a verdict's reach decides right


def _surely_right(right: int, flips: int) -> bool:
    """True when the Wilson lower bound of ``right / flips`` at ``SURE`` is above one half: the
    decisions the verdicts changed in leave-one-out were right more often than chance can
    explain (3 of 3, 6 of 7, 8 of 10; not 2 of 2, nor 5 of 6)."""
    if not flips:
        return False
    z, p = SURE, right / flips
    centre = p + z * z / (2 * flips)
    spread = z * math.sqrt(p * (1 - p) / flips + z * z / (4 * flips * flips))
    return (centre - spread) / (1 + z * z / flips) > 0.5


def desk_fit(examples: Sequence[Example], base: Model | None = None, *,
             storyline_id: str | None = None) -> Model:
    """A storyline corrected by a few verdicts, never made worse by them.

    ``base`` is the storyline's model file, or (None) its rules (``prior_model``): the prior,
    which decides every item no verdict reaches. Two layers on top:

    * the judged items (and their copies: same headline) are decided as the desk said
      (``Model.overrides``): a verdict always fixes the decision it is about;
    * an item whose nearest judged item (cosine similarity of rare words, ``similarity_vector``)
      is at least ``reach`` similar, and was judged the other way than ``base`` decides this
      one, is decided as that verdict: a verdict moves the decisions near it, not the storyline.
      ``reach`` is chosen by leave-one-out on the verdicts (each decided by the others', never
      by one of the same headline): the highest of ``REACHES`` with the fewest verdicts decided
      wrong (a half-way reach was tried: on bench/editor.py it made one storyline worse after
      30 verdicts) among those whose changed decisions were right more often than chance
      explains (``_surely_right``: a one-verdict gain was not enough, tests/test_desk.py found
      orders of ten verdicts it made worse). Else no verdict reaches
      further than its own headline: the layer stands aside (``stands_aside``, ``note`` says
      why) and ``base`` decides.
    """
    found = [e for e in examples if is_candidate(e.explanation)]
    sid = storyline_id or (base.storyline_id if base is not None else
                           found[0].explanation.storyline_id if found else "")
    prior = base if base is not None else prior_model(sid)
    what = "the model file" if base is not None else "the rules"
    vectors = [similarity_vector(e.title, e.summary) for e in found]
    heads = [_headline(e.title) or e.key for e in found]
    decided = [prior.probability(e.title, e.summary, e.explanation) >= prior.threshold for e in found]
    before = sum(1 for d, e in zip(decided, found, strict=True) if d != e.label)
    nearest = []  # per verdict: the most similar other verdict (another headline)
    for i, vector in enumerate(vectors):
        others = [(found[j].label, vectors[j]) for j in range(len(found)) if heads[j] != heads[i]]
        nearest.append(_nearest(vector, others))
    best: tuple[int, float] | None = None
    fewest = before
    for reach in REACHES:  # the highest reach that does best: verdicts move what is nearest
        flips = [label == e.label for (s, label), d, e in zip(nearest, decided, found, strict=True)
                 if s >= reach and label != d]
        right = sum(flips)
        wrong = before - right + (len(flips) - right)
        fewest = min(fewest, wrong)
        if _surely_right(right, len(flips)) and (best is None or wrong < best[0]):
            best = (wrong, reach)
    positives = sum(1 for e in found if e.label)
    counted = f"{len(found)} verdict(s) ({positives} positive)"
    model = Model(sid, bias=prior.bias, weights=dict(prior.weights), threshold=prior.threshold,
                  examples=len(found), positives=positives, rules=prior.rules, on_rules=base is None)
    model.overrides = {headline_key(e.title): e.label for e in found}
    model.neighbours = [(e.label, v) for e, v in zip(found, vectors, strict=True)]
    if best is not None:
        model.reach = best[1]
        model.note = (f"learns: {counted}; each decided by the others' (reach {best[1]:.2f}): "
                      f"{best[0]} wrong, by {what} {before}")
    else:
        model.stands_aside = True
        model.note = (f"stands aside: {counted}; each decided by the others': "
                      f"{fewest} wrong at best, by {what} {before}")
    if base is not None:
        model.trained_on = (f"{base.trained_on or 'a model file'}; then {len(found)} stored "
                            "candidate examples")
    else:
        model.trained_on = f"the rules; then {len(found)} stored candidate examples"
    return model


# --------------------------------------------------------------------------- rules + models


class LearnedMatcher:
    """The matcher's interface (``match``, ``explain``, ``storylines``) with learned decisions for
    the storylines that have a model; the others keep their rules exactly."""

    def __init__(self, matcher: Matcher, models: dict[str, Model]) -> None:
        self.matcher = matcher
        self.models = dict(models)
        self.storylines = matcher.storylines
        # explained in the scan: the models' candidates, and the refining storylines (config
        # ``refines``), whose decision waits for the storyline they refine
        self._explained = set(self.models) | set(matcher.refines)

    def explain(self, title: str, summary: str) -> list[Explanation]:
        return self.matcher.explain(title, summary)

    def match(self, title: str, summary: str) -> list[Match]:
        # One scan of the text: the rules' lean decision for the storylines without a model, the
        # full explanation (the model's input) for candidates of those with one.
        matches, explained = self.matcher.match_explaining(title, summary, self._explained)
        text: list[tuple[int, float]] | None = None
        for explanation in explained:
            model = self.models.get(explanation.storyline_id)
            if model is None:  # a refining storyline without a model: its rules decide first
                if explanation.matched:
                    matches.append(rules_match(explanation))
                continue
            if text is None:
                text = text_vector(title, summary)
            p = model.probability(title, summary, explanation, text)
            if p >= model.threshold:
                rules = rules_match(explanation)
                if model.on_rules and explanation.matched:
                    matches.append(rules)  # the rules' prior decided as the rules: their score
                else:
                    matches.append(Match(explanation.storyline_id, round(100.0 * p, 1), rules.hits,
                                         decided_by="model" if not model.on_rules else "desk",
                                         evidence=evidence(model.explain(
                                             title, summary, explanation, top=12), title, summary)))
        return self.matcher.refine(matches, explained)


def evidence(contributions: Sequence[Contribution], title: str, summary: str,
             most: int = 5) -> tuple[str, ...]:
    """The words behind the features that pushed a model's decision up, most first, each once,
    as the item wrote them: ``t:hostag_as`` → "Hostages as", ``all[1]~holds`` → "Holds" (the
    rules' own summary features, such as ``rule:score`` or ``all[0]:title``, name no words)."""
    written: dict[str, str] = {}
    for word in _WORD.findall(f"{title} {summary}"):
        written.setdefault(stem(fold_word(word)), word)
        written.setdefault(fold_word(word), word)
    found: list[str] = []
    for contribution in contributions:
        if contribution.contribution <= 0:
            continue
        name = contribution.feature
        if name.startswith(("t:", "s:")):
            tokens = name[2:].split("_")
        elif "~" in name or "=" in name:
            tokens = name.split("~" if "~" in name else "=", 1)[1].replace("_", " ").split()
        else:
            continue
        words = " ".join(written.get(token, token) for token in tokens if token)
        if words and words.lower() not in (w.lower() for w in found):
            found.append(words)
    return tuple(found[:most])


def examples_for(matcher: Matcher, rows: Iterable[tuple[str, str, str, dict[str, bool]]]
                 ) -> dict[str, list[Example]]:
    """Per storyline, examples from ``(key, title, summary, {storyline: label})`` rows; each text
    is explained once for every storyline."""
    out: dict[str, list[Example]] = {}
    for key, title, summary, labels in rows:
        if not labels:
            continue
        for explanation in matcher.explain(title, summary):
            label = labels.get(explanation.storyline_id)
            if label is not None:
                out.setdefault(explanation.storyline_id, []).append(
                    Example(key, title, summary, explanation, label))
    return out


def build_models(matcher: Matcher,
                 stored: Mapping[str, Sequence[tuple[str, str, str, bool]]], *,
                 thresholds: dict[str, float] | None = None, k: int = 5,
                 starts: dict[str, Model] | None = None, few: int = FEW) -> dict[str, Model]:
    """A model per storyline from stored examples ``{storyline: [(key, title, summary, label)]}``.

    Each text is explained once for every storyline. A storyline with fewer than ``few``
    candidate examples (a desk's verdicts) gets ``desk_fit``: its model file (in ``starts``) or
    its rules, corrected by the examples only where leave-one-out shows that helps, and every
    judged item decided as judged. With more, a model file is fine-tuned by them (``fit``), and
    a storyline without one gets a model trained on its examples when at least ``MIN_EXAMPLES`` positive and
    negative candidates are stored; its threshold is ``thresholds[storyline]`` when given (> 0),
    else chosen by k-fold cross-validation. ``monitor train`` (labelled files, no desk) passes
    ``few=0``."""
    by_key: dict[str, tuple[str, str, dict[str, bool]]] = {}
    for storyline, rows in stored.items():
        for key, title, summary, label in rows:
            by_key.setdefault(key, (title, summary, {}))[2][storyline] = label
    examples = examples_for(matcher, ((key, t, s, labels) for key, (t, s, labels) in by_key.items()))
    models = {}
    for storyline, found in examples.items():
        candidates = [e for e in found if is_candidate(e.explanation)]
        positives = sum(1 for e in candidates if e.label)
        start = (starts or {}).get(storyline)
        fixed = (thresholds or {}).get(storyline) or None
        if len(candidates) < few:  # a desk's verdicts: the rules or the model file stay the prior
            if candidates:
                models[storyline] = desk_fit(found, start, storyline_id=storyline)
            continue
        if start is not None:  # many labelled examples on a model file: they fine-tune it
            models[storyline] = fit(found, threshold=fixed, start=start)
            continue
        if positives < MIN_EXAMPLES or len(candidates) - positives < MIN_EXAMPLES:
            continue
        models[storyline] = fit(found, k=k, threshold=fixed)
    return models


def rules_fingerprint(storyline: Any) -> str:
    """What a model's features depend on in a storyline's config: its rules (terms, contexts,
    windows, thresholds), not its name, description or learned-layer settings. A model trained
    with other rules would read features that no longer mean what they meant."""
    rules = tuple(getattr(storyline, name) for name in (
        "id", "all", "any", "none", "threshold", "near", "not_near", "not_near_window",
        "title_weight", "min_score", "model_candidates"))
    settings = (MODEL_FORMAT, DIM_BITS, SUMMARY_WEIGHT, TEXT_WEIGHT, GATE)
    return hashlib.sha1(repr((settings, rules)).encode("utf-8")).hexdigest()[:16]


def examples_fingerprint(storyline: Any, rows: Sequence[tuple[str, str, str, bool]],
                         threshold: float = 0.0, start: Model | None = None) -> str:
    """What a trained model depends on: this module's format and settings, the storyline's rules
    (its config's repr), the threshold setting, the model it is fine-tuned from (if any) and
    every example. Equal fingerprints: the saved model can be reused instead of trained again."""
    digest = hashlib.sha1()
    settings = (MODEL_FORMAT, DIM_BITS, SUMMARY_WEIGHT, TEXT_WEIGHT, L2, EPOCHS, LEARNING_RATE, SETTLED,
                MAX_POSITIVE_WEIGHT, MIN_EXAMPLES, GATE, threshold, repr(storyline),
                ("desk", FEW, REACHES, SURE))
    digest.update(repr(settings).encode("utf-8"))
    if start is not None:
        digest.update(b"\x1dstart" + start.to_json().encode("utf-8"))
    for key, title, summary, label in rows:
        digest.update(f"\x1e{key}\x1f{title}\x1f{summary}\x1f{int(label)}".encode())
    return digest.hexdigest()
