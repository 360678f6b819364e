"""Match: plain-text title + summary in, the storylines they belong to out.

``Matcher`` is built once from the configured storylines and then called for every item.
Pure: no I/O, no globals, no clock. The rules of a storyline (see ``StorylineConfig``):

* ``all``: a list of groups; every group must match (any term within a group);
* ``any``: when given, at least one of these must match too;
* ``none``: any match vetoes the storyline;
* ``not_near``: a hit of an ``all``/``any`` term is discarded when one of these words is within
  ``not_near_window`` words of it in the same sentence ("calls for a ceasefire");
* ``near``: when > 0, every group must have a hit within ``near`` words of a hit of the first group,
  in the same field;
* ``threshold``: the fuzzy score (0-100) a term needs to match a word n-gram of the text;
* ``min_score``: the storyline score (0-100) a match needs (the score rewards the title and proximity).

How a term matches. Title and summary are tokenised once per item: words are case-folded, diacritics
and apostrophes dropped ("Qatar's" -> "qatar"), hyphens split words, and the last word of every n-gram
is reduced by a small suffix stemmer (talks/talk, hostage/hostages, release/released/releasing,
swap/swapped). An n-gram's key is its words joined without spaces, so "cease-fire", "cease fire" and
"ceasefire" have the same key. A term matches a key exactly (dict lookup), or, if the term has more
than 5 letters, fuzzily: the Indel similarity (``rapidfuzz.fuzz.ratio``) of the two keys after
``translit`` (final h, doubled letters, e/a and o/u) >= ``threshold``, so that Haniyeh / Haniyah /
Haniya and al-Hayya / al-Hayyah match while "hostage deal" never matches "hostages in".
Terms of 5 letters or fewer match exactly only: "Cairo" never matches "Carlo", "truce" never
"trucker". Fuzzy results are cached per key, so a stream pays rapidfuzz once per new word; an n-gram
is only extended while some term key goes on from it or a fuzzy bucket holds keys that long, and
words no term can start with, exactly or fuzzily, are skipped (about half the words of a news text;
``Matcher._word`` says how that is decided without losing a match).

The score of a match: the mean over its groups of the best hit's score, each weighted by its field
(title 1.0, summary ``1 / title_weight``), times 1.0 when all groups meet in one sentence, 0.9
when they meet in one field, 0.8 otherwise.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mypy_extensions import mypyc_attr
from rapidfuzz import fuzz, process
from rapidfuzz.distance import LCSseq

from .config import StorylineConfig
from .models import Match, TermHit

__all__ = ["NON_GROUP_RULES", "Explanation", "GroupReport", "Matcher", "fold_word", "rules_match", "stem",
           "term_key", "translit"]

SHORT_TERM = 5  # letters: a term this short must match exactly
_MAX_CACHE = 200_000
_WORD = re.compile(r"[^\W_]+(?:['’ʼ`][^\W_]+)*|[.!?;|•]+(?=\s|$)|\s[-–—:]\s")
# "CAIRO (AP) — ", "DOHA/WASHINGTON: ", "GAZA STRIP, Palestinian Territories: ": where it was filed,
# not what it is about. Skipped: a "Cairo:" dateline is not the Cairo track.
_DATELINE = re.compile(
    r"[A-Z][A-Z'’.-]{2,}(?:[ /,]{1,2}[A-Z][A-Za-z'’.-]*){0,4}\s*(?:\([^)]{1,30}\))?\s*(?::|—|–|--?)\s")
_APOSTROPHES = str.maketrans("", "", "'’ʼ`")
_NO_PLURAL = frozenset({
    "hamas", "abbas", "texas", "paris", "crisis", "analysis", "basis", "thesis", "tunis", "christmas",
    "athens", "always", "perhaps", "whereas", "overseas", "aegis", "genesis", "emphasis", "oasis",
})
_VOWELS = frozenset("aeiouy")
_UNDOUBLE_KEEP = frozenset("lsz")


def fold_word(word: str) -> str:
    """Lowercase, no diacritics, no possessive 's, no apostrophes: ``"Qatar’s"`` -> ``"qatar"``."""
    word = word.lower()
    if not word.isascii():
        word = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    if len(word) > 2 and word[-2] in "'’ʼ`" and word[-1] == "s":
        word = word[:-2]
    return word.translate(_APOSTROPHES)


