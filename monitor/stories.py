"""Event-level stories: which development of a storyline an item reports.

In: a matched item's title and summary (plain text) and the recent stories it could join, each
as a ``StoryProfile`` (the words, numbers, stages and names of its items so far). Out: an
``Event`` for the item and a ``Decision``: the story it joins, with why, or none (a new story).
Pure: no I/O. The store keeps the profiles; the store's MinHash layer (``dedup``) still catches
syndicated copies first, cheaply.

Outlets write their own headlines for one development ("Hamas releases 25 captives amid
Israel truce" / "First Captives Freed in Tense Gaza Truce"), so copied text is not the signal.
What an item reports is read out of it instead:

- its **stage**: what happened (released, agreed, delayed, extended, collapsed, began, talks,
  proposal, rejected, denied, vote...), from the headline (the summary only when the headline has none);
- its **numbers** (13 hostages, 39 prisoners) and **ordinals** (first, second, third group);
- its **names** (capitalised words inside the headline: Raanan, Lifshitz, Thai, Cairo);
- its **words**, weighted by how rare they are in news (IDF from ``word_idf.json``).

An item joins a story only when nothing says it is another development — the same stage (or
none on either side), no ordinal that differs, no count of the same thing that differs unless
another count is shared — and when enough of its rare words and names are the story's
(coverage of the item by the story as a whole, not by its first item). Precision first: a
repeat alert costs the desk a glance, a merge hides a development.

Live blogs, explainers and round-ups (``kind``) join as sources on a lower bar; one that joins
nothing alerts only when its headline reports a stage (it is then the first report of it).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

IDF_PATH = Path(__file__).parent / "default_config" / "word_idf.json"
RESERVED = ("2023-11-22", "2023-12-02")  # the stream's window kept for an independent check

# How far from a story's first report an item may join it; a development's reports arrive
# within hours, the next development of a storyline (the next day's release) a day later.
JOIN_WINDOW = 20 * 3600.0
# ... but a truce frees captives every day, and a day's handover can come a few hours earlier
# than the day before's ("the first release on Friday, the second on Saturday" stay two stories):
# a release joins for less than a day minus such a shift. Costs 3 repeats of the 378 labelled
# items (morning-after reports 16-20 h after the first), bought as a margin against a merge.
RELEASE_WINDOW = 16 * 3600.0
# Statements of where things stand ("deal close", talks, calls, no stage word) change within
# the day and by speaker: a report of one joins such a story for a shorter time.
STATEMENT_WINDOW = 8 * 3600.0
STATEMENTS = frozenset({"near", "talks", "call", "deny", None})
SOURCE_STATEMENT_WINDOW = 12 * 3600.0  # the same for live blogs, explainers and round-ups
JOIN_BEFORE = 3 * 3600.0  # a report published a little before the story's first (polled later)
REPORT_BAR = 0.40  # share of the item's word weight that the story must hold (reports)
SOURCE_BAR = 0.45  # the same for live blogs, explainers and round-ups, which only attach
NAME_BONUS = 0.15  # per shared name, up to two
NUMBER_BONUS = 0.15  # a shared count of the same thing
SUMMARY_WORDS = 30  # the summary's first words count with the headline's (at half weight)
# A report of one concrete step (a release, a deal agreed, a truce begun or delayed, a freed
# captive's account: not a statement of where things stand) joins a story of the same step on a
# lower bar within its first hours, when the outlets' reports of it arrive.
EVENT_STAGES = frozenset({"release", "agree", "begin", "delay", "collapse", "extend", "account"})
EVENT_BAR = 0.30
EVENT_HOURS = 6.0

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("""
a an the and or of to in on at for by with from as is are was were be been it its this that
after over into says said say will has have had not but than then there their they he she his
her we our you your who what when where why how which while amid about against before during
under up down out off new more most latest also just could would should may might can us
""".split())
_US = re.compile(r"\bU\.S\.(?=\W|$)|\bUS\b")
# The number words a headline uses for counts; the digits stand for themselves.
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}
_ORDINALS = {"first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5", "sixth": "6",
             "seventh": "7", "eighth": "8", "ninth": "9", "tenth": "10", "final": "last",
             "last": "last", "1st": "1", "2nd": "2", "3rd": "3", "4th": "4", "5th": "5",
             "6th": "6", "7th": "7"}
# What a count counts: the first of these stems within three words after a number.
# "13 Israeli hostages" and "25 hostages" count two things (Israelis among the freed, all of them).
_COUNTED = {"hostag": "captive", "captiv": "captive", "israel": "israeli", "prisoner": "prisoner",
            "palestinian": "prisoner", "detaine": "prisoner", "thai": "thai", "foreign": "foreign",
            "children": "child", "child": "child", "women": "women", "truck": "truck", "day": "day",
            "hour": "hour", "american": "american", "women and children": "child"}
# Stages, most specific first: an item's stage is the first found in its headline.
_STAGES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern)) for name, pattern in (
    # a denial is another development than the claim it denies ("US Says No Israel-Hamas Hostage
    # Deal Yet", 17 minutes after "tentative deal reached"), whatever its words share
    ("deny", r"\bno (\w+\W+){0,3}?(deal|agreement|truce|ceasefire|cease-fire)\b( \w+)? yet\b|"
             r"\bno (deal|agreement) (has been |was )?(reached|agreed|struck)|"
             r"\b(is|was) no (deal|agreement)\b|"
             r"\bnot (yet )?(been )?(reached|agreed|struck|finali[sz]ed)|\bden(y|ies|ied)\b|\brefut\w*"),
    ("collapse", r"\b(collaps\w*|resum\w* (fighting|war|strikes|bombing|offensive|attacks)|"
                 r"truce (ends|ended|is over|expires|expired)|end(s|ed)? (of )?(the )?truce|"
                 r"fighting resumes|war resumes|broke down|breaks down)\b"),
    ("delay", r"\b(delay\w*|postpon\w*|held up|hitch\w*|snag\w*|stall\w*|hold(s|ing)? up|"
              r"won'?t (begin|start)|not before)\b"),
    ("extend", r"\b(extend\w*|extension|prolong\w*)\b"),
    ("reject", r"\b(reject\w*|refus\w*|rebuff\w*|dismiss\w*)\b"),
    ("resume", r"\b(resum\w*|reopen\w*|restart\w*)\b"),
    ("halt", r"\b(halt\w*|suspend\w*|shut\w*|closed|closes|closure|stop\w*|block\w*|"
             r"will not|won'?t|withdraw\w* (as|from) (mediat\w*|talks|negotiat\w*))\b"),
    ("agree", r"\b(agree\w*|deal (is )?(reached|struck|done|sealed)|reach\w* (a )?deal|"
              r"approv\w*|accept\w*|sign(s|ed)?|clinch\w*|strik\w* (a )?deal|struck)\b"),
    ("near", r"(close to|closer|\bclose\W*$|['‘’]close['‘’]|\b(is|are|appears?|seems?|looks?) "
             r"close\b|\bnears?\b|\bnearing\b|imminent|"
             r"\b(will|could|would|may|might) be (freed|released)\b|within reach|final stages?|expected to|"
             r"poised to|\bset to\b|on the verge|\bprogress\w*)"),
    ("release", r"\b(releas\w*|free[ds]?|freeing|handed over|hand(s|ed)? over|handover|"
                r"transferred|swap\w*|exchang\w*|set free|reunit\w*|return(s|ed)? home|rescu\w*)\b"),
    # a step announced for later: "Israel to begin daily four-hour pauses", "truce to take effect
    # at 7am" (not that it began; the announcement of an agreed step)
    ("scheduled", r"\b(to|will|would|shall) (begin|start|take effect|go into effect|come into (force|effect)|"
                  r"pause (fighting|combat|attacks|operations|strikes))\b"),
    ("begin", r"\b(begin\w*|began|begun|take[sn]? effect|took effect|start(s|ed)?|"
              r"in effect|into force|goes into|went into|come[s]? into|holds|holding)\b"),
    ("vote", r"\b(vot\w*|resolution|veto\w*|(?<!national )security council)\b"),
    ("proposal", r"\b(propos\w*|plan|offer\w*|draft|framework|tabl\w*)\b"),
    ("talks", r"\b(talks|discuss\w*|negotiat\w*|mediat\w*|delegation\w*|arriv\w*|meet\w*|visit\w*|"
              r"envoy\w*)\b"),
    ("call", r"\b(call(s|ed)? (for|on)|urg\w*|demand\w*|appeal\w*|press(es|ed)? for|"
             r"pressur(es|ed|ing))\b"),
))
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern)) for name, pattern in (  # on lower-cased text
    ("liveblog", r"\blive\b|live updates|as it happened|\blatest\b.*:|^updates?:|^latest (in|on)\b"),
    ("roundup", r"key events|\bday \d+\b|the papers|full broadcast|morning rundown|"
                r"\brundown\b|newsletter|\bbriefing\b|in photos|in pictures|week in|"
                r"\bheadlines\b|what happened|\bpodcast\b|^watch\b|^video\b|: live\b|"
                r"^firstft\b|^first thing\b|\| first thing\b|^\d{1,2}:\d{2} report\b|^photos?:"),
    ("explainer", r"what we know|what to know|what you need|explain|^analysis\b|^opinion\b|"
                  r"\bq&a\b|who are|^how\b|^why\b|^what\b|could mean|\bexplainer\b|"
                  r"timeline|a look at|^inside\b|^the \w+ behind|everything (you need )?to know|"
                  r"^text of\b|, writes\b|^the \w+ view on\b|\| editorial\b|what comes next|"
                  r"infographic"),
))
_NAME = re.compile(r"(?<![.:!?]\s)(?<!^)\b([A-Z][a-z]{2,}(?:-[A-Z][a-z]+)?)\b")
_COMMON_NAMES = frozenset("""
israel israeli israelis hamas gaza gazan palestinian palestinians us u.s american americans
biden netanyahu the white house un war hostage hostages truce deal ceasefire cease fire
monday tuesday wednesday thursday friday saturday sunday january february march april may june
july august september october november december red cross strip
""".split())


# Words outlets use for one thing, after stemming: one word each, so that "2 Americans
# released" and "Hamas frees two U.S. hostages" share their words.
_SYNONYMS = {
    "us": "american", "usa": "american", "american": "american", "americans": "american",
    "captiv": "hostag", "captive": "hostag", "abduct": "hostag", "abductee": "hostag",
    "free": "releas", "freed": "releas", "fre": "releas", "freeing": "releas", "handed": "releas",
    "handover": "releas", "transferr": "releas", "release": "releas",
    "ceasefire": "truce", "ceasefir": "truce", "pause": "truce", "paus": "truce",
    "ceasfire": "truce", "cessation": "truce", "lull": "truce",
    "egyptian": "egypt", "qatari": "qatar", "israeli": "israel", "palestinian": "palestin",
    "woman": "women", "kid": "children", "child": "children",
    "prisoner": "prisoner", "detaine": "prisoner", "inmat": "prisoner",
}


def _stem(word: str) -> str:
    """Crude, and the same for every form: hostage, hostages → hostag; released, releases →
    releas; talks → talk."""
    if word.endswith("ing") and len(word) >= 7:
        word = word[:-3]
    elif word.endswith("ed") and len(word) >= 6:
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss") and len(word) >= 5:
        word = word[:-1]
    if word.endswith("e") and len(word) >= 5:
        word = word[:-1]
    return _SYNONYMS.get(word, _NUMBER_WORDS.get(word, word))


def words(text: str) -> list[str]:
    """The content words of ``text``: lower case, stop words out, crudely stemmed
    ("released", "releases" → "releas"; "hostages" → "hostag")."""
    return [stem for stem, _ in _words(text)]


def _words(text: str) -> list[tuple[str, str]]:
    """(stem, the word as written) for each content word of ``text``."""
    text = _US.sub("American", text).lower().replace("-", "")
    return [(_stem(w), w) for w in _WORD.findall(text) if w not in _STOP]


def _title_case(head: str) -> bool:
    """"Hamas Releases 2 U.S. Hostages": every word capitalised, so capitals name nothing."""
    long_words = [w for w in head.split() if len(w) > 3 and w[0].isalpha()]
    return len(long_words) >= 3 and sum(w[0].isupper() for w in long_words) > 0.9 * len(long_words)


@lru_cache(maxsize=1)
def idf_table() -> tuple[float, dict[str, float]]:
    """(the weight of a word never seen, word → inverse document frequency)."""
    data = json.loads(IDF_PATH.read_text())
    documents = data["documents"]
    unseen = math.log(documents / 1.0)
    return unseen, {word: math.log(documents / count) for word, count in data["df"].items()}


def idf(word: str) -> float:
    unseen, table = idf_table()
    return table.get(word, unseen)


@dataclass(frozen=True)
class Event:
    """What one item reports, as far as clustering needs it."""

    kind: str  # report | liveblog | explainer | roundup
    stage: str | None  # the headline's most specific stage, else the summary's
    ordinals: frozenset[str]
    counts: frozenset[tuple[str, str]]  # (what, how many): ("captive", "13")
    names: frozenset[str]
    weights: dict[str, float] = field(hash=False, compare=False)  # word → weight in this item
    written: dict[str, str] = field(default_factory=dict, hash=False, compare=False)  # as in the text

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "stage": self.stage, "ordinals": sorted(self.ordinals),
                "counts": sorted(f"{n} {what}" for what, n in self.counts),
                "names": sorted(self.names)}


def _counts(tokens: list[str]) -> set[tuple[str, str]]:
    found = set()
    for i, token in enumerate(tokens):
        number = _NUMBER_WORDS.get(token, token if token.isdigit() and len(token) < 5 else None)
        if number is None or tokens[i + 1:i + 3] == ["year", "old"]:  # an age, not a count
            continue
        for follower in tokens[i + 1:i + 4]:
            what = _COUNTED.get(_stem(follower))
            if what:
                found.add((what, number))
                break
    return found


# A newsletter's blurb: "Also, a new blow to the crypto world. Here's the latest at the end of
# Tuesday.", "Plus Binance's founder pleads guilty.", "Welcome to The Hill's ... newsletter".
_NEWSLETTER = re.compile(r"^(also|plus)\b|\bnewsletter\b|here['’]s the latest|\{beacon\}|"
                         r"^good (morning|afternoon|evening)\b")


def kind_of(title: str, summary: str = "") -> str:
    """report, liveblog, explainer or roundup: from the headline, else a newsletter's blurb."""
    lowered = title.lower()
    for name, pattern in _KINDS:
        if pattern.search(lowered):
            return name
    if summary and _NEWSLETTER.search(summary.lower()):
        return "roundup"
    return "report"


