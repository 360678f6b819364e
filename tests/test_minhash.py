"""The fast paths of the fingerprint compute what the plain formulas say: the words, shingles
and title keys that stored stories were fingerprinted with (earlier releases used the plain
regex formulation below), and the one-permutation MinHash signature."""

from __future__ import annotations

import itertools
import json
import random
import re
import zlib
from pathlib import Path

import pytest

from monitor import dedup

ITEMS = Path(__file__).parent / "data"

# The tokeniser of earlier releases, as it was: stored shingles and title keys come from it.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_JOINED = re.compile(r"(?<=[^\W\d_])[-‐‑](?=[^\W\d_])")
_STOPWORDS = frozenset((
    "a an the and or of to in on at for by with from as is are was were be been it its this that "
    "after over into says said will has have had not but"
).split())
_TITLE_SUFFIX = re.compile(r"\s+[-|–—]\s+[^-|–—]{2,40}$")


def _reference_tokens(text: str) -> list[str]:
    text = _JOINED.sub("", text.lower())
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w
            for w in _WORD.findall(text) if w not in _STOPWORDS]


def _reference_words(title: str, summary: str) -> list[str]:
    return _reference_tokens(_TITLE_SUFFIX.sub("", title)) + _reference_tokens(summary)[:60]


def _reference_shingles(tokens: list[str]) -> frozenset[int]:
    grams = tokens if len(tokens) < 3 else [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
    return frozenset(zlib.crc32(g.encode("utf-8")) for g in grams)


def _reference_title_key(title: str) -> int | None:
    tokens = set(_reference_tokens(_TITLE_SUFFIX.sub("", title)))
    if len(tokens) < 5:
        return None
    return zlib.crc32(" ".join(sorted(tokens)).encode("utf-8")) | (16 << 32)


EDGES = [
    ("İstanbul: Kelvin \u212a, ést éts naïve", "café-au-lait coöperation Israel‑Hamas cease‐fire x-1 1-x"),
    ("Hamas’s “truce” — talks… – Reuters", "£5 €3 • a\xa0b under_score Straße ǅ ﬁre a--b a-b-c"),
    ("Hostages freed - Egypt | AP News", "ALL CAPS HOSTAGES released; ceasefire's 3rd day"),
    ("Путин и ХАМАС: переговоры", "日本語のテキスト and العربية text"),
    ("", ""),
    ("a", "the of"),
]


def _texts() -> list[tuple[str, str]]:
    texts = list(EDGES)
    for name in ("items_sample.jsonl", "e2e_items.jsonl"):
        for line in (ITEMS / name).read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            texts.append((item["title"], item.get("summary") or ""))
    return texts


@pytest.mark.parametrize("title, summary", _texts())
def test_words_shingles_and_title_keys_are_those_of_the_plain_formulation(title, summary):
    words = _reference_words(title, summary)
    assert dedup.words(title, summary) == [w.encode("utf-8") for w in words]
    fp = dedup.fingerprint(title, summary)
    assert fp.shingles == _reference_shingles(words)
    assert fp.title_key == dedup.title_key(title) == _reference_title_key(title)


def _reference_signature(shingles: frozenset[int]) -> list[int]:
    """Per bin the least 64-bit hash; an empty bin takes the value of the bin of lowest rank
    among the non-empty ones."""
    least: dict[int, int] = {}
    for s in shingles:
        h = (s * dedup._MIX) % 2**64
        least[h >> 59] = min(h, least.get(h >> 59, h))
    return [least[i] if i in least else least[min(least, key=lambda j, i=i: dedup._rank(i, j))]
            for i in range(dedup.NUM_BINS)]


def test_signature_equals_the_plain_formula():
    rng = random.Random(5)
    sets = [frozenset({0}), frozenset({0xFFFFFFFF}), frozenset({0, 1, 0xFFFFFFFF})]
    sets += [frozenset(rng.getrandbits(32) for _ in range(n)) for n in (2, 5, 9, 20, 40, 200)]
    for title, summary in _texts():
        shingles = dedup.fingerprint(title, summary).shingles
        if shingles:
            sets.append(shingles)
    full = 0
    for shingles in sets:
        signature = dedup._signature(shingles)
        assert signature == _reference_signature(shingles)
        full += len({h >> 59 for h in signature}) == dedup.NUM_BINS
    assert full  # the path without empty bins is covered (200 shingles fill all 32 bins)


def test_probe_orders_are_permutations_of_the_other_bins():
    for i, probes in enumerate(dedup._PROBES):
        assert sorted(probes) == [j for j in range(dedup.NUM_BINS) if j != i]
    assert len({tuple(p[:3]) for p in dedup._PROBES}) > dedup.NUM_BINS // 2  # not one rotation


def test_one_shingle_fills_every_bin_with_its_hash():
    signature = dedup._signature(frozenset({12345}))
    assert signature == [12345 * dedup._MIX % 2**64] * dedup.NUM_BINS


@pytest.mark.parametrize("title, summary, expected", [
    ("Hostages freed - Reuters", "The talks resume", "hostage freed talk resume"),  # outlet cut
    ("Gaza | AP News", "it is this", "gaza"),  # stopwords only
    ("Cease-fire in Gaza", "", "ceasefire gaza"),  # one word, hyphenated or not
    ("Cease\u2010fire in Gaza", "", "ceasefire gaza"),  # the Unicode hyphen
    ("Cease\u2011fire in Gaza", "", "ceasefire gaza"),  # the non-breaking hyphen
    ("Hostages freed \u2014 Al Jazeera", "", "hostage freed"),  # outlet after an em dash
    ("Hostages freed \u2013 AP", "", "hostage freed"),  # or an en dash
    ("UN says: 3 hostages, 2 prisoners", "", "un 3 hostage 2 prisoner"),
    ("x-1 1-x a-b", "", "x 1 1 x ab"),  # a hyphen joins letters only
    ("bus gas yes", "", "bus gas yes"),  # three letters keep their "s"
    ("Naïve café-au-lait", "", "naïve caféaulait"),
    ("Hamas’s “truce”", "", "hama s truce"),  # typographic marks separate words
])
def test_words_as_written_by_hand(title, summary, expected):
    """The tokeniser's rules, each stated as an example worked out by hand (not by a second
    implementation of it)."""
    assert dedup.words(title, summary) == [w.encode("utf-8") for w in expected.split()]


def test_only_the_first_sixty_words_of_a_summary_count():
    summary = " ".join(f"w{i}" for i in range(100))
    assert dedup.words("", summary) == [f"w{i}".encode() for i in range(60)]


def _pairs(rng: random.Random, common: int, own: int, n: int):
    """``n`` pairs of shingle sets with ``common`` shingles in common and ``own`` each of
    their own: Jaccard exactly common / (common + 2 * own)."""
    for _ in range(n):
        pool = rng.sample(range(2**32), common + 2 * own)
        yield (frozenset(pool[:common + own]),
               frozenset(pool[:common] + pool[common + own:]))


@pytest.mark.parametrize("common, own", [(2, 4), (20, 40), (4, 2), (40, 20), (8, 1), (80, 10)])
def test_minhash_bins_agree_as_often_as_the_texts_overlap(common, own):
    """What MinHash promises, checked by counting rather than by a second implementation: two
    sets of Jaccard J agree on a bin with probability J, also for short texts whose bins are
    mostly empty (densified), so that they share a band of two bins with probability ~J**2,
    which is what the LSH recall figures rest on."""
    jaccard = common / (common + 2 * own)
    rng = random.Random(11)
    bins = bands = 0.0
    n = 400
    for a, b in _pairs(rng, common, own, n):
        bins += sum(x == y for x, y in zip(dedup._signature(a), dedup._signature(b), strict=True))
        bands += sum(x == y for x, y in zip(dedup.band_keys(a), dedup.band_keys(b), strict=True))
    assert abs(bins / (n * dedup.NUM_BINS) - jaccard) < 0.03
    assert jaccard**2 - 0.03 < bands / (n * dedup.NUM_BANDS) < jaccard**2 + 0.05


def test_band_keys_carry_their_band_and_differ_between_bands():
    """Equal bins in different bands must not be the same key (the band number is above the
    32 bits of the bins), and the title key has a band number of its own."""
    fp = dedup.fingerprint("Hamas delegation arrives in Cairo for truce talks", "Egyptian mediators met.")
    assert [key >> 32 for key in fp.band_keys[:dedup.NUM_BANDS]] == list(range(dedup.NUM_BANDS))
    assert fp.title_key is not None and fp.title_key >> 32 == dedup.NUM_BANDS
    one = dedup.band_keys(frozenset({12345}))  # every bin holds the same hash
    assert len(set(one)) == dedup.NUM_BANDS and len({key & 0xFFFFFFFF for key in one}) == 1
