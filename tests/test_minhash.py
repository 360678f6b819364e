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