# Substrings without which a stage's pattern cannot match: a text is searched only for the
# stages whose needles it holds (a substring test is ~50x cheaper than the pattern).
_NEEDLES = {
    "deny": ("no ", "not ", "den", "refut"),
    "collapse": ("collaps", "resum", "truce", "fighting", "war resumes", "broke", "breaks"),
    "delay": ("delay", "postpon", "held up", "hitch", "snag", "stall", "hold", "won", "not before"),
    "extend": ("exten", "prolong"),
    "reject": ("reject", "refus", "rebuff", "dismiss"),
    "resume": ("resum", "reopen", "restart"),
    "halt": ("halt", "suspend", "shut", "clos", "stop", "block", "will not", "won", "withdraw"),
    "agree": ("agree", "deal", "approv", "accept", "sign", "clinch", "struck"),
    "near": ("clos", "near", "imminent", " be freed", " be released", "within reach", "final stage",
             "expected to", "poised",
             "set to", "verge", "progress"),
    "release": ("releas", "free", "hand", "transferred", "swap", "exchang", "reunit", "return",
                "rescu"),
    "scheduled": ("to ", "will ", "would ", "shall "),
    "begin": ("begin", "began", "begun", "take", "took", "start", "effect", "force", "goes into",
              "went into", "come", "hold"),
    "vote": ("vot", "resolution", "veto", "security council"),
    "proposal": ("propos", "plan", "offer", "draft", "framework", "tabl"),
    "talks": ("talks", "discuss", "negotiat", "mediat", "delegation", "arriv", "meet", "visit", "envoy"),
    "call": ("call", "urg", "demand", "appeal", "press"),
}
_STAGE_CHECKS = tuple((name, _NEEDLES[name], pattern) for name, pattern in _STAGES)


