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

import itertools
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

NUM_BANDS = 16
ROWS_PER_BAND = 2
NUM_HASHES = NUM_BANDS * ROWS_PER_BAND
SUMMARY_WORDS = 60  # syndicated copies differ in how much of the dek they carry
DUPLICATE_SIMILARITY = 0.5  # Jaccard of shingle sets at or above which two items are one story
# A headline alone has few shingles: one changed word ("Hamas" / "Israeli delegation arrives
# in Cairo") moves Jaccard a lot, so short texts must agree more before they are one story.
SHORT_TEXT_SHINGLES = 10
SHORT_TEXT_SIMILARITY = 0.8
_MERSENNE = (1 << 61) - 1
_MASK32 = 0xFFFFFFFF
# Fixed, so that fingerprints agree across processes and releases (Python's hash() is salted).
_COEFFS = [((i * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % _MERSENNE | 1,
            (i * 0xC2B2AE3D27D4EB4F + 0x165667B19E3779F9) % _MERSENNE) for i in range(NUM_HASHES)]
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_JOINED = re.compile(r"(?<=[^\W\d_])[-‐‑](?=[^\W\d_])")
TITLE_KEY_MIN_WORDS = 5
_STOPWORDS = frozenset((
    "a an the and or of to in on at for by with from as is are was were be been it its this that "
    "after over into says said will has have had not but"
).split())
# Outlet suffixes in titles ("... - Reuters", "... | AP News") are not part of the story.
_TITLE_SUFFIX = re.compile(r"\s+[-|–—]\s+[^-|–—]{2,40}$")


@dataclass(frozen=True)
class Fingerprint:
    shingles: frozenset[int]
    band_keys: tuple[int, ...]
    title_key: int | None = None  # stored among the band keys; equal keys are the same story

    def similarity(self, other_shingles: frozenset[int]) -> float:
        return jaccard(self.shingles, other_shingles)

    def duplicates(self, other_shingles: frozenset[int]) -> float | None:
        """The similarity when the other text is the same story, else None."""
        similarity = self.similarity(other_shingles)
        short = min(len(self.shingles), len(other_shingles)) < SHORT_TEXT_SHINGLES
        bar = SHORT_TEXT_SIMILARITY if short else DUPLICATE_SIMILARITY
        return similarity if similarity >= bar else None


def _tokens(text: str) -> list[str]:
    # "cease-fire" and "ceasefire" are one word; "hostages" and "hostage" too.
    text = _JOINED.sub("", text.lower())
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w
            for w in _WORD.findall(text) if w not in _STOPWORDS]


def words(title: str, summary: str) -> list[str]:
    title = _TITLE_SUFFIX.sub("", title)
    return _tokens(title) + _tokens(summary)[:SUMMARY_WORDS]


def title_key(title: str) -> int | None:
    """The same headline, whatever the case, hyphens and word order: one key.
    Only for headlines of five or more words, where an equal set of words is the same story."""
    tokens = set(_tokens(_TITLE_SUFFIX.sub("", title)))
    if len(tokens) < TITLE_KEY_MIN_WORDS:
        return None
    return zlib.crc32(" ".join(sorted(tokens)).encode("utf-8")) | (NUM_BANDS << 32)


def shingles_of(tokens: list[str]) -> frozenset[int]:
    """Word bigrams (unigrams for very short texts), hashed to 32 bits."""
    grams = tokens if len(tokens) < 3 else [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
    return frozenset(zlib.crc32(g.encode("utf-8")) for g in grams)


def fingerprint(title: str, summary: str) -> Fingerprint:
    shingles = shingles_of(words(title, summary))
    headline = title_key(title)
    if not shingles:
        return Fingerprint(frozenset(), () if headline is None else (headline,), headline)
    minima = _minima(shingles)
    keys = []
    for band in range(NUM_BANDS):
        rows = minima[band * ROWS_PER_BAND:(band + 1) * ROWS_PER_BAND]
        # The band number is mixed in so that equal rows in different bands are different keys;
        # 63 bits so that the key fits SQLite's signed INTEGER.
        keys.append(zlib.crc32(struct.pack(f"<I{ROWS_PER_BAND}I", band, *rows))
                    | (band << 32))
    if headline is not None:
        keys.append(headline)
    return Fingerprint(shingles, tuple(keys), headline)


# The NUM_HASHES hashes ((a*s + b) mod 2**61-1) & 0xFFFFFFFF of a shingle s, computed at once in
# one big integer with a 96-bit slot per hash (a*s + b < 2**94): one multiplication, two
# Mersenne folds done slot-wise with masks, and the low 32 bits of the slots read back as an
# array. 2.3x faster than one hash at a time, and the same values: a slot left at 2**61-1 or
# 2**61 after the folds (the fold is not finished there; odds 2**-60) takes the plain formula.
_SLOT = 96
_PACKED_A = sum(a << (_SLOT * i) for i, (a, _b) in enumerate(_COEFFS))
_PACKED_B = sum(b << (_SLOT * i) for i, (_a, b) in enumerate(_COEFFS))
_PACKED_M = sum(_MERSENNE << (_SLOT * i) for i in range(NUM_HASHES))
_PACKED_HIGH = sum(((1 << 33) - 1) << (_SLOT * i) for i in range(NUM_HASHES))
_PACKED_ONE = sum(1 << (_SLOT * i) for i in range(NUM_HASHES))
_PACKED_BIT61 = _PACKED_ONE << 61
_PACKED_LOW32 = _PACKED_ONE * _MASK32
_PACKED_BYTES = _SLOT * NUM_HASHES // 8


def _hashes(s: int) -> Sequence[int]:
    x = _PACKED_A * s + _PACKED_B
    y = (x & _PACKED_M) + ((x >> 61) & _PACKED_HIGH)
    z = (y & _PACKED_M) + ((y >> 61) & _PACKED_ONE)
    if (z + _PACKED_ONE) & _PACKED_BIT61:
        return [((a * s + b) % _MERSENNE) & _MASK32 for a, b in _COEFFS]
    return memoryview((z & _PACKED_LOW32).to_bytes(_PACKED_BYTES, "little")).cast("I")[::_SLOT // 32]


def _minima(shingles: frozenset[int]) -> list[int]:
    """The MinHash signature: per hash function, its least value over the shingles."""
    return list(map(min, zip(*map(_hashes, shingles), strict=True)))


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def pack_shingles(shingles: frozenset[int]) -> bytes:
    return struct.pack(f"<{len(shingles)}I", *sorted(shingles))


def unpack_shingles(blob: bytes) -> frozenset[int]:
    return frozenset(struct.unpack(f"<{len(blob) // 4}I", blob))
