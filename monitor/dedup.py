"""Near-duplicate detection: the same story syndicated across outlets.

In: an item's plain-text title and summary. Out: a ``Fingerprint`` — a small set of
word-shingle hashes and the MinHash-LSH band keys derived from it. Pure: no I/O.

The store keeps each story's band keys in an indexed table, so finding candidate
stories for a new item is a handful of index lookups, whatever the number of stories
stored (the check must not grow linearly with the database). Candidates are then
verified by the Jaccard similarity of their shingle sets.

The other two dedup layers (the same entry again: feed + guid; the same canonical URL
from any feed) are exact lookups done by the store.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from functools import cached_property, partial
from itertools import pairwise

NUM_BANDS = 16
ROWS_PER_BAND = 2
NUM_BINS = NUM_BANDS * ROWS_PER_BAND  # a power of two: a bin is the top bits of a hash
SUMMARY_WORDS = 60  # syndicated copies differ in how much of the dek they carry
DUPLICATE_SIMILARITY = 0.5  # Jaccard of shingle sets at or above which two items are one story
# A headline alone has few shingles: one changed word ("Hamas" / "Israeli delegation arrives
# in Cairo") moves Jaccard a lot, so short texts must agree more before they are one story.
SHORT_TEXT_SHINGLES = 10
SHORT_TEXT_SIMILARITY = 0.8
TITLE_KEY_MIN_WORDS = 5
_MASK32 = 0xFFFFFFFF
_MASK64 = (1 << 64) - 1
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# A hyphen between two letters: found by the hyphen first (the engine then scans for it), the
# letter before it checked after; 5x faster than a leading look-behind, the same matches.
_JOINED = re.compile(r"[-‐‑](?<=[^\W\d_][-‐‑])(?=[^\W\d_])")
# The punctuation that keeps most non-ASCII texts off the fast path; all of it separates words.
_PUNCTUATION = "’‘“”—–…£€•\xa0"
# ASCII bytes to themselves when they are part of a word (lower-case letters, digits), else to a
# space: on ASCII text, bytes.translate + split gives what _WORD.findall gives, 2.4x faster.
_ASCII_WORDS = bytes(c if chr(c) in "abcdefghijklmnopqrstuvwxyz0123456789" else 32
                     for c in range(256))
_STOP_TEXT = frozenset((
    "a an the and or of to in on at for by with from as is are was were be been it its this that "
    "after over into says said will has have had not but"
).split())
_STOPWORDS = frozenset(word.encode("ascii") for word in _STOP_TEXT)
# Outlet suffixes in titles ("... - Reuters", "... | AP News") are not part of the story.
_TITLE_SUFFIX = re.compile(r"\s+[-|–—]\s+[^-|–—]{2,40}$")


@dataclass(frozen=True)
class Fingerprint:
    """An item's near-duplicate fingerprint. The shingle hashes travel and are stored packed
    (``packed``: sorted little-endian uint32): the parse workers send fingerprints to the store,
    and a packed set unpickles in 0.03 us where a frozenset took 3.5 us; the set is built again
    (``shingles``) only when a candidate story has to be compared with this item."""

    packed: bytes
    band_keys: tuple[int, ...]
    title_key: int | None = None  # stored among the band keys; equal keys are the same story

    @cached_property
    def shingles(self) -> frozenset[int]:
        return unpack_shingles(self.packed)

    def __getstate__(self) -> dict[str, object]:  # pickled without the set built from ``packed``
        return {name: value for name, value in self.__dict__.items() if name != "shingles"}

    def similarity(self, other_shingles: frozenset[int]) -> float:
        return jaccard(self.shingles, other_shingles)

    def duplicates(self, other_shingles: frozenset[int]) -> float | None:
        """The similarity when the other text is the same story, else None."""
        similarity = self.similarity(other_shingles)
        short = min(len(self.shingles), len(other_shingles)) < SHORT_TEXT_SHINGLES
        bar = SHORT_TEXT_SIMILARITY if short else DUPLICATE_SIMILARITY
        return similarity if similarity >= bar else None


def _tokens(text: str) -> list[bytes]:
    """The words of ``text``, UTF-8 encoded: lower case, stopwords dropped, a plural "s" cut.

    "cease-fire" and "ceasefire" are one word; "hostages" and "hostage" too. The words are
    those of ``_WORD.findall`` (an ASCII text takes a faster path to the same words): stored
    shingles and title keys depend on them."""
    text = text.lower()
    if "-" in text or "‐" in text or "‑" in text:
        text = _JOINED.sub("", text)
    if not text.isascii():
        for mark in _PUNCTUATION:
            if mark in text:
                text = text.replace(mark, " ")
    if text.isascii():
        stop = _STOPWORDS
        return [w[:-1] if w[-1] == 115 and len(w) > 3 else w  # 115: b"s"
                for w in text.encode("ascii").translate(_ASCII_WORDS).split() if w not in stop]
    stop_text = _STOP_TEXT  # the length in characters, not in bytes
    return [(w[:-1] if w[-1] == "s" and len(w) > 3 else w).encode("utf-8")
            for w in _WORD.findall(text) if w not in stop_text]


def words(title: str, summary: str) -> list[bytes]:
    """The words that make the shingles: the title's, then the summary's first ones."""
    return _tokens(_headline(title)) + _tokens(summary)[:SUMMARY_WORDS]


def title_key(title: str) -> int | None:
    """The same headline, whatever the case, hyphens and word order: one key.
    Only for headlines of five or more words, where an equal set of words is the same story."""
    return _title_key(_tokens(_headline(title)))


def _title_key(headline: list[bytes]) -> int | None:
    distinct = set(headline)
    if len(distinct) < TITLE_KEY_MIN_WORDS:
        return None
    # Sorted as bytes: UTF-8 keeps the code-point order, so the key of the sorted text is the same.
    return zlib.crc32(b" ".join(sorted(distinct))) | (NUM_BANDS << 32)


def shingles_of(words: list[bytes]) -> frozenset[int]:
    """Word bigrams (unigrams for very short texts), hashed to 32 bits (CRC-32 of the UTF-8
    text, words joined by a space)."""
    if len(words) < 3:
        return frozenset(map(zlib.crc32, words))
    return frozenset(map(zlib.crc32, map(b" ".join, pairwise(words))))


def _headline(title: str) -> str:
    if "-" in title or "|" in title or "–" in title or "—" in title:
        return _TITLE_SUFFIX.sub("", title)
    return title


def fingerprint(title: str, summary: str) -> Fingerprint:
    headline = _tokens(_headline(title))
    shingles = shingles_of(headline + _tokens(summary)[:SUMMARY_WORDS])
    key = _title_key(headline)
    if not shingles:
        return Fingerprint(b"", () if key is None else (key,), key)
    keys = band_keys(shingles)
    if key is not None:
        keys.append(key)
    result = Fingerprint(pack_shingles(shingles), tuple(keys), key)
    result.__dict__["shingles"] = shingles  # the cached_property's value: no need to unpack
    return result


def band_keys(shingles: frozenset[int]) -> list[int]:
    """The ``NUM_BANDS`` LSH band keys of a non-empty shingle set (``Fingerprint.band_keys``
    without the title key)."""
    signature = _signature(shingles)
    # Band b is bins 2b and 2b+1: bits 27-58 of the first bin's hash xor the low 32 bits of the
    # second's (a one-to-one function of its shingle), and the band number above them so that
    # equal bins in different bands are different keys; 63 bits fit SQLite's signed INTEGER.
    return [(first >> 27 ^ second) & _MASK32 | tag
            for first, second, tag in zip(signature[::2], signature[1::2], _BAND_TAGS, strict=True)]


# One-permutation MinHash with optimal densification (Li, Owen & Zhang 2012; Shrivastava 2017):
# each shingle is hashed once, h = s * _MIX mod 2**64 (s is a CRC-32, already spread out); the
# top 5 bits of h choose one of 32 bins and each bin keeps its least h. An empty bin (short
# texts leave most of them empty) takes the value of the first non-empty bin along its own
# fixed probe order: two texts then agree on a bin with probability their Jaccard similarity,
# as with 32 independent hash functions, at the cost of one multiplication per shingle (the
# 32-hash MinHash of earlier releases was 60 us of the 98 us per item). Measured on pairs made
# from the shared news items, it finds pairs at Jaccard 0.5-0.6 as often (tests/test_dedup.py).
# Fixed constants, so that fingerprints agree across processes and releases (Python's hash()
# is salted); stored keys change meaning with them (schema step 0005 recomputed them).
_MIX = 0x9E3779B97F4A7C15  # odd: 2**64 / golden ratio
_BIN_SHIFT = 64 - (NUM_BINS.bit_length() - 1)
_BAND_TAGS = [band << 32 for band in range(NUM_BANDS)]


def _rank(bin_: int, donor: int) -> int:
    """A fixed pseudo-random rank (SplitMix64's finaliser) of ``donor`` in ``bin_``'s probe order."""
    z = (bin_ * NUM_BINS + donor + 1) * 0x9E3779B97F4A7C15 & _MASK64
    z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9 & _MASK64
    z = (z ^ z >> 27) * 0x94D049BB133111EB & _MASK64
    return z ^ z >> 31


_PROBES = [sorted((j for j in range(NUM_BINS) if j != i), key=partial(_rank, i))
           for i in range(NUM_BINS)]


def _signature(shingles: frozenset[int]) -> list[int]:
    """Per bin, the least hash of the shingles that fall in it, empty bins densified."""
    # Largest first, so that the last (least) value written for a bin stays.
    least = {h >> _BIN_SHIFT: h for h in sorted([s * _MIX & _MASK64 for s in shingles],
                                                 reverse=True)}
    if len(least) == NUM_BINS:
        return [least[i] for i in range(NUM_BINS)]
    signature = []
    for i, probes in enumerate(_PROBES):
        value = least.get(i)
        if value is None:  # some bin is not empty: the shingles are not
            value = next(least[j] for j in probes if j in least)
        signature.append(value)
    return signature


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def pack_shingles(shingles: frozenset[int]) -> bytes:
    return struct.pack(f"<{len(shingles)}I", *sorted(shingles))


def unpack_shingles(blob: bytes) -> frozenset[int]:
    return frozenset(struct.unpack(f"<{len(blob) // 4}I", blob))