# A freed captive's own account is its own development, not the release (DEVELOPMENTS.md rule
# 3): "Freed hostage says she was held in tunnels", "Israeli captive endured 'hell'".
_ACCOUNT = re.compile(r"\b(hostage|captive|woman|grandmother|teenager|girl)s?\b"
                      r"(?!\W+(deal|talks|release|negotiat|exchange|swap|crisis|famil))"
                      r"((\s+[^\s,]+){0,3}?\s+(says?|speaks?|tells?|recalls?|urg\w*)|"
                      r".*\b(describ\w*|details|recounts?|speaks out|endured|went through))\b")
# "Freed hostage was held in tunnels", "Released hostages press Netanyahu": the release is
# behind the news (but "freed hostages reunite with families" is the release).
_FREED_WHO = re.compile(r"^([^:]{0,40}:)?\W*((the|a|an|newly|recently|\d+|two|three)\s+)?"
                        r"(freed|released|rescued|former)\s+(\w+\s+){0,2}?"
                        r"(hostage|captive|woman|grandmother|teenager|girl)s?\b(?!.*\b(reunit|embrace|"
                        r"home|arriv|return|hospital|families|family)\w*)")
# ... unless it is their relatives who speak ("Family of freed hostage says")
_KIN = re.compile(r"\b(famil(y|ies)|relatives?|parents?|father|mother|sons?|daughters?|husband|wife|"
                  r"grandson|granddaughter)\b")