def stem(word: str) -> str:
    """A light suffix stemmer for folded English words; the same function reduces terms and text.

    >>> [stem(w) for w in ("talks", "hostages", "released", "releasing", "swapped", "truce", "trucker")]
    ['talk', 'hostag', 'releas', 'releas', 'swap', 'truc', 'trucker']
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us")) and word not in _NO_PLURAL:
        word = word[:-1]
    for suffix, minimum in (("ing", 6), ("ed", 5)):
        if word.endswith(suffix) and len(word) >= minimum and _VOWELS & set(word[:-len(suffix)]):
            word = word[:-len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in _VOWELS | _UNDOUBLE_KEEP:
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def _words(text: str) -> list[str]:
    return [w for w in (m.group(0) for m in _WORD.finditer(text)) if w[0].isalnum()]


def term_key(term: str) -> str:
    """The key a term is looked up by: folded words joined, the last one stemmed."""
    words = [fold_word(w) for w in _words(term)]
    if not words:
        return ""
    return "".join(words[:-1]) + stem(words[-1])


def translit(key: str) -> str:
    """A key with the usual transliteration noise removed, for fuzzy comparison only.

    A final ``h`` after a vowel goes (Haniyeh / Haniyah -> ``haniye`` / ``haniya``), doubled letters
    collapse (al-Hayya -> ``alhaya``), and ``e`` / ``o`` read as ``a`` / ``u`` (Haniye = Haniya,
    Mohammed = Muhammad).

    >>> translit("haniyeh") == translit("haniya") == translit("haniyah")
    True
    """
    if len(key) > 2 and key[-1] == "h" and key[-2] in "aeiou":
        key = key[:-1]
    out: list[str] = []
    for char in key.replace("e", "a").replace("o", "u"):
        if not out or out[-1] != char:
            out.append(char)
    return "".join(out)


def _initial(key: str) -> str:
    """The fuzzy bucket of a key: the first two letters of its ``translit`` form.

    Fuzzy matching assumes the first two letters are right once e/a, o/u and doubled letters are
    folded (el-Sisi / al-Sisi, Osama / Usama): that keeps rapidfuzz off almost every n-gram.
    """
    head = key[:4].replace("e", "a").replace("o", "u")
    if len(head) > 1 and head[0] == head[1]:
        head = head[0] + head[2:]
    return head[:2]


# --------------------------------------------------------------------------- explanation


@dataclass(frozen=True)
class GroupReport:
    """One rule of a storyline (``all[0]``, ``any``, ``none``, ``not_near``) and what it found."""

    rule: str
    terms: tuple[str, ...]
    hits: tuple[TermHit, ...] = ()
    discarded: tuple[tuple[TermHit, str], ...] = ()  # hits dropped by a context veto, and why
    matched: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "terms": list(self.terms),
            "matched": self.matched,
            "hits": [_hit_dict(h) for h in self.hits],
            "discarded": [dict(_hit_dict(h), reason=why) for h, why in self.discarded],
        }


@dataclass(frozen=True)
class Explanation:
    """The whole reasoning of one storyline on one item."""

    storyline_id: str
    name: str
    matched: bool
    score: float
    decision: str  # one line: why it matched or did not
    groups: tuple[GroupReport, ...] = ()
    vetoes: tuple[TermHit, ...] = ()

    def render(self) -> str:
        mark = "MATCH" if self.matched else "no match"
        lines = [f"{self.storyline_id} ({self.name}): {mark}, score {self.score:.0f} — {self.decision}"]
        for group in self.groups:
            if group.rule == "none" and not group.hits:
                continue
            state = "ok" if group.matched else "--"
            if group.rule in ("none", "not_near"):
                state = "VETO" if group.hits else "ok"
            found = "; ".join(_render_hits(group.hits)) or "nothing found"
            lines.append(f"  [{state:>4}] {group.rule}: {found}")
            dropped = _terms_by_word(((h.found, h.field, why), h.term) for h, why in group.discarded)
            for (found_word, where, why), terms in dropped.items():  # one line per word, as above
                lines.append(f"         dropped {' / '.join(terms)} → {found_word!r} ({where}): {why}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "storyline": self.storyline_id,
            "name": self.name,
            "matched": self.matched,
            "score": round(self.score, 1),
            "decision": self.decision,
            "groups": [g.to_dict() for g in self.groups],
            "vetoes": [_hit_dict(h) for h in self.vetoes],
        }


def _render_hits(hits: tuple[TermHit, ...]) -> list[str]:
    """One entry per word found: terms that found the same word are listed together
    (``hostage / hostages → 'hostages'``), so a word is not shown as two pieces of evidence."""
    grouped = _terms_by_word(((h.found, h.field, h.position, h.score), h.term) for h in hits)
    return [f"{' / '.join(terms)} → {found!r} ({score:.0f}, {field} word {position})"
            for (found, field, position, score), terms in grouped.items()]


def _terms_by_word(keyed: Iterable[tuple[Any, str]]) -> dict[Any, list[str]]:
    """The terms of each key (a word found, where), in order of first appearance, each once."""
    out: dict[Any, list[str]] = {}
    for key, term in keyed:
        terms = out.setdefault(key, [])
        if term not in terms:
            terms.append(term)
    return out


def _hit_dict(hit: TermHit) -> dict[str, Any]:
    return {"term": hit.term, "found": hit.found, "score": round(hit.score, 1), "field": hit.field,
            "position": hit.position}


# --------------------------------------------------------------------------- matcher

# roles of a term within a storyline
_ALL, _ANY, _NONE, _NOT_NEAR = 0, 1, 2, 3
# the rules of a storyline that are not term groups of a match: ``none`` and ``not_near`` veto,
# ``model_candidates`` only tells the storyline's model to score the item
NON_GROUP_RULES = ("none", "not_near", "model_candidates")


# A word of the text, as the scan needs it (cached per word): folded, stemmed, fuzzy bucket initial
# or "" when no fuzzy match can start at it, live, n-grams of 2+ words may match fuzzily. A plain
# tuple to the type checker: the scan tells a mark by identity (``is _MARK``), and mypyc (setup.py)
# would make a fixed-size tuple type a C struct, boxed anew, never the same object.
_WordInfo = tuple  # (str, str, str, bool, bool)
# A sentence mark ("." "!" " - " ...) in a field's list of words: it ends a sentence, and the
# n-grams go over it (as if it were not there); never live.
_MARK: _WordInfo = ("", "", "", False, False)


class _Surface:
    """A field's text, to give the words of a hit as written. Their offsets are found (a second
    pass of ``_WORD``) only when a hit is shown or explained: most items' hits never are, as
    they match no storyline."""

    __slots__ = ("_spans", "start", "text")

    def __init__(self, text: str, start: int) -> None:
        self.text, self.start = text, start
        self._spans: list[tuple[int, int]] | None = None

    def words(self, first: int, last: int) -> str:
        """The text from the ``first``-th to the ``last``-th match of ``_WORD`` (after ``start``)."""
        if self._spans is None:
            self._spans = [m.span() for m in _WORD.finditer(self.text, self.start)]
        return self.text[self._spans[first][0]:self._spans[last][1]]


@dataclass
class _Occurrence:
    """A term found in the text."""

    field: str
    position: int  # word index within the field
    sentence: int  # sentence index over title + summary (the title is sentence 0)
    score: float
    surface: _Surface
    first: int  # the n-gram's first and last matches of _WORD in the field
    last: int

    @property
    def found(self) -> str:
        """The words of the text that matched, as written."""
        return self.surface.words(self.first, self.last)


@dataclass
class _Storyline:
    config: StorylineConfig
    slots: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (rule, terms)
    summary_weight: float = 1.0
    candidates_slot: int = -1  # the slot of ``model_candidates`` (terms that only gate the model)


# compiled by mypyc (setup.py); still a class Python code may extend (the tests' unpruned matcher)
@mypyc_attr(allow_interpreted_subclasses=True)
class Matcher:
    """Built once from the storylines; ``match`` and ``explain`` an item's title and summary.

    >>> from monitor.config import StorylineConfig
    >>> m = Matcher([StorylineConfig("t", "T", all=(("ceasefire",), ("talks",)))])
    >>> [x.storyline_id for x in m.match("Cease-fire talk resumes in Doha", "")]
    ['t']
    """

    def __init__(self, storylines: Sequence[StorylineConfig]) -> None:
        self.storylines = tuple(storylines)
        self._lines: list[_Storyline] = []
        self._required: list[set[int]] = []  # per storyline: the slots (all groups, any) that must hit
        self._terms: list[str] = []  # term id -> the term as configured
        self._term_ids: dict[str, int] = {}
        self._exact: dict[str, list[int]] = {}  # key -> term ids
        # (words in the n-gram, initial) -> (translit keys, term ids); a term of w words is compared with
        # n-grams of w - 1 and w words (al-Hayya / Alhayyah); "cease fire" = "ceasefire" is exact anyway
        self._fuzzy_keys: dict[tuple[int, str], tuple[list[str], list[int]]] = {}
        self._term_keys: list[str] = []
        self._uses: list[list[tuple[int, int]]] = []  # term id -> [(storyline index, slot index)]
        self._min_threshold = 100.0
        self._max_words = 1
        # [n] -> n-gram key -> its fuzzy matches (one dict per n: no tuple key to build per look-up)
        self._cache: list[dict[str, tuple[tuple[int, float], ...]]] = []
        self._word_cache: dict[str, _WordInfo] = {}
        self._prefixes: set[str] = set()  # every prefix of every exact key: where an n-gram can go on
        # fuzzy bucket initial -> n -> (shortest, longest) key of an n-gram worth comparing
        self._fuzzy_reach: dict[str, dict[int, tuple[float, float]]] = {}
        # fuzzy bucket initial -> [n] -> the longest key of more than n words worth comparing
        self._fuzzy_onward: dict[str, list[float]] = {}
        for index, config in enumerate(self.storylines):
            line = _Storyline(config, summary_weight=1.0 / max(getattr(config, "title_weight", 1.25), 1.0))
            slots: list[tuple[str, tuple[str, ...]]] = [(f"all[{j}]", g) for j, g in enumerate(config.all)]
            if config.any:
                slots.append(("any", config.any))
            slots.append(("none", config.none))
            slots.append(("not_near", tuple(getattr(config, "not_near", ()))))
            if getattr(config, "model_candidates", ()):
                line.candidates_slot = len(slots)
                slots.append(("model_candidates", tuple(config.model_candidates)))
            line.slots = slots
            self._required.append({j for j, (rule, _t) in enumerate(slots)
                                   if rule not in NON_GROUP_RULES})
            for slot, (_rule, terms) in enumerate(slots):
                for term in terms:
                    self._uses[self._add_term(term)].append((index, slot))
            self._min_threshold = min(self._min_threshold, float(config.threshold))
            self._lines.append(line)
        # ratio = 2 * LCS / (a + b) >= t needs a * t / (2 - t) <= b <= a * (2 - t) / t; plus 2 letters
        # that translit may remove (a final h, doubled letters)
        t = max(self._min_threshold, 1.0) / 100.0
        shrink, grow = t / (2 - t), (2 - t) / t
        for reach in self._fuzzy_reach.values():
            lengths = {n: (low * shrink - 2, high * grow + 2) for n, (low, high) in reach.items()}
            reach.clear()
            reach.update(lengths)
        for initial, reach in self._fuzzy_reach.items():
            self._fuzzy_onward[initial] = [
                max((high for m, (_low, high) in reach.items() if m > n), default=0)
                for n in range(self._max_words + 1)]
        self._cache = [{} for _n in range(self._max_words + 1)]
        # storyline id -> the storyline it refines (config ``refines``; see ``refine``)
        self.refines: dict[str, str] = {s.id: s.refines for s in self.storylines
                                        if getattr(s, "refines", "")}
        self._order = {s.id: i for i, s in enumerate(self.storylines)}

    def _add_term(self, term: str) -> int:
        if term in self._term_ids:
            return self._term_ids[term]
        term_id = len(self._terms)
        self._term_ids[term] = term_id
        self._terms.append(term)
        self._uses.append([])
        key = term_key(term)
        self._term_keys.append(key)
        self._exact.setdefault(key, []).append(term_id)
        self._prefixes.update(key[:end] for end in range(1, len(key)))
        words = len(_words(term))
        self._max_words = max(self._max_words, min(words + 1, 5))
        letters = sum(len(fold_word(w)) for w in _words(term))
        if letters > SHORT_TERM and key:
            for n in range(max(1, words - 1), words + 1):
                keys, ids = self._fuzzy_keys.setdefault((n, _initial(key)), ([], []))
                keys.append(translit(key))
                ids.append(term_id)
                reach = self._fuzzy_reach.setdefault(_initial(key), {})
                low, high = reach.get(n, (len(key), len(key)))
                reach[n] = (min(low, len(key)), max(high, len(key)))
        return term_id

    # -- text

    def _field_words(self, text: str) -> tuple[list[_WordInfo], int]:
        """The ``_WordInfo`` of each word of ``text`` (``_MARK`` for a sentence mark), in the order
        of ``_WORD``'s matches, and where they start (after a dateline). The per-word look-ups are
        one ``map`` over the cache; only words not seen before are worked out."""
        dateline = _DATELINE.match(text)
        start = dateline.end() if dateline else 0
        words = _WORD.findall(text, start)
        cache = self._word_cache
        infos: list[_WordInfo | None] = list(map(cache.get, words))
        if not all(infos):  # some word not in the cache (every info is a non-empty tuple)
            for index, info in enumerate(infos):
                if info is None:
                    word = words[index]
                    info = self._word(word) if word[0].isalnum() else _MARK
                    if len(cache) >= _MAX_CACHE:
                        cache.clear()
                    cache[word] = info
                    infos[index] = info
        return infos, start  # type: ignore[return-value]  # no None left

    def _word(self, word: str) -> _WordInfo:
        """What the scan needs to know about a word of the text (cached per word): folded, stemmed,
        fuzzy initial, live, fuzzy n-grams of 2+ words possible.

        A word is live when an n-gram starting with it can match a term; most words cannot and
        are skipped at once. Exact: its stem is a key, or its folded form a prefix of one. Fuzzy,
        one word: computed here (and cached, as the scan would). Fuzzy, 2+ words: the n-gram's
        ``translit`` key starts with this word's, and the Indel distance to a term key is at least
        the letters of this word left out of their longest common subsequence; when that already
        exceeds what ``threshold`` allows for every key of the bucket, no such n-gram can match.
        One-letter words stay live: their bucket comes from the whole n-gram ("U N")."""
        folded = fold_word(word)
        stemmed = stem(folded)
        initial = _initial(folded)
        if len(folded) == 1:
            return folded, stemmed, initial, True, True
        reach = self._fuzzy_reach.get(initial)
        one = multi = False
        if reach is not None:
            bounds = reach.get(1)
            if bounds is not None and len(stemmed) > 3 and bounds[0] <= len(stemmed) <= bounds[1]:
                one = bool(self._cache[1].get(stemmed) or
                           self._fuzzy(1, stemmed, self._fuzzy_keys[(1, initial)]))
            head = translit(folded + "_")[:-1]  # as it starts the key of a longer n-gram
            slack = 1.0 - self._min_threshold / 100.0
            multi = any(
                len(head) - LCSseq.similarity(head, other) <= slack * (longest + len(other)) + 1e-6
                for n, (_shortest, longest) in reach.items() if n > 1
                for other in self._fuzzy_keys[(n, initial)][0])
        live = one or multi or stemmed in self._exact or folded in self._prefixes
        return folded, stemmed, initial if one or multi else "", live, multi

    def _fuzzy(self, n: int, key: str, bucket: tuple[list[str], list[int]]) -> tuple[tuple[int, float], ...]:
        """Fuzzy matches of the key of an n-gram of ``n`` words, computed and cached (the scan
        looks in ``_cache`` first)."""
        found: list[tuple[int, float]] = []
        if bucket:
            keys, ids = bucket
            folded = translit(key)
            for _choice, score, i in process.extract(folded, keys, scorer=fuzz.ratio,
                                                     score_cutoff=self._min_threshold, limit=None):
                if self._term_keys[ids[i]] != key:  # an exact match is found (at 100) by the dict
                    found.append((ids[i], round(score, 1)))
        result = tuple(found)
        cache = self._cache[n]
        if len(cache) >= _MAX_CACHE:
            cache.clear()
        cache[key] = result
        return result

    def _scan(self, title: str, summary: str) -> dict[int, list[_Occurrence]]:
        """Every term found in the text: term id -> occurrences."""
        found: dict[int, list[_Occurrence]] = {}
        words, start = self._field_words(title)
        self._scan_field(words, "title", title, start, 0, found)
        # the title is sentence 0 and more after each of its marks; the summary starts after them
        summary_words, summary_start = self._field_words(summary)
        self._scan_field(summary_words, "summary", summary, summary_start, words.count(_MARK) + 1,
                         found)
        return found

    def _scan_field(self, words: list[_WordInfo], field_name: str, text: str, text_start: int,
                    first_sentence: int, found: dict[int, list[_Occurrence]]) -> None:
        exact, prefixes, buckets = self._exact, self._prefixes, self._fuzzy_keys
        reaches, onwards, fuzzy_cache = self._fuzzy_reach, self._fuzzy_onward, self._cache
        count = len(words)
        max_words = self._max_words
        # found when a term is found: the indexes of the sentence marks, and the text's words
        marks: list[int] = []
        surface: _Surface | None = None
        for i, info in enumerate(words):
            if not info[3]:  # not live (or a mark)
                continue
            folded, _stemmed, initial, _live, multi = info
            single = len(folded) == 1
            reach = None if single else reaches.get(initial)
            onward = onwards[initial] if reach is not None and multi else None
            prefix = ""
            best: dict[int, tuple[float, int]] | None = None  # per term: (score, last word) of the
            # best n-gram from here
            n = 0
            for j in range(i, count):
                token = words[j]
                if token is _MARK:
                    continue
                n += 1
                key = prefix + token[1]
                prefix += token[0]
                ids = exact.get(key)
                fuzzy: tuple[tuple[int, float], ...] | None = None
                if single:
                    initial = _initial(key)
                    reach = reaches.get(initial)
                if reach is not None and len(key) > 3 and (multi or n == 1):
                    bounds = reach.get(n)
                    if bounds is not None and bounds[0] <= len(key) <= bounds[1]:
                        fuzzy = fuzzy_cache[n].get(key)
                        if fuzzy is None:
                            fuzzy = self._fuzzy(n, key, buckets[(n, initial)])
                if ids or fuzzy:
                    if best is None:
                        best = {}
                    for term_id, score in [(t, 100.0) for t in ids or ()] + list(fuzzy or ()):
                        if term_id not in best or score > best[term_id][0]:
                            best[term_id] = (score, j)
                # go on while a longer n-gram can still match: some key goes on from this prefix, or
                # a fuzzy bucket holds keys of more words long enough
                if n == max_words:
                    break
                if prefix not in prefixes:
                    if not single:
                        if onward is None or len(prefix) >= onward[n]:
                            break
                    elif len(prefix) >= 3:  # from 3 letters on, the bucket of the n-grams to come
                        ahead = onwards.get(_initial(prefix))  # from a one-letter word is known
                        if ahead is None or len(prefix) >= ahead[n]:
                            break
            if best is None:
                continue
            if surface is None:
                marks = [k for k, word in enumerate(words) if word is _MARK]
                surface = _Surface(text, text_start)
            before = bisect_right(marks, i)  # the marks before this word
            for term_id, (score, last) in best.items():
                occurrence = _Occurrence(field_name, i - before, first_sentence + before, score,
                                         surface, i, last)
                found.setdefault(term_id, []).append(occurrence)

    # -- decisions

    def match(self, title: str, summary: str) -> list[Match]:
        """The storylines this item belongs to, best score first."""
        if not self.refines:
            return self.match_explaining(title, summary, ())[0]
        matches, explained = self.match_explaining(title, summary, self.refines)
        matches.extend(rules_match(e) for e in explained if e.matched)
        return self.refine(matches, explained)

    def refine(self, matches: list[Match], explained: Iterable[Explanation]) -> list[Match]:
        """``matches`` (sorted, best score first; ties in config order) with the refining
        storylines that match through the storyline they refine: it matched, and the refining
        one's explanation (in ``explained``) has a hit of its first group and no veto. Such a
        match has the refined storyline's score, and the hits of both."""
        if self.refines:
            matched = {m.storyline_id: m for m in matches}
            for e in explained:
                refined = matched.get(self.refines.get(e.storyline_id, ""))
                if refined is None or e.storyline_id in matched or e.vetoes or not e.groups[0].hits:
                    continue
                matched[e.storyline_id] = Match(e.storyline_id, refined.score,
                                                e.groups[0].hits + refined.hits,
                                                decided_by=f"refines {refined.storyline_id}",
                                                evidence=refined.evidence)
                matches.append(matched[e.storyline_id])
        order = self._order
        matches.sort(key=lambda m: (-m.score, order[m.storyline_id]))
        return matches

    def refinement(self, explanation: Explanation, matched: Collection[str]) -> tuple[bool, str] | None:
        """How a refining storyline's decision came from the storyline it refines, given the ids
        of the storylines the item ``matched``: (a match through it, why); None for a storyline
        that refines none."""
        refined = self.refines.get(explanation.storyline_id)
        if refined is None:
            return None
        first = explanation.groups[0].rule
        if refined not in matched:
            return False, f"{refined} did not match"
        if explanation.vetoes:
            return False, f"{refined} matched, but a none term vetoes"
        if not explanation.groups[0].hits:
            return False, f"{refined} matched, but nothing found for {first}"
        return True, (f"{refined} matched and {first} found: a match through {refined}"
                      + (" too" if explanation.matched else ""))

    def refinement_line(self, explanation: Explanation, matched: Collection[str]) -> str:
        """``refinement`` as a line under ``explanation.render()``; "" when it refines none."""
        found = self.refinement(explanation, matched)
        if found is None:
            return ""
        through, why = found
        return f"  [{'ok' if through else '--':>4}] refines {self.refines[explanation.storyline_id]}: {why}"

    def match_explaining(self, title: str, summary: str, storyline_ids: Collection[str]
                         ) -> tuple[list[Match], list[Explanation]]:
        """One scan of the text for two kinds of storyline: ``match()``'s matches of those not in
        ``storyline_ids``, and the explanations of those in it for which the rules found a term of
        the first group or of ``model_candidates`` (in configuration order): the learned layer's
        candidates (``monitor.learn.is_candidate``); it scores no other."""
        found = self._scan(title, summary)
        covered: dict[int, set[int]] = {}
        for term_id in found:
            for index, slot in self._uses[term_id]:
                covered.setdefault(index, set()).add(slot)
        matches, explained = [], []
        for index in sorted(covered):
            line = self._lines[index]
            if line.config.id in storyline_ids:
                slots = covered[index]  # slot 0: all[0], or any when there is no all
                if 0 in slots or line.candidates_slot in slots:
                    result = self._decide(index, found, explain=True)
                    assert result is not None
                    explained.append(result)
                continue
            if not self._required[index] <= covered[index]:
                continue  # a group found nothing at all: no need to look closer
            result = self._decide(index, found, explain=False)
            if result is not None and result.matched:
                matches.append(rules_match(result))
        matches.sort(key=lambda m: -m.score)
        return matches, explained

    def explain(self, title: str, summary: str) -> list[Explanation]:
        """The reasoning of every storyline, matched or not, in configuration order."""
        found = self._scan(title, summary)
        explanations = []
        for index in range(len(self._lines)):
            result = self._decide(index, found, explain=True)
            assert result is not None
            explanations.append(result)
        return explanations

    def _decide(self, index: int, found: dict[int, list[_Occurrence]], *,
                explain: bool) -> Explanation | None:
        line = self._lines[index]
        config = line.config
        threshold = float(config.threshold)
        per_slot: list[list[tuple[str, _Occurrence]]] = [[] for _ in line.slots]
        for slot, (_rule, terms) in enumerate(line.slots):
            for term in terms:
                for occurrence in found.get(self._term_ids[term], ()):
                    if occurrence.score >= threshold:
                        per_slot[slot].append((term, occurrence))
        rules = [rule for rule, _terms in line.slots]
        none_slot = rules.index("none")
        near_slot = rules.index("not_near")
        window = int(getattr(config, "not_near_window", 3))
        # context vetoes: drop hits with a not_near word close by in the same sentence
        discarded: list[list[tuple[TermHit, str]]] = [[] for _ in line.slots]
        blockers = per_slot[near_slot]
        if blockers:
            for slot in range(none_slot):
                kept = []
                for term, occ in per_slot[slot]:
                    blocker = next((b for b in blockers if b[1].field == occ.field
                                    and b[1].sentence == occ.sentence
                                    and abs(b[1].position - occ.position) <= window), None)
                    if blocker is None:
                        kept.append((term, occ))
                    else:
                        discarded[slot].append((_hit(term, occ),
                                                f"{blocker[1].found!r} within {window} words"))
                per_slot[slot] = kept
        group_slots = [s for s, rule in enumerate(rules) if rule.startswith("all[")]
        any_slot = rules.index("any") if "any" in rules else None
        missing = [rules[s] for s in group_slots if not per_slot[s]]
        if any_slot is not None and not per_slot[any_slot]:
            missing.append("any")
        vetoed = per_slot[none_slot]
        if not explain and (missing or vetoed):
            return None
        scored = group_slots or ([any_slot] if any_slot is not None else [])
        score, decision_near = self._score(line, [per_slot[s] for s in scored], group_slots, per_slot)
        matched = False
        if vetoed:
            decision = "vetoed by " + ", ".join(sorted({f"{t} ({o.found!r})" for t, o in vetoed}))
        elif missing:
            decision = "nothing found for " + ", ".join(missing)
        elif decision_near is not None:
            decision = decision_near
        elif score < getattr(config, "min_score", 0):
            decision = f"score {score:.0f} below min_score {getattr(config, 'min_score', 0)}"
        else:
            matched = True
            decision = "every group matched"
        if not explain and not matched:
            return None
        groups = []
        for slot, (rule, terms) in enumerate(line.slots):
            if rule == "not_near" and not terms:
                continue
            if not explain and rule in NON_GROUP_RULES:
                continue  # match() keeps the hits of the groups only
            hits = _best_hits(per_slot[slot])
            if rule == "not_near":
                matched_slot = not any(discarded)
                hits = tuple(h for h in hits) if any(discarded) else ()
            elif rule == "none":
                matched_slot = not hits
            else:
                matched_slot = bool(hits)
            groups.append(GroupReport(rule, terms, hits, tuple(discarded[slot]), matched_slot))
        return Explanation(config.id, config.name, matched, score if not (vetoed or missing) else 0.0,
                           decision, tuple(groups), _best_hits(vetoed))

    def _score(self, line: _Storyline, slots: list[list[tuple[str, _Occurrence]]],
               group_slots: list[int], per_slot: list[list[tuple[str, _Occurrence]]]
               ) -> tuple[float, str | None]:
        """(score 0-100, the reason the ``near`` rule failed or None)."""
        if not slots or any(not s for s in slots):
            return 0.0, None
        weight = {"title": 1.0, "summary": line.summary_weight}
        base = sum(max(o.score * weight[o.field] for _t, o in s) for s in slots) / len(slots)
        sentence_sets = [{o.sentence for _t, o in s} for s in slots]
        field_sets = [{o.field for _t, o in s} for s in slots]
        if set.intersection(*sentence_sets):
            proximity = 1.0
        elif set.intersection(*field_sets):
            proximity = 0.9
        else:
            proximity = 0.8
        near = line.config.near
        failure = None
        if near > 0 and len(group_slots) > 1:
            first = per_slot[group_slots[0]]
            ok = any(all(any(o.field == a.field and abs(o.position - a.position) <= near
                             for _t, o in per_slot[s]) for s in group_slots[1:])
                     for _t0, a in first)
            if not ok:
                failure = f"the groups are never within {near} words of each other"
        return min(100.0, base * proximity), failure


def rules_match(explanation: Explanation) -> Match:
    """The match the rules made (``explanation.matched``): their score, the hits of the groups."""
    return Match(explanation.storyline_id, explanation.score,
                 tuple(h for g in explanation.groups if g.rule not in NON_GROUP_RULES for h in g.hits))


def _hit(term: str, occurrence: _Occurrence) -> TermHit:
    return TermHit(term=term, found=occurrence.found, score=occurrence.score, field=occurrence.field,
                   position=occurrence.position)


def _best_hits(pairs: Iterable[tuple[str, _Occurrence]]) -> tuple[TermHit, ...]:
    """One hit per (term, found words, field): the best-scoring, earliest."""
    best: dict[tuple[str, str, str], _Occurrence] = {}
    for term, occ in pairs:
        key = (term, occ.found.lower(), occ.field)
        if key not in best or occ.score > best[key].score:
            best[key] = occ
    ordered = sorted(best.items(), key=lambda kv: (kv[1].field != "title", kv[1].position))
    return tuple(_hit(term, occ) for (term, _f, _fl), occ in ordered)