_ACCOUNT_NEEDLES = ("hostage", "captive", "woman", "grandmother", "teenager", "girl")
_ACCOUNT_VERBS = ("say", "speak", "tell", "recall", "urg", "describ", "details", "recount", "endured",
                  "went through")
_FREED = ("freed", "released", "rescued", "former")


def stage_of(text: str) -> str | None:
    """The most specific stage the text reports, or None: a freed captive's account first, then
    the stages of ``_STAGES`` in their order; of what precedes "after" ("Israel strikes Rafah
    hours after Hamas agrees to a proposal" reports no stage: the agreement is the day's other
    development)."""
    lowered = text.lower().partition(" after ")[0]  # "X after Y": Y happened before, X is news
    return "account" if _an_account(lowered) else _stage(lowered)


def _an_account(lowered: str) -> bool:
    """Whether the (lower-cased) headline is a freed captive's own account."""
    if not any(who in lowered for who in _ACCOUNT_NEEDLES):
        return False
    spoke = any(verb in lowered for verb in _ACCOUNT_VERBS) and _ACCOUNT.search(lowered) is not None
    freed = any(word in lowered for word in _FREED) and _FREED_WHO.search(lowered) is not None
    return (spoke or freed) and _KIN.search(lowered) is None


# An agreement spoken of as ahead, not done: "Hamas chief says it is close to truce agreement",
# "Gaza 'approaching a truce agreement'", "hostage deal to be approved" (stage near, not agree).
_AGREEMENT_AHEAD = re.compile(r"\b(close\W{0,2}to|closer to|approach\w*|nearing|nears?|on the verge of|"
                              r"to be|could be|would be)\s+(\w+\s+){0,3}?(agreement|deal\b|agreed|"
                              r"approved|accepted|signed)")


_CALL = dict(_STAGES)["call"]


def _stage(lowered: str) -> str | None:
    for name, needles, pattern in _STAGE_CHECKS:
        if name == "agree" and _AGREEMENT_AHEAD.search(lowered) and pattern.search(lowered):
            return "near"
        if any(needle in lowered for needle in needles) and pattern.search(lowered):
            if name == "scheduled" and _CALL.search(lowered):
                return "call"  # "US urges Israel to begin pauses": asked for, not announced
            return name
    return None


def event_of(title: str, summary: str) -> Event:
    """Read what ``title`` (and the first words of ``summary``) report."""
    head = title.split(" | ")[0]
    raw = _WORD.findall(head.lower())
    summary_head = " ".join(summary.split()[:SUMMARY_WORDS])
    weights: dict[str, float] = {}
    written: dict[str, str] = {}
    for stem, word in _words(summary_head):
        weights[stem] = 0.5 * idf(stem)
        written[stem] = word
    for stem, word in _words(head):
        weights[stem] = idf(stem)
        written[stem] = word
    names = set() if _title_case(head) else {n.lower() for n in _NAME.findall(head)} - _COMMON_NAMES
    ordinals = {_ORDINALS[w] for w in raw if w in _ORDINALS}
    if {"more", "another", "next"} & set(raw):
        ordinals.add("later")
    stage = stage_of(head)
    if stage is None and (" after " not in head.lower() or _stage(head.lower()) is None):
        # the headline reports no stage at all: the summary's
        stage = stage_of(summary_head)
    return Event(kind=kind_of(title, summary_head), stage=stage,
                 ordinals=frozenset(ordinals), counts=frozenset(_counts(raw)),
                 names=frozenset(names), weights=weights, written=written)


@dataclass
class StoryProfile:
    """A story as the clusterer sees it: what its items reported so far."""

    story_id: int
    first_published: float
    last_published: float
    stage: str | None = None  # the first report's stage (a story is one development)
    kinds: Counter[str] = field(default_factory=Counter)
    ordinals: set[str] = field(default_factory=set)
    counts: set[tuple[str, str]] = field(default_factory=set)
    names: Counter[str] = field(default_factory=Counter)
    words: Counter[str] = field(default_factory=Counter)
    items: int = 0
    sources: set[str] = field(default_factory=set)
    storylines: set[str] = field(default_factory=set)

    @classmethod
    def start(cls, story_id: int, event: Event, published: float, source: str,
              storylines: set[str]) -> StoryProfile:
        profile = cls(story_id=story_id, first_published=published, last_published=published)
        profile.add(event, published, source, storylines)
        return profile

    def add(self, event: Event, published: float, source: str, storylines: set[str]) -> bool:
        """Add an item; True when it brings an outlet the story did not have."""
        new_outlet = source not in self.sources
        self.items += 1
        self.first_published = min(self.first_published, published)
        self.last_published = max(self.last_published, published)
        if self.stage is None and event.kind == "report":
            self.stage = event.stage

        self.kinds[event.kind] += 1
        if event.kind == "report":  # round-ups mention several developments: keep them out
            self.ordinals |= event.ordinals
            self.counts |= event.counts
        self.names.update(event.names)
        self.words.update(event.weights.keys())
        self.sources.add(source)
        self.storylines |= storylines
        return new_outlet

    def copy(self) -> StoryProfile:
        return StoryProfile(
            story_id=self.story_id, first_published=self.first_published,
            last_published=self.last_published, stage=self.stage, kinds=self.kinds.copy(),
            ordinals=set(self.ordinals), counts=set(self.counts), names=self.names.copy(),
            words=self.words.copy(), items=self.items, sources=set(self.sources),
            storylines=set(self.storylines))

    def to_json(self) -> str:
        return json.dumps({
            "first": self.first_published, "last": self.last_published, "stage": self.stage,
            "kinds": dict(self.kinds), "ordinals": sorted(self.ordinals),
            "counts": sorted(self.counts), "names": dict(self.names), "words": dict(self.words),
            "items": self.items, "sources": sorted(self.sources),
            "storylines": sorted(self.storylines)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, story_id: int, text: str) -> StoryProfile:
        data = json.loads(text)
        return cls(story_id=story_id, first_published=data["first"], last_published=data["last"],
                   stage=data["stage"], kinds=Counter(data["kinds"]),
                   ordinals=set(data["ordinals"]),
                   counts={(what, n) for what, n in data["counts"]}, names=Counter(data["names"]),
                   words=Counter(data["words"]), items=data["items"], sources=set(data["sources"]),
                   storylines=set(data["storylines"]))


@dataclass(frozen=True)
class Decision:
    """The story an item joins (None: it starts one), and why, for ``monitor stories``."""

    story_id: int | None
    why: dict[str, Any]
    alerts: bool = True  # False: a live blog / explainer / round-up that reports no stage


def _apart(event: Event, story: StoryProfile, published: float) -> str | None:
    """Why the item cannot be of this story's development, or None."""
    if story.stage == "release":
        window = RELEASE_WINDOW
    elif story.stage not in STATEMENTS:
        window = JOIN_WINDOW
    else:  # a morning's round-up looks back over the night: it attaches for a little longer
        window = STATEMENT_WINDOW if event.kind == "report" else SOURCE_STATEMENT_WINDOW
    if not story.first_published - JOIN_BEFORE <= published <= story.first_published + window:
        return "time"
    if event.kind != "report":
        # a source of the story: its counts may be of several developments, its stage is
        # that of the development it leads with
        if event.stage is not None and story.stage is not None and event.stage != story.stage:
            return f"stage {event.stage} vs {story.stage}"
        return None
    if not story.kinds.get("report"):
        return "a story of live blogs, explainers or round-ups only"  # their headlines move on
    if event.stage != story.stage and not (  # "deal close" (no stage word) is not "deal reached"
            {event.stage, story.stage} == {"agree", "scheduled"} and event.counts & story.counts):
        # ... but "Israel agrees to 4-hour pauses" is "Israel to begin daily 4-hour pauses"
        return f"stage {event.stage} vs {story.stage}"
    if event.ordinals and story.ordinals and not event.ordinals & story.ordinals:
        return f"ordinal {sorted(event.ordinals)} vs {sorted(story.ordinals)}"
    if event.counts and story.counts and not event.counts & story.counts:
        counted = {what for what, _ in event.counts} & {what for what, _ in story.counts}
        if counted:
            return f"counts {sorted(event.counts)} vs {sorted(story.counts)}"
    return None


def similarity(event: Event, story: StoryProfile,
               published: float | None = None) -> tuple[float, dict[str, Any]]:
    """How much of the item's word weight the story holds, plus bonuses for shared names and
    counts; with the evidence. Given the item's time: a report in the story's first hours may
    share a count of captives with it as another class ("2 Americans" / "2 hostages")."""
    total = sum(event.weights.values()) or 1.0
    shared = [w for w in event.weights if w in story.words]
    coverage = sum(event.weights[w] for w in shared) / total
    names = sorted(n for n in event.names if n in story.names)
    counts = sorted(f"{n} {what}" for what, n in event.counts & story.counts)
    if not counts and event.kind == "report" and published is not None and \
            published - story.first_published <= EVENT_HOURS * 3600.0:
        counts = sorted(f"{n} {what}" for what, n in _as_captives(event.counts, story.counts))
    score = coverage + NAME_BONUS * min(len(names), 2) + (NUMBER_BONUS if counts else 0.0)
    shared.sort(key=lambda w: -event.weights[w])
    return score, {"similarity": round(score, 3), "coverage": round(coverage, 3),
                   "shared_words": [event.written.get(w, w) for w in shared[:8]],
                   "shared_names": names, "shared_counts": counts}


# Who counted may be captives counted: "2 Americans released", "2 hostages released" agree; "two
# women" and "two Americans" say nothing (they may be other people, or the same).
_CAPTIVES = frozenset({"american", "thai", "foreign", "women", "child", "israeli"})


def _as_captives(counts: frozenset[tuple[str, str]], other: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The counts of ``counts`` that name as many captives as a count of ``other`` when one of
    the two counts only says "hostages"."""
    found = set()
    for what, n in counts:
        for what2, n2 in other:
            if n == n2 and ((what == "captive" and what2 in _CAPTIVES)
                            or (what2 == "captive" and what in _CAPTIVES)):
                found.add((what, n))
    return found


def bar_for(event: Event, story: StoryProfile, published: float) -> float:
    """The similarity an item needs to join this story (the story is not ``_apart``)."""
    if event.kind != "report":
        return SOURCE_BAR
    if event.stage in EVENT_STAGES and published - story.first_published <= EVENT_HOURS * 3600.0:
        return EVENT_BAR
    return REPORT_BAR


def decide(event: Event, published: float, candidates: list[StoryProfile]) -> Decision:
    """The story among ``candidates`` (recent stories with matched items) that this item
    reports, or a new one."""
    best: tuple[float, StoryProfile, dict[str, Any]] | None = None
    for story in candidates:
        if _apart(event, story, published) is not None:
            continue
        score, why = similarity(event, story, published)
        if score >= bar_for(event, story, published) and (best is None or score > best[0]):
            best = (score, story, why)
    if best is not None:
        return Decision(best[1].story_id, {"by": "event", "kind": event.kind, **best[2]})
    if event.kind == "report":
        return Decision(None, {"by": "new", "kind": event.kind, "stage": event.stage})
    # A live blog, explainer or round-up alerts only as the first report of its stage in the
    # window: one that reports no stage, or a stage some story already reports, is a source.
    alerts = event.stage is not None and not any(
        story.stage == event.stage and _apart(event, story, published) is None
        for story in candidates)
    return Decision(None, {"by": "new", "kind": event.kind, "stage": event.stage}, alerts=alerts)
